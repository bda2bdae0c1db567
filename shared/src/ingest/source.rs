//! Reading source objects: fetch from S3 and decompress by extension.

use std::io::Read;

use async_trait::async_trait;
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
    /// Reads the notified version: by version id on a versioned bucket, else only while the
    /// key still holds the notified ETag (`If-Match`). A version that is gone is
    /// [`Error::Superseded`], never silently replaced by whatever the key holds now.
    async fn fetch(&self, object: &SourceObject) -> Result<Fetched> {
        let uri = object.uri();
        let mut request = self.client.get_object().bucket(&object.bucket).key(&object.key);
        if let Some(version) = &object.version {
            request = request.version_id(version);
        } else if let Some(etag) = &object.etag {
            request = request.if_match(format!("\"{etag}\""));
        }
        let response = request.send().await.map_err(|err| {
            let status = err.raw_response().map(|response| response.status().as_u16());
            let named = object.version.is_some() || object.etag.is_some();
            match status {
                Some(412) => Error::Superseded {
                    object: object.describe(),
                    reason: "the key was overwritten before it was read: it now holds another ETag".into(),
                },
                Some(404) if named => Error::Superseded {
                    object: object.describe(),
                    reason: "the version was deleted before it was read".into(),
                },
                _ => Error::Source {
                    uri: uri.clone(),
                    reason: if status == Some(404) {
                        "object not found (deleted before it was read?)".into()
                    } else {
                        format!("GetObject failed: {}", aws_sdk_s3::error::DisplayErrorContext(&err))
                    },
                    // Throttling and network faults pass; an unnamed missing object goes to the DLQ.
                    retryable: true,
                },
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

/// Decompressed buffers larger than this are freed after use instead of kept for the next
/// object (objects are ~1 MiB; a rare huge one should not pin its size per thread).
const KEPT_BUFFER_BYTES: usize = 16 * 1024 * 1024;

/// A zstd context and an output buffer, kept per thread between objects: a fresh buffer per
/// object would cost page faults, zero-filling and a copy for every object.
struct Decompressor {
    zstd: zstd::zstd_safe::DCtx<'static>,
    out: Vec<u8>,
}

thread_local! {
    static DECOMPRESSOR: std::cell::Cell<Option<Box<Decompressor>>> = const { std::cell::Cell::new(None) };
}

/// The most an object may hold once decompressed. An object over either limit fails alone,
/// with a reason naming the limit, instead of taking the converter's memory (and with it
/// every other object of its batch) down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectLimits {
    /// Decompressed bytes (`INLET_MAX_OBJECT_BYTES`).
    pub max_bytes: u64,
    /// Lines (`INLET_MAX_OBJECT_LINES`).
    pub max_lines: u64,
}

impl ObjectLimits {
    /// No limit at all (tools reading trusted local files).
    pub const NONE: Self = Self { max_bytes: u64::MAX, max_lines: u64::MAX };
}

/// Why decompression stopped.
enum Failure {
    Corrupt(String),
    TooLarge,
}

/// Decompresses an object's bytes according to its key and hands them to `read`, refusing an
/// object that decompresses to more than `limits` allow (decompression stops at the limit, so
/// memory never holds more than the limit).
///
/// The output lands in a buffer reused by the thread's next object, so `read` borrows it.
pub fn with_decompressed<T>(
    object: &SourceObject,
    data: &Bytes,
    limits: ObjectLimits,
    read: impl FnOnce(&[u8]) -> T,
) -> Result<T> {
    let refuse = |reason: String| Error::Source { uri: object.uri(), reason, retryable: false };
    let failed = |codec: &str, failure: Failure| match failure {
        Failure::Corrupt(reason) => refuse(format!("{codec} decompression failed: {reason}")),
        Failure::TooLarge => refuse(format!(
            "decompresses to more than INLET_MAX_OBJECT_BYTES ({} bytes); raise the limit (and the \
             converter's memory) to ingest it",
            limits.max_bytes
        )),
    };
    let within = |data: &[u8]| -> Result<()> {
        if data.len() as u64 > limits.max_bytes {
            return Err(failed("", Failure::TooLarge));
        }
        // A last line without its newline is a line too.
        let lines =
            memchr::memchr_iter(b'\n', data).count() as u64 + u64::from(data.last().is_some_and(|b| *b != b'\n'));
        if lines > limits.max_lines {
            return Err(refuse(format!(
                "holds {lines} lines, more than INLET_MAX_OBJECT_LINES ({}); raise the limit (and the \
                 converter's memory) to ingest it",
                limits.max_lines
            )));
        }
        Ok(())
    };
    let compression = Compression::from_key(&object.key);
    if compression == Compression::None {
        within(data)?;
        return Ok(read(data));
    }
    // Taken out, not borrowed: a nested call on this thread gets a fresh one instead of a panic.
    let mut state = DECOMPRESSOR
        .take()
        .unwrap_or_else(|| Box::new(Decompressor { zstd: zstd::zstd_safe::DCtx::create(), out: Vec::new() }));
    state.out.clear();
    let decompressed = match compression {
        Compression::Zstd => {
            zstd_into(&mut state.zstd, data, &mut state.out, limits.max_bytes).map_err(|e| failed("zstd", e))
        }
        Compression::Gzip => gzip_into(data, &mut state.out, limits.max_bytes).map_err(|e| failed("gzip", e)),
        Compression::None => unreachable!("uncompressed objects returned above"),
    };
    let result = decompressed.and_then(|()| within(&state.out)).map(|()| read(&state.out));
    if state.out.capacity() <= KEPT_BUFFER_BYTES {
        DECOMPRESSOR.set(Some(state));
    }
    result
}

/// Decompresses every gzip member of `input` into `out` (empty on entry), stopping past `max` bytes.
fn gzip_into(input: &[u8], out: &mut Vec<u8>, max: u64) -> Result<(), Failure> {
    out.reserve((input.len() * 5).min(usize::try_from(max).unwrap_or(usize::MAX)));
    flate2::read::MultiGzDecoder::new(input)
        .take(max.saturating_add(1))
        .read_to_end(out)
        .map_err(|e| Failure::Corrupt(e.to_string()))?;
    if out.len() as u64 > max { Err(Failure::TooLarge) } else { Ok(()) }
}

/// Decompresses every zstd frame of `input` into `out` (empty on entry), without zero-filling
/// the output first as `Read::read_to_end` does, stopping past `max` bytes.
fn zstd_into(zstd: &mut zstd::zstd_safe::DCtx<'_>, input: &[u8], out: &mut Vec<u8>, max: u64) -> Result<(), Failure> {
    use zstd::zstd_safe::{InBuffer, OutBuffer, ResetDirective, get_error_name};
    let corrupt = |code| Failure::Corrupt(get_error_name(code).to_string());
    if input.is_empty() {
        // An empty object is empty NDJSON (quarantined as such), not a zstd error.
        return Ok(());
    }
    zstd.reset(ResetDirective::SessionOnly).map_err(corrupt)?;
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    // The frame header usually states the size; producers that stream may leave it out. Never
    // trust it past the limit: a bomb states its size too.
    let expected = match zstd::zstd_safe::get_frame_content_size(input) {
        Ok(Some(size)) => usize::try_from(size).unwrap_or(usize::MAX).min(input.len().saturating_mul(64)),
        _ => input.len().saturating_mul(5),
    };
    out.reserve_exact(expected.min(max.saturating_add(1)).max(4096));
    let mut source = InBuffer::around(input);
    loop {
        if out.len() > max {
            return Err(Failure::TooLarge);
        }
        if out.len() == out.capacity() {
            // Exact, so the buffer never grows past the limit by doubling.
            out.reserve_exact(out.len().max(64 * 1024).min(max.saturating_add(1) - out.len()).max(1));
        }
        let room_before = out.capacity() - out.len();
        let (start, read_before) = (out.len(), source.pos());
        let mut target = OutBuffer::around_pos(out, start);
        let hint = zstd.decompress_stream(&mut target, &mut source).map_err(corrupt)?;
        let written = target.pos() - start;
        let input_left = source.pos() < input.len();
        if hint != 0 && written == 0 && source.pos() == read_before {
            // zstd always moves with input and room to write; never spin if it does not.
            return Err(Failure::Corrupt("the decompressor made no progress".to_string()));
        }
        match hint {
            // A frame ended; more input is another frame.
            0 if !input_left => return if out.len() > max { Err(Failure::TooLarge) } else { Ok(()) },
            0 => {}
            // Mid-frame with all input read and output room to spare: the frame is cut short.
            _ if !input_left && written < room_before => {
                return Err(Failure::Corrupt("the input ends inside a frame (truncated object)".to_string()));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn object(key: &str) -> SourceObject {
        SourceObject { bucket: "b".into(), key: key.into(), etag: None, ..Default::default() }
    }

    fn decompress(object: &SourceObject, data: impl Into<Bytes>) -> Result<Vec<u8>> {
        with_decompressed(object, &data.into(), ObjectLimits::NONE, <[u8]>::to_vec)
    }

    #[test]
    fn an_object_over_a_limit_is_refused_naming_the_limit_without_decompressing_it_whole() {
        // 8 MiB of one repeated line: a few KiB compressed.
        let line = b"{\"a\":1}\n";
        let bomb: Vec<u8> = line.iter().copied().cycle().take(8 << 20).collect();
        let limits = ObjectLimits { max_bytes: 1 << 20, max_lines: u64::MAX };
        for (key, data) in [
            ("bomb.json.zst", zstd::bulk::compress(&bomb, 3).unwrap()),
            ("bomb.json.gz", {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(&bomb).unwrap();
                gz.finish().unwrap()
            }),
            ("bomb.json", bomb.clone()),
        ] {
            let mut seen = 0;
            let err = with_decompressed(&object(key), &data.into(), limits, |out| seen = out.len()).unwrap_err();
            assert!(!err.is_retryable(), "{err}");
            assert!(
                err.to_string()
                    .contains(&format!("{key}: decompresses to more than INLET_MAX_OBJECT_BYTES (1048576 bytes)")),
                "{err}"
            );
            assert_eq!(seen, 0, "nothing is decoded");
        }

        let lines = ObjectLimits { max_bytes: u64::MAX, max_lines: 3 };
        let err = decompress_with(&object("many.json"), b"1\n2\n3\n4".to_vec(), lines).unwrap_err();
        assert!(err.to_string().contains("holds 4 lines, more than INLET_MAX_OBJECT_LINES (3)"), "{err}");
        assert_eq!(decompress_with(&object("few.json"), b"1\n2\n3\n".to_vec(), lines).unwrap(), b"1\n2\n3\n");
    }

    fn decompress_with(object: &SourceObject, data: Vec<u8>, limits: ObjectLimits) -> Result<Vec<u8>> {
        with_decompressed(object, &data.into(), limits, <[u8]>::to_vec)
    }

    #[test]
    fn codecs_follow_the_extension() {
        let text = b"{\"a\":1}\n{\"a\":2}\n";
        let zst = zstd::bulk::compress(text, 3).unwrap();
        assert_eq!(decompress(&object("x.json.zst"), zst.clone()).unwrap(), text);
        assert_eq!(decompress(&object("x.JSON.ZSTD"), zst).unwrap(), text);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text).unwrap();
        assert_eq!(decompress(&object("x.ndjson.gz"), gz.finish().unwrap()).unwrap(), text);
        assert_eq!(decompress(&object("x.jsonl"), text.to_vec()).unwrap(), text);
    }

    #[test]
    fn corrupt_zstd_is_a_permanent_error_naming_the_object() {
        let err = decompress(&object("bad.json.zst"), &b"not zstd at all"[..]).unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("s3://b/bad.json.zst: zstd decompression failed"), "{err}");
    }

    #[test]
    fn truncated_zstd_is_an_error() {
        let zst = zstd::bulk::compress(&[b'x'; 100_000], 3).unwrap();
        let cut = zst[..zst.len() / 2].to_vec();
        let err = decompress(&object("t.json.zst"), cut).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn concatenated_frames_and_frames_without_a_size_decompress_whole() {
        // Streaming producers write no content size, and appenders concatenate frames.
        let first: Vec<u8> = (0..300_000u32).flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes()).collect();
        let mut streamed = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        streamed.write_all(&first).unwrap();
        let mut both = streamed.finish().unwrap();
        both.extend(zstd::bulk::compress(b"{\"n\":-1}\n", 3).unwrap());
        let mut expected = first.clone();
        expected.extend_from_slice(b"{\"n\":-1}\n");
        assert_eq!(decompress(&object("s.json.zst"), both).unwrap(), expected);
    }

    #[test]
    fn a_reused_buffer_never_leaks_the_previous_object() {
        let long = zstd::bulk::compress(&[b'a'; 50_000], 3).unwrap();
        let short = zstd::bulk::compress(b"{}\n", 3).unwrap();
        assert_eq!(decompress(&object("l.json.zst"), long).unwrap().len(), 50_000);
        assert_eq!(decompress(&object("s.json.zst"), short).unwrap(), b"{}\n");
        // A failure between two objects leaves nothing behind either.
        assert!(decompress(&object("bad.json.zst"), &b"garbage"[..]).is_err());
        assert_eq!(decompress(&object("s.json.zst"), zstd::bulk::compress(b"1\n", 3).unwrap()).unwrap(), b"1\n");
    }
}
