//! Converter Lambda: SQS batches of S3 notifications in, Parquet fragments out (for one
//! table, or for each table of a routing file).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use inlet::ingest::RoutedConverter;
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn};

fn main() -> Result<(), Error> {
    inlet::memory::keep_large_buffers_mapped();
    inlet::ingest::runtime()?.block_on(serve())
}

async fn serve() -> Result<(), Error> {
    inlet::telemetry::init();
    let converter = &RoutedConverter::from_env().await?;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        // Per-object failures are reported per message; an error here fails the whole batch.
        let stop = converter.stop_before(event.context.deadline);
        let report = converter.convert_until(&event.payload, Some(stop)).await.map_err(Diagnostic::from)?;
        for (_, table, converted) in &report.tables {
            inlet::metrics::emit("converter", table, &converted.metrics());
        }
        Ok::<SqsBatchResponse, Diagnostic>(report.batch_response())
    }))
    .await
}
