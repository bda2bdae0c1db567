//! The load history: which source object versions the table already holds, kept as long as
//! the table exists.
//!
//! The record is atomic with the data: every compaction commit lists the sources it adds in its
//! `commitInfo` (`inlet.sources`). Reading every commit on every run would cost what the whole
//! history costs, so the compactor derives an index from the log, LSM-style:
//!
//! - a **run** is an immutable file of source keys (128-bit hashes of the identities, the
//!   first 32 bits of their folder's, see [`KeyLayout`]), sorted, in checked blocks, with the
//!   folders it holds (see [`run`]); each compaction adds a small one;
//! - a **manifest** names the runs that together hold every source committed up to a table
//!   version; a new one is written after each commit;
//! - when a new run is not much smaller than the runs before it, they are merged (streaming),
//!   so a table holds a handful of runs of geometrically growing sizes. The runs a merge
//!   replaced stay while a kept manifest names the merged run, listed beside it: every kept
//!   manifest names the largest run, and should a merged run be lost or damaged, the runs it
//!   was merged from answer in its place (about a second copy of the index, the price of not
//!   needing a rebuild for the loss of one run).
//!
//! A lookup reads the newest manifest, the fences and folders of each run and only the blocks
//! its keys fall in, plus the commits after the manifest: its cost follows the sources asked
//! about, not the history; a compaction's sources, mostly of a few folders, fall in a few
//! neighbouring blocks. Everything under `_inlet/history/` is derived: a damaged or missing manifest or run
//! is passed over for an older manifest, then for the whole log, and when the log has been
//! cleaned the index is rebuilt from the table's own lineage columns. Log cleanup only runs
//! when the newest manifest covers what it would delete.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layout::{
    HISTORY_MANIFESTS_PREFIX, HISTORY_RUNS_PREFIX, SOURCES_KEY, commit_file, history_manifest,
    history_manifest_version, history_run, history_run_version,
};
use crate::lineage::{CommittedSource, KeyLayout, SourceId, SourceKey};

mod rebuild;
pub mod run;

pub use rebuild::{RebuildBudget, RebuildProgress, Rebuilt};
use run::{Run, RunInfo, RunWriter, merge};

/// Manifests kept: the newest is used; older ones are only a fallback should it be damaged.
pub const MANIFESTS_KEPT: usize = 3;
/// Trailing runs are merged while the older one is at most this many times the newer ones
/// together: at most about eight runs, each key rewritten some fifteen times over its life.
pub const MERGE_RATIO: u64 = 4;
/// Runs looked up at once: each holds a few reads of its blocks in memory.
const RUN_LOOKUPS: usize = 2;
/// Runs of an older key layout are merged into one whenever there are two, up to this many
/// entries (1 GiB): they get no new runs to merge with, so the size rule alone would leave
/// them as they are for good.
const OLDER_MERGE_ENTRIES: u64 = 1 << 26;
/// Commits read at once when catching up with the log.
const COMMIT_READS: usize = 16;

/// What a manifest says: the runs holding every source committed up to `covers`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Manifest {
    covers: u64,
    runs: Vec<ManifestRun>,
    /// Whether any source it holds was recorded by its ETag alone (before digests); manifests
    /// that predate this field may hold such sources.
    #[serde(default = "may_hold_etag_only")]
    etag_only: bool,
}

fn may_hold_etag_only() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ManifestRun {
    path: String,
    entries: u64,
    /// The runs a merged run was merged from, kept while a manifest names them: should the
    /// merged run be lost or damaged, they answer in its place (they hold the same keys), so
    /// the loss of one run, however large, needs no rebuild.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    replaces: Vec<ManifestRun>,
}

