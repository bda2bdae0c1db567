//! Delta file statistics (`numRecords`, `minValues`, `maxValues`, `nullCount`) from a Parquet
//! footer, for table files whose row groups were copied rather than written by delta-rs. They
//! follow delta-rs' own writer, so a reader sees the same statistics whichever path wrote a file:
//! the first `delta.dataSkippingNumIndexedCols` top-level columns (32 by default; partition
//! columns take no slot), leaves under a list or map left out, binary columns without bounds,
//! timestamps to the millisecond.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Timelike};
use parquet::basic::{LogicalType, TimeUnit, TimestampType, Type as PhysicalType};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;
use parquet::schema::types::{ColumnDescriptor, SchemaDescriptor};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};

/// Default of `delta.dataSkippingNumIndexedCols`.
const DEFAULT_INDEXED_COLUMNS: usize = 32;

/// Which columns get statistics, from the table's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsColumns {
    /// Top-level columns with statistics, `None` for all.
    limit: Option<usize>,
}

impl StatsColumns {
    /// The columns a table configured with `configuration` keeps statistics for; `None` when
    /// it names them (`delta.dataSkippingStatsColumns`), which this does not implement.
    pub fn from_configuration<'a>(mut configuration: impl Iterator<Item = (&'a str, &'a str)>) -> Option<Self> {
        let mut limit = Some(DEFAULT_INDEXED_COLUMNS);
        for (key, value) in configuration.by_ref() {
            match key {
                "delta.dataSkippingStatsColumns" => return None,
                "delta.dataSkippingNumIndexedCols" => {
                    limit = match value.trim().parse::<i64>().ok()? {
                        -1 => None,
                        n => Some(usize::try_from(n).ok()?),
                    }
                }
                _ => {}
            }
        }
        Some(Self { limit })
    }

    /// The leaf columns of `schema` that get statistics, by index: the leaves of the first
    /// `limit` top-level columns outside `partition_columns`, none under a list or map.
    fn leaves(&self, schema: &SchemaDescriptor, partition_columns: &[String]) -> Vec<usize> {
        let mut admitted = BTreeSet::new();
        let mut leaves = Vec::new();
        for (index, column) in schema.columns().iter().enumerate() {
            let Some(top) = column.path().parts().first() else { continue };
            if partition_columns.contains(top) {
                continue;
            }
            if !admitted.contains(top) {
                if self.limit.is_some_and(|limit| admitted.len() >= limit) {
                    break;
                }
                admitted.insert(top.clone());
            }
            // Null counts of repeated leaves count nested values, not rows: Delta leaves them out.
            if column.max_rep_level() == 0 {
                leaves.push(index);
            }
        }
        leaves
    }

    /// Whether every leaf that gets statistics has a type [`file_stats`] can state bounds of.
    pub fn supports(&self, schema: &SchemaDescriptor, partition_columns: &[String]) -> bool {
        self.leaves(schema, partition_columns).into_iter().all(|index| Bound::supported(&schema.columns()[index]))
    }
}

/// The `stats` JSON of an Add action for a file with `metadata`.
pub fn file_stats(metadata: &ParquetMetaData, columns: &StatsColumns, partition_columns: &[String]) -> Result<String> {
    let schema = metadata.file_metadata().schema_descr();
    let (mut min_values, mut max_values, mut null_count) = (Map::new(), Map::new(), Map::new());
    for index in columns.leaves(schema, partition_columns) {
        let column = &schema.columns()[index];
        let mut nulls = 0;
        let (mut least, mut greatest): (Option<Bound>, Option<Bound>) = (None, None);
        let mut any = false;
        for group in metadata.row_groups() {
            let Some(stats) = group.column(index).statistics() else { continue };
            any = true;
            nulls += stats.null_count_opt().unwrap_or(0);
            if stats.min_bytes_opt().is_none() || stats.max_bytes_opt().is_none() {
                continue;
            }
            if let Some(min) = Bound::read(stats, column, true)? {
                least = Some(match least {
                    Some(current) if current <= min => current,
                    _ => min,
                });
            }
            if let Some(max) = Bound::read(stats, column, false)? {
                greatest = Some(match greatest {
                    Some(current) if current >= max => current,
                    _ => max,
                });
            }
        }
        if !any {
            continue;
        }
        let path = column.path().parts();
        if let Some(min) = least {
            insert(&mut min_values, path, min.to_json());
        }
        if let Some(max) = greatest {
            insert(&mut max_values, path, max.to_json());
        }
        insert(&mut null_count, path, json!(nulls));
    }
    let stats = json!({
        "numRecords": metadata.file_metadata().num_rows(),
        "minValues": min_values,
        "maxValues": max_values,
        "nullCount": null_count,
    });
    Ok(serde_json::to_string(&stats)?)
}

