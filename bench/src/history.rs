//! `inlet-bench history`: what deduplicating one compaction costs as the load history grows.
//!
//! For each size, a local table's history index is built through the compactor's own path
//! (`LoadHistory::record`, commit by commit, merges included), from sources arriving as a busy
//! table's do (300,000 objects a day, one folder per day); then a child process looks up 500
//! sources and reports its CPU time, peak RSS (before and during the lookup) and reads, in two
//! mixes:
//!
//! - `compaction`: what a compaction asks, the newest objects of the day (half of them
//!   redelivered, already committed, half new);
//! - `spread`: half committed spread over every day of the history, half new: the worst case,
//!   each old source in a folder and block of its own.
//!
//! With `--localstack`, the same index is also copied to a bucket on the running LocalStack and
//! looked up there, where every read is a ranged GET. Results: `target/bench/history.json`, and
//! a `history` entry in `target/bench/report.json` when that report exists.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use inlet::commit::LoadHistory;
use inlet::lineage::{CommittedSource, SourceId};
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use crate::{cpu_seconds, peak_rss_mib};

#[derive(Debug, Serialize, Deserialize)]
struct Lookup {
    /// `local` (a directory) or `localstack-s3`.
    #[serde(default)]
    store: String,
    /// Which sources were looked up: `compaction` or `spread`.
    #[serde(default)]
    mix: String,
    /// Reads made of the store (on S3: GETs, ranged or whole).
    #[serde(default)]
    reads: u64,
    committed_sources: u64,
    looked_up: u64,
    found: u64,
    wall_seconds: f64,
    cpu_seconds: f64,
    /// Peak RSS of the process before the lookup (runtime, arguments)...
    baseline_rss_mib: f64,
    /// ...and after it.
    peak_rss_mib: f64,
    /// Building the index (not part of a compaction): sources per commit, seconds, runs
    /// left, and the bytes of every run kept on the store.
    #[serde(default)]
    per_commit: u64,
    build_seconds: f64,
    runs: usize,
    #[serde(default)]
    run_bytes: u64,
}

/// Objects a day: a busy table's arrivals.
const DAILY_OBJECTS: u64 = 300_000;

/// The `n`th object to arrive, as the converter records it (with a content digest), in the
/// folder of its day.
fn source(n: u64) -> SourceId {
    let date = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).expect("a date") + chrono::Days::new(n / DAILY_OBJECTS);
    SourceId {
        uri: format!("s3://raw/service/date={date}/{n:012}.json.zst"),
        etag: Some(format!("{n:032x}")),
        digest: Some(inlet::lineage::content_digest(&n.to_le_bytes())),
    }
}

/// The sources a lookup of `mix` asks about, against a history of `sources`: half committed,
/// half new (arrived after the last commit).
fn looked_up(mix: &str, sources: u64, lookup: u64) -> Result<Vec<SourceId>> {
    let (old, new) = (lookup / 2, lookup - lookup / 2);
    let committed: Vec<u64> = match mix {
        // Redeliveries of the newest day's objects, spread over what the day has so far.
        "compaction" => {
            let today = sources - (sources - 1) % DAILY_OBJECTS - 1;
            let step = ((sources - today) / old.max(1)).max(1);
            (0..old).map(|i| (today + i * step).min(sources - 1)).collect()
        }
        "spread" => (0..old).map(|i| i * (sources / old.max(1))).collect(),
        other => bail!("unknown lookup mix {other}"),
    };
    Ok(committed.into_iter().chain(sources..sources + new).map(source).collect())
}

/// The lookup mixes measured.
const MIXES: [&str; 2] = ["compaction", "spread"];

/// The table at `location`: a local directory, or `s3://bucket/prefix` on the running LocalStack.
async fn store(location: &str) -> Result<Arc<dyn ObjectStore>> {
    if location.starts_with("s3://") {
        let localstack = inlet_tests::LocalStack::connect().await?;
        return Ok(inlet::stage::table_store(&url::Url::parse(location)?, &localstack.storage_options())?);
    }
    let url =
        url::Url::from_directory_path(location).map_err(|()| anyhow::anyhow!("{location} is not a directory path"))?;
    Ok(inlet::stage::table_store(&url, &Default::default())?)
}

