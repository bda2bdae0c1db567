//! The converter: SQS batches of S3 notifications in, Parquet fragments out, and a partial
//! batch response naming the messages whose objects could not be ingested.
//!
//! Objects stream through a pipeline: up to `concurrency` objects download at once and are
//! decompressed and decoded on the blocking pool, one per decode slot (one per core, at least
//! two), while the decoded ones are encoded into
//! one fragment writer per partition. Once the open writers together hold `fragment_bytes`,
//! the fullest is staged, so memory is set by configuration, not by the batch, its objects or
//! their partitions (`inlet::memory::ConverterMemory`). A fragment may roll inside an object:
//! each entry states the object's total rows, or a later one does for a large object.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use arrow_array::RecordBatch;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Settings;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::faults::crash_point;
use crate::ingest::decode::{BYTE_ORDER_MARK, DecodedPiece, JsonDecoder, QuarantinedLine, object_outcome};
use crate::ingest::event::BatchPlan;
use crate::ingest::isolation::{Isolation, SqsIsolation, receive_count};
use crate::ingest::large::LargeObject;
use crate::ingest::quarantine::{Quarantine, RecordWriter};
use crate::ingest::source::{
    BlockingBody, ObjectLimits, ObjectSource, Pieces, S3Source, digest_body, with_decompressed_up_to,
};
use crate::ingest::superseded::SupersededLog;
use crate::ingest::trigger::{CompactionTrigger, LambdaTrigger};
use crate::lineage::FragmentSource;
use crate::lineage::{SourceObject, content_digest};
use crate::memory::ConverterMemory;
use crate::metrics::Metric;
use crate::schema::TableSchema;
use crate::stage::fragment::{FragmentEncoding, FragmentStore, FragmentWriter};

/// What one converter invocation did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct ConversionReport {
    /// Identity of this invocation, recorded in every fragment it staged.
    pub batch: String,
    /// Objects ingested (rows staged, lines quarantined, or both).
    pub objects: usize,
    /// Rows staged.
    pub rows: u64,
    /// Lines quarantined.
    pub quarantined: u64,
    /// Uncompressed bytes decoded.
    pub bytes_in: u64,
    /// Fragments staged, relative to the table root.
    pub fragments: Vec<String>,
    /// Message ids that failed (retried by SQS, then dead-lettered).
    pub failed_messages: Vec<String>,
    /// Notified versions that were gone when read (recorded under `_inlet/superseded/`).
    pub superseded: Vec<String>,
    /// Messages delivered before, moved to the isolation queue.
    pub isolated: Vec<String>,
    /// Bytes of the fragments staged.
    pub bytes_out: u64,
    /// Wall time of the invocation, in milliseconds.
    pub duration_ms: u64,
}

impl ConversionReport {
    /// The partial batch response: the failed messages, for SQS to retry.
    pub fn batch_response(&self) -> SqsBatchResponse {
        batch_response(&self.failed_messages)
    }

    /// The report as CloudWatch metrics.
    pub fn metrics(&self) -> [Metric; 10] {
        [
            Metric { name: "Objects", value: self.objects as f64, unit: "Count" },
            Metric { name: "Rows", value: self.rows as f64, unit: "Count" },
            Metric { name: "QuarantinedLines", value: self.quarantined as f64, unit: "Count" },
            Metric { name: "FailedMessages", value: self.failed_messages.len() as f64, unit: "Count" },
            Metric { name: "SupersededVersions", value: self.superseded.len() as f64, unit: "Count" },
            Metric { name: "IsolatedMessages", value: self.isolated.len() as f64, unit: "Count" },
            Metric { name: "Fragments", value: self.fragments.len() as f64, unit: "Count" },
            Metric { name: "BytesIn", value: self.bytes_in as f64, unit: "Bytes" },
            Metric { name: "BytesOut", value: self.bytes_out as f64, unit: "Bytes" },
            Metric { name: "Duration", value: self.duration_ms as f64, unit: "Milliseconds" },
        ]
    }
}

/// The partial batch response failing `failed_messages`, for SQS to deliver them again.
pub(crate) fn batch_response(failed_messages: &[String]) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for id in failed_messages {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id.clone();
        response.batch_item_failures.push(failure);
    }
    response
}

/// Converter knobs (see the configuration table in the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConverterOptions {
    /// Rows per decoded record batch.
    pub batch_rows: usize,
    /// Objects downloaded and decoded at once.
    pub concurrency: usize,
    /// Arrow bytes per partition before a fragment is staged.
    pub fragment_bytes: usize,
    /// Longest accepted line.
    pub max_line_bytes: usize,
    /// Most an object may decompress to.
    pub limits: ObjectLimits,
    /// How long before an invocation's deadline to stop taking objects.
    pub deadline_margin: std::time::Duration,
    /// Decompressed bytes of an object decoded at once: a larger object is read in pieces of
    /// this size, one such object at a time. An object stored larger than this is also
    /// streamed from the store rather than downloaded whole.
    pub piece_bytes: usize,
    /// How fragments are encoded.
    pub fragment_encoding: FragmentEncoding,
}

impl ConverterOptions {
    /// The options `settings` ask for.
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            batch_rows: settings.decode_batch_rows,
            concurrency: settings.download_concurrency,
            fragment_bytes: settings.fragment_bytes,
            max_line_bytes: settings.max_line_bytes,
            limits: ObjectLimits { max_bytes: settings.max_object_bytes, max_lines: settings.max_object_lines },
            deadline_margin: std::time::Duration::from_secs(settings.deadline_margin_seconds),
            piece_bytes: settings.piece_bytes,
            fragment_encoding: FragmentEncoding::default(),
        }
    }
}

impl Default for ConverterOptions {
    fn default() -> Self {
        Self::from_settings(&Settings::defaults())
    }
}

/// Converts source objects to fragments.
pub struct Converter {
    source: Arc<dyn ObjectSource>,
    fragments: FragmentStore,
    quarantine: Quarantine,
    superseded: SupersededLog,
    schema: Arc<TableSchema>,
    decoder: JsonDecoder,
    options: ConverterOptions,
    /// Asked for a compaction once this many bytes are staged.
    trigger: Option<(Arc<dyn CompactionTrigger>, u64)>,
    /// Where redelivered messages go to be converted one per invocation.
    isolation: Option<Arc<dyn Isolation>>,
    /// Objects decompressed and decoded whole at once, or holding their rows until staged.
    decode_slots: Arc<Semaphore>,
    decode_slots_count: usize,
}

/// Says, at start, what the settings let the converter hold, and warns when the function has
/// less memory than that (Lambda's `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, in MB).
fn warn_if_memory_is_short(options: &ConverterOptions) {
    let model = ConverterMemory::of(options, decode_slots(options.concurrency));
    let needed_mib = (model.total() + ConverterMemory::FOOTPRINT_BYTES).div_ceil(1 << 20);
    let function_mib = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").ok().and_then(|mb| mb.parse::<u64>().ok());
    match function_mib {
        Some(has) if has < needed_mib => tracing::warn!(
            function_mib = has,
            needed_mib,
            model = ?model,
            "the converter's settings let it hold more than the function's memory: lower INLET_PIECE_BYTES, \
             INLET_FRAGMENT_BYTES or INLET_DOWNLOAD_CONCURRENCY, or give the function more memory"
        ),
        _ => tracing::debug!(needed_mib, model = ?model, "the converter's memory for its settings"),
    }
}

/// How many objects are decompressed and decoded at once (or decoded and waiting to be
/// staged): one per core, at least two so that one decodes while another is staged, and at
/// most `concurrency`. More would not decode faster, only hold more.
pub fn decode_slots(concurrency: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    cores.max(2).min(concurrency.max(1))
}

/// One object, decoded and split by partition.
struct Decoded {
    object: SourceObject,
    bytes_in: u64,
    parts: Vec<(Option<String>, Vec<RecordBatch>)>,
    quarantined: Vec<QuarantinedLine>,
    /// Its decode slot, held until its rows are in the writers.
    _slot: OwnedSemaphorePermit,
}

impl Converter {
    /// A converter reading from `source`, staging into `fragments` and refusing lines into `quarantine`.
    pub fn new(
        source: Arc<dyn ObjectSource>,
        fragments: FragmentStore,
        quarantine: Quarantine,
        schema: Arc<TableSchema>,
        options: ConverterOptions,
    ) -> Self {
        let decoder = JsonDecoder::new(schema.clone(), options.batch_rows).with_max_line_bytes(options.max_line_bytes);
        let options = ConverterOptions { concurrency: options.concurrency.max(1), ..options };
        // Superseded versions are recorded beside the quarantine, in the table's own store.
        let superseded = SupersededLog::new(fragments.store());
        let decode_slots_count = decode_slots(options.concurrency);
        let decode_slots = Arc::new(Semaphore::new(decode_slots_count));
        Self {
            source,
            fragments,
            quarantine,
            superseded,
            schema,
            decoder,
            options,
            trigger: None,
            isolation: None,
            decode_slots,
            decode_slots_count,
        }
    }

    /// Requests a compaction from `trigger` whenever staged fragments reach `staged_bytes`.
    pub fn with_trigger(mut self, trigger: Arc<dyn CompactionTrigger>, staged_bytes: u64) -> Self {
        self.trigger = Some((trigger, staged_bytes));
        self
    }

    /// Moves messages delivered more than once, in a batch of several, to `isolation`
    /// (see `ingest/isolation.rs`).
    pub fn with_isolation(mut self, isolation: Arc<dyn Isolation>) -> Self {
        self.isolation = Some(isolation);
        self
    }

    /// The same converter, leaving redelivered messages to whoever routes its batches.
    pub fn without_isolation(mut self) -> Self {
        self.isolation = None;
        self
    }

