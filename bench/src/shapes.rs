//! `inlet-bench shapes`: the converter's peak RSS, at the default settings, on the object
//! shapes that cost most memory per byte of text (tiny lines, refused lines, lines past the
//! limit, wide rows, many partitions), beside the reference workload's, each in a process of
//! its own, against the memory model's figure for the settings (`inlet::memory`). Results:
//! `target/bench/shapes.json`, and a `shapes` entry in `target/bench/report.json` when that
//! report exists.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use aws_lambda_events::event::sqs::SqsEvent;
use inlet::ingest::ConverterMemory;
use inlet::ingest::{Converter, ConverterOptions, Quarantine, decode_slots};
use inlet::lineage::SourceObject;
use inlet::stage::FragmentStore;
use inlet::testing::shapes::{self, Shape};
use inlet::testing::sources::LocalSource;
use serde::{Deserialize, Serialize};

use crate::{cpu_seconds, peak_rss_mib};

/// The shapes measured, by name.
pub const NAMES: [&str; 12] = [
    "reference",
    "empty-10m",
    "empty-40m",
    "empty-20m-20-columns",
    "tiny-objects",
    "refused-10m",
    "refused-512k",
    "huge-lines",
    "wide-rows",
    "nested",
    "short-strings",
    "partitions",
];

fn shape(name: &str) -> Result<Shape> {
    Ok(match name {
        "reference" => {
            let objects: Vec<(String, Vec<u8>)> = (0..64)
                .map(|index| {
                    let ndjson = inlet::testing::sample::ndjson_object(42, index, inlet::testing::sample::OBJECT_BYTES);
                    (format!("bench/{index:05}.json.zst"), inlet::testing::sample::zstd_compress(&ndjson))
                })
                .collect();
            Shape {
                label: "64 objects of the reference workload".into(),
                schema: crate::SCHEMA.into(),
                layout: Default::default(),
                objects,
                rows: 0,
                quarantined: 0,
            }
        }
        "empty-10m" => shapes::empty_lines(10_000_000, 4),
        "empty-40m" => shapes::empty_lines(40_000_000, 4),
        "empty-20m-20-columns" => shapes::empty_lines(20_000_000, 20),
        "tiny-objects" => shapes::many_objects_of_empty_lines(200, 350_000),
        "refused-10m" => shapes::refused_lines(10_000_000),
        "refused-512k" => shapes::long_refused_lines(8192, 512 << 10),
        "huge-lines" => shapes::huge_lines(16, 64 << 20),
        "wide-rows" => shapes::wide_rows(50_000, 500),
        "nested" => shapes::deeply_nested(1_000_000, 5),
        "short-strings" => shapes::short_string_columns(300_000, 200),
        "partitions" => shapes::many_partitions(2_000_000, 3650),
        other => bail!("no shape {other:?}: one of {}", NAMES.join(", ")),
    })
}

/// What converting one shape measured.
#[derive(Debug, Serialize, Deserialize)]
pub struct Measured {
    name: String,
    label: String,
    json_mib: f64,
    rows: u64,
    quarantined: u64,
    fragments: usize,
    wall_seconds: f64,
    cpu_seconds: f64,
    /// Resident memory before the conversion (runtime, the stored objects)...
    baseline_rss_mib: f64,
    /// ...and its peak during it.
    peak_rss_mib: f64,
    /// The model's figure for the settings, and with the process's footprint.
    model_mib: f64,
    model_with_footprint_mib: f64,
}

/// Converts one shape at the default settings, in this process, and prints what it measured.
pub fn measure_one(name: &str) -> Result<()> {
    let Shape { label, schema, layout, objects, rows, quarantined } = shape(name)?;
    let raw = tempfile::tempdir()?;
    let mut event = SqsEvent::default();
    for (index, (key, stored)) in objects.into_iter().enumerate() {
        let path = raw.path().join("raw").join(&key);
        std::fs::create_dir_all(path.parent().context("an object's directory")?)?;
        std::fs::write(&path, stored)?;
        let object = SourceObject { bucket: "raw".into(), key, ..Default::default() };
        event.records.push(inlet::ingest::sqs_message(index.to_string(), object));
    }
    let lake = tempfile::tempdir()?;
    let url = url::Url::from_directory_path(lake.path()).map_err(|()| anyhow::anyhow!("not a directory path"))?;
    let store = inlet::stage::table_store(&url, &Default::default())?;
    let schema = Arc::new(inlet::schema::TableSchema::parse_with(&schema, name, layout)?);
    let options = ConverterOptions::default();
    let model = ConverterMemory::of(&options, decode_slots(options.concurrency));
    let converter = Converter::new(
        Arc::new(LocalSource::new(raw.path())),
        FragmentStore::new(store.clone()),
        Quarantine::new(store),
        schema,
        options,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    crate::big_object::reset_peak_rss()?;
    let baseline_rss_mib = peak_rss_mib()?;
    let (cpu_before, started) = (cpu_seconds()?, Instant::now());
    let report = runtime.block_on(converter.convert(&event))?;
    let (wall_seconds, cpu) = (started.elapsed().as_secs_f64(), cpu_seconds()? - cpu_before);
    ensure!(report.failed_messages.is_empty(), "{label}: objects failed, see the log");
    if name != "reference" {
        ensure!(
            (report.rows, report.quarantined) == (rows, quarantined),
            "{label}: {} rows and {} quarantined lines, not {rows} and {quarantined}",
            report.rows,
            report.quarantined
        );
    }
    let measured = Measured {
        name: name.into(),
        label,
        json_mib: report.bytes_in as f64 / 1048576.0,
        rows: report.rows,
        quarantined: report.quarantined,
        fragments: report.fragments.len(),
        wall_seconds,
        cpu_seconds: cpu,
        baseline_rss_mib,
        peak_rss_mib: peak_rss_mib()?,
        model_mib: model.total() as f64 / 1048576.0,
        model_with_footprint_mib: (model.total() + ConverterMemory::FOOTPRINT_BYTES) as f64 / 1048576.0,
    };
    println!("{}", serde_json::to_string(&measured)?);
    Ok(())
}

/// Measures every shape (or those named), each in a child process, and prints a table.
pub fn measure(names: &[String]) -> Result<()> {
    let names: Vec<String> =
        if names.is_empty() { NAMES.iter().map(|n| n.to_string()).collect() } else { names.to_vec() };
    let mut results = Vec::new();
    for name in &names {
        let output = std::process::Command::new(std::env::current_exe()?).args(["shape", name]).output()?;
        if !output.status.success() {
            bail!("shape {name} failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let measured: Measured = serde_json::from_slice(&output.stdout).context("a shape's measurement")?;
        results.push(measured);
    }
    println!(
        "converter peak RSS by object shape, default settings (model: {:.0} MiB + {:.0} MiB footprint)",
        results.first().map_or(0.0, |m| m.model_mib),
        ConverterMemory::FOOTPRINT_BYTES as f64 / 1048576.0
    );
    println!(
        "{:<48} {:>9} {:>11} {:>11} {:>8} {:>10} {:>9}",
        "shape", "JSON MiB", "rows", "quarantined", "CPU s", "peak MiB", "over base"
    );
    for m in &results {
        println!(
            "{:<48} {:>9.0} {:>11} {:>11} {:>8.1} {:>10.0} {:>9.0}",
            m.label,
            m.json_mib,
            m.rows,
            m.quarantined,
            m.cpu_seconds,
            m.peak_rss_mib,
            m.peak_rss_mib - m.baseline_rss_mib
        );
    }
    crate::save_result("shapes", "shapes", &results)?;
    Ok(())
}
