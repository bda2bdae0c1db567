//! What the compactor is asked to do: the Lambda's payload, and the run it starts.

use serde::{Deserialize, Serialize};

use super::{CompactionReport, Compactor, CompactorOptions};
use crate::commit::complete::{
    Committed, Completeness, CompletenessOptions, CompletenessReport, NoQueues, QueueProbe, SqsQueues, Windows,
};
use crate::commit::evolution::schema_fits_table;
use crate::commit::history::LoadHistory;
use crate::commit::optimize::{OptimizeOptions, optimize, vacuum};
use crate::commit::table::{keep_properties, open_or_create};
use crate::config::Settings;
use crate::context::{Context, Deployment};
use crate::error::{Error, Result};
use crate::metrics::Metric;
use crate::properties::TableProperties;
use crate::routes::{Route, Routes, names_table};
use crate::stage::FragmentStore;

/// Most window markers one run writes: a year of days, or a month of hours, at once.
const MAX_MARKERS_PER_RUN: usize = 750;

/// An on-demand or scheduled compaction request (the compactor Lambda's payload).
/// `{}` and EventBridge's scheduled-event payload both mean "compact the configured table".
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactRequest {
    /// Table to compact; must be the configured one when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Compact now, however little is staged (on-demand runs); scheduled runs leave small,
    /// fresh partitions to grow.
    #[serde(default)]
    pub force: bool,
    /// Only these partitions (Hive directories such as `date=2026-05-16`); all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<Vec<String>>,
    /// Also rewrite small files already in the table, in every partition with two or more
    /// (scheduled runs do so once a partition reaches `INLET_OPTIMIZE_MIN_FILES`).
    #[serde(default)]
    pub optimize: bool,
    /// Also vacuum: delete unreferenced data files older than the table's retention.
    #[serde(default)]
    pub vacuum: bool,
    /// Create the table if there is none at the configured location, even with nothing staged
    /// there. Without it a table is created only where a converter has staged rows, so a
    /// mistyped table URI is an error instead of a new empty table.
    #[serde(default)]
    pub create: bool,
}

impl CompactRequest {
    /// Reads a request from an invocation payload; unknown fields (EventBridge's) are ignored.
    pub fn from_payload(payload: &serde_json::Value) -> Result<Self> {
        if payload.is_null() {
            return Ok(Self::default());
        }
        serde_json::from_value(payload.clone())
            .map_err(|err| Error::BadRequest(format!("not a compaction request ({err}): {payload}")))
    }
}

/// Compacts the context's table as asked by `request`.
pub async fn compact_table(context: &Context, request: &CompactRequest) -> Result<CompactionReport> {
    if let Some(table) = &request.table {
        let configured = &context.settings.table_uri;
        if !names_table(table, None, configured) {
            return Err(Error::BadRequest(format!("this compactor serves {configured}, not {table:?}")));
        }
    }
    let url = context.settings.table_url()?;
    if request.create && url.scheme() == "file" {
        // A local table's directory is made with it, as an S3 prefix needs no making.
        if let Ok(path) = url.to_file_path() {
            std::fs::create_dir_all(path)?;
        }
    }
    let table = crate::commit::table::open_table(&url, &context.storage_options).await?;
    if table.version().is_none() && !request.create {
        let staged = FragmentStore::new(context.table_store.clone()).list().await?;
        if staged.is_empty() {
            if !request.force {
                // A new deployment before its first data: the schedule has nothing to do yet.
                tracing::info!(table = %url, "no table yet and nothing staged: nothing to compact");
                return Ok(CompactionReport::default());
            }
            return Err(Error::NoTable(url.to_string()));
        }
    }
    let properties = context.settings.table_properties();
    let mut table = open_or_create(&url, &context.storage_options, &context.schema, &properties).await?;
    keep_table_properties(&mut table, &properties).await;
    let options = CompactorOptions::from_settings(&context.settings);
    let mut compactor = Compactor::new(context.table_store.clone(), context.schema.clone(), options);
    if let Some(partitions) = &request.partitions {
        compactor = compactor.with_partitions(partitions.clone());
    }
    let mut report = compactor.run(&mut table, request.force).await?;
    let optimize_options = OptimizeOptions::from_settings(&context.settings);
    let optimized = optimize(&mut table, &optimize_options, request.partitions.as_deref(), request.optimize).await?;
    report.optimize = (optimized.version.is_some() || request.optimize).then_some(optimized);
    if request.vacuum {
        // Files other writers removed are read for their sources before vacuum deletes them.
        table.update_state().await?;
        if LoadHistory::catch_up(&context.table_store, table.version().unwrap_or_default()).await? {
            report.vacuum = Some(vacuum(&mut table, None).await?);
        } else {
            tracing::warn!("vacuum waits until the load history is rebuilt");
        }
    }
    report.completeness = check_completeness(context, &mut table, &report).await;
    Ok(report)
}

