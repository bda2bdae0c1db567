//! `inlet`: operate an Inlet pipeline from a shell — try a schema on local files, backfill
//! existing objects, compact on demand (here, or by invoking the deployed compactor), and show
//! a table's status.
//! Settings come from the same `INLET_*` variables as the Lambdas; flags override them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use aws_config::SdkConfig;
use aws_sdk_lambda::primitives::Blob;
use clap::{Parser, Subcommand};
use inlet::commit::{CompactRequest, compact_table};
use inlet::config::Settings;
use inlet::context::Context;
use inlet::ingest::ConverterOptions;
use inlet::ops::TableStatus;
use inlet::ops::backfill::{self, BackfillFilter};
use inlet::routes::{Routes, read_routes};
use inlet::schema::TableSchema;

#[derive(Parser)]
#[command(name = "inlet", version, about = "Operate an Inlet JSON-to-Delta pipeline")]
struct Cli {
    /// Of a deployment of several tables (INLET_ROUTES), the one to work on: its route name or
    /// table URI. `status` shows every table without it; other commands need it.
    #[arg(long, global = true, env = "INLET_TABLE")]
    table: Option<String>,
    /// Routing file of a deployment of several tables, local or `s3://` (overrides INLET_ROUTES;
    /// the module's `cli_environment` output sets it).
    #[arg(long, global = true)]
    routes: Option<String>,
    /// Delta table location (overrides INLET_TABLE_URI).
    #[arg(long, global = true)]
    table_uri: Option<String>,
    /// Declared schema file (overrides INLET_SCHEMA).
    #[arg(long, global = true)]
    schema: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert local objects as the converter would, staging fragments and quarantine records
    /// under a directory, and summarise what became rows and what was refused, and why.
    Convert {
        /// Directory to stage under (as under a table's root).
        #[arg(long)]
        out: PathBuf,
        /// Objects to convert (`.json.zst`, `.json.gz`, `.json`, ...).
        #[arg(required = true)]
        objects: Vec<PathBuf>,
        /// Print the whole result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send existing objects under an S3 prefix through the pipeline (synthetic notifications),
    /// a page at a time as they are listed; exactly once by the load history, however often.
    Backfill(BackfillArgs),
    /// Merge staged fragments into the table now, however little is staged.
    Compact {
        /// Invoke this deployed compactor function instead of compacting from here.
        #[arg(long, env = "INLET_COMPACTOR_FUNCTION")]
        function: Option<String>,
        /// Only this partition (Hive directory, e.g. `date=2026-05-16`); repeatable.
        #[arg(long = "partition")]
        partitions: Vec<String>,
        /// Also rewrite small files already in the table into target-sized ones.
        #[arg(long)]
        optimize: bool,
        /// Also delete unreferenced data files older than the table's retention.
        #[arg(long)]
        vacuum: bool,
        /// Create the table if none is there yet, even with nothing staged (without it, a
        /// location with no table and no staged rows is refused as a likely mistyped URI).
        #[arg(long)]
        create: bool,
    },
    /// Check the deployment the settings describe: settings, routing file, each schema, each
    /// schema against its table, and the queues and function named; exits 1 on any problem.
    Check {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Set each table's properties its settings ask for (checkpoint interval, log
        /// retention) where they differ, in one metadata commit per table.
        #[arg(long)]
        apply_properties: bool,
    },
    /// Declared schemas: draft one from sample objects.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// The dead-letter queue: list its messages with their objects and reasons; send them (or
    /// those naming chosen objects) back through the pipeline, exactly once.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
        /// Ingest queue (redrives go there; its redrive policy names the DLQ).
        #[arg(long, global = true, env = "INLET_QUEUE_URL")]
        queue_url: Option<String>,
        /// Dead-letter queue (else the ingest queue's).
        #[arg(long, global = true, env = "INLET_DLQ_URL")]
        dlq_url: Option<String>,
        /// Most messages read.
        #[arg(long, global = true, default_value_t = 1000)]
        max: usize,
    },
    /// Quarantined lines: list the records, show one, replay one (exactly once).
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
    /// Where one object went: its route and table, and for each version the commit that added
    /// its rows, its quarantined lines, superseded record, staged fragments and dead letters.
    Trace {
        /// `s3://bucket/key` of the object.
        object: String,
        /// Only this version of it.
        #[arg(long)]
        version: Option<String>,
        /// Ingest queue, whose dead-letter queue (from its redrive policy) is searched.
        #[arg(long, env = "INLET_QUEUE_URL")]
        queue_url: Option<String>,
        /// Dead-letter queue to search.
        #[arg(long, env = "INLET_DLQ_URL")]
        dlq_url: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Account for every object version written under a prefix in a time window: committed,
    /// the same content as a committed version, quarantined, superseded, failed (DLQ), staged,
    /// or unaccounted (its notification never arrived); --renotify sends the unaccounted ones
    /// through the pipeline, exactly once. Exits 1 when any is unaccounted.
    Reconcile {
        /// `s3://bucket/prefix/`
        prefix: String,
        /// Versions written at or after this (RFC 3339, or YYYY-MM-DD for its midnight UTC);
        /// default a day ago.
        #[arg(long)]
        since: Option<String>,
        /// ...and before this (RFC 3339, or YYYY-MM-DD for its midnight UTC); default now. The
        /// newest objects may still be on their way to a commit: they count as unaccounted
        /// until then, so end the window a few minutes ago.
        #[arg(long)]
        until: Option<String>,
        /// Only keys ending with this.
        #[arg(long, default_value = ".json.zst")]
        suffix: String,
        /// Send the unaccounted versions to the ingest queue.
        #[arg(long)]
        renotify: bool,
        /// Ingest queue (for --renotify).
        #[arg(long, env = "INLET_QUEUE_URL")]
        queue_url: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Each table's version, files, commits and rows of the last hour, what waits staged per
    /// partition, its quarantine and superseded records, and the depth of each queue.
    Status {
        /// Ingest queue.
        #[arg(long, env = "INLET_QUEUE_URL")]
        queue_url: Option<String>,
        /// Dead-letter queue (else the ingest queue's, from its redrive policy).
        #[arg(long, env = "INLET_DLQ_URL")]
        dlq_url: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// Draft a schema file from sample objects: each field's narrowest type that takes every
    /// sampled value. Prints the schema; what to review goes to stderr.
    Infer {
        /// Sample objects (`.json.zst`, `.json.gz`, `.json`, ...).
        #[arg(required = true)]
        objects: Vec<PathBuf>,
        /// Lines read from each object.
        #[arg(long, default_value_t = 10_000)]
        lines: u64,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Each message: its objects, each object's table and the converter's reason, how often it
    /// was received and when first sent. The queue is left as it was.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send messages back to the ingest queue, then take them off the DLQ: every message with
    /// --all, else those naming one of the objects given. Objects already ingested are dropped
    /// by the load history, so a redrive is exactly once.
    Redrive {
        /// Every message.
        #[arg(long)]
        all: bool,
        /// `s3://bucket/key` of objects whose messages to send.
        objects: Vec<String>,
    },
}

#[derive(Subcommand)]
enum QuarantineCommand {
    /// Every quarantine record: the object, its refused lines, the first reason, and whether
    /// it was replayed.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The refused lines of one record, as NDJSON (source, line, error, raw).
    Show {
        /// A record path as `list` prints it, or `s3://bucket/key` of the object.
        record: String,
    },
    /// Re-ingest one record's lines through the pipeline, exactly once: writes them as
    /// `<key>.replay-<digest>.json.zst` beside the original object (same route, partition and
    /// notifications); a record already replayed is refused.
    Replay {
        /// A record path as `list` prints it, or `s3://bucket/key` of the object.
        record: String,
        /// The corrected lines (NDJSON, one row per line); without it the lines are replayed as
        /// they were, e.g. after a schema change that admits them.
        #[arg(long)]
        fixed: Option<PathBuf>,
        /// Also send the replay object's notification to this queue (for a raw bucket whose
        /// notifications do not reach the ingest queue).
        #[arg(long, env = "INLET_QUEUE_URL")]
        queue_url: Option<String>,
    },
}

/// `inlet backfill`'s arguments.
#[derive(clap::Args)]
struct BackfillArgs {
    /// `s3://bucket/prefix/`
    prefix: String,
    /// Ingest queue the converter reads.
    #[arg(long, env = "INLET_QUEUE_URL")]
    queue_url: Option<String>,
    /// Only data from this date (YYYY-MM-DD): the key's date= segment, else last-modified.
    #[arg(long)]
    since: Option<chrono::NaiveDate>,
    /// Only data before this date (YYYY-MM-DD), read as --since is.
    #[arg(long)]
    until: Option<chrono::NaiveDate>,
    /// Only keys ending with this.
    #[arg(long, default_value = ".json.zst")]
    suffix: String,
    /// Read the objects from this S3 Inventory report (`s3://…/manifest.json`, CSV) instead
    /// of listing the prefix: every version it lists under the prefix, delete markers aside.
    #[arg(long)]
    inventory: Option<String>,
    /// Record the position reached in this file after each page, and continue from it when
    /// it exists (a backfill that failed or stopped at --max-objects).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Stop after sending this many objects (run again with the same --checkpoint to go on).
    #[arg(long)]
    max_objects: Option<u64>,
    /// Send at most this many objects per second (the converters' pace, a queue's budget).
    #[arg(long)]
    rate: Option<f64>,
    /// Send requests (of ten notifications) at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// List and count, send nothing.
    #[arg(long)]
    dry_run: bool,
}

fn main() -> Result<()> {
    inlet::memory::keep_large_buffers_mapped();
    inlet::ingest::runtime()?.block_on(run())
}

/// Settings given as flags, by the variable they override.
type Overrides = HashMap<&'static str, String>;

async fn run() -> Result<()> {
    inlet::telemetry::init();
    let cli = Cli::parse();
    let overrides: Overrides = [
        ("INLET_TABLE_URI", cli.table_uri.clone()),
        ("INLET_SCHEMA", cli.schema.clone()),
        ("INLET_ROUTES", cli.routes.clone()),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|value| (name, value)))
    .collect();
    let sdk = inlet::aws::sdk_config().await;
    match cli.command {
        Command::Convert { out, objects, json } => convert(&overrides, &out, &objects, json).await,
        Command::Backfill(args) => backfill_prefix(&sdk, args).await,
        Command::Compact { function, partitions, optimize, vacuum, create } => {
            let partitions = (!partitions.is_empty()).then_some(partitions);
            let request =
                CompactRequest { table: cli.table.clone(), force: true, partitions, optimize, vacuum, create };
            compact(&sdk, &overrides, function, &request).await
        }
        Command::Check { json, apply_properties } => {
            if apply_properties {
                let routes = routes(&sdk, &overrides).await?;
                let storage_options = inlet::config::storage_options_from_env();
                for (route, settings) in routes.select(cli.table.as_deref())? {
                    let table = &settings.table_uri;
                    let wanted = settings.table_properties();
                    let set = inlet::ops::check::apply_properties(table, &storage_options, &wanted).await?;
                    if !set.is_empty() {
                        eprintln!("{}: set {}", route.name, set.join(", "));
                    }
                }
            }
            check(&sdk, &overrides, json).await
        }
        Command::Schema(SchemaCommand::Infer { objects, lines }) => infer_schema(&objects, lines),
        Command::Quarantine(command) => {
            let routes = routes(&sdk, &overrides).await?;
            let (_, settings) = routes.one(cli.table.as_deref())?;
            quarantine(command, settings, &inlet::aws::sqs_client(&sdk)).await
        }
        Command::Reconcile { prefix, since, until, suffix, renotify, queue_url, json } => {
            let routes = routes(&sdk, &overrides).await?;
            let now = chrono::Utc::now();
            let window = inlet::ops::reconcile::Window {
                bucket: String::new(),
                prefixes: Vec::new(),
                suffix,
                since: since.as_deref().map(parse_time).transpose()?.unwrap_or(now - chrono::Duration::days(1)),
                until: until.as_deref().map(parse_time).transpose()?.unwrap_or(now),
                read_deadline: None,
            };
            let queue = if renotify {
                Some(queue_url.context("--renotify needs --queue-url (INLET_QUEUE_URL)")?)
            } else {
                None
            };
            reconcile(&sdk, &routes, cli.table.as_deref(), &prefix, window, queue, json).await
        }
        Command::Dlq { command, queue_url, dlq_url, max } => {
            let routes = routes(&sdk, &overrides).await?;
            dlq(&sdk, &routes, command, queue_url, dlq_url, max).await
        }
        Command::Trace { object, version, queue_url, dlq_url, json } => {
            let routes = routes(&sdk, &overrides).await?;
            let queues = (queue_url, dlq_url);
            trace(&sdk, &routes, cli.table.as_deref(), &object, version.as_deref(), queues, json).await
        }
        Command::Status { queue_url, dlq_url, json } => {
            let routes = routes(&sdk, &overrides).await?;
            status(&sdk, &routes, cli.table.as_deref(), queue_url, dlq_url, json).await
        }
    }
}

/// A setting's value: its flag when given, else its environment variable.
fn lookup(overrides: &Overrides, name: &str) -> Option<String> {
    overrides.get(name).cloned().or_else(|| std::env::var(name).ok())
}

/// The settings of the flags and the environment.
fn settings(overrides: &Overrides) -> Result<Settings> {
    Ok(Settings::from_lookup(|name| lookup(overrides, name))?)
}

/// The deployment's tables: the routing file's routes, or the one table the settings name.
async fn routes(sdk: &SdkConfig, overrides: &Overrides) -> Result<Routes> {
    let s3 = inlet::aws::s3_client(sdk);
    let routes = Routes::from_lookup(|name| lookup(overrides, name), |location| read_routes(&s3, location)).await;
    routes.context("set INLET_ROUTES (--routes) for a deployment of several tables, or INLET_TABLE_URI (--table-uri)")
}

impl BackfillArgs {
    fn filter(&self) -> BackfillFilter {
        BackfillFilter {
            suffix: Some(self.suffix.clone()).filter(|s| !s.is_empty()),
            since: self.since,
            until: self.until,
        }
    }

    /// Names what is read and how it is filtered, so a checkpoint continues only its own run.
    fn source(&self, filter: &BackfillFilter) -> String {
        let inventory = self.inventory.as_deref().map(|manifest| format!(" from {manifest}")).unwrap_or_default();
        format!(
            "{}{inventory} suffix={:?} since={:?} until={:?}",
            self.prefix, filter.suffix, filter.since, filter.until
        )
    }

    /// The checkpoint to continue from: the file's, or a new one.
    fn resume(&self, source: String) -> Result<backfill::Checkpoint> {
        let Some(path) = self.checkpoint.as_ref().filter(|path| path.exists()) else {
            return Ok(backfill::Checkpoint { source, ..Default::default() });
        };
        let checkpoint: backfill::Checkpoint = serde_json::from_slice(&std::fs::read(path)?)
            .with_context(|| format!("{} is not a backfill checkpoint", path.display()))?;
        anyhow::ensure!(
            checkpoint.source == source,
            "{} records another backfill ({}); name a new file",
            path.display(),
            checkpoint.source
        );
        Ok(checkpoint)
    }
}

/// Writes `checkpoint` to `path` whole (a new file renamed over the old).
fn save_checkpoint(path: &std::path::Path, checkpoint: &backfill::Checkpoint) -> inlet::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, serde_json::to_vec_pretty(checkpoint)?)?;
    std::fs::rename(&partial, path)?;
    Ok(())
}

/// `inlet backfill`: synthetic notifications for the objects under the prefix (only counted
/// and the first listed with `dry_run`), continuing from the checkpoint file when there is one.
async fn backfill_prefix(sdk: &SdkConfig, run: BackfillArgs) -> Result<()> {
    let (bucket, key_prefix) = backfill::parse_s3_uri(&run.prefix)?;
    let filter = &run.filter();
    let options = &backfill::SendOptions { concurrency: run.concurrency, rate: run.rate, max_objects: run.max_objects };
    let mut checkpoint = run.resume(run.source(filter))?;
    if checkpoint.done {
        println!("{}", serde_json::json!({"queued": 0, "total": checkpoint.sent, "done": true}));
        eprintln!("backfill: the checkpoint says every object was sent already");
        return Ok(());
    }
    let s3 = inlet::aws::s3_client(sdk);
    let mut pager = match &run.inventory {
        Some(manifest) => backfill::Pager::inventory(s3, manifest, &bucket, &key_prefix, &checkpoint.position).await?,
        None => backfill::Pager::listing(s3, &bucket, &key_prefix, &checkpoint.position),
    };
    if run.dry_run {
        let mut shown = 0;
        let (objects, bytes) = backfill::count_all(&mut pager, filter, |listed| {
            if shown < 10 {
                println!("{}", listed.object.uri());
                shown += 1;
            }
        })
        .await?;
        if objects > 10 {
            println!("... and {} more", objects - 10);
        }
        eprintln!("backfill: {objects} objects ({:.1} MiB) under {}", bytes as f64 / 1048576.0, run.prefix);
        return Ok(());
    }
    let Some(queue_url) = run.queue_url.clone() else { bail!("--queue-url (or INLET_QUEUE_URL) is required to send") };
    let (before, bytes_before) = (checkpoint.sent, checkpoint.bytes);
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {pos} objects queued, {per_sec} {msg}")?);
    let sqs = inlet::aws::sqs_client(sdk);
    let saved = backfill::send_all(&mut pager, filter, &sqs, &queue_url, options, &mut checkpoint, |reached| {
        bar.set_position(reached.sent - before);
        bar.set_message(reached.position.after_key.clone().unwrap_or_default());
        run.checkpoint.as_deref().map_or(Ok(()), |path| save_checkpoint(path, reached))
    })
    .await;
    bar.finish_and_clear();
    let summary = serde_json::json!({
        "queued": checkpoint.sent - before,
        "bytes": checkpoint.bytes - bytes_before,
        "total": checkpoint.sent,
        "done": checkpoint.done,
        "queue": queue_url,
    });
    println!("{summary}");
    if let Err(err) = saved {
        let resume = run.checkpoint.as_ref().map(|path| format!("; run again with --checkpoint {}", path.display()));
        bail!("backfill stopped after {} objects: {err}{}", checkpoint.sent - before, resume.unwrap_or_default());
    }
    if !checkpoint.done {
        eprintln!("backfill: stopped at --max-objects; run again with the same --checkpoint to continue");
    }
    Ok(())
}

/// `inlet compact`: by the deployed compactor `function` when one is named, else from here.
async fn compact(
    sdk: &SdkConfig,
    overrides: &Overrides,
    function: Option<String>,
    request: &CompactRequest,
) -> Result<()> {
    let Some(function) = function else {
        let routes = routes(sdk, overrides).await?;
        let (_, settings) = routes.one(request.table.as_deref())?;
        let context = Context::new(settings.clone()).await?;
        let request = CompactRequest { table: None, ..request.clone() };
        let report = compact_table(&context, &request).await?;
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    };
    let lambda = aws_sdk_lambda::Client::new(sdk);
    let output = lambda
        .invoke()
        .function_name(&function)
        .payload(Blob::new(serde_json::to_vec(request)?))
        .send()
        .await
        .with_context(|| format!("invoking {function}"))?;
    let body = output.payload.map(Blob::into_inner).unwrap_or_default();
    let body = String::from_utf8_lossy(&body);
    if let Some(error) = output.function_error {
        bail!("{function} failed ({error}): {body}");
    }
    println!("{body}");
    Ok(())
}

/// `inlet check`: every finding on the deployment; an error when any is a problem.
async fn check(sdk: &SdkConfig, overrides: &Overrides, json: bool) -> Result<()> {
    let findings = inlet::ops::check::check(|name| lookup(overrides, name), sdk).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        for finding in &findings {
            println!("{:<7} {:<36} {}", if finding.ok { "ok" } else { "PROBLEM" }, finding.subject, finding.detail);
        }
    }
    let problems = findings.iter().filter(|finding| !finding.ok).count();
    if problems > 0 {
        bail!("{problems} problem(s) found");
    }
    Ok(())
}