    /// A converter over S3 sources and the table's staging area, as the Lambda runs it.
    pub fn from_context(context: &Context) -> Self {
        let settings = &context.settings;
        warn_if_memory_is_short(&ConverterOptions::from_settings(settings));
        let converter = Self::new(
            Arc::new(S3Source::new(context.s3.clone())),
            FragmentStore::new(context.table_store.clone()),
            Quarantine::new(context.table_store.clone()),
            context.schema.clone(),
            ConverterOptions::from_settings(settings),
        );
        let converter = match (&settings.compactor_function, &context.lambda) {
            (Some(function), Some(lambda)) => converter.with_trigger(
                Arc::new(LambdaTrigger::new(lambda.clone(), function.clone())),
                settings.target_file_bytes,
            ),
            _ => converter,
        };
        match (&settings.isolation_queue_url, &context.sqs) {
            (Some(queue), Some(sqs)) => {
                converter.with_isolation(Arc::new(SqsIsolation::new(sqs.clone(), queue.clone())))
            }
            _ => converter,
        }
    }

    /// When an invocation due to end at `deadline` (Lambda's, in milliseconds since the epoch)
    /// stops taking objects: the deadline margin before it, but never more than a quarter of
    /// the time left.
    pub fn stop_before(&self, deadline_epoch_ms: u64) -> tokio::time::Instant {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        let left = std::time::Duration::from_millis(deadline_epoch_ms.saturating_sub(now_ms));
        tokio::time::Instant::now() + left - self.options.deadline_margin.min(left / 4)
    }

    /// Handles an SQS event as the Lambda does, returning the partial batch response.
    pub async fn handle(&self, event: &SqsEvent) -> Result<SqsBatchResponse> {
        Ok(self.convert(event).await?.batch_response())
    }

    /// Converts every object the batch names; an object that fails fails only its messages.
    /// An error here (a fragment could not be staged) means the whole batch must be retried.
    pub async fn convert(&self, event: &SqsEvent) -> Result<ConversionReport> {
        self.convert_until(event, None).await
    }

