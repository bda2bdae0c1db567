//! The compactor's invocations: a compaction request (the schedule, on demand, the size
//! trigger), or sealed batches announced on the commit queue, whose tables it commits now.

use std::collections::BTreeMap;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use futures::StreamExt;
use serde_json::Value;

use super::request::{CompactRequest, RoutedCompactor, TableOutcome, answer};
use crate::aws::batch_response;
use crate::error::{Error, Result};
use crate::layout::SealedBatch;

/// Tables of one commit-queue batch compacted at once (a batch holds at most 10 messages).
const TABLES_AT_ONCE: usize = 4;

/// What the compactor was invoked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// A compaction request.
    Request(CompactRequest),
    /// Messages of the commit queue.
    Sealed {
        /// The tables they name, each with the ids of the messages naming it.
        tables: BTreeMap<String, Vec<String>>,
        /// The ids of messages that are no announcement: they fail.
        unreadable: Vec<String>,
    },
}

impl Invocation {
    /// Reads an invocation payload: an SQS event is the commit queue's, anything else a
    /// compaction request.
    pub fn from_payload(payload: &Value) -> Result<Self> {
        let from_sqs = payload
            .get("Records")
            .and_then(Value::as_array)
            .and_then(|records| records.first())
            .and_then(|record| record.get("eventSource"))
            .is_some_and(|source| source == "aws:sqs");
        if !from_sqs {
            return CompactRequest::from_payload(payload).map(Invocation::Request);
        }
        let event: SqsEvent = serde_json::from_value(payload.clone())
            .map_err(|err| Error::BadRequest(format!("not an SQS event ({err})")))?;
        let (mut tables, mut unreadable) = (BTreeMap::<String, Vec<String>>::new(), Vec::new());
        for message in event.records {
            let id = message.message_id.unwrap_or_default();
            match message.body.as_deref().map(serde_json::from_str::<SealedBatch>) {
                Some(Ok(sealed)) => tables.entry(sealed.table).or_default().push(id),
                _ => {
                    tracing::error!(message_id = %id, body = ?message.body, "not a sealed batch announcement: failing it");
                    unreadable.push(id);
                }
            }
        }
        Ok(Invocation::Sealed { tables, unreadable })
    }
}

impl RoutedCompactor {
    /// Runs one invocation and emits every table's metrics, failed ones included, before the
    /// answer. Sealed batches commit their tables now, however little is staged, one table
    /// after another; a table that fails fails only the messages that named it, for the queue
    /// to deliver again (and, in the end, to its dead-letter queue).
    pub async fn handle(&self, invocation: &Invocation) -> Result<Value> {
        let (tables, unreadable) = match invocation {
            Invocation::Request(request) => {
                let outcomes = self.compact(request).await?;
                emit_metrics(&outcomes);
                return answer(outcomes);
            }
            Invocation::Sealed { tables, unreadable } => (tables, unreadable),
        };
        let mut failed = unreadable.clone();
        // Every table of the batch at once: the batch holds each table's message group until
        // all are answered, so one slow table must not hold the others back.
        let mut runs = futures::stream::iter(tables)
            .map(|(table, messages)| async move {
                let request = CompactRequest { table: Some(table.clone()), force: true, ..CompactRequest::default() };
                (table, messages, self.compact(&request).await)
            })
            .buffer_unordered(TABLES_AT_ONCE);
        while let Some((table, messages, result)) = runs.next().await {
            match result {
                Ok(outcomes) => {
                    emit_metrics(&outcomes);
                    if outcomes.iter().any(|outcome| outcome.result.is_err()) {
                        failed.extend(messages.iter().cloned());
                    }
                }
                // A table not served here: its announcements can never be answered.
                Err(err) => {
                    tracing::error!(table = %table, error = %err, "a sealed batch names no table of this compactor");
                    failed.extend(messages.iter().cloned());
                }
            }
        }
        let response: SqsBatchResponse = batch_response(&failed);
        Ok(serde_json::to_value(response)?)
    }
}

fn emit_metrics(outcomes: &[TableOutcome]) {
    for outcome in outcomes {
        crate::metrics::emit("compactor", &outcome.table, &outcome.metrics());
    }
}
