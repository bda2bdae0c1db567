//! Decimal and wall-clock timestamp columns end to end: `inlet convert` stages the lines,
//! `inlet compact` commits them, and two other Delta readers (delta-rs' Python bindings and
//! DuckDB's delta extension, from the tools virtualenv `make test` sets up) read back every
//! value exactly as written: decimals to the last digit, wall-clock times unshifted.

use std::path::Path;
use std::process::Command;

const SCHEMA: &str = r#"{"fields":[
  {"name":"id","type":"long","nullable":false},
  {"name":"amount","type":"decimal(20,2)"},
  {"name":"local_time","type":"timestamp_ntz"},
  {"name":"at","type":"timestamp"}
]}"#;

const LINES: &str = concat!(
    r#"{"id":1,"amount":"12.50","local_time":"2026-05-16T10:00:00","at":"2026-05-16T12:00:00+02:00"}"#,
    "\n",
    r#"{"id":2,"amount":0.1,"local_time":"2026-05-16 23:59:59.999999","at":"2026-05-16T10:00:00Z"}"#,
    "\n",
    r#"{"id":3,"amount":123456789012345678.99,"local_time":null,"at":null}"#,
    "\n",
    r#"{"id":4,"amount":1.005,"local_time":"2026-05-16T10:00:00","at":null}"#,
    "\n",
    r#"{"id":5,"amount":"7","local_time":"2026-05-16T10:00:00+02:00","at":null}"#,
    "\n",
);

const READ: &str = r#"
import json, sys
import duckdb
from deltalake import DeltaTable
from duckdb_extensions import import_extension

uri = sys.argv[1]
table = DeltaTable(uri)
rows = table.to_pyarrow_table().sort_by("id").to_pylist()
protocol = table.protocol()
con = duckdb.connect()
import_extension("delta", con=con)
con.sql("LOAD delta")
duck = con.sql(f"SELECT id, amount::VARCHAR, local_time::VARCHAR, typeof(local_time) FROM delta_scan('{uri}') ORDER BY id").fetchall()
print(json.dumps({
    "delta_rs": [[r["id"], str(r["amount"]), str(r["local_time"])] for r in rows],
    "duckdb": [list(r) for r in duck],
    "reader_features": sorted(protocol.reader_features or []),
    "schema": str(table.schema().to_arrow()),
}))
"#;

fn inlet(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_inlet"))
        .args(args)
        .env("INLET_SCHEMA", dir.join("schema.json"))
        .env_remove("INLET_PARTITION_BY")
        .env_remove("INLET_COMPACTOR_FUNCTION")
        .env_remove("INLET_UNKNOWN_FIELDS")
        .output()
        .unwrap()
}

#[test]
fn decimals_and_wall_clock_times_land_exactly_as_written_for_other_readers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.json"), SCHEMA).unwrap();
    let object = dir.path().join("amounts.json");
    std::fs::write(&object, LINES).unwrap();
    let table = dir.path().join("table");
    let converted =
        inlet(dir.path(), &["convert", "--json", "--out", table.to_str().unwrap(), object.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_slice(&converted.stdout)
        .unwrap_or_else(|err| panic!("{err}: {}", String::from_utf8_lossy(&converted.stderr)));
    assert_eq!(report["report"]["rows"], 3, "{report}");
    let refused: Vec<(u64, String)> = report["quarantined"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| (line["line"].as_u64().unwrap(), line["error"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(refused[0].0, 4);
    assert!(refused[0].1.contains("amount") && refused[0].1.contains("scale"), "1.005 is not rounded: {refused:?}");
    assert_eq!(refused[1].0, 5);
    assert!(refused[1].1.contains("local_time") && refused[1].1.contains("without a time zone"), "{refused:?}");

    let uri = url::Url::from_directory_path(&table).unwrap().to_string();
    let compacted = inlet(dir.path(), &["compact", "--create", "--table-uri", &uri]);
    assert!(compacted.status.success(), "{}", String::from_utf8_lossy(&compacted.stderr));

    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/tools/bin/python");
    assert!(python.exists(), "{} is missing: run `make tools-venv` (make test does)", python.display());
    let home = tempfile::tempdir().unwrap();
    let read =
        Command::new(&python).args(["-c", READ, table.to_str().unwrap()]).env("HOME", home.path()).output().unwrap();
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    let read: serde_json::Value = serde_json::from_slice(&read.stdout).unwrap();
    assert_eq!(
        read["delta_rs"],
        serde_json::json!([
            [1, "12.50", "2026-05-16 10:00:00"],
            [2, "0.10", "2026-05-16 23:59:59.999999"],
            [3, "123456789012345678.99", "None"]
        ]),
        "{read}"
    );
    assert_eq!(
        read["duckdb"],
        serde_json::json!([
            [1, "12.50", "2026-05-16 10:00:00", "TIMESTAMP"],
            [2, "0.10", "2026-05-16 23:59:59.999999", "TIMESTAMP"],
            [3, "123456789012345678.99", null, "TIMESTAMP"]
        ]),
        "{read}"
    );
    assert!(read["reader_features"].as_array().unwrap().contains(&"timestampNtz".into()), "{read}");
    let schema = read["schema"].as_str().unwrap();
    assert!(schema.contains("amount: Decimal128(20, 2)") && schema.contains("local_time: Timestamp(µs)\n"), "{schema}");
}
