//! The column decoder held to arrow-json: identical batches, or a refusal.

use std::panic::{AssertUnwindSafe, catch_unwind};

use arrow_json::ReaderBuilder;
use arrow_schema::{Field, Schema};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::cursor::*;
use super::primitive::utc_micros;
use super::*;
use crate::schema::TableSchema;
use arrow_array::StringArray;
use arrow_cast::parse::string_to_datetime;
use arrow_schema::ArrowError;

/// Every type the direct decoder takes, nested every way the schema language allows.
const SCHEMA: &str = r#"{"fields": [
    {"name": "id", "type": "string", "nullable": false},
    {"name": "at", "type": "timestamp"},
    {"name": "day", "type": "date"},
    {"name": "b", "type": "byte"},
    {"name": "s", "type": "short"},
    {"name": "i", "type": "integer"},
    {"name": "n", "type": "long"},
    {"name": "f", "type": "float"},
    {"name": "d", "type": "double"},
    {"name": "ok", "type": "boolean"},
    {"name": "device", "type": {"struct": [
        {"name": "os", "type": "string", "nullable": false},
        {"name": "v", "type": "integer"},
        {"name": "inner", "type": {"struct": [{"name": "x", "type": "long"}]}}
    ]}},
    {"name": "items", "type": {"list": {"struct": [
        {"name": "sku", "type": "string"},
        {"name": "tags", "type": {"list": "string"}}
    ]}}},
    {"name": "flags", "type": {"list": "string"}},
    {"name": "attrs", "type": {"map": "string"}},
    {"name": "scores", "type": {"map": "double"}}
]}"#;

/// Lines that exercise escapes, whitespace, field order, unknown fields, nulls and absences.
const LINES: &[&str] = &[
    r#"{"id":"a","at":"2026-05-16T10:00:00.5Z","day":"2026-05-16","b":-128,"s":32767,"i":-7,"n":9223372036854775807,"f":1.5,"d":-0.0,"ok":true,"device":{"os":"ios","v":17,"inner":{"x":-9223372036854775808}},"items":[{"sku":"S1","tags":["x","y"]},{"sku":null,"tags":[]}],"flags":["p"],"attrs":{"k":"v","k":"again"},"scores":{"a":1e3,"b":null}}"#,
    r#"  { "ok" : false , "id" : "tab\there \"quoted\" back\\slash \/ \b\f\n\r \u00e9\u4e2d \ud83d\ude00" , "d" : 12345678901234567890 , "f" : 3.4028235e38 }  "#,
    r#"{"id":"b","device":null,"items":null,"flags":null,"attrs":null,"at":null,"ok":null}"#,
    r#"{"id":"c","unknown":{"deep":[1,2.5e-3,{"z":[null,true,false,"s\u0041"]}],"e":{}},"other":[],"n":0}"#,
    r#"{"id":"d","device":{"os":"android"},"items":[{}],"flags":[null,"q"],"attrs":{}}"#,
    r#"{"id":"e","at":"2026-05-16 10:00:00+02:00","day":"2026-05-16","d":1E-7,"i":2147483647}"#,
    r#"{"id":"\u0000ctl","note":"raw	tab","d":0.1,"f":0.1}"#,
    r#"{"id":"f"}{"id":"g"}"#,
    "{\"id\":\"h\",\r\n\"n\":-1}",
    r#"{"device":{"inner":null,"v":null,"os":"x"},"id":"é"}"#,
];

fn schema() -> SchemaRef {
    TableSchema::parse(SCHEMA, "test").unwrap().decoded
}

fn arrow_json(schema: &SchemaRef, data: &[u8], batch_rows: usize) -> Option<Vec<RecordBatch>> {
    let run = || -> Result<Vec<RecordBatch>, ArrowError> {
        let mut decoder = ReaderBuilder::new(schema.clone()).with_batch_size(batch_rows).build_decoder()?;
        let mut batches = Vec::new();
        let mut rest = data;
        loop {
            let consumed = decoder.decode(rest)?;
            rest = &rest[consumed..];
            match decoder.flush()? {
                Some(batch) => batches.push(batch),
                None if consumed == 0 => break,
                None => {}
            }
        }
        Ok(batches)
    };
    // A panic in arrow-json counts as a refusal: the direct decoder must then refuse too.
    catch_unwind(AssertUnwindSafe(run)).ok().and_then(Result::ok)
}