/// `inlet schema infer`: the drafted schema on stdout, what to review on stderr.
fn infer_schema(objects: &[PathBuf], lines: u64) -> Result<()> {
    let draft = inlet::ops::infer::infer_files(objects, lines)?;
    println!("{}", serde_json::to_string_pretty(&draft.schema)?);
    eprintln!("drafted from {} lines of {} objects", draft.lines, objects.len());
    for note in &draft.notes {
        eprintln!("review: {note}");
    }
    Ok(())
}

/// `inlet status`: each chosen table's state, and the depth of each queue the deployment has.
async fn status(
    sdk: &SdkConfig,
    routes: &Routes,
    table: Option<&str>,
    queue_url: Option<String>,
    dlq_url: Option<String>,
    json: bool,
) -> Result<()> {
    let storage_options = inlet::config::storage_options_from_env();
    let mut statuses = Vec::new();
    for (route, settings) in routes.select(table)? {
        statuses.push((route.name.clone(), inlet::ops::status_at(&settings.table_uri, &storage_options).await?));
    }
    let queues = queue_depths(sdk, routes, queue_url, dlq_url).await?;
    if json {
        let mut document = match statuses.as_slice() {
            [(_, only)] => serde_json::to_value(only)?,
            _ => {
                let tables: std::collections::BTreeMap<&str, &TableStatus> =
                    statuses.iter().map(|(name, status)| (name.as_str(), status)).collect();
                serde_json::json!({ "tables": tables })
            }
        };
        document["queues"] = serde_json::Value::Object(queues);
        println!("{document}");
    } else {
        for (name, status) in &statuses {
            if statuses.len() > 1 {
                println!("[{name}]");
            }
            print_status(status);
            println!();
        }
        for (name, depth) in &queues {
            println!("{name:<18} {depth} messages");
        }
    }
    Ok(())
}

