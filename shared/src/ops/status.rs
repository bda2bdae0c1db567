//! How far behind a table is: staged fragments per partition, table size and version, the
//! commits and rows of the last hour, and the quarantine and superseded records it keeps.
//! Read from the table's location alone: no schema, no function.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use deltalake::ObjectStore;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use serde::Serialize;

use crate::commit::complete::{CompleteState, read_json};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::layout::{COMPLETE_STATE, QUARANTINE_PREFIX, ROWS_KEY, SUPERSEDED_PREFIX, commit_file, staged_partition};
use crate::stage::fragment::FragmentStore;

/// Commits read back from the newest for the last hour's figures: past this many the figures
/// are a lower bound (`recent_partial`), so a status costs the same at any commit rate.
pub const RECENT_COMMITS: u64 = 2_000;

/// The window the recent figures cover.
const RECENT_WINDOW_MS: i64 = 3_600_000;

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
    /// Commits made in the last hour.
    pub commits_last_hour: u64,
    /// Rows those commits added (as Inlet's commits count them; other writers' add none).
    pub rows_last_hour: u64,
    /// Whether the last hour held more than [`RECENT_COMMITS`] commits, or older commit files
    /// were gone: the two figures above are then lower bounds.
    pub recent_partial: bool,
    /// Fragments waiting for the compactor.
    pub staged_fragments: usize,
    /// Their total size.
    pub staged_bytes: u64,
    /// Age of the oldest staged fragment, in seconds: the freshness lag.
    pub oldest_staged_seconds: Option<i64>,
    /// The staged fragments of each partition (Hive directory; `""` unpartitioned).
    pub staged_partitions: BTreeMap<String, StagedPartition>,
    /// Quarantine records (objects with refused lines) kept for the table, counted up to
    /// [`RECORDS_COUNTED`].
    pub quarantine_records: usize,
    /// Superseded records (notified versions gone before they were read), up to
    /// [`RECORDS_COUNTED`].
    pub superseded_records: usize,
    /// How far a time-partitioned table is complete, as the compactor last decided it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completeness: Option<CompleteState>,
}

/// What waits staged in one partition.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StagedPartition {
    /// Fragments.
    pub fragments: usize,
    /// Their total size.
    pub bytes: u64,
    /// Age of the oldest, in seconds.
    pub oldest_seconds: i64,
}

impl TableStatus {
    /// Average committed file size, in bytes.
    pub fn average_file_bytes(&self) -> u64 {
        if self.files == 0 { 0 } else { self.bytes / self.files as u64 }
    }
}

/// Reads the status of the context's table.
pub async fn table_status(context: &Context) -> Result<TableStatus> {
    status_at(&context.settings.table_uri, &context.storage_options).await
}

/// Reads the status of the table at `table_uri`.
pub async fn status_at(table_uri: &str, storage_options: &HashMap<String, String>) -> Result<TableStatus> {
    let url = url::Url::parse(table_uri).map_err(|err| Error::Config(format!("table URI {table_uri}: {err}")))?;
    let store = crate::stage::table_store(&url, storage_options)?;
    let mut status = TableStatus { table: table_uri.to_string(), ..Default::default() };
    let staged = FragmentStore::new(store.clone()).list().await?;
    let now = chrono::Utc::now();
    for meta in &staged {
        let age = (now - meta.last_modified).num_seconds();
        let partition = status.staged_partitions.entry(staged_partition(&meta.location).to_string()).or_default();
        partition.fragments += 1;
        partition.bytes += meta.size;
        partition.oldest_seconds = partition.oldest_seconds.max(age);
    }
    status.staged_fragments = staged.len();
    status.staged_bytes = staged.iter().map(|meta| meta.size).sum();
    status.oldest_staged_seconds = staged.iter().map(|meta| (now - meta.last_modified).num_seconds()).max();
    status.quarantine_records = count_under(&store, QUARANTINE_PREFIX).await?;
    status.superseded_records = count_under(&store, SUPERSEDED_PREFIX).await?;
    status.completeness = read_json(store.as_ref(), &object_store::path::Path::from(COMPLETE_STATE)).await?;

    let table = crate::commit::table::open_table(&url, storage_options).await?;
    if let Some(version) = table.version() {
        let state = table.snapshot()?;
        status.version = Some(version);
        status.last_commit_ms = state.version_timestamp(version);
        for file in state.log_data().iter() {
            status.files += 1;
            status.bytes += file.size().max(0) as u64;
        }
        let recent = recent_commits(&store, version, now.timestamp_millis() - RECENT_WINDOW_MS).await?;
        (status.commits_last_hour, status.rows_last_hour, status.recent_partial) = recent;
    }
    Ok(status)
}

/// Records counted at most: a status costs the same however many a table keeps.
pub const RECORDS_COUNTED: usize = 10_000;

