//! The converter's memory model and the runtime it runs on: what it may hold at once, by what
//! holds it, every term set by its settings (`docs/design.md`, "Converter memory").

use super::{ConverterOptions, decode_slots};

/// The async runtime the converter and the command run on: a worker thread per core, and a
/// blocking pool (decompression, decoding, encoding, local file reads) of two threads more
/// than the decode slots, not tokio's 512. Every thread that allocates gets a glibc arena of
/// its own that keeps what it freed, so a pool that grows to a thread per download grows the
/// process with it (the reference workload converted with 16 blocking threads peaks about
/// 45% above the same run with 2); the decode slots bound the work, this bounds the threads.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().max_blocking_threads(blocking_threads()).build()
}

/// Threads of [`runtime`]'s blocking pool: the most decode slots there can be, plus the
/// consumer's one blocking task (an encoding, or a large object's step) and a file read.
pub fn blocking_threads() -> usize {
    decode_slots(usize::MAX) + 2
}

/// What the converter may hold at once, by what holds it, for its settings: the memory model
/// of `docs/design.md`. Every term is set by configuration; none grows with the size of a
/// batch or an object, the length or number of its lines, or how many of them are refused.
/// The process's own footprint (code, runtime, the SDK clients) comes on top.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ConverterMemory {
    /// Objects downloading at once (`concurrency`), and as many waiting for the consumer as
    /// there are decode slots, each stored at most a quarter piece (larger ones are streamed).
    pub downloads: u64,
    /// Objects decompressed and decoded whole at once (the decode slots): each a piece of
    /// text and a piece's worth of rows, plus one batch.
    pub decoding: u64,
    /// Decompression buffers the blocking threads keep for the next object, and their page
    /// codec's scratch (about a page each).
    pub kept_buffers: u64,
    /// The one large object read in steps: its piece, the rest of a line carried to the next
    /// piece, a step's rows plus one batch, and the zstd window.
    pub large_object: u64,
    /// The open fragment writers together, what one write adds before their total is checked
    /// again (a step's rows at most), and the one fragment finishing (its last row group
    /// copied into the file) or uploading: a fragment finishes only once the one before it
    /// has uploaded.
    pub fragments: u64,
    /// A quarantine record being written: a part buffered, a part uploading, a block.
    pub quarantine: u64,
}

/// A blocking thread's page codec scratch: a page before and after compression, its levels
/// and values, with room for a page that outgrew its limit by a step of rows.
const CODEC_SCRATCH_BYTES: u64 = 1 << 20;

/// The zstd window a decompressing stream holds: 8 MiB for objects written at levels up to
/// 19 without long-distance matching (zstd's default decoder limit is 128 MiB).
pub const ZSTD_WINDOW_BYTES: u64 = 8 << 20;

impl ConverterMemory {
    /// The function's own footprint beside what the model counts: code, the async runtime,
    /// the SDK clients, the schema (measured: `make bench`'s baseline RSS).
    pub const FOOTPRINT_BYTES: u64 = 48 << 20;

    /// The model for `options`, with `decode_slots` objects decoded at once
    /// ([`decode_slots`]).
    pub fn of(options: &ConverterOptions, decode_slots: usize) -> Self {
        let piece = options.piece_bytes as u64;
        let batch = crate::ingest::json::BATCH_TEXT_BYTES as u64 + options.max_line_bytes as u64;
        let slots = decode_slots as u64;
        Self {
            downloads: (options.concurrency as u64 + slots) * (piece / 4),
            decoding: slots * (2 * piece + batch),
            kept_buffers: (slots + 2) * (crate::ingest::decompress::KEPT_BUFFER_BYTES as u64 + CODEC_SCRATCH_BYTES),
            large_object: 2 * piece + options.max_line_bytes as u64 + batch + ZSTD_WINDOW_BYTES,
            fragments: 2 * options.fragment_bytes as u64 + piece,
            quarantine: crate::ingest::quarantine::RECORD_HELD_BYTES,
        }
    }

    /// Everything together.
    pub fn total(&self) -> u64 {
        self.downloads + self.decoding + self.kept_buffers + self.large_object + self.fragments + self.quarantine
    }
}
