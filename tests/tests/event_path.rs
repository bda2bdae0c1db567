//! The real event path on LocalStack: PutObject → S3 notification → SQS → converter Lambda →
//! fragments → compactor Lambda → Delta table, read back by an independent reader.

use std::collections::BTreeMap;
use std::time::Duration;

use inlet::testing::events::S3Notification;
use inlet::testing::sample;
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

    // On demand, through the CLI invoking the deployed compactor.
    let report = pipeline.inlet(&["compact", "--function", &pipeline.compactor]).await.unwrap();
    let report: Value = serde_json::from_str(report.trim()).unwrap();
    assert_eq!(report["rows"].as_u64().unwrap(), written.len() as u64, "{report}");
    assert_eq!(report["sources"].as_u64().unwrap(), uris.len() as u64, "{report}");
    assert_eq!(report["copied_fragments"], report["fragments"], "row groups copied, not re-encoded: {report}");

    let table = pipeline.read_table(true).await.unwrap();
    assert_eq!(table.num_rows, written.len() as u64);
    assert_eq!(table.version, report["version"].as_u64().unwrap());
    assert_eq!(table.files.len(), 1, "a few hundred KiB of rows make one file, far below the target size");
    assert!(table.files.iter().all(|f| !f.path.contains("_inlet")), "fragments never reach the log");
    for row in &table.rows {
        let id = row["event_id"].as_str().unwrap();
        let (line, uri) = written.get(id).unwrap_or_else(|| panic!("row {id} was never written"));
        assert_eq!(row["_source_file"].as_str().unwrap(), uri);
        assert_eq!(row["_source_etag"].as_str().unwrap(), etags[uri], "lineage names the object version read");
        assert!(row["_source_digest"].as_str().unwrap().starts_with("xxh3-128:"), "and the content read");
        let mut row = row.clone();
        row.remove("_source_file");
        row.remove("_source_etag");
        row.remove("_source_digest");
        assert_eq!(&Value::Object(row), line, "row {id} differs from its input line");
    }

    let quarantined = inlet::ingest::Quarantine::new(pipeline.table_store().unwrap()).lines().await.unwrap();
    let refused: Vec<(&str, u64)> = quarantined.iter().map(|q| (q.source.as_str(), q.line)).collect();
    assert_eq!(refused, vec![(mixed_uri.as_str(), 3), (mixed_uri.as_str(), 7)]);
    assert_eq!(quarantined[1].error, "field http_status: expected an integer", "the reason names the field");
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
async fn bad_objects_reach_the_dlq_bad_lines_the_quarantine_and_good_rows_ingest() {
    let localstack = LocalStack::connect().await.unwrap();
    let options = PipelineOptions {
        max_receive_count: 2,
        visibility_timeout_seconds: 4,
        converter_timeout_seconds: 4,
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::deploy(&localstack, "bad", options).await.unwrap();
    let dir = "web/date=2026-05-16";
    let good = sample::ndjson_object(SEED, 9, 16 * 1024);
    let good_lines = good.iter().filter(|b| **b == b'\n').count() as u64;
    pipeline.put(&format!("{dir}/good.json.zst"), sample::zstd_compress(&good)).await.unwrap();
    pipeline
        .put(&format!("{dir}/corrupt.json.zst"), b"\x28\xb5\x2f\xfd this is not a zstd frame".to_vec())
        .await
        .unwrap();
    let whole = sample::zstd_compress(&sample::ndjson_object(SEED, 10, 64 * 1024));
    pipeline.put(&format!("{dir}/truncated.json.zst"), whole[..whole.len() / 2].to_vec()).await.unwrap();
    pipeline.put(&format!("{dir}/binary.json.zst"), sample::zstd_compress(b"\x89PNG\r\n\x1a\n\x00\x00")).await.unwrap();
    pipeline.put(&format!("{dir}/empty.json.zst"), sample::zstd_compress(b"")).await.unwrap();
    let mut bad_lines = good.clone();
    bad_lines.extend_from_slice(b"{\"event_id\": 42}\nnot json at all\n");
    pipeline.put(&format!("{dir}/bad-lines.json.zst"), sample::zstd_compress(&bad_lines)).await.unwrap();
    // A notification for an object that is gone by the time the converter reads it.
    let missing = S3Notification::created(&pipeline.raw_bucket, &format!("{dir}/deleted.json.zst")).without_etag();
    pipeline.send_to_queue(missing.body()).await.unwrap();

    let uri = |name: &str| format!("s3://{}/{dir}/{name}", pipeline.raw_bucket);
    let staged_uris = [uri("good.json.zst"), uri("bad-lines.json.zst")];
    pipeline.wait_for_staged(&staged_uris, Duration::from_secs(60)).await.unwrap();

    // Unreadable objects: retried, then dead-lettered, each message naming its object.
    let dead = pipeline.wait_for_dead_letters(4, Duration::from_secs(120)).await.unwrap();
    let mut dead_keys: Vec<&str> = ["corrupt", "truncated", "binary", "deleted"]
        .into_iter()
        .filter(|k| dead.iter().any(|d| d.contains(k)))
        .collect();
    dead_keys.sort();
    assert_eq!(dead_keys, vec!["binary", "corrupt", "deleted", "truncated"], "{dead:?}");
    let log = pipeline.function_log(&pipeline.converter);
    for reason in [
        "corrupt.json.zst: zstd decompression failed",
        "binary.json.zst: not NDJSON",
        "deleted.json.zst: object not found",
    ] {
        assert!(log.contains(reason), "converter log lacks {reason:?}:\n{log}");
    }

    // Bad lines and the empty object: quarantined with their reasons; nothing else lost.
    let quarantine = inlet::ingest::Quarantine::new(pipeline.table_store().unwrap()).lines().await.unwrap();
    let refused: Vec<(String, u64)> = quarantine.iter().map(|q| (q.source.clone(), q.line)).collect();
    assert_eq!(
        refused,
        vec![
            (uri("bad-lines.json.zst"), good_lines + 1),
            (uri("bad-lines.json.zst"), good_lines + 2),
            (uri("empty.json.zst"), 0)
        ]
    );
    let report = pipeline.compact(serde_json::json!({"force": true})).await.unwrap();
    assert_eq!(report["rows"].as_u64().unwrap(), 2 * good_lines, "{report}");
    assert_eq!(pipeline.read_table(false).await.unwrap().num_rows, 2 * good_lines);
}

#[tokio::test(flavor = "multi_thread")]
async fn backfilling_a_prefix_ingests_every_row_exactly_once() {
    let localstack = LocalStack::connect().await.unwrap();
    let pipeline = Pipeline::deploy(&localstack, "backfill", PipelineOptions::default()).await.unwrap();
    // Fifty objects: (key, compressed body, lines).
    let objects: Vec<(String, Vec<u8>, u64)> = (0..50u64)
        .map(|index| {
            let ndjson = sample::ndjson_object(SEED, 1000 + index, 24 * 1024);
            let lines = ndjson.iter().filter(|b| **b == b'\n').count() as u64;
            (format!("svc/date=2026-05-16/part-{index:04}.json.zst"), sample::zstd_compress(&ndjson), lines)
        })
        .collect();
    let uris: Vec<String> = objects.iter().map(|(key, _, _)| format!("s3://{}/{key}", pipeline.raw_bucket)).collect();
    let all_rows: u64 = objects.iter().map(|(_, _, lines)| lines).sum();
    let live_rows: u64 = objects[..10].iter().map(|(_, _, lines)| lines).sum();

    // Ten objects arrive live and are ingested.
    for (key, body, _) in &objects[..10] {
        pipeline.put(key, body.clone()).await.unwrap();
    }
    pipeline.wait_for_staged(&uris[..10], Duration::from_secs(60)).await.unwrap();
    let first = pipeline.compact(serde_json::json!({"force": true})).await.unwrap();
    assert_eq!(first["rows"].as_u64().unwrap(), live_rows);

    // Forty more land while notifications are off (an outage, a copy from an archive).
    pipeline.disable_notifications().await.unwrap();
    for (key, body, _) in &objects[10..] {
        pipeline.put(key, body.clone()).await.unwrap();
    }
    let prefix = format!("s3://{}/svc/", pipeline.raw_bucket);
    let dry = pipeline.inlet(&["backfill", &prefix, "--dry-run"]).await.unwrap();
    assert!(dry.lines().count() >= 10, "dry run lists objects: {dry}");
    assert!(pipeline.staged_sources().await.unwrap().is_empty(), "a dry run sends nothing");

    // The backfill sends all fifty through the pipeline; the ten ingested ones are dropped.
    let sent = pipeline.inlet(&["backfill", &prefix, "--queue-url", &pipeline.queue_url]).await.unwrap();
    let sent: Value = serde_json::from_str(sent.trim()).unwrap();
    assert_eq!(sent["queued"], 50);
    pipeline.wait_for_staged(&uris, Duration::from_secs(120)).await.unwrap();
    let report: Value = serde_json::from_str(pipeline.inlet(&["compact"]).await.unwrap().trim()).unwrap();
    assert_eq!(report["rows"].as_u64().unwrap(), all_rows - live_rows, "{report}");
    assert_eq!(report["duplicate_rows"].as_u64().unwrap(), live_rows, "{report}");

    let table = pipeline.read_table(true).await.unwrap();
    assert_eq!(table.num_rows, all_rows);
    let ids: std::collections::HashSet<&str> = table.rows.iter().map(|r| r["event_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len() as u64, all_rows, "every row exactly once");
    let status = pipeline.inlet(&["status", "--json", "--queue-url", &pipeline.queue_url]).await.unwrap();
    let status: Value = serde_json::from_str(status.trim()).unwrap();
    assert_eq!(
        (status["version"].as_u64(), status["staged_fragments"].as_u64()),
        (Some(table.version), Some(0)),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_versioned_bucket_every_version_written_is_ingested_once() {
    let localstack = LocalStack::connect().await.unwrap();
    let pipeline = Pipeline::deploy(&localstack, "versions", PipelineOptions::default()).await.unwrap();
    let versioning = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    localstack
        .s3
        .put_bucket_versioning()
        .bucket(&pipeline.raw_bucket)
        .versioning_configuration(versioning)
        .send()
        .await
        .unwrap();
    // Three writes of one key in a row, before any is read: new bytes, then the same bytes again
    // by multipart (a new version and ETag, the same content).
    let key = "svc/date=2026-05-16/rewritten.json.zst";
    let (first, second) = (sample::ndjson_object(SEED, 500, 8 * 1024), sample::ndjson_object(SEED, 501, 8 * 1024));
    pipeline.put(key, sample::zstd_compress(&first)).await.unwrap();
    pipeline.put(key, sample::zstd_compress(&second)).await.unwrap();
    pipeline.put_multipart(key, sample::zstd_compress(&second)).await.unwrap();
    let ids = |ndjson: &[u8]| -> Vec<String> {
        ndjson
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice::<Value>(l).unwrap()["event_id"].as_str().unwrap().to_string())
            .collect()
    };
    let mut expected: Vec<String> = ids(&first).into_iter().chain(ids(&second)).collect();
    expected.sort();

    // Every notification is answered and every staged version compacted.
    let started = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let queued = pipeline.queue_depth(&pipeline.queue_url).await.unwrap();
        let staged = pipeline.staged_sources().await.unwrap().len();
        if queued == 0 && staged >= 2 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "{queued} queued, {staged} staged");
    }
    pipeline.compact(serde_json::json!({"force": true})).await.unwrap();
    let table = pipeline.read_table(true).await.unwrap();
    let mut landed: Vec<String> = table.rows.iter().map(|r| r["event_id"].as_str().unwrap().to_string()).collect();
    landed.sort();
    assert_eq!(landed, expected, "both contents, each once");
    assert!(pipeline.superseded().await.unwrap().is_empty(), "every version was read by its id");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bomb_and_an_object_that_kills_the_converter_reach_the_dlq_alone_and_their_batch_ingests() {
    let localstack = LocalStack::connect().await.unwrap();
    let options = PipelineOptions {
        batch_size: 50,
        batching_window_seconds: 3,
        max_receive_count: 2,
        visibility_timeout_seconds: 12,
        converter_timeout_seconds: 10,
        isolation: true,
        environment: vec![
            ("INLET_MAX_OBJECT_BYTES".into(), (4 << 20).to_string()),
            ("INLET_CRASH_ON_KEY".into(), "poison".into()),
        ],
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::deploy(&localstack, "isolate", options).await.unwrap();
    let dir = "svc/date=2026-05-16";
    // 48 good objects, a decompression bomb (64 MiB of one line, a few KiB stored) and an
    // object the converter dies on, all landing within one batching window.
    let mut good_rows = 0;
    let mut uris = Vec::new();
    let mut puts = Vec::new();
    for index in 0..48u64 {
        let ndjson = sample::ndjson_object(SEED, 2000 + index, 8 * 1024);
        good_rows += ndjson.iter().filter(|b| **b == b'\n').count() as u64;
        let key = format!("{dir}/good-{index:02}.json.zst");
        uris.push(format!("s3://{}/{key}", pipeline.raw_bucket));
        puts.push((key, sample::zstd_compress(&ndjson)));
    }
    let line = b"{\"event_id\":\"b\",\"event_time\":\"2026-05-16T00:00:00Z\"}\n";
    let bomb: Vec<u8> = line.iter().copied().cycle().take(64 << 20).collect();
    puts.insert(20, (format!("{dir}/bomb.json.zst"), sample::zstd_compress(&bomb)));
    puts.insert(30, (format!("{dir}/poison.json.zst"), sample::zstd_compress(&sample::ndjson_object(SEED, 9, 4096))));
    futures::future::try_join_all(puts.into_iter().map(|(key, body)| {
        let pipeline = &pipeline;
        async move { pipeline.put(&key, body).await }
    }))
    .await
    .unwrap();

    // The two bad ones end in the DLQ, each on its own; nothing else does.
    let dead = pipeline.wait_for_dead_letters(2, Duration::from_secs(240)).await.unwrap();
    let mut named: Vec<&str> =
        ["bomb", "poison"].into_iter().filter(|name| dead.iter().any(|body| body.contains(name))).collect();
    named.sort();
    assert_eq!(named, vec!["bomb", "poison"], "{dead:?}");
    let staged = pipeline.wait_for_staged(&uris, Duration::from_secs(120)).await.unwrap();
    let log = pipeline.function_log(&pipeline.converter);
    for reason in ["bomb.json.zst: decompresses to more than INLET_MAX_OBJECT_BYTES (4194304 bytes)", "poison.json.zst"]
    {
        assert!(log.contains(reason), "converter log lacks {reason:?}");
    }
    assert!(log.contains("moved to the isolation queue"), "the crashed batch was isolated");
    assert!(staged.iter().all(|uri| uris.contains(uri)), "nothing of the two was staged: {staged:?}");

    // Batches seal just after their fragments land: compact until every good row is in.
    let started = std::time::Instant::now();
    let mut committed = 0;
    while committed < good_rows {
        assert!(started.elapsed() < Duration::from_secs(60), "{committed} of {good_rows} rows committed");
        let report = pipeline.compact(serde_json::json!({"force": true})).await.unwrap();
        committed += report["rows"].as_u64().unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(committed, good_rows);
    assert_eq!(pipeline.read_table(false).await.unwrap().num_rows, good_rows);
    assert_eq!(pipeline.queue_depth(&pipeline.dlq_url).await.unwrap(), 2, "only the two are dead letters");
}

/// An object stored larger than a piece is streamed from S3 (for its digest, then for its
/// pieces, both reads pinned to the notified ETag), and lands whole, once, beside a small one.
#[tokio::test(flavor = "multi_thread")]
async fn an_object_stored_larger_than_a_piece_is_streamed_from_s3_and_lands_once() {
    let localstack = LocalStack::connect().await.unwrap();
    let options = PipelineOptions {
        environment: vec![
            ("INLET_PIECE_BYTES".into(), (64 * 1024).to_string()),
            ("INLET_FRAGMENT_BYTES".into(), (1 << 20).to_string()),
        ],
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::deploy(&localstack, "streamed", options).await.unwrap();
    let (big, small) = (sample::ndjson_object(SEED, 700, 4 << 20), sample::ndjson_object(SEED, 701, 8 * 1024));
    let mut written: BTreeMap<String, (Value, String)> = BTreeMap::new();
    let (mut uris, mut digests) = (Vec::new(), BTreeMap::new());
    for (key, ndjson) in [("svc/date=2026-05-16/big.json.zst", &big), ("svc/date=2026-05-16/small.json.zst", &small)] {
        let uri = format!("s3://{}/{key}", pipeline.raw_bucket);
        for line in ndjson.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let value: Value = serde_json::from_slice(line).unwrap();
            written.insert(value["event_id"].as_str().unwrap().to_string(), (value, uri.clone()));
        }
        let stored = sample::zstd_compress(ndjson);
        digests.insert(uri.clone(), inlet::lineage::content_digest(&stored));
        pipeline.put(key, stored).await.unwrap();
        uris.push(uri);
    }
    assert!(sample::zstd_compress(&big).len() > 64 * 1024, "the big object is stored larger than a piece");

    pipeline.wait_for_staged(&uris, Duration::from_secs(120)).await.unwrap();
    // The first fragment can list both objects while the big one's later fragments are still
    // uploading: count once the message is answered (its batch sealed).
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while pipeline.queue_depth(&pipeline.queue_url).await.unwrap() > 0 {
        assert!(std::time::Instant::now() < deadline, "the messages are answered");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let store = pipeline.fragments().unwrap();
    let mut staged_fragments = 0;
    for meta in store.list().await.unwrap() {
        staged_fragments += 1;
        for source in store.info(&meta).await.unwrap().sources {
            assert_eq!(source.id.digest.as_ref(), Some(&digests[&source.id.uri]), "the digest of the stored bytes");
            assert!(!source.failed, "{source:?}");
        }
    }
    assert!(staged_fragments > 1, "fragments rolled inside the big object");
    assert!(pipeline.function_log(&pipeline.converter).contains("large object: reading it in pieces"));

    pipeline.compact(serde_json::json!({"force": true})).await.unwrap();
    let table = pipeline.read_table(true).await.unwrap();
    assert_eq!(table.num_rows, written.len() as u64, "every line once");
    for row in &table.rows {
        let id = row["event_id"].as_str().unwrap();
        let (line, uri) = written.get(id).unwrap_or_else(|| panic!("row {id} was never written"));
        assert_eq!(row["_source_file"].as_str().unwrap(), uri);
        assert!(row["_source_digest"].as_str().unwrap().starts_with("xxh3-128:"));
        let mut row = row.clone();
        row.remove("_source_file");
        row.remove("_source_etag");
        row.remove("_source_digest");
        assert_eq!(&Value::Object(row), line, "row {id} differs from its input line");
    }
    assert_eq!(pipeline.queue_depth(&pipeline.dlq_url).await.unwrap(), 0);
    assert!(pipeline.superseded().await.unwrap().is_empty());
}