fn assert_same_as_arrow_json(schema: &SchemaRef, data: &[u8], batch_rows: usize) {
    let direct = ColumnDecoder::new(schema.clone(), batch_rows).unwrap().decode(data);
    let direct = direct.unwrap_or_else(|r| panic!("refused at {} ({}): {}", r.offset, r.reason, show(data)));
    let expected = arrow_json(schema, data, batch_rows).expect("arrow-json accepts it");
    assert_eq!(direct, expected, "{}", show(data));
}

fn show(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

#[test]
fn every_line_decodes_as_arrow_json_decodes_it() {
    let schema = schema();
    for line in LINES {
        assert_same_as_arrow_json(&schema, line.as_bytes(), 4);
    }
    let all = LINES.join("\n");
    for batch_rows in [1, 3, 1024] {
        assert_same_as_arrow_json(&schema, all.as_bytes(), batch_rows);
    }
}

#[test]
fn the_reference_workload_decodes_as_arrow_json_decodes_it() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/events.schema.json");
    let schema = TableSchema::from_path(std::path::Path::new(path)).unwrap().decoded;
    for seed in 1..4 {
        let data = crate::testing::sample::ndjson_object(seed, 0, 128 * 1024);
        assert_same_as_arrow_json(&schema, &data, 100);
    }
}

#[test]
fn input_arrow_json_would_refuse_or_read_differently_is_refused() {
    let schema = schema();
    let decoder = ColumnDecoder::new(schema.clone(), 8).unwrap();
    for bad in [
        r#"{"id":"a""#,
        r#"{"id":"a",}"#,
        r#"{"id":"a"} x"#,
        r#"["id"]"#,
        r#"null"#,
        r#"{"n":1}"#,                     // non-nullable id missing
        r#"{"id":null}"#,                 // non-nullable id null
        r#"{"id":"a","device":{"v":1}}"#, // non-nullable os missing in a present struct
        r#"{"id":"a","n":"7"}"#,          // arrow-json coerces; left to it
        r#"{"id":7}"#,                    // a number for a string
        r#"{"id":"a","i":2147483648}"#,   // out of range
        r#"{"id":"a","n":1.0}"#,          // a float for an integer: left to arrow-json
        r#"{"id":"a","n":01}"#,           // leading zero
        r#"{"id":"a","d":1.}"#,           // no digits after the point
        r#"{"id":"a","d":1e999}"#,        // infinite
        r#"{"id":"a","at":1}"#,           // epoch number: left to arrow-json
        r#"{"id":"a","at":"yesterday"}"#, // not a timestamp
        r#"{"id":"a","id":"b"}"#,         // duplicate: arrow-json keeps the last
        r#"{"id":"\ud83d"}"#,             // lone surrogate
        r#"{"id":"\x"}"#,                 // bad escape
        r#"{"id":"a","ok":tru}"#,
        r#"{"id":"a","flags":"p"}"#,
    ] {
        assert!(decoder.decode(bad.as_bytes()).is_err(), "accepted {bad}");
    }
    assert!(decoder.decode(b"{\"id\":\"\xff\"}").is_err(), "accepted invalid UTF-8");
}

/// The safety property the fallback rests on: whatever the direct decoder accepts,
/// arrow-json accepts too, with the same batches.
#[test]
fn mutated_input_is_refused_or_decoded_exactly_as_arrow_json_does() {
    let schema = schema();
    let decoder = ColumnDecoder::new(schema.clone(), 3).unwrap();
    let alphabet = b"{}[]\":,\\ \n0123456789.-+eEtrufalsn\"abu";
    let base = LINES.join("\n");
    // INLET_FUZZ_ITERATIONS and INLET_FUZZ_SEED widen the search when run by hand.
    let setting = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let mut rng = StdRng::seed_from_u64(setting("INLET_FUZZ_SEED", 7));
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..setting("INLET_FUZZ_ITERATIONS", 3000) {
        let mut data = base.clone().into_bytes();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(0..data.len());
            match rng.random_range(0..3) {
                0 => {
                    data.remove(at);
                }
                1 => data.insert(at, alphabet[rng.random_range(0..alphabet.len())]),
                _ => data[at] = alphabet[rng.random_range(0..alphabet.len())],
            }
        }
        match decoder.decode(&data) {
            Ok(direct) => {
                accepted += 1;
                let expected = arrow_json(&schema, &data, 3);
                if expected.is_some() && escapes_arrow_json_misreads(&data) {
                    continue;
                }
                assert_eq!(Some(direct), expected, "{}", show(&data));
            }
            Err(_) => refused += 1,
        }
    }
    // Both outcomes must actually be exercised for the property to mean anything.
    assert!(accepted > 100 && refused > 100, "accepted {accepted}, refused {refused}");
}

