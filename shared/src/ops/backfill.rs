//! Backfill: send objects that already exist through the same path as new ones, as synthetic
//! S3 notifications on the ingest queue, so the converter Lambdas do the work at scale and the
//! compactor's load history keeps objects that were ingested before from landing twice.

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use chrono::{DateTime, NaiveDate, Utc};

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
}

impl BackfillFilter {
    /// Whether `listed` is part of the backfill.
    pub fn accepts(&self, listed: &ListedObject) -> bool {
        if let Some(suffix) = &self.suffix
            && !listed.object.key.ends_with(suffix.as_str())
        {
            return false;
        }
        let Some(since) = self.since else { return true };
        let key_date = listed
            .object
            .key
            .split('/')
            .find_map(|segment| segment.strip_prefix("date="))
            .and_then(|value| NaiveDate::parse_from_str(value, "%Y-%m-%d").ok());
        match key_date.or_else(|| listed.last_modified.map(|at| at.date_naive())) {
            Some(date) => date >= since,
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

/// Lists the objects under `bucket/prefix` that `filter` accepts.
pub async fn list_objects(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    filter: &BackfillFilter,
) -> Result<Vec<ListedObject>> {
    let mut listed = Vec::new();
    let mut pages = s3.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| Error::Source {
            uri: format!("s3://{bucket}/{prefix}"),
            reason: format!("listing failed: {}", aws_sdk_s3::error::DisplayErrorContext(&err)),
            retryable: true,
        })?;
        for entry in page.contents.unwrap_or_default() {
            let Some(key) = entry.key else { continue };
            let object = ListedObject {
                object: SourceObject {
                    bucket: bucket.to_string(),
                    key,
                    etag: entry.e_tag.map(|etag| etag.trim_matches('"').to_string()),
                    ..Default::default()
                },
                size: entry.size.unwrap_or_default().max(0) as u64,
                last_modified: entry.last_modified.and_then(|at| DateTime::from_timestamp(at.secs(), 0)),
            };
            if filter.accepts(&object) {
                listed.push(object);
            }
        }
    }
    Ok(listed)
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
        let filter = BackfillFilter { suffix: Some(".json.zst".into()), since: NaiveDate::from_ymd_opt(2026, 5, 16) };
        assert!(filter.accepts(&listed("web/date=2026-05-16/a.json.zst", "2026-01-01T00:00:00Z")));
        assert!(!filter.accepts(&listed("web/date=2026-05-15/a.json.zst", "2026-12-01T00:00:00Z")));
        assert!(filter.accepts(&listed("web/a.json.zst", "2026-05-17T00:00:00Z")));
        assert!(!filter.accepts(&listed("web/a.json.zst", "2026-05-15T00:00:00Z")));
        assert!(!filter.accepts(&listed("web/date=2026-05-16/a.json", "2026-05-17T00:00:00Z")));
    }

    #[test]
    fn s3_uris_split_into_bucket_and_prefix() {
        assert_eq!(parse_s3_uri("s3://raw/web/date=x/").unwrap(), ("raw".into(), "web/date=x/".into()));
        assert_eq!(parse_s3_uri("s3://raw").unwrap(), ("raw".into(), "".into()));
        assert!(parse_s3_uri("/tmp/x").is_err());
    }
}