    /// [`Converter::convert`], but stops taking objects at `stop`: what is staged by then is
    /// sealed and answered as done, and the messages of every object not finished fail, for
    /// SQS to deliver again, instead of the invocation timing out with the whole batch.
    pub async fn convert_until(
        &self,
        event: &SqsEvent,
        stop: Option<tokio::time::Instant>,
    ) -> Result<ConversionReport> {
        let started = std::time::Instant::now();
        let mut failed = BTreeSet::new();
        let mut isolated = Vec::new();
        let event = isolate_redeliveries(self.isolation.as_deref(), event, &mut isolated, &mut failed).await;
        let plan = BatchPlan::from_sqs(&event);
        // Objects still to read per message: a message naming several is answered only once
        // every one of them was read (or failed), never at the deadline with one unread.
        let mut unanswered: BTreeMap<String, usize> = BTreeMap::new();
        for id in plan.objects.iter().flat_map(|(_, ids)| ids) {
            *unanswered.entry(id.clone()).or_default() += 1;
        }
        for (id, reason) in &plan.invalid {
            tracing::error!(message_id = %id, reason = %reason, "unreadable message: failing it");
            failed.insert(id.clone());
        }
        for (id, reason) in &plan.ignored {
            tracing::info!(message_id = %id, reason = %reason, "nothing to ingest");
        }
        let mut report =
            ConversionReport { batch: uuid::Uuid::new_v4().simple().to_string(), isolated, ..Default::default() };

        // Decoded objects hold a decode slot each, so a channel of that many never makes a
        // decoded object wait; objects left to be read in pieces wait here compressed.
        let (decoded_tx, mut decoded_rx) = tokio::sync::mpsc::channel(self.decode_slots_count);
        let produce = async move {
            futures::stream::iter(plan.objects)
                .for_each_concurrent(self.options.concurrency, |(object, ids)| {
                    let decoded_tx = decoded_tx.clone();
                    async move {
                        let result = self.read(&object).await;
                        // The consumer only stops early on an error that fails the whole batch.
                        let _ = decoded_tx.send((result, object, ids)).await;
                    }
                })
                .await;
        };
        let consume = async {
            let mut uploads = Uploads::default();
            let staged = async {
                let mut writers = OpenWriters::default();
                let mut sources = HashSet::new();
                let deadline = async {
                    match stop {
                        Some(stop) => tokio::time::sleep_until(stop).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::pin!(deadline);
                loop {
                    let received = tokio::select! {
                        received = decoded_rx.recv() => received,
                        () = &mut deadline => {
                            tracing::warn!(
                                unfinished_messages = unanswered.len(),
                                "the invocation's deadline is near: sealing what is staged, failing the rest for redelivery"
                            );
                            break;
                        }
                    };
                    let Some((result, object, ids)) = received else { break };
                    for id in &ids {
                        if let Some(left) = unanswered.get_mut(id) {
                            *left -= 1;
                            if *left == 0 {
                                unanswered.remove(id);
                            }
                        }
                    }
                    match result {
                        // Two versions of one key with the same bytes (a re-upload) are one source:
                        // a batch holds each source once.
                        Ok(read) if !sources.insert(read.object().id()) => {
                            tracing::info!(object = %read.object().describe(), "same content as a version already in this batch");
                        }
                        Ok(Read::Decoded(decoded)) => self.stage(decoded, &mut writers, &mut report, &mut uploads).await?,
                        Ok(Read::Large(object, stored)) => {
                            tracing::info!(object = %object.uri(), "large object: reading it in pieces");
                            let staged = self
                                .stage_in_pieces(object.clone(), stored, stop, &mut writers, &mut report, &mut uploads)
                                .await?;
                            if let Err(err) = staged {
                                self.object_failed(&object, err, ids, &mut failed, &mut report).await?;
                            }
                        }
                        Err(err) => self.object_failed(&object, err, ids, &mut failed, &mut report).await?,
                    }
                }
                for (partition, writer) in writers.close_all() {
                    self.flush(partition, writer, &mut report, &mut uploads).await?;
                }
                Ok::<(), Error>(())
            }
            .await;
            // Even after a failure: no upload is left running once the batch has answered.
            let uploaded = uploads.wait(&mut report).await;
            staged.and(uploaded)
        };
        // The consumer ends first only at the deadline; the reads still running are dropped.
        let staged = {
            tokio::pin!(produce, consume);
            tokio::select! {
                biased;
                staged = &mut consume => staged,
                () = &mut produce => consume.await,
            }
        };
        staged?;
        failed.extend(std::mem::take(&mut unanswered).into_keys());
        if !report.fragments.is_empty() {
            crash_point("converter.before_seal");
            self.seal(&report).await?;
            crash_point("converter.after_seal");
            self.request_compaction_if_due().await;
        }

        report.failed_messages = failed.into_iter().collect();
        report.duration_ms = started.elapsed().as_millis() as u64;
        tracing::info!(
            batch = %report.batch,
            objects = report.objects,
            rows = report.rows,
            quarantined = report.quarantined,
            bytes_in = report.bytes_in,
            fragments = report.fragments.len(),
            failed_messages = report.failed_messages.len(),
            superseded = report.superseded.len(),
            "converted batch"
        );
        Ok(report)
    }

    /// Answers for an object that could not be read: a version found gone is recorded as
    /// superseded and its messages answered (the version that replaced it was notified on its
    /// own; a failed record retries them); any other failure fails its messages.
    async fn object_failed(
        &self,
        object: &SourceObject,
        err: Error,
        ids: Vec<String>,
        failed: &mut BTreeSet<String>,
        report: &mut ConversionReport,
    ) -> Result<()> {
        match err {
            Error::Superseded { object: named, reason } => {
                let path = self.superseded.record(object, &reason).await?;
                tracing::warn!(object = %named, reason = %reason, record = %path, "notified version superseded");
                report.superseded.push(named);
            }
            err => {
                tracing::error!(object = %object.uri(), error = %err, retryable = err.is_retryable(), "object failed");
                failed.extend(ids);
            }
        }
        Ok(())
    }

    /// Seals the batch, after all its fragments are uploaded and before SQS hears of success:
    /// only then may a compactor take them. A compactor may have voided the batch as
    /// abandoned (and deleted its fragments) first; then the seal is refused, or a fragment is
    /// found gone after it, and the whole batch fails, for SQS to redeliver.
    async fn seal(&self, report: &ConversionReport) -> Result<()> {
        self.fragments.seal(&report.batch, report.fragments.len()).await?;
        for fragment in &report.fragments {
            if !self.fragments.exists(&object_store::path::Path::from(fragment.as_str())).await? {
                return Err(Error::Integrity(format!(
                    "fragment {fragment} of batch {} was removed before its seal (a compactor took the batch \
                     for abandoned): its messages must be converted again",
                    report.batch
                )));
            }
        }
        Ok(())
    }

    /// Asks for a compaction when a file's worth of bytes is staged; a failure only leaves the
    /// data to the schedule.
    async fn request_compaction_if_due(&self) {
        let Some((trigger, threshold)) = &self.trigger else { return };
        let staged: u64 = match self.fragments.list().await {
            Ok(listed) => listed.iter().map(|meta| meta.size).sum(),
            Err(err) => {
                tracing::warn!(error = %err, "could not measure staged bytes");
                return;
            }
        };
        if staged < *threshold {
            return;
        }
        match trigger.request("size").await {
            Ok(()) => tracing::info!(staged_bytes = staged, "requested a compaction"),
            Err(err) => tracing::warn!(error = %err, "could not request a compaction"),
        }
    }

    /// Quarantines an object's refused lines and adds its rows to the writers of their partitions.
    async fn stage(
        &self,
        decoded: Decoded,
        writers: &mut OpenWriters,
        report: &mut ConversionReport,
        uploads: &mut Uploads,
    ) -> Result<()> {
        // The slot is held (by `_slot`) until the rows are in the writers.
        let Decoded { object, bytes_in, parts, quarantined, _slot } = decoded;
        let total_rows: u64 = parts.iter().flat_map(|(_, batches)| batches).map(|b| b.num_rows() as u64).sum();
        report.objects += 1;
        report.bytes_in += bytes_in;
        let refused = refuses_lines(&quarantined);
        self.quarantine_lines(&object, quarantined, report).await?;
        if total_rows == 0 {
            // Every line refused: a source of no rows, committed like any other, so that the
            // load history knows the version was ingested (into its quarantine record) and a
            // later conversion of it (looser settings, a new release) is a duplicate, not rows
            // beside the record. An empty object has no line to ingest twice.
            if refused {
                self.note_source(None, FragmentSource::new(&object, 0, Some(0)), writers)?;
            }
            return Ok(());
        }
        for (partition, batches) in parts {
            let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
            report.rows += rows;
            let source = FragmentSource::new(&object, rows, Some(total_rows));
            self.write_rows(partition, source, batches, writers, report, uploads).await?;
        }
        Ok(())
    }

    /// Records an object's refused lines, if any.
    async fn quarantine_lines(
        &self,
        object: &SourceObject,
        quarantined: Vec<QuarantinedLine>,
        report: &mut ConversionReport,
    ) -> Result<()> {
        report.quarantined += quarantined.len() as u64;
        if !quarantined.is_empty() {
            // Named by object version: a retried batch rewrites the record instead of adding one.
            let path = self.quarantine.put(object, &quarantined).await?;
            tracing::warn!(object = %object.uri(), lines = quarantined.len(), quarantine = %path, "quarantined lines");
        }
        Ok(())
    }

    /// Adds rows of `source` to the writer of `partition`, staging it once it is full.
    async fn write_rows(
        &self,
        partition: Option<String>,
        source: FragmentSource,
        batches: Vec<RecordBatch>,
        writers: &mut OpenWriters,
        report: &mut ConversionReport,
        uploads: &mut Uploads,
    ) -> Result<()> {
        let mut writer = match writers.take(&partition) {
            Some(writer) => writer,
            None => FragmentWriter::with_encoding(&self.schema.table, &self.options.fragment_encoding)?,
        };
        let writer = tokio::task::spawn_blocking(move || writer.write(source, &batches).map(|()| writer)).await??;
        writers.put(partition, writer);
        // The open writers together hold at most a fragment's worth: however many partitions
        // an object's rows spread over, memory holds one fragment being written.
        while writers.bytes >= self.options.fragment_bytes {
            let Some((fullest, writer)) = writers.take_fullest() else { break };
            self.flush(fullest, writer, report, uploads).await?;
        }
        Ok(())
    }

    /// Finishes a fragment and starts staging it.
    async fn flush(
        &self,
        partition: Option<String>,
        writer: FragmentWriter,
        report: &mut ConversionReport,
        uploads: &mut Uploads,
    ) -> Result<()> {
        // The upload before this one ends first: finishing a file copies its last row group
        // into it, so finishing beside an upload in flight would hold three fragments' worth.
        uploads.wait(report).await?;
        let batch = report.batch.clone();
        let data = tokio::task::spawn_blocking(move || writer.finish(&batch)).await??;
        report.bytes_out += data.len() as u64;
        let column = self.schema.layout.partition.as_ref().map(|spec| spec.column.clone());
        let fragments = self.fragments.clone();
        let upload =
            async move { fragments.put(data, column.as_deref().map(|column| (column, partition.as_deref()))).await };
        uploads.start(upload, report).await
    }

    /// Downloads, decompresses, decodes and partitions one object; one that decompresses to
    /// more than a piece, or decodes to more rows than a piece's worth, is left to be read in
    /// pieces, one such object at a time.
    ///
    /// An object stored larger than a quarter of a piece (one that would most likely not
    /// decompress to a piece anyway) is not downloaded whole: it is streamed once here for its
    /// digest (its identity must be known before any of its rows is staged), and streamed
    /// again, pinned to the same version, when its pieces are read.
    async fn read(&self, object: &SourceObject) -> Result<Read> {
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
        tokio::task::spawn_blocking(move || {
            let key_value = key_partition(&partition, &object)?;
            let whole = with_decompressed_up_to(&object, &fetched.data, limits, piece_bytes as u64, |data| {
                let bytes_in = data.len() as u64;
                let text = data.strip_prefix(BYTE_ORDER_MARK).unwrap_or(data);
                let mut decoding = decoder.start(&object, text, 1)?;
                let decoded = decoder.decode_step(&object, text, &mut decoding, piece_bytes)?;
                Ok::<_, Error>(decoding.done().then_some((bytes_in, decoded)))
            })?;
            let Some((bytes_in, decoded)) = whole.transpose()?.flatten() else {
                return Ok(Read::Large(object, Stored::Held(fetched.data)));
            };
            let (batches, quarantined) = object_outcome(&object, bytes_in, decoded)?;
            let parts = split_by_partition(&partition, key_value.as_deref(), batches)?;
            Ok(Read::Decoded(Decoded { bytes_in, parts, quarantined, object, _slot: slot }))
        })
        .await?
    }

    /// Opens a large object for reading in pieces.
    async fn open_large(&self, object: &SourceObject, stored: Stored) -> Result<LargeObject> {
        let options = self.options;
        let (limits, piece_bytes, max_line_bytes) = (options.limits, options.piece_bytes, options.max_line_bytes);
        let pieces = match stored {
            Stored::Held(data) => Pieces::new(object.clone(), data, limits, piece_bytes, max_line_bytes)?,
            // The version whose digest was taken: by version id, or by its ETag (`If-Match`).
            Stored::Streamed => {
                let opened = self.source.open(object).await?;
                let body = BlockingBody::new(opened.body);
                Pieces::from_reader(object.clone(), body, limits, piece_bytes, max_line_bytes)?
            }
        };
        Ok(LargeObject::new(object.clone(), pieces, piece_bytes))
    }

    /// Reads a large object step by step into the writers (a fragment may roll inside it),
    /// its refused lines streaming into its quarantine record, completed once it is read to
    /// its end and aborted otherwise. `Ok(Err(_))` is the object's own failure: its messages
    /// fail, and what it staged is marked failed so no compactor commits it; `Err(_)` fails
    /// the whole batch.
    async fn stage_in_pieces(
        &self,
        object: SourceObject,
        stored: Stored,
        stop: Option<tokio::time::Instant>,
        writers: &mut OpenWriters,
        report: &mut ConversionReport,
        uploads: &mut Uploads,
    ) -> Result<Result<()>> {
        let mut record = self.quarantine.record(&object);
        let staged = self.stage_steps(&object, stored, stop, &mut record, writers, report, uploads).await;
        let quarantined = record.lines();
        match staged {
            Ok(Ok(())) => {
                report.quarantined += quarantined;
                if let Some(path) = record.finish().await? {
                    tracing::warn!(object = %object.uri(), lines = quarantined, quarantine = %path, "quarantined lines");
                }
                Ok(Ok(()))
            }
            failed => {
                record.abort().await;
                failed
            }
        }
    }

    /// [`Converter::stage_in_pieces`], all but completing or aborting the record.
    #[allow(clippy::too_many_arguments)]
    async fn stage_steps(
        &self,
        object: &SourceObject,
        stored: Stored,
        stop: Option<tokio::time::Instant>,
        record: &mut RecordWriter,
        writers: &mut OpenWriters,
        report: &mut ConversionReport,
        uploads: &mut Uploads,
    ) -> Result<Result<()>> {
        let mut large = match self.open_large(object, stored).await {
            Ok(large) => large,
            Err(err) => return Ok(Err(err)),
        };
        let partition = self.schema.layout.partition.clone();
        let key_value = match key_partition(&partition, object) {
            Ok(value) => value,
            Err(err) => return Ok(Err(err)),
        };
        let (mut lines, mut rows, mut touched) = (0u64, 0u64, None::<Option<String>>);
        let failure = loop {
            if stop.is_some_and(|stop| tokio::time::Instant::now() >= stop) {
                break Some(Error::Source {
                    uri: object.uri(),
                    reason:
                        "not read to its end before the invocation's deadline (less INLET_DEADLINE_MARGIN_SECONDS): \
                             a longer converter timeout ingests it"
                            .into(),
                    retryable: true,
                });
            }
            let (decoder, partition, key_value) = (self.decoder.clone(), partition.clone(), key_value.clone());
            let (returned, next) = tokio::task::spawn_blocking(move || {
                let next = large.next_step(&decoder).and_then(|step| {
                    step.map(|step| {
                        let parts = split_by_partition(&partition, key_value.as_deref(), step.batches)?;
                        Ok((parts, step.quarantined, step.lines))
                    })
                    .transpose()
                });
                (large, next)
            })
            .await?;
            large = returned;
            match next {
                Err(err) => break Some(err),
                Ok(None) => break None,
                Ok(Some((parts, quarantined, step_lines))) => {
                    lines += step_lines;
                    record.write(&quarantined).await?;
                    for (partition, batches) in parts {
                        let count: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
                        rows += count;
                        touched.get_or_insert_with(|| partition.clone());
                        let source = FragmentSource::new(object, count, None);
                        self.write_rows(partition, source, batches, writers, report, uploads).await?;
                    }
                    crate::memory::release_free_memory();
                }
            }
        };
        let outcome = match failure {
            Some(err) => Err(err),
            None => object_outcome(object, large.bytes(), DecodedPiece { lines, ..Default::default() }),
        };
        let empty = match outcome {
            Ok((_, empty)) => empty,
            Err(err) => {
                if let Some(partition) = touched {
                    let void = FragmentSource { failed: true, ..FragmentSource::new(object, 0, None) };
                    self.note_source(partition, void, writers)?;
                }
                return Ok(Err(err));
            }
        };
        // Its total, in a fragment not yet staged, says the copy is complete once sealed; an
        // object whose every line was refused is recorded as a source of none (see `stage`).
        if touched.is_some() || record.lines() > 0 {
            self.note_source(touched.flatten(), FragmentSource::new(object, 0, Some(rows)), writers)?;
        }
        record.write(&empty).await?;
        report.objects += 1;
        report.bytes_in += large.bytes();
        report.rows += rows;
        Ok(Ok(()))
    }

    /// Adds an entry with no rows for `source` to an open writer that lists it, else to any
    /// open writer, else to a new one for `partition`.
    fn note_source(&self, partition: Option<String>, source: FragmentSource, writers: &mut OpenWriters) -> Result<()> {
        let open = &writers.by_partition;
        let listing = open.iter().find(|(_, writer)| writer.lists(&source.id)).map(|(p, _)| p.clone());
        let partition = listing.or_else(|| open.keys().next().cloned()).unwrap_or(partition);
        let mut writer = match writers.take(&partition) {
            Some(writer) => writer,
            None => FragmentWriter::with_encoding(&self.schema.table, &self.options.fragment_encoding)?,
        };
        let written = writer.write(source, &[]);
        writers.put(partition, writer);
        written
    }
}

/// The fragment writers an invocation has open, one per partition, and what they hold together.
#[derive(Default)]
struct OpenWriters {
    by_partition: BTreeMap<Option<String>, FragmentWriter>,
    /// Their sizes ([`FragmentWriter::size`]) added up, kept as writers are taken and put back.
    bytes: usize,
}

impl OpenWriters {
    /// The writer of `partition`, taken out (to write to it, or to stage it).
    fn take(&mut self, partition: &Option<String>) -> Option<FragmentWriter> {
        let writer = self.by_partition.remove(partition)?;
        self.bytes -= writer.size();
        Some(writer)
    }

    /// Puts a writer back (or in, for a new partition).
    fn put(&mut self, partition: Option<String>, writer: FragmentWriter) {
        self.bytes += writer.size();
        self.by_partition.insert(partition, writer);
    }

    /// The writer holding the most, taken out.
    fn take_fullest(&mut self) -> Option<(Option<String>, FragmentWriter)> {
        let fullest = self.by_partition.iter().max_by_key(|(_, writer)| writer.size()).map(|(p, _)| p.clone())?;
        let writer = self.take(&fullest)?;
        Some((fullest, writer))
    }

    /// Every writer, taken out to be staged.
    fn close_all(&mut self) -> BTreeMap<Option<String>, FragmentWriter> {
        self.bytes = 0;
        std::mem::take(&mut self.by_partition)
    }
}

/// Whether `quarantined` holds a refused line (not only the note that the object is empty).
fn refuses_lines(quarantined: &[QuarantinedLine]) -> bool {
    quarantined.iter().any(|line| line.line > 0)
}

/// The part of `event` to convert here: in a batch of several, messages delivered before
/// go to the isolation queue (listed in `isolated`, or in `failed` if it refuses them).
pub(crate) async fn isolate_redeliveries<'a>(
    isolation: Option<&dyn Isolation>,
    event: &'a SqsEvent,
    isolated: &mut Vec<String>,
    failed: &mut BTreeSet<String>,
) -> std::borrow::Cow<'a, SqsEvent> {
    let Some(isolation) = isolation else { return std::borrow::Cow::Borrowed(event) };
    if event.records.len() < 2 || event.records.iter().all(|m| receive_count(m) <= 1) {
        return std::borrow::Cow::Borrowed(event);
    }
    let (again, fresh): (Vec<_>, Vec<_>) = event.records.iter().cloned().partition(|m| receive_count(m) > 1);
    let ids: Vec<String> =
        again.iter().enumerate().map(|(at, m)| m.message_id.clone().unwrap_or(format!("#r{at}"))).collect();
    let bodies: Vec<String> = again.iter().map(|m| m.body.clone().unwrap_or_default()).collect();
    match isolation.isolate(&bodies).await {
        Ok(()) => {
            tracing::warn!(
                messages = ids.len(),
                "messages delivered before (their batch failed or its converter died): moved to the isolation \
                 queue, to be converted one per invocation"
            );
            isolated.extend(ids);
        }
        Err(err) => {
            tracing::error!(error = %err, messages = ids.len(), "could not isolate redelivered messages: failing them");
            failed.extend(ids);
        }
    }
    let mut rest = event.clone();
    rest.records = fresh;
    std::borrow::Cow::Owned(rest)
}

