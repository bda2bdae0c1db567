//! The size trigger: when staged bytes reach a file's worth, the converter asks for a
//! compaction instead of leaving the data to wait for the schedule.

use async_trait::async_trait;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;

use crate::error::{Error, Result};

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
