//! Re-compaction of small files already in the table (OPTIMIZE), and vacuum.
//!
//! Small files are what near-real-time ingestion leaves behind: the freshness bound makes the
//! compactor commit whatever a partition holds after a minute or so. This bin-packs a
//! partition's small files into target-sized ones and commits the swap (`remove`s plus `add`s,
//! both `dataChange = false`) as one `OPTIMIZE` commit. Rows are copied, never changed, so the
//! load history is untouched. It commits through [`commit_exclusive`]: a concurrent append or
//! compaction commits beside it, while a concurrent rewrite of any of the same files (another
//! optimize, from a Lambda or the CLI) makes the later of the two commit nothing, since
//! delta-rs alone would let both swaps in and double every row they copied.

use std::collections::{BTreeMap, HashSet};

use deltalake::kernel::transaction::TransactionError;
use deltalake::kernel::{Action, Remove};
use deltalake::operations::vacuum::VacuumMode;
use deltalake::protocol::DeltaOperation;
use deltalake::{DeltaTable, DeltaTableError};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde::Serialize;

use crate::commit::exclusive::{TableCommit, commit_exclusive};
use crate::commit::table_files::{Input, TableFiles};
use crate::error::{Error, Result};
use crate::layout::{OPTIMIZED_KEY, partition_directory};

/// When small files get rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptimizeOptions {
    /// Size of the files written; a file under half of it counts as small.
    pub target_file_bytes: u64,
    /// A partition is rewritten once it holds this many small files (0: only when asked).
    pub min_small_files: usize,
}

impl OptimizeOptions {
    /// The options `settings` ask for.
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self { target_file_bytes: settings.target_file_bytes, min_small_files: settings.optimize_min_files }
    }
}

/// What one optimize pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct OptimizeReport {
    /// Partitions rewritten.
    pub partitions: usize,
    /// Small files replaced.
    pub files_removed: usize,
    /// Of those, files whose row groups were copied as they were encoded (the others, from
    /// before a schema change, were decoded and written again).
    pub files_copied: usize,
    /// Bytes of the files replaced.
    pub bytes_removed: u64,
    /// Files written in their place.
    pub files_added: usize,
    /// Bytes written.
    pub bytes_added: u64,
    /// The OPTIMIZE commit, if there was one.
    pub version: Option<u64>,
    /// Why nothing was committed although files were rewritten: another writer removed one of
    /// the same files (or changed the schema) first. The rewritten files are left for vacuum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflict: Option<String>,
}

/// A file of the table, as optimize sees it.
#[derive(Debug, Clone)]
pub struct TableFile {
    /// Location relative to the table root.
    pub path: Path,
    /// Size in bytes.
    pub size: u64,
    /// Its partition values, by column.
    pub partition: BTreeMap<String, Option<String>>,
    /// The action that removes it from the table.
    pub remove: Remove,
}

/// The Hive directory of a partition (`date=2026-05-16`), the name requests use.
fn partition_dir(values: &BTreeMap<String, Option<String>>, columns: &[String]) -> String {
    columns
        .iter()
        .map(|column| partition_directory(column, values.get(column).and_then(|value| value.as_deref())))
        .collect::<Vec<_>>()
        .join("/")
}

/// Groups small files into bins of at most `target` bytes; only bins of two or more files are
/// worth a rewrite. Largest first, each into the first bin it fits (first-fit decreasing).
fn bin_pack(mut files: Vec<TableFile>, target: u64) -> Vec<Vec<TableFile>> {
    files.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
    let mut bins: Vec<(u64, Vec<TableFile>)> = Vec::new();
    for file in files {
        match bins.iter_mut().find(|(bytes, _)| bytes + file.size <= target) {
            Some((bytes, members)) => {
                *bytes += file.size;
                members.push(file);
            }
            None => bins.push((file.size, vec![file])),
        }
    }
    bins.into_iter().map(|(_, members)| members).filter(|members| members.len() > 1).collect()
}

/// Which small files one optimize pass rewrites, bin by bin.
#[derive(Debug, Default)]
pub struct OptimizePlan {
    /// Files rewritten together into one target-sized file (or a few, should one overflow).
    pub bins: Vec<Vec<TableFile>>,
    /// Partitions touched.
    pub partitions: usize,
}

