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

/// Builds the EMF document for `metrics` of `function` acting on `table`, at `timestamp_ms`.
pub fn emf_document(function: &str, table: &str, metrics: &[Metric], timestamp_ms: i64) -> Value {
    let definitions: Vec<Value> = metrics.iter().map(|m| json!({"Name": m.name, "Unit": m.unit})).collect();
    let mut document = Map::new();
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
}
