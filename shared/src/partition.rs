//! Partitioning: which Delta partition a row belongs to. A table has up to a few partition
//! columns, each from a hive-style `<column>=<value>` segment of the object key, the UTC date
//! or hour of a timestamp field, or a field's own value; values are typed (string, date,
//! integer) and a partition is the tuple of its columns' values.

use std::collections::HashMap;
use std::hash::Hash;
use std::str::FromStr;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, Date32Array, Int32Array, RecordBatch, StringArray, UInt32Array};
use arrow_schema::DataType as ArrowType;
use deltalake::kernel::{DataType, StructType};

use crate::error::{Error, Result};
use crate::layout::{NULL_PARTITION, partition_directories};
use crate::lineage::SourceObject;

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;
const MICROS_PER_HOUR: i64 = 3_600_000_000;
/// Longest encoded `<column>=<value>` directory: a file system's longest name.
const MAX_SEGMENT_BYTES: usize = 255;
/// Longest encoded partition directories: S3 keys end at 1,024 bytes, and the table's prefix
/// and the file name need the rest.
const MAX_DIRECTORY_BYTES: usize = 512;

/// How rows are assigned to partitions: `INLET_PARTITION_BY`, a comma-separated list of
/// `<column>=<source>` (see [`PartitionSource`] for the sources).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSpec {
    /// The partition columns, in the order of the table's directories.
    pub columns: Vec<PartitionColumn>,
}

/// One partition column and where its value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionColumn {
    /// The partition column of the table.
    pub name: String,
    /// Where its value comes from.
    pub source: PartitionSource,
}

/// Where a partition value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionSource {
    /// `key`, `key:date`, `key:integer`: the `<column>=<value>` directory segment of the object
    /// key, as text, a date (`YYYY-MM-DD`) or an integer.
    KeySegment(ValueType),
    /// `<field>`: the UTC date of a timestamp or date field, as `YYYY-MM-DD` text (the form
    /// tables made before typed partitions have).
    FieldDateText(String),
    /// `date(<field>)`: the UTC date of a timestamp or date field, as a date.
    FieldDate(String),
    /// `hour(<field>)`: the UTC hour of day (0-23) of a timestamp field, as an integer.
    FieldHour(String),
    /// `value(<field>)`: the value of a string, integer or date field, in the field's type.
    FieldValue(String),
}

/// The type of a partition value taken from the object key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// Delta `string`.
    String,
    /// Delta `date`.
    Date,
    /// Delta `integer` (32 bits).
    Integer,
}

/// A partition's values, one per partition column in spec order, as the Delta log writes them
/// (`YYYY-MM-DD`, decimal digits, the text itself; `None` for null). Unpartitioned: empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionValues(pub Vec<Option<String>>);

impl PartitionValues {
    /// The partition of every column null: where rows of no partition (none at all) go.
    pub fn nulls(partition: &Option<PartitionSpec>) -> Self {
        Self(vec![None; partition.as_ref().map_or(0, |spec| spec.columns.len())])
    }
}

/// A value parsed from the object key, for a key-segment column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValue {
    /// A string value.
    Text(String),
    /// A date, as days since 1970-01-01.
    Date(i32),
    /// An integer.
    Integer(i32),
}

/// The object key's value of each key-segment column (`None` for other columns), spec order.
pub type KeyValues = Vec<Option<KeyValue>>;

impl FromStr for PartitionSpec {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let invalid = |why: &str| {
            Error::Config(format!(
                "INLET_PARTITION_BY {text:?}: {why}; expected a comma-separated list of <column>=<source>, \
                 the source one of key, key:date, key:integer, date(<field>), hour(<field>), value(<field>) \
                 or <field> (the field's UTC date as text)"
            ))
        };
        let mut columns: Vec<PartitionColumn> = Vec::new();
        for item in text.split(',') {
            let (name, source) = item.split_once('=').ok_or_else(|| invalid("a column has no `=`"))?;
            let (name, source) = (name.trim(), source.trim());
            if name.is_empty() || source.is_empty() {
                return Err(invalid("a column or its source is empty"));
            }
            // Delta matches column names without regard to case.
            if columns.iter().any(|column| column.name.eq_ignore_ascii_case(name)) {
                return Err(invalid(&format!("column {name:?} is listed twice")));
            }
            let source = parse_source(source).ok_or_else(|| invalid(&format!("unknown source {source:?}")))?;
            columns.push(PartitionColumn { name: name.to_string(), source });
        }
        Ok(Self { columns })
    }
}

