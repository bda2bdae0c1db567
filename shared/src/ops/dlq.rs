//! The dead-letter queue, decoded: each message with the objects it names, how often it was
//! received, when it was first sent and, for each object, the converter's reason (its failure
//! record); and redrives of every message or of those naming chosen objects back to the
//! ingest queue. A redriven notification is ingested exactly once: an object already in its
//! table is dropped by the load history.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, MessageSystemAttributeName as Attribute};
use deltalake::ObjectStore;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::ingest::FailureLog;
use crate::ingest::event::{Notification, parse_notification};
use crate::lineage::SourceObject;
use crate::routes::Routes;

/// How long messages are held out of sight while the queue is read through.
const HOLD_SECONDS: i32 = 300;

/// One dead-letter message.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterMessage {
    /// Message id.
    pub message_id: String,
    /// Times it was received, on the ingest queue and since.
    pub receive_count: u64,
    /// When it was first sent (RFC 3339).
    pub sent_at: String,
    /// The objects it names.
    pub objects: Vec<DeadObject>,
    /// Why it names none: not a notification Inlet reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    /// The body, to send again.
    #[serde(skip)]
    body: String,
}

/// An object a dead-letter message names.
#[derive(Debug, Clone, Serialize)]
pub struct DeadObject {
    /// `s3://bucket/key`
    pub uri: String,
    /// The notified ETag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The notified version id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The route that takes it; none takes it when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The converter's reason, from its failure record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl DeadLetterMessage {
    /// Whether it names one of `uris`.
    pub fn names_any(&self, uris: &[String]) -> bool {
        self.objects.iter().any(|object| uris.contains(&object.uri))
    }
}

/// What a redrive did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Redriven {
    /// Messages sent back to the ingest queue and taken off the DLQ.
    pub moved: Vec<String>,
    /// Messages left in the DLQ.
    pub kept: usize,
}

/// The queue and where reasons are looked up.
pub struct DeadLetters<'a> {
    /// The SQS client.
    pub sqs: &'a aws_sdk_sqs::Client,
    /// The dead-letter queue.
    pub dlq_url: &'a str,
    /// The deployment's routes, for each object's table.
    pub routes: &'a Routes,
    /// Each route's table store, in the routes' order.
    pub tables: Vec<Arc<dyn ObjectStore>>,
}

/// How often a message was received, and when it was first sent (RFC 3339), from the system
/// attributes a receive asked for.
pub(crate) fn receipts(message: &aws_sdk_sqs::types::Message) -> (u64, String) {
    let attribute = |name: Attribute| message.attributes().and_then(|a| a.get(&name)).cloned();
    let sent_at = attribute(Attribute::SentTimestamp)
        .and_then(|ms| ms.parse::<i64>().ok())
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|at| at.to_rfc3339())
        .unwrap_or_default();
    let receive_count = attribute(Attribute::ApproximateReceiveCount).and_then(|n| n.parse().ok()).unwrap_or(0);
    (receive_count, sent_at)
}

/// A message held out of sight, to be released or deleted.
struct Held {
    message: DeadLetterMessage,
    receipt: String,
}