/// The partition value an object's key gives, when the table is partitioned by key segment.
fn key_partition(partition: &Option<crate::partition::PartitionSpec>, object: &SourceObject) -> Result<Option<String>> {
    match partition {
        Some(spec) if spec.source == crate::partition::PartitionSource::KeySegment => {
            Ok(Some(spec.value_from_key(&object.key).ok_or_else(|| Error::Source {
                uri: object.uri(),
                reason: format!(
                    "key has no `{}=` directory segment, which INLET_PARTITION_BY={}=key requires",
                    spec.column, spec.column
                ),
                retryable: false,
            })?))
        }
        _ => Ok(None),
    }
}

/// Decoded rows grouped by partition value.
fn split_by_partition(
    partition: &Option<crate::partition::PartitionSpec>,
    key_value: Option<&str>,
    batches: Vec<RecordBatch>,
) -> Result<Vec<(Option<String>, Vec<RecordBatch>)>> {
    let mut parts: BTreeMap<Option<String>, Vec<RecordBatch>> = BTreeMap::new();
    for batch in batches {
        match partition {
            None => parts.entry(None).or_default().push(batch),
            Some(spec) => {
                for (value, part) in spec.split(batch, key_value)? {
                    parts.entry(value).or_default().push(part);
                }
            }
        }
    }
    Ok(parts.into_iter().collect())
}

/// An object stored larger than this is streamed rather than downloaded whole: it would
/// most likely decompress to more than a piece anyway, and downloads running at once hold
/// no more than a quarter piece each.
fn streamed_above(piece_bytes: usize) -> u64 {
    piece_bytes as u64 / 4
}

/// What reading one object gave.
enum Read {
    /// Decoded whole.
    Decoded(Decoded),
    /// Too large to decode whole, to be read in pieces.
    Large(SourceObject, Stored),
}

/// Where a large object's stored bytes are to be read from.
enum Stored {
    /// Held in memory: small stored, large once decompressed.
    Held(bytes::Bytes),
    /// Too large to hold: streamed from the store again.
    Streamed,
}

impl Read {
    fn object(&self) -> &SourceObject {
        match self {
            Read::Decoded(decoded) => &decoded.object,
            Read::Large(object, _) => object,
        }
    }
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

#[cfg(test)]
mod tests {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use aws_lambda_events::event::sqs::SqsMessage;
    use object_store::memory::InMemory;

    use super::*;
    use crate::schema::Layout;
    use crate::stage::fragment::Fragment;
    use crate::testing::sources::MemorySource;

    const SCHEMA: &str = r#"{"fields":[{"name":"id","type":"long"},{"name":"at","type":"timestamp"}]}"#;

