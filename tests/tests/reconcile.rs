//! `inlet reconcile` and the compactor's scheduled reconciliation on LocalStack: objects
//! written while the bucket's notifications were off are found unaccounted for; renotifying
//! makes them rows exactly once, and a second reconciliation accounts for every version.

use std::time::Duration;

use inlet::testing::sample;
use inlet_tests::{LocalStack, Pipeline, PipelineOptions};
use serde_json::Value;

const SEED: u64 = 20261207;

#[tokio::test(flavor = "multi_thread")]
async fn reconcile_finds_objects_never_notified_and_renotify_makes_them_rows_once() {
    let localstack = LocalStack::connect().await.unwrap();
    let pipeline = Pipeline::deploy(&localstack, "reconcile", PipelineOptions::default()).await.unwrap();
    let since = (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
    let dir = "web/date=2026-05-16";
    let mut lines = 0;
    let mut put = async |index: u64| {
        let ndjson = sample::ndjson_object(SEED, index, 8 * 1024);
        lines += ndjson.iter().filter(|b| **b == b'\n').count() as u64;
        let key = format!("{dir}/part-{index}.json.zst");
        pipeline.put(&key, sample::zstd_compress(&ndjson)).await.unwrap();
        format!("s3://{}/{key}", pipeline.raw_bucket)
    };
    // Two objects through the pipeline as usual, committed.
    let notified = vec![put(0).await, put(1).await];
    pipeline.wait_for_staged(&notified, Duration::from_secs(60)).await.unwrap();
    pipeline.compact(serde_json::json!({"force": true})).await.unwrap();
    // Notifications off (a misconfiguration, an edited rule): three objects no one hears of.
    pipeline.disable_notifications().await.unwrap();
    let silent = vec![put(2).await, put(3).await, put(4).await];
    tokio::time::sleep(Duration::from_secs(3)).await;

    let prefix = format!("s3://{}/web/", pipeline.raw_bucket);
    let reconcile = |extra: &[&str]| {
        let mut args = vec!["reconcile".to_string(), prefix.clone(), "--since".into(), since.clone(), "--json".into()];
        args.extend(extra.iter().map(|arg| arg.to_string()));
        args
    };
    let args = reconcile(&[]);
    let found = pipeline.inlet_output(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]).await.unwrap();
    assert!(!found.status.success(), "unaccounted versions fail the command");
    let report: Value = serde_json::from_slice(&found.stdout).unwrap();
    assert_eq!((report["versions"].as_u64(), report["committed"].as_u64()), (Some(5), Some(2)), "{report}");
    let mut lost: Vec<String> =
        report["unaccounted"].as_array().unwrap().iter().map(|v| object_uri(&v["object"])).collect();
    lost.sort();
    assert_eq!(lost, silent, "{report}");

    // Sent through the pipeline: rows once, and every version accounted for.
    let args = reconcile(&["--renotify", "--queue-url", &pipeline.queue_url]);
    let sent: Value =
        serde_json::from_str(&pipeline.inlet(&args.iter().map(String::as_str).collect::<Vec<_>>()).await.unwrap())
            .unwrap();
    assert_eq!(sent["renotified"], 3, "{sent}");
    pipeline.wait_for_staged(&silent, Duration::from_secs(60)).await.unwrap();
    pipeline.compact(serde_json::json!({"force": true})).await.unwrap();
    let table = pipeline.read_table(true).await.unwrap();
    assert_eq!(table.num_rows, lines, "every row once");
    let ids: std::collections::HashSet<&str> = table.rows.iter().map(|row| row["event_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len() as u64, lines);
    let args = reconcile(&[]);
    let again: Value =
        serde_json::from_str(&pipeline.inlet(&args.iter().map(String::as_str).collect::<Vec<_>>()).await.unwrap())
            .unwrap();
    assert_eq!((again["committed"].as_u64(), again["unaccounted"].as_array().map(Vec::len)), (Some(5), Some(0)));
}

/// The compactor, invoked as the module's schedule invokes it, lists only the window's dated
/// prefix, reports the unaccounted versions in its answer and its `UnaccountedObjects` metric,
/// and renotifies them.
#[tokio::test(flavor = "multi_thread")]
async fn the_scheduled_reconciliation_renotifies_what_was_never_notified_and_counts_it() {
    let localstack = LocalStack::connect().await.unwrap();
    let options = PipelineOptions { reconcile_prefix: Some("web/date={date}/".into()), ..PipelineOptions::default() };
    let pipeline = Pipeline::deploy(&localstack, "scheduled", options).await.unwrap();
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let mut lines = 0;
    let put = async |dir: &str, index: u64| {
        let ndjson = sample::ndjson_object(SEED + 1, index, 8 * 1024);
        let key = format!("{dir}/part-{index}.json.zst");
        pipeline.put(&key, sample::zstd_compress(&ndjson)).await.unwrap();
        (format!("s3://{}/{key}", pipeline.raw_bucket), ndjson.iter().filter(|b| **b == b'\n').count() as u64)
    };
    let (notified, count) = put(&format!("web/date={today}"), 0).await;
    lines += count;
    pipeline.wait_for_staged(std::slice::from_ref(&notified), Duration::from_secs(60)).await.unwrap();
    pipeline.compact(serde_json::json!({"force": true})).await.unwrap();
    pipeline.disable_notifications().await.unwrap();
    let mut silent = Vec::new();
    for index in [1, 2] {
        let (uri, count) = put(&format!("web/date={today}"), index).await;
        silent.push(uri);
        lines += count;
    }
    // Written under another date's prefix: outside the window's listing, never counted.
    put("web/date=2020-01-01", 3).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let request = serde_json::json!({"reconcile": {
        "window_minutes": 30, "settle_minutes": 0, "suffix": ".json.zst", "renotify": true
    }});
    let answer = pipeline.compact(request.clone()).await.unwrap();
    let table = &answer["tables"][0];
    assert_eq!(
        (table["versions"].as_u64(), table["committed"].as_u64(), table["unaccounted"].as_u64()),
        (Some(3), Some(1), Some(2)),
        "{answer}"
    );
    assert_eq!(table["renotified"], 2, "{answer}");
    let log = pipeline.function_log(&pipeline.compactor);
    assert!(emitted(&log, "UnaccountedObjects", 2.0), "the metric counts them: {log}");

    pipeline.wait_for_staged(&silent, Duration::from_secs(60)).await.unwrap();
    pipeline.compact(serde_json::json!({"force": true})).await.unwrap();
    let rows = pipeline.read_table(true).await.unwrap();
    assert_eq!(rows.num_rows, lines, "every row of the dated prefix once, none of the other date");
    let again = pipeline.compact(request).await.unwrap();
    let table = &again["tables"][0];
    assert_eq!((table["committed"].as_u64(), table["unaccounted"].as_u64()), (Some(3), Some(0)), "{again}");
    assert!(emitted(&pipeline.function_log(&pipeline.compactor), "UnaccountedObjects", 0.0));
}

/// Whether the log holds an EMF line with `metric` at `value`.
fn emitted(log: &str, metric: &str, value: f64) -> bool {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line.get(line.find('{')?..)?).ok())
        .any(|document| document[metric].as_f64() == Some(value))
}

fn object_uri(object: &Value) -> String {
    format!("s3://{}/{}", object["bucket"].as_str().unwrap(), object["key"].as_str().unwrap())
}
