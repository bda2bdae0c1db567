//! Backfill: send objects that already exist through the same path as new ones, as synthetic
//! S3 notifications on the ingest queue, so the converter Lambdas do the work at scale and the
//! compactor's load history keeps objects that were ingested before from landing twice.
//!
//! Objects come a page at a time, from a listing or an S3 Inventory report ([`Pager`]), and
//! are sent as they come, several requests at once and at most at a given rate. After each
//! page a [`Checkpoint`] records the position reached, so a backfill that stops (a failure,
//! `--max-objects`) continues from there; a page sent twice is dropped by the load history.

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

pub use super::listing::{Page, Pager, Position};
use crate::error::{Error, Result};
use crate::ingest::notification_body;
use crate::lineage::SourceObject;

/// An existing object found by listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// The object.
    pub object: SourceObject,
    /// Its size in bytes.
    pub size: u64,
    /// When it was written.
    pub last_modified: Option<DateTime<Utc>>,
}

/// Which listed objects a backfill takes.
#[derive(Debug, Clone, Default)]
pub struct BackfillFilter {
    /// Key suffix, e.g. `.json.zst`.
    pub suffix: Option<String>,
    /// Only data from this date on: the key's `date=YYYY-MM-DD` segment when it has one,
    /// otherwise the object's last-modified date.
    pub since: Option<NaiveDate>,
    /// Only data before this date, read as `since` is.
    pub until: Option<NaiveDate>,
}

impl BackfillFilter {
    /// Whether `listed` is part of the backfill.
    pub fn accepts(&self, listed: &ListedObject) -> bool {
        if let Some(suffix) = &self.suffix
            && !listed.object.key.ends_with(suffix.as_str())
        {
            return false;
        }
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let key_date = listed
            .object
            .key
            .split('/')
            .find_map(|segment| segment.strip_prefix("date="))
            .and_then(|value| NaiveDate::parse_from_str(value, "%Y-%m-%d").ok());
        match key_date.or_else(|| listed.last_modified.map(|at| at.date_naive())) {
            Some(date) => self.since.is_none_or(|since| date >= since) && self.until.is_none_or(|until| date < until),
            None => true,
        }
    }
}

/// Splits `s3://bucket/prefix` into bucket and prefix.
pub fn parse_s3_uri(uri: &str) -> Result<(String, String)> {
    let rest = uri.strip_prefix("s3://").ok_or_else(|| Error::BadRequest(format!("{uri:?} is not an s3:// URI")))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(Error::BadRequest(format!("{uri:?} names no bucket")));
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

/// Sends notifications for `objects` to the ingest queue, ten per request; `progress` is called
/// with the number sent so far.
pub async fn enqueue(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    objects: &[ListedObject],
    mut progress: impl FnMut(usize),
) -> Result<usize> {
    let mut sent = 0;
    for chunk in objects.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, listed)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(notification_body(&listed.object, listed.size))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| Error::aws("SendMessageBatch", queue_url, err))?;
        let output = sqs
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|err| Error::aws("SendMessageBatch", queue_url, err))?;
        if let Some(failed) = output.failed.first() {
            let refused = format!(
                "{} of {} notifications were refused: {}",
                output.failed.len(),
                chunk.len(),
                failed.message.as_deref().unwrap_or("no reason given")
            );
            return Err(Error::aws("SendMessageBatch", queue_url, std::io::Error::other(refused)));
        }
        sent += chunk.len();
        progress(sent);
    }
    Ok(sent)
}

/// How a backfill sends.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// Requests (of ten notifications each) in flight at once.
    pub concurrency: usize,
    /// Most objects sent per second; unbounded when absent.
    pub rate: Option<f64>,
    /// Stop once this many are sent in this run (the checkpoint continues from there).
    pub max_objects: Option<u64>,
}

/// Where a backfill stands: what it reads, the position reached and what it sent so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// What is read (the prefix, and the inventory manifest when there is one) and how it is
    /// filtered: a checkpoint continues only the backfill it was written for.
    pub source: String,
    /// The position after the last page sent.
    pub position: Position,
    /// Objects sent, over every run...
    pub sent: u64,
    /// ...and their bytes.
    pub bytes: u64,
    /// Every object was sent.
    pub done: bool,
}

