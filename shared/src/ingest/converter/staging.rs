//! What one invocation stages, owned in one place: a fragment writer per partition, the
//! upload in flight, the sources already taken and the report. The converter hands it decoded
//! objects (and a large object's steps, `large.rs`); it decides when a fragment is full, which
//! writer an entry goes to, and when a fragment may be uploaded.

use std::collections::{BTreeMap, HashSet};

use arrow_array::RecordBatch;

use super::Converter;
use super::read::Decoded;
use super::report::ConversionReport;
use crate::error::Result;
use crate::faults::crash_point;
use crate::ingest::decode::QuarantinedLine;
use crate::lineage::{FragmentSource, SourceId, SourceObject};
use crate::partition::PartitionValues;
use crate::stage::fragment::FragmentWriter;

/// One invocation's staging: its writers, its upload and its report.
pub(super) struct Staging<'c> {
    pub(super) converter: &'c Converter,
    writers: OpenWriters,
    uploads: Uploads,
    /// Sources taken in this batch: two versions of one key with the same bytes (a re-upload)
    /// are one source, staged once.
    sources: HashSet<SourceId>,
    pub(super) report: ConversionReport,
}

impl<'c> Staging<'c> {
    /// Staging for `converter`, reporting into `report`.
    pub(super) fn new(converter: &'c Converter, report: ConversionReport) -> Self {
        Self {
            converter,
            writers: OpenWriters::default(),
            uploads: Uploads::default(),
            sources: HashSet::new(),
            report,
        }
    }

    /// Whether `object` is a source not yet taken in this batch (and takes it).
    pub(super) fn takes(&mut self, object: &SourceObject) -> bool {
        self.sources.insert(object.id())
    }

    /// Quarantines an object's refused lines and adds its rows to the writers of their partitions.
    pub(super) async fn stage(&mut self, decoded: Decoded) -> Result<()> {
        // The slot is held (by `_slot`) until the rows are in the writers.
        let Decoded { object, bytes_in, parts, quarantined, _slot } = decoded;
        let total_rows: u64 = parts.iter().flat_map(|(_, batches)| batches).map(|b| b.num_rows() as u64).sum();
        self.report.objects += 1;
        self.report.bytes_in += bytes_in;
        let refused = refuses_lines(&quarantined);
        self.quarantine_lines(&object, quarantined).await?;
        if total_rows == 0 {
            // Every line refused: a source of no rows, committed like any other, so that the
            // load history knows the version was ingested (into its quarantine record) and a
            // later conversion of it (looser settings, a new release) is a duplicate, not rows
            // beside the record. An empty object has no line to ingest twice.
            if refused {
                self.note_source(
                    PartitionValues::nulls(&self.converter.schema.layout.partition),
                    FragmentSource::new(&object, 0, Some(0)),
                )?;
            }
            return Ok(());
        }
        for (partition, batches) in parts {
            let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
            self.report.rows += rows;
            let source = FragmentSource::new(&object, rows, Some(total_rows));
            self.write_rows(partition, source, batches).await?;
        }
        Ok(())
    }

    /// Records an object's refused lines, if any.
    async fn quarantine_lines(&mut self, object: &SourceObject, quarantined: Vec<QuarantinedLine>) -> Result<()> {
        self.report.quarantined += quarantined.len() as u64;
        if !quarantined.is_empty() {
            // Named by object version: a retried batch rewrites the record instead of adding one.
            let path = self.converter.quarantine.put(object, &quarantined).await?;
            tracing::warn!(object = %object.uri(), lines = quarantined.len(), quarantine = %path, "quarantined lines");
        }
        Ok(())
    }

    /// Adds rows of `source` to the writer of `partition`, staging the fullest writers once
    /// they hold a fragment's worth together.
    pub(super) async fn write_rows(
        &mut self,
        partition: PartitionValues,
        source: FragmentSource,
        batches: Vec<RecordBatch>,
    ) -> Result<()> {
        let mut writer = self.writer_for(&partition)?;
        let writer = tokio::task::spawn_blocking(move || writer.write(source, &batches).map(|()| writer)).await??;
        self.writers.put(partition, writer);
        // The open writers together hold at most a fragment's worth: however many partitions
        // an object's rows spread over, memory holds one fragment being written.
        while self.writers.bytes >= self.converter.options.fragment_bytes {
            let Some((fullest, writer)) = self.writers.take_fullest() else { break };
            self.flush(fullest, writer).await?;
        }
        Ok(())
    }

    /// Adds an entry with no rows for `source` to an open writer that lists it, else to any
    /// open writer, else to a new one for `partition`.
    pub(super) fn note_source(&mut self, partition: PartitionValues, source: FragmentSource) -> Result<()> {
        let open = &self.writers;
        let listing = open.listing(&source.id).or_else(|| open.by_partition.keys().next()).cloned();
        let partition = listing.unwrap_or(partition);
        let mut writer = self.writer_for(&partition)?;
        let written = writer.write(source, &[]);
        self.writers.put(partition, writer);
        written
    }

