//! Settings, read from environment variables with documented defaults and validated at cold start.

use std::collections::{BTreeMap, HashMap};

use crate::error::{Error, Result};
use crate::properties::TableProperties;
use crate::schema::Layout;

/// One documented setting: its environment variable, default and meaning.
#[derive(Debug, Clone, Copy)]
pub struct SettingDoc {
    /// Environment variable read by the Lambdas and the CLI.
    pub env: &'static str,
    /// Default when unset (`None`: required).
    pub default: Option<&'static str>,
    /// What it controls.
    pub description: &'static str,
}

/// Every setting Inlet reads; the README's configuration table lists each one.
pub const SETTINGS: &[SettingDoc] = &[
    SettingDoc {
        env: "INLET_TABLE_URI",
        default: None,
        description: "Delta table location (`s3://lake/events`, `file:///...`); fragments stage under `<uri>/_inlet/`. Required unless `INLET_ROUTES` is set.",
    },
    SettingDoc {
        env: "INLET_ROUTES",
        default: None,
        description: "Routing file for several tables in one deployment (a path, relative to `LAMBDA_TASK_ROOT`, or `s3://bucket/key`): routes of key prefix to table, schema and partitioning. When set, `INLET_TABLE_URI`, `INLET_SCHEMA` and `INLET_PARTITION_BY` come from each route; see docs/design.md.",
    },
    SettingDoc {
        env: "INLET_SCHEMA",
        default: Some("schema.json"),
        description: "Declared schema file: a local path (relative paths resolve against `LAMBDA_TASK_ROOT`) or `s3://bucket/key`.",
    },
    SettingDoc {
        env: "INLET_TARGET_FILE_BYTES",
        default: Some("268435456"),
        description: "Target size of the Parquet files the compactor commits.",
    },
    SettingDoc {
        env: "INLET_FRAGMENT_BYTES",
        default: Some("134217728"),
        description: "Arrow bytes the converter's open fragment writers hold together (one per partition) before the fullest is staged as a fragment (bounds its memory).",
    },
    SettingDoc {
        env: "INLET_MAX_LINE_BYTES",
        default: Some("1048576"),
        description: "Longest accepted NDJSON line; longer lines are quarantined.",
    },
    SettingDoc {
        env: "INLET_MAX_OBJECT_BYTES",
        default: Some("8589934592"),
        description: "Most bytes an object may decompress to; a larger one (a decompression bomb) fails alone, with a reason naming this limit (DLQ), and reading stops there.",
    },
    SettingDoc {
        env: "INLET_MAX_OBJECT_LINES",
        default: Some("200000000"),
        description: "Most lines an object may hold; a longer one fails alone, as above.",
    },
    SettingDoc {
        env: "INLET_PIECE_BYTES",
        default: Some("16777216"),
        description: "Decompressed bytes of an object the converter decodes at once, and the most its decoded rows may hold: a larger object, or one that decodes to more, is read in pieces of this size (whole lines) decoded in steps of this size, one such object at a time, so no object sets the converter's memory.",
    },
    SettingDoc {
        env: "INLET_DEADLINE_MARGIN_SECONDS",
        default: Some("20"),
        description: "The converter stops taking objects this long before its invocation's deadline (at most a quarter of its time), seals what it staged and fails the unfinished objects' messages for redelivery, instead of timing out with the whole batch.",
    },
    SettingDoc {
        env: "INLET_UNKNOWN_FIELDS",
        default: Some("ignore"),
        description: "`ignore` top-level fields the schema does not declare, or `rescue` them, and top-level values that do not fit their nullable column, as raw JSON in the `_rescued` column.",
    },
    SettingDoc {
        env: "INLET_INGESTED_AT",
        default: Some("false"),
        description: "`true` adds an `_ingested_at` timestamp column: when the converter decoded the row.",
    },
    SettingDoc {
        env: "INLET_FRAMING",
        default: Some("ndjson"),
        description: "How records are laid out in an object: `ndjson` (one JSON object per line), `concatenated` (JSON objects one after another, as Firehose writes them), `array` (one top-level array) or `array:<key>` (the array under a key of one top-level object, `array:Records` for CloudTrail). Each record is read as a line: its position is its line number in the quarantine.",
    },
    SettingDoc {
        env: "INLET_PARTITION_BY",
        default: Some("(none)"),
        description: "Comma-separated `<column>=<source>`, the source `key`, `key:date` or `key:integer` (a `<column>=value` key segment), `date(<field>)`, `hour(<field>)` (a timestamp's UTC date or hour), `value(<field>)` (a field's value) or `<field>` (a timestamp's UTC date as text).",
    },
    SettingDoc {
        env: "INLET_MIN_COMPACT_BYTES",
        default: Some("67108864"),
        description: "A scheduled compaction leaves a partition with fewer staged bytes than this to grow (on-demand runs take everything)...",
    },
    SettingDoc {
        env: "INLET_FRESHNESS_SECONDS",
        default: Some("60"),
        description: "...until its oldest fragment is this old: the bound on how long rows wait in staging.",
    },
    SettingDoc {
        env: "INLET_OPTIMIZE_MIN_FILES",
        default: Some("16"),
        description: "After committing, the compactor rewrites a partition's small table files (under half the target size) into target-sized ones once it holds this many; `0` only when a request asks (`optimize`).",
    },
    SettingDoc {
        env: "INLET_ABANDON_AFTER_SECONDS",
        default: Some("900"),
        description: "Age after which the compactor voids a converter batch that is still unsealed and deletes its fragments; the converter, if still running, then fails its messages for SQS to redeliver (keep above the converter timeout to avoid redone work; no setting can lose rows).",
    },
    SettingDoc {
        env: "INLET_HISTORY_REBUILD_SECONDS",
        default: Some("600"),
        description: "Most time one compactor run spends rebuilding a lost load history index from the table's lineage columns; it then saves its progress and stops, fragments held back, and the next run continues. Keep it under the compactor timeout with a few minutes to spare.",
    },
    SettingDoc {
        env: "INLET_HISTORY_REBUILD_SAVE_FILES",
        default: Some("1000"),
        description: "Data files a load history rebuild reads between saves of its progress (it also saves every 30 s): the most a killed rebuild reads again.",
    },
    SettingDoc {
        env: "INLET_CHECKPOINT_INTERVAL",
        default: Some("100"),
        description: "Commits between Delta checkpoints (`delta.checkpointInterval`), kept on the table: set when the compactor creates it, and by the compactor's next run after a change.",
    },
    SettingDoc {
        env: "INLET_LOG_RETENTION_DAYS",
        default: Some("30"),
        description: "Days Delta keeps commit files before log cleanup (`delta.logRetentionDuration`), kept on the table as INLET_CHECKPOINT_INTERVAL is.",
    },
    SettingDoc {
        env: "INLET_TABLE_PROPERTIES",
        default: Some("(none)"),
        description: "Other Delta table properties kept on the table as INLET_CHECKPOINT_INTERVAL is, as a JSON object of strings (`{\"delta.dataSkippingNumIndexedCols\": \"8\", \"delta.deletedFileRetentionDuration\": \"interval 7 days\"}`): data skipping, deleted-file retention (at least a day), file size hints and checkpoint statistics; properties that change how the table must be written, how commits conflict or expire, or where files go are refused.",
    },
    SettingDoc {
        env: "INLET_ISOLATION_QUEUE_URL",
        default: Some("(none)"),
        description: "Queue the converter moves messages delivered more than once to (in a batch of several), to be converted one per invocation, so an object that kills the converter fails alone.",
    },
    SettingDoc {
        env: "INLET_COMMIT_QUEUE_URL",
        default: Some("(none)"),
        description: "FIFO queue the converter announces each sealed batch on (message group: the table), for the compactor to commit it within seconds, one run per table at a time and tables in parallel; unset, commits follow the schedule and the size trigger.",
    },
    SettingDoc {
        env: "INLET_COMPACTOR_FUNCTION",
        default: Some("(none)"),
        description: "Compactor function the converter invokes (asynchronously) once a target file's worth of bytes is staged.",
    },
    SettingDoc {
        env: "INLET_RECONCILE_PREFIXES",
        default: Some("(none)"),
        description: "Raw prefixes the compactor's scheduled reconciliation lists for this table, comma-separated `s3://bucket/prefix` templates where `{date}` (YYYY-MM-DD, required) and `{hour}` (HH) stand for each UTC date and hour of the window (`s3://raw/web/date={date}/`), so a run lists its window, not the bucket's history; unset, the table is not reconciled on a schedule.",
    },
    SettingDoc {
        env: "INLET_QUEUE_URL",
        default: Some("(none)"),
        description: "Ingest queue the compactor's scheduled reconciliation sends unaccounted objects to (when it renotifies), as `inlet backfill` and `inlet dlq redrive` do.",
    },
    SettingDoc {
        env: "INLET_COMPLETE_QUEUE_URLS",
        default: Some("(none)"),
        description: "Queues whose counters the compactor reads before it declares a time window complete (comma-separated: the ingest and isolation queues): no backlog, and the window closed longer ago than a message can stay unanswered; unset, only the settle time and the staged fragments count.",
    },
    SettingDoc {
        env: "INLET_COMPLETE_SETTLE_SECONDS",
        default: Some("900"),
        description: "How long after a day (or hour, for a table partitioned by `hour(…)`) ends the compactor waits for stragglers before it can declare the window complete (at least as long as the ingest queue can hold an unanswered message); see docs/design.md, Partition completeness.",
    },
    SettingDoc {
        env: "INLET_DOWNLOAD_CONCURRENCY",
        default: Some("16"),
        description: "Source objects the converter downloads at once (an object stored larger than a quarter of INLET_PIECE_BYTES is streamed instead).",
    },
    SettingDoc {
        env: "INLET_DECODE_BATCH_ROWS",
        default: Some("1024"),
        description: "Rows per Arrow record batch when decoding NDJSON.",
    },
    SettingDoc {
        env: "INLET_LOG_FORMAT",
        default: Some("json in Lambda, text elsewhere"),
        description: "`json` or `text` log lines; `RUST_LOG` sets the level (default `info`).",
    },
];

