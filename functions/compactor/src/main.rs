//! Compactor Lambda: merges staged fragments into the Delta table; scheduled or on demand.

use inlet::commit::{CompactRequest, CompactionReport, compact_table};
use inlet::context::Context;
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    inlet::telemetry::init();
    inlet::memory::keep_large_buffers_mapped();
    let context = &Context::from_env().await?;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let request = CompactRequest::from_payload(&event.payload).map_err(Diagnostic::from)?;
        let report = compact_table(context, &request).await.map_err(Diagnostic::from)?;
        inlet::metrics::emit("compactor", &context.settings.table_uri, &report.metrics());
        Ok::<CompactionReport, Diagnostic>(report)
    }))
    .await
}
