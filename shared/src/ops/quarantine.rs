//! Operating on quarantined lines: list the records, show one, and replay one.
//!
//! A replay writes the record's lines (as they were, or as the operator fixed them) as a new
//! object beside the original, `<key>.replay-<digest>.json.zst`, so it takes the same route,
//! partition and notifications, and the pipeline ingests it exactly once like any object. The
//! replay note is created first, only if absent (`If-None-Match: *`), so a record is replayed
//! once: a second replay, even with other fixes and after the replay object expired, is
//! refused and names the object.
//! Lines that fail again are quarantined under the replay object, to be fixed in turn.

use std::collections::HashMap;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::ingest::decode::QuarantinedLine;
use crate::layout::{QUARANTINE_PREFIX, REPLAYED_PREFIX};

/// One quarantine record: the refused lines of one version of one object.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QuarantineRecord {
    /// The record, relative to the table root (`_inlet/quarantine/<bucket>/<key>@<digest>.ndjson`).
    pub path: String,
    /// Bucket of the object.
    pub bucket: String,
    /// Key of the object.
    pub key: String,
    /// Content digest (else ETag) of the version the lines came from.
    pub tag: String,
    /// Refused lines.
    pub lines: usize,
    /// Why the first of them was refused.
    pub first_error: String,
    /// `s3://…` of the object the lines were replayed as, once replayed.
    pub replayed_as: Option<String>,
}

impl QuarantineRecord {
    /// `s3://bucket/key` of the object the lines came from.
    pub fn source(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    /// Key of the object a replay writes: beside the original, so routing, partitioning by key
    /// and notification filters treat it as they treated the original.
    pub fn replay_key(&self) -> String {
        crate::layout::replay_key(&self.key, &self.tag)
    }

    fn marker(&self) -> Path {
        replayed_marker(&self.path)
    }
}

/// The replay marker of a quarantine record path.
fn replayed_marker(record: &str) -> Path {
    let relative = record.strip_prefix(QUARANTINE_PREFIX).unwrap_or(record).trim_start_matches('/');
    let relative = relative.strip_suffix(".ndjson").unwrap_or(relative);
    Path::from(format!("{REPLAYED_PREFIX}/{relative}.json"))
}

/// Splits `_inlet/quarantine/<bucket>/<key>@<tag>.ndjson` into bucket, key and tag.
fn parse_record_path(path: &str) -> Option<(String, String, String)> {
    let rest = path.strip_prefix(QUARANTINE_PREFIX)?.strip_prefix('/')?.strip_suffix(".ndjson")?;
    let (bucket, name) = rest.split_once('/')?;
    let (key, tag) = name.rsplit_once('@')?;
    Some((bucket.to_string(), key.to_string(), tag.to_string()))
}

fn parse_lines(data: &[u8], path: &str) -> Result<Vec<QuarantinedLine>> {
    data.split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            serde_json::from_slice(line)
                .map_err(|err| Error::Integrity(format!("{path} is not a quarantine record: {err}")))
        })
        .collect()
}

/// Every quarantine record of the table whose store is `table`, in path order.
pub async fn list(table: &Arc<dyn ObjectStore>) -> Result<Vec<QuarantineRecord>> {
    let replayed: HashMap<String, String> = {
        let markers: Vec<Path> =
            table.list(Some(&Path::from(REPLAYED_PREFIX))).map_ok(|meta| meta.location).try_collect().await?;
        let mut replayed = HashMap::new();
        for marker in markers {
            let body = table.get(&marker).await?.bytes().await?;
            let note: serde_json::Value = serde_json::from_slice(&body)?;
            replayed.insert(marker.to_string(), note["object"].as_str().unwrap_or_default().to_string());
        }
        replayed
    };
    let mut paths: Vec<Path> =
        table.list(Some(&Path::from(QUARANTINE_PREFIX))).map_ok(|meta| meta.location).try_collect().await?;
    paths.sort();
    let mut records = Vec::with_capacity(paths.len());
    for path in paths {
        let text = path.to_string();
        let Some((bucket, key, tag)) = parse_record_path(&text) else { continue };
        let lines = parse_lines(&table.get(&path).await?.bytes().await?, &text)?;
        records.push(QuarantineRecord {
            first_error: lines.first().map(|line| line.error.clone()).unwrap_or_default(),
            lines: lines.len(),
            replayed_as: replayed.get(&replayed_marker(&text).to_string()).cloned(),
            path: text,
            bucket,
            key,
            tag,
        });
    }
    Ok(records)
}