/// The depth of each queue of the deployment: the ingest queue and its DLQ, and the isolation
/// and commit queues its settings name (the commit queue's DLQ too).
async fn queue_depths(
    sdk: &SdkConfig,
    routes: &Routes,
    queue_url: Option<String>,
    dlq_url: Option<String>,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let sqs = inlet::aws::sqs_client(sdk);
    let settings = routes.iter().next().map(|(_, settings)| settings);
    let commit_queue = settings.and_then(|s| s.commit_queue_url.clone());
    let dlq_url = match (dlq_url, &queue_url) {
        (Some(url), _) => Some(url),
        (None, Some(queue)) => inlet::aws::dead_letter_queue(&sqs, queue).await?,
        (None, None) => None,
    };
    let commit_dlq = match &commit_queue {
        Some(queue) => inlet::aws::dead_letter_queue(&sqs, queue).await?,
        None => None,
    };
    let mut depths = serde_json::Map::new();
    let named = [
        ("queue", queue_url),
        ("dlq", dlq_url),
        ("isolation_queue", settings.and_then(|s| s.isolation_queue_url.clone())),
        ("commit_queue", commit_queue),
        ("commit_dlq", commit_dlq),
    ];
    for (name, url) in named {
        if let Some(url) = url {
            depths.insert(name.into(), serde_json::json!(inlet::aws::queue_depth(&sqs, &url).await?));
        }
    }
    Ok(depths)
}

