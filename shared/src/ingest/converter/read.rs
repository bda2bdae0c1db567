//! The read path: an object downloaded (or streamed for its digest), decompressed, decoded
//! and split by partition on a decode slot, or left to be read in pieces (`large.rs`) when it
//! would hold more than a piece.

use arrow_array::RecordBatch;
use tokio::sync::OwnedSemaphorePermit;

use super::Converter;
use crate::error::{Error, Result};
use crate::ingest::decode::{BYTE_ORDER_MARK, QuarantinedLine, object_outcome};
use crate::ingest::decompress::{ObjectLimits, with_decompressed_up_to, within_lines};
use crate::ingest::source::digest_body;
use crate::lineage::{SourceObject, content_digest};
use crate::partition::{PartitionValues, key_partition, split_by_partition};

/// One object, decoded and split by partition.
pub(super) struct Decoded {
    pub(super) object: SourceObject,
    pub(super) bytes_in: u64,
    pub(super) parts: Vec<(PartitionValues, Vec<RecordBatch>)>,
    pub(super) quarantined: Vec<QuarantinedLine>,
    /// Its decode slot, held until its rows are in the writers.
    pub(super) _slot: OwnedSemaphorePermit,
}

/// What reading one object gave.
pub(super) enum Read {
    /// Decoded whole.
    Decoded(Decoded),
    /// Too large to decode whole, to be read in pieces.
    Large(SourceObject, Stored),
}

/// Where a large object's stored bytes are to be read from.
pub(super) enum Stored {
    /// Held in memory: small stored, large once decompressed.
    Held(bytes::Bytes),
    /// Too large to hold: streamed from the store again.
    Streamed,
}

impl Read {
    /// The object read, named by the version and content actually read.
    pub(super) fn object(&self) -> &SourceObject {
        match self {
            Read::Decoded(decoded) => &decoded.object,
            Read::Large(object, _) => object,
        }
    }
}

/// An object stored larger than this is streamed rather than downloaded whole: it would
/// most likely decompress to more than a piece anyway, and downloads running at once hold
/// no more than a quarter piece each.
pub(crate) fn streamed_above(piece_bytes: usize) -> u64 {
    piece_bytes as u64 / 4
}

impl Converter {
    /// Downloads, decompresses, decodes and partitions one object; one that decompresses to
    /// more than a piece, or decodes to more rows than a piece's worth, is left to be read in
    /// pieces, one such object at a time.
    ///
    /// An object stored larger than a quarter of a piece (one that would most likely not
    /// decompress to a piece anyway) is not downloaded whole: it is streamed once here for its
    /// digest (its identity must be known before any of its rows is staged), and streamed
    /// again, pinned to the same version, when its pieces are read.
    pub(super) async fn read(&self, object: &SourceObject) -> Result<Read> {
        let opened = self.source.open(object).await?;
        crate::faults::crash_on_key(&object.key);
        let (limits, piece_bytes) = (self.options.limits, self.options.piece_bytes);
        if opened.length > streamed_above(piece_bytes) {
            let etag = opened.etag.or_else(|| object.etag.clone());
            let digest = digest_body(object, opened.body).await?;
            let object = SourceObject { etag, digest: Some(digest), ..object.clone() };
            return Ok(Read::Large(object, Stored::Streamed));
        }
        let fetched = opened.whole(object).await?;
        // Lineage and load history name the version actually read, and its content.
        let object = SourceObject {
            etag: fetched.etag.or_else(|| object.etag.clone()),
            digest: Some(content_digest(&fetched.data)),
            ..object.clone()
        };
        let slot = self.decode_slots.clone().acquire_owned().await.expect("the decode slots are never closed");
        let decoder = self.decoder.clone();
        let partition = self.schema.layout.partition.clone();
        let framing = self.framing.of_key(&object.key).clone();
        tokio::task::spawn_blocking(move || {
            let key_values = key_partition(&partition, &object)?;
            // Framed objects count their records, not the raw lines (a record may span many).
            let raw_limits = if framing.is_lines() { limits } else { ObjectLimits { max_lines: u64::MAX, ..limits } };
            let whole = with_decompressed_up_to(&object, &fetched.data, raw_limits, piece_bytes as u64, |data| {
                let bytes_in = data.len() as u64;
                let framed;
                let text = if framing.is_lines() {
                    data.strip_prefix(BYTE_ORDER_MARK).unwrap_or(data)
                } else {
                    framed = framing.to_lines(data).map_err(|reason| Error::Source {
                        uri: object.uri(),
                        reason: framing.refusal(&reason),
                        retryable: false,
                    })?;
                    within_lines(&object, &framed, limits)?;
                    &framed[..]
                };
                let mut decoding = decoder.start(&object, text, 1)?;
                let decoded = decoder.decode_step(&object, text, &mut decoding, piece_bytes)?;
                Ok::<_, Error>(decoding.done().then_some((bytes_in, decoded)))
            })?;
            let Some((bytes_in, decoded)) = whole.transpose()?.flatten() else {
                return Ok(Read::Large(object, Stored::Held(fetched.data)));
            };
            let (batches, quarantined) = object_outcome(&object, bytes_in, decoded)?;
            let parts = split_by_partition(&partition, &key_values, batches, &object)?;
            Ok(Read::Decoded(Decoded { bytes_in, parts, quarantined, object, _slot: slot }))
        })
        .await?
    }
}
