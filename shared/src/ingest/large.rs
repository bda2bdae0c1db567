//! An object too large to decode whole, read as a sequence of bounded steps: pieces of whole
//! lines of its decompressed text ([`Pieces`]), each decoded a step at a time, so what it holds
//! at once is set by the piece size whatever its lines look like (tiny lines decode to many
//! rows, refused lines to quarantine records, long lines are skipped past the line limit).

use crate::error::Result;
use crate::ingest::decode::{DecodedPiece, Decoding, JsonDecoder, QuarantinedLine};
use crate::ingest::source::{Piece, Pieces};
use crate::lineage::SourceObject;

/// A large object being read: its pieces, and the piece being decoded.
pub struct LargeObject {
    object: SourceObject,
    pieces: Pieces,
    current: Option<(Piece, Decoding)>,
    /// Lines skipped as too long before the current piece, not yet handed out.
    skipped: Vec<QuarantinedLine>,
    /// Bytes of rows and refused lines one step may hold.
    step_bytes: usize,
}

impl LargeObject {
    /// `object`, read from `pieces`, decoded in steps holding about `step_bytes` each.
    pub fn new(object: SourceObject, pieces: Pieces, step_bytes: usize) -> Self {
        Self { object, pieces, current: None, skipped: Vec::new(), step_bytes: step_bytes.max(1) }
    }

    /// Decompressed bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.pieces.bytes()
    }

    /// The next step: rows and refused lines in line order (lines skipped as too long
    /// included), and how many lines it read; `None` once the object is read to its end.
    /// Blocking: decompression and decoding run here.
    pub fn next_step(&mut self, decoder: &JsonDecoder) -> Result<Option<DecodedPiece>> {
        loop {
            if let Some((piece, decoding)) = &mut self.current
                && !decoding.done()
            {
                let mut step = decoder.decode_step(&self.object, &piece.data, decoding, self.step_bytes)?;
                if !self.skipped.is_empty() {
                    let mut quarantined = std::mem::take(&mut self.skipped);
                    step.lines += quarantined.len() as u64;
                    quarantined.append(&mut step.quarantined);
                    step.quarantined = quarantined;
                }
                return Ok(Some(step));
            }
            self.current = None;
            let next = self.pieces.next_piece()?;
            self.skipped.extend(self.pieces.take_overlong());
            let Some(piece) = next else {
                if self.skipped.is_empty() {
                    return Ok(None);
                }
                let quarantined = std::mem::take(&mut self.skipped);
                return Ok(Some(DecodedPiece { lines: quarantined.len() as u64, quarantined, ..Default::default() }));
            };
            let decoding = decoder.start(&self.object, &piece.data, piece.first_line)?;
            self.current = Some((piece, decoding));
        }
    }
}