/// A time as RFC 3339, or a date (its midnight UTC).
fn parse_time(text: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&chrono::Utc));
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .with_context(|| format!("{text:?} is neither RFC 3339 nor YYYY-MM-DD"))?;
    Ok(date.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
}

/// `inlet reconcile`: every version of the window accounted for; the unaccounted ones sent
/// again when `renotify` names the queue.
async fn reconcile(
    sdk: &SdkConfig,
    routes: &Routes,
    table: Option<&str>,
    prefix: &str,
    mut window: inlet::ops::reconcile::Window,
    renotify: Option<String>,
    json: bool,
) -> Result<()> {
    let (bucket, key_prefix) = backfill::parse_s3_uri(prefix)?;
    let probe =
        inlet::lineage::SourceObject { bucket: bucket.clone(), key: format!("{key_prefix}x"), ..Default::default() };
    (window.bucket, window.prefixes) = (bucket, vec![key_prefix]);
    let route = match table {
        Some(name) => routes.named(name).with_context(|| format!("no table {name:?} here"))?,
        None => routes.route_of(&probe).with_context(|| format!("no route takes {prefix}; name one with --table"))?,
    };
    let (_, settings) = routes.iter().nth(route).expect("a route of the routing file");
    let storage_options = inlet::config::storage_options_from_env();
    let url = settings.table_url()?;
    let store = inlet::stage::table_store(&url, &storage_options)?;
    let s3 = inlet::aws::s3_client(sdk);
    let checked =
        inlet::ops::reconcile::Table { routes, route, store: &store, url: &url, storage_options: &storage_options };
    let report = inlet::ops::reconcile::reconcile(&s3, &checked, &window).await?;
    let mut renotified = 0;
    if let Some(queue_url) = renotify {
        let sqs = inlet::aws::sqs_client(sdk);
        renotified = inlet::ops::reconcile::renotify(&sqs, &queue_url, &report.unaccounted).await?;
    }
    if json {
        let mut document = serde_json::to_value(&report)?;
        document["renotified"] = renotified.into();
        println!("{document}");
    } else {
        println!("window           {} to {} under {prefix}", window.since.to_rfc3339(), window.until.to_rfc3339());
        println!("table            {}", settings.table_uri);
        println!("versions         {}", report.versions);
        println!("committed        {} (from {} commits)", report.committed, report.commits_read);
        println!("same content     {}", report.same_content);
        println!("quarantined      {}", report.quarantined);
        println!("superseded       {}", report.superseded);
        println!("failed (DLQ)     {}", report.failed);
        println!("staged           {}", report.staged);
        println!("other tables     {} (left out)", report.other_tables);
        for (uri, reason) in &report.unreadable {
            println!("unreadable       {uri}: {reason}");
        }
        println!("unaccounted      {}", report.unaccounted.len());
        for lost in &report.unaccounted {
            println!(
                "  {} (etag {}, written {})",
                lost.object.uri(),
                lost.object.etag.as_deref().unwrap_or("-"),
                lost.last_modified
            );
        }
        if renotified > 0 {
            println!("renotified       {renotified}");
        }
    }
    if !json {
        for note in &report.notes {
            println!("note             {note}");
        }
    }
    if !report.unaccounted.is_empty() && renotified == 0 {
        bail!("{} versions unaccounted for (--renotify sends them through the pipeline)", report.unaccounted.len());
    }
    Ok(())
}

