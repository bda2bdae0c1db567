//! The compactor against a local table: exactly once through crashes, races and redeliveries.

use std::collections::HashMap as Map;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::*;
use crate::commit::table::{DataFiles, log_cleanup_due};
use crate::commit::{OptimizeOptions, open_or_create, optimize, vacuum};
use crate::config::Maintenance;
use crate::ingest::decode::JsonDecoder;
use crate::layout::partition_directory;
use crate::lineage::FragmentSource;
use crate::lineage::SourceObject;
use crate::partition::{KeyValue, KeyValues};
use crate::schema::{Layout, TableSchema};
use crate::stage::fragment::{self, FragmentWriter};
use crate::stage::table_store;

/// Small files, and no waiting for partitions to grow.
fn test_options() -> CompactorOptions {
    CompactorOptions { target_file_bytes: 1 << 20, min_bytes: 0, ..CompactorOptions::default() }
}

struct Lake {
    dir: tempfile::TempDir,
    url: url::Url,
    schema: Arc<TableSchema>,
    store: Arc<dyn ObjectStore>,
    fragments: FragmentStore,
}

fn lake(layout: Layout) -> Lake {
    let dir = tempfile::tempdir().unwrap();
    let url = url::Url::from_directory_path(dir.path()).unwrap();
    let schema = crate::testing::schemas::ID.parse_with(layout);
    let store = table_store(&url, &Map::new()).unwrap();
    Lake { fragments: FragmentStore::new(store.clone()), dir, url, schema, store }
}

/// The test schema with a required column added: one no table that has rows can take.
fn with_required_code() -> Arc<TableSchema> {
    let text = r#"{"fields":[{"name":"id","type":"long"},{"name":"code","type":"string","nullable":false}]}"#;
    Arc::new(TableSchema::parse(text, "v3").unwrap())
}

/// The test schema with a nullable column added.
fn with_country() -> Arc<TableSchema> {
    let text = r#"{"fields":[{"name":"id","type":"long"},{"name":"country","type":"string"}]}"#;
    Arc::new(TableSchema::parse(text, "v2").unwrap())
}

impl Lake {
    /// Stages the `rows` lines `data` of object `key`, decoded with `schema`, as one fragment.
    async fn stage_with(&self, schema: &Arc<TableSchema>, key: &str, data: &[u8], rows: u64) {
        let object =
            SourceObject { bucket: "raw".into(), key: key.into(), etag: Some("e".into()), ..Default::default() };
        let batches = JsonDecoder::new(schema.clone(), 64).decode(&object, data).unwrap().batches;
        let source = FragmentSource::new(&object, rows, None);
        self.fragments.put(fragment::encode(&schema.table, &batches, &[source]).unwrap(), "").await.unwrap();
    }

    async fn table(&self) -> DeltaTable {
        self.table_of(&self.schema).await
    }

    /// The table, created with `schema` if there is none yet.
    async fn table_of(&self, schema: &TableSchema) -> DeltaTable {
        open_or_create(
            &self.url,
            &Map::new(),
            schema,
            &Maintenance { checkpoint_interval: 4, log_retention_days: 30 }.into(),
        )
        .await
        .unwrap()
    }

    /// Stages the rows `ids` of object `key` as converter batch `batch` would.
    async fn stage(&self, batch: &str, key: &str, ids: std::ops::Range<i64>) -> Path {
        self.stage_part(batch, key, ids.clone(), ids.count() as u64).await
    }

    async fn stage_part(&self, batch: &str, key: &str, ids: std::ops::Range<i64>, total: u64) -> Path {
        let path = self.stage_unsealed(batch, key, ids, total).await;
        self.fragments.seal(batch, 1).await.unwrap();
        path
    }

    /// Stages rows `ids` of object `key` (`total` rows in all) as a converter from before
    /// batches were sealed did: a fragment that needs no seal.
    async fn stage_legacy_part(&self, key: &str, ids: std::ops::Range<i64>, total: u64) {
        let object =
            SourceObject { bucket: "raw".into(), key: key.into(), etag: Some("e1".into()), ..Default::default() };
        let data: String = ids.clone().map(|i| format!("{{\"id\":{i}}}\n")).collect();
        let batches = JsonDecoder::new(self.schema.clone(), 64).decode(&object, data.as_bytes()).unwrap().batches;
        let source = FragmentSource::new(&object, ids.count() as u64, Some(total));
        self.fragments.put(fragment::encode(&self.schema.table, &batches, &[source]).unwrap(), "").await.unwrap();
    }

    /// The records of rows deleted uncommitted, as JSON text.
    async fn dropped_records(&self) -> Vec<String> {
        use futures::TryStreamExt;
        let prefix = Path::from(crate::layout::DROPPED_PREFIX);
        let listed: Vec<object_store::ObjectMeta> = self.store.list(Some(&prefix)).try_collect().await.unwrap();
        let mut records = Vec::new();
        for meta in listed {
            let bytes = self.store.get(&meta.location).await.unwrap().bytes().await.unwrap();
            records.push(String::from_utf8(bytes.to_vec()).unwrap());
        }
        records
    }

    /// Stages rows `ids` of object `key` (`total` rows in all) as a converter still running
    /// would: in its batch, which it has not sealed yet.
    async fn stage_unsealed(&self, batch: &str, key: &str, ids: std::ops::Range<i64>, total: u64) -> Path {
        let object =
            SourceObject { bucket: "raw".into(), key: key.into(), etag: Some("e1".into()), ..Default::default() };
        let data: String = ids.clone().map(|i| format!("{{\"id\":{i}}}\n")).collect();
        let batches = JsonDecoder::new(self.schema.clone(), 64).decode(&object, data.as_bytes()).unwrap().batches;
        let mut writer = FragmentWriter::new(&self.schema.table).unwrap();
        writer.write(FragmentSource::new(&object, ids.count() as u64, Some(total)), &batches).unwrap();
        self.fragments.put(writer.finish(batch).unwrap(), "").await.unwrap()
    }

    /// Stages and seals rows `ids` of one version of `key`, read by a converter that records
    /// digests (`digest`) or by one from before them (`None`).
    async fn stage_version(&self, batch: &str, key: &str, etag: &str, digest: Option<&str>, ids: std::ops::Range<i64>) {
        let object = SourceObject {
            bucket: "raw".into(),
            key: key.into(),
            etag: Some(etag.into()),
            digest: digest.map(Into::into),
            ..Default::default()
        };
        let data: String = ids.clone().map(|i| format!("{{\"id\":{i}}}\n")).collect();
        let batches = JsonDecoder::new(self.schema.clone(), 64).decode(&object, data.as_bytes()).unwrap().batches;
        let mut writer = FragmentWriter::new(&self.schema.table).unwrap();
        let rows = ids.count() as u64;
        writer.write(FragmentSource::new(&object, rows, Some(rows)), &batches).unwrap();
        self.fragments.put(writer.finish(batch).unwrap(), "").await.unwrap();
        self.fragments.seal(batch, 1).await.unwrap();
    }

    /// Stages object `key` of a `date=key` partitioned table.
    async fn stage_keyed(&self, key: &str, ids: std::ops::Range<i64>) {
        let object =
            SourceObject { bucket: "raw".into(), key: key.into(), etag: Some("e".into()), ..Default::default() };
        let spec = self.schema.layout.partition.clone().unwrap();
        let keys = spec.key_values(key).unwrap();
        let batches = self.partition_rows(&object, ids.clone(), &keys);
        let source = FragmentSource::new(&object, ids.count() as u64, None);
        let bytes = fragment::encode(&self.schema.table, &batches, &[source]).unwrap();
        let Some(KeyValue::Text(value)) = &keys[0] else { panic!("a date=key table") };
        self.fragments.put(bytes, &partition_directory("date", Some(value))).await.unwrap();
    }

    /// Stages the rows `ids` of object `key`, `total` rows in all, in partition `date` of a
    /// partitioned table, as converter batch `batch` would.
    async fn stage_part_on(&self, batch: &str, key: &str, ids: std::ops::Range<i64>, total: u64, date: &str) {
        let object =
            SourceObject { bucket: "raw".into(), key: key.into(), etag: Some("e1".into()), ..Default::default() };
        let batches = self.partition_rows(&object, ids.clone(), &vec![Some(KeyValue::Text(date.into()))]);
        let mut writer = FragmentWriter::new(&self.schema.table).unwrap();
        writer.write(FragmentSource::new(&object, ids.count() as u64, Some(total)), &batches).unwrap();
        self.fragments.put(writer.finish(batch).unwrap(), &partition_directory("date", Some(date))).await.unwrap();
        self.fragments.seal(batch, 1).await.unwrap();
    }

    /// Rows `ids` of `object` with their partition column set from `keys`.
    fn partition_rows(&self, object: &SourceObject, ids: std::ops::Range<i64>, keys: &KeyValues) -> Vec<RecordBatch> {
        let data: String = ids.map(|i| format!("{{\"id\":{i}}}\n")).collect();
        let spec = self.schema.layout.partition.clone().unwrap();
        let decoded = JsonDecoder::new(self.schema.clone(), 64).decode(object, data.as_bytes()).unwrap();
        decoded.batches.into_iter().flat_map(|b| spec.split(b, keys).unwrap()).map(|(_, b)| b).collect()
    }

    /// Every batch of the table's data files.
    fn batches(&self, table: &DeltaTable) -> Vec<RecordBatch> {
        let mut batches = Vec::new();
        for uri in table.get_file_uris().unwrap() {
            let path = uri.strip_prefix("file://").map(str::to_string).unwrap_or(uri);
            let path = if path.starts_with('/') { path.into() } else { self.dir.path().join(path) };
            let reader =
                ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap().build().unwrap();
            batches.extend(reader.map(Result::unwrap));
        }
        batches
    }

