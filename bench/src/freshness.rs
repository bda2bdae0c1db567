//! `inlet-bench freshness`: how soon rows become visible under a steady stream, on LocalStack.
//!
//! Deploys the pipeline as the Terraform module does by default (commit queue on, batches of
//! 50 with a 20 s window, perf binaries), then puts one object of about 1 MiB of JSON a second
//! for `--seconds`, spread over `--tables` tables (one route and prefix each). A watcher reads
//! every table's log as it grows: a source is visible when the commit listing it appears.
//! Reports PUT-to-visible latency (p50, p95, max), the commits made, and the CPU the functions
//! and LocalStack used. Results: `target/bench/freshness.json` and a `freshness` entry in
//! `target/bench/report.json` when that report exists.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use inlet::testing::{sample, schemas};
use inlet_tests::{LocalStack, Pipeline, PipelineOptions};
use serde::Serialize;

use crate::process_cpu_seconds;

/// CPU seconds of the running function processes whose code is `binary`'s.
fn functions_cpu_seconds(binary: &str) -> f64 {
    crate::functions_cpu_seconds_of(Some(binary))
}

#[derive(Debug, Serialize)]
struct Freshness {
    tables: usize,
    objects: usize,
    seconds: u64,
    batch_size: i32,
    batching_window_seconds: i32,
    p50_seconds: f64,
    p95_seconds: f64,
    max_seconds: f64,
    commits: usize,
    commits_per_hour: f64,
    /// The most data files any partition of any table held at the end.
    files_per_partition_max: usize,
    /// Opening the (largest) table at the end with delta-rs, as a reader would.
    table_load_seconds: f64,
    converter_cpu_seconds: f64,
    compactor_cpu_seconds: f64,
    localstack_cpu_seconds: f64,
}

/// One stream per entry of `tables` (1 and 5 by default), each `seconds` long.
pub fn measure(tables: &[usize], seconds: u64, window: i32) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut results = Vec::new();
    for &count in tables {
        let measured = runtime.block_on(stream(count, seconds, window))?;
        println!(
            "freshness ({} table{}, {} objects over {} s, batches of {} with a {} s window): PUT to visible p50 \
             {:.1} s, p95 {:.1} s, max {:.1} s; {} commits ({:.0} an hour), at most {} files in a partition, \
             table loaded in {:.2} s; converter {:.1} CPU-s, compactor {:.1} CPU-s, LocalStack {:.1} CPU-s",
            measured.tables,
            if measured.tables == 1 { "" } else { "s" },
            measured.objects,
            measured.seconds,
            measured.batch_size,
            measured.batching_window_seconds,
            measured.p50_seconds,
            measured.p95_seconds,
            measured.max_seconds,
            measured.commits,
            measured.commits_per_hour,
            measured.files_per_partition_max,
            measured.table_load_seconds,
            measured.converter_cpu_seconds,
            measured.compactor_cpu_seconds,
            measured.localstack_cpu_seconds,
        );
        results.push(measured);
    }
    crate::save_result("freshness", "freshness", &results)?;
    Ok(())
}