/// Copies the local table at `from` into a new bucket on LocalStack; returns its URI.
async fn copy_to_localstack(from: &Arc<dyn ObjectStore>) -> Result<String> {
    use futures::TryStreamExt;
    let localstack = inlet_tests::LocalStack::connect().await?;
    let bucket = format!("history-bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    localstack.s3.create_bucket().bucket(&bucket).send().await?;
    let uri = format!("s3://{bucket}/table");
    let to = store(&uri).await?;
    let files: Vec<object_store::ObjectMeta> = from.list(None).try_collect().await?;
    for file in files {
        let data = from.get(&file.location).await?.bytes().await?;
        let mut writer = object_store::buffered::BufWriter::new(to.clone(), file.location.clone());
        tokio::io::AsyncWriteExt::write_all(&mut writer, &data).await?;
        tokio::io::AsyncWriteExt::shutdown(&mut writer).await?;
    }
    Ok(uri)
}

/// Runs one lookup in a child process, so its CPU and memory are its own.
fn measured_lookup(location: &str, mix: &str, sources: u64, lookup: u64, per_commit: u64) -> Result<Lookup> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .args(["history-lookup", "--mix", mix, "--sources", &sources.to_string(), "--lookup", &lookup.to_string()])
        .args(["--per-commit", &per_commit.to_string(), "--table"])
        .arg(location)
        .output()?;
    if !output.status.success() {
        bail!("lookup at {sources} sources in {location} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// The default sources per commit: a day of a busy table's compactions, roughly.
pub const DAILY_COMMIT_SOURCES: u64 = 250_000;

/// Builds a local index of each size in `sizes` through `LoadHistory::record`, `per_commit`
/// sources per commit, and measures one lookup of `lookup` sources against it.
pub fn measure(sizes: &[u64], lookup: u64, per_commit: u64, on_localstack: bool) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut results = Vec::new();
    for &sources in sizes {
        let table = tempfile::tempdir()?;
        let local = table.path().to_str().context("a UTF-8 temporary path")?.to_string();
        let store = runtime.block_on(store(&local))?;
        let started = Instant::now();
        let runs = runtime.block_on(async {
            let mut history = LoadHistory::default();
            for (version, first) in (0..sources).step_by(per_commit as usize).enumerate() {
                let added: Vec<CommittedSource> = (first..(first + per_commit).min(sources))
                    .map(|n| CommittedSource { id: source(n), rows: 1 })
                    .collect();
                history = history.record(&store, version as u64, &added).await?;
            }
            anyhow::Ok(history.runs())
        })?;
        let build_seconds = started.elapsed().as_secs_f64();
        let run_bytes = runtime.block_on(async {
            use futures::TryStreamExt;
            let prefix = object_store::path::Path::from(inlet::layout::HISTORY_RUNS_PREFIX);
            let runs: Vec<object_store::ObjectMeta> = store.list(Some(&prefix)).try_collect().await?;
            anyhow::Ok(runs.iter().map(|meta| meta.size).sum::<u64>())
        })?;
        let mut locations = vec![local];
        if on_localstack {
            locations.push(runtime.block_on(copy_to_localstack(&store))?);
        }
        for (location, mix) in locations.iter().flat_map(|location| MIXES.map(|mix| (location, mix))) {
            let mut measured = measured_lookup(location, mix, sources, lookup, per_commit)?;
            measured.build_seconds = build_seconds;
            measured.runs = runs;
            measured.per_commit = per_commit;
            measured.run_bytes = run_bytes;
            println!(
                "history ({}, {}): {} committed sources ({} per commit; {} runs, {:.0} MiB of runs kept, built \
                 in {:.1} s): {} looked up, {} found, {} reads, {:.3} CPU-s, {:.3} s, peak RSS {:.0} MiB ({:+.0} \
                 MiB over the process before the lookup)",
                measured.store,
                measured.mix,
                measured.committed_sources,
                measured.per_commit,
                measured.runs,
                measured.run_bytes as f64 / (1 << 20) as f64,
                measured.build_seconds,
                measured.looked_up,
                measured.found,
                measured.reads,
                measured.cpu_seconds,
                measured.wall_seconds,
                measured.peak_rss_mib,
                measured.peak_rss_mib - measured.baseline_rss_mib,
            );
            results.push(measured);
        }
    }
    // The default build and a table's own way of building are kept apart in the report.
    let key = if per_commit == DAILY_COMMIT_SOURCES { "history" } else { "history-small-commits" };
    crate::save_result(key, key, &results)?;
    Ok(())
}

/// One lookup of `mix` against the index at `table`, measured from inside this process.
pub fn lookup_once(table: &str, mix: &str, sources: u64, lookup: u64, per_commit: u64) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let counting = Arc::new(CountedReads { inner: runtime.block_on(store(table))?, reads: AtomicU64::new(0) });
    let store: Arc<dyn ObjectStore> = counting.clone();
    let version = sources.div_ceil(per_commit).checked_sub(1).context("an empty history")?;
    let ids = looked_up(mix, sources, lookup)?;
    let baseline_rss_mib = peak_rss_mib()?;
    let cpu_before = cpu_seconds()?;
    let started = Instant::now();
    let (_, found) =
        runtime.block_on(LoadHistory::lookup(&store, version, &ids))?.context("the index could not answer")?;
    let measured = Lookup {
        store: if table.starts_with("s3://") { "localstack-s3" } else { "local" }.to_string(),
        mix: mix.to_string(),
        reads: counting.reads.load(Ordering::Relaxed),
        committed_sources: sources,
        looked_up: lookup,
        found: found.len() as u64,
        wall_seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: cpu_seconds()? - cpu_before,
        baseline_rss_mib,
        peak_rss_mib: peak_rss_mib()?,
        per_commit,
        build_seconds: 0.0,
        runs: 0,
        run_bytes: 0,
    };
    if measured.found != lookup / 2 {
        bail!("found {} of the {} committed sources looked up", measured.found, lookup / 2);
    }
    println!("{}", serde_json::to_string(&measured)?);
    Ok(())
}

/// A store that counts the reads made of it.
#[derive(Debug)]
struct CountedReads {
    inner: Arc<dyn ObjectStore>,
    reads: AtomicU64,
}

impl std::fmt::Display for CountedReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CountedReads({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for CountedReads {
    async fn put_opts(
        &self,
        location: &object_store::path::Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
