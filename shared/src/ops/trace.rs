//! Where one object went: its route and table, and for each version of it the commit that
//! added its rows, its quarantined lines, its superseded record, the fragments holding it
//! while staged, and the dead-letter messages naming it. Every answer is read from what the
//! pipeline keeps, at a cost set by the object (its versions, its folder's records, what is
//! staged now), not by the table's size.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_s3::error::ProvideErrorMetadata;
use deltalake::ObjectStore;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde::Serialize;

use crate::commit::LoadHistory;
use crate::commit::history::sources_in_commit;
use crate::error::{Error, Result};
use crate::ingest::{FailureRecord, SupersededVersion};
use crate::layout::{FAILURES_PREFIX, QUARANTINE_PREFIX, REPLAYED_PREFIX, SUPERSEDED_PREFIX, source_record};
use crate::lineage::{CommittedSource, ContentDigest, SourceId, SourceObject};
use crate::stage::fragment::FragmentStore;

/// Commits read forward from the first one at or after a version was written, looking for the
/// one that added it: a bound on a trace's cost at any commit rate.
pub const COMMITS_SEARCHED: u64 = 5_000;

/// Everything known of one object.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Trace {
    /// `s3://bucket/key`
    pub object: String,
    /// The route that takes it.
    pub route: String,
    /// Its table.
    pub table: String,
    /// Each version in the raw bucket (only the current one when the bucket keeps none), newest
    /// first.
    pub versions: Vec<VersionTrace>,
    /// Quarantine records of any version of it.
    pub quarantine: Vec<QuarantineTrace>,
    /// Superseded records of any version of it.
    pub superseded: Vec<SupersededVersion>,
    /// Why the converter last failed each version it could not read, if it did.
    pub failures: Vec<FailureRecord>,
    /// Staged fragments holding rows of it, not yet committed.
    pub staged: Vec<StagedTrace>,
    /// Dead-letter messages naming it.
    pub dead_letters: Vec<DeadLetter>,
    /// What the trace could not say, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Versions traced when none is named: the newest.
pub const VERSIONS_TRACED: usize = 10;

/// One version of the object and what became of it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VersionTrace {
    /// Version id (`null` in an unversioned bucket).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// ETag, quotes removed.
    pub etag: String,
    /// Its content digest, as the converter names it.
    pub digest: String,
    /// Stored size.
    pub size: u64,
    /// When it was written (RFC 3339).
    pub last_modified: String,
    /// Whether it is the key's current version.
    pub latest: bool,
    /// Whether the table holds its rows, as the load history says.
    pub committed: bool,
    /// The commit that added them, when found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<CommitTrace>,
}

/// A commit that added an object's rows.
#[derive(Debug, Clone, Serialize)]
pub struct CommitTrace {
    /// Table version.
    pub version: u64,
    /// Commit time (RFC 3339).
    pub committed_at: String,
    /// Rows of the object it added.
    pub rows: u64,
}

/// A quarantine record of the object.
#[derive(Debug, Clone, Serialize)]
pub struct QuarantineTrace {
    /// The record, relative to the table root.
    pub path: String,
    /// Refused lines.
    pub lines: usize,
    /// The first refused line's number and reason.
    pub first: String,
    /// Whether its lines were replayed.
    pub replayed: bool,
}

/// A staged fragment holding rows of the object.
#[derive(Debug, Clone, Serialize)]
pub struct StagedTrace {
    /// The fragment, relative to the table root.
    pub path: String,
    /// The converter batch that wrote it.
    pub batch: Option<String>,
    /// Rows of the object it holds.
    pub rows: u64,
    /// When it was staged (RFC 3339).
    pub staged_at: String,
}

/// A dead-letter message naming the object.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// Message id.
    pub message_id: String,
    /// Times it was received (on the ingest queue and since).
    pub receive_count: u64,
    /// When it was first sent (RFC 3339).
    pub sent_at: String,
}

/// Where to look.
pub struct TraceInputs<'a> {
    /// The raw bucket's client.
    pub s3: &'a aws_sdk_s3::Client,
    /// The table's store.
    pub table: &'a Arc<dyn ObjectStore>,
    /// The table's newest version (none: no table yet).
    pub table_version: Option<u64>,
    /// The dead-letter queue and its client, when known.
    pub dlq: Option<(&'a aws_sdk_sqs::Client, &'a str)>,
}

