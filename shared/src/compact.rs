//! Compaction: merge staged fragments into target-sized Parquet files and commit them to Delta
//! exactly once.
//!
//! One run: read the load history (which source versions the table holds), read the staged
//! fragments' footers, decide for every source which copy (if any) to commit, stream the kept
//! rows into files of the target size, commit those files together with the new history
//! entries and the compactor's `txn` version in ONE Delta commit, and only then delete the
//! consumed fragments. A crash before the commit leaves only unreferenced files; a crash after
//! it leaves fragments whose sources the next run finds in the history and drops.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::{Array, BooleanArray, RecordBatch};
use arrow_schema::SchemaRef;
use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, MetadataExt, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableError};
use object_store::ObjectStore;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::evolution::{conform, plan_evolution};
use crate::fragment::{FRAGMENTS_PREFIX, FragmentInfo, FragmentStore};
use crate::history::{COMMIT_SOURCES_KEY, COMPACTOR_APP_ID, CommittedSource, LoadHistory, SNAPSHOT_INTERVAL, SourceId};
use crate::metrics::Metric;
use crate::optimize::{OptimizeOptions, OptimizeReport, VacuumReport, optimize, vacuum};
use crate::schema::{SOURCE_ETAG_COLUMN, SOURCE_FILE_COLUMN, TableSchema};
use crate::table::{DataFiles, log_cleanup_due, open_or_create};

/// An on-demand or scheduled compaction request (the compactor Lambda's payload).
/// `{}` and EventBridge's scheduled-event payload both mean "compact the configured table".
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactRequest {
    /// Table to compact; must be the configured one when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Compact now, however little is staged (on-demand runs); scheduled runs leave small,
    /// fresh partitions to grow.
    #[serde(default)]
    pub force: bool,
    /// Only these partitions (Hive directories such as `date=2026-05-16`); all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<Vec<String>>,
    /// Also rewrite small files already in the table, in every partition with two or more
    /// (scheduled runs do so once a partition reaches `INLET_OPTIMIZE_MIN_FILES`).
    #[serde(default)]
    pub optimize: bool,
    /// Also vacuum: delete unreferenced data files older than the table's retention.
    #[serde(default)]
    pub vacuum: bool,
}

impl CompactRequest {
    /// Reads a request from an invocation payload; unknown fields (EventBridge's) are ignored.
    pub fn from_payload(payload: &serde_json::Value) -> Result<Self> {
        if payload.is_null() {
            return Ok(Self::default());
        }
        Ok(serde_json::from_value(payload.clone())?)
    }
}

/// Compacts the context's table as asked by `request`.
pub async fn compact_table(context: &Context, request: &CompactRequest) -> Result<CompactionReport> {
    if let Some(table) = &request.table {
        let configured = &context.settings.table_uri;
        if table.trim_end_matches('/') != configured && !configured.ends_with(&format!("/{table}")) {
            return Err(Error::Config(format!("this compactor serves {configured}, not {table:?}")));
        }
    }
    let url = context.settings.table_url()?;
    let mut table =
        open_or_create(&url, &context.storage_options, &context.schema, context.settings.maintenance).await?;
    let options = CompactorOptions {
        target_file_bytes: context.settings.target_file_bytes,
        abandon_after: Duration::from_secs(context.settings.abandon_after_seconds),
        min_bytes: context.settings.min_compact_bytes,
        freshness: Duration::from_secs(context.settings.freshness_seconds),
        history_retention: Duration::from_secs(context.settings.history_retention_days * 86_400),
        ..CompactorOptions::default()
    };
    let mut compactor = Compactor::new(context.table_store.clone(), context.schema.clone(), options);
    if let Some(partitions) = &request.partitions {
        compactor = compactor.with_partitions(partitions.clone());
    }
    let mut report = compactor.run(&mut table, request.force).await?;
    let optimize_options = OptimizeOptions {
        target_file_bytes: context.settings.target_file_bytes,
        min_small_files: context.settings.optimize_min_files,
    };
    let optimized = optimize(&mut table, &optimize_options, request.partitions.as_deref(), request.optimize).await?;
    report.optimize = (optimized.version.is_some() || request.optimize).then_some(optimized);
    if request.vacuum {
        report.vacuum = Some(vacuum(&mut table, None).await?);
    }
    Ok(report)
}

