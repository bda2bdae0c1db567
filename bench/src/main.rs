//! `make bench`: the converter core on local files (read `.json.zst`, decompress, decode with
//! the declared schema, encode Parquet fragments), one thread and all cores, each run in a child
//! process so its peak RSS is its own. Figures are MiB of uncompressed JSON.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use clap::{Parser, Subcommand};
use inlet::backfill::{ListedObject, notification_body};
use inlet::converter::{Converter, ConverterOptions};
use inlet::event::SourceObject;
use inlet::fragment::FragmentStore;
use inlet::quarantine::Quarantine;
use inlet::schema::TableSchema;
use inlet::source::LocalSource;
use serde::{Deserialize, Serialize};

#[derive(Parser)]
struct Cli {
    /// Objects of the reference workload (~1 MiB of NDJSON each).
    #[arg(long, default_value_t = 300, env = "OBJECTS")]
    objects: usize,
    /// Where the generated workload is kept between runs.
    #[arg(long, default_value = "target/bench/data")]
    data: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// One measured run (used by the parent process).
    Run {
        #[arg(long)]
        threads: usize,
    },
}

/// What one run measured.
#[derive(Debug, Serialize, Deserialize)]
struct Measurement {
    threads: usize,
    objects: usize,
    rows: u64,
    json_mib: f64,
    output_mib: f64,
    wall_seconds: f64,
    cpu_seconds: f64,
    peak_rss_mib: f64,
}

const SCHEMA: &str = include_str!("../../schemas/events.schema.json");

fn main() -> Result<()> {
    let cli = Cli::parse();
    let keys = ensure_workload(&cli.data, cli.objects)?;
    match cli.command {
        Some(Command::Run { threads }) => {
            let measured = run(&cli.data, &keys, threads)?;
            println!("{}", serde_json::to_string(&measured)?);
        }
        None => {
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            let mut results = Vec::new();
            for threads in if cores > 1 { vec![1, cores] } else { vec![1] } {
                let output = std::process::Command::new(std::env::current_exe()?)
                    .args(["--objects", &cli.objects.to_string(), "--data"])
                    .arg(&cli.data)
                    .args(["run", "--threads", &threads.to_string()])
                    .output()?;
                if !output.status.success() {
                    bail!("run with {threads} threads failed: {}", String::from_utf8_lossy(&output.stderr));
                }
                results.push(serde_json::from_slice::<Measurement>(&output.stdout)?);
            }
            print_table(&results);
            std::fs::create_dir_all("target/bench")?;
            std::fs::write("target/bench/inlet.json", serde_json::to_vec_pretty(&results)?)?;
        }
    }
    Ok(())
}

/// Generates the seeded workload once: `<data>/raw/bench/NNNNN.json.zst`.
fn ensure_workload(data: &Path, objects: usize) -> Result<Vec<String>> {
    let dir = data.join("raw/bench");
    std::fs::create_dir_all(&dir)?;
    let keys: Vec<String> = (0..objects).map(|i| format!("bench/{i:05}.json.zst")).collect();
    for (index, key) in keys.iter().enumerate() {
        let path = data.join("raw").join(key);
        if !path.exists() {
            let ndjson = inlet::sample::ndjson_object(42, index as u64, inlet::sample::OBJECT_BYTES);
            std::fs::write(&path, inlet::sample::zstd_compress(&ndjson))?;
        }
    }
    Ok(keys)
}

fn run(data: &Path, keys: &[String], threads: usize) -> Result<Measurement> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .max_blocking_threads(threads)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let schema = Arc::new(TableSchema::parse(SCHEMA, "schemas/events.schema.json")?);
        let lake = tempfile::tempdir()?;
        let store =
            inlet::table::table_store(&url::Url::from_directory_path(lake.path()).unwrap(), &Default::default())?;
        let options = ConverterOptions { concurrency: threads * 2, ..ConverterOptions::default() };
        let converter = Converter::new(
            Arc::new(LocalSource::new(data)),
            FragmentStore::new(store.clone()),
            Quarantine::new(store),
            schema,
            options,
        );
        let mut event = SqsEvent::default();
        for (index, key) in keys.iter().enumerate() {
            let listed = ListedObject {
                object: SourceObject { bucket: "raw".into(), key: key.clone(), etag: None },
                size: 0,
                last_modified: None,
            };
            let mut message = SqsMessage::default();
            message.message_id = Some(index.to_string());
            message.body = Some(notification_body(&listed));
            event.records.push(message);
        }
        let cpu_before = cpu_seconds()?;
        let started = Instant::now();
        let report = converter.convert(&event).await?;
        let wall_seconds = started.elapsed().as_secs_f64();
        let cpu_seconds = cpu_seconds()? - cpu_before;
        if !report.failed_messages.is_empty() {
            bail!("{} objects failed", report.failed_messages.len());
        }
        Ok(Measurement {
            threads,
            objects: keys.len(),
            rows: report.rows,
            json_mib: report.bytes_in as f64 / 1048576.0,
            output_mib: report.bytes_out as f64 / 1048576.0,
            wall_seconds,
            cpu_seconds,
            peak_rss_mib: peak_rss_mib()?,
        })
    })
}

/// User + system CPU time of this process, from /proc (clock ticks of 1/100 s).
fn cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let fields: Vec<&str> = stat.rsplit_once(')').context("/proc/self/stat")?.1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

fn peak_rss_mib() -> Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("VmHWM")?;
    Ok(line.split_whitespace().nth(1).context("VmHWM value")?.parse::<f64>()? / 1024.0)
}

fn print_table(results: &[Measurement]) {
    println!(
        "{:<10} {:>7} {:>9} {:>9} {:>10} {:>12} {:>10} {:>10}",
        "system", "threads", "JSON MiB", "wall s", "MiB/s", "MiB/CPU-s", "peak MiB", "out MiB"
    );
    for m in results {
        println!(
            "{:<10} {:>7} {:>9.0} {:>9.2} {:>10.1} {:>12.1} {:>10.0} {:>10.1}",
            "inlet",
            m.threads,
            m.json_mib,
            m.wall_seconds,
            m.json_mib / m.wall_seconds,
            m.json_mib / m.cpu_seconds.max(1e-9),
            m.peak_rss_mib,
            m.output_mib
        );
    }
}
