//! The Delta table: opening, creating it with the declared schema, and its storage.

use std::collections::HashMap;
use std::sync::Arc;

pub use deltalake::ObjectStore;
use deltalake::{DeltaTable, DeltaTableBuilder, TableProperty};
use url::Url;

use crate::error::Result;
use crate::schema::TableSchema;

/// The object store rooted at the table location, without reading the Delta log.
pub fn table_store(url: &Url, storage_options: &HashMap<String, String>) -> Result<Arc<dyn ObjectStore>> {
    let log_store =
        DeltaTableBuilder::from_url(url.clone())?.with_storage_options(storage_options.clone()).build_storage()?;
    Ok(log_store.object_store(None))
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