fn parse_source(source: &str) -> Option<PartitionSource> {
    let call = |function: &str| {
        let field = source.strip_prefix(function)?.strip_prefix('(')?.strip_suffix(')')?.trim();
        (!field.is_empty()).then(|| field.to_string())
    };
    Some(match source {
        "key" | "key:string" => PartitionSource::KeySegment(ValueType::String),
        "key:date" => PartitionSource::KeySegment(ValueType::Date),
        "key:integer" => PartitionSource::KeySegment(ValueType::Integer),
        _ if source.contains('(') => {
            if let Some(field) = call("date") {
                PartitionSource::FieldDate(field)
            } else if let Some(field) = call("hour") {
                PartitionSource::FieldHour(field)
            } else {
                PartitionSource::FieldValue(call("value")?)
            }
        }
        _ if source.contains([':', ')', ' ']) => return None,
        field => PartitionSource::FieldDateText(field.to_string()),
    })
}

impl PartitionSpec {
    /// The partition column names, in order.
    pub fn names(&self) -> Vec<String> {
        self.columns.iter().map(|column| column.name.clone()).collect()
    }

    /// The Delta type of each partition column, checked against the `declared` fields.
    pub fn delta_types(&self, declared: &StructType) -> std::result::Result<Vec<DataType>, String> {
        self.columns.iter().map(|column| column.delta_type(declared)).collect()
    }

    /// The Hive directories of a partition (`service=web/date=2026-05-16`; empty when
    /// unpartitioned), values percent-encoded as Delta encodes them.
    pub fn directory(&self, values: &PartitionValues) -> String {
        let names = self.columns.iter().map(|column| column.name.as_str());
        partition_directories(names.zip(values.0.iter().map(Option::as_deref)))
    }

    /// The values the object `key` gives its key-segment columns, or why it cannot.
    pub fn key_values(&self, key: &str) -> std::result::Result<KeyValues, String> {
        self.columns
            .iter()
            .map(|column| match column.source {
                PartitionSource::KeySegment(kind) => column.key_value(key, kind).map(Some),
                _ => Ok(None),
            })
            .collect()
    }

    /// Fills the partition columns of `batch` (all nulls when decoded) and splits its rows by
    /// partition, in partition order. `keys` are the object key's values ([`Self::key_values`]).
    pub fn split(
        &self,
        batch: RecordBatch,
        keys: &KeyValues,
    ) -> std::result::Result<Vec<(PartitionValues, RecordBatch)>, String> {
        let rows = batch.num_rows();
        let mut columns = batch.columns().to_vec();
        let mut grouping = Grouping::new(rows);
        for (column, key) in self.columns.iter().zip(keys) {
            let index = batch.schema().index_of(&column.name).map_err(|err| err.to_string())?;
            let (filled, coded) = column.derive(&batch, key.as_ref())?;
            columns[index] = filled;
            grouping.add(coded);
        }
        let filled = RecordBatch::try_new(batch.schema(), columns).map_err(|err| err.to_string())?;
        let parts = grouping.split(filled).map_err(|err| err.to_string())?;
        for (values, _) in &parts {
            self.check_directory(values)?;
        }
        Ok(parts)
    }