/// Traces `object` (its `version_id` alone when given) through the table `route` feeds.
pub async fn trace(
    inputs: &TraceInputs<'_>,
    object: &SourceObject,
    version_id: Option<&str>,
    route: (&str, &str),
) -> Result<Trace> {
    let mut trace =
        Trace { object: object.uri(), route: route.0.to_string(), table: route.1.to_string(), ..Trace::default() };
    let (versions, more) = versions(inputs.s3, object, version_id).await?;
    trace.versions = versions;
    if more > 0 {
        trace.notes.push(format!("{more} older versions not traced: name one with --version"));
    }
    let ids: Vec<SourceId> = trace
        .versions
        .iter()
        .map(|version| SourceId {
            uri: object.uri(),
            etag: Some(version.etag.clone()),
            digest: Some(version.digest.clone()),
        })
        .collect();
    let history = match inputs.table_version {
        Some(table_version) => {
            LoadHistory::lookup(inputs.table, table_version, &ids).await?.map(|found| (table_version, found))
        }
        None => {
            trace.notes.push("no table yet: nothing committed".to_string());
            None
        }
    };
    if inputs.table_version.is_some() && history.is_none() {
        trace.notes.push("the load history cannot answer now (it is being rebuilt): committed is unknown".to_string());
    }
    if let Some((table_version, (_, committed))) = history {
        for (version, id) in trace.versions.iter_mut().zip(&ids) {
            version.committed = committed.contains(id);
            if version.committed {
                let written = chrono::DateTime::parse_from_rfc3339(&version.last_modified)
                    .map(|at| at.timestamp_millis())
                    .unwrap_or(0);
                version.commit = find_commit(inputs.table, table_version, written, id).await?;
            }
        }
    }
    trace.quarantine = quarantine_records(inputs.table, object).await?;
    trace.superseded = json_records(inputs.table, SUPERSEDED_PREFIX, object).await?;
    trace.failures = json_records(inputs.table, FAILURES_PREFIX, object).await?;
    trace.staged = staged(inputs.table, &object.uri()).await?;
    if let Some((sqs, url)) = inputs.dlq {
        trace.dead_letters = dead_letters(sqs, url, object).await?;
    }
    Ok(trace)
}

/// The object's versions, newest first, each read to its content digest.
/// The newest [`VERSIONS_TRACED`] versions (or the one named), and how many older ones were
/// left out.
async fn versions(
    s3: &aws_sdk_s3::Client,
    object: &SourceObject,
    version_id: Option<&str>,
) -> Result<(Vec<VersionTrace>, usize)> {
    let (bucket, key) = (&object.bucket, &object.key);
    let listed = s3
        .list_object_versions()
        .bucket(bucket)
        .prefix(key)
        .max_keys(1000)
        .send()
        .await
        .map_err(|err| Error::aws("ListObjectVersions", object.uri(), err))?;
    let mut found: Vec<VersionTrace> = listed
        .versions()
        .iter()
        .filter(|version| version.key() == Some(key.as_str()))
        .filter(|version| version_id.is_none() || version.version_id() == version_id)
        .map(|version| VersionTrace {
            version_id: version.version_id().map(str::to_string),
            etag: version.e_tag().unwrap_or_default().trim_matches('"').to_string(),
            size: version.size().unwrap_or(0).max(0) as u64,
            last_modified: version
                .last_modified()
                .and_then(|at| at.fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime).ok())
                .unwrap_or_default(),
            latest: version.is_latest().unwrap_or(false),
            ..VersionTrace::default()
        })
        .collect();
    if found.is_empty() {
        return Err(Error::BadRequest(format!(
            "{} has no {}in its bucket: deleted, or never written",
            object.uri(),
            version_id.map(|v| format!("version {v} ")).unwrap_or_default()
        )));
    }
    let more = found.len().saturating_sub(VERSIONS_TRACED);
    found.truncate(VERSIONS_TRACED);
    for version in &mut found {
        // The current version is read as the key; an older one by its id ("null" included).
        let id = if version.latest { None } else { version.version_id.as_deref() };
        version.digest = digest_of(s3, object, id, None).await?;
    }
    Ok((found, more))
}

