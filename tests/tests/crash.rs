//! Exactly once when processes die, on the real path.
//!
//! A thousand objects land on a table partitioned by the date of a timestamp, a quarter of
//! them straddling midnight, while converter and compactor processes abort at their worst
//! moments (crash points: between two partition fragments, before and after a seal, before and
//! after a commit, mid-delete), notifications are duplicated, keys are overwritten (new bytes,
//! and the same bytes again by multipart upload), and partition-limited, full and optimize
//! compactions run side by side, from the Lambda and from `inlet compact --optimize` processes. The independent reader then finds every line of every version
//! read exactly once, as a row or in the quarantine, and every version not read in the
//! superseded record.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use inlet::testing::events::S3Notification;
use inlet::testing::sample::zstd_compress;
use inlet_tests::{LocalStack, Pipeline, PipelineOptions};

const OBJECTS: usize = 1000;
const LINES: usize = 12;

/// Every crash point, each likely enough to fire many times in one run.
const CRASH_POINTS: &str = "converter.fragment_staged=0.04,converter.before_seal=0.04,converter.after_seal=0.04,\
     compactor.before_commit=0.1,compactor.after_commit=0.1,compactor.before_delete=0.1,compactor.mid_delete=0.02";

/// What one version of an object holds.
#[derive(Debug, Clone)]
struct Version {
    body: Vec<u8>,
    /// Event ids of its good lines.
    ids: Vec<String>,
    /// Raw text of its bad lines.
    bad: Vec<String>,
}

