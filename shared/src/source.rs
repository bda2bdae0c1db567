//! Reading source objects: fetch (S3 or memory) and decompress by extension.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{Error, Result};
use crate::event::SourceObject;

/// An object's bytes as stored (still compressed) and the ETag of the version read.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The stored bytes.
    pub data: Bytes,
    /// ETag of the version that was read (quotes removed), when the store reports one.
    pub etag: Option<String>,
}

/// Where source objects are fetched from.
#[async_trait]
pub trait ObjectSource: Send + Sync {
    /// Reads the object.
    async fn fetch(&self, object: &SourceObject) -> Result<Fetched>;
}

/// Source objects in S3, read with the AWS SDK.
#[derive(Debug, Clone)]
pub struct S3Source {
    client: aws_sdk_s3::Client,
}

impl S3Source {
    /// Wraps an S3 client.
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl ObjectSource for S3Source {
    async fn fetch(&self, object: &SourceObject) -> Result<Fetched> {
        let uri = object.uri();
        let response =
            self.client.get_object().bucket(&object.bucket).key(&object.key).send().await.map_err(|err| {
                let service = err.as_service_error();
                let missing = service.is_some_and(|e| e.is_no_such_key());
                Error::Source {
                    uri: uri.clone(),
                    reason: if missing {
                        "object not found (deleted before it was read?)".into()
                    } else {
                        format!("GetObject failed: {}", aws_sdk_s3::error::DisplayErrorContext(&err))
                    },
                    // A missing object may still appear (eventual listing, replication lag): let SQS retry.
                    retryable: true,
                }
            })?;
        let etag = response.e_tag.as_deref().map(|etag| etag.trim_matches('"').to_string());
        let body = response.body.collect().await.map_err(|err| Error::Source {
            uri,
            reason: format!("reading the object body failed: {err}"),
            retryable: true,
        })?;
        Ok(Fetched { data: body.into_bytes(), etag })
    }
}

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

/// How an object is compressed, from its key's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// `.zst`, `.zstd`
    Zstd,
    /// `.gz`
    Gzip,
    /// anything else (`.json`, `.jsonl`, `.ndjson`)
    None,
}

impl Compression {
    /// Picks the codec from the key's last extension.
    pub fn from_key(key: &str) -> Self {
        let lower = key.to_ascii_lowercase();
        if lower.ends_with(".zst") || lower.ends_with(".zstd") {
            Compression::Zstd
        } else if lower.ends_with(".gz") {
            Compression::Gzip
        } else {
            Compression::None
        }
    }
}

/// Decompresses an object's bytes according to its key, streaming through the codec.
pub fn decompress(object: &SourceObject, data: Bytes) -> Result<Bytes> {
    let corrupt = |codec: &str, err: std::io::Error| Error::Source {
        uri: object.uri(),
        reason: format!("{codec} decompression failed: {err}"),
        retryable: false,
    };
    match Compression::from_key(&object.key) {
        Compression::None => Ok(data),
        Compression::Zstd => {
            let mut out = Vec::with_capacity(data.len() * 5);
            let mut decoder = zstd::stream::read::Decoder::with_buffer(&data[..]).map_err(|e| corrupt("zstd", e))?;
            decoder.read_to_end(&mut out).map_err(|e| corrupt("zstd", e))?;
            Ok(out.into())
        }
        Compression::Gzip => {
            let mut out = Vec::with_capacity(data.len() * 5);
            flate2::read::MultiGzDecoder::new(&data[..]).read_to_end(&mut out).map_err(|e| corrupt("gzip", e))?;
            Ok(out.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn object(key: &str) -> SourceObject {
        SourceObject { bucket: "b".into(), key: key.into(), etag: None }
    }

    #[test]
    fn codecs_follow_the_extension() {
        let text = b"{\"a\":1}\n{\"a\":2}\n";
        let zst = zstd::bulk::compress(text, 3).unwrap();
        assert_eq!(&decompress(&object("x.json.zst"), zst.clone().into()).unwrap()[..], text);
        assert_eq!(&decompress(&object("x.JSON.ZSTD"), zst.into()).unwrap()[..], text);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text).unwrap();
        assert_eq!(&decompress(&object("x.ndjson.gz"), gz.finish().unwrap().into()).unwrap()[..], text);
        assert_eq!(&decompress(&object("x.jsonl"), Bytes::from_static(text)).unwrap()[..], text);
    }

    #[test]
    fn corrupt_zstd_is_a_permanent_error_naming_the_object() {
        let err = decompress(&object("bad.json.zst"), Bytes::from_static(b"not zstd at all")).unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("s3://b/bad.json.zst: zstd decompression failed"), "{err}");
    }

    #[test]
    fn truncated_zstd_is_an_error() {
        let zst = zstd::bulk::compress(&[b'x'; 100_000], 3).unwrap();
        let cut = Bytes::copy_from_slice(&zst[..zst.len() / 2]);
        assert!(decompress(&object("t.json.zst"), cut).is_err());
    }
}