    /// Each row's id and `_source_digest`, by id.
    fn digests(&self, table: &DeltaTable) -> Vec<(i64, Option<String>)> {
        let mut rows = Vec::new();
        for batch in self.batches(table) {
            let ids = batch.column_by_name("id").unwrap().as_primitive::<arrow_array::types::Int64Type>();
            let digests = batch.column_by_name(crate::schema::SOURCE_DIGEST_COLUMN).unwrap().as_string::<i32>();
            rows.extend(ids.iter().zip(digests.iter()).map(|(id, digest)| (id.unwrap(), digest.map(str::to_string))));
        }
        rows.sort();
        rows
    }

    fn rows(&self, table: &DeltaTable) -> Vec<i64> {
        let mut ids = Vec::new();
        for batch in self.batches(table) {
            let values = batch.column_by_name("id").unwrap().as_primitive::<arrow_array::types::Int64Type>();
            ids.extend(values.iter().flatten());
        }
        ids.sort();
        ids
    }

    /// The values of string column `column` in the table, sorted (null for files without it).
    fn strings(&self, table: &DeltaTable, column: &str) -> Vec<Option<String>> {
        let mut values = Vec::new();
        for uri in table.get_file_uris().unwrap() {
            let path = uri.strip_prefix("file://").map(str::to_string).unwrap_or(uri);
            let path = if path.starts_with('/') { path.into() } else { self.dir.path().join(path) };
            for batch in
                ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap().build().unwrap()
            {
                let batch = batch.unwrap();
                match batch.column_by_name(column) {
                    Some(c) => values.extend(c.as_string::<i32>().iter().map(|v| v.map(str::to_string))),
                    None => values.extend(std::iter::repeat_n(None, batch.num_rows())),
                }
            }
        }
        values.sort();
        values
    }

    /// Objects o0..o5 (ids 0..60, ten each), one commit and one data file each: versions 1 to 6.
    async fn commit_six_objects(&self, table: &mut DeltaTable) {
        for i in 0..6 {
            self.stage("b1", &format!("o{i}.json"), i * 10..i * 10 + 10).await;
            self.compactor().run(table, false).await.unwrap();
        }
    }

    /// Deletes the load history index (everything derived under `_inlet/history/`), and the
    /// commits before the checkpoint of version 3, as log cleanup would.
    fn lose_the_index_and_the_early_log(&self) {
        std::fs::remove_dir_all(self.dir.path().join("_inlet/history")).unwrap();
        self.lose_the_early_log();
    }

    /// The same, once the early log is already gone.
    fn lose_the_index_and_the_early_log_again(&self) {
        std::fs::remove_dir_all(self.dir.path().join("_inlet/history")).unwrap();
    }

    /// Deletes the commits before the checkpoint of version 3, as log cleanup would.
    fn lose_the_early_log(&self) {
        let log = self.dir.path().join("_delta_log");
        assert!(log.join("00000000000000000003.checkpoint.parquet").exists());
        for version in 0..3 {
            std::fs::remove_file(log.join(format!("{version:020}.json"))).unwrap();
        }
    }

    /// The data file commit `version` added (the first, when it added several).
    fn added_by(&self, version: u64) -> String {
        let commit = std::fs::read_to_string(self.dir.path().join(format!("_delta_log/{version:020}.json"))).unwrap();
        let add = commit
            .lines()
            .find_map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap().get("add").cloned());
        add.unwrap()["path"].as_str().unwrap().to_string()
    }

    /// Commits what another writer's `DELETE` of every row of `file` commits: its removal.
    fn delete_file_as_another_writer(&self, table: &DeltaTable, file: &str) {
        let version = table.version().unwrap() + 1;
        let now = chrono::Utc::now().timestamp_millis();
        let commit = [
            serde_json::json!({"commitInfo": {"timestamp": now, "operation": "DELETE", "engineInfo": "another-writer"}}),
            serde_json::json!({"remove": {"path": file, "deletionTimestamp": now, "dataChange": true}}),
        ];
        let text: String = commit.iter().map(|action| format!("{action}\n")).collect();
        std::fs::write(self.dir.path().join(format!("_delta_log/{version:020}.json")), text).unwrap();
    }

    fn compactor(&self) -> Compactor {
        self.compactor_for(self.schema.clone())
    }

    fn compactor_for(&self, schema: Arc<TableSchema>) -> Compactor {
        Compactor::new(self.store.clone(), schema, test_options())
    }
}

#[tokio::test]
async fn merged_files_are_cut_near_the_target_size() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    for i in 0..60 {
        lake.stage("b1", &format!("o{i}.json"), i * 2000..i * 2000 + 2000).await;
    }
    let target = 32 * 1024;
    let options = CompactorOptions { target_file_bytes: target, ..test_options() };
    let report = Compactor::new(lake.store.clone(), lake.schema.clone(), options).run(&mut table, false).await.unwrap();
    let mut sizes: Vec<u64> = table.snapshot().unwrap().log_data().iter().map(|f| f.size() as u64).collect();
    sizes.sort();
    assert!(sizes.len() >= 3, "120,000 rows at a {target}-byte target make several files: {sizes:?}");
    assert_eq!((report.files, report.rows), (sizes.len(), 120_000));
    // Every file but the last one written is cut near the target.
    for size in &sizes[1..] {
        assert!((target / 2..=target * 2).contains(size), "{size} bytes, target {target}: {sizes:?}");
    }
    assert_eq!(lake.rows(&table), (0..120_000).collect::<Vec<_>>());
}

#[tokio::test]
async fn fragments_become_one_commit_and_are_deleted() {
    let lake = lake(Layout::default());
    lake.stage("b1", "a.json", 0..100).await;
    lake.stage("b1", "b.json", 100..250).await;
    let mut table = lake.table().await;
    assert_eq!(table.version(), Some(0), "created with the declared schema");
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.fragments, report.sources, report.rows, report.version), (2, 2, 250, Some(1)));
    assert_eq!(report.files, 1, "small fragments merge into one file");
    assert!(lake.fragments.list().await.unwrap().is_empty(), "consumed fragments are deleted");
    assert_eq!(lake.rows(&table), (0..250).collect::<Vec<_>>());

    // Nothing staged: nothing committed.
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.fragments, report.rows, report.version), (0, 0, None));
    assert_eq!(table.version(), Some(1));
}

#[tokio::test]
async fn redelivered_source_is_not_committed_twice() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    lake.stage("b1", "a.json", 0..10).await;
    lake.compactor().run(&mut table, false).await.unwrap();
    // SQS redelivers the notification; a new converter batch stages the object again.
    lake.stage("b2", "a.json", 0..10).await;
    lake.stage("b2", "b.json", 10..12).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows, report.sources), (2, 10, 1));
    assert_eq!(lake.rows(&table), (0..12).collect::<Vec<_>>());
}

#[tokio::test]
async fn crash_after_commit_before_delete_leaves_fragments_the_next_run_drops() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    let path = lake.stage("b1", "a.json", 0..10).await;
    let bytes = lake.store.get(&path).await.unwrap().bytes().await.unwrap();
    let seal = crate::layout::batch_record("b1");
    let sealed = lake.store.get(&seal).await.unwrap().bytes().await.unwrap();
    lake.compactor().run(&mut table, false).await.unwrap();
    // The crash: the commit landed but the fragment (and so its batch's seal) was never deleted.
    lake.store.put(&path, PutPayload::from(bytes)).await.unwrap();
    lake.store.put(&seal, PutPayload::from(sealed)).await.unwrap();
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows, report.version), (0, 10, None));
    assert!(lake.fragments.list().await.unwrap().is_empty());
    assert_eq!(lake.rows(&table), (0..10).collect::<Vec<_>>());
}

#[tokio::test]
async fn crash_before_commit_leaves_the_table_unchanged_and_the_rerun_commits_once() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    lake.stage("b1", "a.json", 0..10).await;
    // The crash: files written, no commit (what a process killed mid-run leaves).
    let mut writer = DataFiles::new(&table, lake.schema.table.clone(), 1 << 30).unwrap();
    let fragment = lake.fragments.read(&lake.fragments.list().await.unwrap()[0].location).await.unwrap();
    for batch in fragment.batches {
        writer.write(&batch).await.unwrap();
    }
    let orphans = writer.close().await.unwrap();
    assert!(!orphans.is_empty());
    assert_eq!(lake.rows(&lake.table().await), Vec::<i64>::new(), "uncommitted files are invisible");
    lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!(lake.rows(&table), (0..10).collect::<Vec<_>>());
}

#[tokio::test]
async fn the_same_source_staged_by_two_batches_is_committed_once() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    lake.stage("b1", "a.json", 0..10).await;
    lake.stage("b2", "a.json", 0..10).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows, report.fragments), (10, 10, 2));
    assert_eq!(lake.rows(&table), (0..10).collect::<Vec<_>>());
}

