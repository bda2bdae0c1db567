//! Compaction: merge staged fragments into target-sized Parquet files and commit them to Delta
//! exactly once.
//!
//! One run is six phases, each a method of [`Compactor`]: **load** the table state and the
//! compactor's `txn` version; **list** the staged fragments' footers and look their sources up
//! in the load history (which source versions the table holds); **plan** which fragments to
//! take and which copy of each source to keep ([`plan::plan_compaction`], pure); **merge** the kept rows into files of the
//! target size; **commit** those files with the new history entries and the next `txn`
//! version in ONE Delta commit; **clean up** the consumed fragments, only then. A crash before
//! the commit leaves only unreferenced files; a crash after it leaves fragments whose sources
//! the next run finds in the history and drops.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use deltalake::kernel::{Action, Add, Metadata, MetadataExt, StructType};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableError};
use object_store::ObjectStore;
use object_store::path::Path;

use crate::commit::evolution::{FragmentColumns, plan_evolution};
use crate::commit::exclusive::{TableCommit, commit_exclusive};
use crate::commit::history::{LoadHistory, RebuildBudget, Rebuilt};
use crate::commit::table_files::{Input, TableFiles};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::faults::crash_point;
use crate::layout::{FRAGMENTS_KEY, ROWS_KEY, SOURCES_KEY, staged_partition};
use crate::lineage::{CommittedSource, SourceId};
use crate::schema::TableSchema;
use crate::stage::fragment::{BatchState, FragmentInfo, FragmentStore};
use dropped::DroppedSource;

mod dropped;
pub mod plan;
mod report;
mod request;
mod sealed;

pub use plan::{CompactionPlan, Policy, align_identities, plan_compaction};
use plan::{Seals, sort_by_seal};
use report::Lap;
pub use report::{CompactionReport, Timings};
pub use request::{CompactRequest, RoutedCompactor, TableOutcome, answer, compact_table};
pub use sealed::Invocation;

/// Compactor knobs, from the settings table (see the configuration table in the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactorOptions {
    /// Target size of committed files (`INLET_TARGET_FILE_BYTES`).
    pub target_file_bytes: u64,
    /// Age after which a fragment with an incomplete copy of a source is taken to come from a
    /// converter that died (`INLET_ABANDON_AFTER_SECONDS`).
    pub abandon_after: Duration,
    /// A partition with fewer staged bytes than this waits for more, unless forced
    /// (`INLET_MIN_COMPACT_BYTES`)...
    pub min_bytes: u64,
    /// ...until its oldest fragment is this old (`INLET_FRESHNESS_SECONDS`).
    pub freshness: Duration,
    /// Most time a run spends rebuilding a lost load history (`INLET_HISTORY_REBUILD_SECONDS`).
    pub history_rebuild_seconds: u64,
    /// Files a rebuild reads between saves (`INLET_HISTORY_REBUILD_SAVE_FILES`).
    pub history_rebuild_save_files: usize,
}

impl CompactorOptions {
    /// The options `settings` ask for.
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            target_file_bytes: settings.target_file_bytes,
            abandon_after: Duration::from_secs(settings.abandon_after_seconds),
            min_bytes: settings.min_compact_bytes,
            freshness: Duration::from_secs(settings.freshness_seconds),
            history_rebuild_seconds: settings.history_rebuild_seconds,
            history_rebuild_save_files: settings.history_rebuild_save_files,
        }
    }

    /// The planning policy of a run, forced or not, over `partitions` (all when `None`).
    fn policy(&self, force: bool, partitions: Option<HashSet<String>>) -> Policy {
        Policy {
            abandon_after: self.abandon_after,
            min_bytes: self.min_bytes,
            freshness: self.freshness,
            force,
            partitions,
            held: HashSet::new(),
        }
    }
}

impl Default for CompactorOptions {
    fn default() -> Self {
        Self::from_settings(&Settings::defaults())
    }
}

/// Where a run takes the time from: fragment ages.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Merges fragments of one table into its Delta log.
pub struct Compactor {
    store: Arc<dyn ObjectStore>,
    fragments: FragmentStore,
    schema: Arc<TableSchema>,
    options: CompactorOptions,
    partitions: Option<HashSet<String>>,
    clock: Arc<dyn Clock>,
}

/// What the load phase read.
struct Loaded {
    /// The table version the run reads.
    version: u64,
}

/// The staged fragments, sorted by their batch's seal.
struct Staged {
    /// Fragments a run may take.
    ready: Vec<FragmentInfo>,
    /// The batch records listed before the fragments.
    records: HashMap<String, BatchState>,
    /// Fragments of batches not sealed yet.
    waiting: Vec<FragmentInfo>,
}