    /// Refuses a partition whose directories would be too long to name an object.
    fn check_directory(&self, values: &PartitionValues) -> std::result::Result<(), String> {
        let directory = self.directory(values);
        let longest = directory.split('/').map(str::len).max().unwrap_or(0);
        if longest > MAX_SEGMENT_BYTES || directory.len() > MAX_DIRECTORY_BYTES {
            let start: String = directory.chars().take(80).collect();
            return Err(format!(
                "partition directories {start}… are longer than a storage key allows ({} bytes encoded, \
                 at most {MAX_SEGMENT_BYTES} per column and {MAX_DIRECTORY_BYTES} in all)",
                directory.len()
            ));
        }
        Ok(())
    }
}

impl PartitionColumn {
    fn delta_type(&self, declared: &StructType) -> std::result::Result<DataType, String> {
        let field_type = |field: &str| {
            declared.field(field).map(|f| f.data_type().clone()).ok_or_else(|| {
                format!(
                    "partition column {:?} reads field {field:?}, which is not a declared top-level field",
                    self.name
                )
            })
        };
        let timestamps = [DataType::TIMESTAMP, DataType::TIMESTAMP_NTZ];
        Ok(match &self.source {
            PartitionSource::KeySegment(ValueType::String) => DataType::STRING,
            PartitionSource::KeySegment(ValueType::Date) => DataType::DATE,
            PartitionSource::KeySegment(ValueType::Integer) | PartitionSource::FieldHour(_) => {
                if let PartitionSource::FieldHour(field) = &self.source
                    && !timestamps.contains(&field_type(field)?)
                {
                    return Err(format!("partition field {field:?} must be a declared timestamp for hour()"));
                }
                DataType::INTEGER
            }
            PartitionSource::FieldDateText(field) | PartitionSource::FieldDate(field) => {
                let kind = field_type(field)?;
                if !timestamps.contains(&kind) && kind != DataType::DATE {
                    return Err(format!("partition field {field:?} must be a declared timestamp or date"));
                }
                if matches!(self.source, PartitionSource::FieldDate(_)) { DataType::DATE } else { DataType::STRING }
            }
            PartitionSource::FieldValue(field) => {
                let kind = field_type(field)?;
                let allowed = [
                    DataType::STRING,
                    DataType::LONG,
                    DataType::INTEGER,
                    DataType::SHORT,
                    DataType::BYTE,
                    DataType::DATE,
                    DataType::BOOLEAN,
                ];
                if !allowed.contains(&kind) {
                    return Err(format!(
                        "partition field {field:?} must be a declared string, integer type, date or boolean for value()"
                    ));
                }
                kind
            }
        })
    }

