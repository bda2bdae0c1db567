//! Partitioning: which Delta partition a row belongs to, from the object key (a hive-style
//! `date=2026-05-16` segment) or from the date of a timestamp field.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, UInt32Array};
use arrow_schema::DataType as ArrowType;

use crate::error::{Error, Result};
use crate::lineage::SourceObject;

/// How rows are assigned to partitions: `INLET_PARTITION_BY=<column>=key` or `<column>=<field>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSpec {
    /// The (string) partition column of the table.
    pub column: String,
    /// Where its value comes from.
    pub source: PartitionSource,
}

/// Where a partition value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionSource {
    /// The `<column>=<value>` segment of the object key.
    KeySegment,
    /// The UTC date (`YYYY-MM-DD`) of this timestamp or date field.
    FieldDate(String),
}

impl FromStr for PartitionSpec {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let invalid =
            || Error::Config(format!("INLET_PARTITION_BY {text:?}: expected <column>=key or <column>=<field>"));
        let (column, source) = text.split_once('=').ok_or_else(invalid)?;
        let (column, source) = (column.trim(), source.trim());
        if column.is_empty() || source.is_empty() {
            return Err(invalid());
        }
        let source =
            if source == "key" { PartitionSource::KeySegment } else { PartitionSource::FieldDate(source.into()) };
        Ok(Self { column: column.into(), source })
    }
}

impl PartitionSpec {
    /// The value of a key-based partition for `key`, from its `<column>=<value>` segment.
    pub fn value_from_key(&self, key: &str) -> Option<String> {
        let prefix = format!("{}=", self.column);
        // The last matching directory segment wins; the file name itself is not a segment.
        let directories = key.rsplit_once('/').map_or("", |(dirs, _)| dirs);
        directories.split('/').rev().find_map(|segment| segment.strip_prefix(&prefix)).map(str::to_string)
    }

    /// Fills the partition column of `batch` (all nulls when decoded) and splits it by value.
    /// `key_value` is the object's key-based value, required for [`PartitionSource::KeySegment`].
    pub fn split(&self, batch: RecordBatch, key_value: Option<&str>) -> Result<Vec<(Option<String>, RecordBatch)>> {
        let index = batch.schema().index_of(&self.column)?;
        match &self.source {
            PartitionSource::KeySegment => {
                let values: ArrayRef = Arc::new(StringArray::from(vec![key_value; batch.num_rows()]));
                Ok(vec![(key_value.map(str::to_string), replace_column(&batch, index, values)?)])
            }
            PartitionSource::FieldDate(field) => {
                let dates = dates_of(batch.column_by_name(field).ok_or_else(|| {
                    Error::Config(format!("partition field {field:?} is not a column of the table"))
                })?)?;
                let mut groups: BTreeMap<Option<String>, Vec<u32>> = BTreeMap::new();
                for (row, date) in dates.iter().enumerate() {
                    groups.entry(date.clone()).or_default().push(row as u32);
                }
                let filled = replace_column(&batch, index, Arc::new(StringArray::from(dates)))?;
                if groups.len() == 1 {
                    let value = groups.into_keys().next().expect("one group");
                    return Ok(vec![(value, filled)]);
                }
                // One take puts each partition's rows together, in their order; each partition
                // is then a slice of that one batch, not arrays of its own (a batch over a
                // thousand dates would otherwise be a thousand sets of small allocations).
                let order: Vec<u32> = groups.values().flatten().copied().collect();
                let sorted = arrow_select::take::take_record_batch(&filled, &UInt32Array::from(order))?;
                let mut start = 0;
                Ok(groups
                    .into_iter()
                    .map(|(value, rows)| {
                        let part = sorted.slice(start, rows.len());
                        start += rows.len();
                        (value, part)
                    })
                    .collect())
            }
        }
    }
}

