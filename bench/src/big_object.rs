//! `inlet-bench big-object`: the converter on one object of more than a GiB of JSON (the
//! reference workload's lines), stored in a file and streamed as from S3, with the default
//! settings: throughput, and peak RSS, which the piece size bounds instead of the object. Results: `target/bench/big_object.json`, and a
//! `big_object` entry in `target/bench/report.json` when that report exists.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use aws_lambda_events::event::sqs::SqsEvent;
use inlet::ingest::{Converter, ConverterOptions, Quarantine};
use inlet::lineage::SourceObject;
use inlet::stage::FragmentStore;
use inlet::testing::sample;
use inlet::testing::sources::LocalSource;
use serde::Serialize;

use crate::{SCHEMA, cpu_seconds, peak_rss_mib};

#[derive(Debug, Serialize)]
struct BigObject {
    json_mib: f64,
    stored_mib: f64,
    rows: u64,
    fragments: usize,
    wall_seconds: f64,
    cpu_seconds: f64,
    mib_per_cpu_second: f64,
    /// Resident memory before the conversion (the runtime)...
    baseline_rss_mib: f64,
    /// ...and its peak during it.
    peak_rss_mib: f64,
}

/// Forgets the process's peak RSS so far (Linux `clear_refs`), so the next reading is the
/// conversion's own.
pub(crate) fn reset_peak_rss() -> Result<()> {
    std::fs::write("/proc/self/clear_refs", "5").context("resetting the peak RSS")
}

pub fn measure(json_mib: u64, piece_mib: Option<usize>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // The reference workload's objects, one after another, as one zstd stream.
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3)?;
    let (mut json_bytes, mut index) = (0u64, 0u64);
    while json_bytes < json_mib << 20 {
        let object = sample::ndjson_object(7, index, sample::OBJECT_BYTES);
        encoder.write_all(&object)?;
        json_bytes += object.len() as u64;
        index += 1;
    }
    let stored = encoder.finish()?;
    let stored_mib = stored.len() as f64 / 1048576.0;
    // On disk, as in S3: the converter streams an object stored larger than a piece.
    let raw = tempfile::tempdir()?;
    std::fs::create_dir_all(raw.path().join("raw/export"))?;
    std::fs::write(raw.path().join("raw/export/big.json.zst"), stored)?;
    let source = Arc::new(LocalSource::new(raw.path()));
    let mut event = SqsEvent::default();
    let object = SourceObject { bucket: "raw".into(), key: "export/big.json.zst".into(), ..Default::default() };
    event.records.push(inlet::ingest::sqs_message("m0", object));

    let lake = tempfile::tempdir()?;
    let store = inlet::stage::table_store(
        &url::Url::from_directory_path(lake.path()).map_err(|()| anyhow::anyhow!("not a directory path"))?,
        &Default::default(),
    )?;
    let schema = Arc::new(inlet::schema::TableSchema::parse(SCHEMA, "events")?);
    let defaults = ConverterOptions::default();
    let options = ConverterOptions { piece_bytes: piece_mib.map_or(defaults.piece_bytes, |mib| mib << 20), ..defaults };
    let converter = Converter::new(source, FragmentStore::new(store.clone()), Quarantine::new(store), schema, options);

    reset_peak_rss()?;
    let baseline_rss_mib = peak_rss_mib()?;
    let (cpu_before, started) = (cpu_seconds()?, Instant::now());
    let report = runtime.block_on(converter.convert(&event))?;
    let (wall_seconds, cpu) = (started.elapsed().as_secs_f64(), cpu_seconds()? - cpu_before);
    ensure!(report.failed_messages.is_empty(), "the object failed: see the log");
    let measured = BigObject {
        json_mib: json_bytes as f64 / 1048576.0,
        stored_mib,
        rows: report.rows,
        fragments: report.fragments.len(),
        wall_seconds,
        cpu_seconds: cpu,
        mib_per_cpu_second: json_bytes as f64 / 1048576.0 / cpu,
        baseline_rss_mib,
        peak_rss_mib: peak_rss_mib()?,
    };
    println!(
        "big object: {:.0} MiB of JSON ({:.0} MiB stored), {} rows, {} fragments in {:.1} s, {:.1} CPU-s \
         ({:.0} MiB/CPU-s); peak RSS {:.0} MiB ({:+.0} MiB over the {:.0} MiB before)",
        measured.json_mib,
        measured.stored_mib,
        measured.rows,
        measured.fragments,
        measured.wall_seconds,
        measured.cpu_seconds,
        measured.mib_per_cpu_second,
        measured.peak_rss_mib,
        measured.peak_rss_mib - measured.baseline_rss_mib,
        measured.baseline_rss_mib,
    );
    crate::save_result("big_object", "big_object", &measured)?;
    Ok(())
}
