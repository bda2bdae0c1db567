//! `inlet-bench history-rebuild`: rebuilding a lost load history index from the lineage columns
//! of a table of `--files` data files on the running LocalStack's S3.
//!
//! The data files are small (a few sources each), the worst case for a rebuild, whose cost
//! follows the number of files. A child process runs the rebuild the way the compactor does
//! (sizes from the table's snapshot, progress saved every `INLET_HISTORY_REBUILD_SAVE_FILES`
//! files) and reports its wall time, CPU, peak RSS and requests, the invocations it needs at the
//! default time budget, and checks that the rebuilt index knows a sample of the sources.
//! Result: `target/bench/history-rebuild.json`, and an entry in `target/bench/report.json`.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use deltalake::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use futures::{StreamExt, TryStreamExt};
use inlet::commit::{LoadHistory, RebuildBudget, Rebuilt};
use inlet::lineage::SourceId;
use inlet::schema::{SOURCE_DIGEST_COLUMN, SOURCE_ETAG_COLUMN, SOURCE_FILE_COLUMN};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::{cpu_seconds, peak_rss_mib};

/// Files written at once while building the table.
const WRITES: usize = 64;
/// Rows of each source in a file.
const ROWS_PER_SOURCE: usize = 2;
/// The compactor's default budget per run (`INLET_HISTORY_REBUILD_SECONDS`).
const DEFAULT_BUDGET_SECONDS: f64 = 600.0;
/// Where the table's data files go, under the table root.
const DATA_PREFIX: &str = "date=2026-05-16";

#[derive(Debug, Serialize, Deserialize)]
struct Measured {
    files: u64,
    sources: u64,
    table_mib: f64,
    /// Writing the table (setup, not part of the rebuild).
    build_seconds: f64,
    wall_seconds: f64,
    cpu_seconds: f64,
    peak_rss_mib: f64,
    requests: u64,
    files_per_second: f64,
    /// Compactor runs the rebuild needs at the default budget per run.
    invocations_at_default_budget: u64,
}

fn source(file: u64, index: u64, per_file: u64) -> SourceId {
    let n = file * per_file + index;
    SourceId {
        uri: format!("s3://raw/service/date=2026-05-16/{n:012}.json.zst"),
        etag: Some(format!("{n:032x}")),
        digest: Some(inlet::lineage::content_digest(&n.to_le_bytes())),
    }
}

/// One data file as Inlet writes it: rows with their lineage columns.
fn data_file(file: u64, per_file: u64) -> Result<Vec<u8>> {
    let ids: Vec<SourceId> =
        (0..per_file).flat_map(|i| std::iter::repeat_n(source(file, i, per_file), ROWS_PER_SOURCE)).collect();
    let column = |values: Vec<Option<String>>| Arc::new(StringArray::from(values)) as ArrayRef;
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from_iter_values(0..ids.len() as i64)) as ArrayRef),
        (SOURCE_FILE_COLUMN, column(ids.iter().map(|id| Some(id.uri.clone())).collect())),
        (SOURCE_ETAG_COLUMN, column(ids.iter().map(|id| id.etag.clone()).collect())),
        (SOURCE_DIGEST_COLUMN, column(ids.iter().map(|id| id.digest.clone()).collect())),
    ])?;
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None)?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(out)
}

