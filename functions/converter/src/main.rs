//! Converter Lambda: SQS batches of S3 notifications in, Parquet fragments out.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use inlet::context::Context;
use inlet::ingest::Converter;
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    inlet::telemetry::init();
    inlet::memory::keep_large_buffers_mapped();
    let context = Context::from_env().await?;
    let converter = &Converter::from_context(&context);
    let table = context.settings.table_uri.as_str();
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        // Per-object failures are reported per message; an error here fails the whole batch.
        let stop = converter.stop_before(event.context.deadline);
        let report = converter.convert_until(&event.payload, Some(stop)).await.map_err(Diagnostic::from)?;
        inlet::metrics::emit("converter", table, &report.metrics());
        Ok::<SqsBatchResponse, Diagnostic>(report.batch_response())
    }))
    .await
}
