//! Partition completeness: which time windows of a table (days, or hours when the table is
//! also partitioned by hour) hold everything they will get, so that a daily consumer can wait
//! for a day the way it waited for the batch job that Inlet replaces.
//!
//! A window is complete once it has closed, a settle time has passed, no notification can
//! still be on its way (no backlog on the ingest queues, and longer ago than the queues let an
//! unanswered message live), and no fragment of it is staged. The compactor checks after each
//! run and records how far the table is complete (`_inlet/complete/latest.json`, a watermark)
//! and a marker per window it completes (`_inlet/complete/windows/<window>.json`), both naming
//! the table version that holds the window's rows. A later commit into a completed window (a
//! producer writing a closed window's objects late) is recorded on that window's marker.
//!
//! The cost of a check is one read when no window closed since the last one; otherwise a
//! queue probe, one listing of the staging area (what is staged now, not what ever was) and a
//! write per window completed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeDelta, Timelike, Utc};
use deltalake::DeltaTable;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layout::{COMPLETE_STATE, NULL_PARTITION, complete_marker, late_commit, late_commits, staged_partition};
use crate::partition::{PartitionSource, PartitionSpec, ValueType};
use crate::stage::FragmentStore;

/// Window markers written at once.
const MARKER_WRITES_IN_FLIGHT: usize = 16;

/// Names of `key` partition columns taken to hold dates (`date=2026-05-16/` key segments).
pub const DATE_COLUMN_NAMES: &[&str] = &["date", "dt", "day", "ds"];

/// How stale SQS's approximate counters may be.
const COUNTER_LAG: TimeDelta = TimeDelta::minutes(1);

/// Windows before the first check's start it covers at most (without markers).
const FIRST_CHECK_WINDOWS: i32 = 750;

/// How far a table is complete, as `_inlet/complete/latest.json` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteState {
    /// Every window that ends at or before this instant is complete.
    pub complete_through: DateTime<Utc>,
    /// The table version that holds the rows of those windows.
    pub version: u64,
    /// When this was decided.
    pub checked_at: DateTime<Utc>,
    /// Whether the ingest queues were checked (no queue is configured for a local table).
    pub queues_checked: bool,
    /// When the queues were last found with no backlog while a window waited: every
    /// notification sent a minute before then had been received, so is answered once the
    /// in-flight bound has passed since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_at: Option<DateTime<Utc>>,
}

/// A completed window, as its marker records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowMarker {
    /// The window as partition directories (`date=2026-05-16`, `date=2026-05-16/hour=7`).
    pub window: String,
    /// Its first instant.
    pub start: DateTime<Utc>,
    /// The instant after it.
    pub end: DateTime<Utc>,
    /// The table version that holds every row of it.
    pub version: u64,
    /// When it was found complete.
    pub completed_at: DateTime<Utc>,
    /// Versions that later added rows to it (objects written late). Not written in the marker,
    /// which never changes once created: [`read_marker`] gathers them from their records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub late_versions: Vec<u64>,
}

/// The record of one commit into a window already complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LateCommit {
    /// The window (`date=2026-05-16`).
    pub window: String,
    /// The table version that added rows to it.
    pub version: u64,
    /// When the compactor recorded it.
    pub recorded_at: DateTime<Utc>,
}

/// What a completeness check did, in the compaction report.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct CompletenessReport {
    /// How far the table is complete after the check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complete_through: Option<DateTime<Utc>>,
    /// Windows found complete by this check.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub completed: Vec<String>,
    /// Completed windows this run's commit added rows to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub late: Vec<String>,
    /// Why the watermark did not move, when a window is due but not complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
}

/// The windows of a table partitioned by time: the column holding a date and, if any, the one
/// holding the hour of day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Windows {
    names: Vec<String>,
    date: usize,
    hour: Option<usize>,
}

impl Windows {
    /// The windows of `spec`, or `None` when no partition column holds a date: a `date(…)`,
    /// `key:date` or `<field>` column, or else a `key` column named as a date is
    /// ([`DATE_COLUMN_NAMES`]; its values count when they are `YYYY-MM-DD` dates). An
    /// `hour(…)` column makes the windows hours.
    pub fn of(spec: &PartitionSpec) -> Option<Self> {
        let position = |wanted: fn(&PartitionSource) -> bool| spec.columns.iter().position(|c| wanted(&c.source));
        let typed = |source: &PartitionSource| {
            matches!(
                source,
                PartitionSource::FieldDate(_)
                    | PartitionSource::FieldDateText(_)
                    | PartitionSource::KeySegment(ValueType::Date)
            )
        };
        let named_as_date = |name: &str| DATE_COLUMN_NAMES.iter().any(|date| name.eq_ignore_ascii_case(date));
        let keyed = spec.columns.iter().position(|column| {
            column.source == PartitionSource::KeySegment(ValueType::String) && named_as_date(&column.name)
        });
        let date = position(typed).or(keyed)?;
        let hour = position(|source| matches!(source, PartitionSource::FieldHour(_)));
        Some(Self { names: spec.names(), date, hour })
    }

