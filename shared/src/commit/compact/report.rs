//! What a compaction run did, for logs, metrics and the caller.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::commit::complete::CompletenessReport;
use crate::commit::history::RebuildProgress;
use crate::commit::optimize::{OptimizeReport, VacuumReport};
use crate::metrics::Metric;

/// What one compaction run did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CompactionReport {
    /// Fragments merged and deleted.
    pub fragments: usize,
    /// Of those, fragments whose row groups were copied into table files as they were encoded
    /// (the others were decoded and encoded again: an older encoding or schema, or rows to drop).
    pub copied_fragments: usize,
    /// Fragments left staged: small and fresh, or holding a copy of a source not complete yet.
    pub deferred_fragments: usize,
    /// Of the deferred fragments, those held back because a column they carry cannot join the
    /// table (not nullable, no exact Delta type, or typed two ways); they wait, staged, for a
    /// fix or a compactor whose declared schema has the column.
    pub held_fragments: usize,
    /// Staged files that could not be read as fragments, set aside under `_inlet/corrupt/`.
    pub corrupt_fragments: usize,
    /// Fragments of converter batches not sealed yet (their converter may still be running).
    pub unsealed_fragments: usize,
    /// Fragments of batches voided as abandoned (never sealed), deleted uncommitted: their
    /// converter could not seal them, so it failed their messages and SQS redelivers them.
    pub abandoned_fragments: usize,
    /// Rows those abandoned fragments held.
    pub abandoned_rows: u64,
    /// Age of the oldest staged fragment when the run started, in seconds: the freshness lag.
    pub oldest_staged_seconds: u64,
    /// Source objects whose rows were committed.
    pub sources: usize,
    /// Rows committed.
    pub rows: u64,
    /// Rows dropped because their source is in the table (already, or from another copy
    /// this run commits).
    pub duplicate_rows: u64,
    /// Rows deleted uncommitted although the table does not hold their source: copies never to
    /// be committed (a failed copy, an incomplete one whose converter died before batches were
    /// sealed), whose messages SQS delivers again. Each is named under `_inlet/dropped/`.
    pub dropped_rows: u64,
    /// Sources held because a sealed batch lost a fragment of their copy, as `describe` names
    /// them: their messages were answered, so they wait for `inlet backfill` (alarmed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stranded: Vec<String>,
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
    /// A rebuild of the load history index left unfinished by this run: nothing is committed
    /// until it completes (alarmed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_rebuild: Option<RebuildProgress>,
    /// The partition directories of the fragments this run committed.
    #[serde(skip)]
    pub committed_partitions: BTreeSet<String>,
    /// How far a time-partitioned table is complete after the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completeness: Option<CompletenessReport>,
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
    /// Indexing the commit in the load history, deleting consumed fragments and finished batch records.
    pub cleanup_ms: u64,
}

/// Hands out the time since it was last asked, in milliseconds.
pub(super) struct Lap(std::time::Instant);

impl Lap {
    pub(super) fn start() -> Self {
        Self(std::time::Instant::now())
    }

    pub(super) fn next(&mut self) -> u64 {
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
        let rebuild_left = self.history_rebuild.map_or(0, |r| r.files - r.read);
        let mut metrics = self.completeness_metrics();
        metrics.extend([
            Metric { name: "FreshnessLag", value: self.oldest_staged_seconds as f64, unit: "Seconds" },
            Metric { name: "FragmentsConsumed", value: self.fragments as f64, unit: "Count" },
            Metric { name: "FragmentsDeferred", value: self.deferred_fragments as f64, unit: "Count" },
            Metric { name: "FragmentsHeldForSchema", value: self.held_fragments as f64, unit: "Count" },
            Metric { name: "CorruptFragments", value: self.corrupt_fragments as f64, unit: "Count" },
            Metric { name: "RowsCommitted", value: self.rows as f64, unit: "Count" },
            Metric { name: "DuplicateRowsDropped", value: self.duplicate_rows as f64, unit: "Count" },
            Metric { name: "UncommittedRowsDropped", value: self.dropped_rows as f64, unit: "Count" },
            Metric { name: "StrandedSources", value: self.stranded.len() as f64, unit: "Count" },
            Metric { name: "UnsealedFragments", value: self.unsealed_fragments as f64, unit: "Count" },
            Metric { name: "AbandonedRows", value: self.abandoned_rows as f64, unit: "Count" },
            Metric { name: "FilesWritten", value: self.files as f64, unit: "Count" },
            Metric { name: "BytesWritten", value: self.bytes as f64, unit: "Bytes" },
            Metric { name: "CommitVersion", value: self.version.map_or(-1.0, |v| v as f64), unit: "None" },
            Metric { name: "SmallFilesOptimized", value: optimized as f64, unit: "Count" },
            Metric { name: "FilesVacuumed", value: vacuumed as f64, unit: "Count" },
            Metric { name: "HistoryRebuildFilesLeft", value: rebuild_left as f64, unit: "Count" },
            Metric { name: "CompactionFailed", value: 0.0, unit: "Count" },
        ]);
        metrics
    }

    /// How far behind completeness is, and late commits, for a time-partitioned table.
    fn completeness_metrics(&self) -> Vec<Metric> {
        let Some(completeness) = &self.completeness else { return Vec::new() };
        let mut metrics = vec![Metric { name: "LateCommits", value: completeness.late.len() as f64, unit: "Count" }];
        if let Some(through) = completeness.complete_through {
            let lag = (chrono::Utc::now() - through).num_seconds().max(0);
            metrics.push(Metric { name: "CompletenessLag", value: lag as f64, unit: "Seconds" });
        }
        metrics
    }
}

impl CompactionReport {
    /// Logs the run's outcome as one line.
    pub(super) fn log(&self) {
        tracing::info!(
            fragments = self.fragments,
            deferred = self.deferred_fragments,
            held = self.held_fragments,
            corrupt = self.corrupt_fragments,
            unsealed = self.unsealed_fragments,
            abandoned_rows = self.abandoned_rows,
            sources = self.sources,
            rows = self.rows,
            duplicate_rows = self.duplicate_rows,
            dropped_rows = self.dropped_rows,
            stranded = self.stranded.len(),
            files = self.files,
            bytes = self.bytes,
            version = self.version,
            timings = ?self.timings,
            "compaction done"
        );
    }
}
