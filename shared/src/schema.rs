//! The declared table schema: a small JSON file checked into the deployment.
//!
//! ```json
//! {"fields": [
//!   {"name": "event_id", "type": "string", "nullable": false},
//!   {"name": "event_time", "type": "timestamp"},
//!   {"name": "device", "type": {"struct": [{"name": "os", "type": "string"}]}},
//!   {"name": "items", "type": {"list": {"struct": [{"name": "sku", "type": "string"}]}}},
//!   {"name": "attributes", "type": {"map": "string"}},
//!   {"name": "payload", "type": "json"},
//!   {"name": "user_agent", "from": "user agent", "type": "string"}
//! ]}
//! ```
//! Primitive types: `string`, `long`, `integer`, `short`, `byte`, `double`, `float`,
//! `decimal(p,s)` (exact, precision up to 38), `boolean`, `binary`, `date`, `timestamp` (UTC
//! instants, microseconds) and `timestamp_ntz` (wall-clock times without a zone). Two say how
//! their JSON is written: `timestamp(s|ms|us|ns)` (and `timestamp_ntz(…)`) names the unit of
//! numbers in a timestamp column (seconds when not given), and `binary(base64|hex)` the text
//! encoding of bytes (base64 when not given). `json` is a string column keeping any JSON value
//! as its text, exactly as written. A field reads the key `from` names when it is not the
//! field's own name (a key Delta refuses as a column name, or a better name). The
//! README's conversion table says what each type accepts. Fields are nullable unless they say
//! `"nullable": false`. The schema is converted to Delta's types and from there to Arrow, so the
//! decoder, the fragments and the table agree on every type.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_schema::{Schema, SchemaRef};
use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
use deltalake::kernel::{ArrayType, DataType, MapType, StructField, StructType};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::partition::PartitionSpec;

/// Lineage column: the `s3://bucket/key` each row came from.
pub const SOURCE_FILE_COLUMN: &str = "_source_file";
/// Lineage column: the ETag of the object version each row came from.
pub const SOURCE_ETAG_COLUMN: &str = "_source_etag";
/// Lineage column: the content digest of the object version each row came from
/// ([`crate::lineage::content_digest`]), so that a load history rebuilt from the table's rows
/// knows a re-upload of the same bytes; null in rows written before it existed.
pub const SOURCE_DIGEST_COLUMN: &str = "_source_digest";
/// Unknown top-level fields of a line, as a JSON object, when they are rescued.
pub const RESCUED_COLUMN: &str = "_rescued";
/// When the converter decoded the row (UTC), when configured.
pub const INGESTED_AT_COLUMN: &str = "_ingested_at";

/// Columns a deployment adds around the declared ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// Partitioning of the table, if any.
    pub partition: Option<PartitionSpec>,
    /// Keep unknown top-level fields in [`RESCUED_COLUMN`] instead of ignoring them.
    pub rescue_unknown_fields: bool,
    /// Record the conversion time of every row in [`INGESTED_AT_COLUMN`].
    pub ingested_at: bool,
}

/// The unit of epoch numbers in a timestamp column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochUnit {
    /// Seconds since 1970-01-01T00:00:00Z (the default, as Spark reads numbers).
    Seconds,
    /// Milliseconds.
    Millis,
    /// Microseconds.
    Micros,
    /// Nanoseconds.
    Nanos,
}

/// How bytes are written as JSON text in a binary column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryEncoding {
    /// RFC 4648 base64, standard alphabet, padded (the default).
    Base64,
    /// Hexadecimal digits, two per byte.
    Hex,
}

/// How the JSON of one column is read, where its type leaves a choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueFormat {
    /// A timestamp column: the unit of numbers.
    Epoch(EpochUnit),
    /// A binary column: the text encoding.
    Binary(BinaryEncoding),
    /// A `json` column (a string in the table): any JSON value, kept as its text exactly as
    /// written.
    Json,
}

/// How each column reads its JSON, by column path (field names joined by `.`, `[]` for a
/// list's elements and `{}` for a map's values: `items[].at`, `attributes{}`): the formats
/// its type leaves a choice of, and the JSON key of a field named otherwise (`from`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValueFormats {
    formats: BTreeMap<String, ValueFormat>,
    keys: BTreeMap<String, String>,
    /// Every column path of the schema, so that two fields cannot share one (a field named
    /// `a.b` beside a struct `a` holding `b`).
    paths: std::collections::BTreeSet<String>,
}

