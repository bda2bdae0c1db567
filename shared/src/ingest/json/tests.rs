//! The column decoder: held to arrow-json where their rules agree, and to itself line by
//! line; the strict rules where they do not agree are pinned case by case.

use std::panic::{AssertUnwindSafe, catch_unwind};

use arrow_json::ReaderBuilder;
use arrow_schema::{DataType, Field, Schema};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::cursor::*;
use super::primitive::utc_micros;
use super::*;
use crate::schema::TableSchema;
use arrow_array::StringArray;
use arrow_cast::parse::string_to_datetime;
use arrow_schema::ArrowError;

/// Every type but binary, nested every way the schema language allows.
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
    r#"{"id":"a","at":"2026-05-16T10:00:00.5Z","day":"2026-05-16","b":-128,"s":32767,"i":-7,"n":9223372036854775807,"f":1.5,"d":-0.0,"ok":true,"device":{"os":"ios","v":17,"inner":{"x":-9223372036854775808}},"items":[{"sku":"S1","tags":["x","y"]},{"sku":null,"tags":[]}],"flags":["p"],"attrs":{"k":"v","k2":"again"},"scores":{"a":1e3,"b":null}}"#,
    r#"  { "ok" : false , "id" : "tab\there \"quoted\" back\\slash \/ \b\f\n\r \u00e9\u4e2d \ud83d\ude00" , "d" : 12345678901234567890 , "f" : 3.4028235e38 }  "#,
    r#"{"id":"b","device":null,"items":null,"flags":null,"attrs":null,"at":null,"ok":null}"#,
    r#"{"id":"c","unknown":{"deep":[1,2.5e-3,{"z":[null,true,false,"s\u0041"]}],"e":{}},"other":[],"n":0}"#,
    r#"{"id":"d","device":{"os":"android"},"items":[{}],"flags":[null,"q"],"attrs":{}}"#,
    r#"{"id":"e","at":"2026-05-16 10:00:00+02:00","day":"2026-05-16","d":1E-7,"i":2147483647}"#,
    r#"{"id":"\u0000ctl","note":"escaped\ttab","d":0.1,"f":0.1}"#,
    "{\"id\":\"h\",\r\"n\":-1}\r",
    r#"{"device":{"inner":null,"v":null,"os":"x"},"id":"é"}"#,
];

fn schema() -> SchemaRef {
    TableSchema::parse(SCHEMA, "test").unwrap().decoded
}

/// A decoder of `schema` with every column at its default format.
fn decoder(schema: &SchemaRef, batch_rows: usize) -> ColumnDecoder {
    ColumnDecoder::new(schema.clone(), &ValueFormats::new(), batch_rows, false)
}

/// The rows of `data` if every line of it is accepted.
fn accepted(schema: &SchemaRef, data: &[u8], batch_rows: usize) -> Result<Vec<RecordBatch>, Vec<RefusedLine>> {
    let decoded = decoder(schema, batch_rows).decode(data).unwrap();
    if decoded.refused.is_empty() { Ok(decoded.batches) } else { Err(decoded.refused) }
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
    // A panic in arrow-json counts as a refusal: the column decoder must then refuse too.
    catch_unwind(AssertUnwindSafe(run)).ok().and_then(Result::ok)
}

fn assert_same_as_arrow_json(schema: &SchemaRef, data: &[u8], batch_rows: usize) {
    let direct = accepted(schema, data, batch_rows).unwrap_or_else(|refused| panic!("{refused:?}: {}", show(data)));
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
    let schema = crate::testing::schemas::events().decoded.clone();
    for seed in 1..4 {
        let data = crate::testing::sample::ndjson_object(seed, 0, 128 * 1024);
        assert_same_as_arrow_json(&schema, &data, 100);
    }
}

