//! S3 event notifications and the SQS batches that carry them to the converter, for every test
//! that feeds it one: `sqs_event([created("raw", "a.json")])`, or a notification of one version,
//! of another event, or without an ETag, built with [`S3Notification`].
//!
//! A body is the one `inlet backfill` sends ([`notification_body`]: S3's record layout and its
//! form-encoding of keys), named as S3 names a put and stamped with a fixed time, so the same
//! notification built twice is the same text.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};

use crate::ingest::notification_body;
use crate::lineage::SourceObject;

/// The event time of every test notification.
pub const EVENT_TIME: &str = "2026-05-16T10:00:00.000Z";

/// The S3 notification of one object.
#[derive(Debug, Clone)]
pub struct S3Notification {
    object: SourceObject,
    event: String,
}

impl S3Notification {
    /// `ObjectCreated:Put` of `bucket/key`, with the ETag `etag-<key>`.
    pub fn created(bucket: &str, key: &str) -> Self {
        Self::of(SourceObject {
            bucket: bucket.into(),
            key: key.into(),
            etag: Some(format!("etag-{key}")),
            ..Default::default()
        })
    }

    /// `ObjectCreated:Put` of `object`: its ETag and version id as it names them.
    pub fn of(object: SourceObject) -> Self {
        Self { object, event: "ObjectCreated:Put".into() }
    }

    /// The notification of another event (`ObjectRemoved:Delete`, say).
    pub fn event(mut self, name: &str) -> Self {
        self.event = name.into();
        self
    }

    /// The notified ETag.
    pub fn etag(mut self, etag: impl Into<String>) -> Self {
        self.object.etag = Some(etag.into());
        self
    }

    /// No ETag at all (as a forged notification may have none).
    pub fn without_etag(mut self) -> Self {
        self.object.etag = None;
        self
    }

    /// The notified version id (a versioned bucket).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.object.version = Some(version.into());
        self
    }

    /// The object it names.
    pub fn object(&self) -> &SourceObject {
        &self.object
    }

    /// The message body, as S3 sends it to the queue.
    pub fn body(&self) -> String {
        let mut body: serde_json::Value =
            serde_json::from_str(&notification_body(&self.object, 1)).expect("a notification is JSON");
        let record = &mut body["Records"][0];
        record["eventName"] = self.event.clone().into();
        record["eventTime"] = EVENT_TIME.into();
        record["awsRegion"] = "us-east-1".into();
        record["userIdentity"]["principalId"] = "test".into();
        record["requestParameters"]["sourceIPAddress"] = "127.0.0.1".into();
        record["s3"]["configurationId"] = "test".into();
        body.to_string()
    }

    /// The SQS message `id` carrying it.
    pub fn message(&self, id: impl Into<String>) -> SqsMessage {
        message(id, self.body())
    }
}

/// The body of an `ObjectCreated:Put` notification of `bucket/key` with the ETag `etag-<key>`.
pub fn created(bucket: &str, key: &str) -> String {
    S3Notification::created(bucket, key).body()
}

/// The SQS message `id` carrying `body`.
pub fn message(id: impl Into<String>, body: impl Into<String>) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some(id.into());
    message.body = Some(body.into());
    message
}

/// An SQS batch of `bodies`, in order, as the messages `m0`, `m1`, ...
pub fn sqs_event(bodies: impl IntoIterator<Item = impl AsRef<str>>) -> SqsEvent {
    sqs_batch(bodies.into_iter().enumerate().map(|(index, body)| message(format!("m{index}"), body.as_ref())))
}

/// An SQS batch of `messages` as they are.
pub fn sqs_batch(messages: impl IntoIterator<Item = SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages.into_iter().collect();
    event
}

/// An SQS batch announcing each of `objects` (its ETag and version as it names them), in order,
/// as the messages `m0`, `m1`, ...
pub fn objects_event(objects: impl IntoIterator<Item = SourceObject>) -> SqsEvent {
    sqs_event(objects.into_iter().map(|object| S3Notification::of(object).body()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::event::{BatchPlan, Notification, parse_notification};

    #[test]
    fn a_notification_names_its_object_as_the_converter_reads_it() {
        let key = "web/date=2026-05-16/a b+c é%.json.zst";
        let built = S3Notification::created("raw", key).version("v1");
        let Notification::Objects(parsed) = parse_notification(&built.body()).unwrap() else { panic!("no object") };
        assert_eq!(parsed, vec![built.object().clone()]);
        assert_eq!(built.body(), built.body(), "the same notification is the same text");
        assert_eq!(built.object().etag.as_deref(), Some("etag-web/date=2026-05-16/a b+c é%.json.zst"));

        let removed = S3Notification::created("raw", "a.json").event("ObjectRemoved:Delete").body();
        assert!(matches!(parse_notification(&removed).unwrap(), Notification::Ignored(_)));
        let bare = S3Notification::created("raw", "a.json").without_etag();
        let Notification::Objects(parsed) = parse_notification(&bare.body()).unwrap() else { panic!("no object") };
        assert_eq!(parsed[0].etag, None);
    }

    #[test]
    fn a_batch_numbers_its_messages_in_order() {
        let objects = ["a.json", "b.json"].map(|key| SourceObject {
            bucket: "raw".into(),
            key: key.into(),
            ..Default::default()
        });
        let event = objects_event(objects.clone());
        let ids: Vec<_> = event.records.iter().map(|message| message.message_id.clone().unwrap()).collect();
        assert_eq!(ids, ["m0", "m1"]);
        let plan = BatchPlan::from_sqs(&event);
        assert_eq!(plan.objects.iter().map(|(object, _)| object.clone()).collect::<Vec<_>>(), objects);
        assert_eq!(sqs_event([created("raw", "a.json")]).records[0].body, Some(created("raw", "a.json")));
        assert_eq!(sqs_batch([message("x", "{}")]).records[0].message_id.as_deref(), Some("x"));
    }
}