/// A pipeline serving `tables` tables (a routing file for several), on the commit queue.
async fn deploy(localstack: &LocalStack, tables: usize, window: i32, config: &std::path::Path) -> Result<Pipeline> {
    let mut environment = Vec::new();
    if tables > 1 {
        // The routes name their tables' bucket, which must exist before the deployment.
        let lake = format!("lake-fresh-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        localstack.s3.create_bucket().bucket(&lake).send().await?;
        let routes: Vec<serde_json::Value> = (0..tables)
            .map(|t| {
                serde_json::json!({"name": format!("t{t}"), "prefix": format!("t{t}/"),
                    "table_uri": format!("s3://{lake}/t{t}"), "schema": schemas::events_path()})
            })
            .collect();
        let routes_file = config.join("routes.json");
        std::fs::write(&routes_file, serde_json::json!({ "routes": routes }).to_string())?;
        environment.push(("INLET_ROUTES".to_string(), routes_file.display().to_string()));
    }
    let options = PipelineOptions {
        profile: "perf",
        batch_size: 50,
        batching_window_seconds: window,
        converter_timeout_seconds: 120,
        visibility_timeout_seconds: 720,
        commit_queue: true,
        environment,
        ..PipelineOptions::default()
    };
    Pipeline::deploy(localstack, "fresh", options).await
}

/// The table URI of table `index` of `pipeline` (its routing file's, for several).
fn table_uri(pipeline: &Pipeline, tables: usize, index: usize, lake: &str) -> String {
    if tables == 1 { pipeline.table_uri.clone() } else { format!("s3://{lake}/t{index}") }
}

async fn stream(tables: usize, seconds: u64, window: i32) -> Result<Freshness> {
    let localstack = LocalStack::connect().await?;
    let pid_file = inlet_tests::workspace_root().join(".localstack/localstack.pid");
    let localstack_pid: u32 = std::fs::read_to_string(&pid_file)
        .with_context(|| format!("{} (run under localstack/with-localstack.sh)", pid_file.display()))?
        .trim()
        .parse()?;
    let config = tempfile::tempdir()?;
    let pipeline = deploy(&localstack, tables, window, config.path()).await?;
    let lake = match tables {
        1 => pipeline.lake_bucket.clone(),
        _ => {
            let routes: serde_json::Value = serde_json::from_slice(&std::fs::read(config.path().join("routes.json"))?)?;
            let uri = routes["routes"][0]["table_uri"].as_str().context("a table URI")?.to_string();
            uri.trim_start_matches("s3://").split('/').next().context("a bucket")?.to_string()
        }
    };
    let uris: Vec<String> = (0..tables).map(|t| table_uri(&pipeline, tables, t, &lake)).collect();
    let bodies: Vec<Vec<u8>> =
        (0..8).map(|index| sample::zstd_compress(&sample::ndjson_object(21, index, 1 << 20))).collect();
    let (converter_before, compactor_before, localstack_before) = (
        functions_cpu_seconds("converter"),
        functions_cpu_seconds("compactor"),
        process_cpu_seconds(localstack_pid).unwrap_or(0.0),
    );
    let started = Instant::now();
    let mut put_at: HashMap<String, Duration> = HashMap::new();
    let mut watcher = LogWatcher::new(&localstack, &uris);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for index in 0..seconds {
        tick.tick().await;
        let table = index as usize % tables;
        let prefix = if tables == 1 { "web".to_string() } else { format!("t{table}") };
        let key = format!("{prefix}/date=2026-05-16/s-{index:06}.json.zst");
        pipeline.put(&key, bodies[index as usize % bodies.len()].clone()).await?;
        put_at.insert(format!("s3://{}/{key}", pipeline.raw_bucket), started.elapsed());
        watcher.poll(started).await?;
    }
    // Until every source is visible, or five minutes more.
    let drain = Instant::now();
    while put_at.keys().any(|uri| !watcher.visible.contains_key(uri)) {
        if drain.elapsed() > Duration::from_secs(300) {
            let missing = put_at.keys().filter(|uri| !watcher.visible.contains_key(*uri)).count();
            bail!("{missing} of {} objects not visible five minutes after the stream", put_at.len());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        watcher.poll(started).await?;
    }
    let converter_cpu = functions_cpu_seconds("converter") - converter_before;
    let compactor_cpu = functions_cpu_seconds("compactor") - compactor_before;
    let localstack_cpu = process_cpu_seconds(localstack_pid).unwrap_or(0.0) - localstack_before;
    let (files_per_partition_max, table_load_seconds) = table_shape(&localstack, &uris).await?;
    let mut latencies: Vec<f64> = put_at.iter().map(|(uri, put)| (watcher.visible[uri] - *put).as_secs_f64()).collect();
    latencies.sort_by(f64::total_cmp);
    let at = |quantile: f64| latencies[((latencies.len() - 1) as f64 * quantile).round() as usize];
    Ok(Freshness {
        tables,
        objects: put_at.len(),
        seconds,
        batch_size: 50,
        batching_window_seconds: window,
        p50_seconds: at(0.5),
        p95_seconds: at(0.95),
        max_seconds: at(1.0),
        commits: watcher.commits,
        commits_per_hour: watcher.commits as f64 * 3600.0 / started.elapsed().as_secs_f64(),
        files_per_partition_max,
        table_load_seconds,
        converter_cpu_seconds: converter_cpu,
        compactor_cpu_seconds: compactor_cpu,
        localstack_cpu_seconds: localstack_cpu,
    })
}

/// The most data files in one partition of any of `tables`, and the longest time to load one.
async fn table_shape(localstack: &LocalStack, tables: &[String]) -> Result<(usize, f64)> {
    let (mut most_files, mut slowest) = (0, 0.0f64);
    for uri in tables {
        let started = Instant::now();
        let table =
            deltalake::open_table_with_storage_options(url::Url::parse(uri)?, localstack.storage_options()).await?;
        slowest = slowest.max(started.elapsed().as_secs_f64());
        let mut per_partition: HashMap<String, usize> = HashMap::new();
        for file in table.get_file_uris()? {
            let directory = file.rsplit_once('/').map_or(String::new(), |(directory, _)| directory.to_string());
            *per_partition.entry(directory).or_default() += 1;
        }
        most_files = most_files.max(per_partition.into_values().max().unwrap_or(0));
    }
    Ok((most_files, slowest))
}

/// Reads the tables' logs as they grow: when each source's commit appeared.
struct LogWatcher {
    s3: aws_sdk_s3::Client,
    /// Per table: its bucket, its log prefix and the last commit read.
    logs: Vec<(String, String, Option<String>)>,
    visible: HashMap<String, Duration>,
    commits: usize,
}

impl LogWatcher {
    fn new(localstack: &LocalStack, tables: &[String]) -> Self {
        let logs = tables
            .iter()
            .map(|uri| {
                let (bucket, prefix) = uri.trim_start_matches("s3://").split_once('/').unwrap_or((uri, ""));
                (bucket.to_string(), format!("{prefix}/_delta_log/"), None)
            })
            .collect();
        Self { s3: localstack.s3.clone(), logs, visible: HashMap::new(), commits: 0 }
    }

    /// Reads the commits added since the last poll; their sources are visible now.
    async fn poll(&mut self, started: Instant) -> Result<()> {
        let now = started.elapsed();
        for (bucket, prefix, last) in &mut self.logs {
            let listed = self
                .s3
                .list_objects_v2()
                .bucket(bucket.as_str())
                .prefix(prefix.as_str())
                .set_start_after(last.clone())
                .send()
                .await?;
            for object in listed.contents() {
                let Some(key) = object.key() else { continue };
                if !key.ends_with(".json") || key.contains(".checkpoint") {
                    continue;
                }
                let body = self.s3.get_object().bucket(bucket.as_str()).key(key).send().await?.body.collect().await?;
                for line in body.into_bytes().split(|b| *b == b'\n').filter(|line| !line.is_empty()) {
                    let action: serde_json::Value = serde_json::from_slice(line)?;
                    let sources = action.get("commitInfo").and_then(|info| info.get(inlet::layout::SOURCES_KEY));
                    for source in sources.and_then(|s| s.as_array()).into_iter().flatten() {
                        if let Some(uri) = source.get("uri").and_then(|uri| uri.as_str()) {
                            self.visible.entry(uri.to_string()).or_insert(now);
                        }
                    }
                }
                self.commits += 1;
                *last = Some(key.to_string());
            }
        }
        Ok(())
    }
}
