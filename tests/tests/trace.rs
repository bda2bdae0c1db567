//! `inlet trace` and `inlet dlq` on LocalStack: for an ingested object, one with quarantined
//! lines, one whose notified version was gone when read, and one that ended in the DLQ, the
//! trace says where each went; the DLQ's messages are listed with their reasons, and one whose
//! object was fixed is redriven into rows.

use std::time::Duration;

use inlet::testing::events::S3Notification;
use inlet::testing::sample;
use inlet_tests::{LocalStack, Pipeline, PipelineOptions};
use serde_json::Value;

const SEED: u64 = 20261206;

#[tokio::test(flavor = "multi_thread")]
async fn trace_says_where_an_ingested_a_quarantined_a_superseded_and_a_dead_lettered_object_went() {
    let localstack = LocalStack::connect().await.unwrap();
    let options = PipelineOptions {
        max_receive_count: 2,
        visibility_timeout_seconds: 4,
        converter_timeout_seconds: 4,
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::deploy(&localstack, "trace", options).await.unwrap();
    let dir = "web/date=2026-05-16";
    let uri = |name: &str| format!("s3://{}/{dir}/{name}", pipeline.raw_bucket);
    let good = sample::ndjson_object(SEED, 1, 16 * 1024);
    let good_lines = good.iter().filter(|b| **b == b'\n').count() as u64;
    pipeline.put(&format!("{dir}/good.json.zst"), sample::zstd_compress(&good)).await.unwrap();
    let mut bad_lines = sample::ndjson_object(SEED, 2, 16 * 1024);
    let bad_lines_rows = bad_lines.iter().filter(|b| **b == b'\n').count() as u64;
    bad_lines.extend_from_slice(b"not json at all\n");
    pipeline.put(&format!("{dir}/bad-lines.json.zst"), sample::zstd_compress(&bad_lines)).await.unwrap();
    pipeline.put(&format!("{dir}/corrupt.json.zst"), b"\x28\xb5\x2f\xfd not a zstd frame".to_vec()).await.unwrap();
    let replaced = sample::ndjson_object(SEED, 3, 8 * 1024);
    pipeline.put(&format!("{dir}/replaced.json.zst"), sample::zstd_compress(&replaced)).await.unwrap();
    // A notification of a version of it that is no longer there (another ETag).
    let stale = S3Notification::created(&pipeline.raw_bucket, &format!("{dir}/replaced.json.zst"));
    pipeline.send_to_queue(stale.body()).await.unwrap();
    // A notification of an object not written yet (`.json`: the bucket notifies `.json.zst` only).
    let late_key = format!("{dir}/late.json");
    pipeline
        .send_to_queue(S3Notification::created(&pipeline.raw_bucket, &late_key).without_etag().body())
        .await
        .unwrap();

    let staged = [uri("good.json.zst"), uri("bad-lines.json.zst"), uri("replaced.json.zst")];
    pipeline.wait_for_staged(&staged, Duration::from_secs(60)).await.unwrap();
    pipeline.wait_for_dead_letters(2, Duration::from_secs(120)).await.unwrap();
    let started = std::time::Instant::now();
    while pipeline.superseded().await.unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(60), "the stale notification was never recorded");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Staged, not yet committed: the trace names the fragment.
    let before = trace(&pipeline, &uri("good.json.zst")).await;
    assert_eq!(before["versions"][0]["committed"], false, "{before}");
    assert_eq!(before["staged"][0]["rows"].as_u64(), Some(good_lines), "{before}");

    let report = pipeline.compact(serde_json::json!({"force": true})).await.unwrap();
    let version = report["version"].as_u64().unwrap();

    let good = trace(&pipeline, &uri("good.json.zst")).await;
    assert_eq!(good["table"], pipeline.table_uri, "{good}");
    let commit = &good["versions"][0]["commit"];
    assert_eq!((commit["version"].as_u64(), commit["rows"].as_u64()), (Some(version), Some(good_lines)), "{good}");
    assert!(good["quarantine"].as_array().unwrap().is_empty() && good["staged"].as_array().unwrap().is_empty());

    let quarantined = trace(&pipeline, &uri("bad-lines.json.zst")).await;
    assert_eq!(quarantined["versions"][0]["commit"]["rows"].as_u64(), Some(bad_lines_rows), "{quarantined}");
    let record = &quarantined["quarantine"][0];
    assert_eq!(record["lines"], 1, "{quarantined}");
    assert!(record["first"].as_str().unwrap().starts_with(&format!("line {}:", bad_lines_rows + 1)), "{record}");

    let superseded = trace(&pipeline, &uri("replaced.json.zst")).await;
    assert_eq!(superseded["superseded"].as_array().unwrap().len(), 1, "{superseded}");
    assert_eq!(superseded["superseded"][0]["etag"], format!("etag-{dir}/replaced.json.zst"), "{superseded}");
    assert_eq!(superseded["versions"][0]["committed"], true, "the current version was read: {superseded}");

    let dead = trace(&pipeline, &uri("corrupt.json.zst")).await;
    assert_eq!(dead["versions"][0]["committed"], false, "{dead}");
    let letters = dead["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{dead}");
    assert!(letters[0]["receive_count"].as_u64().unwrap() >= 2, "{dead}");
    let failure = dead["failures"][0]["error"].as_str().unwrap_or_default();
    assert!(failure.contains("zstd decompression failed"), "the converter's reason: {dead}");
    assert_eq!(pipeline.queue_depth(&pipeline.dlq_url).await.unwrap(), 2, "tracing took no dead letter away");

    let text = pipeline.inlet(&["trace", &uri("good.json.zst")]).await.unwrap();
    assert!(text.contains(&format!("committed  in table version {version}")), "{text}");

    // The DLQ, listed: each message with its object and the converter's reason; listing it
    // leaves it as it was.
    let listed = pipeline.inlet(&["dlq", "list", "--json", "--dlq-url", &pipeline.dlq_url]).await.unwrap();
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let reasons: std::collections::BTreeMap<String, String> = listed
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|message| message["objects"].as_array().unwrap().clone())
        .map(|object| (object["uri"].as_str().unwrap().to_string(), object["reason"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(reasons.len(), 2, "{listed}");
    assert!(reasons[&uri("corrupt.json.zst")].contains("zstd decompression failed"), "{reasons:?}");
    assert!(reasons[&uri("late.json")].contains("not found"), "{reasons:?}");
    assert_eq!(pipeline.queue_depth(&pipeline.dlq_url).await.unwrap(), 2);

    // Fixed (the object written at last), its message is redriven, and its rows land once.
    let late: String =
        (0..7).map(|n| format!("{{\"event_id\":\"late-{n}\",\"event_time\":\"2026-05-16T10:00:0{n}Z\"}}\n")).collect();
    pipeline.put(&late_key, late.into_bytes()).await.unwrap();
    let redrive =
        ["dlq", "redrive", &uri("late.json"), "--queue-url", &pipeline.queue_url, "--dlq-url", &pipeline.dlq_url];
    let redriven: Value = serde_json::from_str(&pipeline.inlet(&redrive).await.unwrap()).unwrap();
    assert_eq!((redriven["moved"].as_array().unwrap().len(), redriven["kept"].as_u64()), (1, Some(1)), "{redriven}");
    pipeline.wait_for_staged(&[uri("late.json")], Duration::from_secs(60)).await.unwrap();
    let report = pipeline.compact(serde_json::json!({"force": true})).await.unwrap();
    assert_eq!(report["rows"].as_u64(), Some(7), "{report}");
    let late = trace(&pipeline, &uri("late.json")).await;
    assert_eq!(late["versions"][0]["commit"]["rows"].as_u64(), Some(7), "{late}");
    assert_eq!(pipeline.queue_depth(&pipeline.dlq_url).await.unwrap(), 1, "the corrupt object's message stays");
}

async fn trace(pipeline: &Pipeline, object: &str) -> Value {
    let args = ["trace", object, "--json", "--dlq-url", &pipeline.dlq_url];
    serde_json::from_str(&pipeline.inlet(&args).await.unwrap()).unwrap()
}
