//! One test per row of the README's conversion table: what each column type takes from JSON,
//! what it becomes, and what is refused (with the field and the reason).

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{Array, ArrayRef};

use super::ColumnDecoder;
use crate::schema::TableSchema;

/// The value `json` decoded into a column of declared `type_spec`, or the refusal's reason.
fn convert(type_spec: &str, json: &str) -> Result<ArrayRef, String> {
    let schema = TableSchema::parse(&format!(r#"{{"fields":[{{"name":"v","type":{type_spec}}}]}}"#), "t").unwrap();
    let decoder = ColumnDecoder::new(schema.decoded.clone(), &schema.formats, 8, false);
    let decoded = decoder.decode(format!(r#"{{"v":{json}}}"#).as_bytes()).unwrap();
    match decoded.refused.first() {
        Some(refused) => Err(refused.reason.clone()),
        None => Ok(decoded.batches[0].column(0).clone()),
    }
}

fn refused(type_spec: &str, json: &str) -> String {
    convert(type_spec, json).expect_err(&format!("{type_spec} took {json}"))
}

fn micros(type_spec: &str, json: &str) -> i64 {
    let column = convert(type_spec, json).unwrap_or_else(|reason| panic!("{type_spec} refused {json}: {reason}"));
    column.as_primitive::<TimestampMicrosecondType>().value(0)
}

/// 2026-05-16T10:00:00Z.
const AT: i64 = 1_778_925_600_000_000;

#[test]
fn strings_take_json_strings_as_written() {
    let column = convert(r#""string""#, r#""tab\t é \u00e9 \ud842\udfb7""#).unwrap();
    assert_eq!(column.as_string::<i32>().value(0), "tab\t é é \u{20BB7}");
    for other in ["7", "true", "{}", "[]"] {
        assert!(refused(r#""string""#, other).contains("field v"), "{other}");
    }
    assert!(refused(r#""string""#, "\"raw\ttab\"").contains("control character"));
}

#[test]
fn booleans_take_true_and_false_only() {
    let column = convert(r#""boolean""#, "true").unwrap();
    assert!(column.as_boolean().value(0));
    for other in [r#""true""#, "1", "0"] {
        assert_eq!(refused(r#""boolean""#, other), "field v: expected true or false");
    }
}

#[test]
fn integers_take_json_integers_within_their_range_exactly() {
    assert_eq!(convert(r#""byte""#, "-128").unwrap().as_primitive::<Int8Type>().value(0), -128);
    assert_eq!(convert(r#""short""#, "32767").unwrap().as_primitive::<Int16Type>().value(0), 32767);
    assert_eq!(convert(r#""integer""#, "-7").unwrap().as_primitive::<Int32Type>().value(0), -7);
    let long = convert(r#""long""#, "-9223372036854775808").unwrap();
    assert_eq!(long.as_primitive::<Int64Type>().value(0), i64::MIN);
    for fraction in ["5.7", "1e-5", "1e3", "1.0", "9007199254740993.0"] {
        assert_eq!(refused(r#""long""#, fraction), "field v: expected an integer (no fraction or exponent)");
    }
    for outside in ["9223372036854775808", "-9223372036854775809"] {
        assert_eq!(refused(r#""long""#, outside), "field v: expected an integer within the column's range");
    }
    assert_eq!(refused(r#""byte""#, "128"), "field v: expected an integer within the column's range");
    assert_eq!(refused(r#""long""#, r#""7""#), "field v: expected an integer");
    assert!(refused(r#""long""#, "01").contains("field v"));
}

#[test]
fn floats_take_any_number_as_the_nearest_value_within_range() {
    assert_eq!(convert(r#""double""#, "0.1").unwrap().as_primitive::<Float64Type>().value(0), 0.1);
    assert_eq!(
        convert(r#""double""#, "12345678901234567890").unwrap().as_primitive::<Float64Type>().value(0),
        1.2345678901234567e19
    );
    assert_eq!(convert(r#""float""#, "0.1").unwrap().as_primitive::<Float32Type>().value(0), 0.1f32);
    assert_eq!(convert(r#""float""#, "-0.0").unwrap().as_primitive::<Float32Type>().value(0), -0.0f32);
    for outside in ["1e39", "-1e39", "1e-50"] {
        assert_eq!(refused(r#""float""#, outside), "field v: expected a number within the column's range", "{outside}");
    }
    assert_eq!(refused(r#""double""#, "1e400"), "field v: expected a number within the column's range");
    for not_json in ["5.", "-.5", ".5", "+1", "NaN", r#""1.5""#] {
        assert!(refused(r#""double""#, not_json).starts_with("field v: expected"), "{not_json}");
    }
}

#[test]
fn dates_take_iso_calendar_dates_of_years_1_to_9999() {
    assert_eq!(convert(r#""date""#, r#""2026-05-16""#).unwrap().as_primitive::<Date32Type>().value(0), 20589);
    assert_eq!(convert(r#""date""#, r#""0001-01-01""#).unwrap().as_primitive::<Date32Type>().value(0), -719_162);
    assert_eq!(refused(r#""date""#, r#""0000-12-31""#), "field v: expected a date in years 1 to 9999");
    for other in [r#""2026-02-30""#, r#""2026-05-16T10:00:00Z""#, r#""16/05/2026""#, r#""+12026-01-01""#] {
        assert_eq!(refused(r#""date""#, other), "field v: expected a date (YYYY-MM-DD)", "{other}");
    }
    assert_eq!(refused(r#""date""#, "20589"), "field v: expected a date string (YYYY-MM-DD)");
}

#[test]
fn timestamps_take_iso_text_with_or_without_seconds() {
    assert_eq!(micros(r#""timestamp""#, r#""2026-05-16T10:00:00Z""#), AT);
    assert_eq!(micros(r#""timestamp""#, r#""2026-05-16T10:00Z""#), AT);
    assert_eq!(micros(r#""timestamp""#, r#""2026-05-16T12:00+02:00""#), AT);
    assert_eq!(micros(r#""timestamp""#, r#""2026-05-16 10:00:00""#), AT, "no zone: UTC");
    assert_eq!(micros(r#""timestamp""#, r#""2026-05-16T10:00:00.123456Z""#), AT + 123_456);
    assert_eq!(micros(r#""timestamp""#, r#""2026-05-16T10:00:00.123456000Z""#), AT + 123_456);
    assert_eq!(
        refused(r#""timestamp""#, r#""2026-05-16T10:00:00.123456789Z""#),
        "field v: expected a timestamp no finer than a microsecond"
    );
    assert_eq!(
        refused(r#""timestamp""#, r#""0000-12-31T00:00:00Z""#),
        "field v: expected a timestamp in years 1 to 9999"
    );
    assert_eq!(refused(r#""timestamp""#, r#""yesterday""#), "field v: expected an ISO-8601 timestamp");
    assert_eq!(refused(r#""timestamp""#, r#""2026-05-16T10:00.5Z""#), "field v: expected an ISO-8601 timestamp");
}

#[test]
fn timestamps_take_epoch_numbers_in_their_declared_unit() {
    assert_eq!(micros(r#""timestamp""#, "1778925600"), AT, "seconds by default");
    assert_eq!(micros(r#""timestamp(s)""#, "1778925600.5"), AT + 500_000);
    assert_eq!(micros(r#""timestamp(s)""#, "1.7789256e9"), AT);
    assert_eq!(micros(r#""timestamp(ms)""#, "1778925600123"), AT + 123_000);
    assert_eq!(micros(r#""timestamp(us)""#, "1778925600123456"), AT + 123_456);
    assert_eq!(micros(r#""timestamp(ns)""#, "1778925600123456000"), AT + 123_456);
    assert_eq!(micros(r#""timestamp""#, "-1"), -1_000_000);
    assert_eq!(
        refused(r#""timestamp(ns)""#, "1778925600123456789"),
        "field v: expected an epoch number no finer than a microsecond"
    );
    assert_eq!(
        refused(r#""timestamp""#, "1778925600.0000001"),
        "field v: expected an epoch number no finer than a microsecond"
    );
    assert_eq!(refused(r#""timestamp""#, "1e300"), "field v: expected an epoch number within range");
    assert_eq!(refused(r#""timestamp""#, "300000000000"), "field v: expected a timestamp in years 1 to 9999");
    assert_eq!(refused(r#""timestamp""#, "true"), "field v: expected a timestamp string or an epoch number");
    let nested = TableSchema::parse(r#"{"fields":[{"name":"v","type":{"list":"timestamp(ms)"}}]}"#, "t").unwrap();
    let decoder = ColumnDecoder::new(nested.decoded.clone(), &nested.formats, 8, false);
    let decoded = decoder.decode(b"{\"v\":[1778925600000]}").unwrap();
    let list = decoded.batches[0].column(0).as_list::<i32>();
    assert_eq!(list.value(0).as_primitive::<TimestampMicrosecondType>().value(0), AT, "a unit applies inside lists");
}

#[test]
fn binary_takes_padded_base64_by_default_and_hex_when_declared() {
    assert_eq!(convert(r#""binary""#, r#""aGk=""#).unwrap().as_binary::<i32>().value(0), b"hi");
    assert_eq!(convert(r#""binary(base64)""#, r#""""#).unwrap().as_binary::<i32>().value(0), b"");
    assert_eq!(convert(r#""binary(hex)""#, r#""6869""#).unwrap().as_binary::<i32>().value(0), b"hi");
    assert_eq!(refused(r#""binary""#, r#""aGk""#), "field v: expected padded base64 (RFC 4648)");
    assert_eq!(refused(r#""binary(hex)""#, r#""686""#), "field v: expected hex digits, two per byte");
    assert_eq!(refused(r#""binary""#, "[104]"), "field v: expected a string of encoded bytes");
}

#[test]
fn structs_take_objects_with_each_field_once() {
    let spec = r#"{"struct":[{"name":"a","type":"long"},{"name":"b","type":"string","nullable":false}]}"#;
    let column = convert(spec, r#"{"b":"x","undeclared":[1,{"y":2}]}"#).unwrap();
    let fields = column.as_struct();
    assert!(fields.column(0).is_null(0), "absent: null; undeclared: ignored");
    assert_eq!(refused(spec, r#"{"b":"x","b":"y"}"#), "field v.b: expected each field once (no duplicate keys)");
    assert_eq!(refused(spec, r#"{"a":1}"#), "field v.b: expected a value (the field is not nullable)");
    assert_eq!(refused(spec, r#"{"b":"x","a":"1"}"#), "field v.a: expected an integer");
    assert_eq!(refused(spec, "[]"), "field v: expected an object");
}

#[test]
fn lists_take_arrays_without_empty_elements() {
    let column = convert(r#"{"list":"long"}"#, "[1, 2 ,3]").unwrap();
    assert_eq!(column.as_list::<i32>().value(0).len(), 3);
    for bad in ["[,]", "[1,]", "[1,,2]", "{}"] {
        assert!(refused(r#"{"list":"long"}"#, bad).starts_with("field v: expected"), "{bad}");
    }
}

#[test]
fn maps_take_objects_with_each_key_once() {
    let column = convert(r#"{"map":"long"}"#, r#"{"a":1,"b":null}"#).unwrap();
    assert_eq!(column.as_map().value(0).len(), 2);
    assert_eq!(
        refused(r#"{"map":"long"}"#, r#"{"a":1,"a":2}"#),
        "field v: expected each map key once (no duplicate keys)"
    );
    let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).chain(["\"k3\":0".to_string()]).collect();
    assert!(refused(r#"{"map":"long"}"#, &format!("{{{}}}", many.join(","))).contains("each map key once"));
}

#[test]
fn nulls_fill_nullable_columns_and_are_refused_by_the_others() {
    assert!(convert(r#""long""#, "null").unwrap().is_null(0));
    let schema = TableSchema::parse(r#"{"fields":[{"name":"v","type":"long","nullable":false}]}"#, "t").unwrap();
    let decoder = ColumnDecoder::new(schema.decoded.clone(), &schema.formats, 8, false);
    let decoded = decoder.decode(b"{\"v\":null}\n{}").unwrap();
    let reasons: Vec<&str> = decoded.refused.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(reasons, vec!["field v: expected a value (the field is not nullable)"; 2]);
}

#[test]
fn objects_are_strict_json_one_per_line() {
    let schema = TableSchema::parse(r#"{"fields":[{"name":"v","type":"long"}]}"#, "t").unwrap();
    let decoder = ColumnDecoder::new(schema.decoded.clone(), &schema.formats, 8, false);
    let decoded = decoder.decode(b"{\"v\":1}{\"v\":2}\n{\"v\":3,}\n{\"v\":4} \r\n[1]\n{\"v\":5").unwrap();
    let lines: Vec<(u64, &str)> = decoded.refused.iter().map(|r| (r.line, r.reason.as_str())).collect();
    assert_eq!(
        lines,
        vec![
            (1, "expected the end of the line after the object (one object per line)"),
            (2, "expected a field name"),
            (4, "expected an object"),
            (5, "expected ',' or the end of the container"),
        ]
    );
    assert_eq!(decoded.batches[0].num_rows(), 1);
}

fn units(type_spec: &str, json: &str) -> i128 {
    let column = convert(type_spec, json).unwrap_or_else(|reason| panic!("{type_spec} refused {json}: {reason}"));
    column.as_primitive::<arrow_array::types::Decimal128Type>().value(0)
}

#[test]
fn decimals_take_numbers_and_numeric_strings_exactly_or_refuse_them() {
    let money = r#""decimal(10,2)""#;
    assert_eq!(units(money, "12.5"), 1250);
    assert_eq!(units(money, r#""12.50""#), 1250, "money written as a string");
    assert_eq!(units(money, "-0.01"), -1);
    assert_eq!(units(money, "12.500000"), 1250, "zeros past the scale carry no value");
    assert_eq!(units(money, "1.5e2"), 15000);
    assert_eq!(units(money, "125e-1"), 1250);
    assert_eq!(units(money, "0"), 0);
    assert_eq!(units(money, "99999999.99"), 9_999_999_999);
    // A double would round this; the decimal keeps every digit.
    assert_eq!(
        units(r#""decimal(38,18)""#, "12345678901234567890.123456789012345678"),
        12345678901234567890123456789012345678
    );
    assert_eq!(units(r#""decimal(5,0)""#, "12345"), 12345);
    let rounding = "field v: expected a decimal with no more digits after the point than the column's scale";
    assert_eq!(refused(money, "12.345"), rounding);
    assert_eq!(refused(money, "1e-3"), rounding);
    let overflow = "field v: expected a decimal with no more digits than the column's precision";
    assert_eq!(refused(money, "100000000"), overflow);
    assert_eq!(refused(money, "1e8"), overflow);
    assert_eq!(refused(money, "1e999999999"), overflow);
    for other in [r#""12,50""#, r#""$12""#, r#""""#, r#"" 1""#, "true", "[]"] {
        assert!(refused(money, other).starts_with("field v: expected a decimal"), "{other}");
    }
}

#[test]
fn every_valid_json_number_text_is_judged_by_its_value() {
    let money = r#""decimal(10,2)""#;
    let forty = "1.000000000000000000000000000000000000000";
    assert_eq!(units(money, "0e99999999999999999999"), 0, "zero with any exponent is zero");
    assert_eq!(units(money, "-0.0E-99999999999999999999"), 0);
    assert_eq!(units(money, forty), 100, "trailing zeros carry no value, however many");
    assert_eq!(units(money, r#""0e99999999999999999999""#), 0, "in a string too");
    let overflow = "field v: expected a decimal with no more digits than the column's precision";
    assert_eq!(refused(money, "1e99999999999999999999"), overflow);
    let rounding = "field v: expected a decimal with no more digits after the point than the column's scale";
    assert_eq!(refused(money, "1e-99999999999999999999"), rounding);
    assert_eq!(micros(r#""timestamp""#, "0e99999999999999999999"), 0);
    assert_eq!(micros(r#""timestamp""#, forty), 1_000_000);
    assert_eq!(micros(r#""timestamp(ms)""#, "1778925600000.000000000000000000000000000000000"), AT);
    assert_eq!(refused(r#""timestamp""#, "1e99999999999999999999"), "field v: expected an epoch number within range");
    assert_eq!(
        refused(r#""timestamp""#, "1e-99999999999999999999"),
        "field v: expected an epoch number no finer than a microsecond"
    );
}

#[test]
fn decimal_strings_hold_json_number_syntax_only() {
    let money = r#""decimal(10,2)""#;
    for text in [r#""012""#, r#"".5""#, r#""5.""#, r#""+1""#, r#""-.5""#, r#""1e""#, r#""0x10""#, r#""1_000""#] {
        assert_eq!(
            refused(money, text),
            "field v: expected a decimal number (JSON number syntax, in a string or not)",
            "{text}"
        );
    }
    for (text, value) in [(r#""0.5""#, 50), (r#""-12""#, -1200), (r#""1E+1""#, 1000), (r#""0""#, 0)] {
        assert_eq!(units(money, text), value, "{text}");
    }
}

#[test]
fn decimal_types_are_checked_when_the_schema_is_read() {
    for bad in ["decimal(0,0)", "decimal(39,2)", "decimal(5,6)", "decimal(10)", "decimal"] {
        let schema = format!(r#"{{"fields":[{{"name":"v","type":"{bad}"}}]}}"#);
        let err = TableSchema::parse(&schema, "t").unwrap_err().to_string();
        assert!(err.contains("decimal(<precision>,<scale>)"), "{bad}: {err}");
    }
    let schema = TableSchema::parse(r#"{"fields":[{"name":"v","type":"decimal( 18 , 2 )"}]}"#, "t").unwrap();
    assert_eq!(schema.decoded.field(0).data_type(), &arrow_schema::DataType::Decimal128(18, 2));
}

#[test]
fn timestamps_without_a_zone_keep_the_wall_clock_as_written() {
    let ntz = r#""timestamp_ntz""#;
    assert_eq!(micros(ntz, r#""2026-05-16T10:00:00""#), AT);
    assert_eq!(micros(ntz, r#""2026-05-16 10:00:00.25""#), AT + 250_000);
    assert_eq!(micros(ntz, r#""2026-05-16T10:00:00Z""#), AT, "UTC is a wall-clock time too");
    assert_eq!(micros(ntz, r#""2026-05-16T10:00:00+00:00""#), AT);
    assert_eq!(micros(r#""timestamp_ntz(ms)""#, "1778925600123"), AT + 123_000);
    assert_eq!(
        refused(ntz, r#""2026-05-16T12:00:00+02:00""#),
        "field v: expected a timestamp without a time zone (or in UTC)",
        "an offset would have to shift the value"
    );
    assert_eq!(refused(ntz, r#""noon""#), "field v: expected an ISO-8601 timestamp");
    let schema = TableSchema::parse(r#"{"fields":[{"name":"v","type":"timestamp_ntz"}]}"#, "t").unwrap();
    assert_eq!(
        schema.decoded.field(0).data_type(),
        &arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, None)
    );
}

#[test]
fn json_columns_keep_any_value_as_written_and_refuse_what_is_not_json() {
    for value in [
        r#"{"a": [1, 2.50, {"b": null}], "c": "\u00e9\n"}"#,
        r#"[ ]"#,
        r#""text with \"quotes\"""#,
        "12345678901234567890.000",
        "-0.0",
        "true",
        r#"{"a":1,"a":2}"#,
    ] {
        let column = convert(r#""json""#, value).unwrap_or_else(|reason| panic!("json refused {value}: {reason}"));
        assert_eq!(column.as_string::<i32>().value(0), value, "kept as written");
    }
    assert!(convert(r#""json""#, "null").unwrap().is_null(0), "a null value is a null, not the text null");
    assert_eq!(convert(r#""json""#, "[null]").unwrap().as_string::<i32>().value(0), "[null]");
    for (bad, reason) in [
        ("{'a':1}", "field v: expected a string"),
        ("[1,]", "field v: expected a value"),
        ("1e400", "field v: expected a number within the range of a double"),
        ("NaN", "field v: expected a value"),
    ] {
        assert_eq!(refused(r#""json""#, bad), reason, "{bad}");
    }
    // In a list and in a struct, as anywhere else.
    let column = convert(r#"{"list":"json"}"#, r#"[{"x":1}, 2, "s"]"#).unwrap();
    let list = column.as_list::<i32>();
    let items = list.value(0);
    let texts: Vec<&str> = items.as_string::<i32>().iter().map(Option::unwrap).collect();
    assert_eq!(texts, vec![r#"{"x":1}"#, "2", r#""s""#]);
}

#[test]
fn a_field_reads_the_key_it_names_with_from_and_not_its_own_name() {
    let schema = TableSchema::parse(
        r#"{"fields":[
            {"name":"user_agent","type":"string","from":"user agent"},
            {"name":"device","type":{"struct":[{"name":"os_name","from":"os name","type":"string"}]}},
            {"name":"n","type":"long"}
        ]}"#,
        "t",
    )
    .unwrap();
    let decoder = ColumnDecoder::new(schema.decoded.clone(), &schema.formats, 8, false);
    let decoded = decoder
        .decode(
            concat!(
                r#"{"user agent":"curl/8","device":{"os name":"linux"},"n":1}"#,
                "\n",
                r#"{"user_agent":"unread","n":2,"device":{"os_name":"unread"}}"#,
                "\n",
                r#"{"user agent":7}"#
            )
            .as_bytes(),
        )
        .unwrap();
    let reasons: Vec<&str> = decoded.refused.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(reasons, vec!["field user_agent: expected a string"]);
    let batch = &decoded.batches[0];
    let agents = batch.column_by_name("user_agent").unwrap().as_string::<i32>();
    assert_eq!((agents.value(0), agents.is_null(1)), ("curl/8", true), "the column's own name is an unknown key");
    let os = batch.column_by_name("device").unwrap().as_struct().column(0).as_string::<i32>().clone();
    assert_eq!((os.value(0), os.is_null(1)), ("linux", true));
}

/// Random JSON text of any shape, written with random whitespace, escapes and number forms.
fn random_json(rng: &mut rand::rngs::StdRng, depth: usize) -> String {
    use rand::Rng;
    let space = |rng: &mut rand::rngs::StdRng| [" ", "", "\t", "  ", ""][rng.random_range(0..5)].to_string();
    match rng.random_range(0..if depth > 3 { 5 } else { 7 }) {
        0 => ["null", "true", "false"][rng.random_range(0..3)].to_string(),
        1 => ["0", "-0", "12.50", "1e-7", "-3E+2", "9007199254740993", "0.1"][rng.random_range(0..7)].to_string(),
        2 | 3 => ["\"\"", "\"plain\"", "\"tab\\t\\\"q\\\" \\u00e9 é 𠮷\"", "\"\\ud83d\\ude00\"", "\"a\\/b\""]
            [rng.random_range(0..5)]
        .to_string(),
        4 => format!("[{}]", space(rng)),
        5 => {
            let items: Vec<String> = (0..rng.random_range(1..4))
                .map(|_| format!("{}{}{}", space(rng), random_json(rng, depth + 1), space(rng)))
                .collect();
            format!("[{}]", items.join(","))
        }
        _ => {
            let members: Vec<String> = (0..rng.random_range(0..4))
                .map(|i| format!("{}\"k{i}\"{}:{}{}", space(rng), space(rng), space(rng), random_json(rng, depth + 1)))
                .collect();
            format!("{{{}{}}}", members.join(","), space(rng))
        }
    }
}

#[test]
fn json_columns_keep_random_values_of_every_shape_exactly_as_written() {
    use rand::SeedableRng;
    let schema =
        TableSchema::parse(r#"{"fields":[{"name":"id","type":"long"},{"name":"v","type":"json"}]}"#, "t").unwrap();
    let decoder = ColumnDecoder::new(schema.decoded.clone(), &schema.formats, 64, false);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let values: Vec<String> = (0..2000).map(|_| random_json(&mut rng, 0)).collect();
    let text: String =
        values.iter().enumerate().map(|(id, value)| format!("{{\"id\":{id}, \"v\" : {value} }}\r\n")).collect();
    let decoded = decoder.decode(text.as_bytes()).unwrap();
    assert!(decoded.refused.is_empty(), "{:?}", decoded.refused.first());
    let mut row = 0;
    for batch in &decoded.batches {
        let column = batch.column(1).as_string::<i32>();
        for index in 0..batch.num_rows() {
            let expected = (values[row] != "null").then_some(values[row].as_str());
            assert_eq!(column.is_valid(index).then(|| column.value(index)), expected, "row {row}");
            row += 1;
        }
    }
    assert_eq!(row, values.len());
}
