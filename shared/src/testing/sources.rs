//! Sources for tests and benchmarks: objects held in memory, and (the one the `inlet convert`
//! command reads files with) objects in a local directory.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{Error, Result};
use crate::ingest::source::{Fetched, ObjectSource};
use crate::lineage::SourceObject;
pub use crate::ops::local::LocalSource;

/// Source objects held in memory, for tests and benchmarks. Like S3, a key keeps its
/// versions and a read names one: by version id, or by the notified ETag (`If-Match`).
#[derive(Debug, Default)]
pub struct MemorySource {
    objects: Mutex<HashMap<(String, String), Vec<StoredVersion>>>,
}

#[derive(Debug, Clone)]
struct StoredVersion {
    data: Bytes,
    etag: Option<String>,
    version: Option<String>,
}

impl MemorySource {
    /// Stores an object with no ETag of its own: any notified ETag reads it.
    pub fn put(&self, bucket: &str, key: &str, data: impl Into<Bytes>) {
        let stored = StoredVersion { data: data.into(), etag: None, version: None };
        self.objects.lock().expect("poisoned").insert((bucket.into(), key.into()), vec![stored]);
    }

    /// Writes a new version of a key: it becomes what the key holds, and `version` (on a
    /// versioned bucket) keeps the earlier ones readable by id.
    pub fn put_version(&self, bucket: &str, key: &str, etag: &str, version: Option<&str>, data: impl Into<Bytes>) {
        let stored = StoredVersion { data: data.into(), etag: Some(etag.into()), version: version.map(Into::into) };
        let mut objects = self.objects.lock().expect("poisoned");
        let versions = objects.entry((bucket.into(), key.into())).or_default();
        if version.is_none() {
            versions.clear();
        }
        versions.push(stored);
    }
}

#[async_trait]
impl ObjectSource for MemorySource {
    async fn fetch(&self, object: &SourceObject) -> Result<Fetched> {
        let objects = self.objects.lock().expect("poisoned");
        let versions = objects.get(&(object.bucket.clone(), object.key.clone())).map(Vec::as_slice).unwrap_or_default();
        let superseded = |reason: &str| Error::Superseded { object: object.describe(), reason: reason.into() };
        let found = match &object.version {
            // Superseded only when the key holds another version, as S3Source judges it.
            Some(version) => match versions.iter().find(|stored| stored.version.as_ref() == Some(version)) {
                Some(found) => found,
                None if versions.is_empty() => {
                    return Err(Error::Source {
                        uri: object.uri(),
                        reason: "object not found: the key does not exist".into(),
                        retryable: false,
                    });
                }
                None => return Err(superseded("the version was deleted before it was read")),
            },
            None => versions.last().ok_or_else(|| Error::Source {
                uri: object.uri(),
                reason: "object not found (deleted before it was read?)".into(),
                retryable: true,
            })?,
        };
        if object.version.is_none()
            && let (Some(notified), Some(current)) = (&object.etag, &found.etag)
            && notified != current
        {
            return Err(superseded("the key was overwritten before it was read: it now holds another ETag"));
        }
        Ok(Fetched { data: found.data.clone(), etag: found.etag.clone().or_else(|| object.etag.clone()) })
    }
}
