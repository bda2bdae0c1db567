//! Compactor Lambda: merges staged fragments into the Delta table (or each table of a routing
//! file); scheduled, on demand, or for batches announced sealed on the commit queue.

use inlet::commit::{Invocation, RoutedCompactor};
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    inlet::telemetry::init();
    inlet::memory::keep_large_buffers_mapped();
    let compactor = &RoutedCompactor::from_env().await?;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let invocation = Invocation::from_payload(&event.payload).map_err(Diagnostic::from)?;
        compactor.handle(&invocation).await.map_err(Diagnostic::from)
    }))
    .await
}