/// The load history as of a table version: an index and the commits after it.
#[derive(Debug, Default)]
pub struct LoadHistory {
    /// Table version this history is complete up to.
    pub version: u64,
    /// Version the manifest it was read from covers; `None` when read from the log alone.
    pub indexed: Option<u64>,
    runs: Vec<Run>,
    /// For each run, the runs it was merged from (see [`ManifestRun::replaces`]).
    replaces: Vec<Vec<ManifestRun>>,
    /// Sources committed after the manifest, read from the log.
    recent: HashSet<SourceKey>,
    /// Data files other writers removed with `dataChange` after the manifest: their sources
    /// go to the deleted ledger before a manifest covers those commits.
    removed: Vec<Path>,
    /// Whether the history may hold sources recorded by their ETag alone (before digests):
    /// only then is a source with a digest also looked up by its ETag, which doubles the reads.
    etag_only: bool,
}

impl LoadHistory {
    /// Which of `ids` the table holds as of `version`, and the history that answered.
    ///
    /// Derived data that is damaged or gone is passed over, for an older manifest and then for
    /// the whole log. `None` when nothing left can answer (no usable manifest, and the log no
    /// longer starts at commit 0): the caller rebuilds with [`LoadHistory::rebuild`].
    pub async fn lookup(
        store: &Arc<dyn ObjectStore>,
        version: u64,
        ids: &[SourceId],
    ) -> Result<Option<(Self, HashSet<SourceId>)>> {
        // Each manifest as it is; then with the merged runs that are gone or cannot be opened
        // read from the runs they were merged from; then with every merged run so read (damage
        // found in a block, which names no run); then the log alone.
        let mut candidates: Vec<(Option<Path>, Replace)> = manifests(store)
            .await?
            .into_iter()
            .rev()
            .filter(|(covers, _)| *covers <= version)
            .flat_map(|(_, path)| {
                [Replace::Nothing, Replace::Unusable, Replace::Merged].map(|replace| (Some(path.clone()), replace))
            })
            .collect();
        candidates.push((None, Replace::Nothing));
        for (manifest, replace) in candidates {
            let attempt = async {
                let history = Self::open(store, manifest.as_ref(), replace, version).await?;
                let committed = history.committed(store, ids).await?;
                Ok::<_, Error>((history, committed))
            };
            match attempt.await {
                Ok(found) => return Ok(Some(found)),
                Err(err) if is_damage(&err) => match &manifest {
                    Some(path) => {
                        tracing::warn!(manifest = %path, replace = ?replace, error = %err, "load history manifest unusable so read")
                    }
                    None => tracing::warn!(error = %err, "load history cannot be read from the log alone"),
                },
                Err(err) => return Err(err),
            }
        }
        Ok(None)
    }

    /// The history read from `manifest` (none: from the log alone), its merged runs read as
    /// `replace` says, and the commits after it.
    async fn open(
        store: &Arc<dyn ObjectStore>,
        manifest: Option<&Path>,
        replace: Replace,
        version: u64,
    ) -> Result<Self> {
        let (indexed, runs, replaces, etag_only) = match manifest {
            Some(path) => {
                let manifest: Manifest = serde_json::from_slice(&store.get(path).await?.bytes().await?)?;
                let etag_only = manifest.etag_only;
                let (runs, replaces) = open_runs(store, manifest.runs, replace).await.map_err(|err| match err {
                    Error::Integrity(reason) => Error::Integrity(format!("load history manifest {path}: {reason}")),
                    other => other,
                })?;
                (Some(manifest.covers), runs, replaces, etag_only)
            }
            None => (None, Vec::new(), Vec::new(), false),
        };
        let first = indexed.map_or(0, |covers| covers + 1);
        let tail = committed_between(store, first, version).await?;
        let etag_only = etag_only || tail.etag_only;
        Ok(Self { version, indexed, runs, replaces, recent: tail.keys, removed: tail.removed, etag_only })
    }