fn replace_column(batch: &RecordBatch, index: usize, values: ArrayRef) -> Result<RecordBatch> {
    let mut columns = batch.columns().to_vec();
    columns[index] = values;
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

fn dates_of(column: &ArrayRef) -> Result<Vec<Option<String>>> {
    let format = |days: i32| chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163).map(|d| d.to_string());
    Ok(match column.data_type() {
        ArrowType::Timestamp(_, _) => {
            let micros = arrow_cast::cast(column, &ArrowType::Timestamp(arrow_schema::TimeUnit::Microsecond, None))?;
            let micros = micros.as_primitive::<TimestampMicrosecondType>();
            micros.iter().map(|v| v.and_then(|m| format(m.div_euclid(86_400_000_000) as i32))).collect()
        }
        ArrowType::Date32 => column.as_primitive::<Date32Type>().iter().map(|v| v.and_then(format)).collect(),
        other => return Err(Error::Config(format!("partition field must be a timestamp or date, not {other}"))),
    })
}

/// The partition value an object's key gives, when `partition` takes it from a key segment;
/// a key without the segment fails its object alone.
pub fn key_partition(partition: &Option<PartitionSpec>, object: &SourceObject) -> Result<Option<String>> {
    match partition {
        Some(spec) if spec.source == PartitionSource::KeySegment => {
            Ok(Some(spec.value_from_key(&object.key).ok_or_else(|| Error::Source {
                uri: object.uri(),
                reason: format!(
                    "key has no `{}=` directory segment, which INLET_PARTITION_BY={}=key requires",
                    spec.column, spec.column
                ),
                retryable: false,
            })?))
        }
        _ => Ok(None),
    }
}

/// Decoded rows grouped by partition value (all under `None` when the table has no partition).
pub fn split_by_partition(
    partition: &Option<PartitionSpec>,
    key_value: Option<&str>,
    batches: Vec<RecordBatch>,
) -> Result<Vec<(Option<String>, Vec<RecordBatch>)>> {
    let mut parts: BTreeMap<Option<String>, Vec<RecordBatch>> = BTreeMap::new();
    for batch in batches {
        match partition {
            None => parts.entry(None).or_default().push(batch),
            Some(spec) => {
                for (value, part) in spec.split(batch, key_value)? {
                    parts.entry(value).or_default().push(part);
                }
            }
        }
    }
    Ok(parts.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use arrow_array::TimestampMicrosecondArray;
    use arrow_schema::{Field, Schema};

    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_name_the_variable() {
        let key: PartitionSpec = "date=key".parse().unwrap();
        assert_eq!(key, PartitionSpec { column: "date".into(), source: PartitionSource::KeySegment });
        let field: PartitionSpec = "day = event_time".parse().unwrap();
        assert_eq!(field.source, PartitionSource::FieldDate("event_time".into()));
        assert!("date".parse::<PartitionSpec>().unwrap_err().to_string().contains("INLET_PARTITION_BY"));
    }

    #[test]
    fn key_segments_give_the_value() {
        let spec: PartitionSpec = "date=key".parse().unwrap();
        assert_eq!(spec.value_from_key("web/date=2026-05-16/part.json.zst").as_deref(), Some("2026-05-16"));
        assert_eq!(spec.value_from_key("web/part-date=x.json.zst"), None);
        assert_eq!(spec.value_from_key("date=2026-05-16.json"), None, "a file name is not a directory segment");
    }

    #[test]
    fn field_dates_split_rows_across_midnight() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("at", ArrowType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("date", ArrowType::Utf8, true),
        ]));
        let at = TimestampMicrosecondArray::from(vec![
            Some(1_778_889_599_000_000), // 2026-05-15T23:59:59Z
            Some(1_778_889_600_000_000), // 2026-05-16T00:00:00Z
            None,
            Some(1_778_889_599_999_999),
        ])
        .with_timezone("UTC");
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(at), Arc::new(StringArray::from(vec![None::<&str>; 4]))])
                .unwrap();
        let spec: PartitionSpec = "date=at".parse().unwrap();
        let parts = spec.split(batch, None).unwrap();
        let summary: Vec<(Option<String>, usize)> = parts.iter().map(|(v, b)| (v.clone(), b.num_rows())).collect();
        assert_eq!(summary, vec![(None, 1), (Some("2026-05-15".into()), 2), (Some("2026-05-16".into()), 1)]);
        let filled = parts[1].1.column(1).as_string::<i32>();
        assert!(filled.iter().all(|v| v == Some("2026-05-15")));
    }
}