/// Version `version` of object `index`: `LINES` lines, some on either side of midnight, and
/// now and then a line whose timestamp is not one.
fn version(index: usize, version: u32) -> Version {
    let (mut text, mut ids, mut bad) = (String::new(), Vec::new(), Vec::new());
    for line in 0..LINES {
        let time = match index % 4 {
            0 if line < LINES / 2 => format!("2026-05-16T23:59:{:02}.{index:03}Z", 50 + line),
            0 => format!("2026-05-17T00:00:{line:02}.{index:03}Z"),
            1 => format!("2026-05-16T12:{line:02}:00Z"),
            _ => format!("2026-05-17T08:{line:02}:00Z"),
        };
        if index % 50 == 3 && line == 5 {
            let raw = format!(r#"{{"event_id":"bad-{index}-v{version}","event_time":"yesterday"}}"#);
            text.push_str(&raw);
            bad.push(raw);
        } else {
            let id = format!("o{index}-v{version}-l{line}");
            text.push_str(&format!(r#"{{"event_id":"{id}","event_time":"{time}","latency_ms":{line}}}"#));
            ids.push(id);
        }
        text.push('\n');
    }
    Version { body: zstd_compress(text.as_bytes()), ids, bad }
}

fn key(index: usize) -> String {
    format!("svc/date=2026-05-16/part-{index:04}.json.zst")
}

/// Compactions of every kind, over and over, until `stop`; failures (crashes) are expected.
async fn compacting(pipeline: Arc<Pipeline>, payloads: Vec<serde_json::Value>, stop: Arc<AtomicBool>) -> (u32, u32) {
    let (mut ok, mut failed) = (0, 0);
    for payload in payloads.iter().cycle() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        match pipeline.compact(payload.clone()).await {
            Ok(_) => ok += 1,
            Err(_) => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    (ok, failed)
}

/// `inlet compact --optimize` from a workstation, over and over until `stop`, beside the
/// deployed compactor; failures (crashes, lost races) are expected.
async fn optimizing_from_the_cli(
    pipeline: Arc<Pipeline>,
    environment: Vec<(String, String)>,
    stop: Arc<AtomicBool>,
) -> (u32, u32) {
    let (mut ok, mut failed) = (0, 0);
    while !stop.load(Ordering::SeqCst) {
        match pipeline.inlet_with(&["compact", "--optimize"], &environment).await {
            Ok(_) => ok += 1,
            Err(_) => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    (ok, failed)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_line_lands_once_while_processes_die_keys_are_overwritten_and_compactions_race() {
    let started = Instant::now();
    let localstack = LocalStack::connect().await.unwrap();
    let options = PipelineOptions {
        batch_size: 10,
        // Redeliveries after crashes must never push a good object to the DLQ.
        max_receive_count: 1000,
        visibility_timeout_seconds: 12,
        converter_timeout_seconds: 10,
        environment: vec![
            ("INLET_PARTITION_BY".into(), "date=event_time".into()),
            ("INLET_ABANDON_AFTER_SECONDS".into(), "20".into()),
            ("INLET_CRASH_POINTS".into(), CRASH_POINTS.into()),
        ],
        ..PipelineOptions::default()
    };
    let options_environment = options.environment.clone();
    let pipeline = Arc::new(Pipeline::deploy(&localstack, "crash", options).await.unwrap());
    let uri = |index: usize| format!("s3://{}/{}", pipeline.raw_bucket, key(index));

    // Every version written, per key, in order: (etag, content).
    let mut written: BTreeMap<usize, Vec<(String, Version)>> = BTreeMap::new();
    let stop = Arc::new(AtomicBool::new(false));
    let compactions = [
        vec![
            serde_json::json!({"force": true}),
            serde_json::json!({"optimize": true}),
            serde_json::json!({"force": true, "partitions": ["date=2026-05-16"]}),
        ],
        vec![
            serde_json::json!({"force": true, "partitions": ["date=2026-05-17"]}),
            serde_json::json!({"optimize": true}),
        ],
    ]
    .map(|payloads| tokio::spawn(compacting(pipeline.clone(), payloads, stop.clone())));
    // The table's settings as the functions have them, crash points included.
    let cli_environment = options_environment.clone();
    let cli = tokio::spawn(optimizing_from_the_cli(pipeline.clone(), cli_environment, stop.clone()));

    // The first versions, sixteen uploads at a time; some keys are overwritten at once (the
    // first version is then usually gone before it is read), some re-uploaded with the same
    // bytes by multipart (a new ETag, the same source).
    let puts = futures::stream::iter(0..OBJECTS)
        .map(|index| {
            let pipeline = pipeline.clone();
            async move {
                let first = version(index, 1);
                let mut versions = vec![(pipeline.put(&key(index), first.body.clone()).await.unwrap(), first.clone())];
                if index % 40 == 1 {
                    let second = version(index, 2);
                    versions.push((pipeline.put(&key(index), second.body.clone()).await.unwrap(), second));
                } else if index % 50 == 7 {
                    versions.push((pipeline.put_multipart(&key(index), first.body.clone()).await.unwrap(), first));
                }
                (index, versions)
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    written.extend(puts);
    let multipart: Vec<&String> =
        written.values().filter(|v| v.len() == 2 && v[0].1.ids == v[1].1.ids).map(|v| &v[1].0).collect();
    assert!(multipart.iter().all(|etag| etag.ends_with("-1")), "multipart ETags: {multipart:?}");

    // Later overwrites, mostly after the first version was read, and duplicate notifications.
    tokio::time::sleep(Duration::from_secs(15)).await;
    for index in (21..OBJECTS).step_by(40) {
        let second = version(index, 2);
        let etag = pipeline.put(&key(index), second.body.clone()).await.unwrap();
        written.get_mut(&index).unwrap().push((etag, second));
    }
    for index in (5..OBJECTS).step_by(17) {
        let duplicate = S3Notification::created(&pipeline.raw_bucket, &key(index)).etag(&written[&index][0].0);
        pipeline.send_to_queue(duplicate.body()).await.unwrap();
    }

    // Until every message is answered; then the races stop and the last runs take the rest
    // (crashes go on: a run is repeated until one finishes with nothing left staged).
    let deadline = Instant::now() + Duration::from_secs(900);
    while pipeline.queue_depth(&pipeline.queue_url).await.unwrap() > 0 {
        assert!(
            Instant::now() < deadline,
            "messages still queued; converter log: {}",
            pipeline.function_log(&pipeline.converter)
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut raced = Vec::new();
    for task in compactions {
        raced.push(task.await.unwrap());
    }
    raced.push(cli.await.unwrap());
    loop {
        assert!(
            Instant::now() < deadline,
            "staging never emptied; compactor log: {}",
            pipeline.function_log(&pipeline.compactor)
        );
        if pipeline.compact(serde_json::json!({"force": true})).await.is_ok()
            && pipeline.fragments().unwrap().list().await.unwrap().is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let converter_crashes = pipeline.function_log(&pipeline.converter).matches("crash point fired").count();
    let compactor_crashes = pipeline.function_log(&pipeline.compactor).matches("crash point fired").count();
    eprintln!(
        "crash test: {} s, converter crashes {converter_crashes}, compactor crashes {compactor_crashes}, \
         racing compactions and CLI optimizes (finished, failed) {raced:?}",
        started.elapsed().as_secs()
    );
    assert!(converter_crashes > 0 && compactor_crashes > 0, "the crash points fired");
    assert_eq!(pipeline.queue_depth(&pipeline.dlq_url).await.unwrap(), 0, "no good object reached the DLQ");

    // What the table, the quarantine and the superseded record hold.
    let table = pipeline.read_table(true).await.unwrap();
    let mut rows: HashMap<String, u32> = HashMap::new();
    for row in &table.rows {
        *rows.entry(row["event_id"].as_str().unwrap().to_string()).or_default() += 1;
        let (date, time) = (row["date"].as_str().unwrap(), row["event_time"].to_string());
        assert!(time.contains(date), "row in the partition of its timestamp: {row:?}");
    }
    let quarantine = inlet::ingest::Quarantine::new(pipeline.table_store().unwrap()).lines().await.unwrap();
    let mut quarantined: HashMap<&str, u32> = HashMap::new();
    for line in &quarantine {
        *quarantined.entry(line.raw.as_str()).or_default() += 1;
    }
    let superseded: HashSet<(String, String)> = pipeline
        .superseded()
        .await
        .unwrap()
        .into_iter()
        .map(|version| (version.uri, version.etag.unwrap_or_default()))
        .collect();

    let (mut expected_rows, mut superseded_versions) = (0, 0);
    for (index, versions) in &written {
        let last = &versions.last().unwrap().0;
        assert!(!superseded.contains(&(uri(*index), last.clone())), "the current version of {} was read", uri(*index));
        // One content may be several versions (a multipart re-upload of the same bytes).
        let mut contents: Vec<(&Version, Vec<&String>)> = Vec::new();
        for (etag, content) in versions {
            match contents.iter_mut().find(|(seen, _)| seen.body == content.body) {
                Some((_, etags)) => etags.push(etag),
                None => contents.push((content, vec![etag])),
            }
        }
        for (content, etags) in contents {
            let landed: Vec<u32> = content.ids.iter().map(|id| rows.get(id).copied().unwrap_or(0)).collect();
            if landed.iter().any(|count| *count > 0) {
                assert!(landed.iter().all(|count| *count == 1), "{}: rows of a version read {landed:?}", uri(*index));
                for raw in &content.bad {
                    assert_eq!(quarantined.get(raw.as_str()), Some(&1), "{}: bad line quarantined once", uri(*index));
                }
                expected_rows += content.ids.len();
            } else {
                for etag in etags {
                    assert!(
                        superseded.contains(&(uri(*index), etag.clone())),
                        "{} (ETag {etag}) was neither read nor recorded as superseded",
                        uri(*index)
                    );
                    superseded_versions += 1;
                }
                // A version read once and then found gone on a redelivery may have left its
                // quarantine record; never two.
                assert!(content.bad.iter().all(|raw| quarantined.get(raw.as_str()).copied().unwrap_or(0) <= 1));
            }
        }
    }
    assert_eq!(table.num_rows as usize, expected_rows, "no row that was not written");
    assert!(superseded_versions > 0, "overwritten before being read: recorded as superseded");
    assert!(quarantine.iter().all(|line| quarantined[line.raw.as_str()] == 1), "no quarantined line twice");
    eprintln!(
        "crash test: {expected_rows} rows, {} quarantined lines, {superseded_versions} superseded versions, {} s",
        quarantine.len(),
        started.elapsed().as_secs()
    );
}