impl DeadLetters<'_> {
    /// Up to `max` messages, decoded, each object with its reason; the queue is left as it was.
    pub async fn list(&self, max: usize) -> Result<Vec<DeadLetterMessage>> {
        let held = self.hold(max).await?;
        self.release(&held).await?;
        Ok(held.into_iter().map(|held| held.message).collect())
    }

    /// Sends every message `chosen` picks (of up to `max`) back to `queue_url` and then takes it
    /// off the DLQ; the others stay. A message sent again but not yet deleted (a crash between
    /// the two) is a duplicate notification, which the load history drops.
    pub async fn redrive(
        &self,
        queue_url: &str,
        chosen: impl Fn(&DeadLetterMessage) -> bool,
        max: usize,
    ) -> Result<Redriven> {
        let held = self.hold(max).await?;
        let (move_these, keep): (Vec<Held>, Vec<Held>) = held.into_iter().partition(|held| chosen(&held.message));
        let mut report = Redriven { kept: keep.len(), ..Redriven::default() };
        self.release(&keep).await?;
        for held in move_these {
            self.sqs
                .send_message()
                .queue_url(queue_url)
                .message_body(&held.message.body)
                .send()
                .await
                .map_err(|err| Error::aws("SendMessage", queue_url, err))?;
            self.sqs
                .delete_message()
                .queue_url(self.dlq_url)
                .receipt_handle(&held.receipt)
                .send()
                .await
                .map_err(|err| Error::aws("DeleteMessage", self.dlq_url, err))?;
            report.moved.push(held.message.message_id);
        }
        Ok(report)
    }

    /// Receives up to `max` messages, each held out of sight for [`HOLD_SECONDS`], so every
    /// message is seen once.
    async fn hold(&self, max: usize) -> Result<Vec<Held>> {
        let mut held: Vec<Held> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        while held.len() < max {
            let received = self
                .sqs
                .receive_message()
                .queue_url(self.dlq_url)
                .max_number_of_messages((max - held.len()).min(10) as i32)
                .visibility_timeout(HOLD_SECONDS)
                .wait_time_seconds(1)
                .message_system_attribute_names(Attribute::ApproximateReceiveCount)
                .message_system_attribute_names(Attribute::SentTimestamp)
                .send()
                .await
                .map_err(|err| Error::aws("ReceiveMessage", self.dlq_url, err))?;
            if received.messages().is_empty() {
                break;
            }
            for message in received.messages() {
                let (Some(id), Some(receipt)) = (message.message_id(), message.receipt_handle()) else { continue };
                // Received again (its hold ran out while others were read): only the newest
                // receipt can delete or release it.
                if let Some(&at) = seen.get(id) {
                    held[at].receipt = receipt.to_string();
                    continue;
                }
                seen.insert(id.to_string(), held.len());
                let (receive_count, sent_at) = receipts(message);
                let body = message.body().unwrap_or_default().to_string();
                let mut decoded = DeadLetterMessage {
                    message_id: id.to_string(),
                    receive_count,
                    sent_at,
                    objects: Vec::new(),
                    unreadable: None,
                    body,
                };
                match parse_notification(&decoded.body) {
                    Ok(Notification::Objects(objects)) => {
                        for object in objects {
                            decoded.objects.push(self.describe(&object).await?);
                        }
                    }
                    Ok(Notification::Ignored(reason)) | Err(reason) => decoded.unreadable = Some(reason),
                }
                held.push(Held { message: decoded, receipt: receipt.to_string() });
            }
        }
        Ok(held)
    }

    /// An object with its route and the converter's reason.
    async fn describe(&self, object: &SourceObject) -> Result<DeadObject> {
        let at = self.routes.route_of(object);
        let reason = match at {
            Some(at) => FailureLog::new(self.tables[at].clone()).find(object).await?.map(|record| record.error),
            None => Some("no route takes this object".to_string()),
        };
        Ok(DeadObject {
            uri: object.uri(),
            etag: object.etag.clone(),
            version: object.version.clone(),
            route: at.and_then(|at| self.routes.iter().nth(at)).map(|(route, _)| route.name.clone()),
            reason,
        })
    }

    /// Makes held messages visible again.
    async fn release(&self, held: &[Held]) -> Result<()> {
        for chunk in held.chunks(10) {
            let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .map(|(at, held)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(at.to_string())
                        .receipt_handle(&held.receipt)
                        .visibility_timeout(0)
                        .build()
                        .map_err(|err| Error::Config(format!("visibility entry: {err}")))
                })
                .collect::<Result<_>>()?;
            let answered = self
                .sqs
                .change_message_visibility_batch()
                .queue_url(self.dlq_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|err| Error::aws("ChangeMessageVisibilityBatch", self.dlq_url, err))?;
            for failed in answered.failed() {
                // Visible again once its hold runs out.
                tracing::warn!(entry = failed.id(), reason = ?failed.message(), "a dead letter stays held until its hold ends");
            }
        }
        Ok(())
    }
}
