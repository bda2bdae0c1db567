//! The converter: SQS batches of S3 notifications in, Parquet fragments out, and a partial
//! batch response naming the messages whose objects could not be ingested.
//!
//! Objects stream through a pipeline: up to `concurrency` objects download at once and are
//! decompressed and decoded on the blocking pool, one per decode slot (one per core, at least
//! two), while the decoded ones are encoded into
//! one fragment writer per partition. Once the open writers together hold `fragment_bytes`,
//! the fullest is staged, so memory is set by configuration, not by the batch, its objects or
//! their partitions ([`ConverterMemory`]). A fragment may roll inside an object:
//! each entry states the object's total rows, or a later one does for a large object.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use futures::StreamExt;
use tokio::sync::Semaphore;

use crate::config::Settings;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::faults::crash_point;
use crate::framing::Framing;
use crate::ingest::decode::JsonDecoder;
use crate::ingest::decompress::ObjectLimits;
use crate::ingest::event::BatchPlan;
use crate::ingest::failures::FailureLog;
use crate::ingest::quarantine::Quarantine;
use crate::ingest::source::{ObjectSource, S3Source};
use crate::ingest::superseded::SupersededLog;
use crate::ingest::trigger::{CompactionTrigger, LambdaTrigger, SealedBatches};
use crate::lineage::SourceObject;
use crate::schema::TableSchema;
use crate::stage::fragment::{FragmentEncoding, FragmentStore};

mod large;
mod memory;
mod read;
mod report;
mod staging;

use large::LargeOutcome;
pub use memory::{ConverterMemory, ZSTD_WINDOW_BYTES, blocking_threads, runtime};
use read::Read;
pub use report::ConversionReport;
use staging::Staging;

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
    failures: FailureLog,
    schema: Arc<TableSchema>,
    decoder: JsonDecoder,
    options: ConverterOptions,
    /// Asked for a compaction once this many bytes are staged.
    trigger: Option<(Arc<dyn CompactionTrigger>, u64)>,
    /// Where each sealed batch is announced, and the table's name there.
    announce: Option<(Arc<dyn SealedBatches>, String)>,
    /// Objects decompressed and decoded whole at once, or holding their rows until staged.
    decode_slots: Arc<Semaphore>,
    decode_slots_count: usize,
    /// How records are laid out in the objects (`INLET_FRAMING`).
    framing: Framing,
}