/// What one compaction run did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CompactionReport {
    /// Fragments merged and deleted.
    pub fragments: usize,
    /// Fragments left staged: small and fresh, or holding a copy of a source not complete yet.
    pub deferred_fragments: usize,
    /// Age of the oldest staged fragment when the run started, in seconds: the freshness lag.
    pub oldest_staged_seconds: u64,
    /// Source objects whose rows were committed.
    pub sources: usize,
    /// Rows committed.
    pub rows: u64,
    /// Rows dropped because their source was already committed or staged twice.
    pub duplicate_rows: u64,
    /// Parquet files added to the table.
    pub files: usize,
    /// Bytes of Parquet added to the table.
    pub bytes: u64,
    /// Table version created, if anything was committed.
    pub version: Option<u64>,
    /// Where the run's time went.
    pub timings: Timings,
    /// Small table files rewritten after the commit, when that was due or asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optimize: Option<OptimizeReport>,
    /// Files vacuumed, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vacuum: Option<VacuumReport>,
}

/// Milliseconds spent in each phase of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Timings {
    /// Refreshing the table state, the load history and the compactor's txn version.
    pub load_ms: u64,
    /// Listing staged fragments and reading their footers.
    pub stage_ms: u64,
    /// Reading fragments and writing the merged files.
    pub merge_ms: u64,
    /// The Delta commit, with its checkpoint and log cleanup when due.
    pub commit_ms: u64,
    /// Writing the load history snapshot (when due) and deleting consumed fragments.
    pub cleanup_ms: u64,
}

/// Hands out the time since it was last asked, in milliseconds.
struct Lap(std::time::Instant);

impl Lap {
    fn start() -> Self {
        Self(std::time::Instant::now())
    }

    fn next(&mut self) -> u64 {
        let now = std::time::Instant::now();
        let elapsed = now - std::mem::replace(&mut self.0, now);
        elapsed.as_millis() as u64
    }
}

impl CompactionReport {
    /// The report as CloudWatch metrics.
    pub fn metrics(&self) -> Vec<Metric> {
        let optimized = self.optimize.as_ref().map_or(0, |o| o.files_removed);
        let vacuumed = self.vacuum.as_ref().map_or(0, |v| v.files_deleted);
        vec![
            Metric { name: "FreshnessLag", value: self.oldest_staged_seconds as f64, unit: "Seconds" },
            Metric { name: "FragmentsConsumed", value: self.fragments as f64, unit: "Count" },
            Metric { name: "FragmentsDeferred", value: self.deferred_fragments as f64, unit: "Count" },
            Metric { name: "RowsCommitted", value: self.rows as f64, unit: "Count" },
            Metric { name: "DuplicateRowsDropped", value: self.duplicate_rows as f64, unit: "Count" },
            Metric { name: "FilesWritten", value: self.files as f64, unit: "Count" },
            Metric { name: "BytesWritten", value: self.bytes as f64, unit: "Bytes" },
            Metric { name: "CommitVersion", value: self.version.map_or(-1.0, |v| v as f64), unit: "None" },
            Metric { name: "SmallFilesOptimized", value: optimized as f64, unit: "Count" },
            Metric { name: "FilesVacuumed", value: vacuumed as f64, unit: "Count" },
        ]
    }
}

/// Compactor knobs (see the configuration table in the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactorOptions {
    /// Target size of committed files.
    pub target_file_bytes: u64,
    /// Age after which a fragment with an incomplete copy of a source is taken to come from a
    /// converter that died (longer than the converter's timeout).
    pub abandon_after: Duration,
    /// A partition with fewer staged bytes than this waits for more (unless forced)...
    pub min_bytes: u64,
    /// ...until its oldest fragment is this old.
    pub freshness: Duration,
    /// How long committed sources are remembered in history snapshots.
    pub history_retention: Duration,
    /// Table versions between load history snapshots (they are also written at least daily).
    pub snapshot_every: u64,
}

impl Default for CompactorOptions {
    fn default() -> Self {
        Self {
            target_file_bytes: 256 * 1024 * 1024,
            abandon_after: Duration::from_secs(900),
            min_bytes: 64 * 1024 * 1024,
            freshness: Duration::from_secs(60),
            history_retention: Duration::from_secs(30 * 86_400),
            snapshot_every: SNAPSHOT_INTERVAL,
        }
    }
}

