//! Exactly once through maintenance: optimizes and compactions from the deployed Lambda and
//! from `inlet` processes on a workstation, all at once on one table.

use std::collections::HashSet;
use std::time::Duration;

use inlet::testing::{sample, schemas};
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

/// The reference schema with one more nullable column, `region_code`, written where the
/// functions can read it.
fn newer_schema(dir: &tempfile::TempDir) -> String {
    let path = schemas::events_path();
    let mut schema: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    schema["fields"].as_array_mut().unwrap().push(serde_json::json!({"name": "region_code", "type": "string"}));
    let newer = dir.path().join("events-v2.schema.json");
    std::fs::write(&newer, serde_json::to_vec(&schema).unwrap()).unwrap();
    newer.display().to_string()
}

/// Puts `count` objects whose every line sets `region_code`; returns their URIs and lines.
async fn put_with_region(pipeline: &Pipeline, count: u64) -> (Vec<String>, u64) {
    let (mut uris, mut lines) = (Vec::new(), 0);
    for index in 0..count {
        let mut body = Vec::new();
        for line in sample::ndjson_object(37, index, 4 * 1024).split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let mut value: serde_json::Value = serde_json::from_slice(line).unwrap();
            value["region_code"] = format!("eu-{index}").into();
            serde_json::to_writer(&mut body, &value).unwrap();
            body.push(b'\n');
            lines += 1;
        }
        let key = format!("web/date=2026-05-16/region-{index}.json.zst");
        pipeline.put(&key, sample::zstd_compress(&body)).await.unwrap();
        uris.push(format!("s3://{}/{key}", pipeline.raw_bucket));
    }
    (uris, lines)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schema_rollout_that_reaches_the_converters_first_keeps_every_value() {
    let localstack = LocalStack::connect().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = PipelineOptions {
        converter_environment: vec![("INLET_SCHEMA".into(), newer_schema(&dir))],
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::deploy(&localstack, "rollout", options).await.unwrap();
    let (uris, lines) = put_with_region(&pipeline, 3).await;
    pipeline.wait_for_staged(&uris, Duration::from_secs(60)).await.unwrap();
    // The compactor still has the schema without the column.
    let report = pipeline.compact(serde_json::json!({"force": true})).await.unwrap();
    assert_eq!(report["held_fragments"].as_u64(), Some(0), "{report}");
    let table = pipeline.read_table(true).await.unwrap();
    assert_eq!(table.num_rows, lines);
    assert!(table.columns.contains(&"region_code".to_string()), "{:?}", table.columns);
    for row in &table.rows {
        let file = row["_source_file"].as_str().unwrap();
        let index = file.rsplit("region-").next().unwrap().trim_end_matches(".json.zst");
        assert_eq!(row["region_code"], format!("eu-{index}"), "the value as written, in every row");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schema_rollout_that_reaches_the_compactor_first_loses_nothing_staged() {
    let localstack = LocalStack::connect().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let newer = newer_schema(&dir);
    let options = PipelineOptions {
        environment: vec![("INLET_SCHEMA".into(), newer.clone())],
        converter_environment: vec![("INLET_SCHEMA".into(), schemas::events_path().display().to_string())],
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::deploy(&localstack, "rollout2", options).await.unwrap();
    let (uris, lines) = put_with_region(&pipeline, 3).await;
    pipeline.wait_for_staged(&uris, Duration::from_secs(60)).await.unwrap();
    let report = pipeline.compact(serde_json::json!({"force": true})).await.unwrap();
    assert_eq!((report["rows"].as_u64(), report["held_fragments"].as_u64()), (Some(lines), Some(0)), "{report}");
    let table = pipeline.read_table(true).await.unwrap();
    assert_eq!(table.num_rows, lines, "every staged row committed");
    // The converters did not know the column yet: their rows hold what they staged, nulls.
    assert!(table.rows.iter().all(|row| row["region_code"].is_null()));
}