/// arrow-json 59 combines a surrogate pair with `|` where `+` is due, which is only right
/// below U+20000 (high surrogates up to \uD83F).
fn escapes_arrow_json_misreads(data: &[u8]) -> bool {
    data.windows(6).any(|w| {
        w.starts_with(b"\\u")
            && std::str::from_utf8(&w[2..])
                .ok()
                .and_then(|h| u16::from_str_radix(h, 16).ok())
                .is_some_and(|high| (0xD840..=0xDBFF).contains(&high))
    })
}

#[test]
fn utc_timestamps_are_read_as_arrow_cast_reads_them() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut fast = 0;
    for _ in 0..20_000 {
        let digits: usize = rng.random_range(0..=10);
        let fraction: String = (0..digits).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect();
        let text = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}{fraction}Z",
            rng.random_range(0..=9999),
            rng.random_range(0..=13),
            rng.random_range(0..=32),
            rng.random_range(0..=24),
            rng.random_range(0..=60),
            rng.random_range(0..=60),
            if digits > 0 || rng.random_bool(0.1) { "." } else { "" },
        );
        let expected = string_to_datetime(&chrono::Utc, &text).ok().map(|t| t.timestamp_micros());
        match utc_micros(text.as_bytes()) {
            Some(micros) => {
                fast += 1;
                assert_eq!(Some(micros), expected, "{text}");
            }
            // Left to arrow-cast, which decides: only rarities may take that way.
            None => assert!(expected.is_none() || text.contains(":60") || digits == 10, "{text} -> {expected:?}"),
        }
    }
    assert!(fast > 10_000, "{fast}");
    for text in
        ["1970-01-01T00:00:00Z", "2000-02-29T23:59:59.999999999Z", "1969-12-31T23:59:59.5Z", "0000-03-01T00:00:00Z"]
    {
        let expected = string_to_datetime(&chrono::Utc, text).unwrap().timestamp_micros();
        assert_eq!(utc_micros(text.as_bytes()), Some(expected), "{text}");
    }
    for text in ["2026-05-16T10:00:00+00:00", "2026-05-16 10:00:00Z", "2026-02-29T00:00:00Z", "2026-05-16T10:00:00.Z"] {
        assert_eq!(utc_micros(text.as_bytes()), None, "{text}");
    }
}

#[test]
fn short_decimals_are_the_doubles_a_correct_parser_reads() {
    let mut rng = StdRng::seed_from_u64(9);
    let mut fast = 0;
    for _ in 0..50_000 {
        let magnitude = 10u64.pow(rng.random_range(1..=12));
        let integer: u64 = rng.random_range(0..magnitude);
        let fraction: String =
            (0..rng.random_range(0..=9)).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect();
        let sign = if rng.random_bool(0.2) { "-" } else { "" };
        let text = if fraction.is_empty() { format!("{sign}{integer}") } else { format!("{sign}{integer}.{fraction}") };
        let mut cursor = Cursor { bytes: text.as_bytes(), pos: 0, scratch: Vec::new() };
        if let Some(value) = cursor.short_decimal() {
            fast += 1;
            // std's parser rounds correctly, as lexical (arrow-json's) does.
            assert_eq!(value.to_bits(), text.parse::<f64>().unwrap().to_bits(), "{text}");
            assert_eq!(cursor.pos, text.len(), "{text}");
        }
    }
    assert!(fast > 30_000, "{fast}");
    // Past 15 digits, an exponent, or not JSON: left to the general path, nothing read.
    for text in ["9007199254740993", "1234567890.1234567", "1e5", "2.5E-3", "01.5", "1.", ".5", "-", "-x"] {
        let mut cursor = Cursor { bytes: text.as_bytes(), pos: 0, scratch: Vec::new() };
        assert_eq!((cursor.short_decimal(), cursor.pos), (None, 0), "{text}");
    }
    let schema = Arc::new(Schema::new(vec![Field::new("d", DataType::Float64, true)]));
    let lines =
        ["0", "-0", "-0.0", "0.1", "636.82", "123456789012345", "0.000000000000001", "12345678901234567890", "1e-7"]
            .map(|d| format!("{{\"d\":{d}}}"))
            .join("\n");
    assert_same_as_arrow_json(&schema, lines.as_bytes(), 4);
}

