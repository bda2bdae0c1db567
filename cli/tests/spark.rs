//! Spark's Parquet reader (parquet-java, inside Spark, Databricks, EMR and most JVM engines)
//! reads every data file Inlet writes with the same values as pyarrow: tables built through
//! `inlet convert` and `inlet compact` in every shape (unpartitioned and partitioned, several
//! files, after a schema evolution, after optimize, staged fragments; fragments copied into
//! table files and rows decoded and written again), with decimals,
//! `timestamp_ntz`, timestamps and dates of years 1 and 9999, nested structs, lists and maps,
//! binary, and nulls at every depth. Both of Spark's readers (vectorized and row by row) read
//! each file in one JVM (`tests/reader/spark_read.py`, from the tools virtualenv).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

const SCHEMA_V1: &str = r#"{"fields":[
  {"name":"id","type":"long","nullable":false},
  {"name":"tiny","type":"byte"},
  {"name":"small","type":"short"},
  {"name":"count","type":"integer"},
  {"name":"name","type":"string"},
  {"name":"flag","type":"boolean"},
  {"name":"ratio","type":"double"},
  {"name":"weight","type":"float"},
  {"name":"amount","type":"decimal(10,2)"},
  {"name":"huge","type":"decimal(38,0)"},
  {"name":"exact","type":"decimal(38,18)"},
  {"name":"day","type":"date"},
  {"name":"at","type":"timestamp"},
  {"name":"local","type":"timestamp_ntz"},
  {"name":"blob","type":"binary"},
  {"name":"device","type":{"struct":[
    {"name":"os","type":"string"},
    {"name":"version","type":"long"},
    {"name":"screen","type":{"struct":[{"name":"w","type":"integer"},{"name":"h","type":"integer"}]}}
  ]}},
  {"name":"tags","type":{"list":"string"}},
  {"name":"items","type":{"list":{"struct":[
    {"name":"sku","type":"string"},
    {"name":"price","type":"decimal(12,3)"},
    {"name":"seen","type":{"list":"timestamp"}}
  ]}}},
  {"name":"grid","type":{"list":{"list":"long"}}},
  {"name":"attributes","type":{"map":"string"}},
  {"name":"counters","type":{"map":{"struct":[{"name":"n","type":"long"},{"name":"since","type":"date"}]}}}
]}"#;

/// A rolled-out schema: two columns added, one of them nested.
fn schema_v2() -> String {
    SCHEMA_V1.replacen(
        r#"  {"name":"tiny","type":"byte"},"#,
        r#"  {"name":"tiny","type":"byte"},
  {"name":"region","type":"string"},
  {"name":"geo","type":{"struct":[{"name":"lat","type":"double"},{"name":"lon","type":"double"}]}},"#,
        1,
    )
}