impl ValueFormats {
    /// No formats and no renamed keys: every column reads its type's default format under
    /// the key of its own name.
    pub fn new() -> Self {
        Self::default()
    }

    /// The format of the column at `path`, when it declares one.
    pub fn get(&self, path: &str) -> Option<&ValueFormat> {
        self.formats.get(path)
    }

    /// Declares the format of the column at `path`.
    pub fn insert(&mut self, path: String, format: ValueFormat) {
        self.formats.insert(path, format);
    }

    /// The JSON key the field at `path` is read from, when it is not the field's name.
    pub fn key(&self, path: &str) -> Option<&str> {
        self.keys.get(path).map(String::as_str)
    }

    /// Reads the field at `path` from the JSON key `key`.
    pub fn insert_key(&mut self, path: String, key: String) {
        self.keys.insert(path, key);
    }
}

/// A declared schema, in the forms each stage needs.
#[derive(Debug, Clone)]
pub struct TableSchema {
    /// The Delta table schema: declared columns, then partition, rescue and lineage columns.
    pub delta: StructType,
    /// Arrow schema of the declared columns, as decoded from JSON.
    pub decoded: SchemaRef,
    /// Arrow schema of fragments and table files (the same columns as [`TableSchema::delta`]).
    pub table: SchemaRef,
    /// The columns added around the declared ones.
    pub layout: Layout,
    /// How timestamp and binary columns read their JSON.
    pub formats: ValueFormats,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFile {
    fields: Vec<FieldSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldSpec {
    name: String,
    /// The JSON key the field is read from, when it is not `name`.
    #[serde(default)]
    from: Option<String>,
    #[serde(rename = "type")]
    data_type: TypeSpec,
    #[serde(default = "nullable_by_default")]
    nullable: bool,
}

fn nullable_by_default() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TypeSpec {
    Primitive(String),
    Nested(NestedSpec),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
enum NestedSpec {
    Struct(Vec<FieldSpec>),
    List(Box<TypeSpec>),
    Map(Box<TypeSpec>),
}

impl TableSchema {
    /// Parses a schema file's text with no partitioning or rescue; `location` names it in errors.
    pub fn parse(text: &str, location: &str) -> Result<Self> {
        Self::parse_with(text, location, Layout::default())
    }

    /// Parses a schema file's text and adds the columns `layout` asks for.
    pub fn parse_with(text: &str, location: &str, layout: Layout) -> Result<Self> {
        let invalid = |reason: String| Error::Schema { location: location.to_string(), reason };
        let file: SchemaFile = serde_json::from_str(text).map_err(|err| invalid(err.to_string()))?;
        if file.fields.is_empty() {
            return Err(invalid("declares no fields".into()));
        }
        let mut formats = ValueFormats::new();
        let declared = struct_of(&file.fields, "", &mut formats).map_err(invalid)?;
        for reserved in
            [SOURCE_FILE_COLUMN, SOURCE_ETAG_COLUMN, SOURCE_DIGEST_COLUMN, RESCUED_COLUMN, INGESTED_AT_COLUMN]
        {
            if declared.field(reserved).is_some() {
                return Err(invalid(format!("{reserved} is reserved for Inlet's own columns")));
            }
        }
        let mut added = Vec::new();
        if let Some(partition) = &layout.partition {
            let types = partition.delta_types(&declared).map_err(invalid)?;
            for (column, kind) in partition.columns.iter().zip(types) {
                if declared.field(&column.name).is_some() {
                    return Err(invalid(format!(
                        "partition column {:?} is also a declared field; name the partition column differently",
                        column.name
                    )));
                }
                added.push(StructField::new(column.name.clone(), kind, true));
            }
        }
        if layout.rescue_unknown_fields {
            added.push(StructField::new(RESCUED_COLUMN, DataType::STRING, true));
        }
        if layout.ingested_at {
            added.push(StructField::new(INGESTED_AT_COLUMN, DataType::TIMESTAMP, true));
        }
        added.push(StructField::new(SOURCE_FILE_COLUMN, DataType::STRING, false));
        added.push(StructField::new(SOURCE_ETAG_COLUMN, DataType::STRING, true));
        added.push(StructField::new(SOURCE_DIGEST_COLUMN, DataType::STRING, true));
        let decoded: Schema = (&declared).try_into_arrow().map_err(|err| invalid(err.to_string()))?;
        let delta =
            StructType::try_new(declared.fields().cloned().chain(added)).map_err(|err| invalid(err.to_string()))?;
        let table: Schema = (&delta).try_into_arrow().map_err(|err| invalid(err.to_string()))?;
        Ok(Self { delta, decoded: Arc::new(decoded), table: Arc::new(table), layout, formats })
    }

    /// Reads and parses a schema from a local path.
    pub fn from_path(path: &std::path::Path) -> Result<Self> {
        Self::from_path_with(path, Layout::default())
    }

    /// Reads and parses a schema from a local path with a layout.
    pub fn from_path_with(path: &std::path::Path, layout: Layout) -> Result<Self> {
        let location = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| {
            let hint = if err.kind() == std::io::ErrorKind::NotFound {
                " (point INLET_SCHEMA, the command's --schema or a route's schema at the declared schema file)"
            } else {
                ""
            };
            Error::Schema { location: location.clone(), reason: format!("{err}{hint}") }
        })?;
        Self::parse_with(&text, &location, layout)
    }

    /// The table's partition columns.
    pub fn partition_columns(&self) -> Vec<String> {
        self.layout.partition.as_ref().map(PartitionSpec::names).unwrap_or_default()
    }
}

/// The primitive type names a schema may use.
const PRIMITIVE_TYPES: &str = "string, long, integer, short, byte, double, float, decimal(<precision>,<scale>), \
                               boolean, binary, binary(base64), binary(hex), date, timestamp, timestamp(s), timestamp(ms), \
                               timestamp(us), timestamp(ns), timestamp_ntz, timestamp_ntz(s|ms|us|ns), json";

/// `decimal(p,s)`: precision 1 to 38 and scale 0 to the precision, as Delta allows.
fn decimal_type(name: &str) -> Option<Result<DataType, String>> {
    let inner = name.strip_prefix("decimal(")?.strip_suffix(')')?;
    let parsed =
        inner.split_once(',').and_then(|(p, s)| Some((p.trim().parse::<u8>().ok()?, s.trim().parse::<u8>().ok()?)));
    Some(match parsed {
        Some((precision, scale)) if (1..=38).contains(&precision) && scale <= precision => {
            DataType::decimal(precision, scale).map_err(|err| err.to_string())
        }
        _ => Err(format!(
            "{name:?} is not a decimal type: write decimal(<precision>,<scale>) with a precision of 1 to 38 and a scale of 0 to the precision, e.g. decimal(18,2)"
        )),
    })
}

/// Characters Delta refuses in the column names of a table without column mapping (Inlet's
/// tables do not use it, so that every reader can read them).
const REFUSED_IN_COLUMN_NAMES: [char; 10] = [' ', ',', ';', '{', '}', '(', ')', '=', '\n', '\t'];

/// A column name for the JSON key `key` when `key` cannot be one itself: the refused
/// characters become `_`.
pub(crate) fn column_name_for(key: &str) -> Option<String> {
    let refused = |c: char| REFUSED_IN_COLUMN_NAMES.contains(&c);
    key.contains(refused).then(|| key.chars().map(|c| if refused(c) { '_' } else { c }).collect())
}

/// Why a new table cannot have `field` (a column at any depth of it is named with a character
/// Delta refuses without column mapping), with the `from` to write instead; `None` if it can.
/// Checked when a table is created or gains a column, not when a schema is read: a table an
/// earlier release made with such a name keeps working.
pub fn refused_column_name(field: &StructField) -> Option<String> {
    if let Some(suggested) = column_name_for(field.name()) {
        let quoted = |text: &str| serde_json::to_string(text).unwrap_or_default();
        return Some(format!(
            "column {}: a column name cannot hold any of \" ,;{{}}()=\", a tab or a line break; name the column otherwise and read it from its key with \"from\": {{\"name\": {}, \"from\": {}, ...}}",
            quoted(field.name()),
            quoted(&suggested),
            quoted(field.name())
        ));
    }
    let mut data_type = field.data_type();
    loop {
        data_type = match data_type {
            DataType::Array(array) => array.element_type(),
            DataType::Map(map) => map.value_type(),
            DataType::Struct(fields) => return fields.fields().find_map(refused_column_name),
            _ => return None,
        };
    }
}

/// The struct of `fields` under `path`, recording the value formats its columns declare.
fn struct_of(fields: &[FieldSpec], path: &str, formats: &mut ValueFormats) -> Result<StructType, String> {
    if fields.is_empty() {
        // Parquet has no empty group: no row could ever be written.
        return Err("a struct needs at least one field".to_string());
    }
    let mut keys = std::collections::HashSet::new();
    let fields = fields
        .iter()
        .map(|field| {
            if field.name.is_empty() {
                return Err("a field has an empty name".to_string());
            }
            let path = if path.is_empty() { field.name.clone() } else { format!("{path}.{}", field.name) };
            claim(formats, path.clone()).map_err(|err| format!("field {:?}: {err}", field.name))?;
            let key = field.from.as_deref().unwrap_or(&field.name);
            if key.is_empty() {
                return Err(format!("field {:?}: \"from\" names no key", field.name));
            }
            if !keys.insert(key) {
                return Err(format!("two fields read the JSON key {key:?}: give each key one field"));
            }
            if key != field.name {
                formats.insert_key(path.clone(), key.to_string());
            }
            let data_type =
                type_of(&field.data_type, &path, formats).map_err(|err| format!("field {:?}: {err}", field.name))?;
            Ok(StructField::new(field.name.clone(), data_type, field.nullable))
        })
        .collect::<Result<Vec<_>, String>>()?;
    StructType::try_new(fields).map_err(|err| err.to_string())
}

/// `path`, if no other column of the schema has it: two fields whose paths meet (a field named
/// `a.b` beside a struct `a` holding `b`) would share their formats and keys.
fn claim(formats: &mut ValueFormats, path: String) -> Result<String, String> {
    if formats.paths.insert(path.clone()) {
        return Ok(path);
    }
    Err(format!("the column path {path:?} is also another column's: rename one (a name holding '.', '[]' or '{{}}'?)"))
}

fn type_of(spec: &TypeSpec, path: &str, formats: &mut ValueFormats) -> Result<DataType, String> {
    let mut format = |format| formats.insert(path.to_string(), format);
    Ok(match spec {
        TypeSpec::Primitive(name) => match name.as_str() {
            "string" => DataType::STRING,
            "json" => {
                format(ValueFormat::Json);
                DataType::STRING
            }
            "long" | "bigint" => DataType::LONG,
            "integer" | "int" => DataType::INTEGER,
            "short" => DataType::SHORT,
            "byte" => DataType::BYTE,
            "double" => DataType::DOUBLE,
            "float" => DataType::FLOAT,
            "boolean" => DataType::BOOLEAN,
            "binary" | "binary(base64)" => {
                format(ValueFormat::Binary(BinaryEncoding::Base64));
                DataType::BINARY
            }
            "binary(hex)" => {
                format(ValueFormat::Binary(BinaryEncoding::Hex));
                DataType::BINARY
            }
            "date" => DataType::DATE,
            "timestamp" | "timestamp(s)" | "timestamp(ms)" | "timestamp(us)" | "timestamp(ns)" | "timestamp_ntz"
            | "timestamp_ntz(s)" | "timestamp_ntz(ms)" | "timestamp_ntz(us)" | "timestamp_ntz(ns)" => {
                let unit = match name.trim_start_matches("timestamp").trim_start_matches("_ntz") {
                    "(ms)" => EpochUnit::Millis,
                    "(us)" => EpochUnit::Micros,
                    "(ns)" => EpochUnit::Nanos,
                    _ => EpochUnit::Seconds,
                };
                format(ValueFormat::Epoch(unit));
                if name.starts_with("timestamp_ntz") { DataType::TIMESTAMP_NTZ } else { DataType::TIMESTAMP }
            }
            other if other.starts_with("decimal") => match decimal_type(other) {
                Some(result) => result?,
                None => {
                    return Err(format!(
                        "{other:?} is not a decimal type: write decimal(<precision>,<scale>), e.g. decimal(18,2)"
                    ));
                }
            },
            other => {
                return Err(format!("unknown type {other:?}; the types are {PRIMITIVE_TYPES}, struct, list and map"));
            }
        },
        TypeSpec::Nested(NestedSpec::Struct(fields)) => struct_of(fields, path, formats)?.into(),
        TypeSpec::Nested(NestedSpec::List(element)) => {
            let element_path = claim(formats, format!("{path}[]"))?;
            ArrayType::new(type_of(element, &element_path, formats)?, true).into()
        }
        TypeSpec::Nested(NestedSpec::Map(value)) => {
            let value_path = claim(formats, format!("{path}{{}}"))?;
            MapType::new(DataType::STRING, type_of(value, &value_path, formats)?, true).into()
        }
    })
}

#[cfg(test)]
mod tests {
    use arrow_schema::{DataType as ArrowType, TimeUnit};

    use super::*;

    const NESTED: &str = r#"{"fields": [
        {"name": "id", "type": "string", "nullable": false},
        {"name": "at", "type": "timestamp"},
        {"name": "n", "type": "long"},
        {"name": "device", "type": {"struct": [{"name": "os", "type": "string"}]}},
        {"name": "items", "type": {"list": {"struct": [
            {"name": "sku", "type": "string"},
            {"name": "tags", "type": {"list": "string"}}
        ]}}},
        {"name": "attributes", "type": {"map": "string"}}
    ]}"#;