/// Validated settings shared by the converter, the compactor and the CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Delta table location.
    pub table_uri: String,
    /// Where the declared schema file lives.
    pub schema_location: String,
    /// Target size of compacted files, in bytes.
    pub target_file_bytes: u64,
    /// Concurrent source downloads per converter invocation.
    pub download_concurrency: usize,
    /// Rows per decoded record batch.
    pub decode_batch_rows: usize,
    /// Arrow bytes buffered per partition before a fragment is staged.
    pub fragment_bytes: usize,
    /// Longest accepted line.
    pub max_line_bytes: usize,
    /// Most bytes an object may decompress to.
    pub max_object_bytes: u64,
    /// Most lines an object may hold.
    pub max_object_lines: u64,
    /// Seconds before its deadline at which the converter stops taking objects.
    pub deadline_margin_seconds: u64,
    /// Decompressed bytes of an object decoded at once.
    pub piece_bytes: usize,
    /// Partition columns and the rescue column.
    pub layout: Layout,
    /// Seconds before an incomplete fragment is taken as abandoned.
    pub abandon_after_seconds: u64,
    /// Staged bytes below which a partition waits to grow.
    pub min_compact_bytes: u64,
    /// Longest a fragment waits in staging for its partition to grow.
    pub freshness_seconds: u64,
    /// Small table files per partition that trigger a rewrite (0: on request only).
    pub optimize_min_files: usize,
    /// Most seconds a compactor run spends rebuilding the load history index.
    pub history_rebuild_seconds: u64,
    /// Data files a load history rebuild reads between saves of its progress.
    pub history_rebuild_save_files: usize,
    /// Checkpoint interval and log retention kept on the table.
    pub maintenance: Maintenance,
    /// Other Delta table properties kept on the table (`INLET_TABLE_PROPERTIES`).
    pub other_table_properties: BTreeMap<String, String>,
    /// Compactor function for the size trigger.
    pub compactor_function: Option<String>,
    /// Queue of redelivered messages, converted one per invocation.
    pub isolation_queue_url: Option<String>,
    /// FIFO queue sealed batches are announced on, for the compactor to commit them now.
    pub commit_queue_url: Option<String>,
    /// Raw prefix templates a scheduled reconciliation lists (`{date}`, `{hour}`).
    pub reconcile_prefixes: Vec<String>,
    /// How records are laid out in the objects (`INLET_FRAMING`).
    pub framing: crate::framing::Framing,
    /// Queues whose counters partition completeness reads (`INLET_COMPLETE_QUEUE_URLS`).
    pub complete_queue_urls: Vec<String>,
    /// Seconds a closed time window settles before it can be complete.
    pub complete_settle_seconds: u64,
}