/// Line `index` of a deterministic set cycling through edge values and null patterns.
fn line(index: u64, evolved: bool) -> String {
    let pick = |values: &[Value]| values[index as usize % values.len()].clone();
    let mut row = json!({
        "id": index,
        "tiny": pick(&[json!(-128), json!(127), json!(0), Value::Null]),
        "small": pick(&[json!(-32768), json!(32767), Value::Null]),
        "count": pick(&[json!(-2147483648i64), json!(2147483647), json!(7), Value::Null]),
        "name": pick(&[json!("plain"), json!(""), json!("𠮷 \u{00e9}\u{0301} \"quoted\" \\ tab\t"), Value::Null, json!("x".repeat(300))]),
        "flag": pick(&[json!(true), json!(false), Value::Null]),
        "ratio": pick(&[json!(0.1), json!(-0.0), json!(1.7976931348623157e308), json!(5e-324), json!(-1.5), Value::Null]),
        "weight": pick(&[json!(3.4028235e38), json!(1.0e-45), json!(0.5), Value::Null]),
        "amount": pick(&[json!("12.50"), json!(-0.01), json!("99999999.99"), json!(0), Value::Null]),
        "huge": pick(&[json!("99999999999999999999999999999999999999"), json!("-99999999999999999999999999999999999999"), json!(1), Value::Null]),
        "exact": pick(&[json!("12345678901234567890.123456789012345678"), json!("-0.000000000000000001"), Value::Null]),
        "day": pick(&[json!("0001-01-01"), json!("9999-12-31"), json!("1970-01-01"), json!("2026-05-16"), Value::Null]),
        "at": pick(&[json!("0001-01-01T00:00:00Z"), json!("9999-12-31T23:59:59.999999Z"), json!("2026-05-16T12:00:00.123456+02:00"), json!(1_700_000_000), Value::Null]),
        "local": pick(&[json!("0001-01-01T00:00:00"), json!("9999-12-31 23:59:59.999999"), json!("2026-05-16T10:00:00"), Value::Null]),
        "blob": pick(&[json!("AAEC/w=="), json!(""), Value::Null]),
        "device": pick(&[
            json!({"os": "linux", "version": 6, "screen": {"w": 1920, "h": 1080}}),
            json!({"os": null, "version": null, "screen": null}),
            json!({"os": "ios", "screen": {"w": null, "h": 2}}),
            json!({}),
            Value::Null,
        ]),
        "tags": pick(&[json!(["a", "b"]), json!([]), json!([null, "c", null]), Value::Null]),
        "items": pick(&[
            json!([{"sku": "s1", "price": "1.005", "seen": ["0001-01-01T00:00:00Z", null]}, {"sku": null, "price": null, "seen": null}]),
            json!([null, {"sku": "s2", "price": "-999999999.999", "seen": []}]),
            json!([]),
            Value::Null,
        ]),
        "grid": pick(&[json!([[1, 2], [], null, [null, 9223372036854775807i64]]), json!([]), Value::Null]),
        "attributes": pick(&[json!({"k": "v", "empty": "", "none": null}), json!({}), Value::Null]),
        "counters": pick(&[
            json!({"a": {"n": -9223372036854775808i64, "since": "0001-01-01"}, "b": null, "c": {"n": null, "since": null}}),
            json!({}),
            Value::Null,
        ]),
    });
    if evolved {
        row["region"] = pick(&[json!("eu-west-1"), Value::Null]);
        row["geo"] = pick(&[json!({"lat": 48.85, "lon": 2.35}), json!({"lat": null}), Value::Null]);
    }
    row.to_string()
}

fn write_object(dir: &Path, name: &str, lines: std::ops::Range<u64>, evolved: bool) -> PathBuf {
    let text: String = lines.map(|index| line(index, evolved) + "\n").collect();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn inlet(schema: &Path, partition_by: Option<&str>, args: &[&str]) -> Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_inlet"));
    command
        .args(args)
        .env("INLET_SCHEMA", schema)
        .env_remove("INLET_COMPACTOR_FUNCTION")
        .env_remove("INLET_UNKNOWN_FIELDS")
        .env_remove("INLET_ROUTES")
        .env("INLET_OPTIMIZE_MIN_FILES", "0");
    match partition_by {
        Some(spec) => command.env("INLET_PARTITION_BY", spec),
        None => command.env_remove("INLET_PARTITION_BY"),
    };
    let output = command.output().unwrap();
    assert!(output.status.success(), "inlet {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

/// Stages `objects` into `table` and, unless `stage_only`, commits them: the compaction's answer.
fn load(table: &Path, schema: &Path, partition_by: Option<&str>, objects: &[PathBuf], stage_only: bool) -> Value {
    let mut args = vec!["convert", "--json", "--out", table.to_str().unwrap()];
    args.extend(objects.iter().map(|path| path.to_str().unwrap()));
    let converted = inlet(schema, partition_by, &args);
    assert!(converted["report"]["rows"].as_u64().unwrap() > 0, "{converted}");
    assert_eq!(converted["quarantined"], json!([]), "every generated line fits its schema");
    if stage_only {
        return Value::Null;
    }
    let uri = url::Url::from_directory_path(table).unwrap().to_string();
    inlet(schema, partition_by, &["compact", "--create", "--table-uri", &uri])
}

fn parquet_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && path.file_name().is_some_and(|name| name != "_delta_log") {
            parquet_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "parquet") {
            found.push(path);
        }
    }
}

