//! Decompressing source objects by extension: whole, up to a limit, or in pieces of whole lines.

use std::io::Read;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::framing::{Framing, FramingError, InputTooLarge};
use crate::ingest::decode::{BYTE_ORDER_MARK, QUARANTINED_RAW_LIMIT, QuarantinedLine};
use crate::ingest::source::{BodyFault, body_failed};
use crate::lineage::SourceObject;

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
pub(crate) const KEPT_BUFFER_BYTES: usize = 4 * 1024 * 1024;

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
    match with_decompressed_up_to(object, data, limits, u64::MAX, read)? {
        Some(read) => Ok(read),
        None => Err(too_large(object, limits)),
    }
}

/// [`with_decompressed`], except that an object within `limits` but larger than `whole_bytes`
/// is not decompressed whole: `Ok(None)` says to read it in [`Pieces`] instead.
pub fn with_decompressed_up_to<T>(
    object: &SourceObject,
    data: &Bytes,
    limits: ObjectLimits,
    whole_bytes: u64,
    read: impl FnOnce(&[u8]) -> T,
) -> Result<Option<T>> {
    let cap = limits.max_bytes.min(whole_bytes);
    let over = || if cap < limits.max_bytes { Ok(None) } else { Err(too_large(object, limits)) };
    let compression = Compression::from_key(&object.key);
    if compression == Compression::None {
        if data.len() as u64 > cap {
            return over();
        }
        within_lines(object, data, limits)?;
        return Ok(Some(read(data)));
    }
    // Taken out, not borrowed: a nested call on this thread gets a fresh one instead of a panic.
    let mut state = DECOMPRESSOR
        .take()
        .unwrap_or_else(|| Box::new(Decompressor { zstd: zstd::zstd_safe::DCtx::create(), out: Vec::new() }));
    state.out.clear();
    let decompressed = match compression {
        Compression::Zstd => zstd_into(&mut state.zstd, data, &mut state.out, cap),
        Compression::Gzip => gzip_into(data, &mut state.out, cap),
        Compression::None => unreachable!("uncompressed objects returned above"),
    };
    let codec = if compression == Compression::Zstd { "zstd" } else { "gzip" };
    let result = match decompressed {
        Ok(()) => within_lines(object, &state.out, limits).map(|()| Some(read(&state.out))),
        Err(Failure::TooLarge) => over(),
        Err(Failure::Corrupt(reason)) => Err(corrupt(object, codec, reason)),
    };
    if state.out.capacity() <= KEPT_BUFFER_BYTES {
        DECOMPRESSOR.set(Some(state));
    }
    result
}

fn refused(object: &SourceObject, reason: String) -> Error {
    Error::Source { uri: object.uri(), reason, retryable: false }
}

fn corrupt(object: &SourceObject, codec: &str, reason: String) -> Error {
    refused(object, format!("{codec} decompression failed: {reason}"))
}

fn too_large(object: &SourceObject, limits: ObjectLimits) -> Error {
    refused(
        object,
        format!(
            "decompresses to more than INLET_MAX_OBJECT_BYTES ({} bytes); raise the limit to ingest it",
            limits.max_bytes
        ),
    )
}

fn too_many_lines(object: &SourceObject, lines: u64, limits: ObjectLimits) -> Error {
    refused(
        object,
        format!(
            "holds {lines} lines, more than INLET_MAX_OBJECT_LINES ({}); raise the limit to ingest it",
            limits.max_lines
        ),
    )
}

/// Counts the lines of a whole object against the limit (a last line without its newline
/// is a line too).
pub fn within_lines(object: &SourceObject, data: &[u8], limits: ObjectLimits) -> Result<()> {
    if limits.max_lines == u64::MAX {
        return Ok(());
    }
    let lines = memchr::memchr_iter(b'\n', data).count() as u64 + u64::from(data.last().is_some_and(|b| *b != b'\n'));
    if lines > limits.max_lines { Err(too_many_lines(object, lines, limits)) } else { Ok(()) }
}

/// An object read piece by piece: each piece whole lines of its decompressed bytes, so an
/// object of any size is read in memory set by the piece size (and the longest line kept,
/// `max_line_bytes`); a longer line is skipped to its end and reported on its own.
pub struct Pieces {
    object: SourceObject,
    reader: Box<dyn Read + Send>,
    codec: &'static str,
    buffer: Vec<u8>,
    /// A handed-out piece's buffer, given back once decoded ([`Pieces::recycle`]): the next
    /// piece is read into it instead of into fresh memory the kernel must map and zero.
    spare: Vec<u8>,
    piece_bytes: usize,
    max_line_bytes: usize,
    limits: ObjectLimits,
    /// Decompressed bytes read so far.
    bytes: u64,
    /// Lines handed out so far (or skipped as too long).
    lines: u64,
    ended: bool,
    overlong: Vec<QuarantinedLine>,
    /// How its records are laid out (lines, unless [`Pieces::framed`] says otherwise).
    framing: Framing,
}