impl Settings {
    /// Reads settings from the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let table_uri = get("INLET_TABLE_URI")
            .ok_or_else(|| Error::Config("INLET_TABLE_URI is required (e.g. s3://lake/events)".into()))?;
        let table_uri = table_uri.trim_end_matches('/').to_string();
        url_of(&table_uri)?;
        let schema_location = get("INLET_SCHEMA").unwrap_or_else(|| default_of("INLET_SCHEMA").into());
        let schema_location = match get("LAMBDA_TASK_ROOT") {
            Some(root) if !schema_location.contains("://") && !schema_location.starts_with('/') => {
                format!("{}/{schema_location}", root.trim_end_matches('/'))
            }
            _ => schema_location,
        };
        Ok(Self {
            table_uri,
            schema_location,
            target_file_bytes: parse_positive(&get, "INLET_TARGET_FILE_BYTES")?,
            download_concurrency: parse_positive(&get, "INLET_DOWNLOAD_CONCURRENCY")?,
            decode_batch_rows: parse_positive(&get, "INLET_DECODE_BATCH_ROWS")?,
            fragment_bytes: parse_positive(&get, "INLET_FRAGMENT_BYTES")?,
            max_line_bytes: parse_positive(&get, "INLET_MAX_LINE_BYTES")?,
            max_object_bytes: parse_positive(&get, "INLET_MAX_OBJECT_BYTES")?,
            max_object_lines: parse_positive(&get, "INLET_MAX_OBJECT_LINES")?,
            deadline_margin_seconds: parse_positive(&get, "INLET_DEADLINE_MARGIN_SECONDS")?,
            piece_bytes: parse_positive(&get, "INLET_PIECE_BYTES")?,
            abandon_after_seconds: parse_positive(&get, "INLET_ABANDON_AFTER_SECONDS")?,
            min_compact_bytes: parse_positive(&get, "INLET_MIN_COMPACT_BYTES")?,
            freshness_seconds: parse_positive(&get, "INLET_FRESHNESS_SECONDS")?,
            optimize_min_files: parse_count(&get, "INLET_OPTIMIZE_MIN_FILES")?,
            history_rebuild_seconds: parse_positive(&get, "INLET_HISTORY_REBUILD_SECONDS")?,
            history_rebuild_save_files: parse_positive(&get, "INLET_HISTORY_REBUILD_SAVE_FILES")?,
            compactor_function: get("INLET_COMPACTOR_FUNCTION"),
            isolation_queue_url: get("INLET_ISOLATION_QUEUE_URL"),
            commit_queue_url: get("INLET_COMMIT_QUEUE_URL"),
            reconcile_prefixes: parse_reconcile_prefixes(get("INLET_RECONCILE_PREFIXES").as_deref())?,
            framing: get("INLET_FRAMING").as_deref().unwrap_or("ndjson").parse()?,
            complete_queue_urls: get("INLET_COMPLETE_QUEUE_URLS")
                .map(|urls| urls.split(',').map(str::trim).filter(|url| !url.is_empty()).map(str::to_string).collect())
                .unwrap_or_default(),
            complete_settle_seconds: parse_count(&get, "INLET_COMPLETE_SETTLE_SECONDS")? as u64,
            other_table_properties: crate::properties::parse_setting(get("INLET_TABLE_PROPERTIES").as_deref())?,
            maintenance: Maintenance {
                checkpoint_interval: parse_positive(&get, "INLET_CHECKPOINT_INTERVAL")?,
                log_retention_days: parse_positive(&get, "INLET_LOG_RETENTION_DAYS")?,
            },
            layout: Layout {
                partition: get("INLET_PARTITION_BY").map(|spec| spec.parse()).transpose()?,
                ingested_at: match get("INLET_INGESTED_AT").as_deref().map(str::trim) {
                    None | Some("false") => false,
                    Some("true") => true,
                    Some(other) => {
                        return Err(Error::Config(format!("INLET_INGESTED_AT must be true or false, got {other:?}")));
                    }
                },
                rescue_unknown_fields: match get("INLET_UNKNOWN_FIELDS").as_deref().map(str::trim) {
                    None | Some("ignore") => false,
                    Some("rescue") => true,
                    Some(other) => {
                        return Err(Error::Config(format!(
                            "INLET_UNKNOWN_FIELDS must be ignore or rescue, got {other:?}"
                        )));
                    }
                },
            },
        })
    }

    /// Every setting at its documented default, the table left as `memory:///`: what the
    /// options of the converter, compactor and optimizer default to, so no default is typed twice.
    pub fn defaults() -> Self {
        Self::from_lookup(|name| (name == "INLET_TABLE_URI").then(|| "memory:///".to_string()))
            .expect("the documented defaults are valid settings")
    }

    /// The table location as a URL.
    pub fn table_url(&self) -> Result<url::Url> {
        url_of(&self.table_uri)
    }

    /// The properties kept on the table: the log settings and `INLET_TABLE_PROPERTIES`.
    pub fn table_properties(&self) -> TableProperties {
        TableProperties::wanted(self.maintenance, &self.other_table_properties)
    }
}

