//! Re-compaction of small files already in the table (OPTIMIZE), and vacuum.
//!
//! Small files are what near-real-time ingestion leaves behind: the freshness bound makes the
//! compactor commit whatever a partition holds after a minute or so. This bin-packs a
//! partition's small files into target-sized ones and commits the swap (`remove`s plus `add`s,
//! both `dataChange = false`) as one `OPTIMIZE` commit. Rows are copied, never changed, so the
//! load history is untouched. A concurrent append commits beside it; a concurrent optimize of
//! the same files makes one of the two fail its commit, and nothing is lost.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, new_null_array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use deltalake::datafile::DataFileReader;
use deltalake::datafile::reader::ParquetFileReader;
use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Remove};
use deltalake::operations::vacuum::VacuumMode;
use deltalake::protocol::DeltaOperation;
use deltalake::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;
use object_store::path::Path;
use serde::Serialize;

use crate::error::Result;
use crate::evolution::conform;
use crate::fragment::NULL_PARTITION;
use crate::table::{DataFiles, log_cleanup_due};

/// When small files get rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptimizeOptions {
    /// Size of the files written; a file under half of it counts as small.
    pub target_file_bytes: u64,
    /// A partition is rewritten once it holds this many small files (0: only when asked).
    pub min_small_files: usize,
}

/// What one optimize pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct OptimizeReport {
    /// Partitions rewritten.
    pub partitions: usize,
    /// Small files replaced.
    pub files_removed: usize,
    /// Bytes of the files replaced.
    pub bytes_removed: u64,
    /// Files written in their place.
    pub files_added: usize,
    /// Bytes written.
    pub bytes_added: u64,
    /// The OPTIMIZE commit, if there was one.
    pub version: Option<u64>,
}

/// A file of the table, as optimize sees it.
#[derive(Debug, Clone)]
struct TableFile {
    path: Path,
    size: u64,
    partition: BTreeMap<String, Option<String>>,
    remove: Remove,
}

/// The Hive directory of a partition (`date=2026-05-16`), the name requests use.
fn partition_dir(values: &BTreeMap<String, Option<String>>, columns: &[String]) -> String {
    columns
        .iter()
        .map(|column| {
            let value = values.get(column).cloned().flatten();
            format!("{column}={}", value.as_deref().unwrap_or(NULL_PARTITION))
        })
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
    let snapshot = table.snapshot()?;
    let metadata = snapshot.metadata().clone();
    let columns = metadata.partition_columns().to_vec();
    let small_below = options.target_file_bytes / 2;
    let wanted: Option<HashSet<&str>> = partitions.map(|names| names.iter().map(|name| name.as_str()).collect());

    let mut small: BTreeMap<String, Vec<TableFile>> = BTreeMap::new();
    for file in snapshot.log_data().iter() {
        let size = file.size().max(0) as u64;
        if size >= small_below || file.deletion_vector_descriptor().is_some() {
            continue;
        }
        let partition: BTreeMap<String, Option<String>> = file.partition_values_map().into_iter().collect();
        let dir = partition_dir(&partition, &columns);
        if wanted.as_ref().is_some_and(|wanted| !wanted.contains(dir.as_str())) {
            continue;
        }
        let entry = TableFile { path: file.object_store_path(), size, partition, remove: file.remove_action(false) };
        small.entry(dir).or_default().push(entry);
    }
    let due = |files: &Vec<TableFile>| {
        files.len() > 1 && (force || (options.min_small_files > 0 && files.len() >= options.min_small_files))
    };
    let bins: Vec<Vec<TableFile>> =
        small.into_values().filter(due).flat_map(|files| bin_pack(files, options.target_file_bytes)).collect();
    let mut report = OptimizeReport::default();
    if bins.is_empty() {
        return Ok(report);
    }
    report.partitions = bins.iter().map(|bin| partition_dir(&bin[0].partition, &columns)).collect::<HashSet<_>>().len();

    let target: SchemaRef = Arc::new((&metadata.parse_schema().map_err(DeltaTableError::from)?).try_into_arrow()?);
    let reader = ParquetFileReader::new(table.object_store());
    let mut writer = DataFiles::new(table, target.clone(), options.target_file_bytes)?;
    let mut removes = Vec::new();
    for file in bins.into_iter().flatten() {
        let mut batches = reader.read_file(file.path.clone()).await?;
        while let Some(batch) = batches.try_next().await? {
            let batch = with_partition_values(batch, &file.partition)?;
            writer.write(&conform(&batch, &target)?).await?;
        }
        report.files_removed += 1;
        report.bytes_removed += file.size;
        removes.push(file.remove);
    }
    let adds = writer.close().await?;
    report.files_added = adds.len();
    report.bytes_added = adds.iter().map(|add| add.size.max(0) as u64).sum();

    let actions: Vec<Action> = removes
        .into_iter()
        .map(Action::Remove)
        .chain(adds.into_iter().map(|add| Action::Add(deltalake::kernel::Add { data_change: false, ..add })))
        .collect();
    let operation = DeltaOperation::Optimize { predicate: None, target_size: options.target_file_bytes as i64 };
    let properties = CommitProperties::default()
        .with_metadata([(
            "inlet.optimized".to_string(),
            serde_json::json!({"files_removed": report.files_removed, "files_added": report.files_added}),
        )])
        .with_cleanup_expired_logs(Some(log_cleanup_due(table)?));
    let committed = CommitBuilder::from(properties)
        .with_actions(actions)
        .build(Some(table.snapshot()?), table.log_store(), operation)
        .await?;
    report.version = Some(committed.version());
    table.state = Some(committed.snapshot());
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

/// Data files do not store partition columns; put them back (as strings, which `conform` casts
/// to the table's type) so the batch has the table's shape.
fn with_partition_values(batch: RecordBatch, partition: &BTreeMap<String, Option<String>>) -> Result<RecordBatch> {
    if partition.is_empty() {
        return Ok(batch);
    }
    let rows = batch.num_rows();
    let mut fields: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    for (column, value) in partition {
        fields.push(Arc::new(Field::new(column, DataType::Utf8, true)));
        columns.push(match value {
            Some(value) => Arc::new(StringArray::from(vec![value.as_str(); rows])),
            None => new_null_array(&DataType::Utf8, rows),
        });
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
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
            .map_err(|_| crate::error::Error::Config(format!("vacuum retention {retention:?} is too long")))?;
        builder = builder.with_retention_period(retention).with_enforce_retention_duration(false);
    }
    let (vacuumed, metrics) = builder.await?;
    *table = vacuumed;
    tracing::info!(files_deleted = metrics.files_deleted.len(), "vacuum done");
    Ok(VacuumReport { files_deleted: metrics.files_deleted.len() })
}
