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
use object_store::ObjectStoreExt;
use serde::Serialize;

use super::trace::{commit_at, digest_of, first_commit_from};
use crate::commit::LoadHistory;
use crate::error::{Error, Result};
use crate::layout::{FAILURES_PREFIX, QUARANTINE_PREFIX, SUPERSEDED_PREFIX, source_record};
use crate::lineage::{SourceId, SourceObject};
use crate::routes::Routes;
use crate::stage::fragment::FragmentStore;

/// What a reconciliation covers.
#[derive(Debug, Clone)]
pub struct Window {
    /// The raw bucket.
    pub bucket: String,
    /// The key prefixes listed (one, or one per date or hour of the window).
    pub prefixes: Vec<String>,
    /// Only keys ending with this (empty: all).
    pub suffix: String,
    /// Versions written at or after this...
    pub since: DateTime<Utc>,
    /// ...and before this.
    pub until: DateTime<Utc>,
    /// Read no more versions for their digest from this instant: those left count as
    /// unaccounted (sending them again is safe: the load history drops any already in).
    pub read_deadline: Option<tokio::time::Instant>,
}

/// The table a reconciliation checks against.
pub struct Table<'a> {
    /// The routes, to leave out versions another table takes.
    pub routes: &'a Routes,
    /// The position of this table's route.
    pub route: usize,
    /// Its store.
    pub store: &'a Arc<dyn ObjectStore>,
    /// Its location and storage options, to open it once what is staged has been listed.
    pub url: &'a url::Url,
    /// Storage options for `url`.
    pub storage_options: &'a HashMap<String, String>,
}

/// Where every version went.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reconciliation {
    /// Versions written in the window that this table takes.
    pub versions: usize,
    /// Versions under the prefix another table takes, left out.
    pub other_tables: usize,
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
    /// Versions that could not be read for their digest (overwritten or deleted since they
    /// were listed, archived), with why: not renotified.
    pub unreadable: Vec<(String, String)>,
    /// None of the above: the pipeline never heard of them.
    pub unaccounted: Vec<Unaccounted>,
    /// What the reconciliation could not establish, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Reconciliation {
    /// Adds `other`'s counts and findings (another bucket of the same table and window).
    pub fn absorb(&mut self, other: Reconciliation) {
        self.versions += other.versions;
        self.other_tables += other.other_tables;
        self.committed += other.committed;
        self.same_content += other.same_content;
        self.quarantined += other.quarantined;
        self.superseded += other.superseded;
        self.failed += other.failed;
        self.staged += other.staged;
        self.commits_read += other.commits_read;
        self.unreadable.extend(other.unreadable);
        self.unaccounted.extend(other.unaccounted);
        self.notes.extend(other.notes.into_iter().filter(|note| !self.notes.contains(note)).collect::<Vec<_>>());
    }
}

/// Sends `unaccounted` versions to the ingest queue as notifications: the load history keeps
/// each from landing twice, however often it is sent.
pub async fn renotify(sqs: &aws_sdk_sqs::Client, queue_url: &str, unaccounted: &[Unaccounted]) -> Result<usize> {
    let listed: Vec<super::backfill::ListedObject> = unaccounted
        .iter()
        .map(|lost| super::backfill::ListedObject { object: lost.object.clone(), size: lost.size, last_modified: None })
        .collect();
    super::backfill::enqueue(sqs, queue_url, &listed, |_| ()).await
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
    /// The id to read it by when it is not the key's current version ("null" included).
    read_as: Option<String>,
}

/// How long after a window closes its versions may still be committed: commits are read up
/// to this past `until`.
const COMMIT_LAG_MS: i64 = 3_600_000;

/// Versions read for their digest at once.
const READS_AT_ONCE: usize = 8;