    fn length(&self) -> TimeDelta {
        if self.hour.is_some() { TimeDelta::hours(1) } else { TimeDelta::days(1) }
    }

    /// The start of the window holding `instant`.
    pub fn floor(&self, instant: DateTime<Utc>) -> DateTime<Utc> {
        let day = instant.date_naive().and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        match self.hour {
            Some(_) => day + TimeDelta::hours(instant.hour() as i64),
            None => day,
        }
    }

    /// The start of the window a partition directory (`date=2026-05-16/hour=7`) is in; `None`
    /// for a null or non-date value.
    pub fn start_of(&self, directory: &str) -> Option<DateTime<Utc>> {
        let segments: Vec<&str> = directory.split('/').collect();
        let value = |index: usize| {
            let value = segments.get(index)?.strip_prefix(self.names[index].as_str())?.strip_prefix('=')?;
            (value != NULL_PARTITION).then_some(value)
        };
        let text = value(self.date)?;
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().filter(|date| date.to_string() == text)?;
        let start = date.and_hms_opt(0, 0, 0)?.and_utc();
        match self.hour {
            Some(index) => {
                let hour: i64 = value(index)?.parse().ok().filter(|h| (0..24).contains(h))?;
                Some(start + TimeDelta::hours(hour))
            }
            None => Some(start),
        }
    }

    /// The window starting at `start`, as partition directories.
    pub fn name(&self, start: DateTime<Utc>) -> String {
        let date = format!("{}={}", self.names[self.date], start.format("%Y-%m-%d"));
        match self.hour {
            Some(index) => format!("{date}/{}={}", self.names[index], start.hour()),
            None => date,
        }
    }
}

/// What the ingest queues hold that has not been answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueState {
    /// Messages waiting to be received (visible or delayed): a converter behind.
    pub backlog: u64,
    /// Longest a received message can stay unanswered before it is answered or dead-lettered:
    /// the visibility timeout times the receives allowed, summed over the queues.
    pub in_flight_bound: Duration,
}

/// Reads the ingest queues' state; `None` when there is no queue to read (a local table).
#[async_trait]
pub trait QueueProbe: Send + Sync {
    /// The queues' state now.
    async fn probe(&self) -> Result<Option<QueueState>>;
}

/// The queues of a deployment (the ingest queue, and the isolation queue when there is one),
/// read with `GetQueueAttributes`.
pub struct SqsQueues {
    /// The SQS client.
    pub sqs: aws_sdk_sqs::Client,
    /// The queues' URLs.
    pub urls: Vec<String>,
}

#[async_trait]
impl QueueProbe for SqsQueues {
    async fn probe(&self) -> Result<Option<QueueState>> {
        use aws_sdk_sqs::types::QueueAttributeName as Name;
        let mut state = QueueState { backlog: 0, in_flight_bound: Duration::ZERO };
        for url in &self.urls {
            let answer = self
                .sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(Name::All)
                .send()
                .await
                .map_err(|err| Error::aws("GetQueueAttributes", url, err))?;
            let attributes = answer.attributes.unwrap_or_default();
            let number = |name: Name| attributes.get(&name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            state.backlog +=
                number(Name::ApproximateNumberOfMessages) + number(Name::ApproximateNumberOfMessagesDelayed);
            let receives = attributes.get(&Name::RedrivePolicy).map_or(1, |policy| max_receive_count(policy));
            // A received message is answered, or visible again, within the visibility timeout
            // (which covers the batching window); a message can pass through each queue in turn.
            state.in_flight_bound += Duration::from_secs(number(Name::VisibilityTimeout) * receives);
        }
        Ok(Some(state))
    }
}

/// The receives a queue's redrive policy allows (`maxReceiveCount`, a number or, as some
/// tools write it, a string); 1 when it has none.
fn max_receive_count(policy: &str) -> u64 {
    let policy: serde_json::Value = serde_json::from_str(policy).unwrap_or_default();
    let count = &policy["maxReceiveCount"];
    count.as_u64().or_else(|| count.as_str().and_then(|text| text.parse().ok())).unwrap_or(1).max(1)
}

/// No queue: a table fed by `inlet convert`, say.
pub struct NoQueues;

#[async_trait]
impl QueueProbe for NoQueues {
    async fn probe(&self) -> Result<Option<QueueState>> {
        Ok(None)
    }
}

/// How completeness is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletenessOptions {
    /// How long after a window closes it waits for stragglers before it can be complete.
    pub settle: Duration,
    /// Most markers one check writes (a table whose compactor was stopped for months catches
    /// up over several runs).
    pub max_markers: usize,
}