/// One piece: whole lines, the first of them line `first_line` of the object.
pub struct Piece {
    /// The lines.
    pub data: Vec<u8>,
    /// Number of its first line in the object.
    pub first_line: u64,
}

impl Pieces {
    /// The decompressed lines of `object` (stored bytes `data`), in pieces of about `piece_bytes`.
    pub fn new(
        object: SourceObject,
        data: Bytes,
        limits: ObjectLimits,
        piece_bytes: usize,
        max_line_bytes: usize,
    ) -> Result<Self> {
        Self::from_reader(object, bytes::Buf::reader(data), limits, piece_bytes, max_line_bytes)
    }

    /// [`Pieces::new`], reading the stored bytes from `compressed` as they are needed (a
    /// [`crate::ingest::source::BlockingBody`] streams them from the store), so not even the compressed object is
    /// held whole.
    pub fn from_reader(
        object: SourceObject,
        compressed: impl Read + Send + 'static,
        limits: ObjectLimits,
        piece_bytes: usize,
        max_line_bytes: usize,
    ) -> Result<Self> {
        let (reader, codec): (Box<dyn Read + Send>, _) = match Compression::from_key(&object.key) {
            Compression::Zstd => (
                Box::new(
                    zstd::stream::read::Decoder::new(compressed)
                        .map_err(|e| corrupt(&object, "zstd", e.to_string()))?,
                ),
                "zstd",
            ),
            Compression::Gzip => (Box::new(flate2::read::MultiGzDecoder::new(compressed)), "gzip"),
            Compression::None => (Box::new(compressed), "read"),
        };
        Ok(Self {
            object,
            reader,
            codec,
            buffer: Vec::new(),
            spare: Vec::new(),
            piece_bytes: piece_bytes.max(1),
            max_line_bytes: max_line_bytes.max(1),
            limits,
            bytes: 0,
            lines: 0,
            ended: false,
            overlong: Vec::new(),
            framing: Framing::Lines,
        })
    }

    /// Reads the object's records as lines when `framing` is not one record per line.
    pub fn framed(mut self, framing: &Framing) -> Self {
        if !framing.is_lines() {
            let reader = std::mem::replace(&mut self.reader, Box::new(std::io::empty()));
            self.reader = Box::new(framing.lines_of(reader, self.limits.max_bytes));
            self.framing = framing.clone();
        }
        self
    }

    /// Decompressed bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Lines longer than `max_line_bytes` skipped since the last call, as quarantine records.
    pub fn take_overlong(&mut self) -> Vec<QuarantinedLine> {
        std::mem::take(&mut self.overlong)
    }

    /// The next piece, or `None` once the object is read.
    pub fn next_piece(&mut self) -> Result<Option<Piece>> {
        loop {
            if !self.ended && self.buffer.len() < self.piece_bytes {
                let want = self.piece_bytes - self.buffer.len();
                self.read_more(want)?;
                continue;
            }
            match memchr::memrchr(b'\n', &self.buffer) {
                Some(end) => {
                    let rest = self.buffer.split_off(end + 1);
                    let data = std::mem::replace(&mut self.buffer, rest);
                    return self.hand_out(data).map(Some);
                }
                None if self.ended && self.buffer.is_empty() => return Ok(None),
                None if self.ended => {
                    let data = std::mem::take(&mut self.buffer);
                    return self.hand_out(data).map(Some);
                }
                None if self.buffer.len() > self.max_line_bytes => {
                    self.skip_overlong_line()?;
                    // Skipped lines are handed out (by `take_overlong`) before they add up
                    // to a piece's worth of kept text: an empty piece lets the reader take them.
                    if self.overlong.len() * QUARANTINED_RAW_LIMIT >= self.piece_bytes {
                        return Ok(Some(Piece { data: Vec::new(), first_line: self.lines + 1 }));
                    }
                }
                None => self.read_more(self.piece_bytes.min(1 << 20))?,
            }
        }
    }