/// The one record `selector` names: its path (as `list` prints it) or its object's
/// `s3://bucket/key` when only one version of that object has quarantined lines.
pub async fn find(table: &Arc<dyn ObjectStore>, selector: &str) -> Result<QuarantineRecord> {
    let records = list(table).await?;
    let matching: Vec<&QuarantineRecord> =
        records.iter().filter(|record| record.path == selector || record.source() == selector).collect();
    match matching.as_slice() {
        [record] => Ok((*record).clone()),
        [] => Err(Error::BadRequest(format!(
            "no quarantine record is {selector}: `inlet quarantine list` shows them ({} in this table)",
            records.len()
        ))),
        several => Err(Error::BadRequest(format!(
            "{selector} has quarantined lines from {} versions; name one record: {}",
            several.len(),
            several.iter().map(|record| record.path.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The refused lines of `record`.
pub async fn lines(table: &Arc<dyn ObjectStore>, record: &QuarantineRecord) -> Result<Vec<QuarantinedLine>> {
    let data = table.get(&Path::from(record.path.as_str())).await?.bytes().await?;
    parse_lines(&data, &record.path)
}

/// What a replay did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Replayed {
    /// The record replayed.
    pub record: String,
    /// `s3://bucket/key` of the object written.
    pub object: String,
    /// Lines written.
    pub lines: usize,
    /// ETag of the object written.
    pub etag: Option<String>,
}

/// The replay note of a record (`_inlet/replayed/...`), created before the object so that a
/// record is replayed once whatever the raw bucket still holds (raw buckets expire objects).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
struct ReplayNote {
    /// `s3://bucket/key` of the replay object.
    object: String,
    /// The quarantine record replayed.
    record: String,
    /// The lines the replay writes, kept until the object is written, so that a replay that
    /// stopped in between is finished with its own lines and never with another's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<Vec<String>>,
}

/// Replays `record`: writes `lines` (the operator's fixes; `None` replays the lines as they
/// were, e.g. after a schema change) as a new object in the record's bucket, whose store is
/// `raw`. The note is created first (create-only): a record that has one was replayed, and
/// any later replay is refused, even once the replay object is gone. A replay that stopped
/// between its note and its object is finished, with its own lines, by the next attempt,
/// which is then refused.
pub async fn replay(
    table: &Arc<dyn ObjectStore>,
    raw: &Arc<dyn ObjectStore>,
    record: &QuarantineRecord,
    fixed: Option<Vec<String>>,
) -> Result<Replayed> {
    let lines = match fixed {
        Some(lines) => lines,
        None => lines(table, record).await?.into_iter().map(|line| line.raw).collect(),
    };
    let lines: Vec<String> = lines.into_iter().filter(|line| !line.trim().is_empty()).collect();
    if lines.is_empty() {
        return Err(Error::BadRequest(format!("nothing to replay for {}: no non-empty lines", record.path)));
    }
    let key = record.replay_key();
    let object = format!("s3://{}/{key}", record.bucket);
    let already = || {
        Error::BadRequest(format!(
            "{} was already replayed as {object}: each record is replayed once, so no line is ingested twice",
            record.path
        ))
    };
    let note = ReplayNote { object: object.clone(), record: record.path.clone(), pending: Some(lines.clone()) };
    let create = PutOptions { mode: PutMode::Create, ..Default::default() };
    match table.put_opts(&record.marker(), PutPayload::from(serde_json::to_vec(&note)?), create).await {
        Ok(_) => {}
        Err(object_store::Error::AlreadyExists { .. }) => {
            let earlier: ReplayNote = serde_json::from_slice(&table.get(&record.marker()).await?.bytes().await?)?;
            if let Some(pending) = earlier.pending {
                tracing::warn!(record = %record.path, "finishing a replay that stopped before writing its object");
                write_replay_object(raw, &key, &pending).await?;
                finish_note(table, record, &earlier.object).await?;
            }
            return Err(already());
        }
        Err(err) => return Err(err.into()),
    }
    let etag = match write_replay_object(raw, &key, &lines).await? {
        Some(etag) => etag,
        // Written by a replay from before notes came first, which stopped before its note.
        None => {
            finish_note(table, record, &object).await?;
            return Err(already());
        }
    };
    finish_note(table, record, &object).await?;
    Ok(Replayed { record: record.path.clone(), object, lines: lines.len(), etag })
}

/// Writes the replay object `key` of `lines` if absent; `None` when it was there already.
async fn write_replay_object(
    raw: &Arc<dyn ObjectStore>,
    key: &str,
    lines: &[String],
) -> Result<Option<Option<String>>> {
    let mut body = lines.join("\n");
    body.push('\n');
    let compressed = zstd::encode_all(body.as_bytes(), 3)?;
    let create = PutOptions { mode: PutMode::Create, ..Default::default() };
    match raw.put_opts(&Path::from(key), PutPayload::from(compressed), create).await {
        Ok(result) => Ok(Some(result.e_tag)),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// Marks `record`'s replay as written (its note no longer holds lines to write).
async fn finish_note(table: &Arc<dyn ObjectStore>, record: &QuarantineRecord, object: &str) -> Result<()> {
    let note = ReplayNote { object: object.to_string(), record: record.path.clone(), pending: None };
    table.put(&record.marker(), PutPayload::from(serde_json::to_vec(&note)?)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;
    use crate::ingest::Quarantine;
    use crate::lineage::SourceObject;

    fn refused(source: &str, line: u64, raw: &str) -> QuarantinedLine {
        QuarantinedLine { source: source.into(), line, error: format!("line {line} is bad"), raw: raw.into() }
    }

    async fn quarantined(table: &Arc<dyn ObjectStore>, key: &str, digest: &str, raws: &[&str]) {
        let object =
            SourceObject { bucket: "raw".into(), key: key.into(), digest: Some(digest.into()), ..Default::default() };
        let lines: Vec<QuarantinedLine> =
            raws.iter().enumerate().map(|(i, raw)| refused(&object.uri(), i as u64 + 1, raw)).collect();
        Quarantine::new(table.clone()).put(&object, &lines).await.unwrap();
    }

    #[tokio::test]
    async fn records_are_listed_with_their_source_count_and_first_reason() {
        let table: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        quarantined(&table, "web/date=2026-05-16/a@b.json.zst", "d1", &["{bad", "{worse"]).await;
        quarantined(&table, "web/date=2026-05-17/c.json.zst", "d2", &["[]"]).await;
        let records = list(&table).await.unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].key, "web/date=2026-05-16/a@b.json.zst", "an @ in a key stays in the key");
        assert_eq!((records[0].tag.as_str(), records[0].lines), ("d1", 2));
        assert_eq!(records[0].first_error, "line 1 is bad");
        assert_eq!(records[0].replay_key(), "web/date=2026-05-16/a@b.json.zst.replay-d1.json.zst");
        assert_eq!(records[1].source(), "s3://raw/web/date=2026-05-17/c.json.zst");
        assert!(records.iter().all(|record| record.replayed_as.is_none()));
        let found = find(&table, "s3://raw/web/date=2026-05-17/c.json.zst").await.unwrap();
        assert_eq!(lines(&table, &found).await.unwrap()[0].raw, "[]");
    }

    #[tokio::test]
    async fn an_object_with_several_quarantined_versions_must_be_named_by_record() {
        let table: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        quarantined(&table, "web/a.json.zst", "d1", &["{bad"]).await;
        quarantined(&table, "web/a.json.zst", "d2", &["{bad again"]).await;
        let err = find(&table, "s3://raw/web/a.json.zst").await.unwrap_err().to_string();
        assert!(err.contains("2 versions") && err.contains("web/a.json.zst@d1.ndjson"), "{err}");
        let err = find(&table, "s3://raw/web/b.json.zst").await.unwrap_err().to_string();
        assert!(err.contains("inlet quarantine list"), "{err}");
        let record = find(&table, "_inlet/quarantine/raw/web/a.json.zst@d2.ndjson").await.unwrap();
        assert_eq!(record.tag, "d2");
    }

    #[tokio::test]
    async fn a_record_is_replayed_once_with_the_fixed_lines_and_a_second_replay_is_refused() {
        let table: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let raw: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        quarantined(&table, "web/date=2026-05-16/a.json.zst", "d1", &["{\"n\": 1,", "{\"n\": 2,"]).await;
        let record = find(&table, "s3://raw/web/date=2026-05-16/a.json.zst").await.unwrap();

        let fixed = vec!["{\"n\": 1}".to_string(), String::new(), "{\"n\": 2}".to_string()];
        let replayed = replay(&table, &raw, &record, Some(fixed)).await.unwrap();
        assert_eq!(replayed.object, "s3://raw/web/date=2026-05-16/a.json.zst.replay-d1.json.zst");
        assert_eq!(replayed.lines, 2, "blank lines are dropped");
        let written = raw.get(&Path::from(record.replay_key())).await.unwrap().bytes().await.unwrap();
        assert_eq!(zstd::decode_all(&written[..]).unwrap(), b"{\"n\": 1}\n{\"n\": 2}\n");
        assert_eq!(list(&table).await.unwrap()[0].replayed_as.as_deref(), Some(replayed.object.as_str()));

        let again = replay(&table, &raw, &record, None).await.unwrap_err().to_string();
        assert!(again.contains("already replayed as s3://raw/web/date=2026-05-16/a.json.zst.replay-d1"), "{again}");
        let still = raw.get(&Path::from(record.replay_key())).await.unwrap().bytes().await.unwrap();
        assert_eq!(still, written, "the first replay's object is left as it was");
    }

    #[tokio::test]
    async fn a_replay_whose_note_was_lost_is_still_refused_and_noted() {
        let table: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let raw: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        quarantined(&table, "web/a.json.zst", "d1", &["{bad"]).await;
        let record = find(&table, "s3://raw/web/a.json.zst").await.unwrap();
        // The object was written, then the process stopped before noting the replay.
        raw.put(&Path::from(record.replay_key()), PutPayload::from_static(b"x")).await.unwrap();
        let err = replay(&table, &raw, &record, Some(vec!["{}".into()])).await.unwrap_err().to_string();
        assert!(err.contains("already replayed"), "{err}");
        assert!(list(&table).await.unwrap()[0].replayed_as.is_some());
    }

    #[tokio::test]
    async fn a_record_is_replayed_once_even_after_its_replay_object_is_gone() {
        let table: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let raw: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        quarantined(&table, "web/a.json.zst", "d1", &["{\"n\": 1,"]).await;
        let record = find(&table, "s3://raw/web/a.json.zst").await.unwrap();
        replay(&table, &raw, &record, Some(vec!["{\"n\": 1}".into()])).await.unwrap();
        // The raw bucket's lifecycle rule expired the replay object after it was ingested.
        raw.delete(&Path::from(record.replay_key())).await.unwrap();
        let err = replay(&table, &raw, &record, Some(vec!["{\"n\": 10}".into()])).await.unwrap_err().to_string();
        assert!(err.contains("already replayed"), "{err}");
        assert!(raw.head(&Path::from(record.replay_key())).await.is_err(), "nothing written again");
    }

    #[tokio::test]
    async fn a_replay_that_stopped_after_its_note_is_finished_with_its_own_lines() {
        let table: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let raw: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        quarantined(&table, "web/a.json.zst", "d1", &["{bad"]).await;
        let record = find(&table, "s3://raw/web/a.json.zst").await.unwrap();
        // The process stopped between creating the note and writing the object.
        let note = ReplayNote {
            object: format!("s3://raw/{}", record.replay_key()),
            record: record.path.clone(),
            pending: Some(vec!["{\"first\": 1}".into()]),
        };
        table.put(&record.marker(), PutPayload::from(serde_json::to_vec(&note).unwrap())).await.unwrap();
        let err = replay(&table, &raw, &record, Some(vec!["{\"second\": 2}".into()])).await.unwrap_err().to_string();
        assert!(err.contains("already replayed"), "{err}");
        let written = raw.get(&Path::from(record.replay_key())).await.unwrap().bytes().await.unwrap();
        assert_eq!(zstd::decode_all(&written[..]).unwrap(), b"{\"first\": 1}\n", "the first replay's lines only");
        assert!(list(&table).await.unwrap()[0].replayed_as.is_some());
    }

    #[tokio::test]
    async fn as_is_replays_the_original_lines() {
        let table: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let raw: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        quarantined(&table, "web/a.json.zst", "d1", &["{\"when\": \"2026-05-16\"}"]).await;
        let record = find(&table, "s3://raw/web/a.json.zst").await.unwrap();
        replay(&table, &raw, &record, None).await.unwrap();
        let written = raw.get(&Path::from(record.replay_key())).await.unwrap().bytes().await.unwrap();
        assert_eq!(zstd::decode_all(&written[..]).unwrap(), b"{\"when\": \"2026-05-16\"}\n");
        let empty = replay(&table, &raw, &record, Some(vec![" ".into()])).await.unwrap_err().to_string();
        assert!(empty.contains("nothing to replay"), "{empty}");
    }

    #[tokio::test]
    async fn records_and_replay_notes_with_fields_a_later_version_adds_still_read() {
        let table: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let raw: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let line = r#"{"source": "s3://raw/web/a.json.zst", "line": 1, "error": "bad", "raw": "{bad", "column": "n"}"#;
        let path = Path::from("_inlet/quarantine/raw/web/a.json.zst@d1.ndjson");
        table.put(&path, PutPayload::from(format!("{line}\n").into_bytes())).await.unwrap();
        let record = find(&table, "s3://raw/web/a.json.zst").await.unwrap();
        assert_eq!((record.lines, record.first_error.as_str()), (1, "bad"));
        let object = format!("s3://raw/{}", record.replay_key());
        let note = serde_json::json!({"object": object, "record": &record.path, "replayed_by": "someone"});
        table.put(&record.marker(), PutPayload::from(note.to_string().into_bytes())).await.unwrap();
        assert_eq!(list(&table).await.unwrap()[0].replayed_as.as_deref(), Some(object.as_str()));
        let again = replay(&table, &raw, &record, None).await.unwrap_err().to_string();
        assert!(again.contains(&format!("already replayed as {object}")), "{again}");
    }
}
