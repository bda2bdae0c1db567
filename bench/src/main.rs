//! `make bench`: the converter core on local files (read `.json.zst`, decompress, decode with
//! the declared schema, encode Parquet fragments), one thread and all cores, each run in a child
//! process so its peak RSS is its own. Figures are MiB of uncompressed JSON.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use aws_lambda_events::event::sqs::SqsEvent;
use clap::{Parser, Subcommand};
use inlet::commit::{Compactor, CompactorOptions};
use inlet::ingest::Quarantine;
use inlet::ingest::sqs_message;
use inlet::ingest::{Converter, ConverterOptions};
use inlet::lineage::SourceObject;
use inlet::schema::TableSchema;
use inlet::stage::FragmentStore;
use inlet::testing::sources::LocalSource;
use parquet::basic::{Compression, ZstdLevel};
use serde::{Deserialize, Serialize};

#[derive(Parser)]
struct Cli {
    /// Objects of the reference workload (~1 MiB of NDJSON each).
    #[arg(long, default_value_t = 300, env = "OBJECTS")]
    objects: usize,
    /// Where the generated workload is kept between runs.
    #[arg(long, default_value = "target/bench/data")]
    data: PathBuf,
    /// Which workload `run`, `naive` and the default measurement read (each in its own `--data`).
    #[arg(long, value_enum, default_value_t = Workload::Reference)]
    workload: Workload,
    #[command(flatten)]
    levers: Levers,
    #[command(subcommand)]
    command: Option<Command>,
}

/// The generated workloads: the reference one (`inlet::testing::sample`), and one shaped
/// unlike it (`telemetry.rs`) so that a fast path tuned to the first shows on the second.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    Reference,
    Telemetry,
}

impl Workload {
    /// The declared schema, and the path it is read from.
    fn schema(self) -> (&'static str, &'static str) {
        match self {
            Workload::Reference => (SCHEMA, "schemas/events.schema.json"),
            Workload::Telemetry => (telemetry::SCHEMA, telemetry::SCHEMA_PATH),
        }
    }

    /// Object number `index`, about 1 MiB of NDJSON.
    fn object(self, index: u64) -> Vec<u8> {
        let bytes = inlet::testing::sample::OBJECT_BYTES;
        match self {
            Workload::Reference => inlet::testing::sample::ndjson_object(42, index, bytes),
            Workload::Telemetry => telemetry::ndjson_object(7, index, bytes),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Workload::Reference => "reference",
            Workload::Telemetry => "telemetry",
        }
    }
}

/// Converter settings to measure against the defaults (see docs/performance.md).
#[derive(clap::Args, Debug, Clone)]
struct Levers {
    /// Rows per decoded record batch.
    #[arg(long, global = true)]
    batch_rows: Option<usize>,
    /// Fragment page compression: zstd1, zstd2, zstd3, snappy or none.
    #[arg(long, global = true)]
    fragment_compression: Option<String>,
    /// Fragments without dictionary encoding.
    #[arg(long, global = true)]
    no_dictionary: bool,
    /// Fragments without column statistics.
    #[arg(long, global = true)]
    no_statistics: bool,
    /// Encode fragments through parquet's `ArrowWriter`, not the direct page writer.
    #[arg(long, global = true)]
    arrow_writer: bool,
}

impl Levers {
    fn options(&self, threads: usize) -> Result<ConverterOptions> {
        let defaults = ConverterOptions::default();
        let mut encoding = defaults.fragment_encoding;
        if let Some(name) = &self.fragment_compression {
            encoding.compression = match name.as_str() {
                "zstd1" => Compression::ZSTD(ZstdLevel::try_new(1)?),
                "zstd3" => Compression::ZSTD(ZstdLevel::try_new(3)?),
                "zstd2" => Compression::ZSTD(ZstdLevel::try_new(2)?),
                "snappy" => Compression::SNAPPY,
                "none" => Compression::UNCOMPRESSED,
                other => bail!("unknown fragment compression {other:?}"),
            };
        }
        encoding.dictionary &= !self.no_dictionary;
        encoding.statistics &= !self.no_statistics;
        encoding.direct_pages &= !self.arrow_writer;
        Ok(ConverterOptions {
            concurrency: threads * 2,
            batch_rows: self.batch_rows.unwrap_or(defaults.batch_rows),
            fragment_encoding: encoding,
            ..defaults
        })
    }