/// What the merge phase wrote, ready to commit.
struct Merged {
    adds: Vec<Add>,
    /// Copies of sources deleted uncommitted with the consumed fragments.
    dropped: Vec<DroppedSource>,
    /// The table's metadata with the declared schema's new columns, when it has some.
    evolved: Option<Metadata>,
    /// Rows committed per source.
    sources: Vec<CommittedSource>,
    consumed: Vec<Path>,
}

impl Compactor {
    /// A compactor for the table whose root is `store`, declared as `schema`.
    pub fn new(store: Arc<dyn ObjectStore>, schema: Arc<TableSchema>, options: CompactorOptions) -> Self {
        let fragments = FragmentStore::new(store.clone());
        Self { fragments, store, schema, options, partitions: None, clock: Arc::new(SystemClock) }
    }

    /// Limits runs to fragments staged for these partitions (Hive directories). A source whose
    /// copy also has fragments in other partitions waits for a run that takes all of them.
    pub fn with_partitions(mut self, partitions: impl IntoIterator<Item = String>) -> Self {
        self.partitions = Some(partitions.into_iter().map(|p| p.trim_matches('/').to_string()).collect());
        self
    }

    /// Takes the time from `clock` instead of the system's.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Merges the staged fragments into `table` in one commit; `force` compacts small, fresh
    /// partitions too.
    pub async fn run(&self, table: &mut DeltaTable, force: bool) -> Result<CompactionReport> {
        let mut lap = Lap::start();
        let mut report = CompactionReport::default();
        let loaded = self.load(table).await?;
        report.timings.load_ms = lap.next();
        let Staged { ready: staged, records, waiting } = self.list_staged(&mut report).await?;
        report.timings.stage_ms = lap.next();
        if staged.is_empty() {
            self.forget_finished_batches(records, waiting.iter().chain(&staged), &[]).await?;
            return Ok(report);
        }
        let ids: BTreeSet<SourceId> = staged.iter().flat_map(|f| f.sources.iter().map(|s| s.id.clone())).collect();
        let found = self.look_up(table, loaded.version, &Vec::from_iter(ids), &mut report).await?;
        report.timings.load_ms += lap.next();
        let Some((history, committed)) = found else {
            // Nothing can be judged a duplicate without the history: all waits for the rebuild.
            report.deferred_fragments = staged.len() + waiting.len();
            return Ok(report);
        };
        // The table's schema, with the declared schema's new columns and then those only the
        // fragments carry (their converters read a newer schema than this compactor).
        let current = table.snapshot()?.metadata().parse_schema().map_err(DeltaTableError::from)?;
        let base = plan_evolution(&current, &self.schema.delta)?.unwrap_or_else(|| current.clone());
        let columns = fragment_columns(&base, &staged, &committed, &mut report);
        let policy = Policy {
            held: columns.held.keys().cloned().collect(),
            ..self.options.policy(force, self.partitions.clone())
        };
        let plan = plan_compaction(staged, |id| committed.contains(id), &policy, self.clock.now());
        note_plan(&plan, &mut report);
        if plan.consume.is_empty() {
            tracing::info!(
                deferred = plan.deferred,
                oldest_staged_seconds = plan.oldest_staged_seconds,
                "nothing ready to compact"
            );
            self.forget_finished_batches(records, waiting.iter().chain(&plan.deferred_fragments), &[]).await?;
            return Ok(report);
        }
        let schema = columns.evolve(&base, plan.consume.iter().map(|fragment| &fragment.path))?;
        let mut merged = self.merge(table, &plan, &current, &schema, &mut report).await?;
        report.timings.merge_ms = lap.next();
        let consumed = merged.consumed.clone();
        // The partitions files are added to (a fragment of duplicates only adds none).
        report.committed_partitions =
            merged.adds.iter().map(|add| add.path.rsplit_once('/').map_or("", |(dir, _)| dir).to_string()).collect();
        let dropped = std::mem::take(&mut merged.dropped);
        // Sources of no rows (every line quarantined) are committed too: the history then
        // knows them, and a later conversion of the same version is a duplicate.
        if !merged.adds.is_empty() || !merged.sources.is_empty() {
            crash_point("compactor.before_commit");
            let (version, sources) = self.commit(table, merged, report.rows).await?;
            crash_point("compactor.after_commit");
            report.version = Some(version);
            report.timings.commit_ms = lap.next();
            self.record_history(history, version, &sources).await;
        }
        crash_point("compactor.before_delete");
        // Before the delete, so that no row goes without its record (a crash repeats it).
        dropped::record(&self.store, &dropped).await?;
        // Only after the commit: a crash before this line leaves fragments the history explains.
        self.fragments.delete(&consumed).await?;
        self.forget_finished_batches(records, waiting.iter().chain(&plan.deferred_fragments), &consumed).await?;
        report.timings.cleanup_ms = lap.next();
        report.log();
        Ok(report)
    }

