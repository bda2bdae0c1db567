//! CloudWatch Embedded Metric Format: one JSON line per invocation on stdout, which Lambda
//! ships to CloudWatch Logs and CloudWatch turns into metrics without any API call.

use serde_json::{Map, Value, json};

/// Namespace of every Inlet metric.
pub const NAMESPACE: &str = "Inlet";

/// One metric value and its CloudWatch unit (`Count`, `Bytes`, `Milliseconds`, `Seconds`).
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Metric name.
    pub name: &'static str,
    /// Value.
    pub value: f64,
    /// CloudWatch unit.
    pub unit: &'static str,
}

/// What one metric Inlet emits means: the README's metric list is generated from [`METRICS`]
/// (`docs/readme_lists.py`), and a test checks it against the metrics the code constructs.
#[derive(Debug, Clone, Copy)]
pub struct MetricDoc {
    /// Metric name.
    pub name: &'static str,
    /// The function that emits it, its `Function` dimension: `converter` or `compactor`.
    pub function: &'static str,
    /// CloudWatch unit.
    pub unit: &'static str,
    /// What it counts or measures, in one sentence.
    pub description: &'static str,
}

/// Every metric Inlet emits, the converter's first. `docs/readme_lists.py` reads this list as
/// text: keep every field a plain string literal.
pub const METRICS: &[MetricDoc] = &[
    MetricDoc {
        name: "Objects",
        function: "converter",
        unit: "Count",
        description: "Objects ingested: rows staged, lines quarantined, or both.",
    },
    MetricDoc { name: "Rows", function: "converter", unit: "Count", description: "Rows staged." },
    MetricDoc {
        name: "QuarantinedLines",
        function: "converter",
        unit: "Count",
        description: "Lines refused (bad JSON, values that do not fit the schema) and kept, with their source key, \
            line number and reason, under the table's `_inlet/quarantine/`.",
    },
    MetricDoc {
        name: "FailedMessages",
        function: "converter",
        unit: "Count",
        description: "Messages failed (an object unreadable, corrupt, over a limit or gone; the table not writable): \
            SQS delivers them again, and after `max_receive_count` receives moves them to the DLQ.",
    },
    MetricDoc {
        name: "TableUnavailable",
        function: "converter",
        unit: "Count",
        description: "Of the failed messages, those failed unread because the table could not be set up (its schema \
            missing or invalid); the other tables go on, and the table is set up again every 20 s.",
    },
    MetricDoc {
        name: "SupersededVersions",
        function: "converter",
        unit: "Count",
        description: "Notified object versions overwritten or deleted before they were read, so never ingested; each \
            is recorded under `_inlet/superseded/`.",
    },
    MetricDoc {
        name: "IsolatedMessages",
        function: "converter",
        unit: "Count",
        description: "Messages delivered a second time in a batch of several, moved to the isolation queue to be \
            converted one per invocation.",
    },
    MetricDoc { name: "Fragments", function: "converter", unit: "Count", description: "Parquet fragments staged." },
    MetricDoc { name: "BytesIn", function: "converter", unit: "Bytes", description: "Uncompressed bytes decoded." },
    MetricDoc {
        name: "BytesOut",
        function: "converter",
        unit: "Bytes",
        description: "Bytes of the Parquet fragments staged.",
    },
    MetricDoc {
        name: "Duration",
        function: "converter",
        unit: "Milliseconds",
        description: "Wall time of the invocation.",
    },
    MetricDoc {
        name: "FreshnessLag",
        function: "compactor",
        unit: "Seconds",
        description: "Age of the oldest staged fragment when the run started.",
    },
    MetricDoc {
        name: "FragmentsConsumed",
        function: "compactor",
        unit: "Count",
        description: "Fragments merged into table files and deleted.",
    },
    MetricDoc {
        name: "FragmentsDeferred",
        function: "compactor",
        unit: "Count",
        description: "Fragments left staged: small and fresh, held for the schema, or holding a copy of a source not \
            complete yet.",
    },
    MetricDoc {
        name: "FragmentsHeldForSchema",
        function: "compactor",
        unit: "Count",
        description: "Of the deferred fragments, those carrying a column that cannot join the table (not nullable, no \
            exact Delta type, or typed two ways): they wait staged for the declared schema to be fixed.",
    },
    MetricDoc {
        name: "CorruptFragments",
        function: "compactor",
        unit: "Count",
        description: "Staged files that could not be read as fragments, set aside under `_inlet/corrupt/`.",
    },
    MetricDoc { name: "RowsCommitted", function: "compactor", unit: "Count", description: "Rows committed." },
    MetricDoc {
        name: "DuplicateRowsDropped",
        function: "compactor",
        unit: "Count",
        description: "Rows dropped because the table holds their source already, or from another copy the run commits.",
    },
    MetricDoc {
        name: "UncommittedRowsDropped",
        function: "compactor",
        unit: "Count",
        description: "Rows deleted uncommitted from copies never to be committed (a failed or incomplete copy), each \
            named under `_inlet/dropped/`; SQS delivers their messages again.",
    },
    MetricDoc {
        name: "StrandedSources",
        function: "compactor",
        unit: "Count",
        description: "Sources kept staged because a sealed batch lost a fragment of their copy: never committed \
            incomplete, they wait for `inlet backfill`.",
    },
    MetricDoc {
        name: "UnsealedFragments",
        function: "compactor",
        unit: "Count",
        description: "Fragments of converter batches not sealed yet (their converter may still be running).",
    },
    MetricDoc {
        name: "AbandonedRows",
        function: "compactor",
        unit: "Count",
        description: "Rows of converter batches voided as abandoned (never sealed), deleted uncommitted; SQS delivers \
            their messages again.",
    },
    MetricDoc {
        name: "FilesWritten",
        function: "compactor",
        unit: "Count",
        description: "Parquet files added to the table.",
    },
    MetricDoc {
        name: "BytesWritten",
        function: "compactor",
        unit: "Bytes",
        description: "Bytes of Parquet added to the table.",
    },
    MetricDoc {
        name: "CommitVersion",
        function: "compactor",
        unit: "None",
        description: "The table version the run created, -1 when it committed nothing: every run that ends reports it, \
            so the heartbeat alarm counts runs by it.",
    },
    MetricDoc {
        name: "SmallFilesOptimized",
        function: "compactor",
        unit: "Count",
        description: "Small table files rewritten after the commit, when that was due or asked for.",
    },
    MetricDoc {
        name: "FilesVacuumed",
        function: "compactor",
        unit: "Count",
        description: "Unreferenced data files vacuumed, when asked for.",
    },
    MetricDoc {
        name: "HistoryRebuildFilesLeft",
        function: "compactor",
        unit: "Count",
        description: "Data files a load history rebuild still has to read; 0 but while one runs, which commits \
            nothing.",
    },
    MetricDoc {
        name: "CompletenessLag",
        function: "compactor",
        unit: "Seconds",
        description: "For a table partitioned by date (or hour): how long ago the last window declared complete ended; \
            a day's table settles near a day plus `INLET_COMPLETE_SETTLE_SECONDS`, and more means a window waits.",
    },
    MetricDoc {
        name: "LateCommits",
        function: "compactor",
        unit: "Count",
        description: "Windows already declared complete that a run's commit added rows to (objects written after \
            their window closed and settled); each is recorded under `_inlet/complete/late/<window>/`.",
    },
    MetricDoc {
        name: "CompactionFailed",
        function: "compactor",
        unit: "Count",
        description: "1 for a table whose compaction failed, else 0: each table of a deployment compacts, fails and \
            alarms on its own, its rows waiting staged.",
    },
    MetricDoc {
        name: "UnaccountedObjects",
        function: "compactor",
        unit: "Count",
        description: "Object versions a scheduled reconciliation found written under the table's reconcile prefixes in \
            its window that the pipeline never heard of (no commit, staged fragment, quarantine, superseded or failure \
            record); renotified when the reconciliation is set to.",
    },
    MetricDoc {
        name: "ReconciledObjects",
        function: "compactor",
        unit: "Count",
        description: "Object versions a scheduled reconciliation accounted for in its window.",
    },
];