/// Log maintenance settings kept on the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Maintenance {
    /// Commits between checkpoints (`delta.checkpointInterval`).
    pub checkpoint_interval: u64,
    /// Days commit files are kept before log cleanup (`delta.logRetentionDuration`).
    pub log_retention_days: u64,
}

impl Default for Maintenance {
    fn default() -> Self {
        Settings::defaults().maintenance
    }
}

/// Whether `env` is a setting Inlet reads (one of [`SETTINGS`]).
pub fn is_setting(env: &str) -> bool {
    SETTINGS.iter().any(|setting| setting.env == env)
}

fn url_of(uri: &str) -> Result<url::Url> {
    url::Url::parse(uri).map_err(|err| Error::Config(format!("INLET_TABLE_URI {uri:?} is not a URL: {err}")))
}

fn default_of(env: &str) -> &'static str {
    SETTINGS.iter().find(|setting| setting.env == env).and_then(|setting| setting.default).unwrap_or_default()
}

/// `s3://bucket/prefix` templates, comma-separated, whose only placeholders are `{date}` and
/// `{hour}`.
fn parse_reconcile_prefixes(value: Option<&str>) -> Result<Vec<String>> {
    let Some(value) = value else { return Ok(Vec::new()) };
    let mut prefixes = Vec::new();
    for template in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let refuse = |why: &str| Error::Config(format!("INLET_RECONCILE_PREFIXES: {template:?} {why}"));
        let rest = template.strip_prefix("s3://").ok_or_else(|| refuse("is not an s3:// prefix"))?;
        if rest.split('/').next().is_none_or(str::is_empty) {
            return Err(refuse("names no bucket"));
        }
        let unknown = rest.replace("{date}", "").replace("{hour}", "");
        if unknown.contains('{') || unknown.contains('}') {
            return Err(refuse("has a placeholder other than {date} and {hour}"));
        }
        // Without a date a run would list everything ever written under the prefix.
        if !rest.contains("{date}") {
            return Err(refuse("has no {date}: a scheduled run must list its window's dates only"));
        }
        prefixes.push(template.to_string());
    }
    Ok(prefixes)
}