/// Plans a pass over `files` (the table's, with partition `columns`): files under half the
/// target size, grouped per partition, in partitions `wanted` (all when `None`) that hold
/// enough of them, or any two when `force`d. Pure: tested without a table.
pub fn plan_optimize(
    files: Vec<TableFile>,
    columns: &[String],
    options: &OptimizeOptions,
    wanted: Option<&[String]>,
    force: bool,
) -> OptimizePlan {
    let small_below = options.target_file_bytes / 2;
    let mut small: BTreeMap<String, Vec<TableFile>> = BTreeMap::new();
    for file in files.into_iter().filter(|file| file.size < small_below) {
        let dir = partition_dir(&file.partition, columns);
        if wanted.is_some_and(|wanted| !wanted.contains(&dir)) {
            continue;
        }
        small.entry(dir).or_default().push(file);
    }
    let due = |files: &Vec<TableFile>| {
        files.len() > 1 && (force || (options.min_small_files > 0 && files.len() >= options.min_small_files))
    };
    let bins: Vec<Vec<TableFile>> =
        small.into_values().filter(due).flat_map(|files| bin_pack(files, options.target_file_bytes)).collect();
    let partitions = bins.iter().map(|bin| partition_dir(&bin[0].partition, columns)).collect::<HashSet<_>>().len();
    OptimizePlan { bins, partitions }
}

/// The table's files optimize may rewrite (not those with deletion vectors).
fn table_files(table: &DeltaTable) -> Result<Vec<TableFile>> {
    let snapshot = table.snapshot()?;
    let files = snapshot
        .log_data()
        .iter()
        .filter(|file| file.deletion_vector_descriptor().is_none())
        .map(|file| TableFile {
            path: file.object_store_path(),
            size: file.size().max(0) as u64,
            partition: file.partition_values_map().into_iter().collect(),
            remove: file.remove_action(false),
        })
        .collect();
    Ok(files)
}

/// Rewrites small files of `table` into target-sized ones. `partitions` (Hive directories)
/// limits the pass; `force` rewrites every partition with two or more small files, however
/// few. Works from the table state already loaded (the compactor has just refreshed or
/// committed it); a newer commit by someone else is caught by the commit's conflict check.
pub async fn optimize(
    table: &mut DeltaTable,
    options: &OptimizeOptions,
    partitions: Option<&[String]>,
    force: bool,
) -> Result<OptimizeReport> {
    let columns = table.snapshot()?.metadata().partition_columns().to_vec();
    let plan = plan_optimize(table_files(table)?, &columns, options, partitions, force);
    plan.execute(table, options.target_file_bytes).await
}

impl OptimizePlan {
    /// Rewrites the bins and commits the swap as one `OPTIMIZE` commit.
    pub async fn execute(self, table: &mut DeltaTable, target_file_bytes: u64) -> Result<OptimizeReport> {
        let mut report = OptimizeReport { partitions: self.partitions, ..OptimizeReport::default() };
        if self.bins.is_empty() {
            return Ok(report);
        }
        let schema = table.snapshot()?.metadata().parse_schema().map_err(DeltaTableError::from)?;
        // Files in the table's current schema are copied row group by row group; others (from
        // before a schema change) are decoded and written again, from the same one read.
        let mut files = TableFiles::new(table, &schema, target_file_bytes)?;
        let store = table.object_store();
        let mut removes = Vec::new();
        for file in self.bins.into_iter().flatten() {
            let data = store.get(&file.path).await?.bytes().await?;
            if files.write(data, Input::TableFile { partition: &file.partition }).await?.copied {
                report.files_copied += 1;
            }
            report.files_removed += 1;
            report.bytes_removed += file.size;
            removes.push(file.remove);
        }
        let adds = files.close().await?;
        report.files_added = adds.len();
        report.bytes_added = adds.iter().map(|add| add.size.max(0) as u64).sum();
        match commit_rewrite(table, removes, adds, target_file_bytes, &report).await {
            Ok(version) => report.version = Some(version),
            Err(Error::Delta(DeltaTableError::Transaction { source: TransactionError::CommitConflict(conflict) })) => {
                tracing::warn!(error = %conflict, "optimize lost to a concurrent rewrite: nothing committed");
                report.conflict = Some(conflict.to_string());
                return Ok(report);
            }
            Err(err) => return Err(err),
        }
        tracing::info!(
            partitions = report.partitions,
            files_removed = report.files_removed,
            files_added = report.files_added,
            bytes_removed = report.bytes_removed,
            bytes_added = report.bytes_added,
            version = report.version,
            "small files optimized"
        );
        Ok(report)
    }
}