/// Metrics declared to CloudWatch even when 0: every metric an alarm of the Terraform module
/// reads (an alarm over one metric clears on a 0; a missing point would leave it in alarm until
/// the failing one ages out of CloudWatch's evaluation range), and `CommitVersion`, by whose
/// samples the heartbeat alarm counts compactor runs (version 0 is a commit).
pub const DECLARED_WHEN_ZERO: &[&str] = &[
    "Rows",
    "QuarantinedLines",
    "FailedMessages",
    "TableUnavailable",
    "SupersededVersions",
    "FreshnessLag",
    "FragmentsHeldForSchema",
    "StrandedSources",
    "AbandonedRows",
    "CommitVersion",
    "HistoryRebuildFilesLeft",
    "CompactionFailed",
    "UnaccountedObjects",
];

/// Builds the EMF document for `metrics` of `function` acting on `table`, at `timestamp_ms`.
///
/// Every value is in the line, but only those that are not 0 (and [`DECLARED_WHEN_ZERO`]) are
/// declared as metrics: CloudWatch bills a custom metric for each hour it receives a value, so
/// counters of rare events that no alarm reads cost nothing while nothing happens. The
/// undeclared values stay in the log for queries; a line that declares none is a plain log line.
pub fn emf_document(function: &str, table: &str, metrics: &[Metric], timestamp_ms: i64) -> Value {
    let definitions: Vec<Value> = metrics
        .iter()
        .filter(|m| m.value != 0.0 || DECLARED_WHEN_ZERO.contains(&m.name))
        .map(|m| json!({"Name": m.name, "Unit": m.unit}))
        .collect();
    let mut document = Map::new();
    if !definitions.is_empty() {
        document.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Function", "Table"]],
                    "Metrics": definitions,
                }],
            }),
        );
    }
    document.insert("Function".into(), json!(function));
    document.insert("Table".into(), json!(table));
    for metric in metrics {
        document.insert(metric.name.into(), json!(metric.value));
    }
    Value::Object(document)
}

