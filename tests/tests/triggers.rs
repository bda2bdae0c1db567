//! Compactions nobody asks for by hand: the commit queue, the size trigger and the EventBridge
//! schedule.

use std::time::Duration;

use aws_sdk_eventbridge::types::Target;
use inlet::testing::sample;
use inlet_tests::{LocalStack, Pipeline, PipelineOptions};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn put_objects(pipeline: &Pipeline, count: u64, bytes: usize) -> (Vec<String>, u64) {
    put_objects_in(pipeline, 0..count, bytes).await
}

async fn put_objects_from(pipeline: &Pipeline, indexes: std::ops::Range<u64>, bytes: usize) -> u64 {
    put_objects_in(pipeline, indexes, bytes).await.1
}

async fn put_objects_in(pipeline: &Pipeline, indexes: std::ops::Range<u64>, bytes: usize) -> (Vec<String>, u64) {
    let mut uris = Vec::new();
    let mut lines = 0;
    for index in indexes {
        let ndjson = sample::ndjson_object(5, index, bytes);
        lines += ndjson.iter().filter(|b| **b == b'\n').count() as u64;
        let key = format!("web/date=2026-05-16/t-{index}.json.zst");
        pipeline.put(&key, sample::zstd_compress(&ndjson)).await.unwrap();
        uris.push(format!("s3://{}/{key}", pipeline.raw_bucket));
    }
    (uris, lines)
}

#[tokio::test(flavor = "multi_thread")]
async fn staging_a_file_worth_of_bytes_starts_a_compaction() {
    let localstack = LocalStack::connect().await.unwrap();
    let options = PipelineOptions {
        size_trigger: true,
        environment: env(&[("INLET_TARGET_FILE_BYTES", "60000"), ("INLET_MIN_COMPACT_BYTES", "60000")]),
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::deploy(&localstack, "size", options).await.unwrap();
    let (_, lines) = put_objects(&pipeline, 6, 96 * 1024).await;
    let table = pipeline.wait_for_rows(lines, Duration::from_secs(120)).await.unwrap();
    assert_eq!(table.num_rows, lines);
    assert!(pipeline.function_log(&pipeline.converter).contains("requested a compaction"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sealed_batches_announced_on_the_commit_queue_are_committed_without_a_schedule() {
    let localstack = LocalStack::connect().await.unwrap();
    // The default minimum size, no size trigger, no schedule: only the announcements commit.
    let options = PipelineOptions { commit_queue: true, ..PipelineOptions::default() };
    let pipeline = Pipeline::deploy(&localstack, "commitq", options).await.unwrap();
    let started = std::time::Instant::now();
    let (_, lines) = put_objects(&pipeline, 3, 16 * 1024).await;
    let table = pipeline.wait_for_rows(lines, Duration::from_secs(120)).await.unwrap();
    assert_eq!(table.num_rows, lines);
    eprintln!("visible {:.1} s after the first PUT", started.elapsed().as_secs_f64());
    // More objects later: committed by the next announcements, each row once.
    let more = put_objects_from(&pipeline, 3..6, 16 * 1024).await;
    let table = pipeline.wait_for_rows(lines + more, Duration::from_secs(120)).await.unwrap();
    assert_eq!(table.num_rows, lines + more);
    assert!(!pipeline.function_log(&pipeline.converter).contains("could not announce"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_schedule_rule_runs_the_compactor() {
    let localstack = LocalStack::connect().await.unwrap();
    let options =
        PipelineOptions { environment: env(&[("INLET_MIN_COMPACT_BYTES", "1")]), ..PipelineOptions::default() };
    let pipeline = Pipeline::deploy(&localstack, "sched", options).await.unwrap();
    let (uris, lines) = put_objects(&pipeline, 2, 16 * 1024).await;
    pipeline.wait_for_staged(&uris, Duration::from_secs(60)).await.unwrap();

    let events = aws_sdk_eventbridge::Client::new(&localstack.sdk);
    let rule = format!("compact-{}", pipeline.name);
    events.put_rule().name(&rule).schedule_expression("rate(1 minute)").send().await.unwrap();
    let function = localstack.lambda.get_function().function_name(&pipeline.compactor).send().await.unwrap();
    let arn = function.configuration.and_then(|c| c.function_arn).unwrap();
    events
        .put_targets()
        .rule(&rule)
        .targets(Target::builder().id("compactor").arn(arn).build().unwrap())
        .send()
        .await
        .unwrap();

    let table = pipeline.wait_for_rows(lines, Duration::from_secs(150)).await.unwrap();
    assert_eq!(table.num_rows, lines);
    events.remove_targets().rule(&rule).ids("compactor").send().await.unwrap();
    events.delete_rule().name(&rule).send().await.unwrap();
}
