//! `make demo`: deploys a pipeline on LocalStack, drops generated objects into the raw bucket,
//! lets the converter Lambda run from the queue, invokes the compactor and shows the table.

use std::time::{Duration, Instant};

use anyhow::Result;
use inlet::testing::sample;
use inlet_tests::{LocalStack, Pipeline, PipelineOptions};

const OBJECTS: u64 = 8;

#[tokio::main]
async fn main() -> Result<()> {
    let localstack = LocalStack::connect().await?;
    let started = Instant::now();
    let pipeline = Pipeline::deploy(&localstack, "demo", PipelineOptions::default()).await?;
    println!("deployed pipeline {} in {:.1}s", pipeline.name, started.elapsed().as_secs_f64());
    println!("  raw bucket   s3://{}", pipeline.raw_bucket);
    println!("  queue        {} (DLQ {})", pipeline.queue_url, pipeline.dlq_url);
    println!("  functions    {} <- SQS mapping, {}", pipeline.converter, pipeline.compactor);
    println!("  table        {}", pipeline.table_uri);

    let started = Instant::now();
    let mut uris = Vec::new();
    let mut bytes = 0;
    for index in 0..OBJECTS {
        let key = format!("web/date=2026-05-16/events-{index:04}.json.zst");
        let ndjson = sample::ndjson_object(42, index, sample::OBJECT_BYTES);
        bytes += ndjson.len();
        pipeline.put(&key, sample::zstd_compress(&ndjson)).await?;
        uris.push(format!("s3://{}/{key}", pipeline.raw_bucket));
    }
    println!(
        "\nuploaded {OBJECTS} objects ({:.1} MiB of NDJSON, zstd) to s3://{}/web/date=2026-05-16/",
        bytes as f64 / 1048576.0,
        pipeline.raw_bucket
    );

    pipeline.wait_for_staged(&uris, Duration::from_secs(180)).await?;
    println!("converter staged fragments for all objects after {:.1}s", started.elapsed().as_secs_f64());

    let report = pipeline.compact(serde_json::json!({"force": true})).await?;
    println!("compactor: {report}");

    let table = pipeline.read_table(false).await?;
    println!("\nDelta table {} (read back with delta-rs' Python reader)", pipeline.table_uri);
    println!("  version    {}", table.version);
    println!("  files      {} ({} bytes)", table.files.len(), table.files.iter().map(|f| f.size).sum::<u64>());
    println!("  rows       {}", table.num_rows);
    println!("  columns    {}", table.columns.len());
    println!(
        "\n  {:<38} {:<28} {:<12} {:<10} {:>6}  source",
        "event_id", "event_time", "event_type", "service", "status"
    );
    for row in &table.rows {
        let text = |name: &str| {
            row.get(name).map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).unwrap_or_default()
        };
        let source = text("_source_file");
        println!(
            "  {:<38} {:<28} {:<12} {:<10} {:>6}  {}",
            text("event_id"),
            text("event_time"),
            text("event_type"),
            text("service"),
            text("http_status"),
            source.rsplit('/').next().unwrap_or_default()
        );
    }
    println!(
        "\nQuery it with DuckDB or polars (README, \"Query the table\"): INLET_TABLE_URI={} with LocalStack's \
         AWS_ENDPOINT_URL={}; start LocalStack first (make localstack-start) so it outlives the demo.",
        pipeline.table_uri, localstack.endpoint
    );
    Ok(())
}