    /// The open writer of `partition`, taken out, or a new one.
    fn writer_for(&mut self, partition: &PartitionValues) -> Result<FragmentWriter> {
        match self.writers.take(partition) {
            Some(writer) => Ok(writer),
            None => {
                let converter = self.converter;
                FragmentWriter::with_encoding(&converter.schema.table, &converter.options.fragment_encoding)
            }
        }
    }

    /// Finishes a fragment and starts staging it.
    async fn flush(&mut self, partition: PartitionValues, writer: FragmentWriter) -> Result<()> {
        // The upload before this one ends first: finishing a file copies its last row group
        // into it, so finishing beside an upload in flight would hold three fragments' worth.
        self.uploads.wait(&mut self.report).await?;
        let batch = self.report.batch.clone();
        let data = tokio::task::spawn_blocking(move || writer.finish(&batch)).await??;
        self.report.bytes_out += data.len() as u64;
        let directory =
            self.converter.schema.layout.partition.as_ref().map(|spec| spec.directory(&partition)).unwrap_or_default();
        let fragments = self.converter.fragments.clone();
        let upload = async move { fragments.put(data, &directory).await };
        self.uploads.start(upload, &mut self.report).await
    }

    /// Stages every open writer.
    pub(super) async fn flush_all(&mut self) -> Result<()> {
        for (partition, writer) in self.writers.close_all() {
            self.flush(partition, writer).await?;
        }
        Ok(())
    }

    /// Waits for the upload in flight. Called even after a failure: no upload is left running
    /// once the batch has answered.
    pub(super) async fn uploaded(&mut self) -> Result<()> {
        self.uploads.wait(&mut self.report).await
    }
}

/// The fragment writers an invocation has open, one per partition, and what they hold together.
#[derive(Default)]
struct OpenWriters {
    by_partition: BTreeMap<PartitionValues, OpenWriter>,
    /// Their sizes added up, kept as writers are taken and put back.
    bytes: usize,
}

/// An open writer and its size ([`FragmentWriter::size`]) when it was put back: measuring a
/// writer walks its columns, and choosing the fullest of thousands must not do that for each.
struct OpenWriter {
    writer: FragmentWriter,
    size: usize,
}

impl OpenWriters {
    /// The writer of `partition`, taken out (to write to it, or to stage it).
    fn take(&mut self, partition: &PartitionValues) -> Option<FragmentWriter> {
        let open = self.by_partition.remove(partition)?;
        self.bytes -= open.size;
        Some(open.writer)
    }

    /// Puts a writer back (or in, for a new partition).
    fn put(&mut self, partition: PartitionValues, writer: FragmentWriter) {
        let size = writer.size();
        self.bytes += size;
        self.by_partition.insert(partition, OpenWriter { writer, size });
    }

    /// The partition of an open writer that lists `source`, if any.
    fn listing(&self, source: &crate::lineage::SourceId) -> Option<&PartitionValues> {
        self.by_partition.iter().find(|(_, open)| open.writer.lists(source)).map(|(partition, _)| partition)
    }

    /// The writer holding the most, taken out.
    fn take_fullest(&mut self) -> Option<(PartitionValues, FragmentWriter)> {
        let fullest = self.by_partition.iter().max_by_key(|(_, open)| open.size).map(|(p, _)| p.clone())?;
        let writer = self.take(&fullest)?;
        Some((fullest, writer))
    }

    /// Every writer, taken out to be staged.
    fn close_all(&mut self) -> Vec<(PartitionValues, FragmentWriter)> {
        self.bytes = 0;
        std::mem::take(&mut self.by_partition).into_iter().map(|(partition, open)| (partition, open.writer)).collect()
    }
}

/// Whether `quarantined` holds a refused line (not only the note that the object is empty).
fn refuses_lines(quarantined: &[QuarantinedLine]) -> bool {
    quarantined.iter().any(|line| line.line > 0)
}

/// The fragment upload in flight. One at a time: the objects after a full fragment are
/// decoded and encoded while it uploads (in Lambda, billed time a PUT would otherwise spend alone),
/// and memory holds at most one finished fragment besides the open writers.
#[derive(Default)]
struct Uploads {
    pending: Option<tokio::task::JoinHandle<Result<object_store::path::Path>>>,
}

impl Uploads {
    /// Starts `upload` once the one before it has finished.
    async fn start(
        &mut self,
        upload: impl Future<Output = Result<object_store::path::Path>> + Send + 'static,
        report: &mut ConversionReport,
    ) -> Result<()> {
        self.wait(report).await?;
        self.pending = Some(tokio::spawn(upload));
        Ok(())
    }

    /// Waits for the upload in flight, and records its fragment.
    async fn wait(&mut self, report: &mut ConversionReport) -> Result<()> {
        if let Some(upload) = self.pending.take() {
            let path = upload.await??;
            report.fragments.push(path.to_string());
            crash_point("converter.fragment_staged");
        }
        Ok(())
    }
}