/// `inlet dlq …`: the dead-letter queue, decoded; redrives.
async fn dlq(
    sdk: &SdkConfig,
    routes: &Routes,
    command: DlqCommand,
    queue_url: Option<String>,
    dlq_url: Option<String>,
    max: usize,
) -> Result<()> {
    let sqs = inlet::aws::sqs_client(sdk);
    let dlq_url = match (dlq_url, &queue_url) {
        (Some(url), _) => url,
        (None, Some(queue)) => inlet::aws::dead_letter_queue(&sqs, queue)
            .await?
            .with_context(|| format!("{queue} has no dead-letter queue; name one with --dlq-url"))?,
        (None, None) => bail!("--dlq-url (INLET_DLQ_URL) or --queue-url (INLET_QUEUE_URL) is required"),
    };
    let storage_options = inlet::config::storage_options_from_env();
    let mut tables = Vec::new();
    for (_, settings) in routes.iter() {
        tables.push(inlet::stage::table_store(&settings.table_url()?, &storage_options)?);
    }
    let letters = inlet::ops::dlq::DeadLetters { sqs: &sqs, dlq_url: &dlq_url, routes, tables };
    match command {
        DlqCommand::List { json } => {
            let messages = letters.list(max).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&messages)?);
                return Ok(());
            }
            for message in &messages {
                println!(
                    "{} (received {} times, first sent {})",
                    message.message_id, message.receive_count, message.sent_at
                );
                for object in &message.objects {
                    let route = object.route.as_deref().unwrap_or("no route");
                    let reason = object.reason.as_deref().unwrap_or("no failure recorded (see the converter log)");
                    println!("  {} [{route}]: {reason}", object.uri);
                }
                if let Some(reason) = &message.unreadable {
                    println!("  not a notification Inlet reads: {reason}");
                }
            }
            eprintln!("{} messages", messages.len());
        }
        DlqCommand::Redrive { all, objects } => {
            if !all && objects.is_empty() {
                bail!("name the objects whose messages to send, or --all");
            }
            let Some(queue_url) = queue_url else { bail!("--queue-url (INLET_QUEUE_URL) is required to redrive") };
            let redriven = letters.redrive(&queue_url, |message| all || message.names_any(&objects), max).await?;
            println!("{}", serde_json::to_string(&redriven)?);
        }
    }
    Ok(())
}

