//! `inlet schema infer`: a draft schema file from sample objects. Each field's type is the
//! narrowest the declared-schema decoder would take every sampled value with: integers make
//! `long`, any fraction or exponent `double`, `YYYY-MM-DD` strings `date`, ISO-8601 text
//! `timestamp` (or `timestamp_ntz` when none of it names a zone), other strings `string`,
//! objects `struct`, arrays `list`. Where samples disagree (a number here, a string there) the
//! draft says `string` and a note names the field, since such lines would be quarantined
//! whatever the draft says. Every field is nullable: a sample cannot prove a field is always
//! there. The draft is a starting point to review, not a contract.

use std::io::BufRead;
use std::path::Path;

use serde::Serialize;
use serde_json::{Value, json};

use crate::error::Result;
use crate::ingest::Compression;
use crate::ingest::json::timestamp_names_zone;
use crate::schema::column_name_for;

/// What the samples said.
#[derive(Debug, Clone, Default, PartialEq)]
enum Kind {
    /// Only nulls seen (or nothing).
    #[default]
    Null,
    Boolean,
    Long,
    Double,
    Date,
    Timestamp {
        zoned: bool,
    },
    String,
    Struct(Vec<(String, Kind)>),
    List(Box<Kind>),
    /// Values of kinds no one column takes.
    Mixed(Vec<&'static str>),
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Boolean => "boolean",
            Kind::Long => "integer",
            Kind::Double => "number",
            Kind::Date => "date",
            Kind::Timestamp { .. } => "timestamp",
            Kind::String => "string",
            Kind::Struct(_) => "object",
            Kind::List(_) => "array",
            Kind::Mixed(_) => "mixed",
        }
    }

    fn merge(self, other: Kind) -> Kind {
        match (self, other) {
            (Kind::Null, kind) | (kind, Kind::Null) => kind,
            (Kind::Long, Kind::Double) | (Kind::Double, Kind::Long) => Kind::Double,
            (Kind::Timestamp { zoned: a }, Kind::Timestamp { zoned: b }) => Kind::Timestamp { zoned: a || b },
            (Kind::Struct(mut fields), Kind::Struct(more)) => {
                for (name, kind) in more {
                    match fields.iter_mut().find(|(existing, _)| *existing == name) {
                        Some((_, existing)) => *existing = std::mem::take(existing).merge(kind),
                        None => fields.push((name, kind)),
                    }
                }
                Kind::Struct(fields)
            }
            (Kind::List(a), Kind::List(b)) => Kind::List(Box::new(a.merge(*b))),
            (a, b) if a == b => a,
            // Dates, times and free text together are text.
            (
                Kind::Date | Kind::Timestamp { .. } | Kind::String,
                Kind::Date | Kind::Timestamp { .. } | Kind::String,
            ) => Kind::String,
            (Kind::Mixed(mut seen), other) | (other, Kind::Mixed(mut seen)) => {
                let name = other.name();
                if !seen.contains(&name) {
                    seen.push(name);
                }
                Kind::Mixed(seen)
            }
            (a, b) => Kind::Mixed(vec![a.name(), b.name()]),
        }
    }

    /// The schema file's type for this kind, noting at `path` what needs a look.
    fn type_spec(&self, path: &str, notes: &mut Vec<String>) -> Value {
        match self {
            Kind::Null => {
                notes.push(format!("{path}: only nulls in the sample; drafted as string"));
                json!("string")
            }
            Kind::Boolean => json!("boolean"),
            Kind::Long => json!("long"),
            Kind::Double => json!("double"),
            Kind::Date => json!("date"),
            Kind::Timestamp { zoned: true } => json!("timestamp"),
            Kind::Timestamp { zoned: false } => {
                notes.push(format!(
                    "{path}: timestamps without a zone; drafted as timestamp_ntz (wall-clock times). Use timestamp if they are UTC instants"
                ));
                json!("timestamp_ntz")
            }
            Kind::String => json!("string"),
            Kind::Struct(fields) => json!({"struct": fields_spec(fields, path, notes)}),
            Kind::List(element) => json!({"list": element.type_spec(&format!("{path}[]"), notes)}),
            Kind::Mixed(kinds) => {
                notes.push(format!(
                    "{path}: {} values in the sample; drafted as string, so lines with a value of another kind would be quarantined",
                    kinds.join(" and ")
                ));
                json!("string")
            }
        }
    }
}

/// Read straight from the JSON, fields in the order they are written (a map would sort them).
impl<'de> serde::Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_any(KindVisitor)
    }
}

struct KindVisitor;

