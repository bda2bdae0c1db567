//! `inlet backfill` at scale on LocalStack: a backfill stopped by `--max-objects` continues from
//! its checkpoint file and sends each object once; `--until` and `--since` bound it by the
//! keys' dates; an S3 Inventory report (CSV) stands in for the listing; every row lands once.

use std::io::Write;
use std::time::Duration;

use inlet::testing::sample;
use inlet_tests::{LocalStack, Pipeline, PipelineOptions};
use serde_json::Value;

const SEED: u64 = 20261206;

#[tokio::test(flavor = "multi_thread")]
async fn a_backfill_continues_from_its_checkpoint_and_reads_an_inventory_report() {
    let localstack = LocalStack::connect().await.unwrap();
    let pipeline = Pipeline::deploy(&localstack, "backfill-scale", PipelineOptions::default()).await.unwrap();
    pipeline.disable_notifications().await.unwrap();
    let (mut uris, mut lines) = (Vec::new(), 0u64);
    let mut put = async |date: &str, index: u64| {
        let ndjson = sample::ndjson_object(SEED, index, 4 * 1024);
        let key = format!("svc/date={date}/part-{index:04}.json.zst");
        pipeline.put(&key, sample::zstd_compress(&ndjson)).await.unwrap();
        uris.push(format!("s3://{}/{key}", pipeline.raw_bucket));
        lines += ndjson.iter().filter(|b| **b == b'\n').count() as u64;
        key
    };
    for index in 0..25 {
        put("2026-05-16", index).await;
    }
    let mut later = Vec::new();
    for index in 25..30 {
        later.push(put("2026-05-17", index).await);
    }
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("backfill.json");
    let checkpoint = checkpoint.to_str().unwrap();
    let prefix = format!("s3://{}/svc/", pipeline.raw_bucket);
    let backfill = async |extra: &[&str]| -> Value {
        let mut args = vec!["backfill", &prefix, "--queue-url", &pipeline.queue_url, "--concurrency", "4"];
        args.extend_from_slice(extra);
        serde_json::from_str(pipeline.inlet(&args).await.unwrap().trim()).unwrap()
    };

    // The 16th's objects only, in two runs: twelve, then the rest from the checkpoint.
    let bounded = ["--until", "2026-05-17", "--checkpoint", checkpoint, "--rate", "500"];
    let first = backfill(&[&bounded[..], &["--max-objects", "12"]].concat()).await;
    assert_eq!((first["queued"].as_u64(), first["done"].as_bool()), (Some(12), Some(false)), "{first}");
    let saved: Value = serde_json::from_slice(&std::fs::read(checkpoint).unwrap()).unwrap();
    assert_eq!(saved["sent"], 12, "{saved}");
    assert!(saved["position"]["after_key"].as_str().unwrap().ends_with("part-0011.json.zst"), "{saved}");
    let second = backfill(&bounded).await;
    assert_eq!((second["queued"].as_u64(), second["total"].as_u64()), (Some(13), Some(25)), "{second}");
    assert_eq!(second["done"], true);
    let third = backfill(&bounded).await;
    assert_eq!(
        (third["queued"].as_u64(), third["done"].as_bool()),
        (Some(0), Some(true)),
        "a finished backfill sends nothing"
    );
    let other = ["backfill", &format!("s3://{}/other/", pipeline.raw_bucket), "--checkpoint", checkpoint];
    let refused = pipeline.inlet_output(&other, &[]).await.unwrap();
    assert!(!refused.status.success(), "a checkpoint continues only its own backfill");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("records another backfill"));

    // The 17th's objects from an inventory report: a delete marker and another prefix's row are
    // left out, and its URL-encoded keys decode.
    let mut rows = String::new();
    for key in &later {
        let encoded = key.replace('=', "%3D");
        rows.push_str(&format!(
            "\"{}\",\"{encoded}\",\"\",\"true\",\"false\",\"100\",\"2026-05-17T01:00:00.000Z\"\n",
            pipeline.raw_bucket
        ));
    }
    rows.push_str(&format!(
        "\"{}\",\"svc/date%3D2026-05-17/gone.json.zst\",\"\",\"true\",\"true\",\"0\",\"2026-05-17T02:00:00.000Z\"\n",
        pipeline.raw_bucket
    ));
    rows.push_str(&format!(
        "\"{}\",\"api/date%3D2026-05-17/x.json.zst\",\"\",\"true\",\"false\",\"1\",\"2026-05-17T02:00:00.000Z\"\n",
        pipeline.raw_bucket
    ));
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(rows.as_bytes()).unwrap();
    let data_key = "inventory/raw/config/data/0001.csv.gz";
    localstack
        .s3
        .put_object()
        .bucket(&pipeline.lake_bucket)
        .key(data_key)
        .body(gzip.finish().unwrap().into())
        .send()
        .await
        .unwrap();
    let manifest = serde_json::json!({
        "sourceBucket": pipeline.raw_bucket,
        "destinationBucket": format!("arn:aws:s3:::{}", pipeline.lake_bucket),
        "version": "2016-11-30",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate",
        "files": [{"key": data_key, "size": 1, "MD5checksum": "-"}],
    });
    let manifest_key = "inventory/raw/config/2026-05-18T00-00Z/manifest.json";
    localstack
        .s3
        .put_object()
        .bucket(&pipeline.lake_bucket)
        .key(manifest_key)
        .body(manifest.to_string().into_bytes().into())
        .send()
        .await
        .unwrap();
    let manifest_uri = format!("s3://{}/{manifest_key}", pipeline.lake_bucket);
    let from_inventory = backfill(&["--inventory", &manifest_uri, "--since", "2026-05-17"]).await;
    assert_eq!(from_inventory["queued"], 5, "{from_inventory}");

    pipeline.wait_for_staged(&uris, Duration::from_secs(120)).await.unwrap();
    pipeline.compact(serde_json::json!({"force": true})).await.unwrap();
    let table = pipeline.read_table(true).await.unwrap();
    assert_eq!(table.num_rows, lines, "every row once");
    let ids: std::collections::HashSet<&str> = table.rows.iter().map(|r| r["event_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len() as u64, lines);
    assert_eq!(pipeline.queue_depth(&pipeline.dlq_url).await.unwrap(), 0);
}
