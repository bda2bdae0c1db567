//! Quarantine: lines that could not become rows, kept as NDJSON under
//! `<table>/_inlet/quarantine/<bucket>/<key>@<digest>.ndjson` with source, line number, error
//! and raw text. One file per source (key and content), so a retried batch, or the same bytes
//! uploaded again under a new ETag, rewrites the same file instead of recording a line twice.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

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
        let mut body = Vec::new();
        for line in lines {
            serde_json::to_writer(&mut body, line)?;
            body.push(b'\n');
        }
        let tag = object.digest.as_deref().or(object.etag.as_deref()).unwrap_or("unknown-etag");
        let path = source_record(QUARANTINE_PREFIX, &object.bucket, &object.key, tag, "ndjson");
        self.store.put(&path, PutPayload::from(body)).await?;
        Ok(path)
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
}
