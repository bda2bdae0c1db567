//! Page compression, into buffers reused from page to page.

use super::PageCodec;
use crate::error::Result;

/// A page codec and the buffers reused from page to page.
pub(super) struct Codec {
    /// A page before compression: its levels, then its values.
    pub(super) body: Vec<u8>,
    /// The page after compression, lent to the page writer while it is written.
    pub(super) page: Vec<u8>,
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
        Self { body: Vec::new(), page: Vec::new(), compressor: Compressor { kind, output: Vec::new(), zstd: None } }
    }
}

/// Compresses pages.
pub(super) struct Compressor {
    pub(super) kind: PageCodec,
    /// zstd's output, sized once to the largest bound seen so it is zeroed only then.
    pub(super) output: Vec<u8>,
    pub(super) zstd: Option<zstd::bulk::Compressor<'static>>,
}

impl Compressor {
    /// Appends `input`, compressed, to `out`.
    pub(super) fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        match self.kind {
            PageCodec::Uncompressed => out.extend_from_slice(input),
            PageCodec::Zstd(level) => {
                let compressor = match &mut self.zstd {
                    Some(compressor) => compressor,
                    None => self.zstd.insert(zstd::bulk::Compressor::new(level.compression_level())?),
                };
                let output = sized(&mut self.output, zstd::zstd_safe::compress_bound(input.len()));
                let written = compressor.compress_to_buffer(input, output)?;
                out.extend_from_slice(&self.output[..written]);
            }
        }
        Ok(())
    }
}

/// `output` grown to at least `bound` bytes (zero-filled only when it grows).
pub(super) fn sized(output: &mut Vec<u8>, bound: usize) -> &mut [u8] {
    if output.len() < bound {
        output.resize(bound, 0);
    }
    output
}