#[test]
fn input_arrow_json_would_refuse_or_read_differently_is_refused() {
    let schema = schema();
    let decoder = decoder(&schema, 8);
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
        r#"{"id":"a","n":1.0}"#,          // a float for an integer (arrow-json reads 1)
        r#"{"id":"a","n":01}"#,           // leading zero
        r#"{"id":"a","d":1.}"#,           // no digits after the point
        r#"{"id":"a","d":1e999}"#,        // infinite
        r#"{"id":"a","at":1.0000001}"#,   // an epoch number finer than a microsecond
        r#"{"id":"a","at":"yesterday"}"#, // not a timestamp
        r#"{"id":"a","id":"b"}"#,         // duplicate: arrow-json keeps the last
        r#"{"id":"\ud83d"}"#,             // lone surrogate
        r#"{"id":"\x"}"#,                 // bad escape
        r#"{"id":"a","ok":tru}"#,
        r#"{"id":"a","flags":"p"}"#,
        r#"{"id":"f"}{"id":"g"}"#,                     // two objects on one line
        r#"{"id":"a","note":"raw	tab"}"#,              // a raw control character in a string
        r#"{"id":"a","attrs":{"k":"v","k":"again"}}"#, // a duplicate map key
        r#"{"id":"a","flags":[,]}"#,                   // a list with an empty element
        r#"{"id":"a","flags":["p",]}"#,                // a trailing comma
        r#"{"id":"a","d":-.5}"#,                       // no digit before the point
        r#"{"id":"a","d":5.}"#,                        // no digit after it
    ] {
        let decoded = decoder.decode(bad.as_bytes()).unwrap();
        assert!(decoded.batches.is_empty() && decoded.refused.len() == 1, "accepted {bad}: {decoded:?}");
    }
    let decoded = decoder.decode(b"{\"id\":\"\xff\"}").unwrap();
    assert_eq!(decoded.refused.len(), 1, "accepted invalid UTF-8");
    assert!(decoded.refused[0].reason.contains("UTF-8"), "{:?}", decoded.refused);
    // A pretty-printed object is not one line: each of its lines is refused, whatever else
    // the object holds.
    let pretty = "{\"id\":\"a\"}\n{\n  \"id\": \"b\"\n}\n{\"id\":\"c\"}";
    let decoded = decoder.decode(pretty.as_bytes()).unwrap();
    assert_eq!(decoded.refused.iter().map(|r| r.line).collect::<Vec<_>>(), vec![2, 3, 4]);
    assert_eq!(decoded.batches[0].num_rows(), 2);
}

/// Whatever the decoder accepts, arrow-json reads the same (where their rules agree), and a
/// line's fate is the same whether it is decoded within its object or alone.
#[test]
fn mutated_input_is_refused_or_decoded_exactly_as_arrow_json_does() {
    let schema = schema();
    let decoder = decoder(&schema, 3);
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
        let whole = decoder.decode(&data).unwrap();
        let alone = line_by_line(&decoder, &data);
        assert_eq!(whole.refused, alone.refused, "{}", show(&data));
        assert_eq!(concat(&schema, &whole.batches), concat(&schema, &alone.batches), "{}", show(&data));
        refused += whole.refused.len();
        let kept: Vec<&[u8]> = data
            .split(|b| *b == b'\n')
            .enumerate()
            .filter(|(index, line)| {
                !line.iter().all(u8::is_ascii_whitespace) && !whole.refused.iter().any(|r| r.line == *index as u64 + 1)
            })
            .map(|(_, line)| line)
            .collect();
        accepted += kept.len();
        let kept = kept.join(&b'\n');
        if escapes_arrow_json_misreads(&kept) {
            continue;
        }
        let expected = arrow_json(&schema, &kept, 3).map(|batches| concat(&schema, &batches));
        assert_eq!(Some(concat(&schema, &whole.batches)), expected, "{}", show(&kept));
    }
    // Both outcomes must actually be exercised for the property to mean anything.
    assert!(accepted > 100 && refused > 100, "accepted {accepted}, refused {refused}");
}

/// Each line decoded alone, as if it were its own object, with its line number restored.
fn line_by_line(decoder: &ColumnDecoder, data: &[u8]) -> DecodedRows {
    let mut out = DecodedRows::default();
    let mut start = 0;
    for (index, line) in data.split(|b| *b == b'\n').enumerate() {
        let decoded = decoder.decode(line).unwrap();
        out.lines += decoded.lines;
        out.batches.extend(decoded.batches);
        out.refused.extend(decoded.refused.into_iter().map(|refused| RefusedLine {
            line: index as u64 + 1,
            text: start + refused.text.start..start + refused.text.end,
            reason: refused.reason,
        }));
        start += line.len() + 1;
    }
    out
}

