//! Sources for tests and benchmarks: objects in a local directory or held in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{Error, Result};
use crate::ingest::source::{Fetched, ObjectSource};
use crate::lineage::SourceObject;

/// Source objects in a local directory (`<root>/<bucket>/<key>`), for benchmarks and local runs.
#[derive(Debug, Clone)]
pub struct LocalSource {
    root: std::path::PathBuf,
}

impl LocalSource {
    /// Objects under `root`.
    pub fn new(root: impl Into<std::path::PathBuf>) -> Self {
        Self { root: root.into() }
    }
}

#[async_trait]
impl ObjectSource for LocalSource {
    async fn fetch(&self, object: &SourceObject) -> Result<Fetched> {
        let path = self.root.join(&object.bucket).join(&object.key);
        let data = tokio::fs::read(&path).await.map_err(|err| Error::Source {
            uri: object.uri(),
            reason: format!("reading {}: {err}", path.display()),
            retryable: err.kind() != std::io::ErrorKind::NotFound,
        })?;
        Ok(Fetched { data: data.into(), etag: object.etag.clone() })
    }
}

/// Source objects held in memory, for tests and benchmarks.
#[derive(Debug, Default)]
pub struct MemorySource {
    objects: Mutex<HashMap<(String, String), Bytes>>,
}

impl MemorySource {
    /// Stores an object.
    pub fn put(&self, bucket: &str, key: &str, data: impl Into<Bytes>) {
        self.objects.lock().expect("poisoned").insert((bucket.into(), key.into()), data.into());
    }
}

#[async_trait]
impl ObjectSource for MemorySource {
    async fn fetch(&self, object: &SourceObject) -> Result<Fetched> {
        let objects = self.objects.lock().expect("poisoned");
        let data = objects.get(&(object.bucket.clone(), object.key.clone())).cloned();
        data.map(|data| Fetched { data, etag: object.etag.clone() }).ok_or_else(|| Error::Source {
            uri: object.uri(),
            reason: "object not found (deleted before it was read?)".into(),
            retryable: true,
        })
    }
}