    /// The value of the key's `<column>=` directory segment (the last one), parsed as `kind`.
    fn key_value(&self, key: &str, kind: ValueType) -> std::result::Result<KeyValue, String> {
        let prefix = format!("{}=", self.name);
        // The last matching directory segment wins; the file name itself is not a segment.
        let directories = key.rsplit_once('/').map_or("", |(dirs, _)| dirs);
        let text =
            directories.split('/').rev().find_map(|segment| segment.strip_prefix(&prefix)).ok_or_else(|| {
                format!("key has no `{}=` directory segment, which its partitioning requires", self.name)
            })?;
        let refused = |what: &str| format!("key segment `{}={text}` is not {what}", self.name);
        match kind {
            ValueType::String if text.is_empty() => {
                Err(format!("key segment `{}=` is empty, and Delta keeps an empty partition value as null", self.name))
            }
            ValueType::String if text == NULL_PARTITION => {
                Err(format!("key segment `{}={text}` is the name of a null partition", self.name))
            }
            ValueType::String => Ok(KeyValue::Text(text.to_string())),
            ValueType::Date => {
                // Years 1 to 9999 as four digits, the dates Delta readers take.
                let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .ok()
                    .filter(|date| text.len() == 10 && date.format("%Y-%m-%d").to_string() == text)
                    .filter(|date| (1..=9999).contains(&chrono::Datelike::year(date)))
                    .ok_or_else(|| refused("a date (YYYY-MM-DD)"))?;
                Ok(KeyValue::Date(chrono::Datelike::num_days_from_ce(&date) - UNIX_EPOCH_DAYS_FROM_CE))
            }
            ValueType::Integer => {
                let digits = text.strip_prefix('-').unwrap_or(text);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(refused("an integer"));
                }
                text.parse().map(KeyValue::Integer).map_err(|_| refused("a 32-bit integer"))
            }
        }
    }

    /// The column's values for `batch` and their codes.
    fn derive(&self, batch: &RecordBatch, key: Option<&KeyValue>) -> std::result::Result<(ArrayRef, Coded), String> {
        let rows = batch.num_rows();
        let field = |name: &str| {
            batch.column_by_name(name).cloned().ok_or_else(|| format!("partition field {name:?} is not a column"))
        };
        Ok(match (&self.source, key) {
            (PartitionSource::KeySegment(_), Some(value)) => {
                let array: ArrayRef = match value {
                    KeyValue::Text(text) => Arc::new(StringArray::from(vec![text.as_str(); rows])),
                    KeyValue::Date(days) => Arc::new(Date32Array::from(vec![*days; rows])),
                    KeyValue::Integer(n) => Arc::new(Int32Array::from(vec![*n; rows])),
                };
                let text = match value {
                    KeyValue::Text(text) => text.clone(),
                    KeyValue::Date(days) => date_text(*days).ok_or("a date out of range")?,
                    KeyValue::Integer(n) => n.to_string(),
                };
                (array, Coded::constant(Some(text)))
            }
            (PartitionSource::KeySegment(_), None) => return Err("the key's partition value is missing".into()),
            (PartitionSource::FieldDateText(name), _) => {
                let days = days_of(&field(name)?)?;
                let coded = Coded::from_keys(days.iter(), |days| date_text(days).unwrap_or_default());
                let texts: StringArray =
                    coded.codes.iter().map(|&code| coded.values[code as usize].as_deref()).collect();
                (Arc::new(texts), coded)
            }
            (PartitionSource::FieldDate(name), _) => {
                let days = days_of(&field(name)?)?;
                let coded = Coded::from_keys(days.iter(), |days| date_text(days).unwrap_or_default());
                (Arc::new(days), coded)
            }
            (PartitionSource::FieldHour(name), _) => {
                let hours = hours_of(&field(name)?)?;
                let coded = Coded::from_keys(hours.iter(), |hour| hour.to_string());
                (Arc::new(hours), coded)
            }
            (PartitionSource::FieldValue(name), _) => {
                let values = field(name)?;
                (values.clone(), self.coded_values(&values)?)
            }
        })
    }

    /// The codes of a `value(<field>)` column's values.
    fn coded_values(&self, values: &ArrayRef) -> std::result::Result<Coded, String> {
        match values.data_type() {
            ArrowType::Utf8 => {
                let strings = values.as_string::<i32>();
                if strings.iter().any(|value| value == Some("")) {
                    return Err(format!(
                        "a row's `{}` is an empty string, which Delta keeps as a null partition value",
                        self.name
                    ));
                }
                if strings.iter().any(|value| value == Some(NULL_PARTITION)) {
                    return Err(format!("a row's `{}` is the name of a null partition", self.name));
                }
                Ok(Coded::from_keys(strings.iter(), str::to_string))
            }
            ArrowType::Boolean => Ok(Coded::from_keys(values.as_boolean().iter(), |b| b.to_string())),
            ArrowType::Date32 => {
                Ok(Coded::from_keys(values.as_primitive::<Date32Type>().iter(), |d| date_text(d).unwrap_or_default()))
            }
            ArrowType::Int8 | ArrowType::Int16 | ArrowType::Int32 | ArrowType::Int64 => {
                let wide = arrow_cast::cast(values, &ArrowType::Int64).map_err(|err| err.to_string())?;
                Ok(Coded::from_keys(wide.as_primitive::<Int64Type>().iter(), |n| n.to_string()))
            }
            other => Err(format!("partition column {:?} cannot take values of type {other}", self.name)),
        }
    }
}

