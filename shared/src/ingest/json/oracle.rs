//! The decoder against an independent oracle: serde_json reads each line (strictly, with
//! duplicate keys refused) and the README's conversion table is applied to what it read.
//! Random lines, some mutated into broken JSON, must give the same rows and the same refusals,
//! whether the lines are decoded as one object or one at a time. A `json` column is the value's
//! text as serde_json's raw reading spans it; a renamed field is read from its `from` key.

use std::fmt;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Number, Value};

use super::ColumnDecoder;
use crate::schema::TableSchema;

const SCHEMA: &str = r#"{"fields": [
    {"name": "n", "type": "long"},
    {"name": "d", "type": "double"},
    {"name": "s", "type": "string"},
    {"name": "b", "type": "boolean"},
    {"name": "at", "type": "timestamp"},
    {"name": "tags", "type": {"list": "string"}},
    {"name": "m", "type": {"map": "long"}},
    {"name": "j", "type": "json"},
    {"name": "u", "type": "string", "from": "u k"}
]}"#;

/// The keys of `SCHEMA`'s typed fields (`j` is the json one).
const DECLARED: [&str; 8] = ["n", "d", "s", "b", "at", "tags", "m", "u k"];

/// One row as the oracle and the decoder both describe it.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    n: Option<i64>,
    d: Option<u64>,
    s: Option<String>,
    b: Option<bool>,
    at: Option<i64>,
    tags: Option<Vec<Option<String>>>,
    m: Option<Vec<(String, Option<i64>)>>,
    j: Option<String>,
    u: Option<String>,
}

/// A JSON value read by serde_json, with objects that refuse a key given twice.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut values = Vec::new();
        while let Some(Strict(value)) = seq.next_element()? {
            values.push(value);
        }
        Ok(Value::Array(values))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = serde_json::Map::new();
        while let Some((key, Strict(value))) = map.next_entry::<String, Strict>()? {
            if members.insert(key, value).is_some() {
                return Err(serde::de::Error::custom("duplicate key"));
            }
        }
        Ok(Value::Object(members))
    }
}

/// A line's top-level members as written.
struct Members(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
        let mut members: Vec<(String, Box<RawValue>)> = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Box<RawValue>>()? {
            members.push((key, value));
        }
        Ok(Members(members))
    }
}

/// The row the conversion table makes of `line`, or `None` for a refused line.
fn oracle(line: &str) -> Option<Row> {
    let Members(members) = serde_json::from_str::<Members>(line).ok()?;
    // A declared field's value is strict JSON; a `json` value and an ignored one need only be
    // JSON (duplicate keys inside them are kept as written, or ignored).
    let mut fields = serde_json::Map::new();
    let mut json = None;
    for (index, (key, raw)) in members.iter().enumerate() {
        let declared = DECLARED.contains(&key.as_str()) || key == "j";
        if declared && members[..index].iter().any(|(seen, _)| seen == key) {
            return None; // a declared field given twice; an ignored key may repeat
        }
        if DECLARED.contains(&key.as_str()) {
            let Strict(value) = serde_json::from_str::<Strict>(raw.get()).ok()?;
            fields.insert(key.clone(), value);
        } else {
            serde_json::from_str::<Value>(raw.get()).ok()?;
            if key == "j" {
                json = (raw.get() != "null").then(|| raw.get().to_string());
            }
        }
    }
    let get = |name: &str| fields.get(name).filter(|value| !value.is_null());
    let string = |value: &Value| value.as_str().map(str::to_string);
    Some(Row {
        n: field(get("n"), long)?,
        d: field(get("d"), |v| v.as_number().and_then(Number::as_f64).map(f64::to_bits))?,
        s: field(get("s"), string)?,
        b: field(get("b"), Value::as_bool)?,
        at: field(get("at"), timestamp)?,
        tags: field(get("tags"), |v| {
            v.as_array()?.iter().map(|t| if t.is_null() { Some(None) } else { string(t).map(Some) }).collect()
        })?,
        m: field(get("m"), |v| {
            let mut entries: Vec<(String, Option<i64>)> = Vec::new();
            for (key, value) in v.as_object()? {
                entries.push((key.clone(), if value.is_null() { None } else { Some(long(value)?) }));
            }
            entries.sort();
            Some(entries)
        })?,
        j: json,
        u: field(get("u k"), string)?,
    })
}

/// A field's value: `Some(None)` when absent or null, `None` when present and refused.
fn field<T>(value: Option<&Value>, convert: impl FnOnce(&Value) -> Option<T>) -> Option<Option<T>> {
    match value {
        None => Some(None),
        Some(value) => convert(value).map(Some),
    }
}

/// A long column's value: a JSON integer within range (serde_json reads `1.0` as a float).
fn long(value: &Value) -> Option<i64> {
    value.as_number().filter(|n| !n.is_f64()).and_then(Number::as_i64)
}

