//! Compactor Lambda: merges staged fragments into the Delta table; scheduled or on demand.

use inlet::compact::{CompactRequest, CompactionReport, compact_table};
use inlet::context::Context;
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    inlet::telemetry::init();
    let context = &Context::from_env().await?;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let request = CompactRequest::from_payload(&event.payload).map_err(diagnostic)?;
        let report = compact_table(context, &request).await.map_err(diagnostic)?;
        inlet::metrics::emit("compactor", &context.settings.table_uri, &report.metrics());
        Ok::<CompactionReport, Diagnostic>(report)
    }))
    .await
}

/// The error as Lambda reports it: `Inlet.<kind>` and the message (a logged line too).
fn diagnostic(error: inlet::Error) -> Diagnostic {
    tracing::error!(error = %error, kind = error.kind(), "compaction failed");
    Diagnostic { error_type: error.kind().to_string(), error_message: error.to_string() }
}