/// Prints the EMF line for `metrics` now.
pub fn emit(function: &str, table: &str, metrics: &[Metric]) {
    println!("{}", emf_document(function, table, metrics, chrono::Utc::now().timestamp_millis()));
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn emf_document_declares_every_metric_with_its_value() {
        let metrics = [
            Metric { name: "Objects", value: 3.0, unit: "Count" },
            Metric { name: "BytesIn", value: 1024.0, unit: "Bytes" },
        ];
        let document = emf_document("converter", "s3://lake/events", &metrics, 1_700_000_000_000);
        assert_eq!(document["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Inlet");
        assert_eq!(document["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Name"], "BytesIn");
        assert_eq!(document["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][1], "Table");
        assert_eq!(document["Objects"], 3.0);
        assert_eq!(document["BytesIn"], 1024.0);
        assert_eq!(document["Function"], "converter");
        assert_eq!(document["_aws"]["Timestamp"], 1_700_000_000_000i64);
    }

    #[test]
    fn zero_values_stay_in_the_line_but_are_not_declared_as_metrics() {
        let metrics = [
            Metric { name: "Rows", value: 0.0, unit: "Count" },
            Metric { name: "BytesIn", value: 10.0, unit: "Bytes" },
            Metric { name: "IsolatedMessages", value: 0.0, unit: "Count" },
            Metric { name: "LateCommits", value: -0.0, unit: "Count" },
            Metric { name: "CommitVersion", value: 0.0, unit: "None" },
            Metric { name: "CompactionFailed", value: 0.0, unit: "Count" },
        ];
        let document = emf_document("compactor", "s3://lake/events", &metrics, 1_700_000_000_000);
        let declared: Vec<&str> = document["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|definition| definition["Name"].as_str().unwrap())
            .collect();
        assert_eq!(declared, ["Rows", "BytesIn", "CommitVersion", "CompactionFailed"]);
        for metric in &metrics {
            assert_eq!(document[metric.name], metric.value, "{} is in the line", metric.name);
        }
        let quiet = [Metric { name: "DuplicateRowsDropped", value: 0.0, unit: "Count" }];
        let plain = emf_document("compactor", "s3://lake/events", &quiet, 1_700_000_000_000);
        assert!(plain.get("_aws").is_none(), "no directive declaring nothing: {plain}");
        assert_eq!(plain["DuplicateRowsDropped"], 0.0);
    }

    #[test]
    fn every_metric_an_alarm_reads_is_declared_when_zero() {
        // Every `metric = "X"` or `metric_name = "X"` (any spacing) of the module's files: the
        // per-table alarms, the heartbeat's metric math, and any alarm added beside them.
        let module = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/modules/inlet"));
        let mut read = Vec::new();
        for entry in std::fs::read_dir(&module).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|extension| extension != "tf") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for segment in text.lines().flat_map(|line| line.split([',', '{'])) {
                let Some((key, value)) = segment.split_once('=') else { continue };
                let value = value.trim();
                if matches!(key.trim(), "metric" | "metric_name") && value.starts_with('"') {
                    read.push(value.trim_matches('"').to_string());
                }
            }
        }
        let ours: Vec<String> = read.into_iter().filter(|name| METRICS.iter().any(|doc| doc.name == name)).collect();
        assert!(ours.len() >= 13, "the alarms read {ours:?}");
        for name in ours {
            assert!(DECLARED_WHEN_ZERO.contains(&name.as_str()), "an alarm reads {name}: declare it when 0");
        }
        for name in DECLARED_WHEN_ZERO {
            assert!(METRICS.iter().any(|doc| doc.name == *name), "{name} is a documented metric");
        }
    }

    #[test]
    fn every_emitted_metric_is_documented() {
        let emitted = emitted_metrics();
        for (name, unit) in &emitted {
            let doc = METRICS.iter().find(|doc| doc.name == name.as_str());
            let doc = doc.unwrap_or_else(|| panic!("{name} is emitted but missing from METRICS"));
            if let Some(unit) = unit {
                assert_eq!(doc.unit, unit.as_str(), "{name}: METRICS gives another unit than the code emits");
            }
        }
        for doc in METRICS {
            let name = doc.name;
            let constructed = emitted.iter().any(|(emitted_name, _)| emitted_name.as_str() == name);
            assert!(constructed, "{name} is in METRICS but constructed nowhere");
            assert!(["converter", "compactor"].contains(&doc.function), "{name}: no function {}", doc.function);
            assert_eq!(METRICS.iter().filter(|other| other.name == name).count(), 1, "{name} is listed twice");
        }
    }

    /// The name and unit of every metric the crate's sources construct, tests included.
    fn emitted_metrics() -> Vec<(String, Option<String>)> {
        let mut emitted = Vec::new();
        let mut folders = vec![PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    folders.push(path);
                } else if path.extension().is_some_and(|extension| extension == "rs") {
                    emitted.extend(metrics_constructed_in(&std::fs::read_to_string(&path).unwrap()));
                }
            }
        }
        emitted
    }

    /// Each `Metric` struct literal of `source` whose name is a string literal: its name, and its
    /// unit when that is a string literal too.
    fn metrics_constructed_in(source: &str) -> Vec<(String, Option<String>)> {
        const OPENING: &str = "Metric {";
        let mut found = Vec::new();
        for (at, _) in source.match_indices(OPENING) {
            // `MetricDoc {` does not match; `SomeMetric {` would.
            if source[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let body = &source[at + OPENING.len()..];
            let body = &body[..body.find('}').unwrap_or(body.len())];
            if let Some(name) = string_field(body, "name") {
                found.push((name, string_field(body, "unit")));
            }
        }
        found
    }

    /// The string literal a struct literal's `field` is set to, if it is one.
    fn string_field(body: &str, field: &str) -> Option<String> {
        body.split(',').find_map(|part| {
            let value = part.trim_start().strip_prefix(field)?.trim_start().strip_prefix(':')?;
            let text = value.trim_start().strip_prefix('"')?;
            text.split_once('"').map(|(text, _)| text.to_owned())
        })
    }
}
