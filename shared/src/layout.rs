//! Every path and metadata key Inlet owns in a table's storage, in one place.
//!
//! Under the table root, Delta readers see `_delta_log/` and the data files; Inlet keeps its
//! own state under `_inlet/`, where no Delta reader looks:
//!
//! ```text
//! <table>/_inlet/fragments/[<column>=<value>/]<time>-<uuid>.parquet   staged, not yet committed
//! <table>/_inlet/batches/<batch>                                      a converter batch's seal, or its void
//! <table>/_inlet/quarantine/<bucket>/<key>@<digest>.ndjson            lines that did not fit
//! <table>/_inlet/replayed/<bucket>/<key>@<digest>.json                 a quarantine record's replay object
//! <table>/_inlet/superseded/<bucket>/<key>@<version or etag>.json     notified versions gone before they were read
//! <table>/_inlet/failures/<bucket>/<key>@<version or etag>.json       why an object's messages last failed
//! <table>/_inlet/history/manifests/<version>.json                     load history index, as of a version
//! <table>/_inlet/history/runs/<version>-<uuid>.run                    sorted runs of committed source keys
//! <table>/_inlet/deleted-sources/<version>-<uuid>.run                sources of files another writer deleted
//! <table>/_inlet/history/rebuild/progress.json, <version>.files       a rebuild of the index under way
//! <table>/_inlet/corrupt/...                                          staged files no reader could read
//! ```
//!
//! Fragments carry `inlet.sources`, `inlet.batch` and `inlet.sealed` in their Parquet footer; compaction
//! commits carry `inlet.sources`, `inlet.fragments` and `inlet.rows` in their `commitInfo`,
//! and a `txn` action of the compactor's application id.

use object_store::path::Path;

/// Where fragments are staged, relative to the table root.
pub const FRAGMENTS_PREFIX: &str = "_inlet/fragments";
/// Where converter batches are sealed (or voided), relative to the table root.
pub const BATCHES_PREFIX: &str = "_inlet/batches";
/// Where quarantined lines are kept, relative to the table root.
pub const QUARANTINE_PREFIX: &str = "_inlet/quarantine";
/// Where a replayed quarantine record notes the object its lines were replayed as.
pub const REPLAYED_PREFIX: &str = "_inlet/replayed";
/// Where notified versions that no longer existed when read are recorded, relative to the table root.
pub const SUPERSEDED_PREFIX: &str = "_inlet/superseded";
/// Where the converter records why it last failed an object's messages.
pub const FAILURES_PREFIX: &str = "_inlet/failures";
/// Where the load history index keeps its manifests, relative to the table root.
pub const HISTORY_MANIFESTS_PREFIX: &str = "_inlet/history/manifests";
/// Where the load history index keeps its sorted runs, relative to the table root.
pub const HISTORY_RUNS_PREFIX: &str = "_inlet/history/runs";
/// Where the load history keeps the sources of data files another writer deleted: not derived
/// (once the files are vacuumed nothing else holds them), so apart from the index.
pub const HISTORY_DELETED_PREFIX: &str = "_inlet/deleted-sources";
/// Where a rebuild of the load history index keeps its progress.
pub const HISTORY_REBUILD_PREFIX: &str = "_inlet/history/rebuild";
/// Where the compactor records the sources whose rows it deleted uncommitted, relative to the table root.
pub const DROPPED_PREFIX: &str = "_inlet/dropped";
/// Where staged files that cannot be read as fragments are set aside, relative to the table root.
pub const CORRUPT_PREFIX: &str = "_inlet/corrupt";