#[tokio::test]
async fn incomplete_copies_wait_for_a_complete_one_or_until_abandoned() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    // A converter died after staging 4 of an object's 10 rows (one of two partitions).
    lake.stage_part("b1", "a.json", 0..4, 10).await;
    lake.stage("b1", "b.json", 100..102).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.fragments, report.deferred_fragments, report.rows), (1, 1, 2));
    // SQS retries the batch: the complete copy arrives, in two fragments.
    lake.stage_part("b2", "a.json", 0..4, 10).await;
    lake.stage_part("b2", "a.json", 4..10, 10).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows, report.deferred_fragments), (10, 4, 0));
    assert_eq!(lake.rows(&table), (0..10).chain(100..102).collect::<Vec<_>>());

    // An incomplete copy whose converter died (no retry coming) is cleared once abandoned:
    // written before batches were sealed, as only such a copy can be (a sealed batch's
    // converter finished; see the next test).
    lake.stage_legacy_part("c.json", 200..203, 6).await;
    assert_eq!(lake.compactor().run(&mut table, true).await.unwrap().deferred_fragments, 1, "force alone does not");
    let options = CompactorOptions { abandon_after: Duration::ZERO, ..test_options() };
    let report = Compactor::new(lake.store.clone(), lake.schema.clone(), options).run(&mut table, false).await.unwrap();
    // Not a duplicate: the table never had c.json. Its rows are recorded as dropped, by source.
    assert_eq!((report.fragments, report.rows, report.dropped_rows), (1, 0, 3));
    assert_eq!(report.duplicate_rows, 0);
    assert!(lake.fragments.list().await.unwrap().is_empty());
    let records = lake.dropped_records().await;
    assert_eq!(records.len(), 1);
    assert!(records[0].contains("s3://raw/c.json") && records[0].contains("\"rows\":3"), "{records:?}");
}

#[tokio::test]
async fn a_sealed_copy_that_lost_a_fragment_is_held_and_named_never_deleted() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    // A sealed batch staged a.json in two fragments (its rows on two dates, say); one of them
    // is then damaged and set aside. Its messages were answered long ago.
    lake.stage_part("b1", "a.json", 0..4, 10).await;
    let damaged = lake.stage_part("b1", "a.json", 4..10, 10).await;
    lake.store.put(&damaged, PutPayload::from_static(b"not parquet")).await.unwrap();
    lake.stage("b2", "b.json", 100..102).await;
    let options = CompactorOptions { abandon_after: Duration::ZERO, ..test_options() };
    let compactor = Compactor::new(lake.store.clone(), lake.schema.clone(), options);
    let report = compactor.run(&mut table, true).await.unwrap();
    assert_eq!((report.corrupt_fragments, report.rows, report.deferred_fragments), (1, 2, 1));
    assert_eq!(report.stranded, vec!["s3://raw/a.json (ETag e1)"]);
    assert_eq!((report.duplicate_rows, report.dropped_rows), (0, 0), "nothing deleted");
    assert!(report.metrics().iter().any(|m| m.name == "StrandedSources" && m.value == 1.0));
    // However long it waits.
    assert_eq!(compactor.run(&mut table, true).await.unwrap().stranded.len(), 1);
    assert_eq!(lake.fragments.list().await.unwrap().len(), 1, "the intact fragment is kept");
    // `inlet backfill` stages the source again: the complete copy commits, the held one goes
    // as the duplicate it now is.
    lake.stage_part("b3", "a.json", 0..10, 10).await;
    let report = compactor.run(&mut table, true).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows, report.dropped_rows), (10, 4, 0));
    assert!(report.stranded.is_empty());
    assert_eq!(lake.rows(&table), (0..10).chain(100..102).collect::<Vec<_>>());
    assert!(lake.dropped_records().await.is_empty());
}

#[tokio::test]
async fn two_compactors_racing_commit_each_row_once() {
    let lake = lake(Layout::default());
    lake.table().await;
    for i in 0..6 {
        lake.stage("b1", &format!("o{i}.json"), i * 10..i * 10 + 10).await;
    }
    let (mut first, mut second) = (lake.table().await, lake.table().await);
    let (one, two) = (lake.compactor(), lake.compactor());
    let (a, b) = tokio::join!(one.run(&mut first, false), two.run(&mut second, false));
    assert!(a.is_ok() || b.is_ok(), "one of them commits: {a:?} {b:?}");
    for loser in [&a, &b].into_iter().filter_map(|result| result.as_ref().err()) {
        assert!(format!("{loser:?}").contains("ConcurrentTransaction"), "the loser conflicts: {loser:?}");
    }
    // Whatever the interleaving, a third run finds nothing new to add.
    let mut table = lake.table().await;
    lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!(lake.rows(&table), (0..60).collect::<Vec<_>>());
}

#[tokio::test]
async fn the_load_history_survives_checkpoints_and_log_cleanup() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    let options = test_options();
    let compactor = Compactor::new(lake.store.clone(), lake.schema.clone(), options);
    for i in 0..10 {
        lake.stage("b1", &format!("o{i}.json"), i..i + 1).await;
        compactor.run(&mut table, false).await.unwrap();
    }
    let log = lake.dir.path().join("_delta_log");
    assert!(log.join("00000000000000000007.checkpoint.parquet").exists(), "a checkpoint every 4 commits");
    // Log cleanup removes the commits a checkpoint covers.
    for version in 0..=7 {
        std::fs::remove_file(log.join(format!("{version:020}.json"))).unwrap();
    }
    let mut table = lake.table().await;
    assert_eq!(table.version(), Some(10));
    lake.stage("b2", "o3.json", 3..4).await;
    lake.stage("b2", "o10.json", 10..11).await;
    let report = compactor.run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows), (1, 1), "o3 is remembered, o10 is new");
    assert_eq!(lake.rows(&table), (0..11).collect::<Vec<_>>());
}

#[tokio::test]
async fn with_the_index_and_the_early_log_gone_the_history_is_rebuilt_from_lineage() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    lake.commit_six_objects(&mut table).await;
    // Everything derived is lost, and log cleanup took the first commits.
    lake.lose_the_index_and_the_early_log();
    let mut table = lake.table().await;
    // A backfill of an old object and a new one: the old one is known from the table's rows.
    lake.stage("b2", "o1.json", 10..20).await;
    lake.stage("b2", "o9.json", 90..95).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows), (5, 10));
    assert_eq!(lake.rows(&table), (0..60).chain(90..95).collect::<Vec<_>>());
    // The rebuilt index answers the next run without reading the table again.
    lake.stage("b3", "o2.json", 20..30).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows), (0, 10));
}

#[tokio::test]
async fn after_a_rebuild_identical_re_uploads_are_known_by_their_content() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    for i in 0..6 {
        let digest = format!("xxh3-128:{i:032x}");
        lake.stage_version(&format!("b{i}"), &format!("o{i}.json"), "e1", Some(&digest), i * 10..i * 10 + 10).await;
        lake.compactor().run(&mut table, false).await.unwrap();
    }
    // An identical re-upload before anything is lost: a duplicate, its ETag never committed.
    let five = format!("xxh3-128:{:032x}", 5);
    lake.stage_version("r0", "o5.json", "e2", Some(&five), 50..60).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows), (0, 10));
    // Everything derived is lost, and log cleanup took the first commits.
    lake.lose_the_index_and_the_early_log();
    let mut table = lake.table().await;
    // A backfill of the prefix reads the re-uploaded version: known by its content.
    lake.stage_version("r3", "o5.json", "e2", Some(&five), 50..60).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows), (0, 10), "the backfilled re-upload is a duplicate");
    // Identical multipart re-uploads of two old objects: new ETags, the same bytes.
    lake.stage_version("r1", "o1.json", "e2-2", Some(&format!("xxh3-128:{:032x}", 1)), 10..20).await;
    lake.stage_version("r1", "o4.json", "e2-2", Some(&format!("xxh3-128:{:032x}", 4)), 40..50).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows), (0, 20), "the rebuilt index knows their content");
    // A changed object under an old key is new.
    lake.stage_version("r2", "o2.json", "e3", Some(&format!("xxh3-128:{:032x}", 99)), 100..105).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows), (5, 0));
    assert_eq!(lake.rows(&table), (0..60).chain(100..105).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_rebuild_out_of_time_holds_fragments_back_and_the_next_runs_continue_it() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    lake.commit_six_objects(&mut table).await;
    let version = table.version();
    lake.lose_the_index_and_the_early_log();
    let mut table = lake.table().await;
    lake.stage("b2", "o1.json", 10..20).await;
    lake.stage("b2", "o9.json", 90..95).await;
    // No time at all: each run reads one file, saves and stops.
    let options = CompactorOptions { history_rebuild_seconds: 0, history_rebuild_save_files: 1, ..test_options() };
    let compactor = Compactor::new(lake.store.clone(), lake.schema.clone(), options);
    let mut reads = Vec::new();
    let report = loop {
        let report = compactor.run(&mut table, false).await.unwrap();
        let Some(progress) = report.history_rebuild else { break report };
        assert_eq!((report.rows, report.version, report.deferred_fragments), (0, None, 2), "{report:?}");
        assert_eq!(table.version(), version, "nothing is committed without the history");
        assert_eq!(progress.files, 6);
        assert!(report.metrics().iter().any(|m| m.name == "HistoryRebuildFilesLeft" && m.value > 0.0));
        reads.push(progress.read);
    };
    assert_eq!(reads, [1, 2, 3, 4, 5], "each run continued where the last saved");
    assert_eq!((report.rows, report.duplicate_rows), (5, 10), "the rebuilt index answers as the lost one");
    assert_eq!(lake.rows(&table), (0..60).chain(90..95).collect::<Vec<_>>());
    let rebuild = lake.dir.path().join("_inlet/history/rebuild");
    assert_eq!(std::fs::read_dir(&rebuild).map_or(0, |dir| dir.count()), 0, "the rebuild's state is gone");
}