impl<'de> serde::de::Visitor<'de> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> std::result::Result<Kind, E> {
        Ok(Kind::Null)
    }

    fn visit_bool<E>(self, _: bool) -> std::result::Result<Kind, E> {
        Ok(Kind::Boolean)
    }

    fn visit_i64<E>(self, _: i64) -> std::result::Result<Kind, E> {
        Ok(Kind::Long)
    }

    fn visit_u64<E>(self, value: u64) -> std::result::Result<Kind, E> {
        // Past a long's range only a double column takes it.
        Ok(if i64::try_from(value).is_ok() { Kind::Long } else { Kind::Double })
    }

    fn visit_f64<E>(self, _: f64) -> std::result::Result<Kind, E> {
        Ok(Kind::Double)
    }

    fn visit_str<E>(self, text: &str) -> std::result::Result<Kind, E> {
        Ok(string_kind(text))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Kind, A::Error> {
        let mut element = Kind::Null;
        while let Some(kind) = seq.next_element::<Kind>()? {
            element = element.merge(kind);
        }
        Ok(Kind::List(Box::new(element)))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<Kind, A::Error> {
        let mut fields: Vec<(String, Kind)> = Vec::new();
        while let Some((name, kind)) = map.next_entry::<String, Kind>()? {
            match fields.iter_mut().find(|(existing, _)| *existing == name) {
                Some((_, existing)) => *existing = std::mem::take(existing).merge(kind),
                None => fields.push((name, kind)),
            }
        }
        Ok(Kind::Struct(fields))
    }
}

fn string_kind(text: &str) -> Kind {
    let bytes = text.as_bytes();
    if bytes.len() == 10 && chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok() {
        return Kind::Date;
    }
    if let Some(zoned) = timestamp_names_zone(bytes) {
        return Kind::Timestamp { zoned };
    }
    Kind::String
}

fn fields_spec(fields: &[(String, Kind)], path: &str, notes: &mut Vec<String>) -> Vec<Value> {
    // Names in use, so that a drafted name never repeats another field's (`a b` beside `a_b`).
    let mut taken: std::collections::HashSet<String> =
        fields.iter().filter(|(name, _)| column_name_for(name).is_none()).map(|(name, _)| name.clone()).collect();
    fields
        .iter()
        .map(|(name, kind)| {
            let Some(column) = column_name_for(name).map(|column| {
                let mut unique = (1..).map(|n| if n == 1 { column.clone() } else { format!("{column}_{n}") });
                let chosen = unique.find(|candidate| !taken.contains(candidate)).unwrap_or(column);
                taken.insert(chosen.clone());
                chosen
            }) else {
                let path = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
                return json!({"name": name, "type": kind.type_spec(&path, notes)});
            };
            let path = if path.is_empty() { column.clone() } else { format!("{path}.{column}") };
            notes
                .push(format!("{path}: the key {name:?} cannot be a column name; drafted as {column:?}, read from it"));
            json!({"name": column, "from": name, "type": kind.type_spec(&path, notes)})
        })
        .collect()
}

/// A drafted schema and what to review in it.
#[derive(Debug, Clone, Serialize)]
pub struct Draft {
    /// The schema file (`{"fields": [...]}`).
    pub schema: Value,
    /// Lines read.
    pub lines: u64,
    /// Lines that were not JSON objects (left out of the draft).
    pub skipped: u64,
    /// Fields to review, and why.
    pub notes: Vec<String>,
}

/// Drafts a schema from NDJSON lines.
#[derive(Debug, Default)]
pub struct Inferrer {
    row: Kind,
    lines: u64,
    skipped: u64,
}

impl Inferrer {
    /// Takes one line into account.
    pub fn line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        self.lines += 1;
        match serde_json::from_slice::<Kind>(line) {
            Ok(row @ Kind::Struct(_)) => self.row = std::mem::take(&mut self.row).merge(row),
            _ => self.skipped += 1,
        }
    }

    /// The draft for everything seen.
    pub fn draft(&self) -> Draft {
        let mut notes = Vec::new();
        let fields = match &self.row {
            Kind::Struct(fields) => fields_spec(fields, "", &mut notes),
            _ => Vec::new(),
        };
        if self.skipped > 0 {
            notes.push(format!("{} of {} lines were not JSON objects and were left out", self.skipped, self.lines));
        }
        Draft { schema: json!({"fields": fields}), lines: self.lines, skipped: self.skipped, notes }
    }
}