/// A run's commit, for the completeness check.
#[derive(Debug, Clone, Default)]
pub struct Committed {
    /// The version the run committed, if it did.
    pub version: Option<u64>,
    /// The partition directories of the fragments it committed.
    pub partitions: BTreeSet<String>,
}

/// Checks a time-partitioned table's completeness after a compactor run (see the module doc).
pub struct Completeness {
    store: Arc<dyn ObjectStore>,
    windows: Windows,
    options: CompletenessOptions,
}

impl Completeness {
    /// The check for the table whose store (rooted at the table) is `store`.
    pub fn new(store: Arc<dyn ObjectStore>, windows: Windows, options: CompletenessOptions) -> Self {
        Self { store, windows, options }
    }

    /// Records late rows of `committed`, then moves the watermark as far as it can at `now`.
    pub async fn check(
        &self,
        table: &mut DeltaTable,
        queues: &dyn QueueProbe,
        committed: &Committed,
        now: DateTime<Utc>,
    ) -> Result<CompletenessReport> {
        let settle = TimeDelta::from_std(self.options.settle).unwrap_or(TimeDelta::MAX);
        let Some(settled) = now.checked_sub_signed(settle).map(|at| self.windows.floor(at)) else {
            return Ok(CompletenessReport::default());
        };
        let Some(state) = self.state().await? else {
            return self.start(table, queues, committed, settled, now).await;
        };
        let through = state.complete_through;
        let mut report = CompletenessReport { complete_through: Some(through), ..Default::default() };
        if let Some(version) = committed.version {
            report.late = self.record_late(&state, version, &committed.partitions, now).await?;
        }
        if settled <= through {
            // No window is due: the check costs the one read.
            return Ok(report);
        }
        let probed = queues.probe().await?;
        let (mut candidate, matured, quiet_now) = match probed {
            None => (settled, None, None),
            Some(queue) => self.drained(&state, queue, settled, now, &mut report),
        };
        // After the queues: a notification answered since then has its fragments listed here.
        if let Some(staged) = self.earliest_staged(through).await?
            && staged < candidate
        {
            report.waiting_for = Some(format!("staged fragments of {}", self.windows.name(staged)));
            candidate = staged;
        }
        // A matured quiet probe is kept until the watermark has reached what it covers.
        let quiet_at = match matured {
            Some(quiet) if candidate < self.windows.floor(quiet - COUNTER_LAG).min(settled) => Some(quiet),
            Some(_) => quiet_now,
            None => state.quiet_at.or(quiet_now),
        };
        let mut next = CompleteState { checked_at: now, quiet_at, queues_checked: probed.is_some(), ..state };
        if candidate > through {
            table.update_state().await?;
            next.version = table.version().unwrap_or_default();
            next.complete_through = self.mark(through, candidate, next.version, now, &mut report).await?;
            report.complete_through = Some(next.complete_through);
        }
        self.save(next).await?;
        Ok(report)
    }

    /// How far the queues let the watermark move: to the window holding the kept quiet probe
    /// (less the counters' lag) once the in-flight bound has passed since it; that probe if it
    /// has matured, and this one if it is quiet.
    fn drained(
        &self,
        state: &CompleteState,
        queue: QueueState,
        settled: DateTime<Utc>,
        now: DateTime<Utc>,
        report: &mut CompletenessReport,
    ) -> (DateTime<Utc>, Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let bound = TimeDelta::from_std(queue.in_flight_bound).unwrap_or(TimeDelta::MAX);
        let matured = state.quiet_at.filter(|quiet| quiet.checked_add_signed(bound).is_some_and(|end| end <= now));
        let quiet_now = (queue.backlog == 0).then_some(now);
        report.waiting_for = match (queue.backlog, matured) {
            (0, Some(_)) => None,
            (0, None) => Some("notifications that may still be in flight".into()),
            (backlog, _) => Some(format!("{backlog} notifications waiting on the ingest queues")),
        };
        let candidate = matured.map_or(state.complete_through, |quiet| self.windows.floor(quiet - COUNTER_LAG));
        (candidate.min(settled).max(state.complete_through), matured, quiet_now)
    }