#[tokio::test]
async fn a_rebuild_whose_next_file_was_vacuumed_starts_again_and_completes() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    lake.commit_six_objects(&mut table).await;
    lake.lose_the_index_and_the_early_log();
    let mut table = lake.table().await;
    lake.stage("b2", "o9.json", 90..95).await;
    let slow = CompactorOptions { history_rebuild_seconds: 0, history_rebuild_save_files: 1, ..test_options() };
    let compactor = Compactor::new(lake.store.clone(), lake.schema.clone(), slow);
    let started = compactor.run(&mut table, false).await.unwrap().history_rebuild.unwrap();
    assert_eq!((started.read, started.files), (1, 6));
    // The next file on its list is removed by another writer and vacuumed at once.
    let rebuild = lake.dir.path().join("_inlet/history/rebuild");
    let listed = std::fs::read_to_string(rebuild.join(format!("{:020}.files", started.version))).unwrap();
    let next = listed.lines().nth(1).unwrap().split('\t').next().unwrap().to_string();
    lake.delete_file_as_another_writer(&table, &next);
    std::fs::remove_file(lake.dir.path().join(&next)).unwrap();
    let restarted = compactor.run(&mut table, false).await.unwrap().history_rebuild.unwrap();
    assert_eq!((restarted.version, restarted.files), (started.version + 1, 5), "started again at the new version");
    let report = loop {
        let report = compactor.run(&mut table, false).await.unwrap();
        if report.history_rebuild.is_none() {
            break report;
        }
    };
    assert_eq!((report.rows, report.duplicate_rows), (5, 0), "{report:?}");
    assert!(!rebuild.join(format!("{:020}.files", started.version)).exists(), "the abandoned list is gone");
    // Every source whose file is still there is known; the one whose file was vacuumed before
    // any run took its removal in cannot be (logged; docs/design.md).
    for i in 0..6 {
        lake.stage("b3", &format!("o{i}.json"), i * 10..i * 10 + 10).await;
    }
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows), (10, 50), "{report:?}");
}

#[tokio::test]
async fn a_rebuild_started_at_an_older_version_takes_in_the_commits_since() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    lake.commit_six_objects(&mut table).await;
    lake.lose_the_index_and_the_early_log();
    let mut table = lake.table().await;
    lake.stage("b2", "o9.json", 90..95).await;
    let slow = CompactorOptions { history_rebuild_seconds: 0, history_rebuild_save_files: 1, ..test_options() };
    let report = Compactor::new(lake.store.clone(), lake.schema.clone(), slow).run(&mut table, false).await.unwrap();
    assert_eq!(report.history_rebuild.map(|p| p.read), Some(1));
    // Another writer deletes o5's rows meanwhile: the rebuild reads the files of the version
    // it started at, then that commit from the log.
    lake.delete_file_as_another_writer(&table, &lake.added_by(6));
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows), (5, 0), "{report:?}");
    // o5's rows were deleted by that writer, and o2 was read by the rebuild: both are known.
    lake.stage("b3", "o5.json", 50..60).await;
    lake.stage("b3", "o2.json", 20..30).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows), (0, 20), "{report:?}");
}

#[tokio::test]
async fn rows_deleted_by_another_writer_do_not_re_enter_after_a_rebuild() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    lake.commit_six_objects(&mut table).await;
    // A GDPR erasure removes o2's rows (its file), then the next compaction takes the commit in.
    let erased = lake.added_by(3);
    lake.delete_file_as_another_writer(&table, &erased);
    lake.stage("b2", "o7.json", 70..80).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows), (10, 0));
    // A redelivery while the index is whole: known.
    lake.stage("b3", "o2.json", 20..30).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows), (0, 10));
    // Vacuum purges the erased file, and the index and the early log are lost.
    std::fs::remove_file(lake.dir.path().join(&erased)).unwrap();
    lake.lose_the_index_and_the_early_log();
    let mut table = lake.table().await;
    lake.stage("b4", "o2.json", 20..30).await;
    lake.stage("b4", "o3.json", 30..40).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows), (0, 20), "the erased source stays known: {report:?}");
    assert_eq!(lake.rows(&table), (0..20).chain(30..60).chain(70..80).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_deletion_the_lost_index_never_took_in_is_kept_by_the_rebuild() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    lake.commit_six_objects(&mut table).await;
    // o4's rows are erased, and the index is lost before any compaction takes the commit in.
    let erased = lake.added_by(5);
    lake.delete_file_as_another_writer(&table, &erased);
    lake.lose_the_index_and_the_early_log();
    let mut table = lake.table().await;
    lake.stage("b2", "o9.json", 90..95).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows), (5, 0));
    // Vacuumed since: the rebuild read it from the log's removal while it was still there.
    std::fs::remove_file(lake.dir.path().join(&erased)).unwrap();
    lake.lose_the_index_and_the_early_log_again();
    let mut table = lake.table().await;
    lake.stage("b3", "o4.json", 40..50).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows), (0, 10), "the erased source stays known: {report:?}");
}

#[tokio::test]
async fn the_index_takes_in_other_writers_deletions_before_a_vacuum() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    lake.commit_six_objects(&mut table).await;
    let erased = lake.added_by(2);
    lake.delete_file_as_another_writer(&table, &erased);
    table.update_state().await.unwrap();
    // Nothing staged, so no compaction commits; maintenance catches the index up, then vacuums.
    assert!(LoadHistory::catch_up(&lake.store, table.version().unwrap()).await.unwrap());
    let report = vacuum(&mut table, Some(Duration::ZERO)).await.unwrap();
    assert_eq!(report.files_deleted, 1);
    assert!(!lake.dir.path().join(&erased).exists());
    lake.lose_the_index_and_the_early_log();
    let mut table = lake.table().await;
    lake.stage("b2", "o1.json", 10..20).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows), (0, 10), "{report:?}");
}

#[tokio::test]
async fn a_compactor_whose_snapshot_is_older_than_the_index_retries_instead_of_rebuilding() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    lake.commit_six_objects(&mut table).await;
    lake.lose_the_early_log();
    // A run that read version 1 finds no manifest that old (newer ones are kept) nor the log.
    assert_eq!(LoadHistory::lookup(&lake.store, 1, &[]).await.unwrap().map(|found| found.0.version), None);
    let budget = RebuildBudget { stop: None, save_every_files: 1 };
    let err = LoadHistory::rebuild(&lake.store, 1, Vec::new(), budget).await.unwrap_err();
    assert!(matches!(err, Error::Stale(_)), "{err}");
    assert!(err.is_retryable());
    assert!(!lake.dir.path().join("_inlet/history/rebuild").exists(), "no rebuild was started");
}

#[tokio::test]
async fn fragments_staged_before_the_digest_column_land_once_with_a_null_digest() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    let digest = format!("xxh3-128:{:032x}", 7);
    lake.stage_version("b1", "new.json", "e1", Some(&digest), 0..3).await;
    // A converter of an earlier release: the same lineage but no digest column.
    let object = SourceObject {
        bucket: "raw".into(),
        key: "old.json".into(),
        etag: Some("e1".into()),
        digest: Some(format!("xxh3-128:{:032x}", 8)),
        ..Default::default()
    };
    let data: String = (3..6).map(|i| format!("{{\"id\":{i}}}\n")).collect();
    let batches = JsonDecoder::new(lake.schema.clone(), 64).decode(&object, data.as_bytes()).unwrap().batches;
    let table_schema = &lake.schema.table;
    let kept: Vec<usize> = (0..table_schema.fields().len())
        .filter(|at| table_schema.field(*at).name() != crate::schema::SOURCE_DIGEST_COLUMN)
        .collect();
    let earlier = Arc::new(table_schema.project(&kept).unwrap());
    let batches: Vec<RecordBatch> = batches.iter().map(|batch| batch.project(&kept).unwrap()).collect();
    let mut writer = FragmentWriter::new(&earlier).unwrap();
    writer.write(FragmentSource::new(&object, 3, Some(3)), &batches).unwrap();
    lake.fragments.put(writer.finish("b2").unwrap(), "").await.unwrap();
    lake.fragments.seal("b2", 1).await.unwrap();

    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows), (6, 0));
    let rows = lake.digests(&table);
    let expected: Vec<(i64, Option<String>)> =
        (0..3).map(|id| (id, Some(digest.clone()))).chain((3..6).map(|id| (id, None))).collect();
    assert_eq!(rows, expected, "the earlier fragment's rows hold a null digest");
    // Redelivered, it is a duplicate: the commit recorded its source.
    lake.stage_version("b3", "old.json", "e1", Some(&format!("xxh3-128:{:032x}", 8)), 3..6).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows), (0, 3));
}

#[tokio::test]
async fn log_cleanup_waits_for_the_index_to_cover_what_it_would_delete() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    lake.stage("b1", "o0.json", 0..1).await;
    lake.compactor().run(&mut table, false).await.unwrap();
    lake.stage("b1", "o1.json", 1..2).await;
    lake.compactor().run(&mut table, false).await.unwrap();
    // Version 2: the next commit writes a checkpoint (every 4), so cleanup would run with it.
    assert_eq!(table.version(), Some(2));
    assert!(log_cleanup_due(&table).await.unwrap(), "the index covers version 2");
    std::fs::remove_dir_all(lake.dir.path().join("_inlet/history/manifests")).unwrap();
    assert!(!log_cleanup_due(&table).await.unwrap(), "no index: the log is all there is");
}

#[tokio::test]
async fn partitioned_tables_get_files_per_partition_and_runs_can_be_limited_to_some() {
    let lake = lake(Layout { partition: Some("date=key".parse().unwrap()), ..Layout::default() });
    let mut table = lake.table().await;
    lake.stage_keyed("web/date=2026-05-16/a.json", 0..5).await;
    lake.stage_keyed("web/date=2026-05-17/b.json", 5..8).await;
    let report =
        lake.compactor().with_partitions(["date=2026-05-17".to_string()]).run(&mut table, false).await.unwrap();
    assert_eq!((report.files, report.rows), (1, 3), "only the partition asked for");
    assert_eq!(lake.fragments.list().await.unwrap().len(), 1, "the other one stays staged");
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.files, report.rows), (1, 5));
    let mut paths: Vec<String> = table.get_file_uris().unwrap().collect();
    paths.sort();
    assert!(paths[0].contains("date=2026-05-16/") && paths[1].contains("date=2026-05-17/"), "{paths:?}");
    assert_eq!(lake.rows(&table), (0..8).collect::<Vec<_>>());
}