    /// Counts a piece's lines against the limit (the last pieces are read after the reader
    /// ended, so no later read would count them) and hands it out.
    fn hand_out(&mut self, mut data: Vec<u8>) -> Result<Piece> {
        let first_line = self.lines + 1;
        if first_line == 1 && data.starts_with(BYTE_ORDER_MARK) {
            data.drain(..BYTE_ORDER_MARK.len());
        }
        self.lines +=
            memchr::memchr_iter(b'\n', &data).count() as u64 + u64::from(data.last().is_some_and(|b| *b != b'\n'));
        if self.lines > self.limits.max_lines {
            return Err(too_many_lines(&self.object, self.lines, self.limits));
        }
        Ok(Piece { data, first_line })
    }

    /// Takes back the buffer of a piece once it is decoded, to read a later piece into.
    pub fn recycle(&mut self, piece: Piece) {
        if piece.data.capacity() > self.spare.capacity() {
            self.spare = piece.data;
        }
    }

    /// Reads `want` more decompressed bytes onto the buffer, or what is left of the object.
    fn read_more(&mut self, want: usize) -> Result<()> {
        let start = self.buffer.len();
        let needed = start + want.max(1);
        if self.buffer.capacity() < needed && self.spare.capacity() >= needed {
            // The carried start of a line moves into the recycled buffer.
            let mut spare = std::mem::take(&mut self.spare);
            spare.clear();
            spare.extend_from_slice(&self.buffer);
            self.buffer = spare;
        }
        // Zeroed once and filled by as many reads as it takes (decoders return a block at a time).
        self.buffer.resize(start + want.max(1), 0);
        let mut filled = start;
        while filled < self.buffer.len() {
            match self.reader.read(&mut self.buffer[filled..]) {
                Ok(0) => {
                    self.ended = true;
                    break;
                }
                Ok(read) => filled += read,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => {
                    self.buffer.truncate(start);
                    if let Some(fault) = err.get_ref().and_then(|inner| inner.downcast_ref::<BodyFault>()) {
                        return Err(body_failed(&self.object, fault));
                    }
                    if err.get_ref().is_some_and(|inner| inner.is::<InputTooLarge>()) {
                        return Err(too_large(&self.object, self.limits));
                    }
                    if let Some(framing) = err.get_ref().and_then(|inner| inner.downcast_ref::<FramingError>()) {
                        return Err(refused(&self.object, self.framing.refusal(&framing.0)));
                    }
                    let reason = if err.kind() == std::io::ErrorKind::UnexpectedEof {
                        "the input ends inside a frame (truncated object)".to_string()
                    } else {
                        err.to_string()
                    };
                    return Err(corrupt(&self.object, self.codec, reason));
                }
            }
        }
        self.buffer.truncate(filled);
        self.bytes += (filled - start) as u64;
        if self.bytes > self.limits.max_bytes {
            return Err(too_large(&self.object, self.limits));
        }
        if self.lines > self.limits.max_lines {
            return Err(too_many_lines(&self.object, self.lines, self.limits));
        }
        Ok(())
    }

