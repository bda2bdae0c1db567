//! The load history: which source object versions the table already holds.
//!
//! It lives atomically with the data: every compaction commit lists the sources it adds in its
//! `commitInfo` (`inlet.sources`). Reading it back means reading commits; to keep that cheap as
//! the log grows, the compactor also writes snapshots of the whole history under
//! `_inlet/history/<version>.json.zst`. A snapshot is derived data: losing one only means
//! reading more commits. Entries older than the retention window are dropped from snapshots.

use std::collections::HashMap;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layout::{HISTORY_PREFIX, SOURCES_KEY, commit_file, history_snapshot, history_snapshot_version};
use crate::lineage::{CommittedSource, SourceId};

/// The set of committed sources, as of a table version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadHistory {
    /// Table version this history is complete up to.
    pub version: u64,
    /// Committed sources and the commit time (ms since the epoch) of each.
    #[serde(with = "entries")]
    pub sources: HashMap<SourceId, i64>,
    /// When this snapshot was written (ms since the epoch); 0 when not loaded from one.
    #[serde(default)]
    pub written_at_ms: i64,
    /// Version of the snapshot this history was loaded from, if any.
    #[serde(skip)]
    pub snapshot_version: Option<u64>,
}

mod entries {
    use std::collections::HashMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::lineage::SourceId;

    #[derive(Serialize, Deserialize)]
    struct Entry {
        #[serde(flatten)]
        id: SourceId,
        at: i64,
    }

    pub fn serialize<S: Serializer>(map: &HashMap<SourceId, i64>, serializer: S) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<Entry> = map.iter().map(|(id, at)| Entry { id: id.clone(), at: *at }).collect();
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        entries.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<HashMap<SourceId, i64>, D::Error> {
        Ok(Vec::<Entry>::deserialize(deserializer)?.into_iter().map(|entry| (entry.id, entry.at)).collect())
    }
}

impl LoadHistory {
    /// Whether this object version is already in the table.
    pub fn contains(&self, id: &SourceId) -> bool {
        self.sources.contains_key(id)
    }

    /// Reads the history as of `table_version` from the latest snapshot and the commits after it.
    ///
    /// A snapshot that cannot be read or decoded is passed over for the one before it (they are
    /// derived data); with none readable, the history is read from the first commit.
    pub async fn load(store: &Arc<dyn ObjectStore>, table_version: u64) -> Result<Self> {
        let mut history = LoadHistory::default();
        for (_, path) in snapshots(store).await?.into_iter().rev().filter(|(version, _)| *version <= table_version) {
            match read_snapshot(store, &path).await {
                Ok(snapshot) => {
                    history = snapshot;
                    break;
                }
                // The store failing is not the snapshot's fault: try again later.
                Err(err @ Error::Storage(_))
                    if !matches!(err, Error::Storage(object_store::Error::NotFound { .. })) =>
                {
                    return Err(err);
                }
                Err(err) => {
                    tracing::warn!(snapshot = %path, error = %err, "history snapshot unreadable; trying an older one")
                }
            }
        }
        let first = match history.written_at_ms {
            0 => 0,
            _ => {
                history.snapshot_version = Some(history.version);
                history.version + 1
            }
        };
        for version in first..=table_version {
            let path = commit_file(version);
            let data = match store.get(&path).await {
                Ok(found) => found.bytes().await?,
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(Error::Integrity(format!(
                        "load history incomplete: commit {version} is gone (log cleanup) and no snapshot under \
                         {HISTORY_PREFIX}/ covers it; refusing to compact rather than risk duplicates"
                    )));
                }
                Err(err) => return Err(err.into()),
            };
            history.apply_commit(&data)?;
        }
        history.version = table_version;
        Ok(history)
    }

    /// Adds the sources listed in one commit file's `commitInfo`.
    pub fn apply_commit(&mut self, commit: &[u8]) -> Result<()> {
        for line in commit.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let action: serde_json::Value = serde_json::from_slice(line)?;
            let Some(info) = action.get("commitInfo") else { continue };
            let at = info.get("timestamp").and_then(|t| t.as_i64()).unwrap_or_default();
            if let Some(sources) = info.get(SOURCES_KEY) {
                for source in serde_json::from_value::<Vec<CommittedSource>>(sources.clone())? {
                    self.sources.insert(source.id, at);
                }
            }
        }
        Ok(())
    }

    /// Writes a snapshot of this history, dropping entries committed before `retain_after_ms`.
    pub async fn save_snapshot(&self, store: &Arc<dyn ObjectStore>, retain_after_ms: i64) -> Result<Path> {
        let kept = LoadHistory {
            version: self.version,
            sources: self
                .sources
                .iter()
                .filter(|(_, at)| **at >= retain_after_ms)
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            written_at_ms: chrono::Utc::now().timestamp_millis(),
            snapshot_version: None,
        };
        let data = zstd::encode_all(&serde_json::to_vec(&kept)?[..], 3)?;
        let path = history_snapshot(self.version);
        store.put(&path, PutPayload::from(data)).await?;
        prune_snapshots(store, SNAPSHOTS_KEPT).await?;
        Ok(path)
    }
}

