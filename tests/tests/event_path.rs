//! The real event path on LocalStack: PutObject → S3 notification → SQS → converter Lambda →
//! fragments → compactor Lambda → Delta table, read back by an independent reader.

use std::collections::BTreeMap;
use std::time::Duration;

use inlet::sample;
use inlet_tests::{LocalStack, Pipeline, PipelineOptions};
use serde_json::Value;

const SEED: u64 = 20260516;
const OBJECT_BYTES: usize = 128 * 1024;

/// Keys services write, including one with a space, a `+` and non-ASCII characters.
fn keys() -> Vec<String> {
    vec![
        "web/date=2026-05-16/part-0000.json.zst".into(),
        "web/date=2026-05-16/part-0001.json.zst".into(),
        "api/date=2026-05-16/part-0002.json.zst".into(),
        "api/date=2026-05-16/night shift+retry é ü 東京.json.zst".into(),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn put_objects_become_rows_that_an_independent_reader_sees() {
    let localstack = LocalStack::connect().await.unwrap();
    let pipeline = Pipeline::deploy(&localstack, "path", PipelineOptions::default()).await.unwrap();

    // What services wrote: every line, keyed by its event id, with the object it came from.
    let mut written: BTreeMap<String, (Value, String)> = BTreeMap::new();
    let mut etags: BTreeMap<String, String> = BTreeMap::new();
    let mut uris = Vec::new();
    for (index, key) in keys().iter().enumerate() {
        let ndjson = sample::ndjson_object(SEED, index as u64, OBJECT_BYTES);
        let uri = format!("s3://{}/{key}", pipeline.raw_bucket);
        for line in ndjson.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let value: Value = serde_json::from_slice(line).unwrap();
            let id = value["event_id"].as_str().unwrap().to_string();
            assert!(written.insert(id, (value, uri.clone())).is_none(), "generator repeated an event id");
        }
        etags.insert(uri.clone(), pipeline.put(key, sample::zstd_compress(&ndjson)).await.unwrap());
        uris.push(uri);
    }
    // An object with two bad lines: they go to quarantine, the rest of the object ingests.
    let mixed_key = "web/date=2026-05-16/mixed.json.zst";
    let mixed_uri = format!("s3://{}/{mixed_key}", pipeline.raw_bucket);
    let mut mixed = Vec::new();
    let sample_lines = sample::ndjson_object(SEED, 99, 16 * 1024);
    for (number, line) in sample_lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()).enumerate() {
        match number + 1 {
            3 => mixed.extend_from_slice(b"{\"event_id\": \"truncated"),
            7 => mixed.extend_from_slice(
                br#"{"event_id":"x","event_time":"2026-05-16T00:00:00Z","http_status":"five hundred"}"#,
            ),
            _ => {
                let value: Value = serde_json::from_slice(line).unwrap();
                written.insert(value["event_id"].as_str().unwrap().to_string(), (value, mixed_uri.clone()));
                mixed.extend_from_slice(line);
            }
        }
        mixed.push(b'\n');
    }
    etags.insert(mixed_uri.clone(), pipeline.put(mixed_key, sample::zstd_compress(&mixed)).await.unwrap());
    uris.push(mixed_uri.clone());

    // A file the notification filter must not pass on.
    pipeline.put("web/date=2026-05-16/readme.txt", b"not data".to_vec()).await.unwrap();

    let staged = pipeline.wait_for_staged(&uris, Duration::from_secs(120)).await.unwrap();
    assert_eq!(staged.len(), uris.len(), "each object staged once: {staged:?}");

    let report = pipeline.compact(serde_json::json!({})).await.unwrap();
    assert_eq!(report["rows"].as_u64().unwrap(), written.len() as u64, "{report}");
    assert_eq!(report["sources"].as_u64().unwrap(), uris.len() as u64, "{report}");

    let table = pipeline.read_table(true).await.unwrap();
    assert_eq!(table.num_rows, written.len() as u64);
    assert_eq!(table.version, report["version"].as_u64().unwrap());
    assert!(!table.files.is_empty());
    assert!(table.files.iter().all(|f| !f.path.contains("_inlet")), "fragments never reach the log");
    for row in &table.rows {
        let id = row["event_id"].as_str().unwrap();
        let (line, uri) = written.get(id).unwrap_or_else(|| panic!("row {id} was never written"));
        assert_eq!(row["_source_file"].as_str().unwrap(), uri);
        assert_eq!(row["_source_etag"].as_str().unwrap(), etags[uri], "lineage names the object version read");
        let mut row = row.clone();
        row.remove("_source_file");
        row.remove("_source_etag");
        assert_eq!(&Value::Object(row), line, "row {id} differs from its input line");
    }

    let quarantined = inlet::quarantine::Quarantine::new(pipeline.table_store().unwrap()).lines().await.unwrap();
    let refused: Vec<(&str, u64)> = quarantined.iter().map(|q| (q.source.as_str(), q.line)).collect();
    assert_eq!(refused, vec![(mixed_uri.as_str(), 3), (mixed_uri.as_str(), 7)]);
    assert!(
        quarantined[1].error.contains("five hundred") || quarantined[1].error.contains("Int32"),
        "{}",
        quarantined[1].error
    );
    assert!(quarantined[0].raw.starts_with("{\"event_id\": \"truncated"));

    // The converter's CloudWatch metrics (EMF lines in its log) account for every row.
    let emf_rows: f64 = pipeline
        .function_log(&pipeline.converter)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|doc| doc.get("_aws").is_some())
        .map(|doc| doc["Rows"].as_f64().unwrap())
        .sum();
    assert_eq!(emf_rows as usize, written.len());

    // The s3:TestEvent and the filtered-out file left nothing behind: no retries, no dead letters.
    assert_eq!(pipeline.queue_depth(&pipeline.queue_url).await.unwrap(), 0);
    assert_eq!(pipeline.queue_depth(&pipeline.dlq_url).await.unwrap(), 0);
    assert!(pipeline.staged_sources().await.unwrap().is_empty(), "compaction consumed every fragment");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_object_fails_alone_and_reaches_the_dlq_with_its_reason() {
    let localstack = LocalStack::connect().await.unwrap();
    let options = PipelineOptions {
        max_receive_count: 2,
        visibility_timeout_seconds: 4,
        converter_timeout_seconds: 4,
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::deploy(&localstack, "dlq", options).await.unwrap();
    let good = "web/date=2026-05-16/good.json.zst";
    let corrupt = "web/date=2026-05-16/corrupt.json.zst";
    pipeline.put(good, sample::zstd_compress(&sample::ndjson_object(SEED, 9, 16 * 1024))).await.unwrap();
    pipeline.put(corrupt, b"\x28\xb5\x2f\xfd this is not a zstd frame".to_vec()).await.unwrap();

    let good_uri = format!("s3://{}/{good}", pipeline.raw_bucket);
    pipeline.wait_for_staged(std::slice::from_ref(&good_uri), Duration::from_secs(60)).await.unwrap();

    let dead = pipeline.wait_for_dead_letters(1, Duration::from_secs(90)).await.unwrap();
    assert_eq!(dead.len(), 1, "only the corrupt object's message is dead-lettered: {dead:?}");
    assert!(dead[0].contains("corrupt.json.zst"), "{}", dead[0]);
    let log = pipeline.function_log(&pipeline.converter);
    assert!(log.contains("corrupt.json.zst: zstd decompression failed"), "converter log lacks the reason:\n{log}");
    assert_eq!(pipeline.staged_sources().await.unwrap(), vec![good_uri], "the good object staged exactly once");
}
