//! Notifications that name the wrong thing fail to the DLQ with their reason, and are never
//! acknowledged as superseded; keys with `+`, spaces, `%` and non-ASCII characters are read as
//! the objects they name.

use std::time::Duration;

use inlet::testing::events::S3Notification;
use inlet::testing::sample;
use inlet_tests::{LocalStack, Pipeline, PipelineOptions};

/// A notification of `bucket/key` with the ETag `etag`, one S3 never sent.
fn notification(bucket: &str, key: &str, etag: &str) -> String {
    S3Notification::created(bucket, key).etag(etag).body()
}

/// An EventBridge `Object Created` event, as a rule delivers it to the queue.
fn eventbridge(bucket: &str, key: &str, etag: &str) -> String {
    serde_json::json!({
        "version": "0", "id": "e1", "detail-type": "Object Created", "source": "aws.s3",
        "account": "000000000000", "time": "2026-05-16T00:00:00Z", "region": "us-east-1",
        "resources": [format!("arn:aws:s3:::{bucket}")],
        "detail": {"version": "0", "bucket": {"name": bucket}, "object": {"key": key, "size": 1, "etag": etag},
                   "reason": "PutObject"}
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn misrouted_notifications_reach_the_dlq_with_their_reason_and_awkward_keys_are_read() {
    let localstack = LocalStack::connect().await.unwrap();
    let options = PipelineOptions {
        max_receive_count: 2,
        visibility_timeout_seconds: 5,
        converter_timeout_seconds: 5,
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::deploy(&localstack, "misrouted", options).await.unwrap();
    let dir = "web/date=2026-05-16";
    // Keys S3 form-encodes in its notifications: a space, a plus, a percent sign, non-ASCII.
    let mut uris = Vec::new();
    let mut etags = Vec::new();
    for (index, name) in ["a b.json.zst", "c+d.json.zst", "e%20f.json.zst", "gé ü.json.zst"].iter().enumerate() {
        let key = format!("{dir}/{name}");
        let ndjson = sample::ndjson_object(31, index as u64, 4 * 1024);
        etags.push(pipeline.put(&key, sample::zstd_compress(&ndjson)).await.unwrap());
        uris.push(format!("s3://{}/{key}", pipeline.raw_bucket));
    }
    pipeline.wait_for_staged(&uris, Duration::from_secs(60)).await.unwrap();

    // A bucket that does not exist; a key that does not exist; an EventBridge event whose key
    // was form-encoded by whoever forged it, so that it names "a+b", not the "a b" written.
    let raw = pipeline.raw_bucket.clone();
    for body in [
        notification(&format!("{raw}-nope"), &format!("{dir}/a b.json.zst"), &etags[0]),
        notification(&raw, &format!("{dir}/never-written.json.zst"), "0123"),
        eventbridge(&raw, &format!("{dir}/a+b.json.zst"), &etags[0]),
    ] {
        pipeline.send_to_queue(body).await.unwrap();
    }
    let dead = pipeline.wait_for_dead_letters(3, Duration::from_secs(120)).await.unwrap();
    for expected in ["-nope", "never-written", "a+b.json.zst"] {
        assert!(dead.iter().any(|body| body.contains(expected)), "no dead letter names {expected}: {dead:?}");
    }
    let log = pipeline.function_log(&pipeline.converter);
    for reason in
        ["does not exist (NoSuchBucket)", "never-written.json.zst: object not found", "a+b.json.zst: object not found"]
    {
        assert!(log.contains(reason), "converter log lacks {reason:?}:\n{log}");
    }
    assert!(pipeline.superseded().await.unwrap().is_empty(), "nothing here was overwritten");
    // The awkward keys were ingested, once each.
    let report = pipeline.compact(serde_json::json!({"force": true})).await.unwrap();
    assert_eq!(report["sources"].as_u64(), Some(4), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_notification_for_bytes_reuploaded_under_another_etag_is_read_not_superseded() {
    let localstack = LocalStack::connect().await.unwrap();
    let pipeline = Pipeline::deploy(&localstack, "sameetag", PipelineOptions::default()).await.unwrap();
    pipeline.disable_notifications().await.unwrap();
    let key = "web/date=2026-05-16/reuploaded.json.zst";
    let ndjson = sample::ndjson_object(41, 0, 8 * 1024);
    let lines = ndjson.iter().filter(|b| **b == b'\n').count() as u64;
    let body = sample::zstd_compress(&ndjson);
    // Written once, then again with the same bytes by multipart: a new ETag, the same content.
    let first = pipeline.put(key, body.clone()).await.unwrap();
    let second = pipeline.put_multipart(key, body).await.unwrap();
    assert!(second.ends_with("-1") && first != second, "{first} / {second}");
    // The first version's notification arrives after the re-upload, then the second's.
    let raw = pipeline.raw_bucket.clone();
    pipeline.send_to_queue(notification(&raw, key, &first)).await.unwrap();
    pipeline.send_to_queue(notification(&raw, key, &second)).await.unwrap();
    let uri = format!("s3://{raw}/{key}");
    pipeline.wait_for_staged(&[uri], Duration::from_secs(60)).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while pipeline.queue_depth(&pipeline.queue_url).await.unwrap() > 0 {
        assert!(std::time::Instant::now() < deadline, "both notifications answered");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(pipeline.superseded().await.unwrap().is_empty(), "its bytes are in the table: not superseded");
    pipeline.compact(serde_json::json!({"force": true})).await.unwrap();
    let table = pipeline.read_table(true).await.unwrap();
    assert_eq!(table.num_rows, lines, "the content once");
    assert_eq!(pipeline.queue_depth(&pipeline.dlq_url).await.unwrap(), 0);
}