    /// Refreshes the table.
    async fn load(&self, table: &mut DeltaTable) -> Result<Loaded> {
        table.update_state().await?;
        Ok(Loaded { version: table.version().unwrap_or_default() })
    }

    /// Which of `ids` the table holds as of `version`, and the load history that says so;
    /// rebuilt from the table's lineage columns when neither its index nor the log can answer.
    /// `None` while that rebuild is unfinished (its progress in `report`).
    async fn look_up(
        &self,
        table: &DeltaTable,
        version: u64,
        ids: &[SourceId],
        report: &mut CompactionReport,
    ) -> Result<Option<(LoadHistory, HashSet<SourceId>)>> {
        if let Some(found) = LoadHistory::lookup(&self.store, version, ids).await? {
            if found.0.indexed != Some(version) {
                tracing::info!(version, indexed = ?found.0.indexed, "load history read commits past its index");
            }
            return Ok(Some(found));
        }
        let files =
            table.snapshot()?.log_data().into_iter().map(|add| (add.object_store_path(), add.size() as u64)).collect();
        let budget =
            RebuildBudget::from_now(self.options.history_rebuild_seconds, self.options.history_rebuild_save_files);
        match LoadHistory::rebuild(&self.store, version, files, budget).await? {
            Rebuilt::Done(history, _) => {
                let committed = history.committed(&self.store, ids).await?;
                Ok(Some((history, committed)))
            }
            Rebuilt::Pending(progress) => {
                tracing::warn!(
                    read = progress.read,
                    files = progress.files,
                    "load history rebuild continues next run: fragments held back"
                );
                report.history_rebuild = Some(progress);
                Ok(None)
            }
        }
    }

    /// Every staged fragment a run may take, with its footer: even a partition-limited run
    /// judges each copy of a source by all of its fragments. A file whose footer cannot be read
    /// is set aside, counted in `report`, so that it stops nothing. Fragments of a converter
    /// batch wait for its seal; see [`Compactor::void_abandoned`].
    async fn list_staged(&self, report: &mut CompactionReport) -> Result<Staged> {
        // Records first: a seal listed here has all its fragments in the listing below.
        let records = self.fragments.batches().await?;
        let mut staged = Vec::new();
        for meta in self.fragments.list().await? {
            match self.fragments.info(&meta).await {
                Ok(info) => staged.push(info),
                // Consumed by another compactor between our listing and this read.
                Err(Error::Storage(object_store::Error::NotFound { .. })) => {}
                // The store failing is not the file's fault: the run fails and is retried.
                Err(err @ Error::Storage(_)) => return Err(err),
                Err(err) => {
                    let aside = self.fragments.set_aside(&meta.location).await?;
                    tracing::error!(fragment = %meta.location, error = %err, aside = %aside, "unreadable fragment set aside");
                    report.corrupt_fragments += 1;
                }
            }
        }
        align_identities(&mut staged);
        self.void_abandoned(staged, records, report).await
    }

    /// Splits fragments into those a run may take (sealed batches, and fragments that need no
    /// seal) and those waiting for their batch's seal ([`plan::sort_by_seal`]). A batch the
    /// planner finds abandoned is voided, so that its converter can never seal it, and its
    /// fragments are deleted: that converter failed its messages, so SQS redelivers them.
    async fn void_abandoned(
        &self,
        staged: Vec<FragmentInfo>,
        records: HashMap<String, BatchState>,
        report: &mut CompactionReport,
    ) -> Result<Staged> {
        let now = self.clock.now();
        let Seals { mut ready, void: mut garbage, waiting, abandoned } =
            sort_by_seal(staged, &records, self.options.abandon_after, now);
        for (batch, fragments) in abandoned {
            // Its record is not forgotten before the next run: a converter finishing meanwhile
            // finds its seal refused (and later, its fragments gone).
            match self.fragments.void(&batch).await? {
                BatchState::Sealed => ready.extend(fragments),
                BatchState::Void => {
                    tracing::warn!(batch = %batch, fragments = fragments.len(), "unsealed batch abandoned: voided");
                    garbage.extend(fragments);
                }
            }
        }
        report.unsealed_fragments = waiting.len();
        report.abandoned_fragments = garbage.len();
        report.abandoned_rows = garbage.iter().flat_map(|f| &f.sources).map(|s| s.rows).sum();
        let voided: Vec<DroppedSource> = garbage
            .iter()
            .flat_map(|f| &f.sources)
            .map(|s| DroppedSource { id: s.id.clone(), rows: s.rows, reason: dropped::VOIDED.into() })
            .collect();
        dropped::record(&self.store, &voided).await?;
        let paths: Vec<Path> = garbage.iter().map(|f| f.path.clone()).collect();
        self.fragments.delete(&paths).await?;
        Ok(Staged { ready, records, waiting })
    }

