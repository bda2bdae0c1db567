//! The Delta table: opening, creating it with the declared schema, and its storage.

use std::collections::HashMap;
use std::sync::Arc;

use std::num::NonZeroU64;

use arrow_schema::SchemaRef;
pub use deltalake::ObjectStore;
use deltalake::datafile::writer::{DeltaWriter, WriterConfig};
use deltalake::table::config::TablePropertiesExt as _;
use deltalake::{DeltaTable, DeltaTableBuilder, TableProperty};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use url::Url;

use crate::error::{Error, Result};
use crate::schema::TableSchema;

/// The object store rooted at the table location, without reading the Delta log.
pub fn table_store(url: &Url, storage_options: &HashMap<String, String>) -> Result<Arc<dyn ObjectStore>> {
    let log_store =
        DeltaTableBuilder::from_url(url.clone())?.with_storage_options(storage_options.clone()).build_storage()?;
    Ok(log_store.object_store(None))
}

/// Whether log cleanup should run with the next commit: only when that commit writes a
/// checkpoint. delta-rs would otherwise list the whole `_delta_log` after every commit once
/// `delta.enableExpiredLogCleanup` is set, which makes each commit slower as the log grows.
pub fn log_cleanup_due(table: &DeltaTable) -> Result<bool> {
    let snapshot = table.snapshot()?;
    let interval = snapshot.table_config().checkpoint_interval().get();
    let next = snapshot.version() + 1;
    Ok((next + 1).is_multiple_of(interval))
}

/// Log maintenance settings a new table is created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Maintenance {
    /// Commits between checkpoints (`delta.checkpointInterval`).
    pub checkpoint_interval: u64,
    /// Days commit files are kept before log cleanup (`delta.logRetentionDuration`).
    pub log_retention_days: u64,
}

impl Default for Maintenance {
    fn default() -> Self {
        Self { checkpoint_interval: 100, log_retention_days: 30 }
    }
}

/// Opens the table at `url`, creating it with `schema` (and `maintenance`) if no table is there yet.
pub async fn open_or_create(
    url: &Url,
    storage_options: &HashMap<String, String>,
    schema: &TableSchema,
    maintenance: Maintenance,
) -> Result<DeltaTable> {
    let table = DeltaTable::try_from_url_with_storage_options(url.clone(), storage_options.clone()).await?;
    if table.version().is_some() {
        return Ok(table);
    }
    let name = url.path_segments().and_then(|mut segments| segments.next_back()).unwrap_or("inlet").to_string();
    let created = table
        .create()
        .with_table_name(name)
        .with_comment("Ingested by Inlet")
        .with_columns(schema.delta.fields().cloned())
        .with_partition_columns(schema.partition_columns())
        .with_configuration_property(
            TableProperty::CheckpointInterval,
            Some(maintenance.checkpoint_interval.to_string()),
        )
        .with_configuration_property(
            TableProperty::LogRetentionDuration,
            Some(format!("interval {} days", maintenance.log_retention_days)),
        )
        .with_configuration_property(TableProperty::EnableExpiredLogCleanup, Some("true"))
        .await;
    match created {
        Ok(table) => {
            tracing::info!(table = %url, "created Delta table");
            Ok(table)
        }
        // Another compactor created it first: use theirs.
        Err(err) => {
            let table = DeltaTable::try_from_url_with_storage_options(url.clone(), storage_options.clone()).await?;
            if table.version().is_some() { Ok(table) } else { Err(err.into()) }
        }
    }
}

/// A writer of data files for `table` with `schema` (its own, or an evolved one), rolling files
/// at `target_file_bytes`. Files stream to storage as multipart uploads a row group at a time,
/// so memory stays near one row group per partition rather than one whole file.
pub fn data_writer(table: &DeltaTable, schema: SchemaRef, target_file_bytes: u64) -> Result<DeltaWriter> {
    let snapshot = table.snapshot()?;
    let properties = snapshot.table_config();
    let stats_columns = properties
        .data_skipping_stats_columns
        .as_ref()
        .map(|columns| columns.iter().map(|column| column.to_string()).collect());
    let config = WriterConfig::new(
        schema,
        snapshot.metadata().partition_columns().to_vec(),
        Some(data_file_properties(target_file_bytes)?),
        Some(NonZeroU64::new(target_file_bytes).ok_or_else(|| Error::Config("target file size is 0".into()))?),
        None,
        properties.data_skipping_num_indexed_cols.unwrap_or_default(),
        stats_columns,
    );
    Ok(DeltaWriter::new(table.object_store(), config))
}

/// Settings of committed files: zstd, row groups big enough for efficient scans and small
/// enough to bound the writer's memory; statistics (for pruning) are on by default. The writer
/// cuts files on its estimate of the bytes written, which counts open dictionaries and pages
/// uncompressed: capping both at 1/64 of the target (1 MiB, the Parquet default, for targets of
/// 64 MiB and more) keeps that estimate, and so the file sizes, close to the target.
fn data_file_properties(target_file_bytes: u64) -> Result<WriterProperties> {
    let page_bytes = (target_file_bytes / 64).clamp(1024, 1024 * 1024) as usize;
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_max_row_group_row_count(Some(128 * 1024))
        .set_data_page_size_limit(page_bytes)
        .set_dictionary_page_size_limit(page_bytes)
        .build())
}
