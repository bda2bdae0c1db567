//! Rebuilding the index from the table's own rows, for when the log no longer holds every
//! commit and no manifest is usable, and the ledger of sources another writer deleted.
//!
//! A rebuild reads the lineage columns of every data file of one table version, a few files at
//! once, and saves its progress as it goes (`_inlet/history/rebuild/`): the files' list once,
//! then, every few files or seconds, a run of the keys read so far and how far it got. A run
//! that is out of time, or a process that is killed, leaves the next one to continue where the
//! progress says; nothing read before the last save is read again. The compactor commits
//! nothing meanwhile: committing without the history would let duplicates in.
//!
//! Rows deleted by another writer (a `DELETE`, a GDPR erasure) take their sources out of the
//! table's files, so a rebuild could not know them. Whenever the index takes in commits that
//! removed files with `dataChange`, it first reads those files' lineage columns (a removed file
//! stays until vacuumed) into a run of its own under `_inlet/deleted-sources/` (not derived:
//! kept apart from the index), which every rebuild adds to what it reads. Its size follows what
//! other writers deleted or rewrote, not what was ingested.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow_array::Array;
use arrow_array::cast::AsArray;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use serde::{Deserialize, Serialize};

use super::run::{Run, RunInfo};
use super::{LoadHistory, ManifestRun, committed_between, delete_if_present, is_damage, write_run};
use crate::error::{Error, Result};
use crate::faults::crash_point;
use crate::layout::{HISTORY_DELETED_PREFIX, history_deleted_run, history_rebuild_files, history_rebuild_progress};
use crate::lineage::{SourceId, SourceKey};
use crate::schema::{SOURCE_DIGEST_COLUMN, SOURCE_ETAG_COLUMN, SOURCE_FILE_COLUMN};

/// Data files read at once when rebuilding or reading deleted files.
const REBUILD_READS: usize = 32;
/// Bytes read from the end of a data file at first: the footer, and the whole of a small file.
const TAIL_BYTES: u64 = 64 << 10;
/// Keys a rebuild holds before it saves them as a run (16 MiB of keys).
const REBUILD_RUN_KEYS: usize = 1 << 20;
/// A rebuild saves its progress at least this often, so a killed process redoes little.
const SAVE_INTERVAL: Duration = Duration::from_secs(30);

/// How long a rebuild may run and how often it saves.
#[derive(Debug, Clone, Copy)]
pub struct RebuildBudget {
    /// When to save and stop, leaving the rest to the next run (`None`: never).
    pub stop: Option<Instant>,
    /// Files read between saves of the progress (also saved every [`SAVE_INTERVAL`]).
    pub save_every_files: usize,
}

impl RebuildBudget {
    /// A budget of `seconds` from now, saving every `save_every_files` files.
    pub fn from_now(seconds: u64, save_every_files: usize) -> Self {
        Self { stop: Some(Instant::now() + Duration::from_secs(seconds)), save_every_files: save_every_files.max(1) }
    }
}

/// How far a rebuild got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RebuildProgress {
    /// The table version whose files it reads.
    pub version: u64,
    /// Data files of that version.
    pub files: u64,
    /// Of those, files read and saved.
    pub read: u64,
    /// Requests made to the store so far to read them.
    pub requests: u64,
}

/// The outcome of one call to [`LoadHistory::rebuild`].
#[derive(Debug)]
pub enum Rebuilt {
    /// The index is whole again, as of the version asked for.
    Done(LoadHistory, RebuildProgress),
    /// Saved and stopped: the next call continues.
    Pending(RebuildProgress),
}

/// A rebuild's saved progress: the runs of the keys of the first `read` files of its list.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Progress {
    version: u64,
    files: u64,
    read: u64,
    #[serde(default)]
    requests: u64,
    runs: Vec<ManifestRun>,
}

impl Progress {
    fn state(&self) -> RebuildProgress {
        RebuildProgress { version: self.version, files: self.files, read: self.read, requests: self.requests }
    }
}

