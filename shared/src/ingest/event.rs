//! Which source objects an SQS batch of S3 notifications names (S3 event notifications,
//! EventBridge events from S3, and SNS envelopes of either), and the notification `inlet
//! backfill` sends for an object that S3 did not announce.

use std::collections::HashMap;

use aws_lambda_events::event::s3::S3Event;
use aws_lambda_events::event::sqs::SqsEvent;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::lineage::SourceObject;

/// Characters S3 leaves as they are when it form-encodes keys in notifications.
const KEY_SAFE: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/').remove(b' ');

/// What one SQS message body asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// Objects to ingest.
    Objects(Vec<SourceObject>),
    /// Nothing to do, and why (an `s3:TestEvent`, a removal event).
    Ignored(String),
}

/// SNS envelopes wrapping SNS envelopes deeper than this are refused (a loop in the wiring).
const MAX_ENVELOPES: usize = 3;

/// Parses one SQS message body: an S3 event notification, an EventBridge event from S3, or
/// either of them in an SNS envelope (S3 → SNS → SQS fan-out without raw delivery).
pub fn parse_notification(body: &str) -> Result<Notification, String> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|err| format!("message body is not JSON: {err}"))?;
    parse_value(value, 0)
}

fn parse_value(value: serde_json::Value, envelopes: usize) -> Result<Notification, String> {
    if value.get("Type").and_then(|kind| kind.as_str()) == Some("Notification") {
        let message =
            value.get("Message").and_then(|message| message.as_str()).ok_or("SNS envelope without a Message")?;
        if envelopes >= MAX_ENVELOPES {
            return Err(format!("more than {MAX_ENVELOPES} SNS envelopes inside each other"));
        }
        let inner = serde_json::from_str(message).map_err(|err| format!("SNS Message is not JSON: {err}"))?;
        return parse_value(inner, envelopes + 1);
    }
    if value.get("detail-type").is_some() && value.get("detail").is_some() {
        return parse_eventbridge(&value);
    }
    if value.get("Event").and_then(|event| event.as_str()) == Some("s3:TestEvent") {
        return Ok(Notification::Ignored("s3:TestEvent".into()));
    }
    if value.get("Records").is_none() {
        return Err("message body is neither an S3 event notification, an EventBridge event from S3, an SNS \
                    envelope of either, nor an s3:TestEvent"
            .into());
    }
    let event: S3Event =
        serde_json::from_value(value).map_err(|err| format!("malformed S3 event notification: {err}"))?;
    let mut objects = Vec::new();
    let mut ignored = Vec::new();
    for record in event.records {
        let name = record.event_name.unwrap_or_default();
        if !name.starts_with("ObjectCreated:") && !name.starts_with("s3:ObjectCreated:") {
            ignored.push(name);
            continue;
        }
        let bucket = record.s3.bucket.name.filter(|b| !b.is_empty()).ok_or("S3 record without bucket name")?;
        let raw_key = record.s3.object.key.filter(|k| !k.is_empty()).ok_or("S3 record without object key")?;
        objects.push(SourceObject {
            bucket,
            key: decode_key(&raw_key)?,
            etag: clean_etag(record.s3.object.e_tag),
            version: clean_version(record.s3.object.version_id),
            digest: None,
        });
    }
    if objects.is_empty() {
        return Ok(Notification::Ignored(format!("no ObjectCreated records (events: {})", ignored.join(", "))));
    }
    Ok(Notification::Objects(objects))
}

/// An EventBridge event from S3: "Object Created" names one object; every other S3 event
/// type needs no work. Its key is the key itself, not encoded (an S3 event notification
/// form-encodes its key), so `+`, `%` and spaces are taken as they are.
fn parse_eventbridge(value: &serde_json::Value) -> Result<Notification, String> {
    let text = |pointer: &str| value.pointer(pointer).and_then(|v| v.as_str()).map(str::to_string);
    let source = text("/source").unwrap_or_default();
    if source != "aws.s3" {
        return Err(format!("EventBridge event from {source:?}, not from S3 (aws.s3)"));
    }
    let kind = text("/detail-type").unwrap_or_default();
    if kind != "Object Created" {
        return Ok(Notification::Ignored(format!("EventBridge {kind:?} event")));
    }
    let bucket =
        text("/detail/bucket/name").filter(|b| !b.is_empty()).ok_or("EventBridge event without bucket name")?;
    let key = text("/detail/object/key").filter(|k| !k.is_empty()).ok_or("EventBridge event without object key")?;
    Ok(Notification::Objects(vec![SourceObject {
        bucket,
        key,
        etag: clean_etag(text("/detail/object/etag")),
        version: clean_version(text("/detail/object/version-id")),
        digest: None,
    }]))
}

