//! Page value compression, into buffers reused from page to page.

use std::ffi::c_int;

use lz4::liblz4::LZ4_compress_default;

use super::PageCodec;
use super::leaf::parquet_error;
use crate::error::Result;

/// A page codec and the buffers reused from page to page.
pub(super) struct Codec {
    /// The page being assembled: levels, then values.
    pub(super) page: Vec<u8>,
    /// Values encoded in two parts (lengths, bytes), joined for the codec.
    pub(super) staged: Vec<u8>,
    /// The open page's encoded levels.
    pub(super) levels: Vec<u8>,
    /// A V1 page before compression: levels, then values.
    pub(super) body: Vec<u8>,
    pub(super) compressor: Compressor,
}

thread_local! {
    static CODEC: std::cell::RefCell<Option<Codec>> = const { std::cell::RefCell::new(None) };
}

/// Runs `write` with this thread's codec for `kind`. Its buffers and compression context are
/// scratch for one page at a time, so every writer on the thread shares them: a converter with
/// a writer open per partition (an object over thousands of dates) holds one set per thread,
/// not one per writer.
pub(super) fn with_codec<T>(kind: PageCodec, write: impl FnOnce(&mut Codec) -> T) -> T {
    CODEC.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => {
            let codec = match slot.as_mut() {
                Some(codec) if codec.compressor.kind == kind => codec,
                _ => slot.insert(Codec::new(kind)),
            };
            write(codec)
        }
        // Only if a writer were used from inside another's page (never): a codec of its own.
        Err(_) => write(&mut Codec::new(kind)),
    })
}

impl Codec {
    pub(super) fn new(kind: PageCodec) -> Self {
        Self {
            page: Vec::new(),
            staged: Vec::new(),
            levels: Vec::new(),
            body: Vec::new(),
            compressor: Compressor { kind, output: Vec::new(), zstd: None },
        }
    }
}

/// Compresses page values.
pub(super) struct Compressor {
    pub(super) kind: PageCodec,
    /// zstd's output, sized once to the largest bound seen so it is zeroed only then.
    pub(super) output: Vec<u8>,
    pub(super) zstd: Option<zstd::bulk::Compressor<'static>>,
}

impl Compressor {
    /// Appends `input`, compressed, to `out`; false if it was stored as it is.
    pub(super) fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        let written = match self.kind {
            PageCodec::Uncompressed => {
                out.extend_from_slice(input);
                return Ok(false);
            }
            PageCodec::Lz4Raw => {
                let source_len = c_int::try_from(input.len()).map_err(|_| parquet_error("a page of over 2 GiB"))?;
                out.reserve(lz4::block::compress_bound(input.len())?);
                let spare = out.spare_capacity_mut();
                let capacity = c_int::try_from(spare.len()).unwrap_or(c_int::MAX);
                // SAFETY: liblz4 reads `source_len` bytes from `input` and writes at most
                // `capacity` bytes, all within the spare capacity, returning how many (0 when
                // they do not fit). Compressing into the page itself saves copying every
                // page's output once more.
                let written = unsafe {
                    LZ4_compress_default(input.as_ptr().cast(), spare.as_mut_ptr().cast(), source_len, capacity)
                };
                let written =
                    usize::try_from(written).ok().filter(|n| *n > 0).ok_or_else(|| parquet_error("LZ4 failed"))?;
                // SAFETY: the first `written` bytes of the spare capacity were just written.
                unsafe { out.set_len(out.len() + written) };
                return Ok(true);
            }
            PageCodec::Zstd(level) => {
                let compressor = match &mut self.zstd {
                    Some(compressor) => compressor,
                    None => self.zstd.insert(zstd::bulk::Compressor::new(level.compression_level())?),
                };
                let output = sized(&mut self.output, zstd::zstd_safe::compress_bound(input.len()));
                compressor.compress_to_buffer(input, output)?
            }
        };
        out.extend_from_slice(&self.output[..written]);
        Ok(true)
    }
}

/// `output` grown to at least `bound` bytes (zero-filled only when it grows).
pub(super) fn sized(output: &mut Vec<u8>, bound: usize) -> &mut [u8] {
    if output.len() < bound {
        output.resize(bound, 0);
    }
    output
}
