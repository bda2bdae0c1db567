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
    // Built on the first reconciliation, not at every cold start.
    let reconciler = &tokio::sync::OnceCell::<Reconciler>::new();
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        if let Some(request) = ReconcileRequest::from_payload(&event.payload).map_err(Diagnostic::from)? {
            let deadline = reading_deadline(event.context.deadline);
            let reconciler = reconciler.get_or_init(Reconciler::from_env).await;
            let answer = reconciler.run(compactor.routes(), &request, chrono::Utc::now(), Some(deadline)).await;
            return answer.map_err(Diagnostic::from);
        }
        let invocation = Invocation::from_payload(&event.payload).map_err(Diagnostic::from)?;
        compactor.handle(&invocation).await.map_err(Diagnostic::from)
    }))
    .await
}

/// When a reconciliation stops reading versions: a minute (or a quarter of the time, if less)
/// before the invocation's deadline (ms since the epoch), to count and renotify the rest.
fn reading_deadline(deadline_ms: u64) -> tokio::time::Instant {
    let left = deadline_ms.saturating_sub(chrono::Utc::now().timestamp_millis().max(0) as u64);
    let margin = (left / 4).min(60_000);
    tokio::time::Instant::now() + std::time::Duration::from_millis(left - margin)
}