/// Key listing sources: in a fragment's footer (each with its rows) and in a compaction
/// commit's `commitInfo` (the sources it adds). The same key on purpose: both are lineage.
pub const SOURCES_KEY: &str = "inlet.sources";
/// Fragment footer key naming the converter invocation that wrote the fragment.
pub const BATCH_KEY: &str = "inlet.batch";
/// Fragment footer key saying the fragment may be compacted only once its batch is sealed
/// under [`BATCHES_PREFIX`] (fragments staged before batches were sealed lack it).
pub const SEALED_KEY: &str = "inlet.sealed";
/// How far the table is complete: the completeness watermark (`commit::complete`).
pub const COMPLETE_STATE: &str = "_inlet/complete/latest.json";
/// Markers of completed time windows, one per window.
pub const COMPLETE_WINDOWS_PREFIX: &str = "_inlet/complete/windows";
/// Where commits into windows already complete are recorded, one object per window and version.
pub const COMPLETE_LATE_PREFIX: &str = "_inlet/complete/late";

/// `commitInfo` key listing the fragments a compaction consumed.
pub const FRAGMENTS_KEY: &str = "inlet.fragments";
/// `commitInfo` key counting the rows a compaction committed.
pub const ROWS_KEY: &str = "inlet.rows";
/// `commitInfo` key of an optimize commit: the table files it rewrote.
pub const OPTIMIZED_KEY: &str = "inlet.optimized";

/// Delta application id of the compactor; its `txn` version counts compactions, and makes two
/// compactors racing on one table conflict instead of both appending.
pub const COMPACTOR_APP_ID: &str = "inlet-compactor";

/// Directory value of a null partition, as Hive and Delta write it.
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// The record of one version of a source object under `prefix`:
/// `<prefix>/<bucket>/<key>@<tag>.<extension>`, so a retry rewrites the same record.
pub fn source_record(prefix: &str, bucket: &str, key: &str, tag: &str, extension: &str) -> Path {
    let name = format!("{key}@{}.{extension}", tag.replace(':', "-"));
    let parts = [prefix, bucket].into_iter().chain(name.split('/'));
    Path::from_iter(parts.filter(|part| !part.is_empty()).flat_map(|part| part.split('/')))
}

/// The Delta commit file of `version`, relative to the table root.
pub fn commit_file(version: u64) -> Path {
    Path::from(format!("_delta_log/{version:020}.json"))
}

/// The seal (or void) record of converter batch `batch`.
pub fn batch_record(batch: &str) -> Path {
    Path::from(BATCHES_PREFIX).join(batch)
}

/// The batch a seal or void record is for.
pub fn batch_of_record(path: &Path) -> Option<&str> {
    path.filename()
}

/// The load history manifest covering the log up to table `version`.
pub fn history_manifest(version: u64) -> Path {
    Path::from(format!("{HISTORY_MANIFESTS_PREFIX}/{version:020}.json"))
}

/// The table version a history manifest's file name records, if it is one.
pub fn history_manifest_version(path: &Path) -> Option<u64> {
    path.filename()?.strip_suffix(".json")?.parse().ok()
}

/// A new load history run, written when the index reached table `version`.
pub fn history_run(version: u64) -> Path {
    Path::from(format!("{HISTORY_RUNS_PREFIX}/{version:020}-{}.run", uuid::Uuid::new_v4().simple()))
}

/// A run of the sources of files other writers removed, kept when the index took in commit
/// `version`.
pub fn history_deleted_run(version: u64) -> Path {
    Path::from(format!("{HISTORY_DELETED_PREFIX}/{version:020}-{}.run", uuid::Uuid::new_v4().simple()))
}

/// A load history rebuild's saved progress.
pub fn history_rebuild_progress() -> Path {
    Path::from(format!("{HISTORY_REBUILD_PREFIX}/progress.json"))
}

/// The data files of table `version` a load history rebuild reads, one path per line.
pub fn history_rebuild_files(version: u64) -> Path {
    Path::from(format!("{HISTORY_REBUILD_PREFIX}/{version:020}.files"))
}

/// The table version a history run was written at, from its file name.
pub fn history_run_version(path: &Path) -> Option<u64> {
    path.filename()?.split_once('-')?.0.parse().ok()
}