/// Commits the swap of `removes` for `adds`, neither changing data; returns the version, or
/// the conflict when another writer removed one of the same files (or changed the schema)
/// first: then nothing is committed, and the rewritten files are left for vacuum.
async fn commit_rewrite(
    table: &mut DeltaTable,
    removes: Vec<Remove>,
    adds: Vec<deltalake::kernel::Add>,
    target_file_bytes: u64,
    report: &OptimizeReport,
) -> Result<u64> {
    let actions: Vec<Action> = removes
        .into_iter()
        .map(Action::Remove)
        .chain(adds.into_iter().map(|add| Action::Add(deltalake::kernel::Add { data_change: false, ..add })))
        .collect();
    let commit = TableCommit {
        actions,
        operation: DeltaOperation::Optimize { predicate: None, target_size: target_file_bytes as i64 },
        metadata: vec![(
            OPTIMIZED_KEY.to_string(),
            serde_json::json!({"files_removed": report.files_removed, "files_added": report.files_added}),
        )],
    }
    .fenced(table.snapshot()?.metadata().clone());
    commit_exclusive(table, &commit).await
}

/// What a vacuum did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct VacuumReport {
    /// Files deleted: replaced by optimize longer ago than the retention, or never committed
    /// (left by a compactor that crashed or lost a race) and older than the retention.
    pub files_deleted: usize,
}

/// Deletes data files the table no longer references once they are older than the table's
/// `delta.deletedFileRetentionDuration` (7 days unless set), including files no commit ever
/// referenced. Staging (`_inlet/`) and the log are never touched. `retention` overrides the
/// table's setting, even below it (for tests and operators who know no reader is that far behind).
pub async fn vacuum(table: &mut DeltaTable, retention: Option<std::time::Duration>) -> Result<VacuumReport> {
    table.update_state().await?;
    let mut builder = table.clone().vacuum().with_mode(VacuumMode::Full);
    if let Some(retention) = retention {
        let retention = chrono::Duration::from_std(retention)
            .map_err(|_| Error::BadRequest(format!("vacuum retention {retention:?} is too long")))?;
        builder = builder.with_retention_period(retention).with_enforce_retention_duration(false);
    }
    let (vacuumed, metrics) = builder.await?;
    *table = vacuumed;
    tracing::info!(files_deleted = metrics.files_deleted.len(), "vacuum done");
    Ok(VacuumReport { files_deleted: metrics.files_deleted.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, date: &str, size: u64) -> TableFile {
        let path = format!("date={date}/{name}.parquet");
        TableFile {
            path: Path::from(path.as_str()),
            size,
            partition: BTreeMap::from([("date".to_string(), Some(date.to_string()))]),
            remove: Remove { path, ..Remove::default() },
        }
    }

    fn names(plan: &OptimizePlan) -> Vec<Vec<String>> {
        plan.bins.iter().map(|bin| bin.iter().map(|f| f.path.filename().unwrap().to_string()).collect()).collect()
    }

    const COLUMNS: &[&str] = &["date"];

    fn columns() -> Vec<String> {
        COLUMNS.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn partitions_with_enough_small_files_are_bin_packed_largest_first() {
        let options = OptimizeOptions { target_file_bytes: 100, min_small_files: 3 };
        let files = vec![
            file("a", "2026-05-16", 40),
            file("b", "2026-05-16", 30),
            file("c", "2026-05-16", 20),
            file("big", "2026-05-16", 60),
            file("x", "2026-05-17", 10),
            file("y", "2026-05-17", 10),
        ];
        let plan = plan_optimize(files.clone(), &columns(), &options, None, false);
        assert_eq!(names(&plan), vec![vec!["a.parquet", "b.parquet", "c.parquet"]], "big is not small; 05-17 has 2");
        assert_eq!(plan.partitions, 1);
        let forced = plan_optimize(files.clone(), &columns(), &options, None, true);
        assert_eq!(forced.partitions, 2, "forced, any two small files are worth it");
        let wanted = ["date=2026-05-17".to_string()];
        let only = plan_optimize(files, &columns(), &options, Some(&wanted), true);
        assert_eq!(names(&only), vec![vec!["x.parquet", "y.parquet"]]);
    }

    #[test]
    fn bins_never_exceed_the_target_and_single_files_stay() {
        let options = OptimizeOptions { target_file_bytes: 100, min_small_files: 2 };
        let files = vec![file("a", "d", 45), file("b", "d", 45), file("c", "d", 45), file("e", "d", 45)];
        let plan = plan_optimize(files, &columns(), &options, None, false);
        assert_eq!(names(&plan), vec![vec!["a.parquet", "b.parquet"], vec!["c.parquet", "e.parquet"]]);
        let lonely = plan_optimize(vec![file("a", "d", 45)], &columns(), &options, None, true);
        assert!(lonely.bins.is_empty(), "one small file alone is left as it is");
        let off = OptimizeOptions { min_small_files: 0, ..options };
        let files = vec![file("a", "d", 10), file("b", "d", 10), file("c", "d", 10)];
        assert!(plan_optimize(files, &columns(), &off, None, false).bins.is_empty(), "0: only when asked");
    }
}