async fn localstack_table() -> Result<(String, Arc<dyn ObjectStore>)> {
    let localstack = inlet_tests::LocalStack::connect().await?;
    let bucket = format!("rebuild-bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    localstack.s3.create_bucket().bucket(&bucket).send().await?;
    let uri = format!("s3://{bucket}/table");
    let store = inlet::stage::table_store(&url::Url::parse(&uri)?, &localstack.storage_options())?;
    Ok((uri, store))
}

/// Builds a table of `files` data files on LocalStack and measures a rebuild of its index.
pub fn measure(files: u64, per_file: u64) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let started = Instant::now();
    let (uri, bytes) = runtime.block_on(async {
        let (uri, store) = localstack_table().await?;
        let written: Vec<u64> = futures::stream::iter(0..files)
            .map(|file| {
                let store = store.clone();
                async move {
                    let data = data_file(file, per_file)?;
                    let size = data.len() as u64;
                    let path = Path::from(format!("{DATA_PREFIX}/part-{file:08}.parquet"));
                    store.put(&path, PutPayload::from(data)).await?;
                    anyhow::Ok(size)
                }
            })
            .buffer_unordered(WRITES)
            .try_collect()
            .await?;
        anyhow::Ok((uri, written.iter().sum::<u64>()))
    })?;
    let build_seconds = started.elapsed().as_secs_f64();
    let output = std::process::Command::new(std::env::current_exe()?)
        .args(["history-rebuild-once", "--table", &uri, "--per-file", &per_file.to_string()])
        .output()?;
    if !output.status.success() {
        bail!("the rebuild failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let mut measured: Measured = serde_json::from_slice(&output.stdout)?;
    measured.build_seconds = build_seconds;
    measured.table_mib = bytes as f64 / (1 << 20) as f64;
    println!(
        "history rebuild (localstack-s3): {} data files ({} sources, {:.0} MiB, written in {:.0} s): {:.1} s, \
         {:.1} CPU-s, peak RSS {:.0} MiB, {} requests ({:.1} per file), {:.0} files/s; {} compactor run(s) at \
         the default {:.0} s budget",
        measured.files,
        measured.sources,
        measured.table_mib,
        measured.build_seconds,
        measured.wall_seconds,
        measured.cpu_seconds,
        measured.peak_rss_mib,
        measured.requests,
        measured.requests as f64 / measured.files.max(1) as f64,
        measured.files_per_second,
        measured.invocations_at_default_budget,
        DEFAULT_BUDGET_SECONDS,
    );
    crate::save_result("history-rebuild", "history-rebuild", &measured)?;
    Ok(())
}

/// The rebuild of the table at `table` (on LocalStack), measured from inside this process.
pub fn rebuild_once(table: &str, per_file: u64) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let localstack = inlet_tests::LocalStack::connect().await?;
        let store = inlet::stage::table_store(&url::Url::parse(table)?, &localstack.storage_options())?;
        // The compactor takes paths and sizes from the table's snapshot; here, from a listing.
        let prefix = Path::from(DATA_PREFIX);
        let files: Vec<(Path, u64)> =
            store.list(Some(&prefix)).map_ok(|meta| (meta.location, meta.size)).try_collect().await?;
        let count = files.len() as u64;
        let cpu_before = cpu_seconds()?;
        let started = Instant::now();
        let budget = RebuildBudget { stop: None, save_every_files: 1000 };
        let Rebuilt::Done(history, progress) = LoadHistory::rebuild(&store, 1, files, budget).await? else {
            bail!("a rebuild without a time budget stopped early");
        };
        let wall_seconds = started.elapsed().as_secs_f64();
        let cpu_seconds = cpu_seconds()? - cpu_before;
        // Every source is known: a sample across the table, and none that was never written.
        let sample: Vec<SourceId> =
            (0..count).step_by((count / 500).max(1) as usize).map(|f| source(f, 0, per_file)).collect();
        let found = history.committed(&store, &sample).await?;
        let stranger = source(count + 1, 0, per_file);
        if found.len() != sample.len() || !history.committed(&store, &[stranger]).await?.is_empty() {
            bail!("the rebuilt index knows {} of {} sampled sources", found.len(), sample.len());
        }
        let measured = Measured {
            files: count,
            sources: count * per_file,
            table_mib: 0.0,
            build_seconds: 0.0,
            wall_seconds,
            cpu_seconds,
            peak_rss_mib: peak_rss_mib()?,
            requests: progress.requests,
            files_per_second: count as f64 / wall_seconds,
            invocations_at_default_budget: (wall_seconds / DEFAULT_BUDGET_SECONDS).ceil().max(1.0) as u64,
        };
        println!("{}", serde_json::to_string(&measured).context("the measurement as JSON")?);
        anyhow::Ok(())
    })
}
