//! Exactly once through maintenance: optimizes and compactions from the deployed Lambda and
//! from `inlet` processes on a workstation, all at once on one table.

use std::collections::HashSet;
use std::time::Duration;

use inlet::testing::sample;
use inlet_tests::{LocalStack, Pipeline, PipelineOptions};

/// Puts one small object, waits until it is staged and commits it alone: one small table file.
async fn one_small_file(pipeline: &Pipeline, index: u64) -> u64 {
    let ndjson = sample::ndjson_object(29, index, 6 * 1024);
    let key = format!("web/date=2026-05-16/race-{index}.json.zst");
    pipeline.put(&key, sample::zstd_compress(&ndjson)).await.unwrap();
    let uri = format!("s3://{}/{key}", pipeline.raw_bucket);
    pipeline.wait_for_staged(&[uri], Duration::from_secs(60)).await.unwrap();
    pipeline.compact(serde_json::json!({"force": true})).await.unwrap();
    ndjson.iter().filter(|b| **b == b'\n').count() as u64
}

#[tokio::test(flavor = "multi_thread")]
async fn optimizes_racing_from_lambda_and_cli_rewrite_every_row_once() {
    let localstack = LocalStack::connect().await.unwrap();
    let pipeline = Pipeline::deploy(&localstack, "raceopt", PipelineOptions::default()).await.unwrap();
    let mut lines = 0;
    let mut conflicts = 0;
    for round in 0..2 {
        for index in 0..4 {
            lines += one_small_file(&pipeline, round * 10 + index).await;
        }
        let before = pipeline.read_table(false).await.unwrap();
        assert_eq!(before.num_rows, lines);
        // Every kind of writer at once: two workstation optimizes, two Lambda optimizes and two
        // plain compactions (whose automatic pass optimizes too).
        let optimize = ["compact", "--optimize"];
        let plain = ["compact"];
        let (a, b, c, d, e, f) = tokio::join!(
            pipeline.inlet(&optimize),
            pipeline.inlet(&optimize),
            pipeline.compact(serde_json::json!({"optimize": true})),
            pipeline.compact(serde_json::json!({"optimize": true})),
            pipeline.inlet(&plain),
            pipeline.inlet(&plain),
        );
        for output in [a, b, e, f] {
            conflicts += output.unwrap().matches("conflict").count();
        }
        for report in [c, d] {
            conflicts += report.unwrap().to_string().matches("conflict").count();
        }
        let after = pipeline.read_table(true).await.unwrap();
        assert_eq!(after.num_rows, lines, "round {round}: no row doubled or lost");
        let ids: HashSet<&str> = after.rows.iter().map(|row| row["event_id"].as_str().unwrap()).collect();
        assert_eq!(ids.len() as u64, lines, "round {round}: every event once");
        assert!(after.files.len() < before.files.len(), "round {round}: the small files were rewritten");
    }
    eprintln!("racing optimizes: {conflicts} lost their race and committed nothing");
}