    /// The buffer holds the start of a line longer than allowed: keep its beginning, read on
    /// to its end, and report it as one refused line.
    fn skip_overlong_line(&mut self) -> Result<()> {
        let raw = String::from_utf8_lossy(&self.buffer[..self.buffer.len().min(QUARANTINED_RAW_LIMIT)]).into_owned();
        let mut length = self.buffer.len();
        self.buffer.clear();
        loop {
            self.read_more(self.piece_bytes.min(1 << 20))?;
            match memchr::memchr(b'\n', &self.buffer) {
                Some(end) => {
                    length += end;
                    self.buffer.drain(..=end);
                    break;
                }
                None => {
                    length += self.buffer.len();
                    self.buffer.clear();
                    if self.ended {
                        break;
                    }
                }
            }
        }
        self.lines += 1;
        if self.lines > self.limits.max_lines {
            return Err(too_many_lines(&self.object, self.lines, self.limits));
        }
        self.overlong.push(QuarantinedLine {
            source: self.object.uri(),
            line: self.lines,
            error: format!("line is {length} bytes, over the limit of {} (INLET_MAX_LINE_BYTES)", self.max_line_bytes),
            raw,
        });
        Ok(())
    }
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
        // In pieces too, the lines of the last pieces (read after the reader ended) included.
        for piece_bytes in [1, 4, 1 << 10] {
            let read_all = |data: &[u8]| -> Result<usize> {
                let mut pieces = Pieces::new(object("many.json"), data.to_vec().into(), lines, piece_bytes, 64)?;
                let mut read = 0;
                while let Some(piece) = pieces.next_piece()? {
                    read += piece.data.len();
                }
                Ok(read)
            };
            let err = read_all(b"1\n2\n3\n4").unwrap_err();
            assert!(err.to_string().contains("more than INLET_MAX_OBJECT_LINES (3)"), "{piece_bytes}: {err}");
            assert_eq!(read_all(b"1\n2\n3\n").unwrap(), 6, "{piece_bytes}");
            // A line too long to keep, last in the object, counts as well.
            let long_last = [&b"1\n2\n3\n"[..], &[b'x'; 100]].concat();
            let err = read_all(&long_last).unwrap_err();
            assert!(err.to_string().contains("more than INLET_MAX_OBJECT_LINES (3)"), "{piece_bytes}: {err}");
        }
    }

    /// Every piece of `data` read as `key`, with pieces of `piece_bytes`.
    fn pieces(
        key: &str,
        data: Vec<u8>,
        piece_bytes: usize,
        max_line_bytes: usize,
    ) -> Result<(Vec<Piece>, Vec<QuarantinedLine>)> {
        let mut pieces = Pieces::new(object(key), data.into(), ObjectLimits::NONE, piece_bytes, max_line_bytes)?;
        let (mut read, mut overlong) = (Vec::new(), Vec::new());
        while let Some(piece) = pieces.next_piece()? {
            read.push(piece);
            overlong.extend(pieces.take_overlong());
        }
        overlong.extend(pieces.take_overlong());
        Ok((read, overlong))
    }

    #[test]
    fn pieces_are_whole_lines_numbered_as_in_the_object() {
        let text: Vec<u8> = (0..5000).flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes()).collect();
        let mut with_mark = BYTE_ORDER_MARK.to_vec();
        with_mark.extend_from_slice(&text);
        for (key, stored) in
            [("p.json.zst", zstd::bulk::compress(&with_mark, 3).unwrap()), ("p.json", with_mark.clone())]
        {
            let (read, overlong) = pieces(key, stored, 4096, 1 << 20).unwrap();
            assert!(read.len() > 10 && overlong.is_empty());
            assert!(read.iter().all(|piece| piece.data.ends_with(b"\n") && piece.data.len() <= 4096 + 4096));
            let joined: Vec<u8> = read.iter().flat_map(|piece| piece.data.clone()).collect();
            assert_eq!(joined, text, "every byte once, the byte-order mark dropped");
            let mut next = 1;
            for piece in &read {
                assert_eq!(piece.first_line, next);
                next += memchr::memchr_iter(b'\n', &piece.data).count() as u64;
            }
        }
        // A last line without its newline is a piece of its own ending.
        let (read, _) = pieces("q.json", b"{}\n{}".to_vec(), 1, 1 << 20).unwrap();
        assert_eq!(
            read.iter().map(|p| (p.data.as_slice(), p.first_line)).collect::<Vec<_>>(),
            vec![(&b"{}\n"[..], 1), (&b"{}"[..], 2)]
        );
    }

    #[test]
    fn pieces_read_into_recycled_buffers_are_the_same_pieces() {
        let mut text = Vec::new();
        for i in 0..5000 {
            text.extend_from_slice(format!("{{\"a\":{i},\"pad\":\"{}\"}}\n", "x".repeat(i % 97)).as_bytes());
        }
        let stored = zstd::bulk::compress(&text, 3).unwrap();
        let read = |recycling: bool| {
            let mut read =
                Pieces::new(object("r.json.zst"), stored.clone().into(), ObjectLimits::NONE, 16 << 10, 4096).unwrap();
            let (mut pieces, mut reused) = (Vec::new(), 0);
            let mut given_back: Option<*const u8> = None;
            while let Some(piece) = read.next_piece().unwrap() {
                reused += usize::from(given_back == Some(piece.data.as_ptr()));
                pieces.push((piece.data.clone(), piece.first_line));
                if recycling {
                    given_back = Some(piece.data.as_ptr());
                    read.recycle(piece);
                }
            }
            (pieces, reused)
        };
        let (plain, _) = read(false);
        let (recycled, reused) = read(true);
        assert!(plain.len() > 10, "{} pieces", plain.len());
        assert_eq!(recycled, plain, "the same pieces, numbered the same");
        assert!(reused * 2 > plain.len(), "{reused} of {} pieces read into the buffer given back", plain.len());
        assert_eq!(plain.iter().flat_map(|(data, _)| data.clone()).collect::<Vec<_>>(), text);
    }

    #[test]
    fn a_line_too_long_to_keep_is_skipped_and_reported_in_its_place() {
        let mut text = b"{\"a\":1}\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', 100_000));
        text.extend_from_slice(b"\n{\"a\":3}\n");
        let (read, overlong) = pieces("long.json.zst", zstd::bulk::compress(&text, 3).unwrap(), 1024, 10_000).unwrap();
        let joined: Vec<u8> = read.iter().flat_map(|piece| piece.data.clone()).collect();
        assert_eq!(joined, b"{\"a\":1}\n{\"a\":3}\n");
        assert_eq!(read.last().unwrap().first_line, 3, "the skipped line keeps its number");
        assert_eq!(overlong.len(), 1);
        assert_eq!(overlong[0].line, 2);
        assert_eq!(overlong[0].error, "line is 100000 bytes, over the limit of 10000 (INLET_MAX_LINE_BYTES)");
        assert!(overlong[0].raw.len() <= QUARANTINED_RAW_LIMIT);
    }

    #[test]
    fn lines_skipped_as_too_long_are_handed_out_before_they_add_up_to_a_piece() {
        let mut text = Vec::new();
        for _ in 0..40 {
            text.extend(std::iter::repeat_n(b'x', 200_000));
            text.push(b'\n');
        }
        text.extend_from_slice(b"{\"a\":41}\n");
        let stored = zstd::bulk::compress(&text, 3).unwrap();
        // Lines longer than a piece: skipped by the reader, two pieces' worth of kept text each.
        let mut read =
            Pieces::new(object("long.json.zst"), stored.into(), ObjectLimits::NONE, 128 << 10, 100_000).unwrap();
        let (mut skipped, mut data) = (Vec::new(), Vec::new());
        while let Some(piece) = read.next_piece().unwrap() {
            let taken = read.take_overlong();
            assert!(taken.len() <= 2, "{} skipped lines held at once (a piece is 2 lines' kept text)", taken.len());
            skipped.extend(taken.into_iter().map(|line| line.line));
            data.extend(piece.data);
        }
        skipped.extend(read.take_overlong().into_iter().map(|line| line.line));
        assert_eq!(skipped, (1..=40).collect::<Vec<_>>());
        assert_eq!(data, b"{\"a\":41}\n");
    }

    #[test]
    fn pieces_stop_at_the_limits_and_at_damage() {
        let text: Vec<u8> = b"{\"a\":1}\n".iter().copied().cycle().take(1 << 20).collect();
        let limits = ObjectLimits { max_bytes: 100_000, max_lines: u64::MAX };
        let mut read =
            Pieces::new(object("b.json.zst"), zstd::bulk::compress(&text, 3).unwrap().into(), limits, 4096, 1 << 20)
                .unwrap();
        let err = std::iter::from_fn(|| read.next_piece().transpose()).find_map(Result::err).unwrap();
        assert!(err.to_string().contains("more than INLET_MAX_OBJECT_BYTES (100000 bytes)"), "{err}");
        assert!(read.bytes() <= 100_000 + 4096);
        let zst = zstd::bulk::compress(&text, 3).unwrap();
        let err = pieces("t.json.zst", zst[..zst.len() / 2].to_vec(), 4096, 1 << 20).err().unwrap();
        assert!(err.to_string().contains("t.json.zst: zstd decompression failed"), "{err}");
        assert!(!err.is_retryable());
    }

    /// Reads `data`, then fails as a dropped connection does.
    struct Dropped(std::io::Cursor<Vec<u8>>);

    impl Read for Dropped {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.read(buf)? {
                0 => Err(std::io::Error::other(BodyFault(std::io::ErrorKind::ConnectionReset.into()))),
                read => Ok(read),
            }
        }
    }

    #[test]
    fn a_stream_that_breaks_is_worth_retrying_and_damage_is_not() {
        let text: Vec<u8> = (0..20_000u64).flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes()).collect();
        let zst = zstd::bulk::compress(&text, 3).unwrap();
        let cut = zst[..zst.len() / 2].to_vec();
        let read_all = |reader: Box<dyn Read + Send>| {
            let mut pieces = Pieces::from_reader(object("s.json.zst"), reader, ObjectLimits::NONE, 4096, 1 << 20)?;
            while pieces.next_piece()?.is_some() {}
            Ok::<_, Error>(())
        };
        let err = read_all(Box::new(Dropped(std::io::Cursor::new(cut.clone())))).unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert!(err.to_string().contains("s3://b/s.json.zst: reading the object body failed"), "{err}");
        let err = read_all(Box::new(std::io::Cursor::new(cut))).unwrap_err();
        assert!(!err.is_retryable() && err.to_string().contains("zstd decompression failed"), "{err}");
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