fn concat(schema: &SchemaRef, batches: &[RecordBatch]) -> RecordBatch {
    arrow_select::concat::concat_batches(schema, batches).unwrap()
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
    // Fractions of 7 to 9 digits not ending in zeros take the general path: enough draws that
    // the fast one still sees over 10,000.
    for _ in 0..25_000 {
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
            // Left to the general path, which decides: only rarities may take that way, and
            // fractions finer than a microsecond, which that path refuses.
            None => assert!(
                expected.is_none()
                    || text.contains(":60")
                    || digits == 10
                    || fraction[6.min(digits)..].bytes().any(|d| d != b'0'),
                "{text} -> {expected:?}"
            ),
        }
    }
    assert!(fast > 10_000, "{fast}");
    for text in
        ["1970-01-01T00:00:00Z", "2000-02-29T23:59:59.999999000Z", "1969-12-31T23:59:59.5Z", "0000-03-01T00:00:00Z"]
    {
        let expected = string_to_datetime(&chrono::Utc, text).unwrap().timestamp_micros();
        assert_eq!(utc_micros(text.as_bytes()), Some(expected), "{text}");
    }
    for text in [
        "2026-05-16T10:00:00+00:00",
        "2026-05-16 10:00:00Z",
        "2026-02-29T00:00:00Z",
        "2026-05-16T10:00:00.Z",
        "2000-02-29T23:59:59.999999999Z",
    ] {
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
        let mut cursor = Cursor { bytes: text.as_bytes(), object: text.as_bytes(), pos: 0, scratch: Vec::new() };
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
        let mut cursor = Cursor { bytes: text.as_bytes(), object: text.as_bytes(), pos: 0, scratch: Vec::new() };
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
    let decoder = decoder(&schema, 8);
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
        // arrow-json reads `01` as 1 and `1.0` as 1; here neither is an integer as written.
        assert_eq!(decoder.decode(line.as_bytes()).unwrap().refused.len(), 1, "{line}");
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
    let batches = accepted(&schema, line, 8).unwrap();
    let id = batches[0].column(0).as_any().downcast_ref::<StringArray>().unwrap().value(0);
    assert_eq!(id, "\u{20000} \u{10FFFF} \u{1F600}");
}

