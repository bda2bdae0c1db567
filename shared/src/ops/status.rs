//! How far behind a table is: staged fragments, table size and version, last commit.

use deltalake::DeltaTable;
use serde::Serialize;

use crate::context::Context;
use crate::error::Result;
use crate::stage::fragment::FragmentStore;

/// A table's ingestion status.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TableStatus {
    /// Table location.
    pub table: String,
    /// Current Delta version, if the table exists.
    pub version: Option<u64>,
    /// Data files in the current snapshot.
    pub files: usize,
    /// Their total size.
    pub bytes: u64,
    /// Commit time of the current version (ms since the epoch).
    pub last_commit_ms: Option<i64>,
    /// Fragments waiting for the compactor.
    pub staged_fragments: usize,
    /// Their total size.
    pub staged_bytes: u64,
    /// Age of the oldest staged fragment, in seconds: the freshness lag.
    pub oldest_staged_seconds: Option<i64>,
}

impl TableStatus {
    /// Average committed file size, in bytes.
    pub fn average_file_bytes(&self) -> u64 {
        if self.files == 0 { 0 } else { self.bytes / self.files as u64 }
    }
}

/// Reads the status of the context's table.
pub async fn table_status(context: &Context) -> Result<TableStatus> {
    let mut status = TableStatus { table: context.settings.table_uri.clone(), ..Default::default() };
    let staged = FragmentStore::new(context.table_store.clone()).list().await?;
    status.staged_fragments = staged.len();
    status.staged_bytes = staged.iter().map(|meta| meta.size).sum();
    let now = chrono::Utc::now();
    status.oldest_staged_seconds = staged.iter().map(|meta| (now - meta.last_modified).num_seconds()).max();

    let url = context.settings.table_url()?;
    let table = DeltaTable::try_from_url_with_storage_options(url, context.storage_options.clone()).await?;
    if let Some(version) = table.version() {
        let state = table.snapshot()?;
        status.version = Some(version);
        status.last_commit_ms = state.version_timestamp(version);
        for file in state.log_data().iter() {
            status.files += 1;
            status.bytes += file.size().max(0) as u64;
        }
    }
    Ok(status)
}