#[test]
fn small_integers_and_their_neighbours_read_as_arrow_json_reads_them() {
    let fields = vec![Field::new("n", DataType::Int64, true), Field::new("i", DataType::Int32, true)];
    let schema = Arc::new(Schema::new(fields));
    let decoder = ColumnDecoder::new(schema.clone(), 8).unwrap();
    for n in
        ["0", "7", "-5", "123456789012345678", "1234567890123456789", "9223372036854775807", "-9223372036854775808"]
    {
        assert_same_as_arrow_json(&schema, format!("{{\"n\":{n}}}").as_bytes(), 4);
    }
    for i in ["0", "42", "-5", "2147483647", "-2147483648"] {
        assert_same_as_arrow_json(&schema, format!("{{\"i\":{i},\"n\":{i}}}").as_bytes(), 4);
    }
    for (column, bad) in [
        ("n", "9223372036854775808"),
        ("i", "2147483648"),
        ("i", "123456789012345678"),
        ("n", "01"),
        ("n", "1.0"),
        ("n", "1e3"),
    ] {
        let line = format!("{{\"{column}\":{bad}}}");
        // Refused here, the object goes to arrow-json, which decides (it reads `01` as 1).
        assert!(decoder.decode(line.as_bytes()).is_err(), "{line}");
    }
}

#[test]
fn strings_either_side_of_the_short_path_decode_alike() {
    let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
    // Plain and escaped strings of every length up to past the two 16-byte steps, ending
    // just before, at and after each, and at the very end of the input.
    let mut lines = Vec::new();
    for len in 0..70 {
        let plain: String = (0..len).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        lines.push(format!("{{\"s\":\"{plain}\"}}"));
        lines.push(format!("{{\"s\":\"{plain}\\n\"}}"));
        lines.push(format!("{{\"s\":\"\\t{plain}\"}}"));
        lines.push(format!("{{\"s\":\"é{plain}\"}}"));
    }
    for line in &lines {
        assert_same_as_arrow_json(&schema, line.as_bytes(), 4);
    }
    assert_same_as_arrow_json(&schema, lines.join("\n").as_bytes(), 7);
}

#[test]
fn surrogate_pairs_beyond_u20000_decode_to_the_right_character() {
    let schema = schema();
    let line = br#"{"id":"\ud840\udc00 \udbff\udfff \ud83d\ude00"}"#;
    let batches = ColumnDecoder::new(schema, 8).unwrap().decode(line).unwrap();
    let id = batches[0].column(0).as_any().downcast_ref::<StringArray>().unwrap().value(0);
    assert_eq!(id, "\u{20000} \u{10FFFF} \u{1F600}");
}

#[test]
fn the_short_scan_finds_the_first_quote_or_backslash_anywhere() {
    for len in 0..80 {
        for at in 0..=len {
            for mark in [b'"', b'\\'] {
                // Bytes either side of the marks' values, and multi-byte UTF-8, around it.
                let mut bytes: Vec<u8> = (0..len).map(|i| [b'!', b'#', b'[', b']', 0xC3, 0xA9][i % 6]).collect();
                if at < len {
                    bytes[at] = mark;
                    if at + 3 < len {
                        bytes[at + 3] = b'"';
                    }
                }
                let expected = bytes.iter().position(|b| *b == b'"' || *b == b'\\');
                assert_eq!(quote_or_backslash(&bytes), expected, "len {len}, mark at {at}");
                if len == 8 {
                    assert_eq!(first_mark_in_word(&bytes), expected, "word, mark at {at}");
                }
            }
        }
    }
}

#[test]
fn short_comparisons_see_every_byte() {
    for len in 0..32 {
        let a: Vec<u8> = (0..len as u8).collect();
        assert!(same_short(&a, &a.clone()));
        for at in 0..len {
            let mut b = a.clone();
            b[at] ^= 0x40;
            assert!(!same_short(&a, &b), "len {len}, differs at {at}");
        }
    }
}

#[test]
fn schemas_with_types_it_does_not_handle_are_left_to_arrow_json() {
    let schema = TableSchema::parse(r#"{"fields": [{"name": "blob", "type": "binary"}]}"#, "t").unwrap();
    assert!(ColumnDecoder::new(schema.decoded, 8).is_none());
}