/// Moves a time-partitioned table's completeness watermark after a run (`commit::complete`).
/// A check that fails is left to the next run: the rows are committed either way.
async fn check_completeness(
    context: &Context,
    table: &mut deltalake::DeltaTable,
    report: &CompactionReport,
) -> Option<CompletenessReport> {
    let windows = context.schema.layout.partition.as_ref().and_then(Windows::of)?;
    let settings = &context.settings;
    let options = CompletenessOptions {
        settle: std::time::Duration::from_secs(settings.complete_settle_seconds),
        max_markers: MAX_MARKERS_PER_RUN,
    };
    let completeness = Completeness::new(context.table_store.clone(), windows, options);
    let urls = settings.complete_queue_urls.clone();
    let queues: Box<dyn QueueProbe> = match &context.sqs {
        Some(sqs) if !urls.is_empty() => Box::new(SqsQueues { sqs: sqs.clone(), urls }),
        _ => Box::new(NoQueues),
    };
    let committed = Committed { version: report.version, partitions: report.committed_partitions.clone() };
    match completeness.check(table, queues.as_ref(), &committed, chrono::Utc::now()).await {
        Ok(checked) => {
            if !checked.completed.is_empty() {
                tracing::info!(windows = %checked.completed.join(", "), complete_through = ?checked.complete_through, "windows complete");
            }
            Some(checked)
        }
        Err(err) => {
            tracing::warn!(error = %err, "completeness check left for the next run");
            None
        }
    }
}

/// Brings the table's properties to the settings' after a change, before compacting. A commit
/// that fails (another writer's commit won) is left to the next run: the compaction goes on.
async fn keep_table_properties(table: &mut deltalake::DeltaTable, properties: &TableProperties) {
    match keep_properties(table, properties).await {
        Ok(set) if set.is_empty() => {}
        Ok(set) => tracing::info!(table = %table.table_url(), set = %set.join(", "), "set table properties"),
        // The table is left as it was loaded: the compaction reloads its state anyway.
        Err(err) => tracing::warn!(table = %table.table_url(), error = %err, "table properties left for the next run"),
    }
}

/// The compactor of every table of a deployment (one, for a single table).
pub struct RoutedCompactor {
    deployment: Deployment,
    /// Per route, whether its table takes its declared schema, as last checked.
    fits: Vec<std::sync::Mutex<Fit>>,
}

/// Whether a route's table takes its declared schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fit {
    /// Not known yet: the route's table was unavailable at start.
    Unchecked,
    Fits,
    /// Checked again on every run, since it may have been fixed.
    Misfit,
}

/// What compacting one table of a deployment came to: each table fails alone.
#[derive(Debug)]
pub struct TableOutcome {
    /// The route's name.
    pub name: String,
    /// The table's URI.
    pub table: String,
    /// Its report, or why it failed.
    pub result: Result<CompactionReport>,
}

impl TableOutcome {
    /// The metrics of this table's run; a failed run counts one `CompactionFailed`.
    pub fn metrics(&self) -> Vec<Metric> {
        match &self.result {
            Ok(report) => report.metrics(),
            Err(_) => vec![Metric { name: "CompactionFailed", value: 1.0, unit: "Count" }],
        }
    }
}

impl RoutedCompactor {
    /// The tables of the routes the environment describes, as the Lambda compacts them.
    pub async fn from_env() -> Result<Self> {
        Self::from_deployment(Deployment::from_env().await?).await
    }

    /// The tables of `deployment`. A declared schema its table cannot take is found here, at
    /// cold start, and fails that table's runs (logged, alarmed) until it fits; so does a table
    /// that is unavailable (its schema unreadable, say). The other tables compact as usual.
    pub async fn from_deployment(deployment: Deployment) -> Result<Self> {
        let mut fits = Vec::new();
        for (route, context) in deployment.iter() {
            let fit = match context {
                None => Fit::Unchecked,
                Some(context) => match misfit(&context).await {
                    Some(Ok(())) => Fit::Fits,
                    Some(Err(reason)) => {
                        let table = &context.settings.table_uri;
                        tracing::error!(route = %route.name, table = %table, reason, "the table cannot take its declared schema: it fails alone until fixed");
                        Fit::Misfit
                    }
                    None => Fit::Unchecked,
                },
            };
            fits.push(std::sync::Mutex::new(fit));
        }
        Ok(Self { deployment, fits })
    }

    /// The routes whose tables this compactor serves.
    pub fn routes(&self) -> &Routes {
        self.deployment.routes()
    }