    /// The flags that reproduce these levers in a child process.
    fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(rows) = self.batch_rows {
            args.extend(["--batch-rows".to_string(), rows.to_string()]);
        }
        if let Some(name) = &self.fragment_compression {
            args.extend(["--fragment-compression".to_string(), name.clone()]);
        }
        if self.no_dictionary {
            args.push("--no-dictionary".into());
        }
        if self.no_statistics {
            args.push("--no-statistics".into());
        }
        if self.arrow_writer {
            args.push("--arrow-writer".into());
        }
        args
    }
}

#[derive(Subcommand)]
enum Command {
    /// One measured run (used by the parent process).
    Run {
        #[arg(long)]
        threads: usize,
        /// Stop after the converter (to profile or count its instructions alone).
        #[arg(long)]
        convert_only: bool,
    },
    /// The guide's "naive arrow-rs" peer on the same files: zstd, arrow-json's reader and
    /// `ArrowWriter`, each with its defaults, one thread (no compaction).
    Naive,
    /// The deployed path on a running LocalStack (perf binaries as functions): wall time from the
    /// first PUT to committed rows, and the CPU Inlet's functions and LocalStack each used.
    E2e,
    /// The load history: CPU and memory to deduplicate one compaction's sources against a
    /// table of 1 M and 10 M committed sources (each lookup in a child process of its own).
    History {
        /// Committed sources of each table measured.
        #[arg(long, num_args = 1.., default_values_t = [1_000_000u64, 10_000_000])]
        sources: Vec<u64>,
        /// Sources in the compaction looked up (half of them committed before).
        #[arg(long, default_value_t = 500)]
        lookup: u64,
        /// Also look up a copy of each index on the running LocalStack's S3.
        #[arg(long)]
        localstack: bool,
        /// Sources per commit while building the index: a day of a busy table's compactions
        /// by default; a few hundred is how a table compacting every few seconds builds it.
        #[arg(long, default_value_t = history::DAILY_COMMIT_SOURCES)]
        per_commit: u64,
    },
    /// Freshness under a steady stream on LocalStack: one object a second for `--seconds`,
    /// spread over each `--tables` count in turn, with the module's defaults (commit queue on):
    /// PUT-to-visible latency, commits, CPU.
    Freshness {
        #[arg(long, num_args = 1.., default_values_t = [1usize, 5])]
        tables: Vec<usize>,
        #[arg(long, default_value_t = 300)]
        seconds: u64,
        /// The converter's batching window (the module's `maximum_batching_window_seconds`).
        #[arg(long, default_value_t = 20)]
        window: i32,
    },
    /// Rebuilding a lost load history index from the lineage columns of a table of `--files`
    /// small data files on the running LocalStack's S3.
    HistoryRebuild {
        #[arg(long, default_value_t = 100_000)]
        files: u64,
        /// Sources in each data file.
        #[arg(long, default_value_t = 4)]
        per_file: u64,
    },
    /// One measured rebuild (used by `history-rebuild`).
    HistoryRebuildOnce {
        #[arg(long)]
        table: String,
        #[arg(long)]
        per_file: u64,
    },
    /// The converter on one object of `--json-mib` MiB of JSON (default settings): throughput
    /// and peak RSS, which the piece size bounds instead of the object.
    BigObject {
        #[arg(long, default_value_t = 1100)]
        json_mib: u64,
        /// Piece size in MiB (default: the converter's default).
        #[arg(long)]
        piece_mib: Option<usize>,
    },
    /// The converter's peak RSS at the default settings on the object shapes that cost most
    /// memory per byte of text, beside the reference workload's, against the memory model.
    Shapes {
        /// Shapes to measure (default: all of them).
        names: Vec<String>,
    },
    /// One shape, measured in this process (used by `shapes`).
    Shape { name: String },
    /// One measured lookup (used by `history`).
    HistoryLookup {
        /// A local directory, or `s3://bucket/prefix` on LocalStack.
        #[arg(long)]
        table: String,
        /// `compaction` or `spread`.
        #[arg(long)]
        mix: String,
        #[arg(long)]
        sources: u64,
        #[arg(long)]
        lookup: u64,
        #[arg(long)]
        per_commit: u64,
    },
    /// Converts the workload (default settings) and leaves its fragments staged under `--out`,
    /// for `compact-staged` and `bench/compaction.py`.
    Stage {
        #[arg(long)]
        out: PathBuf,
    },
    /// The compactor alone: copies a directory `stage` made and times merging all it holds
    /// into a new Delta table. Prints one JSON object (MiB of fragments in).
    CompactStaged {
        #[arg(long)]
        staged: PathBuf,
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Compaction commits on a growing table: latency per commit, checkpoints, table load time.
    Commits {
        /// Compactions to run, each committing one small fragment.
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// Skip the small-file rewrite after each compaction (shows the cost of a table whose
        /// file count only grows).
        #[arg(long)]
        no_optimize: bool,
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
    /// The compactor merging the run's fragments into a Delta table.
    compact_seconds: f64,
    compact_cpu_seconds: f64,
    table_mib: f64,
    peak_rss_with_compaction_mib: f64,
}

const SCHEMA: &str = include_str!("../../schemas/events.schema.json");

mod big_object;
mod compaction;
mod freshness;
mod history;
mod rebuild;
mod shapes;
mod telemetry;

fn main() -> Result<()> {
    // As the functions run.
    inlet::memory::keep_large_buffers_mapped();
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Commits { count, no_optimize }) => return commits(*count, !no_optimize),
        Some(Command::History { sources, lookup, localstack, per_commit }) => {
            return history::measure(sources, *lookup, *per_commit, *localstack);
        }
        Some(Command::HistoryRebuild { files, per_file }) => return rebuild::measure(*files, *per_file),
        Some(Command::Freshness { tables, seconds, window }) => return freshness::measure(tables, *seconds, *window),
        Some(Command::HistoryRebuildOnce { table, per_file }) => return rebuild::rebuild_once(table, *per_file),
        Some(Command::BigObject { json_mib, piece_mib }) => return big_object::measure(*json_mib, *piece_mib),
        Some(Command::Shapes { names }) => return shapes::measure(names),
        Some(Command::Shape { name }) => return shapes::measure_one(name),
        Some(Command::HistoryLookup { table, mix, sources, lookup, per_commit }) => {
            return history::lookup_once(table, mix, *sources, *lookup, *per_commit);
        }
        Some(Command::CompactStaged { staged, threads }) => return compaction::compact_staged(staged, *threads),
        _ => {}
    }
    let keys = ensure_workload(&cli.data, cli.objects, cli.workload)?;
    if cli.workload != Workload::Reference && matches!(cli.command, Some(Command::E2e | Command::Stage { .. })) {
        bail!("e2e and stage run the reference workload only");
    }
    match cli.command {
        Some(
            Command::Commits { .. }
            | Command::History { .. }
            | Command::HistoryLookup { .. }
            | Command::HistoryRebuild { .. }
            | Command::HistoryRebuildOnce { .. }
            | Command::Freshness { .. }
            | Command::CompactStaged { .. }
            | Command::BigObject { .. }
            | Command::Shapes { .. }
            | Command::Shape { .. },
        ) => {
            unreachable!("handled above")
        }
        Some(Command::E2e) => {
            let runtime = tokio::runtime::Runtime::new()?;
            let measured = runtime.block_on(end_to_end(&cli.data, &keys))?;
            println!("{}", serde_json::to_string_pretty(&measured)?);
            std::fs::create_dir_all("target/bench")?;
            std::fs::write("target/bench/e2e.json", serde_json::to_vec_pretty(&measured)?)?;
        }
        Some(Command::Stage { out }) => compaction::stage(&cli.data, &keys, &out, cli.levers.options(1)?)?,
        Some(Command::Naive) => println!("{}", serde_json::to_string(&naive(&cli.data, &keys, cli.workload)?)?),
        Some(Command::Run { threads, convert_only }) => {
            let options = cli.levers.options(threads)?;
            let measured = run(&cli.data, &keys, cli.workload, threads, options, !convert_only)?;
            println!("{}", serde_json::to_string(&measured)?);
        }
        None => {
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            let mut results = Vec::new();
            for threads in if cores > 1 { vec![1, cores] } else { vec![1] } {
                let output = std::process::Command::new(std::env::current_exe()?)
                    .args(["--objects", &cli.objects.to_string(), "--workload", cli.workload.name(), "--data"])
                    .arg(&cli.data)
                    .args(cli.levers.args())
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
fn ensure_workload(data: &Path, objects: usize, workload: Workload) -> Result<Vec<String>> {
    let dir = data.join("raw/bench");
    std::fs::create_dir_all(&dir)?;
    let keys: Vec<String> = (0..objects).map(|i| format!("bench/{i:05}.json.zst")).collect();
    for (index, key) in keys.iter().enumerate() {
        let path = data.join("raw").join(key);
        if !path.exists() {
            let ndjson = workload.object(index as u64);
            std::fs::write(&path, inlet::testing::sample::zstd_compress(&ndjson))?;
        }
    }
    Ok(keys)
}

fn run(
    data: &Path,
    keys: &[String],
    workload: Workload,
    threads: usize,
    options: ConverterOptions,
    compact: bool,
) -> Result<Measurement> {
    let (text, path) = workload.schema();
    let schema = Arc::new(TableSchema::parse(text, path)?);
    let lake = tempfile::tempdir()?;
    let url = url::Url::from_directory_path(lake.path()).unwrap();
    let store = inlet::stage::table_store(&url, &Default::default())?;

    // The converter, on exactly `threads` threads: async I/O and CPU work (blocking pool) alike.
    let converting = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .max_blocking_threads(threads)
        .thread_name("convert")
        .enable_all()
        .build()?;
    let converter = Converter::new(
        Arc::new(LocalSource::new(data)),
        FragmentStore::new(store.clone()),
        Quarantine::new(store.clone()),
        schema.clone(),
        options,
    );
    let mut event = SqsEvent::default();
    for (index, key) in keys.iter().enumerate() {
        let object = SourceObject { bucket: "raw".into(), key: key.clone(), etag: None, ..Default::default() };
        event.records.push(sqs_message(index.to_string(), object));
    }
    let cpu_before = cpu_seconds()?;
    let started = Instant::now();
    let report = converting.block_on(converter.convert(&event))?;
    let wall_seconds = started.elapsed().as_secs_f64();
    let convert_cpu_seconds = cpu_seconds()? - cpu_before;
    drop(converting);
    if !report.failed_messages.is_empty() {
        bail!("{} objects failed", report.failed_messages.len());
    }
    let converter_peak_rss_mib = peak_rss_mib()?;
    let mut measured = Measurement {
        threads,
        objects: keys.len(),
        rows: report.rows,
        json_mib: report.bytes_in as f64 / 1048576.0,
        output_mib: report.bytes_out as f64 / 1048576.0,
        wall_seconds,
        cpu_seconds: convert_cpu_seconds,
        peak_rss_mib: converter_peak_rss_mib,
        compact_seconds: 0.0,
        compact_cpu_seconds: 0.0,
        table_mib: 0.0,
        peak_rss_with_compaction_mib: converter_peak_rss_mib,
    };
    if !compact {
        return Ok(measured);
    }

    // The compactor merging those fragments, on a default runtime (delta-rs' file I/O uses the
    // blocking pool too).
    let compacting = tokio::runtime::Runtime::new()?;
    let cpu_before = cpu_seconds()?;
    let started = Instant::now();
    let compacted = compacting.block_on(async {
        let mut table = inlet::commit::open_or_create(&url, &Default::default(), &schema, &Default::default()).await?;
        Compactor::new(store, schema.clone(), CompactorOptions::default()).run(&mut table, true).await
    })?;
    let compact_seconds = started.elapsed().as_secs_f64();
    if compacted.rows != report.rows {
        bail!("compacted {} rows of {}", compacted.rows, report.rows);
    }
    measured.compact_seconds = compact_seconds;
    measured.compact_cpu_seconds = cpu_seconds()? - cpu_before;
    measured.table_mib = compacted.bytes as f64 / 1048576.0;
    measured.peak_rss_with_compaction_mib = peak_rss_mib()?;
    Ok(measured)
}

/// What a first arrow-rs program does: decompress an object whole, read it with arrow-json's
/// `ReaderBuilder` (default batch size) and write every batch with a default `ArrowWriter`
/// (uncompressed, dictionary, page statistics) into one file.
fn naive(data: &Path, keys: &[String], workload: Workload) -> Result<Measurement> {
    let (text, path) = workload.schema();
    let schema = TableSchema::parse(text, path)?.decoded;
    let scratch = tempfile::tempdir()?;
    let out = scratch.path().join("out.parquet");
    let cpu_before = cpu_seconds()?;
    let started = Instant::now();
    let mut writer = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&out)?, schema.clone(), None)?;
    let (mut rows, mut json_bytes) = (0u64, 0usize);
    for key in keys {
        let json = zstd::decode_all(std::fs::File::open(data.join("raw").join(key))?)?;
        json_bytes += json.len();
        for batch in arrow_json::ReaderBuilder::new(schema.clone()).build(std::io::Cursor::new(json))? {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            writer.write(&batch)?;
        }
    }
    writer.close()?;
    let peak_rss_mib = peak_rss_mib()?;
    Ok(Measurement {
        threads: 1,
        objects: keys.len(),
        rows,
        json_mib: json_bytes as f64 / 1048576.0,
        output_mib: std::fs::metadata(&out)?.len() as f64 / 1048576.0,
        wall_seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: cpu_seconds()? - cpu_before,
        peak_rss_mib,
        compact_seconds: 0.0,
        compact_cpu_seconds: 0.0,
        table_mib: 0.0,
        peak_rss_with_compaction_mib: peak_rss_mib,
    })
}

/// User + system CPU time of this process, from /proc (clock ticks of 1/100 s).
pub(crate) fn cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let fields: Vec<&str> = stat.rsplit_once(')').context("/proc/self/stat")?.1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

/// Writes `value` to `target/bench/<name>.json`, and under `key` in `target/bench/report.json`
/// when that report exists.
pub(crate) fn save_result(name: &str, key: &str, value: &impl Serialize) -> Result<()> {
    std::fs::create_dir_all("target/bench")?;
    std::fs::write(format!("target/bench/{name}.json"), serde_json::to_vec_pretty(value)?)?;
    let report = Path::new("target/bench/report.json");
    if report.exists() {
        let mut combined: serde_json::Value = serde_json::from_slice(&std::fs::read(report)?)?;
        combined[key] = serde_json::to_value(value)?;
        std::fs::write(report, serde_json::to_vec_pretty(&combined)?)?;
    }
    Ok(())
}

pub(crate) fn peak_rss_mib() -> Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("VmHWM")?;
    Ok(line.split_whitespace().nth(1).context("VmHWM value")?.parse::<f64>()? / 1024.0)
}

/// Runs `count` compactions of one tiny fragment each on a local table, each followed by the
/// small-file rewrite a deployed compactor does (unless `optimize` is off).
fn commits(count: u64, optimize: bool) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let schema = Arc::new(TableSchema::parse(SCHEMA, "schemas/events.schema.json")?);
        let lake = tempfile::tempdir()?;
        let url = url::Url::from_directory_path(lake.path()).unwrap();
        let store = inlet::stage::table_store(&url, &Default::default())?;
        let fragments = FragmentStore::new(store.clone());
        let mut table = inlet::commit::open_or_create(&url, &Default::default(), &schema, &Default::default()).await?;
        let options = CompactorOptions { min_bytes: 0, ..CompactorOptions::default() };
        let compactor = Compactor::new(store, schema.clone(), options);
        let decoder = inlet::ingest::JsonDecoder::new(schema.clone(), 1024);
        let optimize_options = inlet::commit::OptimizeOptions { target_file_bytes: 256 << 20, min_small_files: 16 };
        let mut optimizations = 0;
        // In commit order: (seconds, phases, wrote a checkpoint).
        let mut runs: Vec<(f64, inlet::commit::Timings, bool)> = Vec::new();
        let started = Instant::now();
        for index in 0..count {
            let object = SourceObject {
                bucket: "raw".into(),
                key: format!("{index}.json"),
                etag: Some("e".into()),
                ..Default::default()
            };
            let ndjson = inlet::testing::sample::ndjson_object(1, index, 2048);
            let batches = decoder.decode(&object, &ndjson)?.batches;
            let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
            let source = inlet::lineage::FragmentSource::new(&object, rows, None);
            fragments.put(inlet::stage::fragment::encode(&schema.table, &batches, &[source])?, "").await?;
            let run_started = Instant::now();
            let report = compactor.run(&mut table, true).await?;
            let mut versions = vec![report.version.context("a commit")?];
            if optimize {
                let optimized = inlet::commit::optimize(&mut table, &optimize_options, None, false).await?;
                optimizations += usize::from(optimized.version.is_some());
                versions.extend(optimized.version);
            }
            let seconds = run_started.elapsed().as_secs_f64();
            let checkpoint = versions
                .iter()
                .any(|version| lake.path().join(format!("_delta_log/{version:020}.checkpoint.parquet")).exists());
            runs.push((seconds, report.timings, checkpoint));
            if (index + 1) % 1000 == 0 {
                eprintln!("{} compactions, last one {:.0} ms", index + 1, seconds * 1000.0);
            }
        }
        let total = started.elapsed().as_secs_f64();
        let load_started = Instant::now();
        let reopened =
            deltalake::DeltaTable::try_from_url_with_storage_options(url.clone(), Default::default()).await?;
        let load_seconds = load_started.elapsed().as_secs_f64();
        let plain: Vec<&(f64, inlet::commit::Timings, bool)> = runs.iter().filter(|run| !run.2).collect();
        let checkpointed: Vec<f64> = runs.iter().filter(|run| run.2).map(|run| run.0).collect();
        let mut sorted: Vec<f64> = plain.iter().map(|run| run.0).collect();
        sorted.sort_by(f64::total_cmp);
        let percentile = |p: f64| sorted[((sorted.len() - 1) as f64 * p) as usize] * 1000.0;
        let mean =
            |values: &[f64]| (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64 * 1000.0);
        // Latency and its phases over the first and the last 100 compactions, in commit order.
        let window = |runs: &[&(f64, inlet::commit::Timings, bool)]| {
            let n = runs.len().max(1) as f64;
            let phase = |f: fn(&inlet::commit::Timings) -> u64| runs.iter().map(|r| f(&r.1) as f64).sum::<f64>() / n;
            serde_json::json!({
                "ms_mean": runs.iter().map(|r| r.0).sum::<f64>() / n * 1000.0,
                "load_ms": phase(|t| t.load_ms),
                "stage_ms": phase(|t| t.stage_ms),
                "merge_ms": phase(|t| t.merge_ms),
                "commit_ms": phase(|t| t.commit_ms),
                "cleanup_ms": phase(|t| t.cleanup_ms),
            })
        };
        let summary = serde_json::json!({
            "compactions": count,
            "optimize_after_each": optimize,
            "optimize_commits": optimizations,
            "files_in_table": reopened.snapshot()?.log_data().num_files(),
            "final_version": reopened.version(),
            "seconds": total,
            "compaction_ms_p50": percentile(0.5),
            "compaction_ms_p95": percentile(0.95),
            "first_100": window(&plain[..plain.len().min(100)]),
            "last_100": window(&plain[plain.len().saturating_sub(100)..]),
            "compactions_with_checkpoint": checkpointed.len(),
            "compaction_with_checkpoint_ms_mean": mean(&checkpointed),
            "table_load_ms": load_seconds * 1000.0,
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
        std::fs::create_dir_all("target/bench")?;
        std::fs::write("target/bench/commits.json", serde_json::to_vec_pretty(&summary)?)?;
        Ok(())
    })
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
    println!("\ncompaction of the converter's fragments into one Delta commit:");
    for m in results {
        println!(
            "  after the {}-thread run: {:.1} MiB of fragments -> {:.1} MiB table in {:.2}s ({:.1} MiB/s of fragments, {:.1} per CPU-s), peak RSS {:.0} MiB",
            m.threads,
            m.output_mib,
            m.table_mib,
            m.compact_seconds,
            m.output_mib / m.compact_seconds,
            m.output_mib / m.compact_cpu_seconds.max(1e-9),
            m.peak_rss_with_compaction_mib
        );
    }
}

