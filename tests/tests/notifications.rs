//! Notifications that name the wrong thing fail to the DLQ with their reason, and are never
//! acknowledged as superseded; keys with `+`, spaces, `%` and non-ASCII characters are read as
//! the objects they name.

use std::time::Duration;

use inlet::lineage::SourceObject;
use inlet::ops::backfill::{ListedObject, notification_body};
use inlet::testing::sample;
use inlet_tests::{LocalStack, Pipeline, PipelineOptions};

fn listed(bucket: &str, key: &str, etag: &str) -> ListedObject {
    ListedObject {
        object: SourceObject { bucket: bucket.into(), key: key.into(), etag: Some(etag.into()), ..Default::default() },
        size: 1,
        last_modified: None,
    }
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
        notification_body(&listed(&format!("{raw}-nope"), &format!("{dir}/a b.json.zst"), &etags[0])),
        notification_body(&listed(&raw, &format!("{dir}/never-written.json.zst"), "0123")),
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