fn parse_positive<T>(get: &impl Fn(&str) -> Option<String>, env: &str) -> Result<T>
where
    T: std::str::FromStr + PartialOrd + Default,
{
    let raw = get(env).unwrap_or_else(|| default_of(env).to_string());
    match raw.trim().parse::<T>() {
        Ok(value) if value > T::default() => Ok(value),
        _ => Err(Error::Config(format!("{env} must be a positive integer, got {raw:?}"))),
    }
}

fn parse_count(get: &impl Fn(&str) -> Option<String>, env: &str) -> Result<usize> {
    let raw = get(env).unwrap_or_else(|| default_of(env).to_string());
    raw.trim().parse().map_err(|_| Error::Config(format!("{env} must be a whole number, got {raw:?}")))
}

/// Storage options for delta-rs taken from the standard AWS variables, so the same binary
/// talks to AWS (role credentials) or to LocalStack (`AWS_ENDPOINT_URL`).
pub fn storage_options_from_env() -> HashMap<String, String> {
    let mut options = HashMap::new();
    for name in ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
        if let Ok(value) = std::env::var(name) {
            options.insert(name.to_string(), value);
        }
    }
    if !options.contains_key("AWS_REGION")
        && let Ok(region) = std::env::var("AWS_DEFAULT_REGION")
    {
        options.insert("AWS_REGION".into(), region);
    }
    if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
        if endpoint.starts_with("http://") {
            options.insert("AWS_ALLOW_HTTP".into(), "true".into());
        }
        options.insert("AWS_ENDPOINT_URL".into(), endpoint);
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn reconcile_prefixes_are_s3_templates_of_date_and_hour() {
        let table = ("INLET_TABLE_URI", "s3://lake/events");
        let read = |value| settings(&[table, ("INLET_RECONCILE_PREFIXES", value)]);
        assert_eq!(
            read("s3://raw/web/date={date}/, s3://raw/app/{date}/{hour}/").unwrap().reconcile_prefixes,
            ["s3://raw/web/date={date}/", "s3://raw/app/{date}/{hour}/"]
        );
        assert!(settings(&[table]).unwrap().reconcile_prefixes.is_empty());
        for refused in ["raw/web/", "s3:///web/", "s3://raw/web/{day}/", "s3://raw/{date", "s3://raw/web/{hour}/"] {
            let err = read(refused).unwrap_err().to_string();
            assert!(err.contains("INLET_RECONCILE_PREFIXES"), "{refused}: {err}");
        }
    }

    #[test]
    fn defaults_apply_when_only_the_table_is_set() {
        let settings = settings(&[("INLET_TABLE_URI", "s3://lake/events/")]).unwrap();
        assert_eq!(settings.table_uri, "s3://lake/events");
        assert_eq!(settings.schema_location, "schema.json");
        assert_eq!(settings.target_file_bytes, 256 * 1024 * 1024);
        assert_eq!(settings.download_concurrency, 16);
        assert_eq!(settings.decode_batch_rows, 1024);
        assert_eq!(settings.fragment_bytes, 128 * 1024 * 1024);
        assert_eq!(settings.max_line_bytes, 1024 * 1024);
        assert_eq!((settings.max_object_bytes, settings.max_object_lines), (8 << 30, 200_000_000));
        assert_eq!(settings.piece_bytes, 16 << 20);
        assert_eq!(settings.layout, Layout::default());
    }

    #[test]
    fn layout_settings_parse_and_bad_ones_are_named() {
        let settings = settings(&[
            ("INLET_TABLE_URI", "s3://lake/t"),
            ("INLET_PARTITION_BY", "date=key"),
            ("INLET_UNKNOWN_FIELDS", "rescue"),
        ])
        .unwrap();
        assert_eq!(settings.layout.partition.unwrap().names(), vec!["date".to_string()]);
        assert!(settings.layout.rescue_unknown_fields);
        let err = settings_err(&[("INLET_TABLE_URI", "s3://lake/t"), ("INLET_UNKNOWN_FIELDS", "keep")]);
        assert!(err.contains("INLET_UNKNOWN_FIELDS must be ignore or rescue"), "{err}");
        let err = settings_err(&[("INLET_TABLE_URI", "s3://lake/t"), ("INLET_PARTITION_BY", "date")]);
        assert!(err.contains("INLET_PARTITION_BY"), "{err}");
    }

    fn settings_err(pairs: &[(&str, &str)]) -> String {
        settings(pairs).unwrap_err().to_string()
    }

    #[test]
    fn missing_table_uri_is_a_clear_error() {
        let err = settings(&[]).unwrap_err().to_string();
        assert!(err.contains("INLET_TABLE_URI is required"), "{err}");
    }

    #[test]
    fn malformed_numbers_name_the_variable() {
        let err = settings(&[("INLET_TABLE_URI", "s3://lake/t"), ("INLET_TARGET_FILE_BYTES", "big")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("INLET_TARGET_FILE_BYTES must be a positive integer"), "{err}");
        let err = settings(&[("INLET_TABLE_URI", "s3://lake/t"), ("INLET_DOWNLOAD_CONCURRENCY", "0")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("INLET_DOWNLOAD_CONCURRENCY"), "{err}");
    }

    #[test]
    fn relative_schema_path_resolves_against_the_task_root() {
        let settings = settings(&[("INLET_TABLE_URI", "s3://lake/t"), ("LAMBDA_TASK_ROOT", "/var/task")]).unwrap();
        assert_eq!(settings.schema_location, "/var/task/schema.json");
        let settings = settings_with_schema("s3://config/schema.json");
        assert_eq!(settings.schema_location, "s3://config/schema.json");
    }

    fn settings_with_schema(location: &str) -> Settings {
        settings(&[("INLET_TABLE_URI", "s3://lake/t"), ("LAMBDA_TASK_ROOT", "/var/task"), ("INLET_SCHEMA", location)])
            .unwrap()
    }
}

#[cfg(test)]
mod documentation {
    use super::SETTINGS;

    #[test]
    fn every_setting_has_a_row_in_the_readme() {
        let readme = include_str!("../../README.md");
        for setting in SETTINGS {
            assert!(readme.contains(&format!("| `{}` |", setting.env)), "README lacks a row for {}", setting.env);
        }
    }

    /// Each function's README names the settings it reads; every name there must be a setting.
    #[test]
    fn the_function_readmes_name_only_real_settings() {
        for readme in
            [include_str!("../../functions/converter/README.md"), include_str!("../../functions/compactor/README.md")]
        {
            let named: Vec<&str> = readme
                .split('`')
                .filter(|word| word.starts_with("INLET_") && word.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
                .collect();
            assert!(named.len() >= 10, "the README lists its settings: {named:?}");
            for name in named {
                assert!(SETTINGS.iter().any(|setting| setting.env == name), "{name} is not a setting");
            }
        }
    }

    /// The Terraform module passes every setting with a module variable whose description
    /// starts with the variable's name; its default must be the code's.
    #[test]
    fn the_terraform_module_has_the_same_defaults() {
        let variables = include_str!("../../infra/modules/inlet/variables.tf");
        let derived = [
            "INLET_TABLE_URI",
            "INLET_SCHEMA",
            "INLET_COMPACTOR_FUNCTION",
            "INLET_ISOLATION_QUEUE_URL",
            "INLET_COMMIT_QUEUE_URL",
            "INLET_LOG_FORMAT",
            // The ingest queue the module creates, given to the compactor when it renotifies.
            "INLET_QUEUE_URL",
            // The ingest and isolation queues the module creates, for partition completeness.
            "INLET_COMPLETE_QUEUE_URLS",
            // Written by the module from its `tables` map.
            "INLET_ROUTES",
            // Written by the module, as JSON, from its `table_properties` map.
            "INLET_TABLE_PROPERTIES",
        ];
        for setting in SETTINGS.iter().filter(|s| !derived.contains(&s.env)) {
            let marker = format!("description = \"{}:", setting.env);
            let block = variables
                .split("variable \"")
                .find(|block| block.contains(&marker))
                .unwrap_or_else(|| panic!("no module variable for {}", setting.env));
            let default = block
                .lines()
                .find_map(|line| line.trim().strip_prefix("default"))
                .map(|rest| rest.trim().trim_start_matches('=').trim().trim_matches('"'))
                .unwrap_or_else(|| panic!("the variable for {} has no default", setting.env));
            let expected = match setting.default {
                Some("(none)") => "",
                Some(value) => value,
                None => panic!("{} is required but has a module variable", setting.env),
            };
            assert_eq!(default, expected, "module default of {}", setting.env);
        }
    }
}
