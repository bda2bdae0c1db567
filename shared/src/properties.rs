//! The Delta table properties a deployment keeps on each of its tables: the log settings
//! (`INLET_CHECKPOINT_INTERVAL`, `INLET_LOG_RETENTION_DAYS`) and any others
//! `INLET_TABLE_PROPERTIES` names. A table is created with them, and the compactor sets the
//! ones that differ with a metadata commit, so a changed setting reaches existing tables.

use std::collections::{BTreeMap, HashMap};

use crate::config::Maintenance;
use crate::error::{Error, Result};

/// Commits between checkpoints.
pub const CHECKPOINT_INTERVAL: &str = "delta.checkpointInterval";
/// How long commit files are kept.
pub const LOG_RETENTION: &str = "delta.logRetentionDuration";

/// The other properties a deployment may keep, and what each is for. Only these: the rest
/// change how a table must be written (append-only, column mapping, change data feed,
/// deletion vectors, constraints, protocol features), how commits conflict or expire (isolation
/// level, transaction retention, log cleanup, which Inlet runs itself once its load history has
/// read the commits), or where files go, all of which Inlet's writers rely on; a name delta-rs
/// does not know would make it refuse to create the table.
const ALLOWED: &[(&str, &str)] = &[
    ("delta.dataSkippingNumIndexedCols", "leading columns with statistics (-1: all)"),
    (
        "delta.dataSkippingStatsColumns",
        "the columns with statistics (compaction then re-encodes rows: no row-group copy)",
    ),
    ("delta.deletedFileRetentionDuration", "how long vacuum keeps removed files (at least a day)"),
    ("delta.targetFileSize", "file size for other engines' writers and OPTIMIZE"),
    ("delta.tuneFileSizesForRewrites", "a hint to other engines' writers"),
    ("delta.autoOptimize.autoCompact", "a hint to other engines' writers"),
    ("delta.autoOptimize.optimizeWrite", "a hint to other engines' writers"),
    ("delta.checkpoint.writeStatsAsJson", "statistics in checkpoints as JSON"),
    ("delta.checkpoint.writeStatsAsStruct", "statistics in checkpoints as structs"),
];

/// Why `value` cannot be `name`'s, if it cannot: vacuum deletes unreferenced files older
/// than the retention, so a short one could delete files a compaction is about to commit.
fn value_problem(name: &str, value: &str) -> Option<String> {
    match name {
        "delta.deletedFileRetentionDuration" => {
            let mut words = value.split_whitespace();
            let days = (words.next() == Some("interval"))
                .then(|| words.next()?.parse::<u64>().ok())
                .flatten()
                .filter(|count| *count >= 1)
                .zip(words.next())
                .filter(|(_, unit)| matches!(*unit, "day" | "days" | "week" | "weeks"));
            (days.is_none() || words.next().is_some())
                .then(|| format!("{value:?} is not \"interval <n> days\" (or weeks) of at least a day"))
        }
        "delta.dataSkippingNumIndexedCols" => (value.trim().parse::<i64>().ok().filter(|count| *count >= -1).is_none())
            .then(|| format!("{value:?} is not a count of columns (or -1)")),
        _ if value.trim().is_empty() => Some("no value".to_string()),
        _ => None,
    }
}

/// Properties by name, as the table's metadata keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableProperties(BTreeMap<String, String>);

impl TableProperties {
    /// The log settings of `maintenance`, then `others` (checked by [`parse_setting`]).
    pub fn wanted(maintenance: Maintenance, others: &BTreeMap<String, String>) -> Self {
        let mut properties = others.clone();
        properties.insert(CHECKPOINT_INTERVAL.to_string(), maintenance.checkpoint_interval.to_string());
        properties.insert(LOG_RETENTION.to_string(), format!("interval {} days", maintenance.log_retention_days));
        Self(properties)
    }

    /// Each property and its value, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }

    /// The properties `configuration` (a table's) lacks or holds another value of: (name,
    /// the table's value, the wanted one).
    pub fn drift(&self, configuration: &HashMap<String, String>) -> Vec<(String, Option<String>, String)> {
        self.0
            .iter()
            .filter(|(name, value)| configuration.get(*name) != Some(*value))
            .map(|(name, value)| (name.clone(), configuration.get(name).cloned(), value.clone()))
            .collect()
    }
}

impl From<Maintenance> for TableProperties {
    /// The log settings of `maintenance` and nothing else.
    fn from(maintenance: Maintenance) -> Self {
        Self::wanted(maintenance, &BTreeMap::new())
    }
}

impl Default for TableProperties {
    /// The log settings at their defaults and nothing else.
    fn default() -> Self {
        Self::wanted(Maintenance::default(), &BTreeMap::new())
    }
}