    /// Which of `ids` this history holds.
    pub async fn committed(&self, store: &Arc<dyn ObjectStore>, ids: &[SourceId]) -> Result<HashSet<SourceId>> {
        let mut committed = HashSet::new();
        // Each run is asked in the key layout it was written in; the commits after the
        // manifest are held in the current one.
        let mut layouts: Vec<KeyLayout> = self.runs.iter().map(|run| run.layout).collect();
        layouts.push(KeyLayout::CURRENT);
        layouts.sort_unstable();
        layouts.dedup();
        for layout in layouts {
            // A source is held when any key it is filed under is (its digest, or its ETag
            // alone for sources recorded before digests).
            let mut by_key: HashMap<SourceKey, Vec<&SourceId>> = HashMap::new();
            for id in ids.iter().filter(|id| !committed.contains(*id)) {
                let keys: Vec<SourceKey> =
                    if self.etag_only { id.keys_in(layout).collect() } else { vec![id.key_in(layout)] };
                for key in keys {
                    by_key.entry(key).or_default().push(id);
                }
            }
            let mut held: HashSet<SourceKey> = HashSet::new();
            if layout == KeyLayout::CURRENT {
                held.extend(by_key.keys().filter(|key| self.recent.contains(key)));
            }
            let mut unknown: Vec<SourceKey> = by_key.keys().filter(|key| !held.contains(key)).copied().collect();
            unknown.sort_unstable();
            if !unknown.is_empty() {
                let mut found = futures::stream::iter(self.runs.iter().filter(|run| run.layout == layout))
                    .map(|run| run.holding(store, &unknown))
                    .buffer_unordered(RUN_LOOKUPS);
                while let Some(keys) = found.try_next().await? {
                    held.extend(keys);
                }
            }
            committed.extend(held.iter().flat_map(|key| by_key[key].iter().map(|id| (*id).clone())));
        }
        Ok(committed)
    }

    /// Records that commit `version` added `added` (and any commits between this history and
    /// it, read from the log): writes a run of the new keys, merges runs that are due and a
    /// manifest covering `version`, then removes what no kept manifest needs. Returns the
    /// history as of `version`.
    pub async fn record(self, store: &Arc<dyn ObjectStore>, version: u64, added: &[CommittedSource]) -> Result<Self> {
        let Self { version: known, mut runs, mut replaces, mut recent, mut removed, mut etag_only, .. } = self;
        if version > known + 1 {
            let tail = committed_between(store, known + 1, version - 1).await?;
            recent.extend(tail.keys);
            removed.extend(tail.removed);
            etag_only |= tail.etag_only;
        }
        recent.extend(added.iter().flat_map(|source| source.id.keys()));
        etag_only |= added.iter().any(|source| source.id.digest.is_none());
        // Before a manifest covers the commits that removed them: a crash reads them again.
        if !removed.is_empty() {
            rebuild::record_deleted(store, version, &removed).await?;
        }
        if !recent.is_empty() {
            let info = write_run(store, version, recent).await?;
            runs.push(Run::open(store, &info.path).await?);
            replaces.push(Vec::new());
        }
        if runs.len() != replaces.len() {
            // A manifest built from lists out of step would forget runs.
            return Err(Error::Integrity(format!(
                "load history: {} runs but {} inputs lists",
                runs.len(),
                replaces.len()
            )));
        }
        // Runs of different key layouts cannot merge: each layout's runs sit together, the
        // older first, and merge among themselves.
        let (older, current): (Vec<_>, Vec<_>) =
            runs.into_iter().zip(replaces).partition(|(run, _)| run.layout != KeyLayout::CURRENT);
        let older_runs = older.len();
        (runs, replaces) = older.into_iter().chain(current).unzip();
        // The newer group first: merging it shifts nothing before it.
        for (group, older) in [(older_runs..runs.len(), false), (0..older_runs, true)] {
            let entries: Vec<u64> = runs[group.clone()].iter().map(|run| run.entries).collect();
            let merging = match older {
                true if entries.iter().sum::<u64>() <= OLDER_MERGE_ENTRIES => entries.len(),
                _ => runs_to_merge(&entries),
            };
            if merging < 2 {
                continue;
            }
            let inputs = group.end - merging..group.end;
            let merged = merge(store, &runs[inputs.clone()], history_run(version)).await?;
            tracing::info!(runs = merging, entries = merged.entries, run = %merged.path, "merged load history runs");
            let merged = Run::open(store, &merged.path).await?;
            let replaced: Vec<ManifestRun> =
                runs.splice(inputs.clone(), [merged]).map(|run| manifest_run(&run, Vec::new())).collect();
            replaces.splice(inputs, [replaced]);
        }
        if runs.len() != replaces.len() {
            // A manifest built from lists out of step would forget runs.
            return Err(Error::Integrity(format!(
                "load history: {} runs but {} inputs lists",
                runs.len(),
                replaces.len()
            )));
        }
        let manifest = Manifest {
            etag_only,
            covers: version,
            runs: runs.iter().zip(&replaces).map(|(run, replaces)| manifest_run(run, replaces.clone())).collect(),
        };
        store.put(&history_manifest(version), PutPayload::from(serde_json::to_vec(&manifest)?)).await?;
        prune(store).await?;
        let (recent, removed) = (HashSet::new(), Vec::new());
        Ok(Self { version, indexed: Some(version), runs, replaces, recent, removed, etag_only })
    }