#[test]
fn spark_reads_every_shape_of_file_inlet_writes_with_the_values_pyarrow_reads() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (v1, v2) = (root.join("v1.json"), root.join("v2.json"));
    std::fs::write(&v1, SCHEMA_V1).unwrap();
    std::fs::write(&v2, schema_v2()).unwrap();
    let objects = root.join("objects");
    std::fs::create_dir(&objects).unwrap();
    let object = |name: &str, lines: std::ops::Range<u64>, evolved: bool| write_object(&objects, name, lines, evolved);

    // Unpartitioned, two objects in one commit, decoded and written again (statistics of
    // nested columns are not the copy path's).
    let plain = root.join("plain");
    let committed =
        load(&plain, &v1, None, &[object("a.json", 0..240, false), object("b.json", 240..400, false)], false);
    assert_eq!(committed["copied_fragments"], 0, "the decode path: {committed}");
    // The sample events' flat columns: fragments copied into the table file row group by row group.
    let copied = root.join("copied");
    let events: Vec<PathBuf> = (0..3)
        .map(|index| {
            let path = objects.join(format!("events-{index}.json.zst"));
            let ndjson = inlet::testing::sample::ndjson_object(7, index, 64 * 1024);
            std::fs::write(&path, inlet::testing::sample::zstd_compress(&ndjson)).unwrap();
            path
        })
        .collect();
    let committed = load(&copied, &inlet::testing::schemas::events_path(), None, &events, false);
    assert_eq!(committed["copied_fragments"], committed["fragments"], "the copy path: {committed}");
    assert!(committed["fragments"].as_u64().unwrap() >= 1, "{committed}");
    // Partitioned by the date of a timestamp, several commits: several files per partition.
    let partitioned = root.join("partitioned");
    for round in 0..3u64 {
        let name = format!("p{round}.json");
        load(&partitioned, &v1, Some("event_date=at"), &[object(&name, round * 100..round * 100 + 100, false)], false);
    }
    // A schema rolled out between commits: files of both schemas.
    let evolved = root.join("evolved");
    load(&evolved, &v1, None, &[object("e1.json", 0..150, false)], false);
    load(&evolved, &v2, None, &[object("e2.json", 150..300, true)], false);
    // Small files of two schemas rewritten by optimize: decoded and written again.
    let optimized = root.join("optimized");
    for round in 0..3u64 {
        let (name, schema) = (format!("o{round}.json"), if round == 0 { &v1 } else { &v2 });
        load(&optimized, schema, None, &[object(&name, round * 60..round * 60 + 60, round > 0)], false);
    }
    let uri = url::Url::from_directory_path(&optimized).unwrap().to_string();
    let answer = inlet(&v2, None, &["compact", "--optimize", "--table-uri", &uri]);
    let rewritten = &answer["optimize"];
    assert_eq!(rewritten["files_removed"], 3, "small files rewritten: {answer}");
    assert_eq!(rewritten["files_copied"], 0, "the decode path: {answer}");
    // Staged fragments, as the converter leaves them for the compactor.
    let staged = root.join("staged");
    load(&staged, &v2, Some("event_date=at"), &[object("s.json", 0..200, true)], true);

    let mut files = Vec::new();
    for table in [&plain, &copied, &partitioned, &evolved, &optimized, &staged] {
        let before = files.len();
        parquet_files(table, &mut files);
        assert!(files.len() > before, "{} holds Parquet files", table.display());
    }
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/tools/bin/python");
    assert!(python.exists(), "{} is missing: run `make tools-venv` (make test does)", python.display());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reader/spark_read.py");
    let home = tempfile::tempdir().unwrap();
    let output = Command::new(&python)
        .arg(&script)
        .args(&files)
        .env("HOME", home.path())
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .env("PYSPARK_PYTHON", &python)
        .output()
        .unwrap();
    assert!(output.status.success(), "Spark failed: {}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("{err}: {}", String::from_utf8_lossy(&output.stdout)));
    let entries = report.as_array().unwrap();
    assert_eq!(entries.len(), files.len(), "{report}");
    let mut rows = 0;
    for entry in entries {
        assert_eq!(entry["differences"], json!({}), "{}", entry["file"]);
        rows += entry["rows"].as_u64().unwrap();
    }
    assert!(rows >= 400 + 300 + 300 + 180 + 200, "every row was read: {rows}");
    eprintln!("Spark read {} files, {rows} rows, every value as pyarrow did", entries.len());
    let evolved_file = entries.iter().any(|entry| entry["columns"].as_array().unwrap().contains(&json!("geo")));
    assert!(evolved_file, "files of the rolled-out schema were read");
}