/// `inlet trace`: where one object went.
async fn trace(
    sdk: &SdkConfig,
    routes: &Routes,
    table: Option<&str>,
    object: &str,
    version: Option<&str>,
    (queue_url, dlq_url): (Option<String>, Option<String>),
    json: bool,
) -> Result<()> {
    use inlet::ops::trace::{TraceInputs, trace};
    let (bucket, key) = backfill::parse_s3_uri(object)?;
    let source = inlet::lineage::SourceObject { bucket, key, ..Default::default() };
    let (route, settings) = match table {
        Some(_) => routes.one(table)?,
        None => {
            let at = routes.route_of(&source).with_context(|| format!("no route takes {object}"))?;
            routes.iter().nth(at).expect("a route of the routing file")
        }
    };
    let storage_options = inlet::config::storage_options_from_env();
    let url = settings.table_url()?;
    let store = inlet::stage::table_store(&url, &storage_options)?;
    let table_version = inlet::commit::table::open_table(&url, &storage_options).await?.version();
    let sqs = inlet::aws::sqs_client(sdk);
    let dlq_url = match (dlq_url, queue_url) {
        (Some(url), _) => Some(url),
        (None, Some(queue)) => inlet::aws::dead_letter_queue(&sqs, &queue).await?,
        (None, None) => None,
    };
    let s3 = inlet::aws::s3_client(sdk);
    let inputs = TraceInputs { s3: &s3, table: &store, table_version, dlq: dlq_url.as_deref().map(|url| (&sqs, url)) };
    let traced = trace(&inputs, &source, version, (&route.name, &settings.table_uri)).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&traced)?);
    } else {
        print_trace(&traced);
    }
    if dlq_url.is_none() {
        eprintln!("(no dead-letter queue searched: set INLET_QUEUE_URL or INLET_DLQ_URL)");
    }
    Ok(())
}

