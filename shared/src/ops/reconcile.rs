//! Reconciliation: every object version written under a prefix in a time window, accounted
//! for. A version is committed (a commit since the window opened lists it), a copy of content
//! already committed (the same bytes under another version), quarantined whole, superseded,
//! failed (its failure record: the DLQ holds it), staged and not yet committed, or
//! unaccounted: its notification never reached the pipeline. Unaccounted versions can be
//! sent through the pipeline again, which the load history makes exactly once.
//!
//! The cost follows the window: one listing of the prefix's versions, the commits made since
//! the window opened, the record folders and staged fragments of the versions not found in
//! those commits, and one read of each version still unmatched (its content digest).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake::ObjectStore;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use super::trace::{commit_at, digest_of, first_commit_from};
use crate::commit::LoadHistory;
use crate::error::{Error, Result};
use crate::layout::{FAILURES_PREFIX, QUARANTINE_PREFIX, SUPERSEDED_PREFIX, source_record};
use crate::lineage::{SourceId, SourceObject};
use crate::stage::fragment::FragmentStore;

/// What a reconciliation covers.
#[derive(Debug, Clone)]
pub struct Window {
    /// The raw bucket.
    pub bucket: String,
    /// The key prefix.
    pub prefix: String,
    /// Only keys ending with this (empty: all).
    pub suffix: String,
    /// Versions written at or after this...
    pub since: DateTime<Utc>,
    /// ...and before this.
    pub until: DateTime<Utc>,
}

/// Where every version went.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reconciliation {
    /// Versions written in the window.
    pub versions: usize,
    /// Listed by a commit.
    pub committed: usize,
    /// The same bytes as a committed version (a re-upload): its rows are in the table once.
    pub same_content: usize,
    /// Every line quarantined (a quarantine record, no rows).
    pub quarantined: usize,
    /// Recorded as superseded: gone before it was read.
    pub superseded: usize,
    /// Failed (a failure record): in the DLQ or on its way there.
    pub failed: usize,
    /// Staged, not yet committed.
    pub staged: usize,
    /// Commits read.
    pub commits_read: u64,
    /// None of the above: the pipeline never heard of them.
    pub unaccounted: Vec<Unaccounted>,
}

/// A version the pipeline never heard of.
#[derive(Debug, Clone, Serialize)]
pub struct Unaccounted {
    /// The version.
    pub object: SourceObject,
    /// Its size.
    pub size: u64,
    /// When it was written (RFC 3339).
    pub last_modified: String,
}

/// A listed version.
struct Listed {
    object: SourceObject,
    size: u64,
    last_modified: DateTime<Utc>,
    /// The id to read it by: none for the key's current version.
    read_as: Option<String>,
}

/// Accounts for every version in `window`, against the table whose store is `table` and whose
/// newest version is `table_version`.
pub async fn reconcile(
    s3: &aws_sdk_s3::Client,
    table: &Arc<dyn ObjectStore>,
    table_version: Option<u64>,
    window: &Window,
) -> Result<Reconciliation> {
    let listed = list_versions(s3, window).await?;
    let mut report = Reconciliation { versions: listed.len(), ..Reconciliation::default() };
    let (committed, digests) = match table_version {
        Some(newest) => committed_since(table, newest, window.since.timestamp_millis(), &mut report).await?,
        None => (HashSet::new(), HashSet::new()),
    };
    let mut open = Vec::new();
    for version in listed {
        let key = (version.object.uri(), version.object.etag.clone().unwrap_or_default());
        if committed.contains(&key) {
            report.committed += 1;
        } else {
            open.push(version);
        }
    }
    if open.is_empty() {
        return Ok(report);
    }
    let staged = staged_versions(table).await?;
    let mut folders: HashMap<String, HashSet<String>> = HashMap::new();
    let mut unread = Vec::new();
    for version in open {
        let object = &version.object;
        let tag = object.version.as_deref().or(object.etag.as_deref()).unwrap_or("unknown-version");
        if staged.contains(&(object.uri(), object.etag.clone().unwrap_or_default())) {
            report.staged += 1;
        } else if has_record(table, &mut folders, SUPERSEDED_PREFIX, object, tag).await? {
            report.superseded += 1;
        } else if has_record(table, &mut folders, FAILURES_PREFIX, object, tag).await? {
            report.failed += 1;
        } else {
            unread.push(version);
        }
    }
    // What is left is read for its content digest: the same bytes may be in the table under
    // another version, or wholly quarantined (records are filed by digest).
    let mut ids = Vec::new();
    for version in &unread {
        let digest = digest_of(s3, &version.object, version.read_as.as_deref()).await?;
        ids.push(SourceId { uri: version.object.uri(), etag: version.object.etag.clone(), digest: Some(digest) });
    }
    let held = match table_version {
        Some(newest) if !ids.is_empty() => {
            LoadHistory::lookup(table, newest, &ids).await?.map(|(_, held)| held).unwrap_or_default()
        }
        _ => HashSet::new(),
    };
    for (version, id) in unread.into_iter().zip(ids) {
        let digest = id.digest.clone().unwrap_or_default();
        if held.contains(&id) || digests.contains(&(id.uri.clone(), digest.clone())) {
            report.same_content += 1;
        } else if has_record(table, &mut folders, QUARANTINE_PREFIX, &version.object, &digest).await? {
            report.quarantined += 1;
        } else {
            report.unaccounted.push(Unaccounted {
                object: version.object,
                size: version.size,
                last_modified: version.last_modified.to_rfc3339(),
            });
        }
    }
    Ok(report)
}