/// Sends what `pager` gives and `filter` accepts to `queue_url`, a page at a time, starting
/// where `checkpoint` stands, and calls `save` once each page is wholly sent (and at the end).
/// A failure leaves the checkpoint at the last page sent.
pub async fn send_all(
    pager: &mut Pager,
    filter: &BackfillFilter,
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    options: &SendOptions,
    checkpoint: &mut Checkpoint,
    mut save: impl FnMut(&Checkpoint) -> Result<()>,
) -> Result<()> {
    let started = tokio::time::Instant::now();
    let mut sent_now = 0u64;
    while let Some(page) = pager.next_page().await? {
        let room = options.max_objects.map_or(u64::MAX, |max| max.saturating_sub(sent_now));
        let accepted: Vec<(ListedObject, Position)> =
            page.objects.into_iter().filter(|(listed, _)| filter.accepts(listed)).collect();
        let cut = accepted.len() as u64 > room;
        let taken: Vec<(ListedObject, Position)> = accepted.into_iter().take(room as usize).collect();
        let objects: Vec<ListedObject> = taken.iter().map(|(listed, _)| listed.clone()).collect();
        send_paced(sqs, queue_url, &objects, options, started, sent_now).await?;
        sent_now += objects.len() as u64;
        checkpoint.sent += objects.len() as u64;
        checkpoint.bytes += objects.iter().map(|listed| listed.size).sum::<u64>();
        checkpoint.position = match (cut, taken.last()) {
            (true, Some((_, after))) => after.clone(),
            (true, None) => checkpoint.position.clone(),
            (false, _) => page.end,
        };
        save(checkpoint)?;
        if cut || options.max_objects.is_some_and(|max| sent_now >= max) {
            return Ok(());
        }
    }
    checkpoint.done = true;
    save(checkpoint)
}

/// Sends `objects` ten per request, `options.concurrency` requests at once, none before its
/// time at `options.rate` (counted from `started`, `before` objects already sent).
async fn send_paced(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    objects: &[ListedObject],
    options: &SendOptions,
    started: tokio::time::Instant,
    before: u64,
) -> Result<()> {
    let mut sends = futures::stream::iter(objects.chunks(10).enumerate())
        .map(|(index, chunk)| async move {
            if let Some(rate) = options.rate.filter(|rate| *rate > 0.0) {
                let offset = (before + 10 * index as u64) as f64 / rate;
                tokio::time::sleep_until(started + std::time::Duration::from_secs_f64(offset)).await;
            }
            enqueue(sqs, queue_url, chunk, |_| ()).await
        })
        .buffer_unordered(options.concurrency.max(1));
    while let Some(sent) = sends.next().await {
        sent?;
    }
    Ok(())
}

/// Counts what `pager` gives and `filter` accepts, without sending; `each` sees every object.
pub async fn count_all(
    pager: &mut Pager,
    filter: &BackfillFilter,
    mut each: impl FnMut(&ListedObject),
) -> Result<(u64, u64)> {
    let (mut objects, mut bytes) = (0, 0);
    while let Some(page) = pager.next_page().await? {
        for (listed, _) in page.objects.iter().filter(|(listed, _)| filter.accepts(listed)) {
            objects += 1;
            bytes += listed.size;
            each(listed);
        }
    }
    Ok((objects, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(key: &str, modified: &str) -> ListedObject {
        ListedObject {
            object: SourceObject {
                bucket: "raw".into(),
                key: key.into(),
                etag: Some("e1".into()),
                ..Default::default()
            },
            size: 10,
            last_modified: Some(DateTime::parse_from_rfc3339(modified).unwrap().with_timezone(&Utc)),
        }
    }

    #[test]
    fn filters_take_suffix_and_since_from_the_key_date_or_modification_time() {
        let filter = BackfillFilter {
            suffix: Some(".json.zst".into()),
            since: NaiveDate::from_ymd_opt(2026, 5, 16),
            until: None,
        };
        assert!(filter.accepts(&listed("web/date=2026-05-16/a.json.zst", "2026-01-01T00:00:00Z")));
        assert!(!filter.accepts(&listed("web/date=2026-05-15/a.json.zst", "2026-12-01T00:00:00Z")));
        assert!(filter.accepts(&listed("web/a.json.zst", "2026-05-17T00:00:00Z")));
        assert!(!filter.accepts(&listed("web/a.json.zst", "2026-05-15T00:00:00Z")));
        assert!(!filter.accepts(&listed("web/date=2026-05-16/a.json", "2026-05-17T00:00:00Z")));
        let until = BackfillFilter { until: NaiveDate::from_ymd_opt(2026, 5, 16), ..BackfillFilter::default() };
        assert!(until.accepts(&listed("web/date=2026-05-15/a.json.zst", "2026-12-01T00:00:00Z")));
        assert!(!until.accepts(&listed("web/date=2026-05-16/a.json.zst", "2026-01-01T00:00:00Z")));
        assert!(!until.accepts(&listed("web/a.json.zst", "2026-05-16T00:00:00Z")));
    }

    #[test]
    fn s3_uris_split_into_bucket_and_prefix() {
        assert_eq!(parse_s3_uri("s3://raw/web/date=x/").unwrap(), ("raw".into(), "web/date=x/".into()));
        assert_eq!(parse_s3_uri("s3://raw").unwrap(), ("raw".into(), "".into()));
        assert!(parse_s3_uri("/tmp/x").is_err());
    }
}
