//! `inlet-bench history`: what deduplicating one compaction costs as the load history grows.
//!
//! For each size, a local table's history index is built through the compactor's own path
//! (`LoadHistory::record`, commit by commit, merges included); then a child process looks up
//! one compaction's sources (half committed long ago, half new) and reports its CPU time and
//! peak RSS, before and during the lookup. Results: `target/bench/history.json`, and a
//! `history` entry in `target/bench/report.json` when that report exists.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use inlet::commit::LoadHistory;
use inlet::lineage::{CommittedSource, SourceId};
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

use crate::{cpu_seconds, peak_rss_mib};

/// Sources per commit while building: a day of a busy table's compactions, roughly.
const SOURCES_PER_COMMIT: u64 = 250_000;

#[derive(Debug, Serialize, Deserialize)]
struct Lookup {
    committed_sources: u64,
    looked_up: u64,
    found: u64,
    wall_seconds: f64,
    cpu_seconds: f64,
    /// Peak RSS of the process before the lookup (runtime, arguments)...
    baseline_rss_mib: f64,
    /// ...and after it.
    peak_rss_mib: f64,
    /// Building the index (not part of a compaction): seconds, runs left.
    build_seconds: f64,
    runs: usize,
}

/// A source as the converter records it: with a content digest, so the index files it under
/// two keys (digest and ETag).
fn source(n: u64) -> SourceId {
    SourceId {
        uri: format!("s3://raw/service/date=2026-05-16/{n:012}.json.zst"),
        etag: Some(format!("{n:032x}")),
        digest: Some(inlet::lineage::content_digest(&n.to_le_bytes())),
    }
}

fn store(table: &Path) -> Result<Arc<dyn ObjectStore>> {
    let url = url::Url::from_directory_path(table).map_err(|()| anyhow::anyhow!("not a directory path"))?;
    Ok(inlet::commit::table_store(&url, &Default::default())?)
}

pub fn measure(sizes: &[u64], lookup: u64) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut results = Vec::new();
    for &sources in sizes {
        let table = tempfile::tempdir()?;
        let store = store(table.path())?;
        let started = Instant::now();
        let runs = runtime.block_on(async {
            let mut history = LoadHistory::default();
            for (version, first) in (0..sources).step_by(SOURCES_PER_COMMIT as usize).enumerate() {
                let added: Vec<CommittedSource> = (first..(first + SOURCES_PER_COMMIT).min(sources))
                    .map(|n| CommittedSource { id: source(n), rows: 1 })
                    .collect();
                history = history.record(&store, version as u64, &added).await?;
            }
            anyhow::Ok(history.runs())
        })?;
        let build_seconds = started.elapsed().as_secs_f64();
        let output = std::process::Command::new(std::env::current_exe()?)
            .args(["history-lookup", "--sources", &sources.to_string(), "--lookup", &lookup.to_string(), "--table"])
            .arg(table.path())
            .output()?;
        if !output.status.success() {
            bail!("lookup at {sources} sources failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let mut measured: Lookup = serde_json::from_slice(&output.stdout)?;
        measured.build_seconds = build_seconds;
        measured.runs = runs;
        println!(
            "history: {} committed sources ({} runs, built in {:.1} s): {} looked up, {} found, {:.3} CPU-s, \
             {:.3} s, peak RSS {:.0} MiB ({:+.0} MiB over the process before the lookup)",
            measured.committed_sources,
            measured.runs,
            measured.build_seconds,
            measured.looked_up,
            measured.found,
            measured.cpu_seconds,
            measured.wall_seconds,
            measured.peak_rss_mib,
            measured.peak_rss_mib - measured.baseline_rss_mib,
        );
        results.push(measured);
    }
    std::fs::create_dir_all("target/bench")?;
    std::fs::write("target/bench/history.json", serde_json::to_vec_pretty(&results)?)?;
    let report = Path::new("target/bench/report.json");
    if report.exists() {
        let mut combined: serde_json::Value = serde_json::from_slice(&std::fs::read(report)?)?;
        combined["history"] = serde_json::to_value(&results)?;
        std::fs::write(report, serde_json::to_vec_pretty(&combined)?)?;
    }
    Ok(())
}

/// One compaction's lookup against the index at `table`, measured from inside this process.
pub fn lookup_once(table: &Path, sources: u64, lookup: u64) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let store = store(table)?;
    let version = sources.div_ceil(SOURCES_PER_COMMIT).checked_sub(1).context("an empty history")?;
    // Half spread over everything committed, half never seen.
    let ids: Vec<SourceId> = (0..lookup / 2)
        .map(|i| source(i * (sources / (lookup / 2).max(1))))
        .chain((0..lookup - lookup / 2).map(|i| source(sources + i)))
        .collect();
    let baseline_rss_mib = peak_rss_mib()?;
    let cpu_before = cpu_seconds()?;
    let started = Instant::now();
    let (_, found) =
        runtime.block_on(LoadHistory::lookup(&store, version, &ids))?.context("the index could not answer")?;
    let measured = Lookup {
        committed_sources: sources,
        looked_up: lookup,
        found: found.len() as u64,
        wall_seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: cpu_seconds()? - cpu_before,
        baseline_rss_mib,
        peak_rss_mib: peak_rss_mib()?,
        build_seconds: 0.0,
        runs: 0,
    };
    if measured.found != lookup / 2 {
        bail!("found {} of the {} committed sources looked up", measured.found, lookup / 2);
    }
    println!("{}", serde_json::to_string(&measured)?);
    Ok(())
}