/// `INLET_TABLE_PROPERTIES`: a JSON object of properties of [`ALLOWED`] and their values as
/// strings (`{"delta.dataSkippingNumIndexedCols": "8"}`).
pub fn parse_setting(value: Option<&str>) -> Result<BTreeMap<String, String>> {
    let Some(value) = value else { return Ok(BTreeMap::new()) };
    let refuse = |why: String| Error::Config(format!("INLET_TABLE_PROPERTIES: {why}"));
    let properties: BTreeMap<String, String> = serde_json::from_str(value).map_err(|err| {
        refuse(format!("{err}; write a JSON object of strings, e.g. {{\"delta.dataSkippingNumIndexedCols\": \"8\"}}"))
    })?;
    for (name, value) in &properties {
        if name == CHECKPOINT_INTERVAL || name == LOG_RETENTION {
            return Err(refuse(format!(
                "{name} has a setting of its own: INLET_CHECKPOINT_INTERVAL or INLET_LOG_RETENTION_DAYS"
            )));
        }
        if !ALLOWED.iter().any(|(allowed, _)| allowed == name) {
            let allowed: Vec<String> = ALLOWED.iter().map(|(name, what)| format!("{name} ({what})")).collect();
            return Err(refuse(format!(
                "{name:?} cannot be kept on an Inlet table; the properties that can: {}",
                allowed.join(", ")
            )));
        }
        if let Some(problem) = value_problem(name, value) {
            return Err(refuse(format!("{name}: {problem}")));
        }
    }
    Ok(properties)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_names_delta_properties_other_than_the_log_settings_and_the_writing_ones() {
        let read = parse_setting(Some(
            r#"{"delta.dataSkippingNumIndexedCols": "-1", "delta.targetFileSize": "256mb",
                "delta.deletedFileRetentionDuration": "interval 2 weeks"}"#,
        ));
        assert_eq!(read.unwrap().len(), 3);
        assert!(parse_setting(None).unwrap().is_empty());
        for (value, expected) in [
            (r#"{"dataSkippingNumIndexedCols": "8"}"#, "the properties that can: delta.dataSkippingNumIndexedCols"),
            (r#"{"delta.checkpointInterval": "8"}"#, "INLET_CHECKPOINT_INTERVAL"),
            (r#"{"delta.appendOnly": "true"}"#, "cannot be kept on an Inlet table"),
            (r#"{"delta.columnMapping.mode": "name"}"#, "cannot be kept"),
            (r#"{"delta.enableExpiredLogCleanup": "false"}"#, "cannot be kept"),
            (r#"{"delta.setTransactionRetentionDuration": "interval 1 days"}"#, "cannot be kept"),
            (r#"{"delta.enableInCommitTimestamps": "true"}"#, "cannot be kept"),
            (r#"{"delta.deletedFileRetentionDuration": "interval 5 minutes"}"#, "at least a day"),
            (r#"{"delta.deletedFileRetentionDuration": "interval 0 days"}"#, "at least a day"),
            (r#"{"delta.deletedFileRetentionDuration": "interval 2 days later"}"#, "at least a day"),
            (r#"{"delta.dataSkippingNumIndexedCols": "all"}"#, "not a count of columns"),
            (r#"{"delta.targetFileSize": " "}"#, "no value"),
            (r#"{"delta.targetFileSize": 8}"#, "JSON object of strings"),
            ("[]", "JSON object of strings"),
        ] {
            let err = parse_setting(Some(value)).unwrap_err().to_string();
            assert!(err.contains("INLET_TABLE_PROPERTIES") && err.contains(expected), "{value}: {err}");
        }
    }

    #[test]
    fn the_wanted_properties_are_the_log_settings_and_the_others_and_drift_is_what_differs() {
        let maintenance = Maintenance { checkpoint_interval: 10, log_retention_days: 7 };
        let others = BTreeMap::from([("delta.dataSkippingNumIndexedCols".to_string(), "8".to_string())]);
        let wanted = TableProperties::wanted(maintenance, &others);
        let names: Vec<&String> = wanted.iter().map(|(name, _)| name).collect();
        assert_eq!(names, [CHECKPOINT_INTERVAL, "delta.dataSkippingNumIndexedCols", LOG_RETENTION]);
        let table = HashMap::from([
            (CHECKPOINT_INTERVAL.to_string(), "10".to_string()),
            (LOG_RETENTION.to_string(), "interval 30 days".to_string()),
            ("delta.enableExpiredLogCleanup".to_string(), "true".to_string()),
        ]);
        assert_eq!(
            wanted.drift(&table),
            vec![
                ("delta.dataSkippingNumIndexedCols".to_string(), None, "8".to_string()),
                (LOG_RETENTION.to_string(), Some("interval 30 days".to_string()), "interval 7 days".to_string()),
            ]
        );
    }
}