/// History snapshots kept: the newest covers everything; older ones are only a fallback
/// should the newest be unreadable, so a few suffice.
pub const SNAPSHOTS_KEPT: usize = 3;

/// Every snapshot under the history prefix, oldest first.
async fn snapshots(store: &Arc<dyn ObjectStore>) -> Result<Vec<(u64, Path)>> {
    let prefix = Path::from(HISTORY_PREFIX);
    let listed: Vec<Path> = store.list(Some(&prefix)).map_ok(|meta| meta.location).try_collect().await?;
    let mut versions: Vec<(u64, Path)> =
        listed.into_iter().filter_map(|path| Some((history_snapshot_version(&path)?, path))).collect();
    versions.sort();
    Ok(versions)
}

/// Deletes all but the newest `keep` snapshots.
async fn prune_snapshots(store: &Arc<dyn ObjectStore>, keep: usize) -> Result<()> {
    let all = snapshots(store).await?;
    for (_, path) in &all[..all.len().saturating_sub(keep)] {
        match store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// A snapshot's history; a storage failure is the store's, any other one the snapshot's.
async fn read_snapshot(store: &Arc<dyn ObjectStore>, path: &Path) -> Result<LoadHistory> {
    let data = store.get(path).await?.bytes().await?;
    let json = zstd::decode_all(&data[..])?;
    Ok(serde_json::from_slice(&json)?)
}

/// The newest snapshot at or below `table_version`.
#[cfg(test)]
async fn latest_snapshot(store: &Arc<dyn ObjectStore>, table_version: u64) -> Result<Option<Path>> {
    let all = snapshots(store).await?;
    Ok(all.into_iter().rev().find(|(version, _)| *version <= table_version).map(|(_, path)| path))
}

/// The compactor writes a history snapshot at least every this many table versions...
pub const SNAPSHOT_INTERVAL: u64 = 50;
/// ...and at least daily, so log cleanup (days of retention) never outruns the snapshots.
pub const SNAPSHOT_MAX_AGE_MS: i64 = 24 * 3600 * 1000;

impl LoadHistory {
    /// Whether a snapshot should be written after committing `version`.
    pub fn snapshot_due(&self, version: u64, every: u64, now_ms: i64) -> bool {
        match self.snapshot_version {
            None => true,
            Some(at) => version.saturating_sub(at) >= every || now_ms - self.written_at_ms >= SNAPSHOT_MAX_AGE_MS,
        }
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    fn commit(version: u64, sources: &[(&str, &str)], at: i64) -> (Path, Vec<u8>) {
        let listed: Vec<CommittedSource> = sources
            .iter()
            .map(|(uri, etag)| CommittedSource {
                id: SourceId { uri: uri.to_string(), etag: Some(etag.to_string()) },
                rows: 1,
            })
            .collect();
        let info = serde_json::json!({"commitInfo": {"timestamp": at, SOURCES_KEY: listed}});
        let add = serde_json::json!({"add": {"path": "x.parquet"}});
        (Path::from(format!("_delta_log/{version:020}.json")), format!("{info}\n{add}\n").into_bytes())
    }

    fn id(uri: &str, etag: &str) -> SourceId {
        SourceId { uri: uri.into(), etag: Some(etag.into()) }
    }

    #[tokio::test]
    async fn history_is_read_from_commits_and_snapshots() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        for (version, sources) in
            [(0, vec![]), (1, vec![("s3://r/a", "1")]), (2, vec![("s3://r/b", "1"), ("s3://r/a", "2")])]
        {
            let (path, data) = commit(version, &sources, 1000 * version as i64);
            store.put(&path, PutPayload::from(data)).await.unwrap();
        }
        let history = LoadHistory::load(&store, 2).await.unwrap();
        assert!(history.contains(&id("s3://r/a", "1")) && history.contains(&id("s3://r/a", "2")));
        assert!(history.contains(&id("s3://r/b", "1")));
        assert!(!history.contains(&id("s3://r/b", "2")), "a new version of an object is a new source");

        // A snapshot at version 2 (dropping entries older than t=1500), then the log is cleaned.
        history.save_snapshot(&store, 1500).await.unwrap();
        for version in 0..=2 {
            store.delete(&Path::from(format!("_delta_log/{version:020}.json"))).await.unwrap();
        }
        let (path, data) = commit(3, &[("s3://r/c", "1")], 3000);
        store.put(&path, PutPayload::from(data)).await.unwrap();
        let history = LoadHistory::load(&store, 3).await.unwrap();
        assert_eq!(history.version, 3);
        let mut ids: Vec<SourceId> = history.sources.keys().cloned().collect();
        ids.sort();
        assert_eq!(ids, vec![id("s3://r/a", "2"), id("s3://r/b", "1"), id("s3://r/c", "1")]);
    }

    #[tokio::test]
    async fn only_the_newest_snapshots_are_kept() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let mut history = LoadHistory::default();
        for version in [50, 100, 150, 200, 250] {
            history.version = version;
            history.save_snapshot(&store, 0).await.unwrap();
        }
        let kept: Vec<u64> = snapshots(&store).await.unwrap().into_iter().map(|(version, _)| version).collect();
        assert_eq!(kept, vec![150, 200, 250]);
        let latest = latest_snapshot(&store, 249).await.unwrap().unwrap();
        assert_eq!(latest.filename(), Some("00000000000000000200.json.zst"), "the newest at or below the version");
    }

    #[tokio::test]
    async fn a_gap_in_the_log_refuses_to_guess() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let (path, data) = commit(1, &[("s3://r/a", "1")], 1);
        store.put(&path, PutPayload::from(data)).await.unwrap();
        let err = LoadHistory::load(&store, 1).await.unwrap_err().to_string();
        assert!(err.contains("commit 0 is gone"), "{err}");
    }

    #[tokio::test]
    async fn an_unreadable_newest_snapshot_falls_back_to_an_older_one() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        for (version, sources) in
            [(0, vec![("s3://r/a", "1")]), (1, vec![("s3://r/b", "1")]), (2, vec![("s3://r/c", "1")])]
        {
            let (path, data) = commit(version, &sources, 1000);
            store.put(&path, PutPayload::from(data)).await.unwrap();
        }
        let history = LoadHistory::load(&store, 1).await.unwrap();
        history.save_snapshot(&store, 0).await.unwrap();
        // A newer snapshot that is damaged, and log cleanup of the commits the older one covers.
        store.put(&history_snapshot(2), PutPayload::from(b"not zstd".to_vec())).await.unwrap();
        for version in 0..=1 {
            store.delete(&commit_file(version)).await.unwrap();
        }
        let history = LoadHistory::load(&store, 2).await.unwrap();
        let mut ids: Vec<SourceId> = history.sources.keys().cloned().collect();
        ids.sort();
        assert_eq!(ids, vec![id("s3://r/a", "1"), id("s3://r/b", "1"), id("s3://r/c", "1")]);
    }
}