/// Drafts a schema from the first `max_lines` lines of each of `paths` (compressed by their
/// extension, as the converter reads keys).
pub fn infer_files(paths: &[impl AsRef<Path>], max_lines: u64) -> Result<Draft> {
    let mut inferrer = Inferrer::default();
    for path in paths {
        let path = path.as_ref();
        let file = std::fs::File::open(path)?;
        let reader: Box<dyn BufRead> = match Compression::from_key(&path.to_string_lossy()) {
            Compression::Zstd => Box::new(std::io::BufReader::new(zstd::Decoder::new(file)?)),
            Compression::Gzip => Box::new(std::io::BufReader::new(flate2::read::MultiGzDecoder::new(file))),
            Compression::None => Box::new(std::io::BufReader::new(file)),
        };
        for line in reader.split(b'\n').take(max_lines as usize) {
            inferrer.line(&line?);
        }
    }
    Ok(inferrer.draft())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::TableSchema;

    fn draft(lines: &[&str]) -> Draft {
        let mut inferrer = Inferrer::default();
        for line in lines {
            inferrer.line(line.as_bytes());
        }
        inferrer.draft()
    }

    #[test]
    fn each_field_gets_the_narrowest_type_every_sampled_value_fits() {
        let drafted = draft(&[
            r#"{"id": 1, "price": 2, "day": "2026-05-16", "at": "2026-05-16T10:00:00Z", "name": "a", "ok": true,
                "device": {"os": "ios"}, "tags": ["x"], "items": [{"sku": "s1", "qty": 1}]}"#,
            r#"{"id": 2, "price": 2.5, "day": "2026-05-17", "at": "2026-05-16 10:00:00+02:00", "name": null,
                "device": {"os": "android", "version": 14}, "tags": [], "items": [{"sku": "s2", "note": "n"}], "extra": null}"#,
        ]);
        assert_eq!(
            drafted.schema,
            json!({"fields": [
                {"name": "id", "type": "long"},
                {"name": "price", "type": "double"},
                {"name": "day", "type": "date"},
                {"name": "at", "type": "timestamp"},
                {"name": "name", "type": "string"},
                {"name": "ok", "type": "boolean"},
                {"name": "device", "type": {"struct": [{"name": "os", "type": "string"}, {"name": "version", "type": "long"}]}},
                {"name": "tags", "type": {"list": "string"}},
                {"name": "items", "type": {"list": {"struct": [
                    {"name": "sku", "type": "string"}, {"name": "qty", "type": "long"}, {"name": "note", "type": "string"}]}}},
                {"name": "extra", "type": "string"}
            ]})
        );
        assert_eq!(drafted.notes, ["extra: only nulls in the sample; drafted as string"]);
        // The draft is a schema Inlet reads.
        TableSchema::parse(&drafted.schema.to_string(), "draft").unwrap();
    }

    #[test]
    fn disagreements_and_zoneless_times_are_noted() {
        let drafted = draft(&[
            r#"{"code": 5, "when": "2026-05-16T10:00:00", "mixed_time": "2026-05-16"}"#,
            r#"{"code": "5", "when": "2026-05-16T11:00:00.5", "mixed_time": "2026-05-16T10:00:00Z", "short": "2026-05-16T10:00+02:00"}"#,
            "not json",
            "",
        ]);
        assert_eq!(drafted.schema["fields"][0]["type"], "string");
        assert_eq!(drafted.schema["fields"][1]["type"], "timestamp_ntz");
        assert_eq!(drafted.schema["fields"][2]["type"], "string");
        assert_eq!(drafted.schema["fields"][3]["type"], "timestamp", "an offset without seconds names a zone");
        assert_eq!((drafted.lines, drafted.skipped), (3, 1));
        assert!(drafted.notes[0].starts_with("code: integer and string values"), "{:?}", drafted.notes);
        assert!(drafted.notes[1].starts_with("when: timestamps without a zone"), "{:?}", drafted.notes);
        assert!(drafted.notes[2].contains("1 of 3 lines were not JSON objects"), "{:?}", drafted.notes);
    }

    #[test]
    fn a_key_that_cannot_be_a_column_name_is_drafted_with_a_name_and_read_from_the_key() {
        let draft = draft(&[r#"{"user agent": "curl", "tags": {"a=b": 1}, "user_agent": "x", "user;agent": "y"}"#]);
        assert_eq!(
            draft.schema,
            json!({"fields": [
                {"name": "user_agent_2", "from": "user agent", "type": "string"},
                {"name": "tags", "type": {"struct": [{"name": "a_b", "from": "a=b", "type": "long"}]}},
                {"name": "user_agent", "type": "string"},
                {"name": "user_agent_3", "from": "user;agent", "type": "string"}
            ]})
        );
        assert!(draft.notes.iter().any(|note| note.contains("tags.a_b: the key \"a=b\"")), "{:?}", draft.notes);
        TableSchema::parse(&draft.schema.to_string(), "draft").unwrap();
    }
}