    /// A table's first check: the watermark starts at the earliest window this run committed
    /// (or the settled one), and windows complete from the next checks on.
    async fn start(
        &self,
        table: &DeltaTable,
        queues: &dyn QueueProbe,
        committed: &Committed,
        settled: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<CompletenessReport> {
        let earliest = committed.partitions.iter().filter_map(|dir| self.windows.start_of(dir)).min();
        let oldest = settled - self.windows.length() * FIRST_CHECK_WINDOWS;
        let through = earliest.unwrap_or(settled).min(settled).max(oldest);
        let probed = queues.probe().await?;
        let state = CompleteState {
            complete_through: through,
            version: table.version().unwrap_or_default(),
            checked_at: now,
            queues_checked: probed.is_some(),
            quiet_at: probed.filter(|queue| queue.backlog == 0).map(|_| now),
        };
        self.save(state).await?;
        Ok(CompletenessReport { complete_through: Some(through), ..Default::default() })
    }

    /// Writes the markers of the windows from `from` to `to` (at most `max_markers`), each only
    /// if absent; returns where the watermark may move.
    async fn mark(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        version: u64,
        now: DateTime<Utc>,
        report: &mut CompletenessReport,
    ) -> Result<DateTime<Utc>> {
        let mut markers = Vec::new();
        let mut start = from;
        while start + self.windows.length() <= to && markers.len() < self.options.max_markers {
            let end = start + self.windows.length();
            let window = self.windows.name(start);
            markers.push(WindowMarker { window, start, end, version, completed_at: now, late_versions: Vec::new() });
            start = end;
        }
        // Markers before the watermark: a reader that sees the watermark finds every marker.
        futures::stream::iter(markers.iter().map(|marker| self.create_json(complete_marker(&marker.window), marker)))
            .buffer_unordered(MARKER_WRITES_IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await?;
        report.completed = markers.into_iter().map(|marker| marker.window).collect();
        Ok(start)
    }

    /// Records `next`, unless another run moved the watermark further meanwhile.
    async fn save(&self, next: CompleteState) -> Result<()> {
        if let Some(stored) = self.state().await?
            && stored.complete_through > next.complete_through
        {
            return Ok(());
        }
        self.put_json(Path::from(COMPLETE_STATE), &next).await
    }

    /// The recorded state, if a check ran before.
    pub async fn state(&self) -> Result<Option<CompleteState>> {
        read_json(self.store.as_ref(), &Path::from(COMPLETE_STATE)).await
    }

    /// Records `version` as a late commit into the completed windows `partitions` fall in.
    async fn record_late(
        &self,
        state: &CompleteState,
        version: u64,
        partitions: &BTreeSet<String>,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        let length = self.windows.length();
        let late: BTreeSet<DateTime<Utc>> = partitions
            .iter()
            .filter_map(|dir| self.windows.start_of(dir))
            .filter(|start| *start + length <= state.complete_through)
            .collect();
        let mut names = Vec::new();
        for start in late {
            // Recorded whether or not the window has a marker: those before the first check
            // have none, yet the watermark covers them.
            let window = self.windows.name(start);
            let record = LateCommit { window: window.clone(), version, recorded_at: now };
            self.create_json(late_commit(&window, version), &record).await?;
            tracing::warn!(window = %window, version, "rows committed into a window already complete (objects written late)");
            names.push(window);
        }
        Ok(names)
    }

    /// The start of the earliest window from `through` on that a staged fragment is in
    /// (fragments of windows already complete are late rows: they hold no other window back).
    async fn earliest_staged(&self, through: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        let staged = FragmentStore::new(self.store.clone()).list().await?;
        let starts = staged.iter().filter_map(|meta| self.windows.start_of(staged_partition(&meta.location)));
        Ok(starts.filter(|start| *start >= through).min())
    }

    /// Writes `value` at `path` unless something is there already.
    async fn create_json<T: Serialize>(&self, path: Path, value: &T) -> Result<()> {
        let create = object_store::PutOptions { mode: object_store::PutMode::Create, ..Default::default() };
        match self.store.put_opts(&path, PutPayload::from(serde_json::to_vec_pretty(value)?), create).await {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    async fn put_json<T: Serialize>(&self, path: Path, value: &T) -> Result<()> {
        self.store.put(&path, PutPayload::from(serde_json::to_vec_pretty(value)?)).await?;
        Ok(())
    }
}

/// The marker of `window` (`date=2026-05-16`), if it was found complete, with the versions of
/// the late commits recorded into it.
pub async fn read_marker(store: &dyn ObjectStore, window: &str) -> Result<Option<WindowMarker>> {
    let Some(mut marker) = read_json::<WindowMarker>(store, &complete_marker(window)).await? else {
        return Ok(None);
    };
    // The version is the record's name: one listing, and nothing else there can fail the read.
    let records: Vec<_> = store.list(Some(&late_commits(window))).try_collect().await?;
    let versions =
        records.iter().filter_map(|record| record.location.filename()?.strip_suffix(".json")?.parse::<u64>().ok());
    marker.late_versions.extend(versions);
    marker.late_versions.sort_unstable();
    marker.late_versions.dedup();
    Ok(Some(marker))
}

/// A JSON record at `path`, if there is one.
pub async fn read_json<T: for<'de> Deserialize<'de>>(store: &dyn ObjectStore, path: &Path) -> Result<Option<T>> {
    match store.get(path).await {
        Ok(found) => Ok(Some(serde_json::from_slice(&found.bytes().await?)?)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests;