/// A column's value per row, as a code into its distinct values.
struct Coded {
    codes: Vec<u32>,
    values: Vec<Option<String>>,
}

impl Coded {
    /// The same value on every row: no codes needed.
    fn constant(value: Option<String>) -> Self {
        Self { codes: Vec::new(), values: vec![value] }
    }

    /// Codes rows by `keys`, the distinct ones written out by `text` (null stays `None`).
    fn from_keys<K: Copy + Eq + Hash>(keys: impl Iterator<Item = Option<K>>, text: impl Fn(K) -> String) -> Self {
        let mut seen: HashMap<Option<K>, u32> = HashMap::new();
        let mut values = Vec::new();
        // Rows come in runs (a service's lines, an hour's events): the last key is checked first.
        let mut last: Option<(Option<K>, u32)> = None;
        let codes = keys
            .map(|key| match last {
                Some((previous, code)) if previous == key => code,
                _ => {
                    let code = *seen.entry(key).or_insert_with(|| {
                        values.push(key.map(&text));
                        values.len() as u32 - 1
                    });
                    last = Some((key, code));
                    code
                }
            })
            .collect();
        Self { codes, values }
    }
}

/// Rows grouped by the tuple of their partition columns' codes.
struct Grouping {
    rows: usize,
    /// Each row's tuple; empty while there is one tuple (every column constant so far).
    codes: Vec<u32>,
    tuples: Vec<PartitionValues>,
}

impl Grouping {
    fn new(rows: usize) -> Self {
        Self { rows, codes: Vec::new(), tuples: vec![PartitionValues::default()] }
    }

    /// Refines the groups by one more column.
    fn add(&mut self, column: Coded) {
        if column.values.len() == 1 {
            for tuple in &mut self.tuples {
                tuple.0.push(column.values[0].clone());
            }
        } else if self.tuples.len() == 1 {
            let first = self.tuples.pop().expect("one group");
            self.tuples = column.values.into_iter().map(|value| extended(&first, value)).collect();
            self.codes = column.codes;
        } else {
            let mut combined: HashMap<(u32, u32), u32> = HashMap::new();
            let mut tuples = Vec::new();
            // Rows come in runs: the last pair is checked first.
            let mut last: Option<((u32, u32), u32)> = None;
            for (code, &next) in self.codes.iter_mut().zip(&column.codes) {
                let pair = (*code, next);
                *code = match last {
                    Some((previous, combined_code)) if previous == pair => combined_code,
                    _ => {
                        let combined_code = *combined.entry(pair).or_insert_with(|| {
                            tuples.push(extended(&self.tuples[pair.0 as usize], column.values[next as usize].clone()));
                            tuples.len() as u32 - 1
                        });
                        last = Some((pair, combined_code));
                        combined_code
                    }
                };
            }
            self.tuples = tuples;
        }
    }

    /// The rows of `batch` per partition, in partition order; partitions with no rows left out.
    fn split(self, batch: RecordBatch) -> Result<Vec<(PartitionValues, RecordBatch)>> {
        if self.codes.is_empty() {
            // One tuple (or none, for no rows): the batch as it is.
            let rows = self.rows;
            return Ok(self.tuples.into_iter().filter(|_| rows > 0).map(|values| (values, batch.clone())).collect());
        }
        let mut rows_of: Vec<Vec<u32>> = vec![Vec::new(); self.tuples.len()];
        for (row, &code) in self.codes.iter().enumerate() {
            rows_of[code as usize].push(row as u32);
        }
        let mut groups: Vec<(PartitionValues, Vec<u32>)> =
            self.tuples.into_iter().zip(rows_of).filter(|(_, rows)| !rows.is_empty()).collect();
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        if groups.len() <= 1 {
            return Ok(groups.into_iter().map(|(values, _)| (values, batch.clone())).collect());
        }
        // One take puts each partition's rows together, in their order; each partition is then a
        // slice of that one batch, not arrays of its own (a batch over a thousand dates would
        // otherwise be a thousand sets of small allocations).
        let order: Vec<u32> = groups.iter().flat_map(|(_, rows)| rows).copied().collect();
        let sorted = arrow_select::take::take_record_batch(&batch, &UInt32Array::from(order))?;
        let mut start = 0;
        Ok(groups
            .into_iter()
            .map(|(values, rows)| {
                let part = sorted.slice(start, rows.len());
                start += rows.len();
                (values, part)
            })
            .collect())
    }
}

