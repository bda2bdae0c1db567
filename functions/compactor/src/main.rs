//! Compactor Lambda: merges staged fragments into the Delta table (or each table of a routing
//! file); scheduled or on demand.

use inlet::commit::{CompactRequest, RoutedCompactor, answer};
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    inlet::telemetry::init();
    inlet::memory::keep_large_buffers_mapped();
    let compactor = &RoutedCompactor::from_env().await?;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let request = CompactRequest::from_payload(&event.payload).map_err(Diagnostic::from)?;
        let outcomes = compactor.compact(&request).await.map_err(Diagnostic::from)?;
        // Every table's metrics, failed ones included, before the answer.
        for outcome in &outcomes {
            inlet::metrics::emit("compactor", &outcome.table, &outcome.metrics());
        }
        answer(outcomes).map_err(Diagnostic::from)
    }))
    .await
}