/// Sets `value` at `path` in nested objects.
fn insert(map: &mut Map<String, Value>, path: &[String], value: Value) {
    match path {
        [] => {}
        [leaf] => {
            map.insert(leaf.clone(), value);
        }
        [parent, rest @ ..] => {
            let child = map.entry(parent.clone()).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(child) = child {
                insert(child, rest, value);
            }
        }
    }
}

/// One bound of a column, as Delta orders and writes it.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Bound {
    Boolean(bool),
    Int(i64),
    Float(f64),
    Date(NaiveDate),
    Timestamp(NaiveDateTime),
    TimestampNtz(NaiveDateTime),
    Text(String),
}

impl Bound {
    fn supported(column: &ColumnDescriptor) -> bool {
        let logical = column.logical_type_ref();
        match column.physical_type() {
            PhysicalType::BOOLEAN | PhysicalType::FLOAT | PhysicalType::DOUBLE => logical.is_none(),
            PhysicalType::INT32 => matches!(logical, None | Some(LogicalType::Date | LogicalType::Integer(_))),
            PhysicalType::INT64 => matches!(logical, None | Some(LogicalType::Timestamp(_) | LogicalType::Integer(_))),
            // Binary columns get null counts only.
            PhysicalType::BYTE_ARRAY => matches!(logical, None | Some(LogicalType::String)),
            _ => false,
        }
    }

    /// The least (`min`) or greatest bound in `stats`; `None` where Delta states none (binary,
    /// text that is not UTF-8).
    fn read(stats: &Statistics, column: &ColumnDescriptor, min: bool) -> Result<Option<Self>> {
        let unsupported = || Error::Integrity(format!("no Delta statistics for column {}", column.path().string()));
        let logical = column.logical_type_ref();
        Ok(Some(match stats {
            Statistics::Boolean(v) => Self::Boolean(*pick(v.min_opt(), v.max_opt(), min)),
            Statistics::Int32(v) => {
                let value = *pick(v.min_opt(), v.max_opt(), min);
                match logical {
                    Some(LogicalType::Date) => Self::Date(
                        NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch") + chrono::Duration::days(value.into()),
                    ),
                    None | Some(LogicalType::Integer(_)) => Self::Int(value.into()),
                    _ => return Err(unsupported()),
                }
            }
            Statistics::Int64(v) => {
                let value = *pick(v.min_opt(), v.max_opt(), min);
                match logical {
                    Some(LogicalType::Timestamp(TimestampType { is_adjusted_to_u_t_c, unit })) => {
                        let time = match unit {
                            TimeUnit::MILLIS => DateTime::from_timestamp_millis(value),
                            TimeUnit::MICROS => DateTime::from_timestamp_micros(value),
                            TimeUnit::NANOS => Some(DateTime::from_timestamp_nanos(value)),
                        }
                        .ok_or_else(unsupported)?
                        .naive_utc();
                        if *is_adjusted_to_u_t_c { Self::Timestamp(time) } else { Self::TimestampNtz(time) }
                    }
                    None | Some(LogicalType::Integer(_)) => Self::Int(value),
                    _ => return Err(unsupported()),
                }
            }
            Statistics::Float(v) => Self::Float((*pick(v.min_opt(), v.max_opt(), min)).into()),
            Statistics::Double(v) => Self::Float(*pick(v.min_opt(), v.max_opt(), min)),
            Statistics::ByteArray(v) => {
                if logical != Some(&LogicalType::String) {
                    return Ok(None);
                }
                let bytes = if min { v.min_bytes_opt() } else { v.max_bytes_opt() }.unwrap_or_default();
                match std::str::from_utf8(bytes) {
                    Ok(text) => Self::Text(text.to_string()),
                    Err(_) => return Ok(None),
                }
            }
            _ => return Err(unsupported()),
        }))
    }

