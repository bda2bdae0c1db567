//! Converter Lambda: SQS batches of S3 notifications in, Parquet fragments out.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use inlet::context::Context;
use inlet::converter::Converter;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    inlet::telemetry::init();
    let context = Context::from_env().await?;
    let converter = &Converter::from_context(&context);
    let table = context.settings.table_uri.as_str();
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let report = converter.convert(&event.payload).await?;
        inlet::metrics::emit("converter", table, &report.metrics());
        Ok::<SqsBatchResponse, Error>(report.batch_response())
    }))
    .await
}