    /// Compacts the table `request` names (by route name or table URI), or every table in
    /// turn; a table that fails does not stop the others. Only a request naming no table
    /// served here is an error.
    pub async fn compact(&self, request: &CompactRequest) -> Result<Vec<TableOutcome>> {
        let routes: Vec<&(Route, Settings)> = self.deployment.routes().iter().collect();
        let by_route = |table: &str| self.deployment.routes().named(table).is_some();
        let chosen: Vec<usize> = match &request.table {
            // A route's name, as the commit queue names it, also for a routing file of one route.
            Some(table) if routes.len() > 1 || by_route(table) => {
                vec![self.deployment.routes().named(table).ok_or_else(|| {
                    let served: Vec<String> = routes
                        .iter()
                        .map(|(route, settings)| format!("{} ({})", route.name, settings.table_uri))
                        .collect();
                    Error::BadRequest(format!("no table {table:?} here; this compactor serves {}", served.join(", ")))
                })?]
            }
            _ => (0..routes.len()).collect(),
        };
        let single = routes.len() == 1;
        let resolved = request.table.as_deref().is_some_and(by_route);
        let mut outcomes = Vec::new();
        for at in chosen {
            let (route, settings) = routes[at];
            // A request naming a route was resolved above; otherwise the deployment's one table
            // checks the name it was given.
            let scoped = match single && !resolved {
                true => request.clone(),
                false => CompactRequest { table: None, ..request.clone() },
            };
            let result = match self.deployment.context(at).await {
                Ok(context) => self.compact_fitting(at, &context, &scoped).await,
                Err(err) => Err(err),
            };
            match result {
                // Every table compacted at once: one that has received nothing yet is not a mistake.
                Err(Error::NoTable(uri)) if !single && request.table.is_none() => {
                    tracing::info!(table = %uri, "no table yet and nothing staged: nothing to compact");
                }
                result => {
                    if let Err(err) = &result {
                        tracing::error!(route = %route.name, table = %settings.table_uri, error = %err, "compaction failed");
                    }
                    let (name, table) = (route.name.clone(), settings.table_uri.clone());
                    outcomes.push(TableOutcome { name, table, result });
                }
            }
        }
        Ok(outcomes)
    }

    /// Compacts the route at `at` if its table takes its declared schema, checking again
    /// unless it was found to fit.
    async fn compact_fitting(
        &self,
        at: usize,
        context: &Context,
        request: &CompactRequest,
    ) -> Result<CompactionReport> {
        let known = *self.fits[at].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if known != Fit::Fits {
            let checked = misfit(context).await;
            let fit = match &checked {
                Some(Ok(())) => Fit::Fits,
                Some(Err(_)) => Fit::Misfit,
                // Not known this time: the run finds out, and the next checks again.
                None => known,
            };
            *self.fits[at].lock().unwrap_or_else(std::sync::PoisonError::into_inner) = fit;
            if let Some(Err(reason)) = checked {
                return Err(Error::Schema { location: context.settings.schema_location.clone(), reason });
            }
        }
        compact_table_after_rivals(context, request).await
    }
}

/// [`compact_table`], run once more when another compactor's commit won (a scheduled run and
/// one for sealed batches, say): the second run plans from the winner's commit, so it takes
/// only what is still staged. Losing again means others keep committing this table: nothing
/// failed, and what is left is theirs or the next run's.
async fn compact_table_after_rivals(context: &Context, request: &CompactRequest) -> Result<CompactionReport> {
    let table = &context.settings.table_uri;
    match compact_table(context, request).await {
        Err(err) if err.is_commit_conflict() => {
            tracing::info!(table = %table, error = %err, "another compactor committed first: compacting again");
            match compact_table(context, request).await {
                Err(err) if err.is_commit_conflict() => {
                    tracing::info!(table = %table, error = %err, "other compactors keep committing this table: leaving it to them");
                    Ok(CompactionReport::default())
                }
                result => result,
            }
        }
        result => result,
    }
}

/// Whether the context's table takes its declared schema: `Ok`, or why not; `None` when the
/// table could not be read now (left to the run, which reports that with its own cause).
async fn misfit(context: &Context) -> Option<std::result::Result<(), String>> {
    let settings = &context.settings;
    match schema_fits_table(&settings.table_uri, &context.schema, &context.storage_options).await {
        Ok(fit) if !fit.fits => Some(Err(fit.detail)),
        Ok(_) => Some(Ok(())),
        Err(err) => {
            tracing::warn!(table = %settings.table_uri, error = %err, "could not check the table's schema");
            None
        }
    }
}

/// The compactor's answer to an invocation: one table's report as a single-table deployment
/// answers, several by route name; after every table ran, the first failure, if any, so the
/// invocation fails (and Lambda's error alarm sees it) while each table's own metric names it.
pub fn answer(outcomes: Vec<TableOutcome>) -> Result<serde_json::Value> {
    let several = outcomes.len() != 1;
    let mut reports = std::collections::BTreeMap::new();
    let mut first_failure = None;
    for outcome in outcomes {
        match outcome.result {
            Ok(report) => {
                reports.insert(outcome.name, report);
            }
            Err(err) => {
                first_failure.get_or_insert(err);
            }
        }
    }
    if let Some(err) = first_failure {
        return Err(err);
    }
    if several {
        return Ok(serde_json::json!({ "tables": reports }));
    }
    Ok(serde_json::to_value(reports.into_values().next().unwrap_or_default())?)
}