/// Longest a failure record's write may take: it only explains a failure, and the invocation's
/// time is for the objects still to read.
const RECORD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Longest a sealed batch's announcement may take: the batch is sealed either way, and the
/// invocation's time is for answering its messages.
const ANNOUNCE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// When an invocation due to end at `deadline_epoch_ms` stops taking objects: `margin` before
/// it, but never more than a quarter of the time left.
pub fn stop_before(deadline_epoch_ms: u64, margin: std::time::Duration) -> tokio::time::Instant {
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64);
    let left = std::time::Duration::from_millis(deadline_epoch_ms.saturating_sub(now_ms));
    tokio::time::Instant::now() + left - margin.min(left / 4)
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
        let failures = FailureLog::new(fragments.store());
        let decode_slots_count = decode_slots(options.concurrency);
        let decode_slots = Arc::new(Semaphore::new(decode_slots_count));
        Self {
            source,
            fragments,
            quarantine,
            superseded,
            failures,
            schema,
            decoder,
            options,
            trigger: None,
            announce: None,
            decode_slots,
            decode_slots_count,
            framing: Framing::Lines,
        }
    }

    /// Reads objects whose records are laid out as `framing` says.
    pub fn with_framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    /// Requests a compaction from `trigger` whenever staged fragments reach `staged_bytes`.
    pub fn with_trigger(mut self, trigger: Arc<dyn CompactionTrigger>, staged_bytes: u64) -> Self {
        self.trigger = Some((trigger, staged_bytes));
        self
    }

    /// Announces each sealed batch to `sealed` as a batch of `table` (the route's name), for
    /// its commit to follow within seconds.
    pub fn with_announcements(mut self, sealed: Arc<dyn SealedBatches>, table: String) -> Self {
        self.announce = Some((sealed, table));
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
        )
        .with_framing(settings.framing.clone());
        match (&settings.compactor_function, &context.lambda) {
            (Some(function), Some(lambda)) => converter.with_trigger(
                Arc::new(LambdaTrigger::new(lambda.clone(), function.clone())),
                settings.target_file_bytes,
            ),
            _ => converter,
        }
    }

    /// When an invocation due to end at `deadline` (Lambda's, in milliseconds since the epoch)
    /// stops taking objects: the deadline margin before it, but never more than a quarter of
    /// the time left.
    pub fn stop_before(&self, deadline_epoch_ms: u64) -> tokio::time::Instant {
        stop_before(deadline_epoch_ms, self.options.deadline_margin)
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
        self.convert_plan(BatchPlan::from_sqs(event), stop).await
    }

    /// [`Converter::convert_until`] for a batch already read (a routed batch's share).
    pub(crate) async fn convert_plan(
        &self,
        plan: BatchPlan,
        stop: Option<tokio::time::Instant>,
    ) -> Result<ConversionReport> {
        let started = std::time::Instant::now();
        let mut answers = Answers::new(&plan);
        let report = ConversionReport { batch: uuid::Uuid::new_v4().simple().to_string(), ..Default::default() };
        let mut staging = Staging::new(self, report);
        self.stage_objects(plan.objects, stop, &mut answers, &mut staging).await?;
        let mut report = staging.report;
        if !report.fragments.is_empty() {
            crash_point("converter.before_seal");
            self.seal(&report).await?;
            crash_point("converter.after_seal");
            self.announce_sealed(&report.batch).await;
            self.request_compaction_if_due().await;
        }
        report.failed_messages = answers.failed();
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

    /// Reads `objects` (up to `concurrency` at once) and stages them as they come, until they
    /// are all staged or `stop`; every upload has ended when this returns.
    async fn stage_objects(
        &self,
        objects: Vec<(SourceObject, Vec<String>)>,
        stop: Option<tokio::time::Instant>,
        answers: &mut Answers,
        staging: &mut Staging<'_>,
    ) -> Result<()> {
        // Decoded objects hold a decode slot each, so a channel of that many never makes a
        // decoded object wait; objects left to be read in pieces wait here compressed.
        let (decoded_tx, mut decoded_rx) = tokio::sync::mpsc::channel(self.decode_slots_count);
        let produce = async move {
            futures::stream::iter(objects)
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
            let staged = self.stage_as_read(&mut decoded_rx, stop, answers, staging).await;
            // Even after a failure: no upload is left running once the batch has answered.
            let uploaded = staging.uploaded().await;
            staged.and(uploaded)
        };
        // The consumer ends first only at the deadline; the reads still running are dropped.
        tokio::pin!(produce, consume);
        tokio::select! {
            biased;
            staged = &mut consume => staged,
            () = &mut produce => consume.await,
        }
    }

    /// Stages each object as its read arrives, until every read has arrived or `stop`, then
    /// stages the open writers.
    async fn stage_as_read(
        &self,
        decoded_rx: &mut tokio::sync::mpsc::Receiver<(Result<Read>, SourceObject, Vec<String>)>,
        stop: Option<tokio::time::Instant>,
        answers: &mut Answers,
        staging: &mut Staging<'_>,
    ) -> Result<()> {
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
                        unfinished_messages = answers.unanswered.len(),
                        "the invocation's deadline is near: sealing what is staged, failing the rest for redelivery"
                    );
                    break;
                }
            };
            let Some((result, object, ids)) = received else { break };
            answers.object_read(&ids);
            match result {
                // Two versions of one key with the same bytes (a re-upload) are one source:
                // a batch holds each source once.
                Ok(read) if !staging.takes(read.object()) => {
                    tracing::info!(object = %read.object().describe(), "same content as a version already in this batch");
                }
                Ok(Read::Decoded(decoded)) => staging.stage(decoded).await?,
                Ok(Read::Large(object, stored)) => {
                    tracing::info!(object = %object.uri(), "large object: reading it in pieces");
                    if let LargeOutcome::Failed(err) = staging.stage_large(object.clone(), stored, stop).await? {
                        self.object_failed(&object, err, ids, answers, &mut staging.report).await?;
                    }
                }
                Err(err) => self.object_failed(&object, err, ids, answers, &mut staging.report).await?,
            }
        }
        staging.flush_all().await
    }

    /// Answers for an object that could not be read: a version found gone is recorded as
    /// superseded and its messages answered (the version that replaced it was notified on its
    /// own; a failed record retries them); any other failure fails its messages.
    async fn object_failed(
        &self,
        object: &SourceObject,
        err: Error,
        ids: Vec<String>,
        answers: &mut Answers,
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
                // Its reason beside the table, for the DLQ's tools; the messages fail either way.
                let recorded = tokio::time::timeout(RECORD_TIMEOUT, self.failures.record(object, &err)).await;
                if !matches!(recorded, Ok(Ok(_))) {
                    tracing::warn!(object = %object.uri(), outcome = ?recorded, "could not record the failure");
                }
                answers.failed.extend(ids);
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

    /// Announces a sealed batch; a failure only leaves it to the schedule (the batch is sealed:
    /// failing its messages would convert them again for nothing).
    async fn announce_sealed(&self, batch: &str) {
        let Some((sealed, table)) = &self.announce else { return };
        match tokio::time::timeout(ANNOUNCE_TIMEOUT, sealed.sealed(table, batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::warn!(batch, table = %table, error = %err, "could not announce the sealed batch: the schedule commits it");
            }
            Err(_) => {
                tracing::warn!(batch, table = %table, "announcing the sealed batch timed out: the schedule commits it")
            }
        }
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
}

/// The messages of a batch: those failed, and those still waiting for objects to be read.
struct Answers {
    failed: BTreeSet<String>,
    /// Objects still to read per message: a message naming several is answered only once
    /// every one of them was read (or failed), never at the deadline with one unread.
    unanswered: BTreeMap<String, usize>,
}

impl Answers {
    /// The messages of `plan`; an unreadable message fails.
    fn new(plan: &BatchPlan) -> Self {
        let mut failed = BTreeSet::new();
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
        Self { failed, unanswered }
    }

    /// One object of the messages `ids` has been read (or has failed).
    fn object_read(&mut self, ids: &[String]) {
        for id in ids {
            if let Some(left) = self.unanswered.get_mut(id) {
                *left -= 1;
                if *left == 0 {
                    self.unanswered.remove(id);
                }
            }
        }
    }

    /// The messages to fail: those that failed, and those with an object never read.
    fn failed(self) -> Vec<String> {
        let mut failed = self.failed;
        failed.extend(self.unanswered.into_keys());
        failed.into_iter().collect()
    }
}

#[cfg(test)]
mod tests;
