//! The scheduled reconciliation the compactor runs when invoked with `{"reconcile": {...}}`:
//! for each table with `INLET_RECONCILE_PREFIXES`, the versions written under those prefixes
//! in a window that closed a settle time ago are accounted for (see [`super::reconcile`]);
//! the table's `ReconciledObjects` and `UnaccountedObjects` metrics say how many, and the
//! unaccounted ones are sent through the pipeline again when the request says so.
//!
//! The prefixes are templates of the window's dates and hours, so a run lists the keys written
//! in its window, not everything the bucket ever received.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::reconcile::{Reconciliation, Table, Window, reconcile, renotify};
use crate::error::{Error, Result};
use crate::metrics::{Metric, emit};
use crate::routes::Routes;

/// What a scheduled reconciliation covers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileRequest {
    /// Minutes of writes the window spans...
    #[serde(default = "default_window_minutes")]
    pub window_minutes: u32,
    /// ...ending this many minutes ago, so that objects still on their way through the queue
    /// and the converter are not taken as unaccounted.
    #[serde(default = "default_settle_minutes")]
    pub settle_minutes: u32,
    /// Keys dated this many hours before the window are listed too (`{date}` and `{hour}`
    /// expand from there): objects written late under an earlier date's key.
    #[serde(default = "default_key_lookback_hours")]
    pub key_lookback_hours: u32,
    /// Only keys ending with this (the notifications' suffix filter).
    #[serde(default)]
    pub suffix: String,
    /// Send the unaccounted versions to the ingest queue (`INLET_QUEUE_URL`).
    #[serde(default)]
    pub renotify: bool,
    /// Only this table (route name or table URI); every table with prefixes when absent.
    #[serde(default)]
    pub table: Option<String>,
}

fn default_window_minutes() -> u32 {
    1440
}

fn default_settle_minutes() -> u32 {
    60
}

fn default_key_lookback_hours() -> u32 {
    1
}

impl ReconcileRequest {
    /// The request of a payload `{"reconcile": {...}}`; `None` for any other payload.
    pub fn from_payload(payload: &Value) -> Result<Option<Self>> {
        let Some(body) = payload.get("reconcile") else { return Ok(None) };
        serde_json::from_value(body.clone())
            .map(Some)
            .map_err(|err| Error::BadRequest(format!("not a reconciliation request ({err}): {payload}")))
    }

    /// The window of a run at `now`: `[now - settle - window, now - settle)`.
    pub fn window_at(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let until = now - Duration::minutes(self.settle_minutes.into());
        (until - Duration::minutes(self.window_minutes.into()), until)
    }
}

/// The prefixes, by bucket, that `templates` name for the window `[since, until)`: one per
/// date (`{date}`) or hour (`{hour}`) of the window and of the `lookback_hours` before it,
/// where keys named for a date or hour are written until some time after it ends.
pub fn expand_prefixes(
    templates: &[String],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    lookback_hours: u32,
) -> Result<BTreeMap<String, Vec<String>>> {
    let mut by_bucket: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let from = since - Duration::hours(lookback_hours.into());
    let first = from.duration_trunc(Duration::hours(1)).unwrap_or(from);
    for template in templates {
        let (bucket, prefix) = super::backfill::parse_s3_uri(template)?;
        let prefixes = by_bucket.entry(bucket).or_default();
        let mut hour = first;
        loop {
            let expanded = prefix
                .replace("{date}", &hour.format("%Y-%m-%d").to_string())
                .replace("{hour}", &hour.format("%H").to_string());
            if !prefixes.contains(&expanded) {
                prefixes.push(expanded);
            }
            hour += Duration::hours(1);
            if hour >= until || !prefix.contains('{') {
                break;
            }
        }
    }
    Ok(by_bucket)
}

/// Runs scheduled reconciliations with the clients and ingest queue of the environment.
pub struct Reconciler {
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    queue_url: Option<String>,
    storage_options: HashMap<String, String>,
}

impl Reconciler {
    /// Clients from the environment; the ingest queue from `INLET_QUEUE_URL`.
    pub async fn from_env() -> Self {
        let sdk = crate::aws::sdk_config().await;
        Self {
            s3: crate::aws::s3_client(&sdk),
            sqs: crate::aws::sqs_client(&sdk),
            queue_url: std::env::var("INLET_QUEUE_URL").ok().filter(|url| !url.trim().is_empty()),
            storage_options: crate::config::storage_options_from_env(),
        }
    }

