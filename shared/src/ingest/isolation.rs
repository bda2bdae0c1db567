//! Isolating redelivered messages, so a crash is attributed to its object instead of shared.
//!
//! When a converter invocation dies (a panic, the process killed for memory or time), SQS
//! delivers every message of its batch again: the object that killed it and the innocent ones
//! alike, together, until all of them reach the DLQ. So a converter that receives a message for
//! the second time (`ApproximateReceiveCount` above 1) in a batch of several does not convert
//! it there: it moves it to the isolation queue, whose event source mapping hands the
//! converter one message per invocation. There an innocent object ingests on its own, and one
//! that kills the converter dies alone and reaches the DLQ alone, its log naming it.

use async_trait::async_trait;

use crate::error::{Error, Result};

/// Where redelivered messages go to be converted one at a time.
#[async_trait]
pub trait Isolation: Send + Sync {
    /// Moves the message bodies; after `Ok`, the messages may be answered as done.
    async fn isolate(&self, bodies: &[String]) -> Result<()>;
}

/// The isolation queue (`INLET_ISOLATION_QUEUE_URL`).
#[derive(Debug, Clone)]
pub struct SqsIsolation {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsIsolation {
    /// The queue at `queue_url`.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: String) -> Self {
        Self { client, queue_url }
    }
}

#[async_trait]
impl Isolation for SqsIsolation {
    async fn isolate(&self, bodies: &[String]) -> Result<()> {
        for chunk in bodies.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(index, body)| {
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(index.to_string())
                        .message_body(body)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| Error::aws("SendMessageBatch", &self.queue_url, err))?;
            let sent = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|err| Error::aws("SendMessageBatch", &self.queue_url, err))?;
            if let Some(failure) = sent.failed.first() {
                return Err(Error::Integrity(format!(
                    "isolation queue {} refused a message: {} {}",
                    self.queue_url,
                    failure.code,
                    failure.message.as_deref().unwrap_or_default()
                )));
            }
        }
        Ok(())
    }
}

/// How many times SQS has delivered a message (1 the first time).
pub fn receive_count(message: &aws_lambda_events::event::sqs::SqsMessage) -> u32 {
    message.attributes.get("ApproximateReceiveCount").and_then(|count| count.parse().ok()).unwrap_or(1)
}

/// The part of `event` to convert here: in a batch of several, messages delivered before
/// go to the isolation queue (listed in `isolated`, or in `failed` if it refuses them).
pub(crate) async fn isolate_redeliveries<'a>(
    isolation: Option<&dyn Isolation>,
    event: &'a aws_lambda_events::event::sqs::SqsEvent,
    isolated: &mut Vec<String>,
    failed: &mut std::collections::BTreeSet<String>,
) -> std::borrow::Cow<'a, aws_lambda_events::event::sqs::SqsEvent> {
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