/// Accounts for every version in `window` that `table`'s route takes.
pub async fn reconcile(s3: &aws_sdk_s3::Client, table: &Table<'_>, window: &Window) -> Result<Reconciliation> {
    let mut report = Reconciliation::default();
    let mut listed = Vec::new();
    for version in list_versions(s3, window).await? {
        if table.routes.route_of(&version.object) == Some(table.route) {
            listed.push(version);
        } else {
            report.other_tables += 1;
        }
    }
    report.versions = listed.len();
    // What is staged is listed before the table is read: a version committed in between is
    // then in the commits read, never in neither.
    let staged = staged_versions(table.store).await?;
    let newest = crate::commit::table::open_table(table.url, table.storage_options).await?.version();
    let (committed, digests) = match newest {
        Some(newest) => committed_in(table.store, newest, window, &mut report).await?,
        None => (HashSet::new(), HashSet::new()),
    };
    let mut unread = Vec::new();
    for version in listed {
        let object = &version.object;
        let by_etag = (object.uri(), object.etag.clone().unwrap_or_default());
        let tag = object.version.as_deref().or(object.etag.as_deref()).unwrap_or("unknown-version");
        if committed.contains(&by_etag) {
            report.committed += 1;
        } else if staged.contains(&by_etag) {
            report.staged += 1;
        } else if has_record(table.store, SUPERSEDED_PREFIX, object, tag).await? {
            report.superseded += 1;
        } else if has_record(table.store, FAILURES_PREFIX, object, tag).await? {
            report.failed += 1;
        } else {
            unread.push(version);
        }
    }
    let (kept, ids) = read_digests(s3, unread, window, &mut report).await;
    let held = match newest {
        Some(newest) if !ids.is_empty() => match LoadHistory::lookup(table.store, newest, &ids).await? {
            Some((_, held)) => held,
            None => {
                report.notes.push(
                    "the load history cannot answer now (it is being rebuilt): versions committed before the window \
                     under other ETags count as unaccounted"
                        .to_string(),
                );
                HashSet::new()
            }
        },
        _ => HashSet::new(),
    };
    for (version, id) in kept.into_iter().zip(ids) {
        let digest = id.digest.clone().unwrap_or_default();
        if held.contains(&id) || digests.contains(&(id.uri.clone(), digest.clone())) {
            report.same_content += 1;
        } else if has_record(table.store, QUARANTINE_PREFIX, &version.object, &digest).await? {
            report.quarantined += 1;
        } else {
            report.unaccounted.push(version.into());
        }
    }
    Ok(report)
}

/// What is left is read for its content digest, that very version (by id, else only while its
/// ETag is the listed one): the same bytes may be in the table under another version, or
/// wholly quarantined (records are filed by digest). A version gone since it was listed is set
/// aside in the report, not renotified; one that cannot be read for another reason (denied,
/// throttled), or is not read before the window's deadline, counts as unaccounted, so that it
/// is alarmed on and, when renotified, read by the converter, which says why if it cannot.
async fn read_digests(
    s3: &aws_sdk_s3::Client,
    unread: Vec<Listed>,
    window: &Window,
    report: &mut Reconciliation,
) -> (Vec<Listed>, Vec<SourceId>) {
    let deadline = window.read_deadline;
    let read: Vec<(Listed, Option<Result<String>>)> = futures::stream::iter(unread)
        .map(|version| async move {
            if deadline.is_some_and(|deadline| tokio::time::Instant::now() >= deadline) {
                return (version, None);
            }
            let digest = digest_of_listed(s3, &version.object, version.read_as.as_deref()).await;
            (version, Some(digest))
        })
        .buffered(READS_AT_ONCE)
        .collect()
        .await;
    let (mut kept, mut ids, mut not_read, mut failed) = (Vec::new(), Vec::new(), 0, 0);
    for (version, digest) in read {
        match digest {
            Some(Ok(digest)) => {
                ids.push(SourceId {
                    uri: version.object.uri(),
                    etag: version.object.etag.clone(),
                    digest: Some(digest),
                });
                kept.push(version);
            }
            Some(Err(err @ Error::Superseded { .. })) => {
                report.unreadable.push((version.object.uri(), err.to_string()))
            }
            Some(Err(err)) => {
                failed += 1;
                tracing::warn!(object = %version.object.uri(), error = %err, "a version could not be read for its digest: counted unaccounted");
                report.unaccounted.push(version.into());
            }
            None => {
                not_read += 1;
                report.unaccounted.push(version.into());
            }
        }
    }
    if failed > 0 {
        report.notes.push(format!("{failed} versions could not be read for their digest and count as unaccounted"));
    }
    if not_read > 0 {
        report.notes.push(format!("{not_read} versions were not read before the deadline and count as unaccounted"));
    }
    (kept, ids)
}

impl From<Listed> for Unaccounted {
    fn from(version: Listed) -> Self {
        Unaccounted { object: version.object, size: version.size, last_modified: version.last_modified.to_rfc3339() }
    }
}

