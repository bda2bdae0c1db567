//! The large-object path: an object too large to decode whole, read as a sequence of bounded
//! steps: pieces of whole lines of its decompressed text ([`Pieces`]), each decoded a step at
//! a time, so what it holds at once is set by the piece size whatever its lines look like
//! (tiny lines decode to many rows, refused lines to quarantine records, long lines are
//! skipped past the line limit). Each step's rows go into the invocation's writers as they
//! come and its refused lines into the object's quarantine record, so a fragment may roll
//! inside the object; how the object ended is a [`LargeOutcome`].

use arrow_array::RecordBatch;

use super::Converter;
use super::read::Stored;
use super::staging::Staging;
use crate::error::{Error, Result};
use crate::ingest::decode::{DecodedPiece, Decoding, JsonDecoder, QuarantinedLine, object_outcome};
use crate::ingest::decompress::{Piece, Pieces};
use crate::ingest::quarantine::RecordWriter;
use crate::ingest::source::BlockingBody;
use crate::lineage::{FragmentSource, SourceObject};
use crate::partition::{KeyValues, PartitionValues, key_partition, split_by_partition};

/// A large object being read: its pieces, and the piece being decoded.
pub(super) struct LargeObject {
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
    pub(super) fn new(object: SourceObject, pieces: Pieces, step_bytes: usize) -> Self {
        Self { object, pieces, current: None, skipped: Vec::new(), step_bytes: step_bytes.max(1) }
    }

    /// Decompressed bytes read so far.
    pub(super) fn bytes(&self) -> u64 {
        self.pieces.bytes()
    }