#[tokio::test]
async fn small_files_are_rewritten_per_partition_and_rows_stay_put() {
    let lake = lake(Layout { partition: Some("date=key".parse().unwrap()), ..Layout::default() });
    let mut table = lake.table().await;
    for i in 0..4 {
        lake.stage_keyed(&format!("web/date=2026-05-16/{i}.json"), i * 10..i * 10 + 10).await;
        lake.compactor().run(&mut table, false).await.unwrap();
    }
    lake.stage_keyed("web/date=2026-05-17/x.json", 100..103).await;
    lake.stage_keyed("web/date=2026-05-17/y.json", 103..105).await;
    lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!(table.get_file_uris().unwrap().count(), 5);

    // Below the threshold nothing happens unless asked.
    let waiting = OptimizeOptions { target_file_bytes: 1 << 20, min_small_files: 5 };
    assert_eq!(optimize(&mut table, &waiting, None, false).await.unwrap().version, None);
    // The threshold reached in one partition rewrites that partition only.
    let due = OptimizeOptions { min_small_files: 4, ..waiting };
    let report = optimize(&mut table, &due, None, false).await.unwrap();
    assert_eq!((report.partitions, report.files_removed, report.files_added), (1, 4, 1));
    assert_eq!(report.files_copied, 4, "the table files' row groups are copied, not decoded");
    let version = report.version.unwrap();
    let commit = std::fs::read_to_string(lake.dir.path().join(format!("_delta_log/{version:020}.json"))).unwrap();
    assert!(commit.contains("\"operation\":\"OPTIMIZE\""), "{commit}");
    assert!(!commit.contains("\"dataChange\":true"), "a rewrite changes no data: streaming readers skip it");
    let files: Vec<String> = table.get_file_uris().unwrap().collect();
    assert_eq!(files.len(), 2);
    assert_eq!(files.iter().filter(|f| f.contains("date=2026-05-16/")).count(), 1, "{files:?}");
    assert_eq!(lake.rows(&table), (0..40).chain(100..105).collect::<Vec<_>>());

    // The load history is untouched: a redelivered source is still dropped.
    lake.stage_keyed("web/date=2026-05-16/0.json", 0..10).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows), (0, 10));
    // A single small file per partition is left alone even when asked.
    assert_eq!(optimize(&mut table, &waiting, Some(&["date=2026-05-16".into()]), true).await.unwrap().version, None);
}

/// A table of `files` small files of ten rows each, committed one compaction at a time.
async fn small_files(lake: &Lake, files: i64) -> DeltaTable {
    let mut table = lake.table().await;
    for i in 0..files {
        lake.stage("b1", &format!("{i}.json"), i * 10..i * 10 + 10).await;
        lake.compactor().run(&mut table, false).await.unwrap();
    }
    table
}

#[tokio::test]
async fn two_optimizes_of_the_same_files_commit_one_rewrite_and_every_row_stays_once() {
    let lake = lake(Layout::default());
    small_files(&lake, 4).await;
    let options = OptimizeOptions { target_file_bytes: 1 << 20, min_small_files: 0 };
    // Both read the table before either commits (a laptop's `inlet compact` beside the Lambda).
    let (mut first, mut second) = (lake.table().await, lake.table().await);
    let won = optimize(&mut first, &options, None, true).await.unwrap();
    assert_eq!((won.files_removed, won.conflict.clone()), (4, None));
    let lost = optimize(&mut second, &options, None, true).await.unwrap();
    assert_eq!(lost.version, None, "the same files were rewritten first: {lost:?}");
    assert!(lost.conflict.is_some(), "{lost:?}");
    let table = lake.table().await;
    assert_eq!(lake.rows(&table), (0..40).collect::<Vec<_>>());
    assert_eq!(table.get_file_uris().unwrap().count(), 1);
}

#[tokio::test]
async fn a_compaction_commits_over_an_optimize_that_landed_after_it_read_the_table() {
    let lake = lake(Layout::default());
    let mut table = small_files(&lake, 3).await;
    lake.stage("b2", "late.json", 100..105).await;
    let mut stale = lake.table().await;
    let options = OptimizeOptions { target_file_bytes: 1 << 20, min_small_files: 0 };
    assert!(optimize(&mut table, &options, None, true).await.unwrap().version.is_some());
    // Planned from the version before the optimize: an optimize adds no source, so no conflict.
    let report = lake.compactor().run(&mut stale, false).await.unwrap();
    assert_eq!(report.rows, 5);
    let table = lake.table().await;
    assert_eq!(lake.rows(&table), (0..30).chain(100..105).collect::<Vec<_>>());
    // Rewriting files the compaction did not touch after it is no conflict either.
    let mut stale = lake.table().await;
    lake.stage("b3", "later.json", 200..201).await;
    lake.compactor().run(&mut lake.table().await, false).await.unwrap();
    let report = optimize(&mut stale, &options, None, true).await.unwrap();
    assert!(report.version.is_some() && report.conflict.is_none(), "{report:?}");
    assert_eq!(lake.rows(&lake.table().await), (0..30).chain(100..105).chain(200..201).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_optimize_that_leaves_the_check_to_delta_rs_commits_nothing_after_ours() {
    use deltalake::kernel::Remove;
    use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
    let lake = lake(Layout::default());
    small_files(&lake, 4).await;
    let (earlier, mut ours) = (lake.table().await, lake.table().await);
    let options = OptimizeOptions { target_file_bytes: 1 << 20, min_small_files: 0 };
    assert!(optimize(&mut ours, &options, None, true).await.unwrap().version.is_some());
    // An earlier release's optimize (or delta-rs' own) read the same files and commits its
    // rewrite of them with delta-rs' conflict check alone, which ignores data-change-free removes.
    let snapshot = earlier.snapshot().unwrap();
    let removes: Vec<Remove> = snapshot.log_data().iter().map(|file| file.remove_action(false)).collect();
    let rewrite = Add { path: "earlier-rewrite.parquet".into(), size: 1, data_change: false, ..Add::default() };
    let actions = removes.into_iter().map(Action::Remove).chain([Action::Add(rewrite)]).collect();
    let operation = DeltaOperation::Optimize { predicate: None, target_size: 1 << 20 };
    let result = CommitBuilder::from(CommitProperties::default())
        .with_actions(actions)
        .build(Some(snapshot), earlier.log_store(), operation)
        .await;
    let err = result.err().map(|err| format!("{err:?}")).unwrap_or_default();
    assert!(err.contains("MetadataChanged"), "the earlier rewrite must not commit: {err}");
    assert_eq!(lake.rows(&lake.table().await), (0..40).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_compaction_commit_lands_on_top_of_an_optimize_and_not_of_another_compaction() {
    use crate::commit::exclusive::{TableCommit, commit_exclusive};
    let lake = lake(Layout::default());
    small_files(&lake, 3).await;
    // Two compactions read the table, then an optimize commits before either.
    let (mut first, mut second) = (lake.table().await, lake.table().await);
    let options = OptimizeOptions { target_file_bytes: 1 << 20, min_small_files: 0 };
    let optimized = optimize(&mut lake.table().await, &options, None, true).await.unwrap().version.unwrap();
    let mut written = DataFiles::new(&first, lake.schema.table.clone(), 1 << 20).unwrap();
    let fragment = lake.fragments.read(&lake.stage("b2", "late.json", 90..95).await).await.unwrap();
    for batch in &fragment.batches {
        written.write(batch).await.unwrap();
    }
    let adds = written.close().await.unwrap();
    let compaction = |adds: Vec<Add>| TableCommit {
        actions: adds.into_iter().map(Action::Add).collect(),
        operation: DeltaOperation::Write { mode: SaveMode::Append, partition_by: None, predicate: None },
        metadata: vec![(SOURCES_KEY.to_string(), serde_json::json!([{"uri": "s3://raw/late.json", "rows": 5}]))],
    };
    let version = commit_exclusive(&mut first, &compaction(adds.clone())).await.unwrap();
    assert_eq!(version, optimized + 1, "committed on top of the optimize");
    let err = commit_exclusive(&mut second, &compaction(adds)).await.unwrap_err();
    assert!(format!("{err:?}").contains("ConcurrentTransaction"), "{err:?}");
    assert_eq!(lake.rows(&lake.table().await), (0..30).chain(90..95).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_held_copy_never_wins_over_a_good_one_and_goes_once_its_source_is_committed() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    let required = with_required_code();
    // The same source staged twice: once held (a column the table cannot take), once good.
    lake.stage_with(&required, "a.json", b"{\"id\":6,\"code\":\"x\"}\n", 1).await;
    lake.stage_version("z1", "a.json", "e", None, 6..7).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.held_fragments), (1, 1));
    assert_eq!(lake.rows(&table), vec![6]);
    // Its source is in the table now: the held copy holds nothing worth keeping and goes.
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.held_fragments, report.duplicate_rows, report.rows), (0, 1, 0));
    assert!(lake.fragments.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_source_of_no_rows_is_committed_so_a_later_copy_of_it_is_a_duplicate() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    // Every line of a.json was quarantined: its converter staged it as a source of no rows.
    lake.stage_part("b1", "a.json", 0..0, 0).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.sources, report.rows, report.files), (1, 0, 0));
    assert!(report.version.is_some(), "committed: the load history knows a.json");
    // The same version converted again under looser settings: its rows are duplicates, never
    // rows beside the quarantine record of the same lines.
    lake.stage_part("b2", "a.json", 0..3, 3).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows), (0, 3));
    assert_eq!(lake.rows(&table), Vec::<i64>::new());
}