/// Which copy of each staged source gets committed.
#[derive(Debug, Default)]
struct Plan {
    /// Fragments to merge and delete.
    consume: Vec<FragmentInfo>,
    /// Fragments left for a later run.
    deferred: usize,
    /// The converter batch whose copy of a source is committed.
    keep: HashMap<SourceId, Option<String>>,
}

impl Plan {
    fn new(staged: Vec<FragmentInfo>, history: &LoadHistory, options: &CompactorOptions, force: bool) -> Self {
        // Rows per (source, batch), and each source's expected total.
        let mut copies: HashMap<SourceId, BTreeMap<Option<String>, u64>> = HashMap::new();
        let mut totals: HashMap<SourceId, u64> = HashMap::new();
        for fragment in &staged {
            for source in &fragment.sources {
                *copies.entry(source.id()).or_default().entry(fragment.batch.clone()).or_default() += source.rows;
                if let Some(total) = source.total_rows {
                    totals.insert(source.id(), total);
                }
            }
        }
        let mut keep = HashMap::new();
        let mut incomplete = HashSet::new();
        for (id, batches) in copies {
            if history.contains(&id) {
                continue;
            }
            // The first complete copy wins; batch ids are random, so "first" is just stable.
            let complete = batches.iter().find(|(_, rows)| totals.get(&id).is_none_or(|total| *rows >= total));
            match complete {
                Some((batch, _)) => {
                    keep.insert(id, batch.clone());
                }
                None => {
                    incomplete.insert(id);
                }
            }
        }
        let now = chrono::Utc::now();
        let age = |fragment: &FragmentInfo| (now - fragment.staged_at).to_std().unwrap_or_default();
        let mut deferred: Vec<bool> = staged
            .iter()
            .map(|fragment| {
                let abandoned = age(fragment) >= options.abandon_after;
                !abandoned && fragment.sources.iter().any(|s| incomplete.contains(&s.id()))
            })
            .collect();
        // Small partitions wait to grow into a decent file, but never past the freshness bound.
        if !force {
            let directory = |fragment: &FragmentInfo| {
                fragment.path.as_ref().rsplit_once('/').map_or(String::new(), |(dir, _)| dir.to_string())
            };
            let mut partitions: BTreeMap<String, (u64, Duration)> = BTreeMap::new();
            for fragment in &staged {
                let entry = partitions.entry(directory(fragment)).or_default();
                entry.0 += fragment.size;
                entry.1 = entry.1.max(age(fragment));
            }
            for (fragment, deferred) in staged.iter().zip(deferred.iter_mut()) {
                let (bytes, oldest) = partitions[&directory(fragment)];
                if bytes < options.min_bytes && oldest < options.freshness {
                    *deferred = true;
                }
            }
        }
        // A kept copy is committed whole or not at all: deferring one of its fragments defers
        // every fragment of that copy (and, in turn, the copies those hold).
        loop {
            let held: HashSet<(SourceId, Option<String>)> = staged
                .iter()
                .zip(&deferred)
                .filter(|(_, deferred)| **deferred)
                .flat_map(|(fragment, _)| fragment.sources.iter().map(|s| (s.id(), fragment.batch.clone())))
                .collect();
            let mut changed = false;
            for (fragment, deferred) in staged.iter().zip(deferred.iter_mut()) {
                if !*deferred && fragment.sources.iter().any(|s| held.contains(&(s.id(), fragment.batch.clone()))) {
                    *deferred = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let deferred_count = deferred.iter().filter(|d| **d).count();
        let consume = staged.into_iter().zip(deferred).filter(|(_, deferred)| !deferred).map(|(f, _)| f).collect();
        Plan { consume, deferred: deferred_count, keep }
    }

    /// The sources of `fragment` whose rows are committed from it.
    fn kept_in(&self, fragment: &FragmentInfo) -> HashSet<SourceId> {
        fragment
            .sources
            .iter()
            .map(|source| source.id())
            .filter(|id| self.keep.get(id).is_some_and(|batch| *batch == fragment.batch))
            .collect()
    }
}

/// Merges fragments of one table into its Delta log.
pub struct Compactor {
    store: Arc<dyn ObjectStore>,
    fragments: FragmentStore,
    schema: Arc<TableSchema>,
    options: CompactorOptions,
    partitions: Option<HashSet<String>>,
}

impl Compactor {
    /// A compactor for the table whose root is `store`, declared as `schema`.
    pub fn new(store: Arc<dyn ObjectStore>, schema: Arc<TableSchema>, options: CompactorOptions) -> Self {
        Self { fragments: FragmentStore::new(store.clone()), store, schema, options, partitions: None }
    }

    /// Limits runs to fragments staged for these partitions (Hive directories).
    pub fn with_partitions(mut self, partitions: impl IntoIterator<Item = String>) -> Self {
        self.partitions = Some(partitions.into_iter().map(|p| p.trim_matches('/').to_string()).collect());
        self
    }

    /// Merges the staged fragments into `table` in one commit; `force` compacts small, fresh
    /// partitions too.
    pub async fn run(&self, table: &mut DeltaTable, force: bool) -> Result<CompactionReport> {
        let mut lap = Lap::start();
        let mut timings = Timings::default();
        table.update_state().await?;
        let read_version = table.version().unwrap_or_default();
        let mut history = LoadHistory::load(&self.store, read_version).await?;
        let compactions = table.snapshot()?.transaction_version(table.log_store().as_ref(), COMPACTOR_APP_ID).await?;
        timings.load_ms = lap.next();

        let mut staged = Vec::new();
        for meta in self.fragments.list().await? {
            if let Some(wanted) = &self.partitions
                && !wanted.contains(staged_partition(&meta.location))
            {
                continue;
            }
            match self.fragments.info(&meta).await {
                Ok(info) => staged.push(info),
                // Consumed by another compactor between our listing and this read.
                Err(Error::Storage(object_store::Error::NotFound { .. })) => {}
                Err(err) => return Err(err),
            }
        }
        timings.stage_ms = lap.next();
        if staged.is_empty() {
            return Ok(CompactionReport { timings, ..Default::default() });
        }
        let now = chrono::Utc::now();
        let oldest_staged_seconds =
            staged.iter().map(|f| (now - f.staged_at).num_seconds().max(0) as u64).max().unwrap_or(0);
        let plan = Plan::new(staged, &history, &self.options, force);
        let mut report = CompactionReport {
            fragments: plan.consume.len(),
            deferred_fragments: plan.deferred,
            oldest_staged_seconds,
            timings,
            ..Default::default()
        };
        if plan.consume.is_empty() {
            tracing::info!(deferred = report.deferred_fragments, oldest_staged_seconds, "nothing ready to compact");
            return Ok(report);
        }

        // New nullable columns in the declared schema join the table in this commit.
        let metadata = table.snapshot()?.metadata().clone();
        let table_schema = metadata.parse_schema().map_err(DeltaTableError::from)?;
        let evolved = plan_evolution(&table_schema, &self.schema.delta)?;
        let target: SchemaRef = Arc::new((evolved.as_ref().unwrap_or(&table_schema)).try_into_arrow()?);
        let mut writer = DataFiles::new(table, target.clone(), self.options.target_file_bytes)?;
        let mut committed: BTreeMap<SourceId, u64> = BTreeMap::new();
        for info in &plan.consume {
            let kept = plan.kept_in(info);
            let rows = match self.fragments.rows(&info.path).await {
                Ok(rows) => rows,
                // Only a compactor deletes fragments, and only after committing them: another
                // one got here first. Its sources are either in the history we read or in a
                // commit after it, which makes ours fail on the compactor txn. Skipping is safe.
                Err(Error::Storage(object_store::Error::NotFound { .. })) => {
                    tracing::warn!(fragment = %info.path, "fragment consumed by another compactor meanwhile");
                    continue;
                }
                Err(err) => return Err(err),
            };
            for batch in rows {
                let batch = batch?;
                let total = batch.num_rows() as u64;
                let batch = conform(&batch, &target)?;
                let batch = if kept.len() == info.sources.len() { batch } else { only_sources(&batch, &kept)? };
                report.duplicate_rows += total - batch.num_rows() as u64;
                if batch.num_rows() > 0 {
                    report.rows += batch.num_rows() as u64;
                    writer.write(&batch).await?;
                }
            }
            for source in info.sources.iter().filter(|s| kept.contains(&s.id())) {
                *committed.entry(source.id()).or_default() += source.rows;
            }
        }
        let consumed: Vec<Path> = plan.consume.iter().map(|info| info.path.clone()).collect();
        let adds = writer.close().await?;
        report.timings.merge_ms = lap.next();
        report.sources = committed.len();
        report.files = adds.len();
        report.bytes = adds.iter().map(|add| add.size.max(0) as u64).sum();

        if !adds.is_empty() {
            let mut actions: Vec<Action> = Vec::with_capacity(adds.len() + 1);
            if let Some(schema) = &evolved {
                let added: Vec<&str> = schema
                    .fields()
                    .filter(|f| table_schema.field(f.name()).is_none())
                    .map(|f| f.name().as_str())
                    .collect();
                tracing::info!(columns = ?added, "adding columns to the table schema");
                actions.push(Action::Metadata(metadata.clone().with_schema(schema).map_err(DeltaTableError::from)?));
            }
            actions.extend(adds.into_iter().map(Action::Add));
            let sources: Vec<CommittedSource> =
                committed.into_iter().map(|(id, rows)| CommittedSource { id, rows }).collect();
            let sources_json = serde_json::to_value(&sources)?;
            let properties = CommitProperties::default()
                .with_metadata([
                    (COMMIT_SOURCES_KEY.to_string(), sources_json),
                    (
                        "inlet.fragments".to_string(),
                        serde_json::json!(consumed.iter().map(|p| p.to_string()).collect::<Vec<_>>()),
                    ),
                    ("inlet.rows".to_string(), serde_json::json!(report.rows)),
                ])
                // A second compactor that read the same txn version conflicts instead of appending the same rows.
                .with_application_transaction(Transaction::new(COMPACTOR_APP_ID, compactions.unwrap_or(0) + 1))
                .with_cleanup_expired_logs(Some(log_cleanup_due(table)?));
            let operation = DeltaOperation::Write { mode: SaveMode::Append, partition_by: None, predicate: None };
            let committed = CommitBuilder::from(properties)
                .with_actions(actions)
                .build(Some(table.snapshot()?), table.log_store(), operation)
                .await?;
            let version = committed.version();
            report.version = Some(version);
            table.state = Some(committed.snapshot());
            report.timings.commit_ms = lap.next();
            let now = chrono::Utc::now().timestamp_millis();
            if history.snapshot_due(version, self.options.snapshot_every, now) {
                // Our commit directly on top of what we read: the history is what we loaded plus
                // what we added. Anything else committed in between: read the log again.
                let current = if version == read_version + 1 {
                    history.version = version;
                    history.sources.extend(sources.into_iter().map(|source| (source.id, now)));
                    Ok(history)
                } else {
                    LoadHistory::load(&self.store, version).await
                };
                self.snapshot_history(current).await;
            }
        }
        // Only after the commit: a crash before this line leaves fragments the history explains.
        self.fragments.delete(&consumed).await?;
        report.timings.cleanup_ms = lap.next();
        tracing::info!(
            fragments = report.fragments,
            deferred = report.deferred_fragments,
            sources = report.sources,
            rows = report.rows,
            duplicate_rows = report.duplicate_rows,
            files = report.files,
            bytes = report.bytes,
            version = report.version,
            timings = ?report.timings,
            "compaction done"
        );
        Ok(report)
    }

    /// Writes a history snapshot; a failure only costs later runs more commit reads.
    async fn snapshot_history(&self, history: Result<LoadHistory>) {
        let retain_after = chrono::Utc::now().timestamp_millis() - self.options.history_retention.as_millis() as i64;
        let saved = match history {
            Ok(history) => history.save_snapshot(&self.store, retain_after).await,
            Err(err) => Err(err),
        };
        match saved {
            Ok(path) => tracing::info!(snapshot = %path, "load history snapshot written"),
            Err(err) => tracing::warn!(error = %err, "load history snapshot not written"),
        }
    }
}

/// The partition directory a fragment is staged under (`date=2026-05-16`; empty when unpartitioned).
fn staged_partition(path: &Path) -> &str {
    let relative = path.as_ref().strip_prefix(FRAGMENTS_PREFIX).unwrap_or(path.as_ref()).trim_start_matches('/');
    relative.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// The rows of `batch` that come from one of `sources`.
fn only_sources(batch: &RecordBatch, sources: &HashSet<SourceId>) -> Result<RecordBatch> {
    let files = batch.column_by_name(SOURCE_FILE_COLUMN).ok_or_else(|| lineage_missing(SOURCE_FILE_COLUMN))?;
    let etags = batch.column_by_name(SOURCE_ETAG_COLUMN).ok_or_else(|| lineage_missing(SOURCE_ETAG_COLUMN))?;
    let (files, etags) = (files.as_string::<i32>(), etags.as_string::<i32>());
    let wanted: BTreeSet<(&str, Option<&str>)> =
        sources.iter().map(|id| (id.uri.as_str(), id.etag.as_deref())).collect();
    let mask: BooleanArray = (0..batch.num_rows())
        .map(|row| {
            let etag = (!etags.is_null(row)).then(|| etags.value(row));
            Some(wanted.contains(&(files.value(row), etag)))
        })
        .collect();
    Ok(arrow_select::filter::filter_record_batch(batch, &mask)?)
}

fn lineage_missing(column: &str) -> Error {
    Error::Config(format!("fragment has no {column} column: it was not written by this version of Inlet"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap as Map;

    use object_store::{ObjectStoreExt, PutPayload};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;
    use crate::decode::JsonDecoder;
    use crate::event::SourceObject;
    use crate::fragment::{self, FragmentSource, FragmentWriter};
    use crate::schema::{Layout, TableSchema};
    use crate::table::{Maintenance, table_store};

    const SCHEMA: &str = r#"{"fields":[{"name":"id","type":"long"}]}"#;

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
        let schema = Arc::new(TableSchema::parse_with(SCHEMA, "t", layout).unwrap());
        let store = table_store(&url, &Map::new()).unwrap();
        Lake { fragments: FragmentStore::new(store.clone()), dir, url, schema, store }
    }

    impl Lake {
        async fn table(&self) -> DeltaTable {
            open_or_create(
                &self.url,
                &Map::new(),
                &self.schema,
                Maintenance { checkpoint_interval: 4, log_retention_days: 30 },
            )
            .await
            .unwrap()
        }

        /// Stages the rows `ids` of object `key` as converter batch `batch` would.
        async fn stage(&self, batch: &str, key: &str, ids: std::ops::Range<i64>) -> Path {
            self.stage_part(batch, key, ids.clone(), ids.count() as u64).await
        }

        async fn stage_part(&self, batch: &str, key: &str, ids: std::ops::Range<i64>, total: u64) -> Path {
            let object = SourceObject { bucket: "raw".into(), key: key.into(), etag: Some("e1".into()) };
            let data: String = ids.clone().map(|i| format!("{{\"id\":{i}}}\n")).collect();
            let batches = JsonDecoder::new(self.schema.clone(), 64).decode(&object, data.as_bytes()).unwrap().batches;
            let mut writer = FragmentWriter::new(&self.schema.table).unwrap();
            let source = FragmentSource {
                uri: object.uri(),
                etag: object.etag.clone(),
                rows: ids.count() as u64,
                total_rows: Some(total),
            };
            writer.write(source, &batches).unwrap();
            self.fragments.put(writer.finish(batch).unwrap(), None).await.unwrap()
        }

        /// Stages object `key` of a `date=key` partitioned table.
        async fn stage_keyed(&self, key: &str, ids: std::ops::Range<i64>) {
            let object = SourceObject { bucket: "raw".into(), key: key.into(), etag: Some("e".into()) };
            let data: String = ids.clone().map(|i| format!("{{\"id\":{i}}}\n")).collect();
            let spec = self.schema.layout.partition.clone().unwrap();
            let decoded = JsonDecoder::new(self.schema.clone(), 64).decode(&object, data.as_bytes()).unwrap();
            let value = spec.value_from_key(key);
            let batches: Vec<RecordBatch> = decoded
                .batches
                .into_iter()
                .flat_map(|b| spec.split(b, value.as_deref()).unwrap())
                .map(|(_, b)| b)
                .collect();
            let source = FragmentSource {
                uri: object.uri(),
                etag: object.etag.clone(),
                rows: ids.count() as u64,
                total_rows: None,
            };
            let bytes = fragment::encode(&self.schema.table, &batches, &[source]).unwrap();
            self.fragments.put(bytes, Some(("date", value.as_deref()))).await.unwrap();
        }

        fn rows(&self, table: &DeltaTable) -> Vec<i64> {
            let mut ids = Vec::new();
            for uri in table.get_file_uris().unwrap() {
                let path = uri.strip_prefix("file://").map(str::to_string).unwrap_or(uri);
                let path = if path.starts_with('/') { path.into() } else { self.dir.path().join(path) };
                for batch in ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
                    .unwrap()
                    .build()
                    .unwrap()
                {
                    let batch = batch.unwrap();
                    let values = batch.column_by_name("id").unwrap().as_primitive::<arrow_array::types::Int64Type>();
                    ids.extend(values.iter().flatten());
                }
            }
            ids.sort();
            ids
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
        let target = 64 * 1024;
        let options = CompactorOptions { target_file_bytes: target, ..test_options() };
        let report =
            Compactor::new(lake.store.clone(), lake.schema.clone(), options).run(&mut table, false).await.unwrap();
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
        lake.compactor().run(&mut table, false).await.unwrap();
        // The crash: the commit landed but the fragment was never deleted.
        lake.store.put(&path, PutPayload::from(bytes)).await.unwrap();
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

        // An incomplete copy whose converter died (no retry coming) is cleared once abandoned.
        lake.stage_part("b3", "c.json", 200..203, 6).await;
        assert_eq!(lake.compactor().run(&mut table, true).await.unwrap().deferred_fragments, 1, "force alone does not");
        let options = CompactorOptions { abandon_after: Duration::ZERO, ..test_options() };
        let report =
            Compactor::new(lake.store.clone(), lake.schema.clone(), options).run(&mut table, false).await.unwrap();
        assert_eq!((report.fragments, report.rows, report.duplicate_rows), (1, 0, 3));
        assert!(lake.fragments.list().await.unwrap().is_empty());
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
        let options = CompactorOptions { snapshot_every: 4, ..test_options() };
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
        assert_eq!(
            optimize(&mut table, &waiting, Some(&["date=2026-05-16".into()]), true).await.unwrap().version,
            None
        );
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
        let v2 = Arc::new(
            TableSchema::parse(r#"{"fields":[{"name":"id","type":"long"},{"name":"country","type":"string"}]}"#, "v2")
                .unwrap(),
        );
        lake.stage("b2", "late-old.json", 3..5).await;
        let object = SourceObject { bucket: "raw".into(), key: "new.json".into(), etag: Some("e".into()) };
        let data = b"{\"id\":5,\"country\":\"DE\"}\n{\"id\":6}\n";
        let batches = JsonDecoder::new(v2.clone(), 64).decode(&object, data).unwrap().batches;
        let source = FragmentSource { uri: object.uri(), etag: object.etag.clone(), rows: 2, total_rows: None };
        lake.fragments.put(fragment::encode(&v2.table, &batches, &[source]).unwrap(), None).await.unwrap();

        let report = lake.compactor_for(v2.clone()).run(&mut table, false).await.unwrap();
        assert_eq!((report.rows, report.version), (4, Some(2)));
        let commit = std::fs::read_to_string(lake.dir.path().join("_delta_log/00000000000000000002.json")).unwrap();
        assert!(commit.contains("\"metaData\"") && commit.contains("\"add\""), "schema and data in one commit");
        let schema = table.snapshot().unwrap().metadata().parse_schema().unwrap();
        assert!(schema.field("country").is_some_and(|f| f.is_nullable()));
        assert_eq!(lake.rows(&table), (0..7).collect::<Vec<_>>());

        // A type change is refused with the column named, and nothing is committed.
        let retyped = Arc::new(
            TableSchema::parse(
                r#"{"fields":[{"name":"id","type":"string"},{"name":"country","type":"string"}]}"#,
                "v3",
            )
            .unwrap(),
        );
        lake.stage("b3", "more.json", 7..8).await;
        let err = lake.compactor_for(retyped).run(&mut table, false).await.unwrap_err().to_string();
        assert!(err.contains("\"id\" changes type"), "{err}");
        assert_eq!(table.version(), Some(2));
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
        let report =
            Compactor::new(lake.store.clone(), lake.schema.clone(), stale).run(&mut table, false).await.unwrap();
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
}