fn clean_etag(etag: Option<String>) -> Option<String> {
    etag.map(|etag| etag.trim_matches('"').to_string()).filter(|e| !e.is_empty())
}

/// Unversioned buckets send no version id, or the literal "null".
fn clean_version(version: Option<String>) -> Option<String> {
    version.filter(|v| !v.is_empty() && v != "null")
}

/// Decodes a notification key: S3 form-encodes keys (`+` for space); LocalStack uses `%20`.
pub fn decode_key(raw: &str) -> Result<String, String> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|key| key.into_owned())
        .map_err(|err| format!("object key {raw:?} is not UTF-8 once decoded: {err}"))
}

/// The work an SQS batch describes, with duplicates collapsed.
#[derive(Debug, Default)]
pub struct BatchPlan {
    /// Distinct objects to ingest, each with the ids of the messages naming it.
    pub objects: Vec<(SourceObject, Vec<String>)>,
    /// Messages that need no work, with the reason.
    pub ignored: Vec<(String, String)>,
    /// Messages that cannot be understood, with the reason; they fail and go to the DLQ.
    pub invalid: Vec<(String, String)>,
}

impl BatchPlan {
    /// Reads every message of an SQS event.
    pub fn from_sqs(event: &SqsEvent) -> Self {
        let mut plan = BatchPlan::default();
        let mut index: HashMap<SourceObject, usize> = HashMap::new();
        for (position, message) in event.records.iter().enumerate() {
            let id = message.message_id.clone().unwrap_or_else(|| format!("#{position}"));
            let body = message.body.as_deref().unwrap_or_default();
            match parse_notification(body) {
                Ok(Notification::Objects(objects)) => {
                    for object in objects {
                        // The same version named twice in one batch (a duplicate notification) is
                        // read once; two versions of one key (an overwrite) are two objects.
                        match index.get(&object) {
                            Some(&at) => plan.objects[at].1.push(id.clone()),
                            None => {
                                index.insert(object.clone(), plan.objects.len());
                                plan.objects.push((object, vec![id.clone()]));
                            }
                        }
                    }
                }
                Ok(Notification::Ignored(reason)) => plan.ignored.push((id, reason)),
                Err(reason) => plan.invalid.push((id, reason)),
            }
        }
        plan
    }

    /// Whether the plan names no message at all.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty() && self.ignored.is_empty() && self.invalid.is_empty()
    }
}

/// An SQS message carrying the synthetic notification for `object`, as the converter receives
/// it from the event source mapping (for local runs, benchmarks and tests).
pub fn sqs_message(id: impl Into<String>, object: SourceObject) -> aws_lambda_events::event::sqs::SqsMessage {
    let mut message = aws_lambda_events::event::sqs::SqsMessage::default();
    message.message_id = Some(id.into());
    message.body = Some(notification_body(&object, 0));
    message
}

/// The S3 `ObjectCreated` notification S3 itself would have sent for `object` of `size`
/// bytes (what `inlet backfill` sends): the encoder [`parse_notification`] reads.
pub fn notification_body(object: &SourceObject, size: u64) -> String {
    let key = utf8_percent_encode(&object.key, KEY_SAFE).to_string().replace(' ', "+");
    let mut body = serde_json::json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "",
        "eventTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "eventName": "ObjectCreated:Backfill",
        "userIdentity": {"principalId": "inlet-backfill"},
        "requestParameters": {"sourceIPAddress": ""},
        "responseElements": {},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "inlet-backfill",
            "bucket": {"name": object.bucket, "arn": format!("arn:aws:s3:::{}", object.bucket)},
            "object": {"key": key, "size": size, "eTag": object.etag.clone().unwrap_or_default()}
        }
    }]});
    if let Some(version) = &object.version {
        body["Records"][0]["s3"]["object"]["versionId"] = version.clone().into();
    }
    body.to_string()
}

#[cfg(test)]
mod tests {
    use aws_lambda_events::event::sqs::SqsMessage;

    use super::*;

    #[test]
    fn synthetic_notifications_parse_back_to_the_same_object() {
        let object = SourceObject {
            bucket: "raw".into(),
            key: "web/date=2026-05-16/a b+c é%.json.zst".into(),
            etag: Some("e1".into()),
            ..Default::default()
        };
        let Notification::Objects(parsed) = parse_notification(&notification_body(&object, 10)).unwrap() else {
            panic!("not an object notification")
        };
        assert_eq!(parsed, vec![object]);
    }

