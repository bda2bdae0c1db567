//! Operating on quarantined lines on LocalStack: an object with two bad lines ingests the rest;
//! `inlet quarantine list` and `show` name the lines and why; `replay --fixed` sends the fixed
//! lines through the pipeline and they land once; a second replay is refused and the table is
//! unchanged.

use std::collections::BTreeSet;
use std::time::Duration;

use inlet::testing::sample;
use inlet_tests::{LocalStack, Pipeline, PipelineOptions};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn quarantined_lines_are_listed_shown_and_replayed_exactly_once() {
    let localstack = LocalStack::connect().await.unwrap();
    let pipeline = Pipeline::deploy(&localstack, "quarantine", PipelineOptions::default()).await.unwrap();

    let original = String::from_utf8(sample::ndjson_object(5, 0, 48 * 1024)).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    let (truncated_at, mistyped_at) = (3, 7);
    let mut written: Vec<String> = lines.iter().map(|line| line.to_string()).collect();
    written[truncated_at] = lines[truncated_at][..lines[truncated_at].len() - 1].to_string();
    let mut mistyped: Value = serde_json::from_str(lines[mistyped_at]).unwrap();
    mistyped["http_status"] = "two hundred".into();
    written[mistyped_at] = mistyped.to_string();
    let key = "web/date=2026-05-16/with-bad-lines.json.zst";
    pipeline.put(key, sample::zstd_compress((written.join("\n") + "\n").as_bytes())).await.unwrap();
    let uri = format!("s3://{}/{key}", pipeline.raw_bucket);
    pipeline.wait_for_staged(std::slice::from_ref(&uri), Duration::from_secs(90)).await.unwrap();
    pipeline.inlet(&["compact"]).await.unwrap();
    pipeline.wait_for_rows(lines.len() as u64 - 2, Duration::from_secs(60)).await.unwrap();

    let listed: Vec<Value> =
        serde_json::from_str(&pipeline.inlet(&["quarantine", "list", "--json"]).await.unwrap()).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["key"], key);
    assert_eq!(listed[0]["lines"], 2);
    assert!(listed[0]["replayed_as"].is_null());
    let record = listed[0]["path"].as_str().unwrap().to_string();

    let shown = pipeline.inlet(&["quarantine", "show", &uri]).await.unwrap();
    let shown: Vec<Value> = shown.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let numbers: Vec<u64> = shown.iter().map(|line| line["line"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [truncated_at as u64 + 1, mistyped_at as u64 + 1], "1-based line numbers");
    assert!(shown[1]["error"].as_str().unwrap().contains("http_status"), "{shown:?}");
    assert_eq!(shown[1]["raw"], written[mistyped_at]);

    // The operator fixes both lines and replays them.
    let dir = tempfile::tempdir().unwrap();
    let fixed = dir.path().join("fixed.ndjson");
    std::fs::write(&fixed, format!("{}\n{}\n", lines[truncated_at], lines[mistyped_at])).unwrap();
    let fixed = fixed.display().to_string();
    let replayed: Value =
        serde_json::from_str(&pipeline.inlet(&["quarantine", "replay", &record, "--fixed", &fixed]).await.unwrap())
            .unwrap();
    let replay_uri = replayed["object"].as_str().unwrap().to_string();
    assert!(replay_uri.starts_with(&format!("{uri}.replay-")) && replay_uri.ends_with(".json.zst"), "{replayed}");
    assert_eq!(replayed["lines"], 2);
    pipeline.wait_for_staged(std::slice::from_ref(&replay_uri), Duration::from_secs(90)).await.unwrap();
    pipeline.inlet(&["compact"]).await.unwrap();
    let table = pipeline.wait_for_rows(lines.len() as u64, Duration::from_secs(60)).await.unwrap();

    // A second replay, even with other lines, is refused: nothing lands twice.
    let again = pipeline.inlet(&["quarantine", "replay", &record, "--fixed", &fixed]).await.unwrap_err().to_string();
    assert!(again.contains("already replayed"), "{again}");
    let listed: Vec<Value> =
        serde_json::from_str(&pipeline.inlet(&["quarantine", "list", "--json"]).await.unwrap()).unwrap();
    assert_eq!(listed[0]["replayed_as"], replay_uri.as_str());

    tokio::time::sleep(Duration::from_secs(3)).await;
    pipeline.inlet(&["compact"]).await.unwrap();
    let table_after = pipeline.read_table(true).await.unwrap();
    assert_eq!(table_after.num_rows, table.num_rows);
    let ids: BTreeSet<String> =
        table_after.rows.iter().map(|row| row["event_id"].as_str().unwrap().to_string()).collect();
    let expected: BTreeSet<String> = lines
        .iter()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, expected, "every original row, each once");
    assert_eq!(ids.len() as u64, table_after.num_rows);
    assert_eq!(pipeline.queue_depth(&pipeline.dlq_url).await.unwrap(), 0);
}