/// The content digest of exactly the listed version: by its version id, else the key read
/// only while its ETag is still the listed one.
async fn digest_of_listed(s3: &aws_sdk_s3::Client, object: &SourceObject, read_as: Option<&str>) -> Result<String> {
    match read_as.or(object.version.as_deref()) {
        Some(id) => digest_of(s3, object, Some(id), None).await,
        None => digest_of(s3, object, None, object.etag.as_deref()).await,
    }
}

/// The versions written in the window under its prefixes (delete markers aside), oldest first.
async fn list_versions(s3: &aws_sdk_s3::Client, window: &Window) -> Result<Vec<Listed>> {
    let mut listed = Vec::new();
    for prefix in &window.prefixes {
        list_prefix_versions(s3, window, prefix, &mut listed).await?;
    }
    // Prefixes that overlap list a version twice: it is one version.
    let mut seen = HashSet::new();
    listed.retain(|version| {
        seen.insert((version.object.key.clone(), version.object.version.clone(), version.object.etag.clone()))
    });
    listed.sort_by_key(|version| version.last_modified);
    Ok(listed)
}

async fn list_prefix_versions(
    s3: &aws_sdk_s3::Client,
    window: &Window,
    prefix: &str,
    listed: &mut Vec<Listed>,
) -> Result<()> {
    let (mut key_marker, mut version_marker) = (None, None);
    loop {
        let page = s3
            .list_object_versions()
            .bucket(&window.bucket)
            .prefix(prefix)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .map_err(|err| Error::aws("ListObjectVersions", format!("s3://{}/{prefix}", window.bucket), err))?;
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
            return Ok(());
        }
        key_marker = page.next_key_marker().map(str::to_string);
        version_marker = page.next_version_id_marker().map(str::to_string);
    }
}

/// The (URI, ETag) and (URI, digest) of every source the commits from the window's opening to
/// an hour past its close list.
type Committed = (HashSet<(String, String)>, HashSet<(String, String)>);

async fn committed_in(
    table: &Arc<dyn ObjectStore>,
    newest: u64,
    window: &Window,
    report: &mut Reconciliation,
) -> Result<Committed> {
    const AT_ONCE: usize = 16;
    let first = first_commit_from(table, newest, window.since.timestamp_millis()).await?;
    if first > 0 && first <= newest && commit_at(table, first - 1).await?.is_none() {
        report.notes.push(format!(
            "the log no longer holds the commits before version {first} (cleaned up): versions committed then \
             are recognised by their content, one read each"
        ));
    }
    let last_ms = window.until.timestamp_millis() + COMMIT_LAG_MS;
    let (mut by_etag, mut by_digest) = (HashSet::new(), HashSet::new());
    let mut versions = (first..=newest).peekable();
    while versions.peek().is_some() {
        let chunk: Vec<u64> = versions.by_ref().take(AT_ONCE).collect();
        let commits: Vec<_> = futures::stream::iter(chunk)
            .map(|version| commit_at(table, version))
            .buffered(AT_ONCE)
            .try_collect()
            .await?;
        let mut past_window = false;
        for (at, sources) in commits.into_iter().flatten() {
            report.commits_read += 1;
            past_window |= at > last_ms;
            for source in sources {
                if let Some(etag) = &source.id.etag {
                    by_etag.insert((source.id.uri.clone(), etag.clone()));
                }
                if let Some(digest) = &source.id.digest {
                    by_digest.insert((source.id.uri.clone(), digest.clone()));
                }
            }
        }
        // Commits an hour past the window commit nothing written in it (but a redelivery).
        if past_window {
            break;
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
            // Committed and removed since it was listed: the commits read after list it.
            Err(Error::Storage(object_store::Error::NotFound { .. })) => {}
            // The compactor sets it aside and reports it; its sources are not counted staged.
            Err(err) => tracing::warn!(fragment = %meta.location, error = %err, "a staged fragment cannot be read"),
        }
    }
    Ok(staged)
}

/// Whether `object` has a record under `prefix` for `tag`: one HEAD of its path.
async fn has_record(table: &Arc<dyn ObjectStore>, prefix: &str, object: &SourceObject, tag: &str) -> Result<bool> {
    let extension = if prefix == QUARANTINE_PREFIX { "ndjson" } else { "json" };
    match table.head(&source_record(prefix, &object.bucket, &object.key, tag, extension)).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(err) => Err(err.into()),
    }
}