fn extended(tuple: &PartitionValues, value: Option<String>) -> PartitionValues {
    let mut values = tuple.0.clone();
    values.push(value);
    PartitionValues(values)
}

/// `YYYY-MM-DD` of days since 1970-01-01.
pub fn date_text(days: i32) -> Option<String> {
    chrono::NaiveDate::from_num_days_from_ce_opt(days.checked_add(UNIX_EPOCH_DAYS_FROM_CE)?).map(|d| d.to_string())
}

fn micros_of(column: &ArrayRef) -> std::result::Result<ArrayRef, String> {
    arrow_cast::cast(column, &ArrowType::Timestamp(arrow_schema::TimeUnit::Microsecond, None))
        .map_err(|e| e.to_string())
}

/// The UTC date of each timestamp or date.
fn days_of(column: &ArrayRef) -> std::result::Result<Date32Array, String> {
    Ok(match column.data_type() {
        ArrowType::Timestamp(_, _) => {
            let micros = micros_of(column)?;
            micros
                .as_primitive::<TimestampMicrosecondType>()
                .unary(|micros| micros.div_euclid(24 * MICROS_PER_HOUR) as i32)
        }
        ArrowType::Date32 => column.as_primitive::<Date32Type>().clone(),
        other => return Err(format!("partition field must be a timestamp or date, not {other}")),
    })
}

/// The UTC hour of day of each timestamp.
fn hours_of(column: &ArrayRef) -> std::result::Result<Int32Array, String> {
    match column.data_type() {
        ArrowType::Timestamp(_, _) => {
            let micros = micros_of(column)?;
            Ok(micros
                .as_primitive::<TimestampMicrosecondType>()
                .unary(|micros| micros.div_euclid(MICROS_PER_HOUR).rem_euclid(24) as i32))
        }
        other => Err(format!("partition field must be a timestamp for hour(), not {other}")),
    }
}

/// The object key's partition values, when `partition` takes some from key segments; a key
/// that lacks one (or whose value is not of the column's type) fails its object alone.
pub fn key_partition(partition: &Option<PartitionSpec>, object: &SourceObject) -> Result<KeyValues> {
    match partition {
        Some(spec) => spec.key_values(&object.key).map_err(|reason| Error::Source {
            uri: object.uri(),
            reason: format!("{reason} (INLET_PARTITION_BY)"),
            retryable: false,
        }),
        None => Ok(Vec::new()),
    }
}

/// Decoded rows of `object` grouped by partition (all under the empty tuple when the table has
/// no partition); a row no partition can hold fails the object.
pub fn split_by_partition(
    partition: &Option<PartitionSpec>,
    keys: &KeyValues,
    batches: Vec<RecordBatch>,
    object: &SourceObject,
) -> Result<Vec<(PartitionValues, Vec<RecordBatch>)>> {
    let mut parts: std::collections::BTreeMap<PartitionValues, Vec<RecordBatch>> = Default::default();
    for batch in batches {
        match partition {
            None => parts.entry(PartitionValues::default()).or_default().push(batch),
            Some(spec) => {
                let split = spec.split(batch, keys).map_err(|reason| Error::Source {
                    uri: object.uri(),
                    reason: format!("partitioning: {reason}"),
                    retryable: false,
                })?;
                for (values, part) in split {
                    parts.entry(values).or_default().push(part);
                }
            }
        }
    }
    Ok(parts.into_iter().collect())
}

#[cfg(test)]
mod tests;
