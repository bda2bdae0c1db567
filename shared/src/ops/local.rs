//! Source objects on local disk: the sample files `inlet convert` is given, or a directory laid
//! out like buckets (`<root>/<bucket>/<key>`) for benchmarks and tests. Either way a read fails
//! as an S3 read does: naming the object's URI, retryable unless the file is not there.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::ingest::{Fetched, ObjectSource, Opened, open_file};
use crate::lineage::SourceObject;

/// The bucket name local files are given, so their lineage reads `s3://local/<path>`.
pub const LOCAL_BUCKET: &str = "local";

/// Source objects read from local disk.
#[derive(Debug, Clone)]
pub struct LocalSource {
    /// The directory holding one directory per bucket; `None` for files named by their
    /// absolute path, whatever their bucket.
    buckets: Option<PathBuf>,
}

impl LocalSource {
    /// Objects under `root`, one directory per bucket: `<root>/<bucket>/<key>`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { buckets: Some(root.into()) }
    }

    /// Local files, each read as the object [`LocalSource::file_object`] names.
    pub fn files() -> Self {
        Self { buckets: None }
    }

    /// The object a local file is read as: bucket [`LOCAL_BUCKET`], key its absolute path
    /// without the leading `/`, no ETag.
    pub fn file_object(file: &Path) -> Result<SourceObject> {
        let absolute = file.canonicalize().map_err(|err| Error::BadRequest(format!("{}: {err}", file.display())))?;
        let key = absolute.to_string_lossy().trim_start_matches('/').to_string();
        Ok(SourceObject { bucket: LOCAL_BUCKET.into(), key, etag: None, ..Default::default() })
    }

    /// The file that holds `object`.
    pub fn path(&self, object: &SourceObject) -> PathBuf {
        match &self.buckets {
            Some(root) => root.join(&object.bucket).join(&object.key),
            None => Path::new("/").join(&object.key),
        }
    }
}

#[async_trait]
impl ObjectSource for LocalSource {
    async fn fetch(&self, object: &SourceObject) -> Result<Fetched> {
        let path = self.path(object);
        let data = tokio::fs::read(&path).await.map_err(|err| Error::Source {
            uri: object.uri(),
            reason: format!("reading {}: {err}", path.display()),
            retryable: err.kind() != std::io::ErrorKind::NotFound,
        })?;
        Ok(Fetched { data: data.into(), etag: object.etag.clone() })
    }

    async fn open(&self, object: &SourceObject) -> Result<Opened> {
        open_file(object, &self.path(object)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bucket_directory_and_a_named_file_read_the_same_bytes_and_fail_alike() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("raw/web")).unwrap();
        let file = dir.path().join("raw/web/a.json");
        std::fs::write(&file, b"{\"id\":1}\n").unwrap();

        let in_bucket = SourceObject { bucket: "raw".into(), key: "web/a.json".into(), ..Default::default() };
        let by_bucket = LocalSource::new(dir.path()).fetch(&in_bucket).await.unwrap();
        let named = LocalSource::file_object(&file).unwrap();
        assert_eq!(named.uri(), format!("s3://{LOCAL_BUCKET}{}", file.canonicalize().unwrap().display()));
        let by_name = LocalSource::files().fetch(&named).await.unwrap();
        assert_eq!(by_bucket.data, by_name.data);
        let opened = LocalSource::files().open(&named).await.unwrap();
        assert_eq!(opened.length, by_name.data.len() as u64);

        let gone = SourceObject { key: "web/gone.json".into(), ..in_bucket };
        let Error::Source { uri, retryable, .. } = LocalSource::new(dir.path()).fetch(&gone).await.unwrap_err() else {
            panic!("not a source error")
        };
        assert_eq!((uri.as_str(), retryable), ("s3://raw/web/gone.json", false), "a missing file is not retried");
        assert!(LocalSource::file_object(&dir.path().join("gone.json")).is_err());
    }
}