impl LoadHistory {
    /// Rebuilds the index from the lineage columns of the table's data `files` (with their
    /// sizes) as of
    /// `version`, continuing a rebuild in progress if there is one (it reads the files of the
    /// version it started at, then the commits since from the log), until `budget` runs out.
    ///
    /// Rows carry their source's content digest, so the rebuilt index knows a re-upload of the
    /// same bytes as the lost one did (rows written before the digest column know their ETag
    /// only); sources whose rows another writer deleted come from the deleted ledger. A source
    /// whose lines were all quarantined left no row, so it is not found (a replay rewrites the
    /// same quarantine record).
    pub async fn rebuild(
        store: &Arc<dyn ObjectStore>,
        version: u64,
        files: Vec<(Path, u64)>,
        budget: RebuildBudget,
    ) -> Result<Rebuilt> {
        if super::indexed_version(store).await?.is_some_and(|covers| covers > version) {
            // An index newer than this run's snapshot exists: the snapshot is stale, not the index lost.
            return Err(Error::Stale(format!(
                "a load history index covers a version after {version}, which this run read: run again"
            )));
        }
        let resumed = match saved_progress(store).await? {
            Some(progress) if progress.version <= version => Some(progress),
            _ => None,
        };
        let (mut carried, mut abandoned_list) = (Vec::new(), None);
        if let Some(progress) = resumed {
            let abandoned = progress.version;
            match continue_rebuild(store, progress, version, budget).await {
                Err(err) if is_damage(&err) => {
                    // A listed file was vacuumed or a commit since cleaned up: start again at
                    // this version, keeping the runs saved so far (sources the table held, some
                    // perhaps in files removed since).
                    let Some(saved) = saved_progress(store).await? else {
                        return Err(Error::Stale("another run finished the load history rebuild: run again".into()));
                    };
                    tracing::warn!(error = %err, abandoned, "load history rebuild cannot continue: starting again");
                    (carried, abandoned_list) = (saved.runs, Some(abandoned));
                }
                other => return other,
            }
        }
        tracing::warn!(version, files = files.len(), "rebuilding the load history from the table's lineage columns");
        let progress = start(store, version, files, carried).await?;
        if let Some(abandoned) = abandoned_list.filter(|abandoned| *abandoned != version) {
            delete_if_present(store, &history_rebuild_files(abandoned)).await?;
        }
        continue_rebuild(store, progress, version, budget).await
    }
}

