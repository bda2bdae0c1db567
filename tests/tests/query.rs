//! The README's query snippets work: the pipeline builds a table on LocalStack from the demo's
//! sample objects, then the DuckDB (`delta_scan`) and polars (`scan_delta`) snippets, taken from
//! the README as written, count its events by type, and each count must equal delta-rs'.

use std::collections::BTreeMap;
use std::time::Duration;

use inlet::testing::sample;
use inlet_tests::{LocalStack, Pipeline, PipelineOptions, workspace_root};

const OBJECTS: u64 = 3;

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_duckdb_and_polars_snippets_read_the_table_as_delta_rs_does() {
    let localstack = LocalStack::connect().await.unwrap();
    let pipeline = Pipeline::deploy(&localstack, "query", PipelineOptions::default()).await.unwrap();
    let mut uris = Vec::new();
    for index in 0..OBJECTS {
        let key = format!("web/date=2026-05-16/events-{index:04}.json.zst");
        let ndjson = sample::ndjson_object(42, index, 256 * 1024);
        pipeline.put(&key, sample::zstd_compress(&ndjson)).await.unwrap();
        uris.push(format!("s3://{}/{key}", pipeline.raw_bucket));
    }
    pipeline.wait_for_staged(&uris, Duration::from_secs(120)).await.unwrap();
    pipeline.compact(serde_json::json!({"force": true})).await.unwrap();

    let table = pipeline.read_table(true).await.unwrap();
    assert!(table.num_rows > 0);
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for row in &table.rows {
        let event_type = row["event_type"].as_str().expect("every sample event has a type").to_string();
        *expected.entry(event_type).or_default() += 1;
    }
    assert!(expected.len() > 1, "the sample has several event types: {expected:?}");

    let root = workspace_root();
    // DuckDB installs extensions under $HOME; a scratch home keeps the user's own untouched.
    let home = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(root.join(".venv/tools/bin/python"))
        .arg(root.join("tests/reader/query_snippets.py"))
        .arg(root.join("README.md"))
        .env("HOME", home.path())
        .env("INLET_TABLE_URI", &pipeline.table_uri)
        .envs(localstack.aws_env())
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "snippets failed: {}", String::from_utf8_lossy(&output.stderr));
    let results: BTreeMap<String, BTreeMap<String, u64>> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(results.keys().collect::<Vec<_>>(), ["duckdb", "polars"], "the README's snippets");
    for (engine, counts) in &results {
        assert_eq!(counts, &expected, "{engine} counts the table's events by type as delta-rs does");
    }
}
