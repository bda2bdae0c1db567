//! What one converter invocation did: the batch's identity, counts, the fragments it staged
//! and the messages SQS must deliver again.

use aws_lambda_events::event::sqs::SqsBatchResponse;
use serde::Serialize;

use crate::aws::batch_response;
use crate::metrics::Metric;

/// What one converter invocation did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct ConversionReport {
    /// Identity of this invocation, recorded in every fragment it staged.
    pub batch: String,
    /// Objects ingested (rows staged, lines quarantined, or both).
    pub objects: usize,
    /// Rows staged.
    pub rows: u64,
    /// Lines quarantined.
    pub quarantined: u64,
    /// Uncompressed bytes decoded.
    pub bytes_in: u64,
    /// Fragments staged, relative to the table root.
    pub fragments: Vec<String>,
    /// Message ids that failed (retried by SQS, then dead-lettered).
    pub failed_messages: Vec<String>,
    /// Of those, the messages failed because the table could not be set up (its schema could
    /// not be read, say): nothing of theirs was read.
    pub table_unavailable: usize,
    /// Notified versions that were gone when read (recorded under `_inlet/superseded/`).
    pub superseded: Vec<String>,
    /// Messages delivered before, moved to the isolation queue.
    pub isolated: Vec<String>,
    /// Bytes of the fragments staged.
    pub bytes_out: u64,
    /// Wall time of the invocation, in milliseconds.
    pub duration_ms: u64,
}

impl ConversionReport {
    /// The partial batch response: the failed messages, for SQS to retry.
    pub fn batch_response(&self) -> SqsBatchResponse {
        batch_response(&self.failed_messages)
    }

    /// The report as CloudWatch metrics.
    pub fn metrics(&self) -> [Metric; 11] {
        [
            Metric { name: "Objects", value: self.objects as f64, unit: "Count" },
            Metric { name: "Rows", value: self.rows as f64, unit: "Count" },
            Metric { name: "QuarantinedLines", value: self.quarantined as f64, unit: "Count" },
            Metric { name: "FailedMessages", value: self.failed_messages.len() as f64, unit: "Count" },
            Metric { name: "TableUnavailable", value: self.table_unavailable as f64, unit: "Count" },
            Metric { name: "SupersededVersions", value: self.superseded.len() as f64, unit: "Count" },
            Metric { name: "IsolatedMessages", value: self.isolated.len() as f64, unit: "Count" },
            Metric { name: "Fragments", value: self.fragments.len() as f64, unit: "Count" },
            Metric { name: "BytesIn", value: self.bytes_in as f64, unit: "Bytes" },
            Metric { name: "BytesOut", value: self.bytes_out as f64, unit: "Bytes" },
            Metric { name: "Duration", value: self.duration_ms as f64, unit: "Milliseconds" },
        ]
    }
}