#[tokio::test]
async fn a_good_copy_is_kept_over_one_that_waits_behind_a_stranded_batch_mate() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    // Batch b1 holds c.json complete beside part of a.json, whose other fragment was lost.
    let a = SourceObject { bucket: "raw".into(), key: "a.json".into(), etag: Some("e1".into()), ..Default::default() };
    let c = SourceObject { key: "c.json".into(), ..a.clone() };
    let rows = |object: &SourceObject, ids: std::ops::Range<i64>| {
        let data: String = ids.map(|i| format!("{{\"id\":{i}}}\n")).collect();
        JsonDecoder::new(lake.schema.clone(), 64).decode(object, data.as_bytes()).unwrap().batches
    };
    let mut writer = FragmentWriter::new(&lake.schema.table).unwrap();
    writer.write(FragmentSource::new(&a, 4, Some(10)), &rows(&a, 0..4)).unwrap();
    writer.write(FragmentSource::new(&c, 3, Some(3)), &rows(&c, 200..203)).unwrap();
    lake.fragments.put(writer.finish("b1").unwrap(), "").await.unwrap();
    lake.fragments.seal("b1", 1).await.unwrap();
    // c.json's message was delivered twice: batch b2 holds another complete copy.
    lake.stage("b2", "c.json", 200..203).await;
    let report = lake.compactor().run(&mut table, true).await.unwrap();
    assert_eq!(report.stranded, vec!["s3://raw/a.json (ETag e1)"]);
    assert_eq!((report.rows, report.duplicate_rows, report.dropped_rows), (3, 0, 0), "c.json from b2");
    assert_eq!(lake.rows(&table), vec![200, 201, 202]);
}

#[tokio::test]
async fn vacuum_deletes_uncommitted_and_replaced_files_but_not_staging_or_live_files() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    for i in 0..3 {
        lake.stage("b1", &format!("{i}.json"), i * 10..i * 10 + 10).await;
        lake.compactor().run(&mut table, false).await.unwrap();
    }
    // A compactor that crashed before committing left a file behind.
    let mut writer = DataFiles::new(&table, lake.schema.table.clone(), 1 << 20).unwrap();
    let fragment = lake.fragments.read(&lake.stage("b2", "late.json", 90..95).await).await.unwrap();
    for batch in &fragment.batches {
        writer.write(batch).await.unwrap();
    }
    assert_eq!(writer.close().await.unwrap().len(), 1);
    let options = OptimizeOptions { target_file_bytes: 1 << 20, min_small_files: 0 };
    assert_eq!(optimize(&mut table, &options, None, true).await.unwrap().files_removed, 3);

    // Within the retention window nothing goes: readers of older versions still need them.
    assert_eq!(vacuum(&mut table, None).await.unwrap().files_deleted, 0);
    let report = vacuum(&mut table, Some(Duration::ZERO)).await.unwrap();
    assert_eq!(report.files_deleted, 4, "3 replaced files and the uncommitted one");
    assert_eq!(lake.rows(&table), (0..30).collect::<Vec<_>>());
    assert_eq!(lake.fragments.list().await.unwrap().len(), 1, "staging is not the vacuum's business");
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!(report.rows, 5);
}

#[tokio::test]
async fn a_new_nullable_column_joins_the_table_with_the_first_data_that_has_it() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    lake.stage("b1", "old.json", 0..3).await;
    lake.compactor().run(&mut table, false).await.unwrap();

    // The declared schema gains a nullable column; an old converter is still staging.
    let v2 = with_country();
    lake.stage("b2", "late-old.json", 3..5).await;
    lake.stage_with(&v2, "new.json", b"{\"id\":5,\"country\":\"DE\"}\n{\"id\":6}\n", 2).await;

    let report = lake.compactor_for(v2.clone()).run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.version), (4, Some(2)));
    let commit = std::fs::read_to_string(lake.dir.path().join("_delta_log/00000000000000000002.json")).unwrap();
    assert!(commit.contains("\"metaData\"") && commit.contains("\"add\""), "schema and data in one commit");
    let schema = table.snapshot().unwrap().metadata().parse_schema().unwrap();
    assert!(schema.field("country").is_some_and(|f| f.is_nullable()));
    assert_eq!(lake.rows(&table), (0..7).collect::<Vec<_>>());

    // A type change is refused with the column named, and nothing is committed.
    let retyped = Arc::new(
        TableSchema::parse(r#"{"fields":[{"name":"id","type":"string"},{"name":"country","type":"string"}]}"#, "v3")
            .unwrap(),
    );
    lake.stage("b3", "more.json", 7..8).await;
    let err = lake.compactor_for(retyped).run(&mut table, false).await.unwrap_err().to_string();
    assert!(err.contains("\"id\" changes type"), "{err}");
    assert_eq!(table.version(), Some(2));
}

#[tokio::test]
async fn a_compactor_with_an_older_schema_adds_the_fragments_new_column_and_drops_no_value() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    // Converters read the new schema first; the warm compactor still has the old one.
    let v2 = with_country();
    lake.stage("b1", "old.json", 0..2).await;
    lake.stage_with(&v2, "new.json", b"{\"id\":2,\"country\":\"DE\"}\n{\"id\":3}\n", 2).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.held_fragments, report.version), (4, 0, Some(1)));
    let commit = std::fs::read_to_string(lake.dir.path().join("_delta_log/00000000000000000001.json")).unwrap();
    assert!(commit.contains("\"metaData\"") && commit.contains("\"add\""), "schema and data in one commit");
    let schema = table.snapshot().unwrap().metadata().parse_schema().unwrap();
    assert!(schema.field("country").is_some_and(|f| f.is_nullable()));
    assert_eq!(lake.strings(&table, "country"), vec![None, None, None, Some("DE".into())]);
    // The stale compactor goes on committing old fragments, and so does one that declares it.
    lake.stage("b2", "old2.json", 4..5).await;
    assert_eq!(lake.compactor().run(&mut table, false).await.unwrap().rows, 1);
    lake.stage_with(&v2, "new2.json", b"{\"id\":5,\"country\":\"FR\"}\n", 1).await;
    assert_eq!(lake.compactor().run(&mut table, false).await.unwrap().rows, 1);
    lake.stage_with(&v2, "new3.json", b"{\"id\":6,\"country\":\"NL\"}\n", 1).await;
    assert_eq!(lake.compactor_for(v2.clone()).run(&mut table, false).await.unwrap().rows, 1);
    assert_eq!(lake.rows(&table), (0..7).collect::<Vec<_>>());
    let countries = lake.strings(&table, "country");
    assert_eq!(countries.iter().flatten().collect::<Vec<_>>(), ["DE", "FR", "NL"]);
}

#[tokio::test]
async fn fragments_with_a_column_no_compactor_may_add_are_held_staged_not_committed_without_it() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    let required = with_required_code();
    lake.stage_with(&required, "required.json", b"{\"id\":6,\"code\":\"x\"}\n", 1).await;
    // Two converters disagree on the new column's type.
    let text = |t: &str| format!(r#"{{"fields":[{{"name":"id","type":"long"}},{{"name":"size","type":"{t}"}}]}}"#);
    let as_long = Arc::new(TableSchema::parse(&text("long"), "v4").unwrap());
    let as_string = Arc::new(TableSchema::parse(&text("string"), "v5").unwrap());
    lake.stage_with(&as_long, "long.json", b"{\"id\":7,\"size\":3}\n", 1).await;
    lake.stage_with(&as_string, "string.json", b"{\"id\":8,\"size\":\"L\"}\n", 1).await;
    lake.stage("b1", "plain.json", 0..2).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.held_fragments, report.deferred_fragments), (2, 3, 3));
    assert!(report.metrics().iter().any(|m| m.name == "FragmentsHeldForSchema" && m.value == 3.0));
    assert_eq!(lake.fragments.list().await.unwrap().len(), 3, "held fragments stay staged");
    assert_eq!(lake.rows(&table), vec![0, 1]);
    let schema = table.snapshot().unwrap().metadata().parse_schema().unwrap();
    assert!(schema.field("code").is_none() && schema.field("size").is_none());
}

#[tokio::test]
async fn small_fresh_partitions_wait_unless_forced() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    lake.stage("b1", "a.json", 0..10).await;
    let waiting = CompactorOptions { min_bytes: 1 << 30, freshness: Duration::from_secs(3600), ..test_options() };
    let compactor = Compactor::new(lake.store.clone(), lake.schema.clone(), waiting);
    let report = compactor.run(&mut table, false).await.unwrap();
    assert_eq!((report.fragments, report.deferred_fragments, report.version), (0, 1, None));
    let report = compactor.run(&mut table, true).await.unwrap();
    assert_eq!((report.fragments, report.rows), (1, 10), "on demand, whatever the size");
    // Past the freshness bound, small partitions go too.
    lake.stage("b2", "b.json", 10..12).await;
    let stale = CompactorOptions { min_bytes: 1 << 30, freshness: Duration::ZERO, ..test_options() };
    let report = Compactor::new(lake.store.clone(), lake.schema.clone(), stale).run(&mut table, false).await.unwrap();
    assert_eq!(report.rows, 2);
}

#[test]
fn requests_accept_empty_scheduled_and_named_payloads() {
    let empty = CompactRequest::from_payload(&serde_json::json!({})).unwrap();
    assert_eq!(empty, CompactRequest::default());
    let scheduled =
        serde_json::json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
    assert_eq!(CompactRequest::from_payload(&scheduled).unwrap(), CompactRequest::default());
    let named = CompactRequest::from_payload(&serde_json::json!({"table": "events", "force": true})).unwrap();
    assert_eq!((named.table.as_deref(), named.force), (Some("events"), true));
    assert!(CompactRequest::from_payload(&serde_json::json!({"table": 3})).is_err());
}

