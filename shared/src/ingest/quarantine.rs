//! Quarantine: lines that could not become rows, kept as NDJSON under
//! `<table>/_inlet/quarantine/<bucket>/<key>@<digest>.ndjson` with source, line number, error
//! and raw text. One file per source (key and content), so a retried batch, or the same bytes
//! uploaded again under a new ETag, rewrites the same file instead of recording a line twice.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;

use crate::error::Result;
use crate::ingest::decode::QuarantinedLine;
use crate::layout::{QUARANTINE_PREFIX, source_record};
use crate::lineage::SourceObject;

/// The quarantine area of one table.
#[derive(Debug, Clone)]
pub struct Quarantine {
    store: Arc<dyn ObjectStore>,
}

impl Quarantine {
    /// The quarantine in `store`, which is rooted at the table location.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }

    /// Records an object's refused lines, replacing any earlier record of the same version.
    pub async fn put(&self, object: &SourceObject, lines: &[QuarantinedLine]) -> Result<Path> {
        let mut record = self.record(object);
        record.write(lines).await?;
        Ok(record.finish().await?.unwrap_or_else(|| record_path(object)))
    }

    /// A record of `object`'s refused lines, written as they arrive ([`RecordWriter`]).
    pub fn record(&self, object: &SourceObject) -> RecordWriter {
        let path = record_path(object);
        let writer =
            BufWriter::with_capacity(self.store.clone(), path.clone(), RECORD_PART_BYTES).with_max_concurrency(1);
        RecordWriter { path, writer, lines: 0, pending: Vec::new() }
    }

    /// The first `limit` quarantined lines, in path and file order, reading no more of the
    /// records than that takes (a record can hold millions of lines).
    pub async fn first_lines(&self, limit: usize) -> Result<Vec<QuarantinedLine>> {
        let prefix = Path::from(QUARANTINE_PREFIX);
        let mut files: Vec<Path> = self.store.list(Some(&prefix)).map_ok(|meta| meta.location).try_collect().await?;
        files.sort();
        let mut lines = Vec::new();
        for file in files {
            let mut body = self.store.get(&file).await?.into_stream();
            let mut pending = Vec::new();
            while lines.len() < limit {
                let Some(chunk) = body.try_next().await? else { break };
                pending.extend_from_slice(&chunk);
                while let Some(end) = memchr::memchr(b'\n', &pending) {
                    if lines.len() < limit && end > 0 {
                        lines.push(serde_json::from_slice(&pending[..end])?);
                    }
                    pending.drain(..=end);
                }
            }
            if lines.len() >= limit {
                break;
            }
        }
        Ok(lines)
    }

    /// Every quarantined line, in file order.
    pub async fn lines(&self) -> Result<Vec<QuarantinedLine>> {
        let mut lines = Vec::new();
        for data in records_under(&self.store, QUARANTINE_PREFIX).await? {
            for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                lines.push(serde_json::from_slice(line)?);
            }
        }
        Ok(lines)
    }
}

/// Where the record of `object`'s refused lines goes: named by key and content, so a retried
/// batch rewrites the record instead of adding one.
fn record_path(object: &SourceObject) -> Path {
    let tag = object.digest.as_deref().or(object.etag.as_deref()).unwrap_or("unknown-etag");
    source_record(QUARANTINE_PREFIX, &object.bucket, &object.key, tag, "ndjson")
}

/// A record's lines go out in parts of this size (S3 takes parts of 5 MiB and up, 10,000 of
/// them): one part is buffered and at most one more uploading, however many lines are refused.
const RECORD_PART_BYTES: usize = 8 << 20;

/// Serialised lines are handed to the upload in blocks of about this size.
const RECORD_BLOCK_BYTES: usize = 1 << 20;

/// What a record being written holds at most: a part filling, one uploading, and a block (a
/// block ends past its size by at most one line of at most the raw text kept, escaped).
pub(crate) const RECORD_HELD_BYTES: u64 = 2 * RECORD_PART_BYTES as u64 + 2 * RECORD_BLOCK_BYTES as u64;

/// One object's quarantine record, written while the object is read: memory holds a part of
/// it at a time, not every refused line until the object's end. The record appears whole
/// when finished, or not at all.
pub struct RecordWriter {
    path: Path,
    writer: BufWriter,
    lines: u64,
    pending: Vec<u8>,
}