#[test]
fn the_short_scan_finds_the_first_quote_backslash_or_control_character_anywhere() {
    for len in 0..80 {
        for at in 0..=len {
            for mark in [b'"', b'\\', 0x00, 0x1f] {
                // Bytes either side of the marks' values, and multi-byte UTF-8, around it.
                let mut bytes: Vec<u8> = (0..len).map(|i| [b'!', b'#', b'[', b']', 0xC3, 0xA9][i % 6]).collect();
                if at < len {
                    bytes[at] = mark;
                    if at + 3 < len {
                        bytes[at + 3] = b'"';
                    }
                }
                let expected = bytes.iter().position(|b| is_mark(*b));
                assert_eq!(string_mark(&bytes), expected, "len {len}, mark at {at}");
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
fn binary_columns_read_base64_by_default_and_hex_when_declared() {
    let schema = TableSchema::parse(
        r#"{"fields": [{"name": "blob", "type": "binary"}, {"name": "hex", "type": "binary(hex)"}]}"#,
        "t",
    )
    .unwrap();
    let decoder = ColumnDecoder::new(schema.decoded.clone(), &schema.formats, 8, false);
    let decoded = decoder.decode(br#"{"blob":"aGk=","hex":"6869"}"#).unwrap();
    assert!(decoded.refused.is_empty(), "{:?}", decoded.refused);
    let batch = &decoded.batches[0];
    assert_eq!(batch.column(0).as_any().downcast_ref::<arrow_array::BinaryArray>().unwrap().value(0), b"hi");
    assert_eq!(batch.column(1).as_any().downcast_ref::<arrow_array::BinaryArray>().unwrap().value(0), b"hi");
    for bad in [r#"{"blob":"aGk"}"#, r#"{"blob":"aGl="}"#, r#"{"blob":"a*k="}"#, r#"{"hex":"686"}"#, r#"{"hex":"6g"}"#]
    {
        let decoded = decoder.decode(bad.as_bytes()).unwrap();
        assert_eq!(decoded.refused.len(), 1, "accepted {bad}");
    }
}

/// The sample lines, a refused line and blank lines in turn, `copies` times over.
fn mixed_text(copies: usize) -> Vec<u8> {
    let mut text = Vec::new();
    for copy in 0..copies {
        for line in LINES {
            text.extend_from_slice(line.as_bytes());
            text.push(b'\n');
        }
        text.extend_from_slice(format!("{{\"id\":{copy}}}\n\n").as_bytes());
    }
    text
}

#[test]
fn decoding_in_steps_gives_what_decoding_at_once_gives_and_each_step_keeps_to_its_budget() {
    let schema = schema();
    let text = mixed_text(200);
    let decoder = decoder(&schema, 64);
    let whole = decoder.decode_from(&text, 5).unwrap();
    for budget in [1, 4096, 64 << 10] {
        let budget = StepBudget { bytes: budget, row_bytes: 40, refused_bytes: 100 };
        let mut progress = ColumnDecoder::start(&text, 5);
        let (mut batches, mut refused, mut lines, mut steps) = (Vec::new(), Vec::new(), 0, 0);
        while !progress.done() {
            let step = decoder.decode_step(&text, &mut progress, budget).unwrap();
            // A step stops at its budget: what it held before its last batch was under it.
            let before_last = step.batches.len().saturating_sub(1);
            let held_before_last: usize =
                step.batches[..before_last].iter().map(|b| b.get_array_memory_size() + b.num_rows() * 40).sum();
            assert!(held_before_last < budget.bytes, "budget {}: {held_before_last} held", budget.bytes);
            assert!(step.lines > 0 || progress.done(), "every step reads a line");
            batches.extend(step.batches);
            refused.extend(step.refused);
            lines += step.lines;
            steps += 1;
        }
        assert!(steps > 1 || budget.bytes > 1 << 20, "budget {} took {steps} steps", budget.bytes);
        let concat = |batches: &[RecordBatch]| arrow_select::concat::concat_batches(&schema, batches).unwrap();
        assert_eq!(concat(&batches), concat(&whole.batches), "budget {}", budget.bytes);
        assert_eq!(refused, whole.refused, "budget {}", budget.bytes);
        assert_eq!(lines, whole.lines);
    }
}

#[test]
fn a_step_of_refused_lines_keeps_to_its_budget_too_with_or_without_a_row_waiting() {
    let schema = schema();
    let budget = StepBudget { bytes: 64 << 10, row_bytes: 0, refused_bytes: 100 };
    for first in ["", "{\"id\":\"a\"}\n"] {
        let text = format!("{first}{}", "not json\n".repeat(10_000));
        let decoder = decoder(&schema, 1024);
        let mut progress = ColumnDecoder::start(text.as_bytes(), 1);
        let step = decoder.decode_step(text.as_bytes(), &mut progress, budget).unwrap();
        assert!(!progress.done() && step.refused.len() < 1000, "{} refused lines in one step", step.refused.len());
        assert_eq!(step.batches.iter().map(RecordBatch::num_rows).sum::<usize>(), first.len().min(1));
        let rest = decoder.decode_step(text.as_bytes(), &mut progress, StepBudget::WHOLE).unwrap();
        assert_eq!(step.refused.len() + rest.refused.len(), 10_000);
        let last = if first.is_empty() { 10_000 } else { 10_001 };
        assert_eq!(rest.refused.last().map(|line| line.line), Some(last));
    }
}

#[test]
fn a_step_resumes_at_its_next_line_with_the_lines_leading_blanks() {
    let schema = schema();
    let text = "  \t not json\n".repeat(2000);
    let decoder = decoder(&schema, 1024).with_max_line_bytes(11);
    let whole = decoder.decode_from(text.as_bytes(), 1).unwrap();
    let mut progress = ColumnDecoder::start(text.as_bytes(), 1);
    let mut refused = Vec::new();
    while !progress.done() {
        let budget = StepBudget { bytes: 1000, row_bytes: 0, refused_bytes: 0 };
        refused.extend(decoder.decode_step(text.as_bytes(), &mut progress, budget).unwrap().refused);
    }
    assert_eq!(refused, whole.refused);
    assert!(refused.iter().all(|line| line.text.len() == 12 && line.reason.contains("over the limit of 11")));
}

#[test]
fn batches_end_early_for_wide_rows_and_long_lines() {
    // 1,000 leaf columns: a batch holds at most BATCH_VALUES values.
    let fields: Vec<Field> = (0..1000).map(|i| Field::new(format!("c{i}"), DataType::Int64, true)).collect();
    let wide = Arc::new(Schema::new(fields));
    let line = format!("{{{}}}\n", (0..1000).map(|i| format!("\"c{i}\":{i}")).collect::<Vec<_>>().join(","));
    let decoded = decoder(&wide, 1024).decode(line.repeat(600).as_bytes()).unwrap();
    assert!(decoded.batches.iter().all(|b| (b.num_rows() - 1) * 1000 < BATCH_VALUES), "values per batch");
    assert!(decoded.batches.len() >= 3);
    assert_eq!(decoded.batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 600);
    // Lines of 1 MiB: a batch ends once it holds 4 MiB of text.
    let narrow = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
    let long = format!("{{\"s\":\"{}\"}}\n", "v".repeat(1 << 20));
    let decoded = decoder(&narrow, 1024).decode(long.repeat(10).as_bytes()).unwrap();
    assert_eq!(decoded.batches.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(), vec![4, 4, 2]);
}