    /// Reconciles every table of `routes` the request covers, one after another, each emitting
    /// its metrics; a table that fails does not stop the others, and fails the run at its end
    /// (the function's error alarm) once every other table is done. Versions are read for
    /// their digest until `deadline` (the invocation's, less time to answer): those left count
    /// as unaccounted, and a table not begun by then fails.
    pub async fn run(
        &self,
        routes: &Routes,
        request: &ReconcileRequest,
        now: DateTime<Utc>,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Value> {
        if request.renotify && self.queue_url.is_none() {
            return Err(Error::Config("a reconciliation that renotifies needs INLET_QUEUE_URL".into()));
        }
        let chosen: Vec<usize> = match &request.table {
            Some(name) => vec![routes.named(name).ok_or_else(|| Error::BadRequest(format!("no table {name:?} here")))?],
            None => (0..routes.len()).collect(),
        };
        let (since, until) = request.window_at(now);
        let (mut answers, mut failures) = (Vec::new(), Vec::new());
        for at in chosen {
            let (route, settings) = routes.iter().nth(at).expect("a route of the routing file");
            if settings.reconcile_prefixes.is_empty() {
                answers.push(json!({"table": route.name, "skipped": "INLET_RECONCILE_PREFIXES is unset"}));
                continue;
            }
            if deadline.is_some_and(|deadline| tokio::time::Instant::now() >= deadline) {
                tracing::error!(table = %settings.table_uri, "the invocation's time ran out before the table's reconciliation");
                failures.push(format!("{}: not reconciled before the deadline", route.name));
                answers.push(json!({"table": route.name, "error": "not reconciled before the deadline"}));
                continue;
            }
            let window = Window {
                bucket: String::new(),
                prefixes: Vec::new(),
                suffix: request.suffix.clone(),
                since,
                until,
                read_deadline: deadline,
            };
            match self.reconcile_table(routes, at, request, window).await {
                Ok(answer) => answers.push(answer),
                Err(err) => {
                    tracing::error!(table = %settings.table_uri, error = %err, "the reconciliation of the table failed");
                    failures.push(format!("{}: {err}", route.name));
                    answers.push(json!({"table": route.name, "error": err.to_string()}));
                }
            }
        }
        if !failures.is_empty() {
            return Err(Error::Reconcile(failures.join("; ")));
        }
        Ok(json!({"since": since.to_rfc3339(), "until": until.to_rfc3339(), "tables": answers}))
    }

    async fn reconcile_table(
        &self,
        routes: &Routes,
        at: usize,
        request: &ReconcileRequest,
        base: Window,
    ) -> Result<Value> {
        let (route, settings) = routes.iter().nth(at).expect("a route of the routing file");
        let url = settings.table_url()?;
        let store = crate::stage::table_store(&url, &self.storage_options)?;
        let table = Table { routes, route: at, store: &store, url: &url, storage_options: &self.storage_options };
        let mut total = Reconciliation::default();
        let expanded =
            expand_prefixes(&settings.reconcile_prefixes, base.since, base.until, request.key_lookback_hours)?;
        for (bucket, prefixes) in expanded {
            let window = Window { bucket, prefixes, ..base.clone() };
            total.absorb(reconcile(&self.s3, &table, &window).await?);
        }
        // Counted before anything is sent: a renotification that fails still leaves the alarm.
        let metrics = [
            Metric { name: "ReconciledObjects", value: total.versions as f64, unit: "Count" },
            Metric { name: "UnaccountedObjects", value: total.unaccounted.len() as f64, unit: "Count" },
        ];
        emit("compactor", &settings.table_uri, &metrics);
        for lost in total.unaccounted.iter().take(100) {
            tracing::warn!(table = %settings.table_uri, object = %lost.object.uri(), etag = ?lost.object.etag, written = %lost.last_modified, renotify = request.renotify, "an object version the pipeline never heard of");
        }
        for note in &total.notes {
            tracing::warn!(table = %settings.table_uri, note, "the reconciliation could not establish everything");
        }
        let renotified = match (&self.queue_url, request.renotify) {
            (Some(queue_url), true) => renotify(&self.sqs, queue_url, &total.unaccounted).await?,
            _ => 0,
        };
        tracing::info!(table = %settings.table_uri, versions = total.versions, committed = total.committed, unaccounted = total.unaccounted.len(), renotified, "reconciled");
        Ok(json!({
            "table": route.name,
            "versions": total.versions,
            "committed": total.committed,
            "same_content": total.same_content,
            "quarantined": total.quarantined,
            "superseded": total.superseded,
            "failed": total.failed,
            "staged": total.staged,
            "unreadable": total.unreadable.len(),
            "unaccounted": total.unaccounted.len(),
            "renotified": renotified,
            "notes": total.notes,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn templates_expand_to_the_dates_and_hours_of_the_window_and_the_hour_before() {
        let templates = ["s3://raw/web/date={date}/".to_string(), "s3://logs/app/{date}/{hour}/".to_string()];
        let expanded = expand_prefixes(&templates, at("2026-05-16T00:30:00Z"), at("2026-05-16T03:00:00Z"), 1).unwrap();
        assert_eq!(expanded["raw"], ["web/date=2026-05-15/", "web/date=2026-05-16/"]);
        assert_eq!(
            expanded["logs"],
            ["app/2026-05-15/23/", "app/2026-05-16/00/", "app/2026-05-16/01/", "app/2026-05-16/02/"]
        );
        let plain =
            expand_prefixes(&["s3://raw/web/".to_string()], at("2026-05-14T00:00:00Z"), at("2026-05-16T00:00:00Z"), 1);
        assert_eq!(plain.unwrap()["raw"], ["web/"]);
    }

    #[test]
    fn requests_come_from_a_reconcile_payload_with_defaults() {
        assert_eq!(ReconcileRequest::from_payload(&json!({"force": true})).unwrap(), None);
        let request = ReconcileRequest::from_payload(&json!({"reconcile": {"renotify": true}})).unwrap().unwrap();
        assert_eq!((request.window_minutes, request.settle_minutes, request.renotify), (1440, 60, true));
        assert_eq!(request.key_lookback_hours, 1);
        let (since, until) = request.window_at(at("2026-05-16T12:00:00Z"));
        assert_eq!((since, until), (at("2026-05-15T11:00:00Z"), at("2026-05-16T11:00:00Z")));
        assert!(ReconcileRequest::from_payload(&json!({"reconcile": {"windw_minutes": 5}})).is_err());
    }
}