/// The saved progress of a rebuild, if one is under way.
async fn saved_progress(store: &Arc<dyn ObjectStore>) -> Result<Option<Progress>> {
    match store.get(&history_rebuild_progress()).await {
        Ok(found) => match serde_json::from_slice(&found.bytes().await?) {
            Ok(progress) => Ok(Some(progress)),
            Err(err) => {
                tracing::warn!(error = %err, "load history rebuild progress unreadable: starting again");
                Ok(None)
            }
        },
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// The runs a rebuild in progress has saved (kept by pruning).
pub(super) async fn saved_runs(store: &Arc<dyn ObjectStore>) -> Result<Vec<String>> {
    Ok(saved_progress(store)
        .await?
        .map(|progress| progress.runs.into_iter().map(|run| run.path).collect())
        .unwrap_or_default())
}

/// Saves the list of `files` (sorted, so that it reads the same way each time; a path and its
/// size per line) and a progress of none of them read, holding the `carried` runs.
async fn start(
    store: &Arc<dyn ObjectStore>,
    version: u64,
    mut files: Vec<(Path, u64)>,
    carried: Vec<ManifestRun>,
) -> Result<Progress> {
    // Deletions the lost index had not taken in yet: the log still names what they removed.
    let removed = super::removed_in_log(store, version).await?;
    if !removed.is_empty() {
        record_deleted(store, version, &removed).await?;
    }
    files.sort();
    let listed: String = files.iter().map(|(file, size)| format!("{file}\t{size}\n")).collect();
    store.put(&history_rebuild_files(version), PutPayload::from(listed.into_bytes())).await?;
    let progress = Progress { version, files: files.len() as u64, runs: carried, ..Progress::default() };
    save(store, &progress).await?;
    Ok(progress)
}

async fn save(store: &Arc<dyn ObjectStore>, progress: &Progress) -> Result<()> {
    store.put(&history_rebuild_progress(), PutPayload::from(serde_json::to_vec(progress)?)).await?;
    Ok(())
}

/// Reads the files `progress` has not, saving as it goes, and once all are read turns the
/// saved runs and the deleted ledger into an index as of `version`.
async fn continue_rebuild(
    store: &Arc<dyn ObjectStore>,
    mut progress: Progress,
    version: u64,
    budget: RebuildBudget,
) -> Result<Rebuilt> {
    let files = listed_files(store, &progress).await?;
    let mut reads = futures::stream::iter(&files[progress.read as usize..])
        .map(|(file, size)| lineage_keys(store, file, Some(*size)))
        .buffered(REBUILD_READS);
    let (mut keys, mut unsaved, mut saved_at) = (HashSet::new(), 0, Instant::now());
    while let Some(lineage) = reads.try_next().await? {
        keys.extend(lineage.keys);
        progress.requests += lineage.requests;
        unsaved += 1;
        let out_of_time = budget.stop.is_some_and(|stop| Instant::now() >= stop);
        let last = progress.read + unsaved == progress.files;
        if last
            || out_of_time
            || unsaved >= budget.save_every_files as u64
            || keys.len() >= REBUILD_RUN_KEYS
            || saved_at.elapsed() >= SAVE_INTERVAL
        {
            if !keys.is_empty() {
                let run = write_run(store, progress.version, std::mem::take(&mut keys)).await?;
                progress.runs.push(ManifestRun {
                    path: run.path.to_string(),
                    entries: run.entries,
                    replaces: Vec::new(),
                });
            }
            progress.read += unsaved;
            save(store, &progress).await?;
            crash_point("history.rebuild_saved");
            (unsaved, saved_at) = (0, Instant::now());
            tracing::info!(read = progress.read, files = progress.files, "load history rebuild progress saved");
            if out_of_time && !last {
                return Ok(Rebuilt::Pending(progress.state()));
            }
        }
    }
    let state = progress.state();
    Ok(Rebuilt::Done(finish(store, progress, version).await?, state))
}

/// The files' list a rebuild's `progress` reads.
async fn listed_files(store: &Arc<dyn ObjectStore>, progress: &Progress) -> Result<Vec<(Path, u64)>> {
    let damaged = || Error::Integrity("load history rebuild: the files' list is damaged".into());
    let listed = store.get(&history_rebuild_files(progress.version)).await?.bytes().await?;
    let files = std::str::from_utf8(&listed)
        .map_err(|_| damaged())?
        .lines()
        .map(|line| {
            let (path, size) = line.rsplit_once('\t').ok_or_else(damaged)?;
            // Written as the store names it: parsed back unchanged.
            let path = Path::parse(path).map_err(|_| damaged())?;
            Ok((path, size.parse().map_err(|_| damaged())?))
        })
        .collect::<Result<Vec<_>>>()?;
    if files.len() as u64 != progress.files || progress.read > progress.files {
        return Err(Error::Integrity("load history rebuild: progress and files' list disagree".into()));
    }
    Ok(files)
}

/// The index from a finished rebuild's runs, the deleted ledger and the commits since the
/// version it read, recorded as of `version`; then the rebuild's own state is removed.
async fn finish(store: &Arc<dyn ObjectStore>, progress: Progress, version: u64) -> Result<LoadHistory> {
    let paths: Vec<Path> = progress.runs.iter().map(|run| Path::from(run.path.as_str())).collect();
    let mut runs: Vec<Run> =
        futures::stream::iter(&paths).map(|path| Run::open(store, path)).buffered(REBUILD_READS).try_collect().await?;
    runs.extend(deleted_runs(store).await?);
    let tail = committed_between(store, progress.version + 1, version).await?;
    let replaces = vec![Vec::new(); runs.len()];
    // Rows of the lineage columns do not say which sources were recorded by ETag alone.
    let (recent, removed, etag_only) = (tail.keys, tail.removed, true);
    let history = LoadHistory { version, indexed: None, runs, replaces, recent, removed, etag_only };
    let history = history.record(store, version, &[]).await?;
    delete_if_present(store, &history_rebuild_progress()).await?;
    delete_if_present(store, &history_rebuild_files(progress.version)).await?;
    tracing::info!(version, files = progress.files, runs = history.runs(), "load history rebuilt");
    Ok(history)
}

/// The runs of the deleted ledger. One that cannot be opened is passed over, loudly: stopping
/// every commit of the table for it would cost more than the protection it gives.
async fn deleted_runs(store: &Arc<dyn ObjectStore>) -> Result<Vec<Run>> {
    let prefix = Path::from(HISTORY_DELETED_PREFIX);
    let listed: Vec<Path> = store.list(Some(&prefix)).map_ok(|meta| meta.location).try_collect().await?;
    let mut opened = futures::stream::iter(listed.iter().filter(|path| path.as_ref().ends_with(".run")))
        .map(|path| async move { (path, Run::open(store, path).await) })
        .buffered(REBUILD_READS);
    let mut runs = Vec::new();
    while let Some((path, run)) = opened.next().await {
        match run {
            Ok(run) => runs.push(run),
            Err(err) if is_damage(&err) => {
                tracing::error!(run = %path, error = %err, "deleted-sources run unreadable: the sources it held are not known to the rebuilt index");
            }
            Err(err) => return Err(err),
        }
    }
    Ok(runs)
}

/// Keeps the sources of data `files` another writer removed with `dataChange` in the deleted
/// ledger, so a rebuild knows them once their rows are gone (a rewrite's sources too, which is
/// harmless). A file already vacuumed, or that Inlet cannot read, is logged and passed over:
/// its sources are known to the index, but a rebuild would not know them.
pub(super) async fn record_deleted(store: &Arc<dyn ObjectStore>, version: u64, files: &[Path]) -> Result<()> {
    let mut keys = HashSet::new();
    let mut reads = futures::stream::iter(files)
        .map(|file| async move { (file, lineage_keys(store, file, None).await) })
        .buffer_unordered(REBUILD_READS);
    while let Some((file, read)) = reads.next().await {
        match read {
            Ok(lineage) => keys.extend(lineage.keys),
            Err(Error::Storage(object_store::Error::NotFound { .. })) => {
                tracing::warn!(file = %file, "a file deleted by another writer was vacuumed before its sources were kept: a rebuild of the load history will not know them");
            }
            // The store failing: the next run reads them again.
            Err(err @ Error::Storage(_)) => return Err(err),
            Err(err) => {
                tracing::error!(file = %file, error = %err, "a file deleted by another writer cannot be read: a rebuild of the load history will not know its sources");
            }
        }
        if keys.len() >= REBUILD_RUN_KEYS {
            write_deleted(store, version, std::mem::take(&mut keys)).await?;
        }
    }
    write_deleted(store, version, keys).await
}

async fn write_deleted(store: &Arc<dyn ObjectStore>, version: u64, keys: HashSet<SourceKey>) -> Result<()> {
    if !keys.is_empty() {
        let RunInfo { path, entries } = super::write_run_at(store, history_deleted_run(version), keys).await?;
        tracing::info!(run = %path, entries, "kept the sources of files another writer deleted");
    }
    Ok(())
}

/// What one data file's lineage columns say, and what reading them took.
struct FileLineage {
    /// The distinct keys of its sources.
    keys: HashSet<SourceKey>,
    requests: u64,
}

/// The distinct source keys of one data file's lineage columns (`size`: when known, no HEAD).
async fn lineage_keys(store: &Arc<dyn ObjectStore>, file: &Path, size: Option<u64>) -> Result<FileLineage> {
    let (size, head) = match size {
        Some(size) => (size, 0),
        None => (store.head(file).await?.size, 1),
    };
    let requests = Arc::new(AtomicU64::new(head));
    let reader = StoreFile { store: store.clone(), path: file.clone(), size, tail: None, requests: requests.clone() };
    let builder = ParquetRecordBatchStreamBuilder::new(reader).await.map_err(store_error)?;
    let counted = |keys| FileLineage { keys, requests: requests.load(Ordering::Relaxed) };
    if builder.schema().field_with_name(SOURCE_FILE_COLUMN).is_err() {
        // Written by another writer without lineage: it holds no source of ours.
        tracing::info!(file = %file, "table file has no lineage columns");
        return Ok(counted(HashSet::new()));
    }
    // Files written before the digest column have the other two only.
    let with_digest = builder.schema().field_with_name(SOURCE_DIGEST_COLUMN).is_ok();
    let columns = [SOURCE_FILE_COLUMN, SOURCE_ETAG_COLUMN, SOURCE_DIGEST_COLUMN];
    let mask =
        ProjectionMask::columns(builder.parquet_schema(), columns[..if with_digest { 3 } else { 2 }].iter().copied());
    let mut batches = builder.with_projection(mask).build()?;
    let mut keys = HashSet::new();
    // Rows of one source sit together: hash an identity only when it changes.
    let mut last: Option<SourceId> = None;
    while let Some(batch) = batches.next().await {
        let batch = batch.map_err(store_error)?;
        let column = |name: &str| -> Result<arrow_array::ArrayRef> {
            let column = batch.column_by_name(name).ok_or_else(|| {
                Error::Integrity(format!("table file {file} has no {name} column: its sources cannot be known"))
            })?;
            Ok(arrow_cast::cast(column, &arrow_schema::DataType::Utf8)?)
        };
        let (uris, etags) = (column(SOURCE_FILE_COLUMN)?, column(SOURCE_ETAG_COLUMN)?);
        let digests = if with_digest { Some(column(SOURCE_DIGEST_COLUMN)?) } else { None };
        let (uris, etags) = (uris.as_string::<i32>(), etags.as_string::<i32>());
        let digests = digests.as_ref().map(|digests| digests.as_string::<i32>());
        for row in 0..batch.num_rows() {
            let (uri, etag) = (uris.value(row), etags.is_valid(row).then(|| etags.value(row)));
            let digest = digests.and_then(|digests| digests.is_valid(row).then(|| digests.value(row)));
            if last
                .as_ref()
                .is_some_and(|id| id.uri == uri && id.etag.as_deref() == etag && id.digest.as_deref() == digest)
            {
                continue;
            }
            let id =
                SourceId { uri: uri.to_string(), etag: etag.map(str::to_string), digest: digest.map(str::to_string) };
            // Filed under every key a committed source is: its content and its ETag.
            keys.extend(id.keys());
            last = Some(id);
        }
    }
    Ok(counted(keys))
}

/// A Parquet error, or the store's own error when that is what it carries (a file gone is
/// damage to a rebuild's list, a store failing is retried; neither is a bad file).
fn store_error(err: parquet::errors::ParquetError) -> Error {
    match err {
        parquet::errors::ParquetError::External(inner) => match inner.downcast::<object_store::Error>() {
            Ok(store) => Error::Storage(*store),
            Err(other) => Error::Parquet(parquet::errors::ParquetError::External(other)),
        },
        other => Error::Parquet(other),
    }
}

/// A table file read through the store, range by range; the first read of its end is kept, so
/// a small file costs one request.
struct StoreFile {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
    /// Where the kept end starts, and its bytes.
    tail: Option<(u64, Bytes)>,
    requests: Arc<AtomicU64>,
}

impl AsyncFileReader for StoreFile {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        Box::pin(async move {
            if let Some((start, tail)) = &self.tail
                && range.start >= *start
                && range.end <= start + tail.len() as u64
            {
                return Ok(tail.slice((range.start - start) as usize..(range.end - start) as usize));
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let bytes = self
                .store
                .get_range(&self.path, range.clone())
                .await
                .map_err(|err| parquet::errors::ParquetError::External(err.into()))?;
            if range.end == self.size && self.tail.is_none() {
                self.tail = Some((range.start, bytes.clone()));
            }
            Ok(bytes)
        })
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        Box::pin(async move {
            let (size, hint) = (self.size, TAIL_BYTES.min(self.size) as usize);
            let reader = ParquetMetaDataReader::new().with_prefetch_hint(Some(hint));
            Ok(Arc::new(reader.load_and_finish(self, size).await?))
        })
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    #[tokio::test]
    async fn a_rebuild_progress_with_a_field_a_later_version_adds_still_reads_and_an_unreadable_one_starts_again() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let saved = r#"{"version": 4, "files": 10, "read": 6, "requests": 12,
            "runs": [{"path": "_inlet/history/runs/r.run", "entries": 5}], "started_at": "2026-05-16T00:00:00Z"}"#;
        store.put(&history_rebuild_progress(), PutPayload::from(saved.as_bytes().to_vec())).await.unwrap();
        let progress = saved_progress(&store).await.unwrap().unwrap();
        assert_eq!(progress.state(), RebuildProgress { version: 4, files: 10, read: 6, requests: 12 });
        assert_eq!(saved_runs(&store).await.unwrap(), ["_inlet/history/runs/r.run"]);
        store.put(&history_rebuild_progress(), PutPayload::from(b"{\"progress\": 2}".to_vec())).await.unwrap();
        assert!(saved_progress(&store).await.unwrap().is_none());
    }
}
