//! Every line of 1,000 objects ends up exactly once in the table or in the quarantine, while
//! notifications are duplicated, batches are redelivered, compactors crash before and after
//! committing, and two compactors race.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use aws_lambda_events::event::sqs::SqsMessage;
use deltalake::DeltaTable;
use futures::TryStreamExt;
use inlet::commit::open_or_create;
use inlet::commit::{Compactor, CompactorOptions};
use inlet::config::Maintenance;
use inlet::ingest::Quarantine;
use inlet::ingest::{Converter, ConverterOptions};
use inlet::stage::FragmentStore;
use inlet::stage::table_store;
use inlet::testing::events::{S3Notification, sqs_batch};
use inlet::testing::sources::MemorySource;
use inlet::testing::{sample, schemas};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

const OBJECTS: usize = 1000;

fn message(id: String, key: &str) -> SqsMessage {
    S3Notification::created("raw", key).etag("v1").message(id)
}

fn event_ids_in(dir: &std::path::Path, table: &DeltaTable) -> Vec<String> {
    let mut ids = Vec::new();
    for uri in table.get_file_uris().unwrap() {
        let path = uri.strip_prefix("file://").map(str::to_string).unwrap_or(uri);
        let path = if path.starts_with('/') { path.into() } else { dir.join(path) };
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap().build().unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            ids.extend(batch.column_by_name("event_id").unwrap().as_string::<i32>().iter().flatten().map(String::from));
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_objects_land_exactly_once_through_redeliveries_and_crashes() {
    let schema = schemas::events();
    let source = Arc::new(MemorySource::default());
    let mut good_ids = HashSet::new();
    let mut bad_lines = 0;
    let mut keys = Vec::new();
    for index in 0..OBJECTS {
        let mut ndjson = sample::ndjson_object(99, index as u64, 3000);
        for line in ndjson.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let value: serde_json::Value = serde_json::from_slice(line).unwrap();
            good_ids.insert(value["event_id"].as_str().unwrap().to_string());
        }
        if index % 50 == 7 {
            ndjson.extend_from_slice(b"{\"event_id\": \"half a line\n");
            bad_lines += 1;
        }
        let key = format!("svc/date=2026-05-16/{index:04}.json.zst");
        source.put("raw", &key, sample::zstd_compress(&ndjson));
        keys.push(key);
    }

    let lake = tempfile::tempdir().unwrap();
    let url = url::Url::from_directory_path(lake.path()).unwrap();
    let store: Arc<dyn ObjectStore> = table_store(&url, &HashMap::new()).unwrap();
    let fragments = FragmentStore::new(store.clone());
    let converter = Converter::new(
        source,
        fragments.clone(),
        Quarantine::new(store.clone()),
        schema.clone(),
        ConverterOptions { concurrency: 4, ..ConverterOptions::default() },
    );
    let properties = Maintenance { checkpoint_interval: 10, log_retention_days: 30 }.into();
    let options = CompactorOptions { min_bytes: 0, ..CompactorOptions::default() };
    let compactor = || Compactor::new(store.clone(), schema.clone(), options);
    let no_options = HashMap::new();
    let open = || open_or_create(&url, &no_options, &schema, &properties);
    let mut table = open().await.unwrap();

    let (mut redelivered, mut crashes_after_commit, mut races) = (0, 0, 0);
    for (round, chunk) in keys.chunks(10).enumerate() {
        let mut event = sqs_batch(chunk.iter().enumerate().map(|(i, key)| message(format!("{round}-{i}"), key)));
        // S3 sometimes notifies twice: the object reappears in the next batch.
        if round % 7 == 3 {
            let next = &keys[(round * 10 + 10) % OBJECTS];
            event.records.push(message(format!("{round}-dup"), next));
        }
        let report = converter.convert(&event).await.unwrap();
        assert!(report.failed_messages.is_empty(), "{:?}", report.failed_messages);
        // The Lambda timed out after staging: SQS redelivers the whole batch.
        if round % 5 == 1 {
            converter.convert(&event).await.unwrap();
            redelivered += 1;
        }
        if round % 10 != 9 {
            continue;
        }
        match (round / 10) % 3 {
            // The compactor crashes after its commit, before deleting what it consumed.
            0 => {
                let mut saved = Vec::new();
                // The staged fragments and their batches' seals, which a run deletes last.
                let seals = store.list(Some(&Path::from("_inlet/batches"))).map_ok(|meta| meta.location);
                let seals: Vec<Path> = seals.try_collect().await.unwrap();
                for path in seals {
                    saved.push((path.clone(), store.get(&path).await.unwrap().bytes().await.unwrap()));
                }
                for meta in fragments.list().await.unwrap() {
                    saved
                        .push((meta.location.clone(), store.get(&meta.location).await.unwrap().bytes().await.unwrap()));
                }
                compactor().run(&mut table, false).await.unwrap();
                for (path, bytes) in saved {
                    store.put(&path, PutPayload::from(bytes)).await.unwrap();
                }
                crashes_after_commit += 1;
            }
            // Two compactors race; at most one may win each commit.
            1 => {
                let mut other = open().await.unwrap();
                let (one, two) = (compactor(), compactor());
                let (a, b) = tokio::join!(one.run(&mut table, false), two.run(&mut other, false));
                for result in [a, b] {
                    if let Err(err) = result {
                        assert!(format!("{err:?}").contains("ConcurrentTransaction"), "{err:?}");
                    }
                }
                races += 1;
            }
            // An ordinary run.
            _ => {
                compactor().run(&mut table, false).await.unwrap();
            }
        }
    }
    // Drain: whatever is still staged (including crash leftovers) is compacted.
    let mut table = open().await.unwrap();
    compactor().run(&mut table, true).await.unwrap();
    assert!(fragments.list().await.unwrap().is_empty());

    let rows = event_ids_in(lake.path(), &table);
    let distinct: HashSet<&str> = rows.iter().map(String::as_str).collect();
    assert_eq!(distinct.len(), rows.len(), "no row twice");
    assert_eq!(rows.len(), good_ids.len(), "count in = count out");
    assert!(good_ids.iter().all(|id| distinct.contains(id.as_str())), "every good line is a row");
    let quarantined = Quarantine::new(store.clone()).lines().await.unwrap();
    assert_eq!(quarantined.len(), bad_lines, "the quarantine explains every line that is not a row");
    assert!(redelivered > 0 && crashes_after_commit > 0 && races > 0);
    println!(
        "exactly once: {OBJECTS} objects, {} rows, {} quarantined, {redelivered} redelivered batches, \
         {crashes_after_commit} crashes after commit, {races} races, table version {:?}",
        rows.len(),
        quarantined.len(),
        table.version()
    );
}
