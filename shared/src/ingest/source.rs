//! Reading source objects: fetched from S3 (or a file), whole or streamed, by the version notified.
//! Decompression is [`crate::ingest::decompress`].

use std::io::Read;

use async_trait::async_trait;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use crate::error::{Error, Result};
use crate::lineage::SourceObject;

/// An object's bytes as stored (still compressed) and the ETag of the version read.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The stored bytes.
    pub data: Bytes,
    /// ETag of the version that was read (quotes removed), when the store reports one.
    pub etag: Option<String>,
}

/// An object opened for reading: its bytes arrive as they are read, so an object of any
/// size can be streamed through the converter.
#[derive(Debug)]
pub struct Opened {
    /// The stored bytes, as they arrive.
    pub body: ByteStream,
    /// Stored (compressed) size in bytes.
    pub length: u64,
    /// ETag of the version opened (quotes removed), when the store reports one.
    pub etag: Option<String>,
}

impl Opened {
    /// Reads the whole body.
    pub async fn whole(self, object: &SourceObject) -> Result<Fetched> {
        let data = self.body.collect().await.map_err(|err| body_failed(object, &err))?.into_bytes();
        Ok(Fetched { data, etag: self.etag })
    }
}

/// Where source objects are fetched from.
#[async_trait]
pub trait ObjectSource: Send + Sync {
    /// Reads the object whole.
    async fn fetch(&self, object: &SourceObject) -> Result<Fetched>;

    /// Opens the object to stream it. By default the object is read whole first; stores that
    /// can stream say so here.
    async fn open(&self, object: &SourceObject) -> Result<Opened> {
        let fetched = self.fetch(object).await?;
        Ok(Opened { length: fetched.data.len() as u64, body: ByteStream::from(fetched.data), etag: fetched.etag })
    }
}

/// Opens a local file as a source object's stored bytes, streamed as they are read.
pub async fn open_file(object: &SourceObject, path: &std::path::Path) -> Result<Opened> {
    let unreadable = |err: &dyn std::fmt::Display, retryable| Error::Source {
        uri: object.uri(),
        reason: format!("reading {}: {err}", path.display()),
        retryable,
    };
    let length = tokio::fs::metadata(path)
        .await
        .map_err(|err| unreadable(&err, err.kind() != std::io::ErrorKind::NotFound))?
        .len();
    let body = ByteStream::from_path(path).await.map_err(|err| unreadable(&err, true))?;
    Ok(Opened { body, length, etag: object.etag.clone() })
}

/// A read of a stored body that failed part way (a network fault): worth retrying.
pub(crate) fn body_failed(object: &SourceObject, err: &dyn std::fmt::Display) -> Error {
    Error::Source { uri: object.uri(), reason: format!("reading the object body failed: {err}"), retryable: true }
}

/// The content digest of a streamed body ([`crate::lineage::content_digest`] of its bytes),
/// read to its end and dropped as it arrives.
pub async fn digest_body(object: &SourceObject, mut body: ByteStream) -> Result<String> {
    let mut digest = crate::lineage::ContentDigest::default();
    while let Some(chunk) = body.next().await {
        digest.update(&chunk.map_err(|err| body_failed(object, &err))?);
    }
    Ok(digest.finish())
}

/// A streamed body read from blocking code (the decoders run on blocking threads): each
/// read waits on the runtime for the next bytes.
pub struct BlockingBody {
    body: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    runtime: tokio::runtime::Handle,
}

impl BlockingBody {
    /// Wraps `body`; must be created inside the runtime, and read outside its worker threads.
    pub fn new(body: ByteStream) -> Self {
        Self { body: Box::new(body.into_async_read()), runtime: tokio::runtime::Handle::current() }
    }
}

/// A failure of the stored body itself, as opposed to its content: told apart from a
/// decompression error by [`Pieces`], because it is worth retrying.
#[derive(Debug, thiserror::Error)]
#[error("reading the object body failed: {0}")]
pub(crate) struct BodyFault(pub(crate) std::io::Error);