    fn notification(bucket: &str, key: &str, event: &str) -> String {
        let encoded: String = key.split('/').map(|s| s.replace(' ', "+")).collect::<Vec<_>>().join("/");
        serde_json::json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2026-05-16T10:00:00.000Z", "eventName": event,
            "userIdentity": {"principalId": "test"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {}, "s3": {"s3SchemaVersion": "1.0", "configurationId": "t",
            "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": encoded, "size": 1, "eTag": format!("etag-{key}")}}
        }]})
        .to_string()
    }

    fn created(key: &str) -> String {
        notification("raw", key, "ObjectCreated:Put")
    }

    fn sqs(bodies: Vec<String>) -> SqsEvent {
        let mut event = SqsEvent::default();
        for (i, body) in bodies.into_iter().enumerate() {
            let mut message = SqsMessage::default();
            message.message_id = Some(format!("m{i}"));
            message.body = Some(body);
            event.records.push(message);
        }
        event
    }

    struct Fixture {
        source: Arc<MemorySource>,
        fragments: FragmentStore,
        quarantine: Quarantine,
        converter: Converter,
    }

    fn fixture(layout: Layout, options: ConverterOptions) -> Fixture {
        let schema = Arc::new(TableSchema::parse_with(SCHEMA, "t", layout).unwrap());
        let source = Arc::new(MemorySource::default());
        let lake = Arc::new(InMemory::new());
        let fragments = FragmentStore::new(lake.clone());
        let quarantine = Quarantine::new(lake);
        let converter = Converter::new(source.clone(), fragments.clone(), quarantine.clone(), schema, options);
        Fixture { source, fragments, quarantine, converter }
    }

    fn small() -> ConverterOptions {
        ConverterOptions { concurrency: 4, ..ConverterOptions::default() }
    }

    fn lines(ids: std::ops::Range<i64>) -> Vec<u8> {
        ids.map(|i| format!("{{\"id\":{i},\"at\":\"2026-05-16T10:00:00Z\"}}\n")).collect::<String>().into_bytes()
    }

    async fn staged(fixture: &Fixture) -> Vec<Fragment> {
        let mut fragments = Vec::new();
        for meta in fixture.fragments.list().await.unwrap() {
            fragments.push(fixture.fragments.read(&meta.location).await.unwrap());
        }
        fragments
    }

    fn staged_rows(fragments: &[Fragment]) -> Vec<(String, u64)> {
        let mut rows: Vec<(String, u64)> =
            fragments.iter().flat_map(|f| f.sources.iter().map(|s| (s.id.uri.clone(), s.rows))).collect();
        rows.sort();
        rows
    }

    #[tokio::test]
    async fn an_object_whose_every_line_is_refused_is_quarantined_and_staged_as_a_source_of_no_rows() {
        let f = fixture(Layout::default(), ConverterOptions { max_line_bytes: 200, ..small() });
        let long = |i: u64| format!("{{\"id\":{i},\"at\":\"2026-05-16T10:00:00Z\",\"pad\":\"{}\"}}\n", "x".repeat(300));
        f.source.put("raw", "a.json", format!("{}not json\n{}", long(1), long(2)).into_bytes());
        let report = f.converter.convert(&sqs(vec![created("a.json")])).await.unwrap();
        assert!(report.failed_messages.is_empty(), "answered: every line has its record");
        assert_eq!(f.quarantine.lines().await.unwrap().len(), 3);
        // The compactor commits it as a source of none, so a later conversion of the same
        // version (a raised line limit, a backfill) is a duplicate, never rows beside the record.
        let staged = staged(&f).await;
        assert_eq!(staged_rows(&staged), vec![("s3://raw/a.json".to_string(), 0)]);
        assert_eq!(staged[0].sources[0].total_rows, Some(0));
    }

    #[tokio::test]
    async fn every_bad_input_fails_or_quarantines_alone_and_good_rows_stage() {
        let f = fixture(Layout::default(), ConverterOptions { max_line_bytes: 200, ..small() });
        f.source.put("raw", "good one.json.zst", zstd::bulk::compress(&lines(0..2), 3).unwrap());
        f.source.put("raw", "plain.ndjson", lines(2..3));
        f.source.put("raw", "corrupt.json.zst", &b"garbage"[..]);
        let truncated = zstd::bulk::compress(&lines(0..500), 3).unwrap();
        f.source.put("raw", "truncated.json.zst", truncated[..truncated.len() / 2].to_vec());
        f.source.put("raw", "binary.json", &b"\x00\x01\x02 PNG not json\n\xff\xfe\n"[..]);
        f.source.put("raw", "empty.json", &b""[..]);
        let mut mixed = lines(10..11);
        mixed.extend_from_slice(b"{\"id\":\"eleven\"}\n{\"id\":12,\n");
        mixed.extend_from_slice(format!("{{\"id\":13,\"pad\":\"{}\"}}\n", "x".repeat(300)).as_bytes());
        mixed.extend(lines(14..15));
        f.source.put("raw", "mixed.json", mixed);
        let event = sqs(vec![
            created("good one.json.zst"),
            created("corrupt.json.zst"),
            created("missing.json"),
            created("plain.ndjson"),
            r#"{"Service":"Amazon S3","Event":"s3:TestEvent"}"#.to_string(),
            created("truncated.json.zst"),
            created("binary.json"),
            created("empty.json"),
            created("mixed.json"),
            notification("raw", "gone.json", "ObjectRemoved:Delete"),
            "not even json".to_string(),
        ]);
        let report = f.converter.convert(&event).await.unwrap();

        // Object-level failures fail only their own messages: SQS retries them, then dead-letters.
        assert_eq!(report.failed_messages, vec!["m1", "m10", "m2", "m5", "m6"]);
        assert_eq!(
            staged_rows(&staged(&f).await),
            vec![
                ("s3://raw/good one.json.zst".to_string(), 2),
                ("s3://raw/mixed.json".to_string(), 2),
                ("s3://raw/plain.ndjson".to_string(), 1),
            ]
        );
        // Line-level failures are quarantined with source, line number, reason and raw text.
        let refused = f.quarantine.lines().await.unwrap();
        let summary: Vec<(&str, u64)> = refused.iter().map(|q| (q.source.as_str(), q.line)).collect();
        assert_eq!(
            summary,
            vec![
                ("s3://raw/empty.json", 0),
                ("s3://raw/mixed.json", 2),
                ("s3://raw/mixed.json", 3),
                ("s3://raw/mixed.json", 4)
            ]
        );
        assert!(refused[0].error.contains("object is empty"), "{}", refused[0].error);
        assert_eq!(refused[1].raw, r#"{"id":"eleven"}"#);
        assert!(refused[3].error.contains("over the limit of 200 (INLET_MAX_LINE_BYTES)"), "{}", refused[3].error);
        assert_eq!((report.rows, report.quarantined), (5, 4));
    }

    #[tokio::test]
    async fn an_object_named_twice_in_a_batch_is_staged_once() {
        let f = fixture(Layout::default(), small());
        f.source.put("raw", "a.json", lines(0..3));
        let report = f.converter.convert(&sqs(vec![created("a.json"), created("a.json")])).await.unwrap();
        assert!(report.failed_messages.is_empty());
        assert_eq!(staged_rows(&staged(&f).await), vec![("s3://raw/a.json".to_string(), 3)]);
    }

    /// A notification of one version of `key`, as S3 sends it for a (versioned) bucket.
    fn created_version(key: &str, etag: &str, version: Option<&str>) -> String {
        let mut body: serde_json::Value = serde_json::from_str(&created(key)).unwrap();
        let object = &mut body["Records"][0]["s3"]["object"];
        object["eTag"] = etag.into();
        if let Some(version) = version {
            object["versionId"] = version.into();
        }
        body.to_string()
    }

    #[tokio::test]
    async fn a_version_overwritten_before_it_is_read_is_recorded_as_superseded_never_read_as_the_new_one() {
        let f = fixture(Layout::default(), small());
        f.source.put_version("raw", "a.json", "e1", None, lines(0..3));
        f.source.put_version("raw", "a.json", "e2", None, lines(100..105));
        let report = f
            .converter
            .convert(&sqs(vec![created_version("a.json", "e1", None), created_version("a.json", "e2", None)]))
            .await
            .unwrap();
        assert!(report.failed_messages.is_empty(), "a superseded version is answered, not retried");
        assert_eq!(report.superseded, vec!["s3://raw/a.json (ETag e1)".to_string()]);
        assert!(report.metrics().iter().any(|m| m.name == "SupersededVersions" && m.value == 1.0));
        let fragments = staged(&f).await;
        assert_eq!(staged_rows(&fragments), vec![("s3://raw/a.json".to_string(), 5)], "only e2's rows");
        assert_eq!(fragments[0].sources[0].id.etag.as_deref(), Some("e2"));
        let recorded = crate::ingest::SupersededLog::new(f.fragments.store()).versions().await.unwrap();
        assert_eq!(recorded.len(), 1);
        assert_eq!((recorded[0].uri.as_str(), recorded[0].etag.as_deref()), ("s3://raw/a.json", Some("e1")));
        assert!(recorded[0].reason.contains("overwritten"), "{}", recorded[0].reason);
    }

    #[tokio::test]
    async fn on_a_versioned_bucket_each_notified_version_is_read_by_its_id() {
        let f = fixture(Layout::default(), small());
        f.source.put_version("raw", "a.json", "e1", Some("v1"), lines(0..3));
        f.source.put_version("raw", "a.json", "e2", Some("v2"), lines(100..105));
        let report = f
            .converter
            .convert(&sqs(vec![
                created_version("a.json", "e1", Some("v1")),
                created_version("a.json", "e2", Some("v2")),
                created_version("a.json", "e3", Some("v3-deleted")),
            ]))
            .await
            .unwrap();
        assert!(report.failed_messages.is_empty());
        assert_eq!(report.superseded, vec!["s3://raw/a.json (version v3-deleted)".to_string()]);
        let mut read: Vec<(Option<String>, u64)> =
            staged(&f).await.iter().flat_map(|f| f.sources.iter().map(|s| (s.id.etag.clone(), s.rows))).collect();
        read.sort();
        assert_eq!(read, vec![(Some("e1".into()), 3), (Some("e2".into()), 5)], "two versions, two sources");
    }

    #[tokio::test]
    async fn the_same_bytes_under_two_etags_are_one_source() {
        let f = fixture(Layout::default(), small());
        // A multipart re-upload of the same content: a new version and ETag, the same bytes.
        f.source.put_version("raw", "a.json", "e1", Some("v1"), lines(0..3));
        f.source.put_version("raw", "a.json", "e2-2", Some("v2"), lines(0..3));
        let report = f
            .converter
            .convert(&sqs(vec![
                created_version("a.json", "e1", Some("v1")),
                created_version("a.json", "e2-2", Some("v2")),
            ]))
            .await
            .unwrap();
        assert!(report.failed_messages.is_empty());
        let fragments = staged(&f).await;
        assert_eq!(staged_rows(&fragments), vec![("s3://raw/a.json".to_string(), 3)], "staged once");
        let id = &fragments[0].sources[0].id;
        assert_eq!(id.digest.as_deref(), Some(crate::lineage::content_digest(&lines(0..3)).as_str()));
    }

    #[tokio::test]
    async fn an_object_over_the_limits_fails_alone_and_the_rest_of_its_batch_ingests() {
        let limits = ObjectLimits { max_bytes: 64 << 10, max_lines: 1000 };
        let f = fixture(Layout::default(), ConverterOptions { limits, ..small() });
        // A few hundred bytes that decompress to 8 MiB, and a file of more lines than allowed.
        let bomb: Vec<u8> = lines(0..1).into_iter().cycle().take(8 << 20).collect();
        f.source.put("raw", "bomb.json.zst", zstd::bulk::compress(&bomb, 19).unwrap());
        f.source.put("raw", "long.json", "{}\n".repeat(1001));
        f.source.put("raw", "good.json.zst", zstd::bulk::compress(&lines(0..5), 3).unwrap());
        let report = f
            .converter
            .convert(&sqs(vec![created("bomb.json.zst"), created("good.json.zst"), created("long.json")]))
            .await
            .unwrap();
        assert_eq!(report.failed_messages, vec!["m0", "m2"]);
        assert_eq!(staged_rows(&staged(&f).await), vec![("s3://raw/good.json.zst".to_string(), 5)]);
    }

    /// A source whose `slow*` objects take longer to read than any test waits.
    struct SlowSource(Arc<MemorySource>);

    #[async_trait::async_trait]
    impl ObjectSource for SlowSource {
        async fn fetch(&self, object: &SourceObject) -> Result<crate::ingest::Fetched> {
            if object.key.starts_with("slow") {
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            }
            self.0.fetch(object).await
        }
    }

    /// A fixture whose store holds `a.json`, `b.json` and `slow.json` (which never arrives),
    /// and a converter reading from it.
    fn with_a_slow_object() -> (Fixture, Converter) {
        let f = fixture(Layout::default(), small());
        let schema = Arc::new(TableSchema::parse_with(SCHEMA, "t", Layout::default()).unwrap());
        let converter = Converter::new(
            Arc::new(SlowSource(f.source.clone())),
            f.fragments.clone(),
            f.quarantine.clone(),
            schema,
            small(),
        );
        for key in ["a.json", "b.json", "slow.json"] {
            f.source.put("raw", key, lines(0..4));
        }
        (f, converter)
    }

    #[tokio::test]
    async fn near_the_deadline_finished_objects_are_sealed_and_the_rest_fail_for_redelivery() {
        let (f, converter) = with_a_slow_object();
        let event = sqs(vec![created("a.json"), created("slow.json"), created("b.json")]);
        let stop = tokio::time::Instant::now() + std::time::Duration::from_millis(500);
        // The slow object never arrives: only stopping at `stop` lets the batch answer.
        let report =
            tokio::time::timeout(std::time::Duration::from_secs(600), converter.convert_until(&event, Some(stop)))
                .await
                .expect("the batch answers at its stop, without the slow object")
                .unwrap();
        assert_eq!(report.failed_messages, vec!["m1"], "only the unfinished object is redelivered");
        assert_eq!(
            staged_rows(&staged(&f).await),
            vec![("s3://raw/a.json".to_string(), 4), ("s3://raw/b.json".to_string(), 4)]
        );
        assert_eq!(f.fragments.batches().await.unwrap().len(), 1, "what was staged is sealed");
    }

    #[tokio::test]
    async fn a_message_naming_several_objects_is_redelivered_while_one_of_them_is_unread() {
        let (_store, converter) = with_a_slow_object();
        // One message with two records (as an SNS fan-out or a hand-made body may carry).
        let mut both: serde_json::Value = serde_json::from_str(&created("a.json")).unwrap();
        let slow: serde_json::Value = serde_json::from_str(&created("slow.json")).unwrap();
        both["Records"].as_array_mut().unwrap().push(slow["Records"][0].clone());
        let event = sqs(vec![both.to_string(), created("b.json")]);
        let stop = tokio::time::Instant::now() + std::time::Duration::from_millis(500);
        let report =
            tokio::time::timeout(std::time::Duration::from_secs(600), converter.convert_until(&event, Some(stop)))
                .await
                .expect("the batch answers at its stop")
                .unwrap();
        assert_eq!(report.failed_messages, vec!["m0"], "its slow object was never read");
    }

    /// A store that streams `big*` objects slowly once their digest is taken: 4 KiB chunks,
    /// `pace` apart (their first opening starts late, so the other objects are read first).
    struct PacedSource {
        objects: Arc<MemorySource>,
        opened: std::sync::Mutex<HashSet<String>>,
        pace: std::time::Duration,
    }

    #[async_trait::async_trait]
    impl ObjectSource for PacedSource {
        async fn fetch(&self, object: &SourceObject) -> Result<crate::ingest::Fetched> {
            self.objects.fetch(object).await
        }

        async fn open(&self, object: &SourceObject) -> Result<crate::ingest::Opened> {
            let fetched = self.objects.fetch(object).await?;
            let length = fetched.data.len() as u64;
            let opened = |body| crate::ingest::Opened { body, length, etag: fetched.etag.clone() };
            if !object.key.starts_with("big") {
                return Ok(opened(fetched.data.clone().into()));
            }
            if self.opened.lock().unwrap().insert(object.key.clone()) {
                tokio::time::sleep(self.pace * 4).await;
                return Ok(opened(fetched.data.clone().into()));
            }
            let (data, pace) = (fetched.data.clone(), self.pace);
            let chunks = futures::stream::iter((0..data.len()).step_by(4096)).then(move |at| {
                let chunk = data.slice(at..(at + 4096).min(data.len()));
                async move {
                    tokio::time::sleep(pace).await;
                    Ok::<_, std::io::Error>(http_body::Frame::data(chunk))
                }
            });
            let body = aws_sdk_s3::primitives::SdkBody::from_body_1_x(http_body_util::StreamBody::new(chunks));
            Ok(opened(aws_sdk_s3::primitives::ByteStream::new(body)))
        }
    }

    #[tokio::test]
    async fn a_large_object_cut_off_by_the_deadline_fails_alone_and_what_it_staged_is_marked() {
        let options = ConverterOptions { piece_bytes: 4096, fragment_bytes: 16 << 10, ..small() };
        let mut f = fixture(Layout::default(), options);
        let pace = std::time::Duration::from_millis(10);
        let source = Arc::new(PacedSource { objects: f.source.clone(), opened: Default::default(), pace });
        let schema = Arc::new(TableSchema::parse_with(SCHEMA, "t", Layout::default()).unwrap());
        f.converter = Converter::new(source, f.fragments.clone(), f.quarantine.clone(), schema, options);
        // Lines that barely compress: the stored object is many zstd blocks (each decoded
        // only once whole) and many chunks, read over seconds.
        let text: String = (0..20_000)
            .map(|i: u64| {
                format!("{{\"id\":{i},\"pad\":\"{:032x}\"}}\n", twox_hash::XxHash3_128::oneshot(&i.to_le_bytes()))
            })
            .collect();
        let data = zstd::bulk::compress(text.as_bytes(), 3).unwrap();
        assert!(data.len() / 4096 > 100, "{} bytes", data.len());
        f.source.put("raw", "big.json.zst", data);
        f.source.put("raw", "small.json", lines(0..3));
        // About half way through the object (its first zstd block arrives after ~110 ms).
        let stop = tokio::time::Instant::now() + pace * 50;
        let event = sqs(vec![created("big.json.zst"), created("small.json")]);
        let report = f.converter.convert_until(&event, Some(stop));
        let report = tokio::time::timeout(std::time::Duration::from_secs(600), report)
            .await
            .expect("the batch answers at its stop")
            .unwrap();
        assert_eq!(report.failed_messages, vec!["m0"], "only the unfinished object is redelivered");
        assert_eq!((report.objects, report.rows), (1, 3));
        let totals = staged_totals(&staged(&f).await);
        let big = totals["s3://raw/big.json.zst"];
        assert!(big.0 > 0 && big.1.is_none() && big.2, "cut off part way, what it staged is marked failed: {big:?}");
        assert_eq!(totals["s3://raw/small.json"], (3, Some(3), false));
        assert_eq!(f.fragments.batches().await.unwrap().len(), 1, "what was staged is sealed");
    }

    #[tokio::test]
    async fn messages_delivered_before_are_isolated_unless_alone() {
        let mut f = fixture(Layout::default(), small());
        let isolated = Arc::new(crate::testing::isolation::KeptIsolation::default());
        f.converter = f.converter.with_isolation(isolated.clone());
        for key in ["a.json", "b.json", "c.json"] {
            f.source.put("raw", key, lines(0..2));
        }
        let mut event = sqs(vec![created("a.json"), created("b.json"), created("c.json")]);
        event.records[1].attributes.insert("ApproximateReceiveCount".into(), "2".into());
        let report = f.converter.convert(&event).await.unwrap();
        assert_eq!((report.isolated.clone(), report.failed_messages.clone()), (vec!["m1".to_string()], vec![]));
        assert_eq!(isolated.bodies().as_slice(), [created("b.json")], "its body, to be converted alone");
        let mut staged: Vec<String> = staged_rows(&staged(&f).await).into_iter().map(|(uri, _)| uri).collect();
        staged.sort();
        assert_eq!(staged, vec!["s3://raw/a.json", "s3://raw/c.json"]);

        // Alone in its batch (as the isolation queue delivers it), it is converted.
        let mut alone = sqs(vec![created("b.json")]);
        alone.records[0].attributes.insert("ApproximateReceiveCount".into(), "3".into());
        let report = f.converter.convert(&alone).await.unwrap();
        assert!(report.isolated.is_empty() && report.failed_messages.is_empty());
        assert_eq!(report.rows, 2);
    }

    #[tokio::test]
    async fn the_stop_leaves_the_margin_or_a_quarter_of_the_time() {
        let f = fixture(
            Layout::default(),
            ConverterOptions { deadline_margin: std::time::Duration::from_secs(20), ..small() },
        );
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let left = |deadline_ms: u64| f.converter.stop_before(deadline_ms) - tokio::time::Instant::now();
        let long = left(now_ms + 300_000);
        assert!(long > std::time::Duration::from_secs(279) && long <= std::time::Duration::from_secs(280), "{long:?}");
        let short = left(now_ms + 8_000);
        assert!(
            short > std::time::Duration::from_millis(5_900) && short <= std::time::Duration::from_secs(6),
            "{short:?}"
        );
    }

    #[tokio::test]
    async fn unknown_fields_are_ignored_by_default_and_rescued_on_request() {
        let data = b"{\"id\":1,\"extra\":{\"k\":[1,2]},\"more\":\"x\"}\n{\"id\":2}\n".to_vec();
        let ignoring = fixture(Layout::default(), small());
        ignoring.source.put("raw", "a.json", data.clone());
        ignoring.converter.convert(&sqs(vec![created("a.json")])).await.unwrap();
        let batches = &staged(&ignoring).await[0].batches;
        assert!(batches[0].column_by_name("_rescued").is_none());
        assert_eq!(batches[0].num_rows(), 2);

        let rescuing = fixture(Layout { rescue_unknown_fields: true, ..Layout::default() }, small());
        rescuing.source.put("raw", "a.json", data);
        rescuing.converter.convert(&sqs(vec![created("a.json")])).await.unwrap();
        let batches = &staged(&rescuing).await[0].batches;
        let rescued = batches[0].column_by_name("_rescued").unwrap().as_string::<i32>();
        assert_eq!(rescued.value(0), r#"{"extra":{"k":[1,2]},"more":"x"}"#);
        assert!(rescued.is_null(1));
    }

    #[tokio::test]
    async fn rows_carry_their_ingestion_time_when_configured() {
        let f = fixture(Layout { ingested_at: true, ..Layout::default() }, small());
        f.source.put("raw", "a.json", lines(0..2));
        let before = chrono::Utc::now().timestamp_micros();
        f.converter.convert(&sqs(vec![created("a.json")])).await.unwrap();
        let after = chrono::Utc::now().timestamp_micros();
        let batch = &staged(&f).await[0].batches[0];
        let at = batch.column_by_name("_ingested_at").unwrap();
        let at = at.as_primitive::<arrow_array::types::TimestampMicrosecondType>();
        assert!(at.iter().all(|t| t.is_some_and(|t| (before..=after).contains(&t))));
    }

    #[tokio::test]
    async fn rows_carry_the_key_and_etag_of_their_object() {
        let f = fixture(Layout::default(), small());
        f.source.put("raw", "dir/a b.json", lines(0..2));
        f.converter.convert(&sqs(vec![created("dir/a b.json")])).await.unwrap();
        let batch = &staged(&f).await[0].batches[0];
        let files = batch.column_by_name("_source_file").unwrap().as_string::<i32>();
        let etags = batch.column_by_name("_source_etag").unwrap().as_string::<i32>();
        assert_eq!((files.value(1), etags.value(1)), ("s3://raw/dir/a b.json", "etag-dir/a b.json"));
    }

    #[tokio::test]
    async fn fragments_roll_at_the_configured_size_between_objects() {
        let f = fixture(Layout::default(), ConverterOptions { fragment_bytes: 1, concurrency: 2, ..small() });
        for i in 0..5 {
            f.source.put("raw", &format!("o{i}.json"), lines(i * 10..i * 10 + 10));
        }
        let report = f.converter.convert(&sqs((0..5).map(|i| created(&format!("o{i}.json"))).collect())).await.unwrap();
        let fragments = staged(&f).await;
        assert_eq!(fragments.len(), 5, "a fragment per object when every object fills one");
        assert!(fragments.iter().all(|fragment| fragment.sources.len() == 1));
        assert!(fragments.iter().all(|fragment| fragment.batch.as_deref() == Some(report.batch.as_str())));
        assert_eq!(report.fragments.len(), 5);
        assert_eq!(report.rows, 50);
        // Sealed once all five are staged, so a compactor may take them.
        let batches = f.fragments.batches().await.unwrap();
        assert_eq!(batches.get(&report.batch), Some(&crate::stage::fragment::BatchState::Sealed));
        assert_eq!(batches.len(), 1);
    }

    #[tokio::test]
    async fn a_fragment_that_cannot_be_staged_fails_the_batch() {
        // A file where the staging directory should be: every fragment upload fails.
        let lake_dir = tempfile::tempdir().unwrap();
        std::fs::write(lake_dir.path().join("_inlet"), b"not a directory").unwrap();
        let lake = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(lake_dir.path()).unwrap());
        let schema = Arc::new(TableSchema::parse_with(SCHEMA, "t", Layout::default()).unwrap());
        let source = Arc::new(MemorySource::default());
        for i in 0..3 {
            source.put("raw", &format!("o{i}.json"), lines(i * 10..i * 10 + 10));
        }
        let options = ConverterOptions { fragment_bytes: 1, concurrency: 2, ..small() };
        let converter =
            Converter::new(source, FragmentStore::new(lake.clone()), Quarantine::new(lake), schema, options);
        let event = sqs((0..3).map(|i| created(&format!("o{i}.json"))).collect());
        let err = converter.convert(&event).await.unwrap_err();
        assert!(matches!(err, Error::Storage(_)), "{err}");
    }

    #[tokio::test]
    async fn key_partitions_stage_fragments_per_partition_and_keys_without_one_fail() {
        let layout = Layout { partition: Some("date=key".parse().unwrap()), ..Layout::default() };
        let f = fixture(layout, small());
        f.source.put("raw", "web/date=2026-05-16/a.json", lines(0..2));
        f.source.put("raw", "web/date=2026-05-17/b.json", lines(2..5));
        f.source.put("raw", "web/undated/c.json", lines(5..6));
        let event = sqs(vec![
            created("web/date=2026-05-16/a.json"),
            created("web/date=2026-05-17/b.json"),
            created("web/undated/c.json"),
        ]);
        let report = f.converter.convert(&event).await.unwrap();
        assert_eq!(report.failed_messages, vec!["m2"]);
        let mut paths = report.fragments.clone();
        paths.sort();
        assert!(paths[0].starts_with("_inlet/fragments/date=2026-05-16/"), "{paths:?}");
        assert!(paths[1].starts_with("_inlet/fragments/date=2026-05-17/"), "{paths:?}");
        for fragment in staged(&f).await {
            let dates = fragment.batches[0].column_by_name("date").unwrap().as_string::<i32>();
            assert!(fragment.path.as_ref().contains(&format!("date={}", dates.value(0))));
        }
    }

    #[tokio::test]
    async fn field_partitions_split_one_object_across_dates() {
        let layout = Layout { partition: Some("day=at".parse().unwrap()), ..Layout::default() };
        let f = fixture(layout, small());
        f.source.put(
            "raw",
            "a.json",
            &b"{\"id\":1,\"at\":\"2026-05-15T23:59:59Z\"}\n{\"id\":2,\"at\":\"2026-05-16T00:00:01Z\"}\n"[..],
        );
        let report = f.converter.convert(&sqs(vec![created("a.json")])).await.unwrap();
        assert_eq!(report.fragments.len(), 2);
        let fragments = staged(&f).await;
        let per_fragment: Vec<(String, u64)> =
            fragments.iter().map(|f| (f.path.to_string(), f.sources[0].rows)).collect();
        assert!(per_fragment[0].0.contains("day=2026-05-15") && per_fragment[0].1 == 1, "{per_fragment:?}");
        assert!(per_fragment[1].0.contains("day=2026-05-16") && per_fragment[1].1 == 1, "{per_fragment:?}");
    }

    /// An object of `count` lines over two dates, every 97th line refused by the schema.
    fn dated_lines(count: i64) -> Vec<u8> {
        let mut text = String::new();
        for i in 0..count {
            let day = if i % 3 == 0 { 15 } else { 16 };
            if i % 97 == 5 {
                text.push_str(&format!("{{\"id\":\"not a number {i}\",\"at\":\"2026-05-{day}T10:00:00Z\"}}\n"));
            } else {
                text.push_str(&format!("{{\"id\":{i},\"at\":\"2026-05-{day}T10:00:00Z\"}}\n"));
            }
        }
        text.into_bytes()
    }

    /// Per staged source: rows, the total some fragment states, and whether any entry failed.
    fn staged_totals(fragments: &[Fragment]) -> BTreeMap<String, (u64, Option<u64>, bool)> {
        let mut totals: BTreeMap<String, (u64, Option<u64>, bool)> = BTreeMap::new();
        for source in fragments.iter().flat_map(|f| &f.sources) {
            let entry = totals.entry(source.id.uri.clone()).or_default();
            entry.0 += source.rows;
            entry.1 = source.total_rows.or(entry.1);
            entry.2 |= source.failed;
        }
        totals
    }

    /// What a conversion staged, to compare two ways of reading the same objects.
    #[derive(Debug)]
    struct StagedOutcome {
        landed: Landed,
        totals: BTreeMap<String, (u64, Option<u64>, bool)>,
        fragments: usize,
    }

    /// Rows and refusals, however they were read.
    #[derive(Debug, PartialEq)]
    struct Landed {
        /// Every staged row's `id`, sorted.
        ids: Vec<i64>,
        /// Quarantined lines: number and reason.
        refused: Vec<(u64, String)>,
        /// Rows and quarantined lines, as reported.
        counts: (u64, u64),
    }

    async fn staged_outcome(f: &Fixture, report: &ConversionReport) -> StagedOutcome {
        let fragments = staged(f).await;
        let mut ids: Vec<i64> = fragments
            .iter()
            .flat_map(|f| &f.batches)
            .flat_map(|b| {
                b.column_by_name("id").unwrap().as_primitive::<arrow_array::types::Int64Type>().values().to_vec()
            })
            .collect();
        ids.sort();
        let refused = f.quarantine.lines().await.unwrap().into_iter().map(|q| (q.line, q.error)).collect();
        StagedOutcome {
            landed: Landed { ids, refused, counts: (report.rows, report.quarantined) },
            totals: staged_totals(&fragments),
            fragments: fragments.len(),
        }
    }

    #[tokio::test]
    async fn a_large_object_is_read_in_pieces_and_lands_as_it_would_whole() {
        let layout = Layout { partition: Some("day=at".parse().unwrap()), ..Layout::default() };
        let data = zstd::bulk::compress(&dated_lines(3000), 3).unwrap();
        let whole = fixture(layout.clone(), small());
        let in_pieces = fixture(layout, ConverterOptions { piece_bytes: 4096, fragment_bytes: 16 << 10, ..small() });
        let mut outcomes = Vec::new();
        for f in [&whole, &in_pieces] {
            f.source.put("raw", "big.json.zst", data.clone());
            f.source.put("raw", "small.json", lines(0..3));
            let report = f.converter.convert(&sqs(vec![created("big.json.zst"), created("small.json")])).await.unwrap();
            assert!(report.failed_messages.is_empty());
            outcomes.push(staged_outcome(f, &report).await);
        }
        let (pieces, whole) = (outcomes.pop().unwrap(), outcomes.pop().unwrap());
        assert!(pieces.fragments > whole.fragments + 2, "fragments rolled inside the object: {pieces:?} vs {whole:?}");
        assert_eq!(pieces.landed, whole.landed, "the same rows and refusals");
        let big = pieces.totals["s3://raw/big.json.zst"];
        assert_eq!((big.1, big.2), (Some(big.0), false), "its total is stated once it is read to the end");
        assert_eq!(whole.landed.refused.len(), 31);
    }

    #[tokio::test]
    async fn an_object_decoding_to_more_than_a_piece_holds_is_read_in_steps_and_lands_as_it_would_whole() {
        // 40,000 short lines: 0.5 MiB of text, several MiB of rows and lineage.
        let mut text = Vec::new();
        for i in 0..40_000i64 {
            match i % 1000 {
                7 => text.extend_from_slice(b"{\"id\":\"seven\"}\n"),
                _ => text.extend_from_slice(format!("{{\"id\":{i}}}\n").as_bytes()),
            }
        }
        let data = zstd::bulk::compress(&text, 3).unwrap();
        let whole = fixture(Layout::default(), small());
        let stepped =
            fixture(Layout::default(), ConverterOptions { piece_bytes: 1 << 20, fragment_bytes: 256 << 10, ..small() });
        let mut outcomes = Vec::new();
        for f in [&whole, &stepped] {
            f.source.put("raw", "tiny.json.zst", data.clone());
            let report = f.converter.convert(&sqs(vec![created("tiny.json.zst")])).await.unwrap();
            assert!(report.failed_messages.is_empty());
            outcomes.push(staged_outcome(f, &report).await);
        }
        let (stepped, whole) = (outcomes.pop().unwrap(), outcomes.pop().unwrap());
        assert_eq!(whole.fragments, 1, "read whole: one fragment");
        assert!(stepped.fragments > 2, "read in steps, fragments rolled inside the object: {}", stepped.fragments);
        assert_eq!(stepped.landed, whole.landed, "the same rows and refusals");
        assert_eq!(stepped.landed.counts, (39_960, 40));
        let tiny = stepped.totals["s3://raw/tiny.json.zst"];
        assert_eq!((tiny.1, tiny.2), (Some(tiny.0), false), "its total is stated once it is read to the end");
    }

    #[tokio::test]
    async fn the_open_writers_together_hold_at_most_a_fragments_worth() {
        let layout = Layout { partition: Some("day=at".parse().unwrap()), ..Layout::default() };
        let f = fixture(layout, ConverterOptions { fragment_bytes: 64 << 10, ..small() });
        for key in ["days-1.json", "days-2.json"] {
            let mut text = String::new();
            for i in 0..20_000i64 {
                text.push_str(&format!("{{\"id\":{i},\"at\":{}}}\n", 1_778_900_000 + (i % 200) * 86_400));
            }
            f.source.put("raw", key, text.into_bytes());
        }
        let report = f.converter.convert(&sqs(vec![created("days-1.json"), created("days-2.json")])).await.unwrap();
        assert_eq!(report.rows, 40_000);
        let fragments = staged(&f).await;
        // Each of the 200 partitions' writers would stay under 64 KiB with both objects' rows,
        // one fragment per partition; together they pass it, and the fullest are staged as
        // they do, so the second object's rows go to new writers.
        assert!(fragments.len() > 300, "{} fragments", fragments.len());
        let totals = staged_totals(&fragments);
        assert_eq!((totals["s3://raw/days-1.json"].0, totals["s3://raw/days-2.json"].0), (20_000, 20_000));
        assert!(
            fragments
                .iter()
                .all(|fragment| fragment.batches.iter().map(|b| b.get_array_memory_size()).sum::<usize>()
                    < 2 * (64 << 10))
        );
    }

    #[tokio::test]
    async fn a_large_object_failing_part_way_fails_alone_and_what_it_staged_is_marked() {
        let f = fixture(Layout::default(), ConverterOptions { piece_bytes: 4096, fragment_bytes: 16 << 10, ..small() });
        // Lines that barely compress, so the first blocks of the cut frame are whole.
        let text: String = (0..5000)
            .map(|i: u64| {
                format!("{{\"id\":{i},\"pad\":\"{:032x}\"}}\n", twox_hash::XxHash3_128::oneshot(&i.to_le_bytes()))
            })
            .collect();
        let data = zstd::bulk::compress(text.as_bytes(), 3).unwrap();
        f.source.put("raw", "cut.json.zst", data[..data.len() * 3 / 4].to_vec());
        f.source.put("raw", "good.json", lines(0..3));
        let report = f.converter.convert(&sqs(vec![created("cut.json.zst"), created("good.json")])).await.unwrap();
        assert_eq!(report.failed_messages, vec!["m0"]);
        assert_eq!((report.objects, report.rows), (1, 3), "only the good object is counted");
        let totals = staged_totals(&staged(&f).await);
        let cut = totals["s3://raw/cut.json.zst"];
        assert!(cut.0 > 0 && cut.1.is_none() && cut.2, "rows staged before the damage, marked failed: {cut:?}");
        assert_eq!(totals["s3://raw/good.json"], (3, Some(3), false));
    }

    /// A store that only streams (a whole read is refused), counting opens; with `overwrite`
    /// set, a key is overwritten with other bytes right after its first opening.
    struct StreamingSource {
        objects: Arc<MemorySource>,
        opens: std::sync::atomic::AtomicUsize,
        overwrite: bool,
    }

    #[async_trait::async_trait]
    impl ObjectSource for StreamingSource {
        async fn fetch(&self, object: &SourceObject) -> Result<crate::ingest::Fetched> {
            panic!("{} was downloaded whole", object.uri());
        }

        async fn open(&self, object: &SourceObject) -> Result<crate::ingest::Opened> {
            let fetched = self.objects.fetch(object).await?;
            if self.opens.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 && self.overwrite {
                self.objects.put_version(&object.bucket, &object.key, "etag-new", None, lines(0..1));
            }
            let length = fetched.data.len() as u64;
            Ok(crate::ingest::Opened { body: fetched.data.into(), length, etag: fetched.etag })
        }
    }

    fn streaming_fixture(overwrite: bool) -> (Fixture, Arc<StreamingSource>) {
        let options = ConverterOptions { piece_bytes: 4096, fragment_bytes: 16 << 10, ..small() };
        let mut f = fixture(Layout::default(), options);
        let source = Arc::new(StreamingSource { objects: f.source.clone(), opens: Default::default(), overwrite });
        let schema = Arc::new(TableSchema::parse_with(SCHEMA, "t", Layout::default()).unwrap());
        f.converter = Converter::new(source.clone(), f.fragments.clone(), f.quarantine.clone(), schema, options);
        (f, source)
    }

    #[tokio::test]
    async fn an_object_stored_larger_than_a_piece_is_streamed_twice_never_held_whole() {
        let (f, source) = streaming_fixture(false);
        let text = dated_lines(3000);
        let data = zstd::bulk::compress(&text, 3).unwrap();
        assert!(data.len() > 4096, "stored larger than a piece");
        f.source.put_version("raw", "big.json.zst", "etag-big.json.zst", None, data.clone());
        let report = f.converter.convert(&sqs(vec![created("big.json.zst")])).await.unwrap();
        assert!(report.failed_messages.is_empty(), "{report:?}");
        assert_eq!(source.opens.load(std::sync::atomic::Ordering::SeqCst), 2, "once for the digest, once to read");
        assert_eq!((report.rows, report.quarantined), (3000 - 31, 31));
        let fragments = staged(&f).await;
        assert!(fragments.len() > 2, "fragments rolled inside the object");
        let ids: BTreeSet<Option<String>> =
            fragments.iter().flat_map(|f| &f.sources).map(|source| source.id.digest.clone()).collect();
        assert_eq!(ids, BTreeSet::from([Some(content_digest(&data))]), "the digest of the stored bytes");
        assert_eq!(staged_totals(&fragments)["s3://raw/big.json.zst"], (3000 - 31, Some(3000 - 31), false));
    }

    #[tokio::test]
    async fn a_streamed_object_overwritten_between_its_two_reads_is_recorded_as_superseded() {
        let (f, _) = streaming_fixture(true);
        let data = zstd::bulk::compress(&dated_lines(3000), 3).unwrap();
        f.source.put_version("raw", "big.json.zst", "etag-big.json.zst", None, data);
        let report = f.converter.convert(&sqs(vec![created("big.json.zst")])).await.unwrap();
        assert!(report.failed_messages.is_empty(), "answered: the new version has its own notification");
        assert_eq!(report.superseded.len(), 1, "{report:?}");
        assert_eq!((report.objects, report.rows), (0, 0));
        assert!(staged(&f).await.is_empty(), "nothing of either version staged");
        let recorded = crate::ingest::SupersededLog::new(f.fragments.store()).versions().await.unwrap();
        assert_eq!(recorded.len(), 1);
    }

    #[derive(Default)]
    struct CountingTrigger(std::sync::atomic::AtomicUsize);

    #[async_trait::async_trait]
    impl CompactionTrigger for CountingTrigger {
        async fn request(&self, _reason: &str) -> Result<()> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_compaction_is_requested_once_a_file_worth_is_staged() {
        let trigger = Arc::new(CountingTrigger::default());
        let mut f = fixture(Layout::default(), small());
        f.converter = f.converter.with_trigger(trigger.clone(), 4000);
        f.source.put("raw", "a.json", lines(0..10));
        f.converter.convert(&sqs(vec![created("a.json")])).await.unwrap();
        assert_eq!(trigger.0.load(std::sync::atomic::Ordering::SeqCst), 0, "one small fragment is not enough");
        for i in 1..4 {
            f.source.put("raw", &format!("b{i}.json"), lines(i * 100..i * 100 + 100));
            f.converter.convert(&sqs(vec![created(&format!("b{i}.json"))])).await.unwrap();
        }
        assert!(trigger.0.load(std::sync::atomic::Ordering::SeqCst) >= 1, "staged bytes crossed the threshold");
    }

    #[tokio::test]
    async fn handle_reports_failed_messages_as_batch_item_failures() {
        let f = fixture(Layout::default(), small());
        f.source.put("raw", "corrupt.json.zst", &b"garbage"[..]);
        let response = f.converter.handle(&sqs(vec![created("corrupt.json.zst")])).await.unwrap();
        assert_eq!(response.batch_item_failures.len(), 1);
        assert_eq!(response.batch_item_failures[0].item_identifier, "m0");
    }
}