/// The versions written in the window (delete markers aside), oldest first.
async fn list_versions(s3: &aws_sdk_s3::Client, window: &Window) -> Result<Vec<Listed>> {
    let mut listed = Vec::new();
    let (mut key_marker, mut version_marker) = (None, None);
    loop {
        let page = s3
            .list_object_versions()
            .bucket(&window.bucket)
            .prefix(&window.prefix)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .map_err(|err| {
                Error::aws("ListObjectVersions", format!("s3://{}/{}", window.bucket, window.prefix), err)
            })?;
        for version in page.versions() {
            let (Some(key), Some(at)) = (version.key(), version.last_modified()) else { continue };
            let Some(last_modified) = DateTime::<Utc>::from_timestamp(at.secs(), at.subsec_nanos()) else { continue };
            if !key.ends_with(&window.suffix) || last_modified < window.since || last_modified >= window.until {
                continue;
            }
            let object = SourceObject {
                bucket: window.bucket.clone(),
                key: key.to_string(),
                etag: version.e_tag().map(|etag| etag.trim_matches('"').to_string()),
                version: version.version_id().filter(|id| *id != "null").map(str::to_string),
                digest: None,
            };
            let read_as =
                (version.is_latest() != Some(true)).then(|| version.version_id().map(str::to_string)).flatten();
            listed.push(Listed { object, size: version.size().unwrap_or(0).max(0) as u64, last_modified, read_as });
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_string);
        version_marker = page.next_version_id_marker().map(str::to_string);
    }
    listed.sort_by_key(|version| version.last_modified);
    Ok(listed)
}

/// The (URI, ETag) and (URI, digest) of every source the commits since `since_ms` list.
type Committed = (HashSet<(String, String)>, HashSet<(String, String)>);

async fn committed_since(
    table: &Arc<dyn ObjectStore>,
    newest: u64,
    since_ms: i64,
    report: &mut Reconciliation,
) -> Result<Committed> {
    const AT_ONCE: usize = 16;
    let first = first_commit_from(table, newest, since_ms).await?;
    let (mut by_etag, mut by_digest) = (HashSet::new(), HashSet::new());
    let mut versions = (first..=newest).peekable();
    while versions.peek().is_some() {
        let chunk: Vec<u64> = versions.by_ref().take(AT_ONCE).collect();
        let commits: Vec<_> = futures::stream::iter(chunk)
            .map(|version| commit_at(table, version))
            .buffered(AT_ONCE)
            .try_collect()
            .await?;
        for (_, sources) in commits.into_iter().flatten() {
            report.commits_read += 1;
            for source in sources {
                if let Some(etag) = &source.id.etag {
                    by_etag.insert((source.id.uri.clone(), etag.clone()));
                }
                if let Some(digest) = &source.id.digest {
                    by_digest.insert((source.id.uri.clone(), digest.clone()));
                }
            }
        }
    }
    Ok((by_etag, by_digest))
}

/// The (URI, ETag) of every source staged now.
async fn staged_versions(table: &Arc<dyn ObjectStore>) -> Result<HashSet<(String, String)>> {
    let fragments = FragmentStore::new(table.clone());
    let mut staged = HashSet::new();
    for meta in fragments.list().await? {
        match fragments.info(&meta).await {
            Ok(info) => {
                staged.extend(info.sources.into_iter().map(|s| (s.id.uri, s.id.etag.unwrap_or_default())));
            }
            // Committed and removed since it was listed: the commits were read before.
            Err(Error::Storage(object_store::Error::NotFound { .. })) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(staged)
}

/// Whether `object` has a record under `prefix` for `tag`; each record folder is listed once
/// (records are filed by their object's folder).
async fn has_record(
    table: &Arc<dyn ObjectStore>,
    folders: &mut HashMap<String, HashSet<String>>,
    prefix: &str,
    object: &SourceObject,
    tag: &str,
) -> Result<bool> {
    let wanted = source_record(prefix, &object.bucket, &object.key, tag, "x");
    let folder: object_store::path::Path = wanted.parts().take(wanted.parts().count() - 1).collect();
    let listed = match folders.entry(folder.to_string()) {
        std::collections::hash_map::Entry::Occupied(listed) => listed.into_mut(),
        std::collections::hash_map::Entry::Vacant(entry) => {
            let paths: HashSet<String> =
                table.list(Some(&folder)).map_ok(|meta| meta.location.to_string()).try_collect().await?;
            entry.insert(paths)
        }
    };
    let stem = |path: &str| path.rsplit_once('.').map_or(path.to_string(), |(stem, _)| stem.to_string());
    let wanted = stem(wanted.as_ref());
    Ok(listed.iter().any(|path| stem(path) == wanted))
}
