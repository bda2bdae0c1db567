//! Compactor Lambda: merges staged fragments into the Delta table (or each table of a routing
//! file); scheduled or on demand.

use inlet::commit::{CompactRequest, RoutedCompactor};
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    inlet::telemetry::init();
    inlet::memory::keep_large_buffers_mapped();
    let compactor = &RoutedCompactor::from_env().await?;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let request = CompactRequest::from_payload(&event.payload).map_err(Diagnostic::from)?;
        let reports = compactor.compact(&request).await.map_err(Diagnostic::from)?;
        for (_, table, report) in &reports {
            inlet::metrics::emit("compactor", table, &report.metrics());
        }
        // One table: its report, as a single-table deployment answers; several: by route name.
        let answer = match reports.as_slice() {
            [(_, _, report)] => serde_json::to_value(report),
            _ => serde_json::to_value(serde_json::json!({
                "tables": reports.iter().map(|(name, _, report)| (name.clone(), report)).collect::<std::collections::BTreeMap<_, _>>()
            })),
        };
        answer.map_err(|err| Diagnostic::from(inlet::Error::from(err)))
    }))
    .await
}