/// User + system CPU seconds of one process, from /proc/<pid>/stat.
fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// CPU seconds of every running function bootstrap (processes run from `lambda-local`).
fn functions_cpu_seconds() -> f64 {
    functions_cpu_seconds_of(None)
}

/// CPU seconds of the running function processes (only `binary`'s, when given).
fn functions_cpu_seconds_of(binary: Option<&str>) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0.0 };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| {
                let exe = exe.to_string_lossy();
                exe.contains("lambda-local") && binary.is_none_or(|binary| exe.contains(&format!("/{binary}/")))
            })
        })
        .filter_map(process_cpu_seconds)
        .sum()
}

/// Puts the workload into a freshly deployed pipeline on LocalStack and waits for its rows.
async fn end_to_end(data: &Path, keys: &[String]) -> Result<serde_json::Value> {
    let localstack = inlet_tests::LocalStack::connect().await?;
    let pid_file = inlet_tests::workspace_root().join(".localstack/localstack.pid");
    let localstack_pid: u32 = std::fs::read_to_string(&pid_file)
        .with_context(|| format!("{} (start LocalStack with make localstack-start)", pid_file.display()))?
        .trim()
        .parse()?;
    let options = inlet_tests::PipelineOptions {
        profile: "perf",
        batch_size: 10,
        converter_timeout_seconds: 300,
        visibility_timeout_seconds: 1800,
        environment: vec![("INLET_MIN_COMPACT_BYTES".into(), "1".into())],
        ..Default::default()
    };
    let pipeline = inlet_tests::Pipeline::deploy(&localstack, "bench", options).await?;
    let bodies: Vec<(String, Vec<u8>)> = keys
        .iter()
        .map(|key| {
            Ok((format!("web/date=2026-05-16/{}", key.replace('/', "-")), std::fs::read(data.join("raw").join(key))?))
        })
        .collect::<Result<_>>()?;
    let json_bytes: u64 =
        bodies.iter().map(|(_, body)| zstd::decode_all(&body[..]).map_or(0, |b| b.len() as u64)).sum();
    let (functions_before, localstack_before) =
        (functions_cpu_seconds(), process_cpu_seconds(localstack_pid).unwrap_or(0.0));
    let started = Instant::now();
    let mut uris = Vec::new();
    for (key, body) in bodies {
        pipeline.put(&key, body).await?;
        uris.push(format!("s3://{}/{key}", pipeline.raw_bucket));
    }
    let put_seconds = started.elapsed().as_secs_f64();
    pipeline.wait_for_staged(&uris, std::time::Duration::from_secs(1800)).await?;
    let staged_seconds = started.elapsed().as_secs_f64();
    let report = pipeline.compact(serde_json::json!({"force": true})).await?;
    let wall_seconds = started.elapsed().as_secs_f64();
    let functions_cpu = functions_cpu_seconds() - functions_before;
    let localstack_cpu = process_cpu_seconds(localstack_pid).unwrap_or(0.0) - localstack_before;
    let table = pipeline.read_table(false).await?;
    let json_mib = json_bytes as f64 / 1048576.0;
    Ok(serde_json::json!({
        "objects": keys.len(),
        "json_mib": json_mib,
        "rows": table.num_rows,
        "rows_committed": report["rows"],
        "put_seconds": put_seconds,
        "staged_seconds": staged_seconds,
        "wall_seconds": wall_seconds,
        "mib_per_s": json_mib / wall_seconds,
        "functions_cpu_seconds": functions_cpu,
        "localstack_cpu_seconds": localstack_cpu,
        "functions_cpu_share": functions_cpu / (functions_cpu + localstack_cpu),
    }))
}