impl Read for BlockingBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use tokio::io::AsyncReadExt;
        self.runtime.block_on(self.body.read(buf)).map_err(|err| std::io::Error::other(BodyFault(err)))
    }
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
        self.open(object).await?.whole(object).await
    }

    /// Opens the notified version: by version id on a versioned bucket, else only while the
    /// key still holds the notified ETag (`If-Match`). A version that is not there is
    /// [`Error::Superseded`] only on evidence, when the key now holds another version; a
    /// missing bucket or key, or a refused access, fails with the reason.
    async fn open(&self, object: &SourceObject) -> Result<Opened> {
        let uri = object.uri();
        let mut request = self.client.get_object().bucket(&object.bucket).key(&object.key);
        if let Some(version) = &object.version {
            request = request.version_id(version);
        } else if let Some(etag) = &object.etag {
            request = request.if_match(format!("\"{etag}\""));
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                let status = err.raw_response().map(|response| response.status().as_u16());
                let code = err.code().unwrap_or("no error code").to_string();
                let named = object.version.is_some() || object.etag.is_some();
                let fail = |reason: String, retryable| Error::Source { uri: uri.clone(), reason, retryable };
                return Err(match status {
                    _ if code == "NoSuchBucket" => {
                        fail(format!("bucket {:?} does not exist (NoSuchBucket)", object.bucket), false)
                    }
                    Some(403) => {
                        fail(format!("access denied ({code}): check the converter's role and the bucket policy"), false)
                    }
                    Some(412) | Some(404) if named => {
                        let asked = format!("GetObject answered {} {code}", status.unwrap_or_default());
                        let now = self.current(object).await;
                        if let Ok(Some(current)) = &now
                            && let Some(same) = self.same_content(object, current).await?
                        {
                            return Ok(same);
                        }
                        missing_version_verdict(object, &asked, now)
                    }
                    Some(404) => fail(format!("object not found ({code})"), false),
                    // Throttling and network faults pass.
                    _ => fail(format!("GetObject failed: {}", aws_sdk_s3::error::DisplayErrorContext(&err)), true),
                });
            }
        };
        let etag = response.e_tag.as_deref().map(|etag| etag.trim_matches('"').to_string());
        let length = response.content_length.and_then(|length| u64::try_from(length).ok()).unwrap_or(u64::MAX);
        Ok(Opened { body: response.body, length, etag })
    }
}

impl S3Source {
    /// The version the key holds now, opened, when its bytes are those of the notified one:
    /// a notified single-part ETag is the MD5 of its bytes, so a key re-uploaded with the same
    /// bytes (a multipart copy, a new SSE-KMS ETag) is recognised and read as what was
    /// notified, never recorded as superseded. `None` when that cannot be shown.
    async fn same_content(&self, object: &SourceObject, current: &CurrentVersion) -> Result<Option<Opened>> {
        let (Some(notified), Some(now)) = (&object.etag, &current.etag) else { return Ok(None) };
        let is_md5 = notified.len() == 32 && notified.bytes().all(|b| b.is_ascii_hexdigit());
        if object.version.is_some() || !is_md5 || notified == now {
            return Ok(None);
        }
        let open = || self.client.get_object().bucket(&object.bucket).key(&object.key).if_match(format!("\"{now}\""));
        let Ok(response) = open().send().await else { return Ok(None) };
        let mut body = response.body;
        let mut digest = Md5Hex::default();
        while let Some(chunk) = body.try_next().await.map_err(|err| body_failed(object, &err))? {
            digest.update(&chunk);
        }
        let hex = digest.finish();
        if !hex.eq_ignore_ascii_case(notified) {
            return Ok(None);
        }
        tracing::info!(object = %object.describe(), now = %now, "the key holds the notified bytes under another ETag: reading those");
        let Ok(response) = open().send().await else { return Ok(None) };
        let length = response.content_length.and_then(|length| u64::try_from(length).ok()).unwrap_or(u64::MAX);
        Ok(Some(Opened { body: response.body, length, etag: Some(now.clone()) }))
    }

    /// What the object's key holds now, asked without naming a version (an unconditional
    /// HEAD); `None` when the key does not exist.
    async fn current(&self, object: &SourceObject) -> Result<Option<CurrentVersion>> {
        match self.client.head_object().bucket(&object.bucket).key(&object.key).send().await {
            Ok(head) => Ok(Some(CurrentVersion {
                etag: head.e_tag().map(|etag| etag.trim_matches('"').to_string()),
                version: head.version_id().filter(|version| *version != "null").map(str::to_string),
            })),
            Err(err) => match err.raw_response().map(|response| response.status().as_u16()) {
                Some(404) => Ok(None),
                status => Err(Error::Source {
                    uri: object.uri(),
                    reason: format!("HeadObject failed: {}", aws_sdk_s3::error::DisplayErrorContext(&err)),
                    retryable: status != Some(403),
                }),
            },
        }
    }
}

/// What a key holds now, as an unconditional HEAD answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CurrentVersion {
    /// Its ETag (quotes removed).
    pub etag: Option<String>,
    /// Its version id, on a versioned bucket.
    pub version: Option<String>,
}

