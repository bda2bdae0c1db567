//! Tables partitioned by several typed columns on the real event path (LocalStack): the
//! converter stages a fragment per partition tuple, the compactor copies every fragment's row
//! groups into the tuple's directory, and an independent reader sees each row's values typed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use inlet::commit::complete::read_marker;
use inlet::testing::sample;
use inlet_tests::{LocalStack, Pipeline, PipelineOptions};
use serde_json::Value;

const SEED: u64 = 20261207;

/// What services wrote, by event id: the line and the key it was written under.
type Written = BTreeMap<String, (Value, String)>;

/// Puts sample object `number` of `bytes` at each key; returns every line written and the
/// objects' URIs.
async fn put_samples(pipeline: &Pipeline, keys: &[(String, u64)], bytes: usize) -> (Written, Vec<String>) {
    let (mut written, mut uris) = (Written::new(), Vec::new());
    for (key, number) in keys {
        let ndjson = sample::ndjson_object(SEED, *number, bytes);
        for line in ndjson.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let value: Value = serde_json::from_slice(line).unwrap();
            written.insert(value["event_id"].as_str().unwrap().to_string(), (value, key.clone()));
        }
        pipeline.put(key, sample::zstd_compress(&ndjson)).await.unwrap();
        uris.push(format!("s3://{}/{key}", pipeline.raw_bucket));
    }
    (written, uris)
}