/// A clock that says what it is told.
struct FixedClock(chrono::DateTime<chrono::Utc>);

impl Clock for FixedClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.0
    }
}

#[tokio::test]
async fn fragment_ages_are_judged_by_the_compactors_clock() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    // A converter died after staging 4 of an object's 10 rows, and no retry is coming (one from
    // before batches were sealed: a sealed batch's converter finished, see
    // a_sealed_copy_that_lost_a_fragment_is_held_and_named_never_deleted).
    lake.stage_legacy_part("a.json", 0..4, 10).await;
    let now = chrono::Utc::now();
    let at = |seconds: i64| Arc::new(FixedClock(now + chrono::Duration::seconds(seconds)));
    let report = lake.compactor().with_clock(at(0)).run(&mut table, false).await.unwrap();
    assert_eq!((report.fragments, report.deferred_fragments), (0, 1), "young: its converter may still be running");
    let abandon_after = test_options().abandon_after.as_secs() as i64;
    let report = lake.compactor().with_clock(at(abandon_after + 1)).run(&mut table, false).await.unwrap();
    assert_eq!((report.fragments, report.rows, report.dropped_rows), (1, 0, 4), "old enough: abandoned");
    assert_eq!(report.duplicate_rows, 0, "the table never had a.json: not a duplicate");
    assert!(report.oldest_staged_seconds > abandon_after as u64);
    assert!(lake.fragments.list().await.unwrap().is_empty());
    assert_eq!(lake.rows(&table), Vec::<i64>::new());
}

#[tokio::test]
async fn a_batch_is_taken_only_once_sealed_and_no_clock_can_make_it_lose_rows() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    // A converter is still running: it staged 4 of a.json's 10 rows and has not sealed its
    // batch. Beside it, a sealed batch.
    lake.stage_unsealed("b1", "a.json", 0..4, 10).await;
    lake.stage("b0", "b.json", 10..12).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.unsealed_fragments, report.abandoned_rows), (2, 1, 0), "b1 waits");
    // A compactor whose clock runs a day ahead takes b1 for abandoned: it voids the batch and
    // deletes its fragment, and commits none of it.
    let ahead = Arc::new(FixedClock(chrono::Utc::now() + chrono::Duration::days(1)));
    let report = lake.compactor().with_clock(ahead).run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.abandoned_fragments, report.abandoned_rows), (0, 1, 4));
    // The converter finishes: its seal is refused, so it fails its messages...
    let refused = lake.fragments.seal("b1", 1).await.unwrap_err().to_string();
    assert!(refused.contains("voided"), "{refused}");
    // ...and SQS redelivers them to a converter that stages and seals the whole object.
    lake.stage("b2", "a.json", 0..10).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows), (10, 0));
    assert_eq!(lake.rows(&table), (0..12).collect::<Vec<_>>());
    // Seals and voids go once their batches have nothing staged.
    lake.compactor().run(&mut table, false).await.unwrap();
    assert!(lake.fragments.batches().await.unwrap().is_empty());
    let metrics = report.metrics();
    assert!(metrics.iter().any(|m| m.name == "AbandonedRows"));
}

#[tokio::test]
async fn a_partition_limited_run_never_splits_a_source_across_its_partitions() {
    let lake = lake(Layout { partition: Some("date=key".parse().unwrap()), ..Layout::default() });
    let mut table = lake.table().await;
    // One object whose rows fell on two dates, staged whole by one batch: 3 and 2 of its 5.
    lake.stage_part_on("b1", "web/a.json", 0..3, 5, "2026-05-16").await;
    lake.stage_part_on("b1", "web/a.json", 3..5, 5, "2026-05-17").await;
    // Fragments past the abandonment age (a compactor outage) must not make a limited run
    // take half of the copy for an abandoned one.
    let options = CompactorOptions { abandon_after: Duration::ZERO, ..test_options() };
    let limited = Compactor::new(lake.store.clone(), lake.schema.clone(), options)
        .with_partitions(["date=2026-05-16".to_string()]);
    let report = limited.run(&mut table, true).await.unwrap();
    assert_eq!((report.fragments, report.rows, report.duplicate_rows), (0, 0, 0));
    assert_eq!(lake.fragments.list().await.unwrap().len(), 2, "both fragments wait, untouched");
    let everything = Compactor::new(lake.store.clone(), lake.schema.clone(), options);
    let report = everything.run(&mut table, true).await.unwrap();
    assert_eq!((report.fragments, report.rows, report.duplicate_rows), (2, 5, 0));
    assert_eq!(lake.rows(&table), (0..5).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_unreadable_staged_file_is_set_aside_and_the_rest_compacts() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    lake.stage("b1", "a.json", 0..10).await;
    let junk = Path::from("_inlet/fragments/20260516T000000.000Z-junk.parquet");
    lake.store.put(&junk, PutPayload::from(b"not parquet".to_vec())).await.unwrap();
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.corrupt_fragments), (10, 1));
    assert_eq!(lake.rows(&table), (0..10).collect::<Vec<_>>());
    assert!(lake.fragments.list().await.unwrap().is_empty());
    let aside = Path::from("_inlet/corrupt/20260516T000000.000Z-junk.parquet");
    assert_eq!(lake.store.get(&aside).await.unwrap().bytes().await.unwrap().as_ref(), b"not parquet");
    let metrics = report.metrics();
    assert!(metrics.iter().any(|m| m.name == "CorruptFragments" && m.value == 1.0));
}

#[tokio::test]
async fn a_source_is_its_content_whatever_its_etag_and_records_from_before_digests_still_count() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    // Committed before sources carried digests: known by ETag alone.
    lake.stage_version("b0", "old.json", "e1", None, 0..5).await;
    lake.compactor().run(&mut table, false).await.unwrap();

    // The same bytes under two ETags (a multipart re-upload), in two batches; old.json's
    // version read again by a converter that records digests; and a version of x.json staged
    // both by an older converter and by a newer one.
    lake.stage_version("b1", "a.json", "e1", Some("xxh3-128:aa"), 10..20).await;
    lake.stage_version("b2", "a.json", "e2-2", Some("xxh3-128:aa"), 10..20).await;
    lake.stage_version("b3", "old.json", "e1", Some("xxh3-128:cc"), 0..5).await;
    lake.stage_version("b4", "x.json", "e1", None, 30..33).await;
    lake.stage_version("b5", "x.json", "e1", Some("xxh3-128:ee"), 30..33).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows, report.sources), (13, 18, 2), "{report:?}");

    // The same bytes once more, under a third ETag: already loaded. New bytes: a new source.
    lake.stage_version("b6", "a.json", "e3", Some("xxh3-128:aa"), 10..20).await;
    lake.stage_version("b7", "a.json", "e4", Some("xxh3-128:dd"), 20..25).await;
    let report = lake.compactor().run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.duplicate_rows, report.sources), (5, 10, 1), "{report:?}");
    let expected: Vec<i64> = (0..5).chain(10..25).chain(30..33).collect();
    assert_eq!(lake.rows(&table), expected);
}

#[tokio::test]
async fn optimize_copies_files_in_the_table_schema_and_decodes_older_ones() {
    let lake = lake(Layout::default());
    let mut table = lake.table().await;
    lake.stage("b1", "old.json", 0..3).await;
    lake.compactor().run(&mut table, false).await.unwrap();
    // A nullable column joins: the first file lacks it, the next commit's files have it.
    let v2 = with_country();
    lake.stage_with(&v2, "new.json", b"{\"id\":3,\"country\":\"DE\"}\n", 1).await;
    let report = lake.compactor_for(v2.clone()).run(&mut table, false).await.unwrap();
    assert_eq!((report.rows, report.copied_fragments), (1, 1));

    let options = OptimizeOptions { target_file_bytes: 1 << 20, min_small_files: 0 };
    let report = optimize(&mut table, &options, None, true).await.unwrap();
    assert_eq!((report.files_removed, report.files_copied, report.files_added), (2, 1, 2), "{report:?}");
    assert_eq!(lake.rows(&table), (0..4).collect::<Vec<_>>());
}