/// A trace as aligned lines.
fn print_trace(traced: &inlet::ops::trace::Trace) {
    println!("object       {}", traced.object);
    println!("table        {} ({})", traced.route, traced.table);
    for version in &traced.versions {
        let id = version.version_id.as_deref().unwrap_or("-");
        let latest = if version.latest { ", current" } else { "" };
        println!(
            "version      {id} (etag {}, {} bytes, written {}{latest})",
            version.etag, version.size, version.last_modified
        );
        match (&version.commit, version.committed) {
            (Some(commit), _) => {
                println!(
                    "  committed  in table version {} at {}: {} rows",
                    commit.version, commit.committed_at, commit.rows
                )
            }
            (None, true) => println!("  committed  (the load history holds it; its commit is no longer in the log)"),
            (None, false) => println!("  not committed"),
        }
    }
    for record in &traced.quarantine {
        let replayed = if record.replayed { ", replayed" } else { "" };
        println!("quarantined  {}: {} lines, {}{replayed}", record.path, record.lines, record.first);
    }
    for record in &traced.superseded {
        let id = record.version.as_deref().or(record.etag.as_deref()).unwrap_or("-");
        println!("superseded   {id}: {} (at {})", record.reason, record.recorded_at);
    }
    for failure in &traced.failures {
        let id = failure.version.as_deref().or(failure.etag.as_deref()).unwrap_or("-");
        println!("failed       {id}: {} (at {})", failure.error, failure.failed_at);
    }
    for fragment in &traced.staged {
        let batch = fragment.batch.as_deref().unwrap_or("-");
        println!("staged       {} (batch {batch}, {} rows, at {})", fragment.path, fragment.rows, fragment.staged_at);
    }
    for letter in &traced.dead_letters {
        println!(
            "dead letter  message {}, received {} times, first sent {}",
            letter.message_id, letter.receive_count, letter.sent_at
        );
    }
    for note in &traced.notes {
        println!("note         {note}");
    }
}

/// A table's status as aligned lines.
fn print_status(status: &TableStatus) {
    println!("table              {}", status.table);
    match status.version {
        Some(version) => println!("version            {version}"),
        None => println!("version            (no table yet)"),
    }
    println!(
        "files              {} ({} bytes, average {} bytes)",
        status.files,
        status.bytes,
        status.average_file_bytes()
    );
    if let Some(at) = status.last_commit_ms.and_then(chrono::DateTime::from_timestamp_millis) {
        println!("last commit        {}", at.to_rfc3339());
    }
    let at_least = if status.recent_partial { "at least " } else { "" };
    println!(
        "last hour          {at_least}{} commits, {at_least}{} rows",
        status.commits_last_hour, status.rows_last_hour
    );
    println!("staged             {} fragments, {} bytes", status.staged_fragments, status.staged_bytes);
    if let Some(age) = status.oldest_staged_seconds {
        println!("oldest staged      {}", humanize(Duration::from_secs(age.max(0) as u64)));
    }
    for (partition, staged) in &status.staged_partitions {
        let partition = if partition.is_empty() { "(unpartitioned)" } else { partition };
        println!(
            "  {partition:<16} {} fragments, {} bytes, oldest {}",
            staged.fragments,
            staged.bytes,
            humanize(Duration::from_secs(staged.oldest_seconds.max(0) as u64))
        );
    }
    println!("quarantine records {}", status.quarantine_records);
    println!("superseded records {}", status.superseded_records);
    if let Some(complete) = &status.completeness {
        println!(
            "complete through   {} (as of version {}, checked {}{})",
            complete.complete_through.to_rfc3339(),
            complete.version,
            complete.checked_at.to_rfc3339(),
            if complete.queues_checked { "" } else { ", queues not checked" }
        );
    }
}

