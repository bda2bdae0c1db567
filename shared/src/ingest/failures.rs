//! Failure records: why the converter last failed an object's messages (corrupt, unreadable,
//! over a limit, gone). Each is JSON under
//! `<table>/_inlet/failures/<bucket>/<key>@<version or etag>.json`, rewritten by each failure,
//! so a message in the DLQ has its reason beside the table (`inlet dlq list`, `inlet trace`)
//! rather than only in a log.

use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layout::{FAILURES_PREFIX, source_record};
use crate::lineage::SourceObject;

/// Why an object's messages were last failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// `s3://bucket/key`
    pub uri: String,
    /// The notified ETag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The notified version id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The error, as the converter logged it.
    pub error: String,
    /// Its kind (`Inlet.Source`, ...).
    pub kind: String,
    /// Whether trying again may succeed.
    pub retryable: bool,
    /// When (RFC 3339).
    pub failed_at: String,
}

/// The failure records of one table.
#[derive(Debug, Clone)]
pub struct FailureLog {
    store: Arc<dyn ObjectStore>,
}

impl FailureLog {
    /// The records in `store`, which is rooted at the table location.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }

    /// The record of `object`, as notified.
    fn path(object: &SourceObject) -> Path {
        let tag = object.version.as_deref().or(object.etag.as_deref()).unwrap_or("unknown-version");
        source_record(FAILURES_PREFIX, &object.bucket, &object.key, tag, "json")
    }

    /// Records why `object`'s messages fail.
    pub async fn record(&self, object: &SourceObject, err: &Error) -> Result<Path> {
        let path = Self::path(object);
        let record = FailureRecord {
            uri: object.uri(),
            etag: object.etag.clone(),
            version: object.version.clone(),
            error: err.to_string(),
            kind: err.kind().to_string(),
            retryable: err.is_retryable(),
            failed_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        };
        self.store.put(&path, PutPayload::from(serde_json::to_vec(&record)?)).await?;
        Ok(path)
    }

    /// The record of `object`, as notified, if it ever failed.
    pub async fn find(&self, object: &SourceObject) -> Result<Option<FailureRecord>> {
        match self.store.get(&Self::path(object)).await {
            Ok(got) => Ok(Some(serde_json::from_slice(&got.bytes().await?)?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    #[tokio::test]
    async fn the_last_failure_of_a_notified_version_is_found_by_that_version() {
        let log = FailureLog::new(Arc::new(InMemory::new()));
        let object = SourceObject {
            bucket: "raw".into(),
            key: "svc/date=2026-05-16/a b.json.zst".into(),
            etag: Some("e1".into()),
            ..Default::default()
        };
        assert_eq!(log.find(&object).await.unwrap(), None);
        let corrupt = Error::Source { uri: object.uri(), reason: "zstd decompression failed".into(), retryable: false };
        let path = log.record(&object, &corrupt).await.unwrap();
        assert!(path.as_ref().starts_with("_inlet/failures/raw/svc/date=2026-05-16/a b.json.zst@e1"), "{path}");
        let found = log.find(&object).await.unwrap().unwrap();
        assert_eq!((found.kind.as_str(), found.retryable), ("Inlet.Source", false));
        assert!(found.error.contains("zstd decompression failed"), "{found:?}");
        let other = SourceObject { etag: Some("e2".into()), ..object.clone() };
        assert_eq!(log.find(&other).await.unwrap(), None, "another version has its own record");
    }

    #[tokio::test]
    async fn a_failure_record_with_a_field_a_later_version_adds_still_reads() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let object =
            SourceObject { bucket: "raw".into(), key: "a.json".into(), etag: Some("e1".into()), ..Default::default() };
        let record = r#"{"uri": "s3://raw/a.json", "etag": "e1", "error": "corrupt", "kind": "Inlet.Source",
            "retryable": false, "failed_at": "2026-05-16T00:00:00.000Z", "attempts": 3}"#;
        store.put(&FailureLog::path(&object), PutPayload::from(record.as_bytes().to_vec())).await.unwrap();
        let found = FailureLog::new(store).find(&object).await.unwrap().unwrap();
        assert_eq!((found.error.as_str(), found.kind.as_str(), found.retryable), ("corrupt", "Inlet.Source", false));
    }
}