/// Deploys a pipeline partitioned by `partition_by`, feeds it `keys`, compacts through the CLI
/// and checks every fragment was copied; returns the lines written and the table's rows.
async fn ingest(
    prefix: &str,
    partition_by: &str,
    keys: &[(String, u64)],
    bytes: usize,
) -> (Pipeline, Written, inlet_tests::TableSnapshot) {
    let localstack = LocalStack::connect().await.unwrap();
    let options = PipelineOptions {
        environment: vec![("INLET_PARTITION_BY".into(), partition_by.into())],
        max_receive_count: 2,
        visibility_timeout_seconds: 10,
        converter_timeout_seconds: 10,
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::deploy(&localstack, prefix, options).await.unwrap();
    let (written, uris) = put_samples(&pipeline, keys, bytes).await;
    pipeline.wait_for_staged(&uris, Duration::from_secs(120)).await.unwrap();
    let report = pipeline.inlet(&["compact", "--function", &pipeline.compactor]).await.unwrap();
    let report: Value = serde_json::from_str(report.trim()).unwrap();
    assert_eq!(report["rows"].as_u64().unwrap(), written.len() as u64, "{report}");
    assert!(report["fragments"].as_u64().unwrap() > 1, "{report}");
    assert_eq!(report["copied_fragments"], report["fragments"], "row groups copied, not re-encoded: {report}");
    let table = pipeline.read_table(true).await.unwrap();
    assert_eq!(table.num_rows, written.len() as u64);
    assert_eq!(pipeline.queue_depth(&pipeline.dlq_url).await.unwrap(), 0);
    (pipeline, written, table)
}

/// The UTC hour of day of an RFC 3339 `…THH:…Z` timestamp.
fn hour_of(timestamp: &str) -> u64 {
    timestamp[11..13].parse().unwrap()
}

/// Each row is its line plus its partition columns; returns the partition tuples seen.
fn check_rows(
    table: &inlet_tests::TableSnapshot,
    written: &Written,
    columns: &[&str],
    expected: impl Fn(&Value, &str) -> Vec<Value>,
) -> BTreeSet<String> {
    let mut tuples = BTreeSet::new();
    for row in &table.rows {
        let id = row["event_id"].as_str().unwrap();
        let (line, key) = written.get(id).unwrap_or_else(|| panic!("row {id} was never written"));
        let values: Vec<Value> = columns.iter().map(|column| row[*column].clone()).collect();
        assert_eq!(values, expected(line, key), "row {id} of {key}");
        tuples.insert(serde_json::to_string(&values).unwrap());
        let mut row = row.clone();
        for column in columns.iter().chain(&["_source_file", "_source_etag", "_source_digest"]) {
            row.remove(*column);
        }
        assert_eq!(&Value::Object(row), line, "row {id} differs from its input line");
    }
    tuples
}

#[tokio::test(flavor = "multi_thread")]
async fn two_partition_columns_from_the_key_and_a_timestamp_land_typed_in_their_directories() {
    let keys: Vec<(String, u64)> = (0..4u64)
        .map(|index| (format!("svc/origin={}/part-{index}.json.zst", ["web", "api"][index as usize % 2]), index))
        .collect();
    let (pipeline, written, table) = ingest("part2", "origin=key,date=date(event_time)", &keys, 48 * 1024).await;
    let tuples = check_rows(&table, &written, &["origin", "date"], |line, key| {
        let origin = key.split('/').nth(1).unwrap().strip_prefix("origin=").unwrap();
        vec![origin.into(), line["event_time"].as_str().unwrap()[..10].into()]
    });
    assert_eq!(tuples.len(), 2, "{tuples:?}");
    let directories: BTreeSet<&str> = table.files.iter().map(|file| file.path.rsplit_once('/').unwrap().0).collect();
    assert_eq!(directories, BTreeSet::from(["origin=api/date=2026-05-16", "origin=web/date=2026-05-16"]));
    let status = pipeline.inlet(&["status", "--json"]).await.unwrap();
    let status: Value = serde_json::from_str(status.trim()).unwrap();
    assert_eq!(status["staged_fragments"], 0, "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn three_partition_columns_of_three_types_land_and_a_key_of_no_date_reaches_the_dlq() {
    // Sample object n's lines start at second 600n of the day, one a second: objects 5, 11
    // and 17, of over 600 lines each, cross an hour.
    let mut keys: Vec<(String, u64)> = (0..3u64)
        .map(|index| (format!("svc/day=2026-05-{}/part-{index}.json.zst", 16 + index % 2), 6 * index + 5))
        .collect();
    let partition_by = "day=key:date,hour=hour(event_time),area=value(region)";
    let (pipeline, written, table) = ingest("part3", partition_by, &keys, 3 << 19).await;
    let tuples = check_rows(&table, &written, &["day", "hour", "area"], |line, key| {
        let day = key.split('/').nth(1).unwrap().strip_prefix("day=").unwrap();
        let hour = hour_of(line["event_time"].as_str().unwrap());
        vec![day.into(), hour.into(), line["region"].clone()]
    });
    assert!(written.len() > 3 * 600, "{} lines", written.len());
    let hours: BTreeSet<(&str, &str)> =
        tuples.iter().map(|t| (t.split(',').next().unwrap(), t.split(',').nth(1).unwrap())).collect();
    assert_eq!(hours.len(), 6, "each object's lines in two hours: {tuples:?}");
    assert_eq!(tuples.len(), 24, "each day and hour in four regions: {tuples:?}");
    for file in &table.files {
        let parts: Vec<&str> = file.path.split('/').collect();
        assert_eq!(parts.len(), 4, "three directories and the file: {}", file.path);
        assert!(
            parts[0].starts_with("day=2026-05-1") && parts[1].starts_with("hour=") && parts[2].starts_with("area=")
        );
    }

    // A key whose `day=` is not a date fails its object alone, with the reason.
    keys = vec![("svc/day=2026-13-01/bad.json.zst".into(), 40)];
    put_samples(&pipeline, &keys, 8 * 1024).await;
    let dead = pipeline.wait_for_dead_letters(1, Duration::from_secs(120)).await.unwrap();
    assert!(dead[0].contains("bad.json.zst"), "{dead:?}");
    let log = pipeline.function_log(&pipeline.converter);
    assert!(log.contains("key segment `day=2026-13-01` is not a date (YYYY-MM-DD)"), "the converter says why");
}

/// Waits while UTC midnight is near: the test names days relative to today.
async fn away_from_midnight() {
    use chrono::Timelike;
    let seconds = i64::from(chrono::Utc::now().num_seconds_from_midnight());
    let wait = match seconds {
        s if s < 300 => 300 - s,
        s if s > 86_400 - 180 => 86_400 + 300 - s,
        _ => 0,
    };
    tokio::time::sleep(Duration::from_secs(wait as u64)).await;
}

/// `date=YYYY-MM-DD` of the UTC day `days` before today.
fn days_ago(days: i64) -> String {
    (chrono::Utc::now() - chrono::TimeDelta::days(days)).format("%Y-%m-%d").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_days_are_declared_complete_after_the_queue_drains_and_a_late_object_is_recorded() {
    away_from_midnight().await;
    let localstack = LocalStack::connect().await.unwrap();
    let options = PipelineOptions {
        environment: vec![
            ("INLET_PARTITION_BY".into(), "date=key".into()),
            ("INLET_COMPLETE_SETTLE_SECONDS".into(), "0".into()),
        ],
        // A message lives at most two receives of 6 s unanswered: the in-flight bound is 12 s.
        max_receive_count: 2,
        visibility_timeout_seconds: 6,
        converter_timeout_seconds: 6,
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::deploy(&localstack, "complete", options).await.unwrap();
    let (three, two) = (days_ago(3), days_ago(2));
    let keys = vec![(format!("svc/date={three}/a.json.zst"), 1), (format!("svc/date={two}/b.json.zst"), 2)];
    let (_, uris) = put_samples(&pipeline, &keys, 16 * 1024).await;
    pipeline.wait_for_staged(&uris, Duration::from_secs(120)).await.unwrap();
    let first = pipeline.compact(serde_json::json!({"force": true})).await.unwrap();
    let version = first["version"].as_u64().unwrap();
    // The first check starts the watermark at the earliest day committed, with a quiet probe
    // of the queue; once the in-flight bound has passed since, the next run completes both
    // days and every day since that has closed.
    assert_eq!(first["completeness"]["complete_through"].as_str().unwrap()[..10], three, "{first}");
    assert!(first["completeness"].get("completed").is_none(), "{first}");
    tokio::time::sleep(Duration::from_secs(13)).await;
    let second = pipeline.compact(serde_json::json!({"force": true})).await.unwrap();
    let completed: Vec<&str> =
        second["completeness"]["completed"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect();
    assert_eq!(
        completed,
        [format!("date={three}"), format!("date={two}"), format!("date={}", days_ago(1))],
        "{second}"
    );
    let store = pipeline.table_store().unwrap();
    let marker = |day: &str| {
        let (store, window) = (store.clone(), format!("date={day}"));
        async move { read_marker(store.as_ref(), &window).await.unwrap() }
    };
    let three_marker = marker(&three).await.unwrap();
    assert_eq!(three_marker.version, version, "{three_marker:?}");
    let status = pipeline.inlet(&["status", "--json"]).await.unwrap();
    let status: Value = serde_json::from_str(status.trim()).unwrap();
    let through = status["completeness"]["complete_through"].as_str().unwrap();
    assert!(through >= days_ago(1).as_str(), "{status}");
    assert_eq!(status["completeness"]["queues_checked"], true, "{status}");

    // An object written for the day three days ago, now: its rows land, and its day's marker
    // names the version that brought them.
    let late = vec![(format!("svc/date={three}/late.json.zst"), 3)];
    let (written, uris) = put_samples(&pipeline, &late, 8 * 1024).await;
    pipeline.wait_for_staged(&uris, Duration::from_secs(120)).await.unwrap();
    let third = pipeline.compact(serde_json::json!({"force": true})).await.unwrap();
    assert_eq!(third["rows"].as_u64(), Some(written.len() as u64));
    assert_eq!(third["completeness"]["late"], serde_json::json!([format!("date={three}")]), "{third}");
    let three_marker = marker(&three).await.unwrap();
    assert_eq!(three_marker.late_versions, vec![third["version"].as_u64().unwrap()], "{three_marker:?}");
    assert!(marker(&two).await.unwrap().late_versions.is_empty());
}