    /// A notification as real S3 sends it (keys form-encoded, `+` for space).
    const AWS_PUT: &str = include_str!("../../tests/fixtures/s3-put-aws.json");
    /// A notification as LocalStack 4.13 sends it (`%20` for space).
    const LOCALSTACK_PUT: &str = include_str!("../../tests/fixtures/s3-put-localstack.json");
    const TEST_EVENT: &str = include_str!("../../tests/fixtures/s3-test-event.json");
    const REMOVED: &str = include_str!("../../tests/fixtures/s3-delete-aws.json");

    fn sqs(bodies: &[&str]) -> SqsEvent {
        let mut event = SqsEvent::default();
        for (i, body) in bodies.iter().enumerate() {
            let mut message = SqsMessage::default();
            message.message_id = Some(format!("m{i}"));
            message.body = Some(body.to_string());
            event.records.push(message);
        }
        event
    }

    #[test]
    fn aws_notification_decodes_plus_as_space() {
        let Notification::Objects(objects) = parse_notification(AWS_PUT).unwrap() else { panic!() };
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].bucket, "raw-events");
        assert_eq!(objects[0].key, "web/date=2026-05-16/part 1+x é.json.zst");
        assert_eq!(objects[0].etag.as_deref(), Some("0123456789abcdef0123456789abcdef"));
        assert_eq!(objects[0].uri(), "s3://raw-events/web/date=2026-05-16/part 1+x é.json.zst");
    }

    #[test]
    fn localstack_notification_decodes_percent20_as_space() {
        let Notification::Objects(objects) = parse_notification(LOCALSTACK_PUT).unwrap() else { panic!() };
        assert_eq!(objects[0].key, "web/date=2026-05-16/part 1+x é.json.zst");
    }

    #[test]
    fn test_event_and_removals_are_ignored() {
        assert_eq!(parse_notification(TEST_EVENT).unwrap(), Notification::Ignored("s3:TestEvent".into()));
        assert!(
            matches!(parse_notification(REMOVED).unwrap(), Notification::Ignored(reason) if reason.contains("ObjectRemoved"))
        );
    }

    const EVENTBRIDGE_CREATED: &str = include_str!("../../tests/fixtures/s3-eventbridge-created.json");
    const EVENTBRIDGE_DELETED: &str = include_str!("../../tests/fixtures/s3-eventbridge-deleted.json");
    const SNS_S3_PUT: &str = include_str!("../../tests/fixtures/sns-envelope-s3-put.json");
    const SNS_EVENTBRIDGE: &str = include_str!("../../tests/fixtures/sns-envelope-eventbridge.json");

    #[test]
    fn eventbridge_and_sns_envelopes_name_the_same_object_as_an_s3_notification() {
        let direct = parse_notification(AWS_PUT).unwrap();
        assert_eq!(parse_notification(SNS_S3_PUT).unwrap(), direct, "an SNS envelope is unwrapped");
        let Notification::Objects(objects) = parse_notification(EVENTBRIDGE_CREATED).unwrap() else { panic!() };
        assert_eq!(objects.len(), 1);
        // EventBridge keys are not encoded: a `+` is a `+`, a space a space.
        assert_eq!(objects[0].uri(), "s3://raw-events/web/date=2026-05-16/part 1+x é.json.zst");
        assert_eq!(objects[0].etag.as_deref(), Some("0123456789abcdef0123456789abcdef"));
        assert_eq!(objects[0].version.as_deref(), Some("uhggCJ2_B6gU2JaXWXebnXFDstO0ID6G"));
        assert_eq!(parse_notification(SNS_EVENTBRIDGE).unwrap(), Notification::Objects(objects));
        assert!(
            matches!(parse_notification(EVENTBRIDGE_DELETED).unwrap(), Notification::Ignored(reason) if reason.contains("Object Deleted"))
        );
    }

    #[test]
    fn eventbridge_keys_are_taken_as_they_are_and_s3_keys_are_form_decoded() {
        let eventbridge = |key: &str| {
            serde_json::json!({"detail-type": "Object Created", "source": "aws.s3",
                "detail": {"bucket": {"name": "b"}, "object": {"key": key, "etag": "e"}}})
            .to_string()
        };
        for key in ["a b+c.json", "100%.json", "50%25 off.json", "gé ü+ß.json.zst"] {
            let Notification::Objects(objects) = parse_notification(&eventbridge(key)).unwrap() else { panic!() };
            assert_eq!(objects[0].key, key);
            let wrapped = serde_json::json!({"Type": "Notification", "Message": eventbridge(key)}).to_string();
            assert_eq!(parse_notification(&wrapped).unwrap(), Notification::Objects(objects), "inside SNS too");
        }
        // An S3 event notification form-encodes: `+` is a space, `%2B` a plus, `%25` a percent.
        assert_eq!(decode_key("a+b%2Bc%25d%C3%A9").unwrap(), "a b+c%dé");
        assert_eq!(decode_key("a%20b").unwrap(), "a b", "LocalStack's %20");
    }

    #[test]
    fn envelopes_that_hold_nothing_of_s3_are_invalid_with_a_reason() {
        let other =
            r#"{"version":"0","detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","detail":{}}"#;
        assert!(parse_notification(other).unwrap_err().contains("not from S3"));
        let empty = r#"{"Type":"Notification","Message":"not json"}"#;
        assert!(parse_notification(empty).unwrap_err().contains("SNS Message is not JSON"));
        let mut nested = AWS_PUT.trim().to_string();
        for _ in 0..4 {
            nested = serde_json::json!({"Type": "Notification", "Message": nested}).to_string();
        }
        assert!(parse_notification(&nested).unwrap_err().contains("SNS envelopes inside each other"));
        let created = r#"{"detail-type":"Object Created","source":"aws.s3","detail":{"bucket":{"name":"b"}}}"#;
        assert!(parse_notification(created).unwrap_err().contains("without object key"));
    }

    #[test]
    fn garbage_bodies_are_invalid_with_a_reason() {
        assert!(parse_notification("hello").unwrap_err().contains("not JSON"));
        assert!(parse_notification("{}").unwrap_err().contains("neither an S3 event notification"));
        assert!(
            parse_notification(r#"{"Records":[{"eventName":"ObjectCreated:Put"}]}"#).unwrap_err().contains("malformed")
        );
    }

    /// The SQS event a Lambda receives: a test event and the same notification delivered twice.
    const SQS_EVENT: &str = include_str!("../../tests/fixtures/sqs-event-localstack.json");

    #[test]
    fn sqs_event_fixture_plans_one_object_for_two_deliveries() {
        let event: SqsEvent = serde_json::from_str(SQS_EVENT).unwrap();
        let plan = BatchPlan::from_sqs(&event);
        assert_eq!(plan.ignored, vec![("2f1c7a52-0001".to_string(), "s3:TestEvent".to_string())]);
        assert!(plan.invalid.is_empty());
        assert_eq!(plan.objects.len(), 1);
        let (object, messages) = &plan.objects[0];
        assert_eq!(object.uri(), "s3://raw-events/web/date=2026-05-16/part 1+x é.json.zst");
        assert_eq!(messages, &vec!["2f1c7a52-0002".to_string(), "2f1c7a52-0003".to_string()]);
    }

    #[test]
    fn two_versions_of_a_key_are_two_objects_and_a_version_named_twice_is_one() {
        let version = |etag: &str, version: &str| {
            let mut body: serde_json::Value = serde_json::from_str(AWS_PUT).unwrap();
            body["Records"][0]["s3"]["object"]["eTag"] = etag.into();
            body["Records"][0]["s3"]["object"]["versionId"] = version.into();
            body.to_string()
        };
        let (v1, v2, unversioned) = (version("e1", "v1"), version("e2", "v2"), version("e3", "null"));
        let plan = BatchPlan::from_sqs(&sqs(&[&v1, &v2, &v1, &unversioned]));
        let named: Vec<(Option<&str>, Option<&str>, &Vec<String>)> =
            plan.objects.iter().map(|(object, ids)| (object.etag.as_deref(), object.version.as_deref(), ids)).collect();
        assert_eq!(
            named,
            vec![
                (Some("e1"), Some("v1"), &vec!["m0".to_string(), "m2".to_string()]),
                (Some("e2"), Some("v2"), &vec!["m1".to_string()]),
                (Some("e3"), None, &vec!["m3".to_string()]),
            ]
        );
    }

    #[test]
    fn batch_plan_collapses_duplicates_and_sorts_messages() {
        // The same version of the same key, its key encoded as S3 and as LocalStack encode it.
        let same_version =
            LOCALSTACK_PUT.replace("9dd4e461268c8034f5c8564e155c67a6", "0123456789abcdef0123456789abcdef");
        let plan = BatchPlan::from_sqs(&sqs(&[AWS_PUT, TEST_EVENT, &same_version, "oops"]));
        assert_eq!(plan.objects.len(), 1, "the same object named twice is read once");
        assert_eq!(plan.objects[0].1, vec!["m0".to_string(), "m2".to_string()]);
        assert_eq!(plan.ignored, vec![("m1".to_string(), "s3:TestEvent".to_string())]);
        assert_eq!(plan.invalid.len(), 1);
        assert_eq!(plan.invalid[0].0, "m3");
    }
}