/// A timestamp column's value: RFC 3339 text (chrono's reading), or epoch seconds held to
/// the microsecond (worked out on the number's decimal digits).
fn timestamp(value: &Value) -> Option<i64> {
    let micros = match value {
        Value::String(text) => {
            // Without a zone the table reads UTC; chrono wants one written.
            let time = chrono::DateTime::parse_from_rfc3339(text)
                .or_else(|_| chrono::DateTime::parse_from_rfc3339(&format!("{text}Z")))
                .ok()?;
            // chrono reads a leap second as a nanosecond count past one second; no reader takes it.
            let nanos = time.timestamp_subsec_nanos();
            (nanos < 1_000_000_000 && nanos.is_multiple_of(1000)).then(|| time.timestamp_micros())?
        }
        Value::Number(number) => match number.as_i64() {
            Some(seconds) if !number.is_f64() => seconds.checked_mul(1_000_000)?,
            _ => {
                // Rust prints a float in full decimal digits, never with an exponent.
                let text = number.as_f64()?.to_string();
                let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
                let fraction = fraction.trim_end_matches('0');
                if fraction.len() > 6 {
                    return None;
                }
                let whole: i128 = whole.parse().ok()?;
                let fraction: i128 = format!("{fraction:0<6}").parse().ok()?;
                let micros = whole * 1_000_000 + if text.starts_with('-') { -fraction } else { fraction };
                i64::try_from(micros).ok()?
            }
        },
        _ => return None,
    };
    (-62_135_596_800_000_000..=253_402_300_799_999_999).contains(&micros).then_some(micros)
}

/// The rows of decoded batches, in the oracle's terms.
fn rows(batches: &[RecordBatch]) -> Vec<Row> {
    let mut rows = Vec::new();
    for batch in batches {
        let column = |name: &str| batch.column_by_name(name).unwrap().clone();
        let (n, d, s) = (column("n"), column("d"), column("s"));
        let (b, at, tags, m) = (column("b"), column("at"), column("tags"), column("m"));
        let (j, u) = (column("j"), column("u"));
        for row in 0..batch.num_rows() {
            let valid = |array: &dyn Array| array.is_valid(row);
            rows.push(Row {
                n: valid(&n).then(|| n.as_primitive::<Int64Type>().value(row)),
                d: valid(&d).then(|| d.as_primitive::<Float64Type>().value(row).to_bits()),
                s: valid(&s).then(|| s.as_string::<i32>().value(row).to_string()),
                b: valid(&b).then(|| b.as_boolean().value(row)),
                at: valid(&at).then(|| at.as_primitive::<TimestampMicrosecondType>().value(row)),
                tags: valid(&tags).then(|| {
                    let list = tags.as_list::<i32>().value(row);
                    let strings = list.as_string::<i32>();
                    (0..strings.len()).map(|i| strings.is_valid(i).then(|| strings.value(i).to_string())).collect()
                }),
                m: valid(&m).then(|| {
                    let entries = m.as_map().value(row);
                    let (keys, values) = (entries.column(0).as_string::<i32>(), entries.column(1));
                    let values = values.as_primitive::<Int64Type>();
                    let mut pairs: Vec<(String, Option<i64>)> = (0..keys.len())
                        .map(|i| (keys.value(i).to_string(), values.is_valid(i).then(|| values.value(i))))
                        .collect();
                    pairs.sort();
                    pairs
                }),
                j: valid(&j).then(|| j.as_string::<i32>().value(row).to_string()),
                u: valid(&u).then(|| u.as_string::<i32>().value(row).to_string()),
            });
        }
    }
    rows
}

/// A random JSON value of any kind, sometimes of the kind a field wants.
fn any_value(rng: &mut StdRng, depth: u32) -> String {
    match rng.random_range(0..if depth > 1 { 8 } else { 10 }) {
        0 => "null".into(),
        1 => ["true", "false"][rng.random_range(0..2)].into(),
        2 => rng.random_range(-1_000_000i64..1_000_000).to_string(),
        3 => ["9223372036854775807", "-9223372036854775808", "9223372036854775808", "1e3", "5.7", "0.1", "-2.5"]
            [rng.random_range(0..7)]
        .into(),
        4 => format!("{:.3}", rng.random_range(-1000.0..1000.0)),
        5 => ["\"x\"", "\"\"", "\"é \\u00e9 \\ud842\\udfb7\"", "\"a\\\"b\\\\c\\n\"", "\"2026-05-16T10:00:00Z\""]
            [rng.random_range(0..5)]
        .into(),
        6 => timestamp_text(rng),
        7 => rng.random_range(0i64..4_000_000_000).to_string(),
        8 => format!(
            "[{}]",
            (0..rng.random_range(0..3)).map(|_| any_value(rng, depth + 1)).collect::<Vec<_>>().join(",")
        ),
        _ => {
            let members = (0..rng.random_range(0..3)).map(|i| format!("\"k{i}\":{}", any_value(rng, depth + 1)));
            format!("{{{}}}", members.collect::<Vec<_>>().join(","))
        }
    }
}

fn timestamp_text(rng: &mut StdRng) -> String {
    let digits = rng.random_range(0..=9);
    let fraction: String = (0..digits).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect();
    let zone = ["Z", "+02:00", "-05:30", "+00:00"][rng.random_range(0..4)];
    format!(
        "\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}{fraction}{zone}\"",
        rng.random_range(1..=9999),
        rng.random_range(1..=12),
        rng.random_range(1..=28),
        rng.random_range(0..24),
        rng.random_range(0..60),
        rng.random_range(0..60),
        if digits > 0 { "." } else { "" },
    )
}