/// A compactor of `tables` (route name, lake) through a routing file, all with the `ID` schema,
/// and `settings` besides.
async fn routed_compactor(tables: &[(&str, &Lake)], settings: &[(&'static str, &str)]) -> RoutedCompactor {
    let config = tempfile::tempdir().unwrap();
    let schema = config.path().join("id.schema.json");
    std::fs::write(&schema, crate::testing::schemas::ID.text).unwrap();
    let routes: Vec<serde_json::Value> = tables
        .iter()
        .map(|(name, lake)| {
            serde_json::json!({"name": name, "prefix": format!("{name}/"),
                "table_uri": lake.url.as_str().trim_end_matches('/'), "schema": schema})
        })
        .collect();
    let routes_file = config.path().join("routes.json");
    std::fs::write(&routes_file, serde_json::json!({ "routes": routes }).to_string()).unwrap();
    let mut lookup =
        Map::from([("INLET_ROUTES", routes_file.display().to_string()), ("AWS_REGION", "us-east-1".into())]);
    lookup.extend(settings.iter().map(|(name, value)| (*name, value.to_string())));
    let deployment = crate::context::Deployment::from_lookup(|name| lookup.get(name).cloned()).await.unwrap();
    RoutedCompactor::from_deployment(deployment).await.unwrap()
}

#[tokio::test]
async fn a_table_whose_schema_cannot_be_read_fails_alone_and_commits_once_it_can() {
    let (good, unreadable) = (lake(Layout::default()), lake(Layout::default()));
    good.stage("b1", "g.json", 0..4).await;
    unreadable.stage("b1", "u.json", 20..23).await;
    let config = tempfile::tempdir().unwrap();
    std::fs::write(config.path().join("good.schema.json"), crate::testing::schemas::ID.text).unwrap();
    let routes = serde_json::json!({"routes": [
        {"name": "good", "prefix": "good/", "table_uri": good.url.as_str().trim_end_matches('/'), "schema": "good.schema.json"},
        {"name": "late", "prefix": "late/", "table_uri": unreadable.url.as_str().trim_end_matches('/'), "schema": "late.schema.json"}
    ]});
    let routes_file = config.path().join("routes.json");
    std::fs::write(&routes_file, routes.to_string()).unwrap();
    let lookup = Map::from([("INLET_ROUTES", routes_file.display().to_string()), ("AWS_REGION", "us-east-1".into())]);
    // The missing schema does not stop the compactor from starting.
    let deployment = crate::context::Deployment::from_lookup(|name| lookup.get(name).cloned()).await.unwrap();
    let compactor =
        RoutedCompactor::from_deployment(deployment.rebuilding_after(std::time::Duration::ZERO)).await.unwrap();
    let request = CompactRequest { force: true, ..CompactRequest::default() };
    let outcomes = compactor.compact(&request).await.unwrap();
    assert_eq!(outcomes[0].result.as_ref().unwrap().rows, 4, "the good table commits");
    let failure = outcomes[1].result.as_ref().unwrap_err();
    assert!(matches!(failure, Error::TableUnavailable { .. }), "{failure}");
    assert!(failure.to_string().contains("late.schema.json") && failure.is_retryable(), "{failure}");
    let failed: Vec<f64> =
        outcomes.iter().map(|o| o.metrics().iter().find(|m| m.name == "CompactionFailed").unwrap().value).collect();
    assert_eq!(failed, [0.0, 1.0], "each table's own metric says which failed");
    assert_eq!(unreadable.fragments.list().await.unwrap().len(), 1, "its rows wait, staged");

    // The schema deployed: the same compactor builds the table's context and commits its rows.
    std::fs::write(config.path().join("late.schema.json"), crate::testing::schemas::ID.text).unwrap();
    let outcomes = compactor.compact(&request).await.unwrap();
    let rows: Vec<u64> = outcomes.iter().map(|o| o.result.as_ref().unwrap().rows).collect();
    assert_eq!(rows, [0, 3]);
    assert_eq!(unreadable.rows(&unreadable.table().await), (20..23).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_deployment_none_of_whose_tables_can_be_set_up_fails_to_start() {
    let config = tempfile::tempdir().unwrap();
    let routes = serde_json::json!({"routes": [
        {"name": "a", "prefix": "a/", "table_uri": "memory:///a", "schema": "a.schema.json"},
        {"name": "b", "prefix": "b/", "table_uri": "memory:///b", "schema": "b.schema.json"}
    ]});
    let routes_file = config.path().join("routes.json");
    std::fs::write(&routes_file, routes.to_string()).unwrap();
    let lookup = Map::from([("INLET_ROUTES", routes_file.display().to_string()), ("AWS_REGION", "us-east-1".into())]);
    let failed = crate::context::Deployment::from_lookup(|name| lookup.get(name).cloned()).await.err().unwrap();
    assert!(matches!(failed, Error::Schema { .. }) && failed.to_string().contains("a.schema.json"), "{failed}");
}

#[tokio::test]
async fn a_table_that_cannot_take_its_schema_fails_alone_and_commits_once_fixed() {
    let (good, broken) = (lake(Layout::default()), lake(Layout::default()));
    // The broken table holds `id` as text; the declared schema, shared by both, says long.
    let as_text = Arc::new(TableSchema::parse(r#"{"fields":[{"name":"id","type":"string"}]}"#, "text").unwrap());
    broken.table_of(&as_text).await;
    good.stage("b1", "g.json", 0..5).await;
    broken.stage("b1", "b.json", 10..13).await;
    // The misfit does not stop the compactor from starting.
    let compactor =
        routed_compactor(&[("good", &good), ("broken", &broken)], &[("INLET_MIN_COMPACT_BYTES", "1")]).await;
    let request = CompactRequest { force: true, ..CompactRequest::default() };
    let outcomes = compactor.compact(&request).await.unwrap();
    let by_name: Map<&str, &TableOutcome> = outcomes.iter().map(|outcome| (outcome.name.as_str(), outcome)).collect();
    assert_eq!(by_name["good"].result.as_ref().unwrap().rows, 5, "the good table commits");
    let failure = by_name["broken"].result.as_ref().unwrap_err();
    assert!(matches!(failure, Error::Schema { .. }), "{failure}");
    let failed: Vec<f64> =
        outcomes.iter().map(|o| o.metrics().iter().find(|m| m.name == "CompactionFailed").unwrap().value).collect();
    assert_eq!(failed, [0.0, 1.0], "each table's own metric says which failed");
    assert!(matches!(answer(outcomes), Err(Error::Schema { .. })), "the invocation fails after both ran");
    assert_eq!(broken.fragments.list().await.unwrap().len(), 1, "the broken table's rows wait, staged");
    // Fixed (here, the table is recreated): the same compactor, checking again, commits its rows.
    std::fs::remove_dir_all(broken.dir.path().join("_delta_log")).unwrap();
    let outcomes = compactor.compact(&request).await.unwrap();
    let rows: Vec<u64> = outcomes.iter().map(|o| o.result.as_ref().unwrap().rows).collect();
    assert_eq!(rows, [0, 3]);
    assert_eq!(broken.rows(&broken.table().await), (10..13).collect::<Vec<_>>());
}

#[tokio::test]
async fn sealed_batches_commit_the_tables_they_name_and_a_broken_table_fails_only_its_messages() {
    let (good, broken) = (lake(Layout::default()), lake(Layout::default()));
    let as_text = Arc::new(TableSchema::parse(r#"{"fields":[{"name":"id","type":"string"}]}"#, "text").unwrap());
    broken.table_of(&as_text).await;
    good.stage("b1", "g.json", 0..5).await;
    broken.stage("b1", "b.json", 10..13).await;
    // The default minimum size: a sealed batch is committed however small.
    let compactor = routed_compactor(&[("good", &good), ("broken", &broken)], &[]).await;
    let message = |id: &str, body: &str| serde_json::json!({"messageId": id, "body": body, "eventSource": "aws:sqs"});
    let sealed = |table: &str, batch: &str| serde_json::json!({"table": table, "batch": batch}).to_string();
    let event = serde_json::json!({"Records": [
        message("m1", &sealed("good", "b1")),
        message("m2", &sealed("broken", "b1")),
        message("m3", &sealed("good", "b2")),
        message("m4", "not an announcement"),
        message("m5", &sealed("elsewhere", "b9")),
    ]});
    let invocation = Invocation::from_payload(&event).unwrap();
    let Invocation::Sealed { tables, unreadable } = &invocation else { panic!("{invocation:?}") };
    let named: Vec<(&str, usize)> = tables.iter().map(|(table, ids)| (table.as_str(), ids.len())).collect();
    assert_eq!(named, [("broken", 1), ("elsewhere", 1), ("good", 2)]);
    assert_eq!(unreadable, &["m4"]);
    let answer = compactor.handle(&invocation).await.unwrap();
    let mut failed: Vec<&str> =
        answer["batchItemFailures"].as_array().unwrap().iter().map(|f| f["itemIdentifier"].as_str().unwrap()).collect();
    failed.sort();
    assert_eq!(failed, ["m2", "m4", "m5"], "the broken table's, the unreadable and the unknown table's messages");
    assert_eq!(good.rows(&good.table().await), (0..5).collect::<Vec<_>>(), "the good table committed");
    assert_eq!(broken.fragments.list().await.unwrap().len(), 1, "the broken table's rows wait, staged");
    // Any other payload is a compaction request, as before.
    assert_eq!(
        Invocation::from_payload(&serde_json::json!({})).unwrap(),
        Invocation::Request(CompactRequest::default())
    );
    let scheduled = serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    assert!(matches!(Invocation::from_payload(&scheduled).unwrap(), Invocation::Request(_)));
}

#[tokio::test]
async fn a_routing_file_of_one_route_answers_to_the_route_name() {
    // The commit queue names a table by its route: here not the last segment of its URI.
    let table = lake(Layout::default());
    table.stage("b1", "w.json", 0..4).await;
    let compactor = routed_compactor(&[("web", &table)], &[]).await;
    let event = serde_json::json!({"Records": [{"messageId": "m1", "eventSource": "aws:sqs",
        "body": serde_json::json!({"table": "web", "batch": "b1"}).to_string()}]});
    let answer = compactor.handle(&Invocation::from_payload(&event).unwrap()).await.unwrap();
    assert_eq!(answer["batchItemFailures"], serde_json::json!([]), "{answer}");
    assert_eq!(table.rows(&table.table().await), (0..4).collect::<Vec<_>>());
    let unknown = CompactRequest { table: Some("api".into()), force: true, ..CompactRequest::default() };
    let outcomes = compactor.compact(&unknown).await.unwrap();
    let err = outcomes[0].result.as_ref().unwrap_err().to_string();
    assert!(err.contains("this compactor serves"), "{err}");
}

#[test]
fn a_sealed_batch_announcement_with_a_field_a_later_version_adds_still_names_its_table() {
    let body = serde_json::json!({"table": "web", "batch": "b1", "rows": 10}).to_string();
    let event = serde_json::json!({"Records": [{"messageId": "m1", "eventSource": "aws:sqs", "body": body}]});
    let tables = [("web".to_string(), vec!["m1".to_string()])].into();
    assert_eq!(Invocation::from_payload(&event).unwrap(), Invocation::Sealed { tables, unreadable: Vec::new() });
}