/// The content digest of one version, read whole (only while its ETag is `if_match`, given one).
pub(crate) async fn digest_of(
    s3: &aws_sdk_s3::Client,
    object: &SourceObject,
    version_id: Option<&str>,
    if_match: Option<&str>,
) -> Result<String> {
    let got = s3
        .get_object()
        .bucket(&object.bucket)
        .key(&object.key)
        .set_version_id(version_id.map(str::to_string))
        .set_if_match(if_match.map(|etag| format!("\"{etag}\"")))
        .send()
        .await
        .map_err(|err| match err.raw_response().map(|response| response.status().as_u16()) {
            // That version is no longer there: deleted, or the key overwritten since.
            Some(404 | 412) => Error::Superseded {
                object: object.describe(),
                reason: format!("GetObject answered {}", err.code().unwrap_or("no error code")),
            },
            _ => Error::aws("GetObject", object.uri(), err),
        })?;
    let mut body = got.body;
    let mut digest = ContentDigest::default();
    while let Some(piece) = body.try_next().await.map_err(|err| Error::aws("GetObject", object.uri(), err))? {
        digest.update(&piece);
    }
    Ok(digest.finish())
}

/// A commit's time (ms since the epoch) and the sources it lists.
pub(crate) type CommitSources = (i64, Vec<CommittedSource>);

/// A commit's time and the sources it lists; `None` when its file is gone.
pub(crate) async fn commit_at(table: &Arc<dyn ObjectStore>, version: u64) -> Result<Option<CommitSources>> {
    match super::status::read_commit(table, version).await? {
        Some(commit) => Ok(Some((commit.at, sources_in_commit(&commit.bytes)?))),
        None => Ok(None),
    }
}

/// The first commit at or after `since_ms` (by bisection on commit time, about 20 reads; a
/// commit file cleaned up counts as older), or `newest` + 1 when there is none.
pub(crate) async fn first_commit_from(table: &Arc<dyn ObjectStore>, newest: u64, since_ms: i64) -> Result<u64> {
    let (mut low, mut high) = (0u64, newest + 1);
    while low < high {
        let middle = low + (high - low) / 2;
        match commit_at(table, middle).await? {
            None => low = middle + 1,
            Some((at, _)) if at < since_ms => low = middle + 1,
            Some(_) => high = middle,
        }
    }
    Ok(low)
}

/// The commit that added `id`: found by time (the first commit at or after `written_ms`, by
/// bisection) and then read forward, at most [`COMMITS_SEARCHED`] commits.
async fn find_commit(
    table: &Arc<dyn ObjectStore>,
    newest: u64,
    written_ms: i64,
    id: &SourceId,
) -> Result<Option<CommitTrace>> {
    const AT_ONCE: usize = 16;
    let low = first_commit_from(table, newest, written_ms).await?;
    let last = newest.min(low.saturating_add(COMMITS_SEARCHED - 1));
    let mut versions = (low..=last).peekable();
    while versions.peek().is_some() {
        let chunk: Vec<u64> = versions.by_ref().take(AT_ONCE).collect();
        let commits: Vec<(u64, Option<CommitSources>)> = futures::stream::iter(chunk)
            .map(|version| async move { commit_at(table, version).await.map(|commit| (version, commit)) })
            .buffered(AT_ONCE)
            .try_collect()
            .await?;
        for (version, commit) in commits {
            let Some((at, sources)) = commit else { continue };
            let held = sources.iter().find(|source| {
                source.id.uri == id.uri
                    && match (&source.id.digest, &id.digest) {
                        (Some(listed), Some(wanted)) => listed == wanted,
                        _ => source.id.etag == id.etag,
                    }
            });
            if let Some(source) = held {
                let committed_at =
                    chrono::DateTime::from_timestamp_millis(at).map(|t| t.to_rfc3339()).unwrap_or_default();
                return Ok(Some(CommitTrace { version, committed_at, rows: source.rows }));
            }
        }
    }
    Ok(None)
}

/// The records under `prefix` of `object`'s versions: those in its folder named `<key>@…` (a
/// tag holding a `/` files its record deeper, so the folder is listed whole).
async fn records_of(table: &Arc<dyn ObjectStore>, prefix: &str, object: &SourceObject) -> Result<Vec<Path>> {
    // A record's path as the store encodes it, up to its tag.
    let sample = source_record(prefix, &object.bucket, &object.key, "x", "x");
    let start = sample.as_ref().rsplit_once('@').map_or(String::new(), |(start, _)| format!("{start}@"));
    let folder: Path = sample.parts().take(sample.parts().count() - 1).collect();
    let mut paths: Vec<Path> = table
        .list(Some(&folder))
        .map_ok(|meta| meta.location)
        .try_filter(|path| futures::future::ready(path.as_ref().starts_with(&start)))
        .try_collect()
        .await?;
    paths.sort();
    Ok(paths)
}