    /// Removes the records of batches with no fragment left staged: `left` (listed and still
    /// there) minus `consumed`. A record listed before the fragments cannot belong to a batch
    /// whose fragments the listing missed.
    async fn forget_finished_batches<'a>(
        &self,
        records: HashMap<String, BatchState>,
        left: impl Iterator<Item = &'a FragmentInfo>,
        consumed: &[Path],
    ) -> Result<()> {
        let consumed: HashSet<&Path> = consumed.iter().collect();
        let remaining: HashSet<&str> =
            left.filter(|f| !consumed.contains(&f.path)).filter_map(|f| f.batch.as_deref()).collect();
        let finished: Vec<&str> = records.keys().map(String::as_str).filter(|b| !remaining.contains(b)).collect();
        self.fragments.forget_batches(finished).await
    }

    /// Streams the kept rows of the plan's fragments into target-sized files of `schema`: the
    /// table's `current` one, or that evolved with new nullable columns.
    async fn merge(
        &self,
        table: &DeltaTable,
        plan: &CompactionPlan,
        current: &StructType,
        schema: &StructType,
        report: &mut CompactionReport,
    ) -> Result<Merged> {
        let metadata = table.snapshot()?.metadata().clone();
        let mut files = TableFiles::new(table, schema, self.options.target_file_bytes)?;
        let mut committed: BTreeMap<SourceId, u64> = BTreeMap::new();
        let mut dropped = Vec::new();
        for info in by_partition(&plan.consume) {
            let kept = plan.kept_in(info);
            dropped.extend(not_kept(plan, info, &kept, report));
            if kept.is_empty() {
                // Nothing of it is committed: its rows need no reading.
                continue;
            }
            let Some(data) = self.fragment_bytes(info).await? else { continue };
            // Only a fragment whose every row is kept may be copied as it is.
            let keep = (kept.len() != info.sources.len()).then_some(&kept);
            let written = files.write(data, Input::Fragment { keep }).await?;
            report.rows += written.rows;
            if written.copied {
                report.copied_fragments += 1;
            }
            for source in info.sources.iter().filter(|s| kept.contains(&s.id)) {
                *committed.entry(source.id.clone()).or_default() += source.rows;
            }
        }
        let adds = files.close().await?;
        report.sources = committed.len();
        report.files = adds.len();
        report.bytes = adds.iter().map(|add| add.size.max(0) as u64).sum();
        // Columns are only ever added, so more of them is a change.
        let evolved = (schema.num_fields() > current.num_fields())
            .then(|| with_new_columns(metadata, current, schema))
            .transpose()?;
        let sources = committed.into_iter().map(|(id, rows)| CommittedSource { id, rows }).collect();
        let consumed = plan.consume.iter().map(|info| info.path.clone()).collect();
        Ok(Merged { adds, dropped, evolved, sources, consumed })
    }

    /// The bytes of the fragment `info`, or `None` when another compactor consumed it meanwhile.
    async fn fragment_bytes(&self, info: &FragmentInfo) -> Result<Option<Bytes>> {
        match self.fragments.bytes(&info.path).await {
            Ok(data) => Ok(Some(data)),
            // Only a compactor deletes fragments, and only after committing them: another
            // one got here first. Its sources are either in the history we read or in a
            // commit after it, which makes ours fail on the compactor txn. Skipping is safe.
            Err(Error::Storage(object_store::Error::NotFound { .. })) => {
                tracing::warn!(fragment = %info.path, "fragment consumed by another compactor meanwhile");
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// Commits the merged files and the sources they hold in one Delta commit, which conflicts
    /// with another compaction committed since the run read the table (see
    /// [`commit_exclusive`]); returns its
    /// version and the committed sources.
    async fn commit(&self, table: &mut DeltaTable, merged: Merged, rows: u64) -> Result<(u64, Vec<CommittedSource>)> {
        let Merged { adds, evolved, sources, consumed, .. } = merged;
        let actions: Vec<Action> =
            evolved.map(Action::Metadata).into_iter().chain(adds.into_iter().map(Action::Add)).collect();
        let commit = TableCommit {
            actions,
            operation: DeltaOperation::Write { mode: SaveMode::Append, partition_by: None, predicate: None },
            metadata: vec![
                (SOURCES_KEY.to_string(), serde_json::to_value(&sources)?),
                (
                    FRAGMENTS_KEY.to_string(),
                    serde_json::json!(consumed.iter().map(|p| p.to_string()).collect::<Vec<_>>()),
                ),
                (ROWS_KEY.to_string(), serde_json::json!(rows)),
            ],
        };
        let version = commit_exclusive(table, &commit).await?;
        Ok((version, sources))
    }

    /// Adds commit `version`'s sources to the history index; a failure only leaves later
    /// runs more of the log to read.
    async fn record_history(&self, history: LoadHistory, version: u64, sources: &[CommittedSource]) {
        match history.record(&self.store, version, sources).await {
            Ok(history) => tracing::info!(version, indexed_entries = history.indexed_entries(), "load history indexed"),
            Err(err) => tracing::warn!(version, error = %err, "load history index not updated"),
        }
    }
}

/// The table's metadata with the columns of `evolved` it lacks.
fn with_new_columns(metadata: Metadata, current: &StructType, evolved: &StructType) -> Result<Metadata> {
    let added: Vec<&str> =
        evolved.fields().filter(|f| current.field(f.name()).is_none()).map(|f| f.name().as_str()).collect();
    tracing::info!(columns = ?added, "adding columns to the table schema");
    Ok(metadata.with_schema(evolved).map_err(DeltaTableError::from)?)
}

/// What the staged fragments' own columns ask of a table whose schema would be `base`, the
/// fragments held back logged and counted in `report`. A held fragment whose sources the table
/// already has (`committed`) holds nothing worth keeping.
fn fragment_columns(
    base: &StructType,
    staged: &[FragmentInfo],
    committed: &HashSet<SourceId>,
    report: &mut CompactionReport,
) -> FragmentColumns {
    let mut columns = FragmentColumns::of(base, staged);
    let redundant: Vec<&Path> = staged
        .iter()
        .filter(|f| columns.held.contains_key(&f.path) && f.sources.iter().all(|s| committed.contains(&s.id)))
        .map(|f| &f.path)
        .collect();
    for path in redundant {
        columns.held.remove(path);
    }
    for (fragment, reason) in &columns.held {
        tracing::error!(fragment = %fragment, reason = %reason, "fragment held back: a column it carries cannot join the table");
    }
    report.held_fragments = columns.held.len();
    columns
}

/// Counts in `report` what `plan` takes and leaves, and names the sources it holds stranded.
fn note_plan(plan: &CompactionPlan, report: &mut CompactionReport) {
    report.fragments = plan.consume.len();
    report.deferred_fragments = plan.deferred;
    if !plan.stranded.is_empty() {
        let sources: Vec<&str> = plan.stranded.iter().map(|id| id.uri.as_str()).collect();
        tracing::error!(
            ?sources,
            "sources held: a sealed batch lost a fragment of each (set aside under _inlet/corrupt/); stage them \
             again with `inlet backfill` and the complete copies are committed"
        );
    }
    report.stranded = plan.stranded.iter().map(SourceId::describe).collect();
    report.oldest_staged_seconds = plan.oldest_staged_seconds;
}

/// A partition's fragments one after another (listings already give them so), which lets the
/// copier keep one file open.
fn by_partition(fragments: &[FragmentInfo]) -> Vec<&FragmentInfo> {
    let mut sorted: Vec<&FragmentInfo> = fragments.iter().collect();
    sorted.sort_by(|a, b| staged_partition(&a.path).cmp(staged_partition(&b.path)));
    sorted
}

/// The rows of `info` the plan does not keep, counted in `report`: duplicates when the table
/// has their source; else a copy never to be committed, returned by source to be recorded.
fn not_kept(
    plan: &CompactionPlan,
    info: &FragmentInfo,
    kept: &HashSet<SourceId>,
    report: &mut CompactionReport,
) -> Vec<DroppedSource> {
    let mut dropped = Vec::new();
    for source in info.sources.iter().filter(|s| !kept.contains(&s.id)) {
        if plan.loads(&source.id) {
            report.duplicate_rows += source.rows;
        } else {
            report.dropped_rows += source.rows;
            let reason = dropped::reason(source.failed).to_string();
            dropped.push(DroppedSource { id: source.id.clone(), rows: source.rows, reason });
        }
    }
    dropped
}

#[cfg(test)]
mod tests;