    /// Brings the index up to table `version`, taking in the commits after it (and keeping the
    /// sources of files other writers removed in them): run before a vacuum, which would make
    /// those files unreadable. `false` when the index cannot answer (a compaction rebuilds it).
    pub async fn catch_up(store: &Arc<dyn ObjectStore>, version: u64) -> Result<bool> {
        match Self::lookup(store, version, &[]).await? {
            Some((history, _)) if history.indexed == Some(version) => Ok(true),
            Some((history, _)) => {
                history.record(store, version, &[]).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Entries in the index's runs (a source may be counted in two runs until they merge).
    pub fn indexed_entries(&self) -> u64 {
        self.runs.iter().map(|run| run.entries).sum()
    }

    /// Runs in the index.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }
}

/// How many trailing runs to merge (0 or at least 2): while the run before them is at most
/// [`MERGE_RATIO`] times their total.
pub fn runs_to_merge(entries: &[u64]) -> usize {
    let Some(&last) = entries.last() else { return 0 };
    let (mut first, mut merged) = (entries.len() - 1, last);
    while first > 0 && entries[first - 1] <= MERGE_RATIO * merged {
        first -= 1;
        merged += entries[first];
    }
    match entries.len() - first {
        1 => 0,
        n => n,
    }
}

/// The newest manifest's covered version: log cleanup must not delete commits after it.
pub async fn indexed_version(store: &Arc<dyn ObjectStore>) -> Result<Option<u64>> {
    Ok(manifests(store).await?.last().map(|(covers, _)| *covers))
}

/// Damage to derived data, as opposed to a store that is failing (which is retried).
fn is_damage(err: &Error) -> bool {
    match err {
        Error::Storage(err) => matches!(err, object_store::Error::NotFound { .. }),
        Error::Integrity(_) | Error::Json(_) => true,
        _ => false,
    }
}

/// Which of a manifest's merged runs are read from the runs they were merged from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replace {
    /// None: the manifest as it is.
    Nothing,
    /// Those that are gone or whose fences are damaged.
    Unusable,
    /// Every one.
    Merged,
}

/// Opens a manifest's runs, reading merged runs from their inputs as `replace` says (a run read
/// from its inputs is replaced by them, which have no inputs listed); a replacement that
/// replaces nothing is damage, so the next way of reading is tried.
async fn open_runs(
    store: &Arc<dyn ObjectStore>,
    entries: Vec<ManifestRun>,
    replace: Replace,
) -> Result<(Vec<Run>, Vec<Vec<ManifestRun>>)> {
    let (mut runs, mut replaces, mut replaced) = (Vec::new(), Vec::new(), false);
    for entry in entries {
        let opened = match replace {
            Replace::Merged if !entry.replaces.is_empty() => None,
            Replace::Unusable if !entry.replaces.is_empty() => {
                match Run::open(store, &Path::from(entry.path.as_str())).await {
                    Ok(run) => Some(run),
                    Err(err) if is_damage(&err) => None,
                    Err(err) => return Err(err),
                }
            }
            _ => Some(Run::open(store, &Path::from(entry.path.as_str())).await?),
        };
        match opened {
            Some(run) => {
                runs.push(run);
                replaces.push(entry.replaces);
            }
            None => {
                replaced = true;
                for input in entry.replaces {
                    runs.push(Run::open(store, &Path::from(input.path.as_str())).await?);
                    replaces.push(Vec::new());
                }
            }
        }
    }
    if replace != Replace::Nothing && !replaced {
        return Err(Error::Integrity(format!("no merged run to read as {replace:?}")));
    }
    Ok((runs, replaces))
}

fn manifest_run(run: &Run, replaces: Vec<ManifestRun>) -> ManifestRun {
    ManifestRun { path: run.path.to_string(), entries: run.entries, replaces }
}

async fn write_run(store: &Arc<dyn ObjectStore>, version: u64, keys: HashSet<SourceKey>) -> Result<RunInfo> {
    write_run_at(store, history_run(version), keys).await
}

async fn write_run_at(store: &Arc<dyn ObjectStore>, path: Path, keys: HashSet<SourceKey>) -> Result<RunInfo> {
    let mut keys: Vec<SourceKey> = keys.into_iter().collect();
    keys.sort_unstable();
    let mut writer = RunWriter::new(store.clone(), path);
    for key in keys {
        writer.push(key).await?;
    }
    writer.finish().await
}

/// Every manifest, oldest first.
async fn manifests(store: &Arc<dyn ObjectStore>) -> Result<Vec<(u64, Path)>> {
    let prefix = Path::from(HISTORY_MANIFESTS_PREFIX);
    let listed: Vec<Path> = store.list(Some(&prefix)).map_ok(|meta| meta.location).try_collect().await?;
    let mut versions: Vec<(u64, Path)> =
        listed.into_iter().filter_map(|path| Some((history_manifest_version(&path)?, path))).collect();
    versions.sort();
    Ok(versions)
}

/// Deletes all but the newest [`MANIFESTS_KEPT`] manifests, and the runs none of them (nor a
/// rebuild in progress) names that were written before the oldest kept one (a newer run may
/// belong to a manifest being written right now).
async fn prune(store: &Arc<dyn ObjectStore>) -> Result<()> {
    let all = manifests(store).await?;
    let (dropped, kept) = all.split_at(all.len().saturating_sub(MANIFESTS_KEPT));
    for (_, path) in dropped {
        delete_if_present(store, path).await?;
    }
    let Some((oldest_kept, _)) = kept.first() else { return Ok(()) };
    let mut named: HashSet<String> = rebuild::saved_runs(store).await?.into_iter().collect();
    for (_, path) in kept {
        match store.get(path).await {
            Ok(found) => match serde_json::from_slice::<Manifest>(&found.bytes().await?) {
                Ok(manifest) => named.extend(
                    manifest
                        .runs
                        .into_iter()
                        .flat_map(|run| run.replaces.into_iter().map(|r| r.path).chain([run.path])),
                ),
                // Which runs it needs is unknown: remove none this time.
                Err(_) => return Ok(()),
            },
            Err(object_store::Error::NotFound { .. }) => return Ok(()),
            Err(err) => return Err(err.into()),
        }
    }
    let prefix = Path::from(HISTORY_RUNS_PREFIX);
    let runs: Vec<Path> = store.list(Some(&prefix)).map_ok(|meta| meta.location).try_collect().await?;
    for path in runs {
        let written_before = history_run_version(&path).is_some_and(|at| at < *oldest_kept);
        if written_before && !named.contains(path.as_ref()) {
            delete_if_present(store, &path).await?;
        }
    }
    Ok(())
}

async fn delete_if_present(store: &Arc<dyn ObjectStore>, path: &Path) -> Result<()> {
    match store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// What commits after an index add to it.
#[derive(Debug, Default)]
struct LogTail {
    /// Keys of the sources they committed.
    keys: HashSet<SourceKey>,
    /// Data files they removed with `dataChange` (rows deleted or rewritten by another writer;
    /// Inlet's own rewrites change no data).
    removed: Vec<Path>,
    /// Whether any source they committed has no digest.
    etag_only: bool,
}

/// What commits `first..=last` add to the index; a commit that is gone is damage.
async fn committed_between(store: &Arc<dyn ObjectStore>, first: u64, last: u64) -> Result<LogTail> {
    let mut tail = LogTail::default();
    let mut commits = futures::stream::iter(first..=last)
        .map(|version| async move {
            match store.get(&commit_file(version)).await {
                Ok(found) => Ok(found.bytes().await?),
                Err(object_store::Error::NotFound { .. }) => Err(Error::Integrity(format!(
                    "load history: commit {version} is gone (log cleanup) and no index covers it"
                ))),
                Err(err) => Err(err.into()),
            }
        })
        .buffered(COMMIT_READS);
    while let Some(commit) = commits.next().await {
        let commit = commit?;
        let sources = sources_in_commit(&commit)?;
        tail.etag_only |= sources.iter().any(|source| source.id.digest.is_none());
        tail.keys.extend(sources.iter().flat_map(|source| source.id.keys()));
        tail.removed.extend(removed_in_commit(&commit)?);
    }
    Ok(tail)
}

/// The data files removed with `dataChange` by the commits up to `last` still in the log.
async fn removed_in_log(store: &Arc<dyn ObjectStore>, last: u64) -> Result<Vec<Path>> {
    let prefix = Path::from("_delta_log");
    let listed: Vec<Path> = store.list(Some(&prefix)).map_ok(|meta| meta.location).try_collect().await?;
    let commits = listed.into_iter().filter(|path| {
        let version = path.filename().and_then(|name| name.strip_suffix(".json")?.parse::<u64>().ok());
        version.is_some_and(|version| version <= last)
    });
    let mut reads = futures::stream::iter(commits)
        .map(|path| async move { Ok::<_, Error>(store.get(&path).await?.bytes().await?) })
        .buffer_unordered(COMMIT_READS);
    let mut removed = Vec::new();
    while let Some(commit) = reads.next().await {
        match commit {
            Ok(commit) => removed.extend(removed_in_commit(&commit)?),
            // Cleaned up while listed.
            Err(Error::Storage(object_store::Error::NotFound { .. })) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(removed)
}

/// The data files one commit removed with `dataChange`.
fn removed_in_commit(commit: &[u8]) -> Result<Vec<Path>> {
    let mut removed = Vec::new();
    for line in commit.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let action: serde_json::Value = serde_json::from_slice(line)?;
        let Some(remove) = action.get("remove") else { continue };
        let data_change = remove.get("dataChange").and_then(serde_json::Value::as_bool).unwrap_or(true);
        if let Some(path) = remove.get("path").and_then(serde_json::Value::as_str).filter(|_| data_change) {
            // Paths in the log are URL-encoded, relative to the table root.
            // As delta-rs resolves a file's path: decoded, then kept as stored where it parses.
            let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
            removed.push(Path::parse(decoded.as_ref()).unwrap_or_else(|_| Path::from(decoded.as_ref())));
        }
    }
    Ok(removed)
}

/// The sources one commit file's `commitInfo` lists.
pub fn sources_in_commit(commit: &[u8]) -> Result<Vec<CommittedSource>> {
    let mut sources = Vec::new();
    for line in commit.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let action: serde_json::Value = serde_json::from_slice(line)?;
        if let Some(listed) = action.get("commitInfo").and_then(|info| info.get(SOURCES_KEY)) {
            sources.extend(serde_json::from_value::<Vec<CommittedSource>>(listed.clone())?);
        }
    }
    Ok(sources)
}

#[cfg(test)]
mod tests;