impl RecordWriter {
    /// Adds refused lines to the record.
    pub async fn write(&mut self, lines: &[QuarantinedLine]) -> Result<()> {
        for line in lines {
            serde_json::to_writer(&mut self.pending, line)?;
            self.pending.push(b'\n');
            self.lines += 1;
            if self.pending.len() >= RECORD_BLOCK_BYTES {
                self.hand_over().await?;
            }
        }
        Ok(())
    }

    async fn hand_over(&mut self) -> Result<()> {
        let block = std::mem::take(&mut self.pending);
        self.writer.put(bytes::Bytes::from(block)).await?;
        Ok(())
    }

    /// Lines written so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Completes the record and says where it is; with no line written, nothing is stored.
    pub async fn finish(mut self) -> Result<Option<Path>> {
        if self.lines == 0 {
            self.abort().await;
            return Ok(None);
        }
        self.hand_over().await?;
        self.writer.shutdown().await?;
        Ok(Some(self.path))
    }

    /// Drops the record, and any part of it already uploaded.
    pub async fn abort(mut self) {
        if let Err(err) = self.writer.abort().await {
            tracing::warn!(record = %self.path, error = %err, "could not abort a quarantine record's upload");
        }
    }
}

/// The contents of every file under `prefix`, in path order: the per-source records
/// (quarantine, superseded versions) read back whole.
pub(crate) async fn records_under(store: &Arc<dyn ObjectStore>, prefix: &str) -> Result<Vec<bytes::Bytes>> {
    let prefix = Path::from(prefix);
    let mut files: Vec<Path> = store.list(Some(&prefix)).map_ok(|meta| meta.location).try_collect().await?;
    files.sort();
    let mut records = Vec::with_capacity(files.len());
    for file in files {
        records.push(store.get(&file).await?.bytes().await?);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    #[tokio::test]
    async fn a_retried_object_rewrites_its_record_instead_of_doubling_it() {
        let quarantine = Quarantine::new(Arc::new(InMemory::new()));
        let object = SourceObject {
            bucket: "raw".into(),
            key: "svc/date=2026-05-16/a b.json".into(),
            etag: Some("e1".into()),
            ..Default::default()
        };
        let line = QuarantinedLine { source: object.uri(), line: 3, error: "bad".into(), raw: "{oops".into() };
        let path = quarantine.put(&object, std::slice::from_ref(&line)).await.unwrap();
        quarantine.put(&object, std::slice::from_ref(&line)).await.unwrap();
        assert!(path.as_ref().starts_with("_inlet/quarantine/raw/svc/date=2026-05-16/"), "{path}");
        assert_eq!(quarantine.lines().await.unwrap(), vec![line]);
    }

    fn refused(object: &SourceObject, line: u64) -> QuarantinedLine {
        let raw = format!("{{\"n\":\"{}\"}}", "r".repeat(60 * 1024));
        QuarantinedLine { source: object.uri(), line, error: "field n: expected an integer".into(), raw }
    }

    #[tokio::test]
    async fn a_record_larger_than_its_parts_streams_out_whole_and_in_line_order() {
        let quarantine = Quarantine::new(Arc::new(InMemory::new()));
        let object = SourceObject { bucket: "raw".into(), key: "svc/big.json".into(), ..Default::default() };
        let mut record = quarantine.record(&object);
        // ~30 MiB in steps of 100 lines: several parts.
        for step in 0..5u64 {
            let lines: Vec<QuarantinedLine> = (1..=100).map(|n| refused(&object, step * 100 + n)).collect();
            record.write(&lines).await.unwrap();
        }
        assert_eq!(record.lines(), 500);
        assert!(record.finish().await.unwrap().is_some());
        let lines = quarantine.lines().await.unwrap();
        assert_eq!(lines.iter().map(|line| line.line).collect::<Vec<_>>(), (1..=500).collect::<Vec<_>>());
        assert_eq!(lines[499], refused(&object, 500));
        let first = quarantine.first_lines(3).await.unwrap();
        assert_eq!(first.iter().map(|line| line.line).collect::<Vec<_>>(), vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn a_record_with_no_lines_or_aborted_leaves_nothing() {
        let quarantine = Quarantine::new(Arc::new(InMemory::new()));
        let object = SourceObject { bucket: "raw".into(), key: "svc/a.json".into(), ..Default::default() };
        assert!(quarantine.record(&object).finish().await.unwrap().is_none());
        let mut aborted = quarantine.record(&object);
        let lines: Vec<QuarantinedLine> = (1..=300).map(|n| refused(&object, n)).collect();
        aborted.write(&lines).await.unwrap();
        aborted.abort().await;
        assert!(quarantine.lines().await.unwrap().is_empty());
    }
}
