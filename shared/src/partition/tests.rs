use arrow_array::{Int64Array, TimestampMicrosecondArray};
use arrow_schema::{Field, Schema, TimeUnit};
use deltalake::kernel::StructField;

use super::*;

/// 2026-05-15T23:59:59Z, in microseconds.
const BEFORE_MIDNIGHT: i64 = 1_778_889_599_000_000;
const MIDNIGHT: i64 = 1_778_889_600_000_000;

fn key_of(spec: &PartitionSpec, key: &str) -> std::result::Result<KeyValues, String> {
    spec.key_values(key)
}

fn text_of(spec: &PartitionSpec, key: &str) -> Option<String> {
    match key_of(spec, key).ok()?.into_iter().next()?? {
        KeyValue::Text(text) => Some(text),
        other => panic!("not text: {other:?}"),
    }
}

fn timestamps(values: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
}

fn utc() -> ArrowType {
    ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

#[test]
fn specs_parse_and_bad_ones_name_the_variable() {
    let key: PartitionSpec = "date=key".parse().unwrap();
    let column = PartitionColumn { name: "date".into(), source: PartitionSource::KeySegment(ValueType::String) };
    assert_eq!(key, PartitionSpec { columns: vec![column] });
    let field: PartitionSpec = "day = event_time".parse().unwrap();
    assert_eq!(field.columns[0].source, PartitionSource::FieldDateText("event_time".into()));
    assert!("date".parse::<PartitionSpec>().unwrap_err().to_string().contains("INLET_PARTITION_BY"));
}

#[test]
fn specs_of_several_typed_columns_parse_and_bad_ones_say_why() {
    let spec: PartitionSpec =
        "service=key, day=key:date, shard=key:integer, date=date(at), hour=hour( at ), region=value(region)"
            .parse()
            .unwrap();
    let sources: Vec<PartitionSource> = spec.columns.iter().map(|c| c.source.clone()).collect();
    assert_eq!(
        sources,
        vec![
            PartitionSource::KeySegment(ValueType::String),
            PartitionSource::KeySegment(ValueType::Date),
            PartitionSource::KeySegment(ValueType::Integer),
            PartitionSource::FieldDate("at".into()),
            PartitionSource::FieldHour("at".into()),
            PartitionSource::FieldValue("region".into()),
        ]
    );
    assert_eq!(spec.names(), vec!["service", "day", "shard", "date", "hour", "region"]);
    for (bad, why) in [
        ("date=key,date=date(at)", "listed twice"),
        ("date=key,Date=date(at)", "listed twice"),
        ("date=month(at)", "unknown source"),
        ("date=key:float", "unknown source"),
        ("date=date()", "unknown source"),
        ("date=key,", "has no `=`"),
        ("=key", "is empty"),
    ] {
        let err = bad.parse::<PartitionSpec>().unwrap_err().to_string();
        assert!(err.contains(why) && err.contains("INLET_PARTITION_BY"), "{bad}: {err}");
    }
}

#[test]
fn key_segments_give_the_value() {
    let spec: PartitionSpec = "date=key".parse().unwrap();
    assert_eq!(text_of(&spec, "web/date=2026-05-16/part.json.zst").as_deref(), Some("2026-05-16"));
    assert_eq!(text_of(&spec, "web/part-date=x.json.zst"), None);
    assert_eq!(text_of(&spec, "date=2026-05-16.json"), None, "a file name is not a directory segment");
    let err = key_of(&spec, "web/part-date=x.json.zst").unwrap_err();
    assert!(err.contains("no `date=` directory segment"), "{err}");
    let err = key_of(&spec, "web/date=/part.json.zst").unwrap_err();
    assert!(err.contains("empty"), "{err}");
}

#[test]
fn typed_key_segments_parse_exactly_or_fail_their_object() {
    let spec: PartitionSpec = "service=key,day=key:date,hour=key:integer".parse().unwrap();
    let values = key_of(&spec, "raw/service=web/day=2026-05-16/hour=07/x.json.zst").unwrap();
    assert_eq!(
        values,
        vec![Some(KeyValue::Text("web".into())), Some(KeyValue::Date(20_589)), Some(KeyValue::Integer(7))]
    );
    for (key, why) in [
        ("raw/service=web/day=2026-5-16/hour=1/x", "is not a date"),
        ("raw/service=web/day=2026-02-30/hour=1/x", "is not a date"),
        ("raw/service=web/day=2026-05-16/hour=x1/x", "is not an integer"),
        ("raw/service=web/day=2026-05-16/hour=+1/x", "is not an integer"),
        ("raw/service=web/day=2026-05-16/hour=99999999999/x", "is not a 32-bit integer"),
        ("raw/service=web/day=2026-05-16/x", "no `hour=` directory segment"),
        ("raw/service=web/day=+10000-01-01/hour=1/x", "is not a date"),
        ("raw/service=web/day=0000-01-01/hour=1/x", "is not a date"),
        ("raw/service=web/day=-0001-01-01/hour=1/x", "is not a date"),
        ("raw/service=__HIVE_DEFAULT_PARTITION__/day=2026-05-16/hour=1/x", "name of a null partition"),
    ] {
        let err = key_of(&spec, key).unwrap_err();
        assert!(err.contains(why), "{key}: {err}");
    }
}

#[test]
fn field_dates_split_rows_across_midnight() {
    let schema = Arc::new(Schema::new(vec![Field::new("at", utc(), true), Field::new("date", ArrowType::Utf8, true)]));
    let at = timestamps(vec![Some(BEFORE_MIDNIGHT), Some(MIDNIGHT), None, Some(MIDNIGHT - 1)]);
    let batch = RecordBatch::try_new(schema, vec![at, Arc::new(StringArray::from(vec![None::<&str>; 4]))]).unwrap();
    let spec: PartitionSpec = "date=at".parse().unwrap();
    let parts = spec.split(batch, &vec![None]).unwrap();
    let summary: Vec<(PartitionValues, usize)> = parts.iter().map(|(v, b)| (v.clone(), b.num_rows())).collect();
    let values = |v: Option<&str>| PartitionValues(vec![v.map(str::to_string)]);
    assert_eq!(summary, vec![(values(None), 1), (values(Some("2026-05-15")), 2), (values(Some("2026-05-16")), 1)]);
    let filled = parts[1].1.column(1).as_string::<i32>();
    assert!(filled.iter().all(|v| v == Some("2026-05-15")));
}

/// A batch of `at` (timestamps), `region` (strings), `n` (longs) and the partition columns of
/// `spec`, all null, as the decoder leaves them.
fn decoded(spec: &PartitionSpec, at: Vec<Option<i64>>, regions: Vec<Option<&str>>) -> RecordBatch {
    let rows = at.len();
    let mut fields = vec![
        Field::new("at", utc(), true),
        Field::new("region", ArrowType::Utf8, true),
        Field::new("n", ArrowType::Int64, true),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        timestamps(at),
        Arc::new(StringArray::from(regions)),
        Arc::new(Int64Array::from((0..rows as i64).map(|n| n % 2).collect::<Vec<_>>())),
    ];
    let declared = StructType::try_new([
        StructField::new("at", DataType::TIMESTAMP, true),
        StructField::new("region", DataType::STRING, true),
        StructField::new("n", DataType::LONG, true),
    ])
    .unwrap();
    for (column, kind) in spec.columns.iter().zip(spec.delta_types(&declared).unwrap()) {
        let kind: ArrowType = (&kind).try_into_arrow().unwrap();
        columns.push(arrow_array::new_null_array(&kind, rows));
        fields.push(Field::new(&column.name, kind, true));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;

#[test]
fn three_columns_split_rows_into_tuples_with_typed_values() {
    let spec: PartitionSpec = "service=key,date=date(at),hour=hour(at)".parse().unwrap();
    let keys = key_of(&spec, "raw/service=web/x.json.zst").unwrap();
    let at = vec![Some(BEFORE_MIDNIGHT), Some(MIDNIGHT), Some(BEFORE_MIDNIGHT - 3_600_000_000), Some(MIDNIGHT), None];
    let batch = decoded(&spec, at, vec![Some("eu"); 5]);
    let parts = spec.split(batch, &keys).unwrap();
    let summary: Vec<(Vec<Option<&str>>, usize)> =
        parts.iter().map(|(values, part)| (values.0.iter().map(Option::as_deref).collect(), part.num_rows())).collect();
    assert_eq!(
        summary,
        vec![
            (vec![Some("web"), None, None], 1),
            (vec![Some("web"), Some("2026-05-15"), Some("22")], 1),
            (vec![Some("web"), Some("2026-05-15"), Some("23")], 1),
            (vec![Some("web"), Some("2026-05-16"), Some("0")], 2),
        ]
    );
    let midnight = &parts[3].1;
    assert_eq!(midnight.column(3).as_string::<i32>().value(1), "web");
    assert_eq!(midnight.column(4).as_primitive::<Date32Type>().value(0), 20_589, "a date, typed");
    assert_eq!(midnight.column(5).as_primitive::<arrow_array::types::Int32Type>().value(1), 0, "an integer");
    assert_eq!(spec.directory(&parts[3].0), "service=web/date=2026-05-16/hour=0");
    assert_eq!(
        spec.directory(&parts[0].0),
        "service=web/date=__HIVE_DEFAULT_PARTITION__/hour=__HIVE_DEFAULT_PARTITION__"
    );
}

#[test]
fn field_values_partition_as_written_in_the_fields_type() {
    let spec: PartitionSpec = "region=value(region),parity=value(n)".parse().unwrap();
    let batch = decoded(&spec, vec![Some(0); 4], vec![Some("eu/west"), None, Some("eu/west"), Some("ü")]);
    let parts = spec.split(batch, &vec![None, None]).unwrap();
    let summary: Vec<(Vec<Option<&str>>, usize)> =
        parts.iter().map(|(values, part)| (values.0.iter().map(Option::as_deref).collect(), part.num_rows())).collect();
    assert_eq!(
        summary,
        vec![(vec![None, Some("1")], 1), (vec![Some("eu/west"), Some("0")], 2), (vec![Some("ü"), Some("1")], 1),]
    );
    assert_eq!(parts[1].1.column(4).as_primitive::<Int64Type>().value(0), 0, "the field's own type");
    assert_eq!(spec.directory(&parts[1].0), "region=eu%2Fwest/parity=0", "a value cannot make a directory");
    assert_eq!(spec.directory(&parts[2].0), "region=%C3%BC/parity=1");

    let empty = decoded(&spec, vec![Some(0)], vec![Some("")]);
    let err = spec.split(empty, &vec![None, None]).unwrap_err();
    assert!(err.contains("empty string"), "{err}");
}

#[test]
fn partition_columns_must_read_fields_of_a_fitting_type() {
    let declared = StructType::try_new([
        StructField::new("day", DataType::DATE, true),
        StructField::new("x", DataType::DOUBLE, true),
    ])
    .unwrap();
    let types = |spec: &str| spec.parse::<PartitionSpec>().unwrap().delta_types(&declared);
    assert_eq!(
        types("d=date(day),t=day,k=key:integer").unwrap(),
        vec![DataType::DATE, DataType::STRING, DataType::INTEGER]
    );
    assert_eq!(types("d=value(day)").unwrap(), vec![DataType::DATE]);
    for (spec, why) in [
        ("h=hour(day)", "must be a declared timestamp for hour()"),
        ("v=value(x)", "must be a declared string, integer type, date or boolean"),
        ("d=date(nope)", "not a declared top-level field"),
        ("d=x", "must be a declared timestamp or date"),
    ] {
        let err = types(spec).unwrap_err();
        assert!(err.contains(why), "{spec}: {err}");
    }
}

#[test]
fn values_too_long_for_a_storage_key_fail_their_object() {
    let spec: PartitionSpec = "area=value(region)".parse().unwrap();
    // 86 three-byte characters: 258 bytes as written, 774 percent-encoded.
    let long = "東".repeat(86);
    let batch = decoded(&spec, vec![Some(0), Some(0)], vec![Some("eu"), Some(long.as_str())]);
    let err = spec.split(batch, &vec![None]).unwrap_err();
    assert!(err.contains("longer than a storage key allows"), "{err}");
    let fits = decoded(&spec, vec![Some(0)], vec![Some(&"東".repeat(20))]);
    assert_eq!(spec.split(fits, &vec![None]).unwrap().len(), 1);
    let null_named = decoded(&spec, vec![Some(0)], vec![Some("__HIVE_DEFAULT_PARTITION__")]);
    assert!(spec.split(null_named, &vec![None]).unwrap_err().contains("name of a null partition"));
}

#[test]
fn a_batch_of_one_partition_or_none_is_not_copied() {
    let spec: PartitionSpec = "service=key,date=date(at)".parse().unwrap();
    let keys = key_of(&spec, "raw/service=web/x.json.zst").unwrap();
    let batch = decoded(&spec, vec![Some(MIDNIGHT), Some(MIDNIGHT + 1)], vec![Some("eu"); 2]);
    let parts = spec.split(batch, &keys).unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].1.num_rows(), 2);
    assert_eq!(parts[0].1.column(4).as_primitive::<Date32Type>().value(1), 20_589);
    let empty = decoded(&spec, vec![], vec![]);
    assert!(spec.split(empty, &keys).unwrap().is_empty(), "no rows, no partition");
}