/// `inlet quarantine …` on the table of `settings`.
async fn quarantine(command: QuarantineCommand, settings: &Settings, sqs: &aws_sdk_sqs::Client) -> Result<()> {
    use inlet::ops::quarantine;
    let storage_options = inlet::config::storage_options_from_env();
    let table = inlet::stage::table_store(&settings.table_url()?, &storage_options)?;
    match command {
        QuarantineCommand::List { json } => {
            let records = quarantine::list(&table).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&records)?);
                return Ok(());
            }
            for record in &records {
                let state = record.replayed_as.as_deref().map(|object| format!("replayed as {object}"));
                println!("{}", record.path);
                println!(
                    "  {} lines from {}: {}{}",
                    record.lines,
                    record.source(),
                    record.first_error,
                    state.map(|state| format!(" ({state})")).unwrap_or_default()
                );
            }
            let lines: usize = records.iter().map(|record| record.lines).sum();
            eprintln!("{} records, {lines} lines", records.len());
        }
        QuarantineCommand::Show { record } => {
            let record = quarantine::find(&table, &record).await?;
            for line in quarantine::lines(&table, &record).await? {
                println!("{}", serde_json::to_string(&line)?);
            }
        }
        QuarantineCommand::Replay { record, fixed, queue_url } => {
            let record = quarantine::find(&table, &record).await?;
            let fixed = match fixed {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?
                        .lines()
                        .map(str::to_string)
                        .collect(),
                ),
                None => None,
            };
            let bucket = url::Url::parse(&format!("s3://{}", record.bucket))?;
            let raw = inlet::stage::table_store(&bucket, &storage_options)?;
            let replayed = quarantine::replay(&table, &raw, &record, fixed).await?;
            if let Some(queue_url) = queue_url {
                let object = inlet::lineage::SourceObject {
                    bucket: record.bucket.clone(),
                    key: record.replay_key(),
                    etag: replayed.etag.clone(),
                    ..Default::default()
                };
                let listed = backfill::ListedObject { object, size: 0, last_modified: None };
                backfill::enqueue(sqs, &queue_url, &[listed], |_| ()).await?;
            }
            println!("{}", serde_json::to_string(&replayed)?);
        }
    }
    Ok(())
}

/// `inlet convert`: the converter on local files, staged under `out`, and what it did.
async fn convert(overrides: &Overrides, out: &Path, objects: &[PathBuf], json: bool) -> Result<()> {
    let url = url::Url::from_directory_path(std::path::absolute(out)?)
        .map_err(|()| anyhow::anyhow!("{} is not a directory path", out.display()))?;
    let mut overrides = overrides.clone();
    overrides.insert("INLET_TABLE_URI", url.to_string());
    let settings = settings(&overrides)?;
    let schema = TableSchema::from_path_with(Path::new(&settings.schema_location), settings.layout.clone())
        .with_context(|| "loading the schema (set --schema or INLET_SCHEMA)")?;
    let options = ConverterOptions::from_settings(&settings);
    let converted =
        inlet::ops::convert::convert_files(Arc::new(schema), options, settings.framing.clone(), out, objects).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&converted)?);
    } else {
        print_conversion(&converted, out);
    }
    if !converted.failed.is_empty() {
        bail!("{} of {} objects could not be converted", converted.failed.len(), objects.len());
    }
    Ok(())
}

/// A conversion's summary: counts, fragments, failed files and the first refused lines.
fn print_conversion(converted: &inlet::ops::convert::LocalConversion, out: &Path) {
    const SHOWN: usize = 20;
    let report = &converted.report;
    println!("objects          {} converted, {} failed", report.objects, converted.failed.len());
    println!("rows             {}", report.rows);
    println!("quarantined      {} lines", report.quarantined);
    for fragment in &report.fragments {
        println!("fragment         {}", out.join(fragment).display());
    }
    for failed in &converted.failed {
        println!("failed           {} (reason above)", failed.display());
    }
    for line in converted.quarantined.iter().take(SHOWN) {
        println!("refused          {} line {}: {}", line.source, line.line, line.error);
    }
    let shown = converted.quarantined.len().min(SHOWN) as u64;
    if report.quarantined > shown {
        println!("refused          ... and {} more (under {})", report.quarantined - shown, out.display());
    }
}

fn humanize(age: Duration) -> String {
    let seconds = age.as_secs();
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, (seconds / 60) % 60),
    }
}