    /// The next step: rows and refused lines in line order (lines skipped as too long
    /// included), and how many lines it read; `None` once the object is read to its end.
    /// Blocking: decompression and decoding run here.
    pub(super) fn next_step(&mut self, decoder: &JsonDecoder) -> Result<Option<DecodedPiece>> {
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
            if let Some((piece, _)) = self.current.take() {
                self.pieces.recycle(piece);
            }
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

/// How reading a large object ended, when the batch itself did not fail.
pub(super) enum LargeOutcome {
    /// Read to its end: its rows are in the writers, its refused lines in its record.
    Staged,
    /// The object's own failure: its messages fail, and what it staged is marked failed so
    /// that no compactor commits it.
    Failed(Error),
}

/// What a large object's steps have read so far.
#[derive(Default)]
struct StepsRead {
    lines: u64,
    rows: u64,
    /// The partition of its first rows, once it has any.
    touched: Option<PartitionValues>,
}

/// A step's rows split by partition, its refused lines, and the lines it read.
type Step = (Vec<(PartitionValues, Vec<RecordBatch>)>, Vec<QuarantinedLine>, u64);

impl Converter {
    /// Opens a large object for reading in pieces.
    async fn open_large(&self, object: &SourceObject, stored: Stored) -> Result<LargeObject> {
        let options = self.options;
        let (limits, piece_bytes, max_line_bytes) = (options.limits, options.piece_bytes, options.max_line_bytes);
        let pieces = match stored {
            Stored::Held(data) => Pieces::new(object.clone(), data, limits, piece_bytes, max_line_bytes)?
                .framed(self.framing.of_key(&object.key)),
            // The version whose digest was taken: by version id, or by its ETag (`If-Match`).
            Stored::Streamed => {
                let opened = self.source.open(object).await?;
                let body = BlockingBody::new(opened.body);
                Pieces::from_reader(object.clone(), body, limits, piece_bytes, max_line_bytes)?
                    .framed(self.framing.of_key(&object.key))
            }
        };
        Ok(LargeObject::new(object.clone(), pieces, piece_bytes))
    }
}

impl Staging<'_> {
    /// Reads a large object step by step into the writers (a fragment may roll inside it),
    /// its refused lines streaming into its quarantine record, completed once it is read to
    /// its end and aborted otherwise. An error fails the whole batch.
    pub(super) async fn stage_large(
        &mut self,
        object: SourceObject,
        stored: Stored,
        stop: Option<tokio::time::Instant>,
    ) -> Result<LargeOutcome> {
        let mut record = self.converter.quarantine.record(&object);
        let staged = self.stage_steps(&object, stored, stop, &mut record).await;
        let quarantined = record.lines();
        match staged {
            Ok(LargeOutcome::Staged) => {
                self.report.quarantined += quarantined;
                if let Some(path) = record.finish().await? {
                    tracing::warn!(object = %object.uri(), lines = quarantined, quarantine = %path, "quarantined lines");
                }
                Ok(LargeOutcome::Staged)
            }
            failed => {
                record.abort().await;
                failed
            }
        }
    }

    /// [`Staging::stage_large`], all but completing or aborting the record.
    async fn stage_steps(
        &mut self,
        object: &SourceObject,
        stored: Stored,
        stop: Option<tokio::time::Instant>,
        record: &mut RecordWriter,
    ) -> Result<LargeOutcome> {
        let mut large = match self.converter.open_large(object, stored).await {
            Ok(large) => large,
            Err(err) => return Ok(LargeOutcome::Failed(err)),
        };
        let key_values = match key_partition(&self.converter.schema.layout.partition, object) {
            Ok(value) => value,
            Err(err) => return Ok(LargeOutcome::Failed(err)),
        };
        let mut read = StepsRead::default();
        let failure = loop {
            if stop.is_some_and(|stop| tokio::time::Instant::now() >= stop) {
                break Some(cut_off_by_the_deadline(object));
            }
            let next;
            (large, next) = self.next_step(large, key_values.clone()).await?;
            match next {
                Err(err) => break Some(err),
                Ok(None) => break None,
                Ok(Some(step)) => self.stage_step(object, step, record, &mut read).await?,
            }
        };
        self.finish_large(object, &large, failure, read, record).await
    }

    /// Decodes the next step of `large` on the blocking pool, split by partition.
    async fn next_step(
        &self,
        mut large: LargeObject,
        key_values: KeyValues,
    ) -> Result<(LargeObject, Result<Option<Step>>)> {
        let (decoder, partition) = (self.converter.decoder.clone(), self.converter.schema.layout.partition.clone());
        let stepped = tokio::task::spawn_blocking(move || {
            let next = large.next_step(&decoder).and_then(|step| {
                step.map(|step| {
                    let parts = split_by_partition(&partition, &key_values, step.batches, &large.object)?;
                    Ok((parts, step.quarantined, step.lines))
                })
                .transpose()
            });
            (large, next)
        })
        .await?;
        Ok(stepped)
    }

    /// Quarantines a step's refused lines and adds its rows to the writers.
    async fn stage_step(
        &mut self,
        object: &SourceObject,
        (parts, quarantined, lines): Step,
        record: &mut RecordWriter,
        read: &mut StepsRead,
    ) -> Result<()> {
        read.lines += lines;
        record.write(&quarantined).await?;
        for (partition, batches) in parts {
            let count: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
            read.rows += count;
            read.touched.get_or_insert_with(|| partition.clone());
            let source = FragmentSource::new(object, count, None);
            self.write_rows(partition, source, batches).await?;
        }
        crate::memory::release_free_memory();
        Ok(())
    }

    /// Records how the object ended: its total rows in an open writer once it is read to its
    /// end, or, when it failed, an entry marking what it staged as failed.
    async fn finish_large(
        &mut self,
        object: &SourceObject,
        large: &LargeObject,
        failure: Option<Error>,
        read: StepsRead,
        record: &mut RecordWriter,
    ) -> Result<LargeOutcome> {
        let outcome = match failure {
            Some(err) => Err(err),
            None => object_outcome(object, large.bytes(), DecodedPiece { lines: read.lines, ..Default::default() }),
        };
        let empty = match outcome {
            Ok((_, empty)) => empty,
            Err(err) => {
                if let Some(partition) = read.touched {
                    let void = FragmentSource { failed: true, ..FragmentSource::new(object, 0, None) };
                    self.note_source(partition, void)?;
                }
                return Ok(LargeOutcome::Failed(err));
            }
        };
        // Its total, in a fragment not yet staged, says the copy is complete once sealed; an
        // object whose every line was refused is recorded as a source of none (see `stage`).
        if read.touched.is_some() || record.lines() > 0 {
            let partition =
                read.touched.unwrap_or_else(|| PartitionValues::nulls(&self.converter.schema.layout.partition));
            self.note_source(partition, FragmentSource::new(object, 0, Some(read.rows)))?;
        }
        record.write(&empty).await?;
        self.report.objects += 1;
        self.report.bytes_in += large.bytes();
        self.report.rows += read.rows;
        Ok(LargeOutcome::Staged)
    }
}

/// The failure of a large object still being read at the invocation's stop: worth retrying.
fn cut_off_by_the_deadline(object: &SourceObject) -> Error {
    Error::Source {
        uri: object.uri(),
        reason: "not read to its end before the invocation's deadline (less INLET_DEADLINE_MARGIN_SECONDS): \
                 a longer converter timeout ingests it"
            .into(),
        retryable: true,
    }
}
