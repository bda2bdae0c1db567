//! Superseded versions: notified object versions that no longer existed when the converter
//! went to read them (the key was overwritten or the version deleted first). Each is recorded
//! as JSON under `<table>/_inlet/superseded/<bucket>/<key>@<version or etag>.json`, so nothing
//! notified disappears without a trace, and a redelivered notification rewrites its record.

use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::ingest::quarantine::records_under;
use crate::layout::{SUPERSEDED_PREFIX, source_record};
use crate::lineage::SourceObject;

/// One notified version that was gone when read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupersededVersion {
    /// `s3://bucket/key`
    pub uri: String,
    /// The notified ETag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The notified version id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// What happened to it.
    pub reason: String,
    /// When the converter found it gone (RFC 3339).
    pub recorded_at: String,
}

/// The superseded record of one table.
#[derive(Debug, Clone)]
pub struct SupersededLog {
    store: Arc<dyn ObjectStore>,
}

impl SupersededLog {
    /// The record in `store`, which is rooted at the table location.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }

    /// Records that `object`, as notified, was gone when read.
    pub async fn record(&self, object: &SourceObject, reason: &str) -> Result<Path> {
        let tag = object.version.as_deref().or(object.etag.as_deref()).unwrap_or("unknown-version");
        let path = source_record(SUPERSEDED_PREFIX, &object.bucket, &object.key, tag, "json");
        let entry = SupersededVersion {
            uri: object.uri(),
            etag: object.etag.clone(),
            version: object.version.clone(),
            reason: reason.to_string(),
            recorded_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        };
        self.store.put(&path, PutPayload::from(serde_json::to_vec(&entry)?)).await?;
        Ok(path)
    }

    /// Every recorded version, in path order.
    pub async fn versions(&self) -> Result<Vec<SupersededVersion>> {
        let records = records_under(&self.store, SUPERSEDED_PREFIX).await?;
        Ok(records.iter().map(|record| serde_json::from_slice(record)).collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    #[tokio::test]
    async fn a_redelivered_notification_rewrites_its_record() {
        let log = SupersededLog::new(Arc::new(InMemory::new()));
        let object = SourceObject {
            bucket: "raw".into(),
            key: "svc/date=2026-05-16/a b.json.zst".into(),
            etag: Some("e1".into()),
            ..Default::default()
        };
        let path = log.record(&object, "overwritten").await.unwrap();
        log.record(&object, "overwritten").await.unwrap();
        let newer = SourceObject { etag: Some("e2".into()), ..object.clone() };
        log.record(&newer, "deleted").await.unwrap();
        assert!(path.as_ref().starts_with("_inlet/superseded/raw/svc/date=2026-05-16/a b.json.zst@e1"), "{path}");
        let versions = log.versions().await.unwrap();
        assert_eq!(versions.len(), 2);
        assert_eq!((versions[0].etag.as_deref(), versions[0].reason.as_str()), (Some("e1"), "overwritten"));
        assert_eq!(versions[1].uri, "s3://raw/svc/date=2026-05-16/a b.json.zst");
    }

    #[tokio::test]
    async fn a_superseded_record_with_a_field_a_later_version_adds_still_reads() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let record = r#"{"uri": "s3://raw/a.json", "etag": "e1", "reason": "overwritten",
            "recorded_at": "2026-05-16T00:00:00.000Z", "size": 12}"#;
        let path = source_record(SUPERSEDED_PREFIX, "raw", "a.json", "e1", "json");
        store.put(&path, PutPayload::from(record.as_bytes().to_vec())).await.unwrap();
        let versions = SupersededLog::new(store).versions().await.unwrap();
        assert_eq!(versions.len(), 1);
        assert_eq!((versions[0].reason.as_str(), versions[0].etag.as_deref()), ("overwritten", Some("e1")));
    }
}