    fn to_json(&self) -> Value {
        // Delta states timestamps to the millisecond; whole seconds without a fraction.
        let time = |time: &NaiveDateTime, whole: &str, fraction: &str| {
            Value::from(time.format(if time.nanosecond() == 0 { whole } else { fraction }).to_string())
        };
        match self {
            Self::Boolean(value) => json!(value),
            Self::Int(value) => json!(value),
            Self::Float(value) => json!(value),
            Self::Date(date) => json!(date.format("%Y-%m-%d").to_string()),
            Self::Timestamp(value) => time(value, "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S%.3fZ"),
            Self::TimestampNtz(value) => time(value, "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S%.3f"),
            Self::Text(text) => json!(text),
        }
    }
}

fn pick<'a, T>(least: Option<&'a T>, greatest: Option<&'a T>, min: bool) -> &'a T {
    if min { least } else { greatest }.expect("bounds checked present")
}

#[cfg(test)]
mod tests {
    use arrow_schema::{DataType, Field, Fields, Schema};
    use parquet::arrow::ArrowSchemaConverter;

    use super::*;

    fn columns(configuration: &[(&str, &str)]) -> Option<StatsColumns> {
        StatsColumns::from_configuration(configuration.iter().copied())
    }

    #[test]
    fn the_table_configuration_picks_the_columns() {
        assert_eq!(columns(&[]), Some(StatsColumns { limit: Some(32) }));
        assert_eq!(columns(&[("delta.dataSkippingNumIndexedCols", "2")]), Some(StatsColumns { limit: Some(2) }));
        assert_eq!(columns(&[("delta.dataSkippingNumIndexedCols", "-1")]), Some(StatsColumns { limit: None }));
        assert_eq!(columns(&[("delta.dataSkippingNumIndexedCols", "x")]), None, "unreadable: not guessed");
        assert_eq!(columns(&[("delta.dataSkippingStatsColumns", "a,b")]), None, "named columns: not ours to pick");
    }

    #[test]
    fn the_budget_counts_top_level_columns_and_skips_partitions_and_lists() {
        let nested = Fields::from(vec![Field::new("x", DataType::Int64, true), Field::new("y", DataType::Utf8, true)]);
        let schema = Schema::new(vec![
            Field::new("date", DataType::Utf8, true),
            Field::new("s", DataType::Struct(nested), true),
            Field::new("tags", DataType::List(std::sync::Arc::new(Field::new("item", DataType::Utf8, true))), true),
            Field::new("n", DataType::Int32, true),
            Field::new("late", DataType::Int32, true),
        ]);
        let descriptor = ArrowSchemaConverter::new().convert(&schema).unwrap();
        let names = |columns: &StatsColumns| -> Vec<String> {
            columns
                .leaves(&descriptor, &["date".into()])
                .iter()
                .map(|&i| descriptor.column(i).path().string())
                .collect()
        };
        // Three slots: the struct (both leaves), the list (no leaf: repeated), `n`.
        assert_eq!(names(&StatsColumns { limit: Some(3) }), ["s.x", "s.y", "n"]);
        assert_eq!(names(&StatsColumns { limit: None }), ["s.x", "s.y", "n", "late"]);
        assert!(StatsColumns { limit: None }.supports(&descriptor, &["date".into()]));
    }
}