async fn quarantine_records(table: &Arc<dyn ObjectStore>, object: &SourceObject) -> Result<Vec<QuarantineTrace>> {
    let mut records = Vec::new();
    for path in records_of(table, QUARANTINE_PREFIX, object).await? {
        let data = table.get(&path).await?.bytes().await?;
        let lines: Vec<crate::ingest::QuarantinedLine> = data
            .split(|byte| *byte == b'\n')
            .filter(|line| !line.is_empty())
            .map(serde_json::from_slice)
            .collect::<std::result::Result<_, _>>()?;
        let relative = path.as_ref().strip_prefix(QUARANTINE_PREFIX).unwrap_or(path.as_ref());
        let marker = format!("{REPLAYED_PREFIX}{}", relative.strip_suffix(".ndjson").unwrap_or(relative));
        let replayed = match table.head(&Path::from(format!("{marker}.json"))).await {
            Ok(_) => true,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(err) => return Err(err.into()),
        };
        let first = lines.first().map(|line| format!("line {}: {}", line.line, line.error)).unwrap_or_default();
        records.push(QuarantineTrace { path: path.to_string(), lines: lines.len(), first, replayed });
    }
    Ok(records)
}

/// The JSON records under `prefix` of `object`'s versions.
async fn json_records<T: serde::de::DeserializeOwned>(
    table: &Arc<dyn ObjectStore>,
    prefix: &str,
    object: &SourceObject,
) -> Result<Vec<T>> {
    let mut records = Vec::new();
    for path in records_of(table, prefix, object).await? {
        records.push(serde_json::from_slice(&table.get(&path).await?.bytes().await?)?);
    }
    Ok(records)
}

/// Staged fragments listing `uri` among their sources.
async fn staged(table: &Arc<dyn ObjectStore>, uri: &str) -> Result<Vec<StagedTrace>> {
    let fragments = FragmentStore::new(table.clone());
    let mut found = Vec::new();
    for meta in fragments.list().await? {
        let info = match fragments.info(&meta).await {
            Ok(info) => info,
            // Committed and removed since it was listed.
            Err(Error::Storage(object_store::Error::NotFound { .. })) => continue,
            Err(err) => return Err(err),
        };
        let rows: u64 = info.sources.iter().filter(|source| source.id.uri == uri).map(|source| source.rows).sum();
        if info.sources.iter().any(|source| source.id.uri == uri) {
            found.push(StagedTrace {
                path: info.path.to_string(),
                batch: info.batch.clone(),
                rows,
                staged_at: info.staged_at.to_rfc3339(),
            });
        }
    }
    Ok(found)
}

/// Messages of the dead-letter queue naming `object`, looked at without taking them: each is
/// received with no visibility timeout, so it stays for `inlet dlq` and redrives.
async fn dead_letters(sqs: &aws_sdk_sqs::Client, url: &str, object: &SourceObject) -> Result<Vec<DeadLetter>> {
    use aws_sdk_sqs::types::MessageSystemAttributeName as Attribute;
    const RECEIVES: usize = 10;
    let mut seen: HashMap<String, DeadLetter> = HashMap::new();
    for _ in 0..RECEIVES {
        let received = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .wait_time_seconds(1)
            .message_system_attribute_names(Attribute::ApproximateReceiveCount)
            .message_system_attribute_names(Attribute::SentTimestamp)
            .send()
            .await
            .map_err(|err| Error::aws("ReceiveMessage", url, err))?;
        let messages = received.messages();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            let names_it = match message.body().map(crate::ingest::event::parse_notification) {
                Some(Ok(crate::ingest::event::Notification::Objects(objects))) => {
                    objects.iter().any(|named| named.bucket == object.bucket && named.key == object.key)
                }
                _ => false,
            };
            let Some(id) = message.message_id() else { continue };
            if !names_it || seen.contains_key(id) {
                continue;
            }
            let (receive_count, sent_at) = super::dlq::receipts(message);
            seen.insert(id.to_string(), DeadLetter { message_id: id.to_string(), receive_count, sent_at });
        }
    }
    let mut letters: Vec<DeadLetter> = seen.into_values().collect();
    letters.sort_by(|a, b| a.sent_at.cmp(&b.sent_at));
    Ok(letters)
}
