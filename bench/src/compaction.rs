//! The compaction alone, for `bench/compaction.py`: `stage` converts the workload into a lake
//! directory and leaves its fragments staged; `compact-staged` copies such a directory and times
//! the compactor merging every staged fragment into a new Delta table (the copy and the table's
//! creation stay outside the clock). Figures are MiB of fragments in.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, bail};
use aws_lambda_events::event::sqs::SqsEvent;
use inlet::commit::{Compactor, CompactorOptions};
use inlet::ingest::sqs_message;
use inlet::ingest::{Converter, ConverterOptions, Quarantine};
use inlet::lineage::SourceObject;
use inlet::schema::TableSchema;
use inlet::stage::FragmentStore;
use inlet::testing::sources::LocalSource;
use serde::Serialize;

use crate::{SCHEMA, cpu_seconds, peak_rss_mib};

/// One compaction as measured; the same fields as the peers' in `bench/compaction.py`.
#[derive(Debug, Serialize)]
struct Compaction {
    system: &'static str,
    threads: usize,
    rows: u64,
    input_mib: f64,
    input_files: usize,
    output_mib: f64,
    output_files: usize,
    wall_seconds: f64,
    cpu_seconds: f64,
    peak_rss_mib: f64,
}

/// Converts `keys` of `data` with `options`, staging their fragments (and batch seals) under
/// `out`, which must not hold a table yet.
pub fn stage(data: &Path, keys: &[String], out: &Path, options: ConverterOptions) -> Result<()> {
    if out.join("_inlet").exists() {
        bail!("{} already holds staged fragments", out.display());
    }
    std::fs::create_dir_all(out)?;
    let schema = Arc::new(TableSchema::parse(SCHEMA, "schemas/events.schema.json")?);
    let url = url::Url::from_directory_path(std::path::absolute(out)?).unwrap();
    let store = inlet::stage::table_store(&url, &Default::default())?;
    let converter = Converter::new(
        Arc::new(LocalSource::new(data)),
        FragmentStore::new(store.clone()),
        Quarantine::new(store),
        schema,
        options,
    );
    let mut event = SqsEvent::default();
    for (index, key) in keys.iter().enumerate() {
        let object = SourceObject { bucket: "raw".into(), key: key.clone(), etag: None, ..Default::default() };
        event.records.push(sqs_message(index.to_string(), object));
    }
    let report = tokio::runtime::Runtime::new()?.block_on(converter.convert(&event))?;
    if !report.failed_messages.is_empty() {
        bail!("{} objects failed", report.failed_messages.len());
    }
    eprintln!("staged {} rows in {} fragments under {}", report.rows, report.fragments.len(), out.display());
    Ok(())
}

/// Copies `staged` to a scratch directory and times the compactor, on `threads` worker threads,
/// merging everything staged there into a new table. Prints one JSON object.
pub fn compact_staged(staged: &Path, threads: usize) -> Result<()> {
    let scratch = tempfile::tempdir()?;
    copy_tree(staged, scratch.path())?;
    let fragments = files_under(&scratch.path().join("_inlet/fragments"))?;
    let input_bytes: u64 = fragments.iter().map(|(_, size)| size).sum();
    let schema = Arc::new(TableSchema::parse(SCHEMA, "schemas/events.schema.json")?);
    let url = url::Url::from_directory_path(scratch.path()).unwrap();
    let store = inlet::stage::table_store(&url, &Default::default())?;
    // Workers as asked; the blocking pool keeps its default size: delta-rs' file I/O and the
    // compactor's encoding wait on each other there, and a pool of one deadlocks.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?;
    let mut table =
        runtime.block_on(inlet::commit::open_or_create(&url, &Default::default(), &schema, &Default::default()))?;
    let compactor = Compactor::new(store, schema, CompactorOptions::default());
    let cpu_before = cpu_seconds()?;
    let started = Instant::now();
    let report = runtime.block_on(compactor.run(&mut table, true))?;
    let wall_seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = cpu_seconds()? - cpu_before;
    if report.fragments != fragments.len() {
        bail!("compacted {} of {} fragments", report.fragments, fragments.len());
    }
    let measured = Compaction {
        system: "inlet",
        threads,
        rows: report.rows,
        input_mib: input_bytes as f64 / 1048576.0,
        input_files: fragments.len(),
        output_mib: report.bytes as f64 / 1048576.0,
        output_files: report.files,
        wall_seconds,
        cpu_seconds,
        peak_rss_mib: peak_rss_mib()?,
    };
    println!("{}", serde_json::to_string(&measured)?);
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Every file under `dir`, with its size.
fn files_under(dir: &Path) -> Result<Vec<(std::path::PathBuf, u64)>> {
    let mut files = Vec::new();
    if !dir.exists() {
        return Ok(files);
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            files.extend(files_under(&entry.path())?);
        } else {
            files.push((entry.path(), entry.metadata()?.len()));
        }
    }
    Ok(files)
}