/// The verdict on a notified version the store did not find where named (`asked` says how it
/// answered), given what the key holds `now`: superseded only when it holds another version
/// (another version id or ETag); a key that is gone, or that still holds the notified version,
/// fails the message with the reason. Pure: the whole rule, tested without a store.
pub fn missing_version_verdict(object: &SourceObject, asked: &str, now: Result<Option<CurrentVersion>>) -> Error {
    let fail = |reason: String, retryable| Error::Source { uri: object.uri(), reason, retryable };
    let now = match now {
        Ok(Some(now)) => now,
        Ok(None) => return fail(format!("object not found: the key does not exist ({asked})"), false),
        Err(err) => {
            let retryable = err.is_retryable();
            return fail(format!("{asked}, and what the key holds now is unknown: {err}"), retryable);
        }
    };
    let differs = |notified: &Option<String>, current: &Option<String>| matches!((notified, current), (Some(a), Some(b)) if a != b);
    let other_version = differs(&object.version, &now.version);
    let other_etag = differs(&object.etag, &now.etag);
    if other_version || other_etag {
        let holds = match (&now.version, &now.etag) {
            (Some(version), Some(etag)) => format!("version {version} (ETag {etag})"),
            (Some(version), None) => format!("version {version}"),
            (None, Some(etag)) => format!("ETag {etag}"),
            (None, None) => "another version".into(),
        };
        return Error::Superseded {
            object: object.describe(),
            reason: format!("the key was overwritten or the version deleted before it was read: it now holds {holds}"),
        };
    }
    // The key holds the notified version after all (a store catching up): try again.
    fail(format!("{asked}, yet the key holds the notified version"), true)
}

/// The MD5 of bytes read in chunks, in lowercase hex: the form of a single-part ETag.
#[derive(Default)]
struct Md5Hex(md5::Md5);

impl Md5Hex {
    fn update(&mut self, chunk: &[u8]) {
        md5::Digest::update(&mut self.0, chunk);
    }

    fn finish(self) -> String {
        md5::Digest::finalize(self.0).iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::decompress::{ObjectLimits, Pieces};

    fn object(key: &str) -> SourceObject {
        SourceObject { bucket: "b".into(), key: key.into(), etag: None, ..Default::default() }
    }

    #[test]
    fn a_missing_version_is_superseded_only_when_the_key_holds_another_one() {
        let notified = SourceObject {
            bucket: "raw".into(),
            key: "a b+c%é.json".into(),
            etag: Some("e1".into()),
            ..Default::default()
        };
        let asked = "GetObject answered 412 PreconditionFailed";
        let holding = |etag: &str| Ok(Some(CurrentVersion { etag: Some(etag.into()), version: None }));
        match missing_version_verdict(&notified, asked, holding("e2")) {
            Error::Superseded { reason, .. } => assert!(reason.contains("now holds ETag e2"), "{reason}"),
            other => panic!("another ETag is evidence: {other:?}"),
        }
        // The key is gone (deleted, or the notification named a key that never was): fails.
        let gone = missing_version_verdict(&notified, "GetObject answered 404 NoSuchKey", Ok(None));
        assert!(matches!(&gone, Error::Source { retryable: false, .. }), "{gone:?}");
        assert!(gone.to_string().contains("a b+c%é.json: object not found"), "{gone}");
        // The key still holds the notified version: no evidence, try again.
        assert!(matches!(
            missing_version_verdict(&notified, asked, holding("e1")),
            Error::Source { retryable: true, .. }
        ));
        // Nothing known about the key: no evidence either.
        let unknown =
            Err(Error::Source { uri: "s3://raw/k".into(), reason: "HeadObject failed: 403".into(), retryable: false });
        assert!(matches!(missing_version_verdict(&notified, asked, unknown), Error::Source { retryable: false, .. }));
        // On a versioned bucket another version id is evidence too.
        let versioned = SourceObject { version: Some("v1".into()), ..notified.clone() };
        let now = Ok(Some(CurrentVersion { etag: Some("e1".into()), version: Some("v2".into()) }));
        assert!(matches!(missing_version_verdict(&versioned, asked, now), Error::Superseded { .. }));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_streamed_body_reads_on_blocking_threads_and_digests_as_a_whole() {
        let text: Vec<u8> = (0..50_000u64).flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes()).collect();
        let stored = zstd::bulk::compress(&text, 3).unwrap();
        let digest = digest_body(&object("d.json.zst"), ByteStream::from(stored.clone())).await.unwrap();
        assert_eq!(digest, crate::lineage::content_digest(&stored));
        let body = BlockingBody::new(ByteStream::from(stored));
        let read = tokio::task::spawn_blocking(move || {
            let mut pieces =
                Pieces::from_reader(object("d.json.zst"), body, ObjectLimits::NONE, 4096, 1 << 20).unwrap();
            let mut joined = Vec::new();
            while let Some(piece) = pieces.next_piece().unwrap() {
                joined.extend(piece.data);
            }
            joined
        })
        .await
        .unwrap();
        assert_eq!(read, text);
    }

    #[test]
    fn a_digest_of_chunks_is_the_single_part_etag_of_their_bytes() {
        let mut digest = Md5Hex::default();
        digest.update(b"hello ");
        digest.update(b"world");
        assert_eq!(digest.finish(), "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert_eq!(Md5Hex::default().finish(), "d41d8cd98f00b204e9800998ecf8427e");
    }
}