    #[test]
    fn nested_schema_maps_to_arrow_and_delta() {
        let schema = TableSchema::parse(NESTED, "test").unwrap();
        let decoded = &schema.decoded;
        assert_eq!(decoded.fields().len(), 6);
        assert!(!decoded.field_with_name("id").unwrap().is_nullable());
        assert_eq!(
            decoded.field_with_name("at").unwrap().data_type(),
            &ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        let ArrowType::List(item) = decoded.field_with_name("items").unwrap().data_type() else {
            panic!("items is not a list");
        };
        assert!(matches!(item.data_type(), ArrowType::Struct(fields) if fields.len() == 2));
        assert!(matches!(decoded.field_with_name("attributes").unwrap().data_type(), ArrowType::Map(..)));
        // Fragments and the table carry the lineage columns after the declared ones.
        let names: Vec<&str> = schema.table.fields().iter().skip(6).map(|f| f.name().as_str()).collect();
        assert_eq!(names, vec![SOURCE_FILE_COLUMN, SOURCE_ETAG_COLUMN, SOURCE_DIGEST_COLUMN]);
        assert_eq!(schema.delta.fields().count(), 9);
    }

    #[test]
    fn unknown_type_names_the_field() {
        let err = TableSchema::parse(r#"{"fields":[{"name":"x","type":"uuid"}]}"#, "s.json").unwrap_err().to_string();
        assert!(err.contains("s.json") && err.contains("\"x\"") && err.contains("uuid"), "{err}");
        assert!(err.contains("the types are string, long,") && err.contains("struct, list and map"), "{err}");
    }

    #[test]
    fn a_schema_that_could_never_hold_a_row_is_refused_when_read() {
        for text in [
            r#"{"fields":[{"name":"id","type":"long"},{"name":"meta","type":{"struct":[]}}]}"#,
            r#"{"fields":[{"name":"id","type":"long"},{"name":"tags","type":{"list":{"struct":[]}}}]}"#,
        ] {
            let err = TableSchema::parse(text, "s.json").unwrap_err().to_string();
            assert!(err.contains("at least one field"), "{err}");
        }
    }

    #[test]
    fn a_missing_schema_file_says_which_setting_names_it() {
        let err = TableSchema::from_path(std::path::Path::new("/nonexistent/events.schema.json")).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("/nonexistent/events.schema.json") && err.contains("INLET_SCHEMA"), "{err}");
        assert!(err.contains("--schema"), "{err}");
    }

    #[test]
    fn reserved_and_empty_schemas_are_refused() {
        let err =
            TableSchema::parse(r#"{"fields":[{"name":"_source_file","type":"string"}]}"#, "s").unwrap_err().to_string();
        assert!(err.contains("reserved"), "{err}");
        assert!(TableSchema::parse(r#"{"fields":[{"name":"_rescued","type":"string"}]}"#, "s").is_err());
        assert!(TableSchema::parse(r#"{"fields":[]}"#, "s").is_err());
        assert!(TableSchema::parse("not json", "s").is_err());
    }

    #[test]
    fn layout_adds_partition_and_rescue_columns_in_order() {
        let layout =
            Layout { partition: Some("date=at".parse().unwrap()), rescue_unknown_fields: true, ingested_at: true };
        let schema = TableSchema::parse_with(NESTED, "t", layout).unwrap();
        let names: Vec<&str> = schema.table.fields().iter().skip(6).map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            vec![
                "date",
                RESCUED_COLUMN,
                INGESTED_AT_COLUMN,
                SOURCE_FILE_COLUMN,
                SOURCE_ETAG_COLUMN,
                SOURCE_DIGEST_COLUMN
            ]
        );
        assert_eq!(schema.partition_columns(), vec!["date".to_string()]);
        assert_eq!(schema.decoded.fields().len(), 6, "only declared fields are decoded from JSON");
    }

    #[test]
    fn partition_specs_must_fit_the_schema() {
        let clash = Layout { partition: Some("id=key".parse().unwrap()), ..Layout::default() };
        let err = TableSchema::parse_with(NESTED, "t", clash).unwrap_err().to_string();
        assert!(err.contains("also a declared field"), "{err}");
        let not_a_time = Layout { partition: Some("date=n".parse().unwrap()), ..Layout::default() };
        let err = TableSchema::parse_with(NESTED, "t", not_a_time).unwrap_err().to_string();
        assert!(err.contains("must be a declared timestamp or date"), "{err}");
    }

    #[test]
    fn the_reference_schema_parses() {
        let schema = TableSchema::from_path(&crate::testing::schemas::events_path()).unwrap();
        assert!(schema.decoded.fields().len() >= 40);
    }

    #[test]
    fn a_field_attribute_this_release_does_not_know_is_refused_by_name() {
        let text = r#"{"fields": [{"name": "id", "type": "long", "comment": "the key"}]}"#;
        let err = TableSchema::parse(text, "s.json").unwrap_err().to_string();
        assert!(err.contains("unknown field `comment`"), "{err}");
    }

    #[test]
    fn a_key_that_cannot_be_a_column_name_is_read_into_a_column_named_otherwise() {
        // Read, so that a table an earlier release made keeps working; refused for new columns.
        let text = r#"{"fields": [{"name": "user agent", "type": "string"},
            {"name": "s", "type": {"list": {"struct": [{"name": "x=1", "type": "long"}]}}}]}"#;
        let schema = TableSchema::parse(text, "s.json").unwrap();
        let problems: Vec<String> = schema.delta.fields().filter_map(refused_column_name).collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains(r#"{"name": "user_agent", "from": "user agent", ...}"#), "{}", problems[0]);
        assert!(problems[1].contains(r#"{"name": "x_1", "from": "x=1", ...}"#), "{}", problems[1]);

        let text = r#"{"fields": [{"name": "user_agent", "from": "user agent", "type": "string"}]}"#;
        let schema = TableSchema::parse(text, "s.json").unwrap();
        assert_eq!(schema.formats.key("user_agent"), Some("user agent"));
        assert_eq!(schema.decoded.field(0).name(), "user_agent");
        assert!(schema.delta.fields().all(|field| refused_column_name(field).is_none()));
        for (text, expected) in [
            (
                r#"{"fields": [{"name": "a", "type": "long"}, {"name": "b", "from": "a", "type": "long"}]}"#,
                "two fields read the JSON key \"a\"",
            ),
            (r#"{"fields": [{"name": "a", "from": "", "type": "long"}]}"#, "names no key"),
            (
                r#"{"fields": [{"name": "a.b", "type": "string"}, {"name": "a", "type": {"struct": [{"name": "b", "type": "json"}]}}]}"#,
                "the column path \"a.b\" is also another column's",
            ),
            (
                r#"{"fields": [{"name": "t[]", "type": "binary(hex)"}, {"name": "t", "type": {"list": "binary"}}]}"#,
                "the column path \"t[]\" is also another column's",
            ),
        ] {
            let err = TableSchema::parse(text, "s.json").unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn a_json_column_is_a_string_in_the_table_read_as_json_text() {
        let schema = TableSchema::parse(r#"{"fields": [{"name": "body", "type": "json"}]}"#, "s").unwrap();
        assert_eq!(schema.delta.field("body").unwrap().data_type(), &DataType::STRING);
        assert_eq!(schema.formats.get("body"), Some(&ValueFormat::Json));
    }
}