/// Objects under `prefix` of the table's store, up to [`RECORDS_COUNTED`].
async fn count_under(store: &Arc<dyn ObjectStore>, prefix: &str) -> Result<usize> {
    let prefix = object_store::path::Path::from(prefix);
    let mut listed = store.list(Some(&prefix)).take(RECORDS_COUNTED);
    let mut count = 0;
    while listed.try_next().await?.is_some() {
        count += 1;
    }
    Ok(count)
}

/// The commits from `newest` back whose time is at or after `since_ms`, and the rows they
/// added, read a few at once; whether the count stopped short (too many, or files gone).
async fn recent_commits(store: &Arc<dyn ObjectStore>, newest: u64, since_ms: i64) -> Result<(u64, u64, bool)> {
    const AT_ONCE: usize = 16;
    let (mut commits, mut rows) = (0u64, 0u64);
    let oldest = newest.saturating_sub(RECENT_COMMITS - 1);
    let mut versions = (oldest..=newest).rev().peekable();
    while versions.peek().is_some() {
        let chunk: Vec<u64> = versions.by_ref().take(AT_ONCE).collect();
        let infos: Vec<Option<(i64, u64)>> = futures::stream::iter(chunk)
            .map(|version| commit_time_and_rows(store, version))
            .buffered(AT_ONCE)
            .try_collect()
            .await?;
        for info in infos {
            match info {
                Some((at, added)) if at >= since_ms => {
                    commits += 1;
                    rows += added;
                }
                Some(_) => return Ok((commits, rows, false)),
                // Cleaned up: the log no longer says.
                None => return Ok((commits, rows, true)),
            }
        }
    }
    // Every commit read was recent: more may be older than the oldest read.
    Ok((commits, rows, oldest > 0))
}

/// A commit's time (its `commitInfo` timestamp, else the file's) and the rows Inlet recorded
/// in it; `None` when its file is gone.
async fn commit_time_and_rows(store: &Arc<dyn ObjectStore>, version: u64) -> Result<Option<(i64, u64)>> {
    Ok(read_commit(store, version).await?.map(|commit| {
        let rows = commit.info.get(ROWS_KEY).and_then(serde_json::Value::as_u64).unwrap_or(0);
        (commit.at, rows)
    }))
}

/// One commit file, read.
pub(crate) struct CommitFile {
    /// Its `commitInfo` timestamp, else the file's modification time (ms since the epoch).
    pub at: i64,
    /// Its `commitInfo` (`null` when it has none: another writer's).
    pub info: serde_json::Value,
    /// The file.
    pub bytes: bytes::Bytes,
}

/// Commit `version` of the table, `None` when its file is gone (cleaned up).
pub(crate) async fn read_commit(store: &Arc<dyn ObjectStore>, version: u64) -> Result<Option<CommitFile>> {
    let got = match store.get(&commit_file(version)).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let modified = got.meta.last_modified.timestamp_millis();
    let bytes = got.bytes().await?;
    let info = bytes
        .split(|byte| *byte == b'\n')
        .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
        .find_map(|mut action| action.get_mut("commitInfo").map(serde_json::Value::take))
        .unwrap_or(serde_json::Value::Null);
    let at = info.get("timestamp").and_then(serde_json::Value::as_i64).unwrap_or(modified);
    Ok(Some(CommitFile { at, info, bytes }))
}

#[cfg(test)]
mod tests {
    use object_store::PutPayload;
    use object_store::memory::InMemory;

    use super::*;

    async fn commit(store: &Arc<dyn ObjectStore>, version: u64, at_ms: i64, rows: Option<u64>) {
        let mut info = serde_json::json!({"timestamp": at_ms, "operation": "WRITE"});
        if let Some(rows) = rows {
            info[ROWS_KEY] = rows.into();
        }
        let line = serde_json::json!({ "commitInfo": info }).to_string();
        store.put(&commit_file(version), PutPayload::from(line.into_bytes())).await.unwrap();
    }

    #[tokio::test]
    async fn the_last_hour_counts_its_commits_and_rows_and_stops_at_the_first_older_one() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let now = chrono::Utc::now().timestamp_millis();
        commit(&store, 0, now - 3 * RECENT_WINDOW_MS, Some(1_000)).await;
        commit(&store, 1, now - 2 * RECENT_WINDOW_MS, Some(100)).await;
        commit(&store, 2, now - 60_000, Some(10)).await;
        commit(&store, 3, now - 30_000, None).await;
        commit(&store, 4, now - 1_000, Some(5)).await;
        let since = now - RECENT_WINDOW_MS;
        assert_eq!(recent_commits(&store, 4, since).await.unwrap(), (3, 15, false), "another writer's adds none");
        // Older commits cleaned up: what is left is counted, and said to be partial.
        store.delete(&commit_file(1)).await.unwrap();
        store.delete(&commit_file(0)).await.unwrap();
        commit(&store, 1, now - 2_000, Some(7)).await;
        store.delete(&commit_file(0)).await.unwrap();
        assert_eq!(recent_commits(&store, 4, since).await.unwrap(), (4, 22, true));
    }
}