/// A value for a `json` column: any value, written with spaces, escapes, duplicate keys or
/// numbers past a double's range now and then.
fn json_text(rng: &mut StdRng) -> String {
    match rng.random_range(0..6) {
        0 => r#"{ "a" : [1, 2.50 ,{"b":null}] , "a":"\u00e9\n" }"#.into(),
        1 => ["1e400", "-1e309", "[1,]", "\"\\udc00\"", "12345678901234567890.000", "-0.0"][rng.random_range(0..6)]
            .into(),
        _ => any_value(rng, 0),
    }
}

/// Draws a value of one field's kind.
type Generate = fn(&mut StdRng) -> String;

/// A random line: each declared field absent, null, of its kind or of another, and an
/// undeclared one now and then; sometimes a byte or two changed.
fn line(rng: &mut StdRng) -> String {
    let mut members = Vec::new();
    let typed: [(&str, Generate); 9] = [
        ("n", |rng| rng.random_range(i64::MIN..i64::MAX).to_string()),
        ("d", |rng| format!("{}", rng.random_range(-1e6..1e6))),
        ("s", |rng| format!("\"s{}\"", rng.random_range(0..100))),
        ("b", |rng| rng.random_bool(0.5).to_string()),
        ("at", timestamp_text),
        ("tags", |rng| {
            format!("[{}]", (0..rng.random_range(0..3)).map(|i| format!("\"t{i}\"")).collect::<Vec<_>>().join(","))
        }),
        ("m", |rng| {
            format!(
                "{{{}}}",
                (0..rng.random_range(0..3)).map(|i| format!("\"k{i}\":{i}")).collect::<Vec<_>>().join(",")
            )
        }),
        ("j", json_text),
        ("u k", |rng| format!("\"u{}\"", rng.random_range(0..100))),
    ];
    for (name, value) in typed {
        match rng.random_range(0..6) {
            0 => {}
            1 => members.push(format!("\"{name}\":null")),
            2 => members.push(format!("\"{name}\":{}", any_value(rng, 0))),
            _ => members.push(format!("\"{name}\":{}", value(rng))),
        }
    }
    if rng.random_bool(0.2) {
        members.push(format!("\"extra\":{}", any_value(rng, 0)));
    }
    // A renamed field's own name is an undeclared key; an undeclared key may come twice.
    if rng.random_bool(0.1) {
        members.push(format!("\"u\":{}", any_value(rng, 0)));
    }
    if rng.random_bool(0.1) {
        members.push(format!("\"extra\":{}", any_value(rng, 0)));
    }
    let mut text = format!("{{{}}}", members.join(","));
    if rng.random_bool(0.15) {
        let mut bytes = text.into_bytes();
        let alphabet = b"{}[]\":,\\ 0123456789.-eEtrufalsn\t";
        for _ in 0..rng.random_range(1..3) {
            let at = rng.random_range(0..bytes.len());
            bytes[at] = alphabet[rng.random_range(0..alphabet.len())];
        }
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    text
}

#[test]
fn rows_and_refusals_are_those_of_an_independent_reading() {
    let schema = TableSchema::parse(SCHEMA, "oracle").unwrap();
    let decoder = ColumnDecoder::new(schema.decoded.clone(), &schema.formats, 64, false);
    // INLET_FUZZ_ITERATIONS and INLET_FUZZ_SEED widen the search when run by hand.
    let setting = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let mut rng = StdRng::seed_from_u64(setting("INLET_FUZZ_SEED", 11));
    let (mut kept, mut refused) = (0, 0);
    for _ in 0..setting("INLET_FUZZ_ITERATIONS", 300) {
        let lines: Vec<String> = (0..rng.random_range(1..20)).map(|_| line(&mut rng)).collect();
        let expected: Vec<Option<Row>> = lines.iter().map(|line| oracle(line)).collect();
        let object = lines.join("\n");
        let decoded = decoder.decode(object.as_bytes()).unwrap();
        let refused_lines: Vec<u64> = decoded.refused.iter().map(|r| r.line).collect();
        let expected_refused: Vec<u64> =
            expected.iter().enumerate().filter(|(_, row)| row.is_none()).map(|(i, _)| i as u64 + 1).collect();
        assert_eq!(refused_lines, expected_refused, "{object}\n{:?}", decoded.refused);
        let expected_rows: Vec<Row> = expected.into_iter().flatten().collect();
        assert_eq!(rows(&decoded.batches), expected_rows, "{object}");
        // Each line alone decides the same.
        for (index, line) in lines.iter().enumerate() {
            let alone = decoder.decode(line.as_bytes()).unwrap();
            assert_eq!(alone.refused.is_empty(), !refused_lines.contains(&(index as u64 + 1)), "{line}");
        }
        kept += expected_rows.len();
        refused += refused_lines.len();
    }
    assert!(kept > 500 && refused > 500, "both outcomes exercised: {kept} rows, {refused} refused");
}
