//! What the converter tells the compactor: with the size trigger, that a file's worth of bytes
//! is staged; on the commit queue, that a batch was sealed, so its table's next commit follows
//! within seconds instead of waiting for the schedule.

use async_trait::async_trait;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;

use crate::error::{Error, Result};
use crate::layout::SealedBatch;

/// Something that starts a compaction.
#[async_trait]
pub trait CompactionTrigger: Send + Sync {
    /// Asks for a compaction, without waiting for it.
    async fn request(&self, reason: &str) -> Result<()>;
}

/// Starts the compactor Lambda with an asynchronous (`Event`) invocation.
#[derive(Debug, Clone)]
pub struct LambdaTrigger {
    client: aws_sdk_lambda::Client,
    function: String,
}

impl LambdaTrigger {
    /// A trigger of `function` (name or ARN).
    pub fn new(client: aws_sdk_lambda::Client, function: String) -> Self {
        Self { client, function }
    }
}

#[async_trait]
impl CompactionTrigger for LambdaTrigger {
    async fn request(&self, reason: &str) -> Result<()> {
        let payload = serde_json::json!({"reason": reason});
        self.client
            .invoke()
            .function_name(&self.function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(serde_json::to_vec(&payload)?))
            .send()
            .await
            .map_err(|err| Error::aws("Invoke", &self.function, err))?;
        Ok(())
    }
}

/// Where sealed batches are announced.
#[async_trait]
pub trait SealedBatches: Send + Sync {
    /// Announces that `batch` of the table `table` (its route's name) is sealed.
    async fn sealed(&self, table: &str, batch: &str) -> Result<()>;
}

/// Announces sealed batches on an SQS FIFO queue, one message group per table: the compactor
/// reading it runs once at a time per table, tables in parallel, and the messages that wait
/// while a table commits come together in its next run.
#[derive(Debug, Clone)]
pub struct CommitQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl CommitQueue {
    /// Announcements sent to the FIFO queue at `queue_url`.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: String) -> Self {
        Self { client, queue_url }
    }
}

#[async_trait]
impl SealedBatches for CommitQueue {
    async fn sealed(&self, table: &str, batch: &str) -> Result<()> {
        let body = SealedBatch { table: table.to_string(), batch: batch.to_string() };
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(serde_json::to_string(&body)?)
            .message_group_id(table)
            // A batch is announced once however often its seal is retried.
            .message_deduplication_id(batch)
            .send()
            .await
            .map_err(|err| Error::aws("SendMessage", &self.queue_url, err))?;
        Ok(())
    }
}
