//! Compactor Lambda: merges staged fragments into the Delta table (or each table of a routing
//! file); scheduled, on demand, or for batches announced sealed on the commit queue. Invoked
//! with `{"reconcile": {...}}`, it runs the scheduled reconciliation of the tables instead.

use inlet::commit::{Invocation, RoutedCompactor};
use inlet::ops::scheduled::{ReconcileRequest, Reconciler};
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    inlet::telemetry::init();
    inlet::memory::keep_large_buffers_mapped();
    let compactor = &RoutedCompactor::from_env().await?;
    let reconciler = &Reconciler::from_env().await;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        if let Some(request) = ReconcileRequest::from_payload(&event.payload).map_err(Diagnostic::from)? {
            let now = chrono::Utc::now();
            return reconciler.run(compactor.routes(), &request, now).await.map_err(Diagnostic::from);
        }
        let invocation = Invocation::from_payload(&event.payload).map_err(Diagnostic::from)?;
        compactor.handle(&invocation).await.map_err(Diagnostic::from)
    }))
    .await
}