/// The Hive directory of a partition value (`date=2026-05-16`; null as Hive writes it), the
/// value percent-encoded as the Delta protocol and delta-rs' writer encode it, so a value
/// cannot make a directory of its own and every writer names a partition alike.
pub fn partition_directory(column: &str, value: Option<&str>) -> String {
    let Some(value) = value else { return format!("{column}={NULL_PARTITION}") };
    let mut encoded = String::with_capacity(column.len() + 1 + value.len());
    encoded.push_str(column);
    encoded.push('=');
    for &byte in value.as_bytes() {
        let reserved = b" !\"#$%&'()*+,/:;<=>?@[\\]^`{|}";
        if byte.is_ascii_control() || !byte.is_ascii() || reserved.contains(&byte) {
            encoded.push_str(&format!("%{byte:02X}"));
        } else {
            encoded.push(byte as char);
        }
    }
    encoded
}

/// The Hive directories of a partition of several columns (`service=web/date=2026-05-16`).
pub fn partition_directories<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> String {
    pairs.into_iter().map(|(column, value)| partition_directory(column, value)).collect::<Vec<_>>().join("/")
}

/// Key of the object `inlet quarantine replay` writes for lines of `key` quarantined under
/// version tag `tag`: beside the original, so routing, partitioning by key and notification
/// filters treat it as they treated the original. Its lines are one record each, whatever the
/// table's framing.
pub fn replay_key(key: &str, tag: &str) -> String {
    format!("{key}{REPLAY_INFIX}{tag}{REPLAY_SUFFIX}")
}

/// Whether `key` names a replay object ([`replay_key`]).
pub fn is_replay_key(key: &str) -> bool {
    key.strip_suffix(REPLAY_SUFFIX)
        .and_then(|rest| rest.rsplit_once(REPLAY_INFIX))
        .is_some_and(|(original, tag)| !original.is_empty() && !tag.is_empty() && !tag.contains('/'))
}

const REPLAY_INFIX: &str = ".replay-";
const REPLAY_SUFFIX: &str = ".json.zst";

/// The marker of a completed window (`date=2026-05-16`, `date=2026-05-16/hour=7`).
pub fn complete_marker(window: &str) -> Path {
    Path::from(format!("{COMPLETE_WINDOWS_PREFIX}/{window}.json"))
}

/// The folder of the records of late commits into `window`.
pub fn late_commits(window: &str) -> Path {
    Path::from(format!("{COMPLETE_LATE_PREFIX}/{window}"))
}

/// The record of `version`'s late commit into `window`: one object per version, created once,
/// so racing compactors never rewrite one another's.
pub fn late_commit(window: &str, version: u64) -> Path {
    Path::from(format!("{COMPLETE_LATE_PREFIX}/{window}/{version:020}.json"))
}

/// The partition directory a fragment is staged under (`date=2026-05-16`; empty when unpartitioned).
pub fn staged_partition(path: &Path) -> &str {
    let relative = path.as_ref().strip_prefix(FRAGMENTS_PREFIX).unwrap_or(path.as_ref()).trim_start_matches('/');
    relative.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// What the commit queue carries: a sealed batch's announcement, for the compactor to commit
/// the table it names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SealedBatch {
    /// The route's name (the table's last URI segment for a single table).
    pub table: String,
    /// The batch sealed.
    pub batch: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_and_name_their_partition() {
        assert_eq!(commit_file(7).as_ref(), "_delta_log/00000000000000000007.json");
        assert_eq!(history_manifest_version(&history_manifest(250)), Some(250));
        assert_eq!(history_manifest_version(&Path::from("_inlet/history/manifests/notes.txt")), None);
        assert_eq!(history_run_version(&history_run(31)), Some(31));
        assert_eq!(partition_directory("date", None), "date=__HIVE_DEFAULT_PARTITION__");
        assert_eq!(partition_directory("s", Some("a/b c%=é~-_.")), "s=a%2Fb%20c%25%3D%C3%A9~-_.");
        assert_eq!(partition_directories([("s", Some("web")), ("hour", Some("7"))]), "s=web/hour=7");
        let staged = Path::from("_inlet/fragments/date=2026-05-16/x.parquet");
        assert_eq!(staged_partition(&staged), "date=2026-05-16");
        assert_eq!(staged_partition(&Path::from("_inlet/fragments/x.parquet")), "");
    }
}
