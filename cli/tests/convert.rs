//! `inlet convert` run as a user runs it: sample objects in, fragments and quarantine records
//! on disk and a summary naming each refused line's field and reason out.

use std::path::Path;
use std::process::{Command, Output};

const SCHEMA: &str = r#"{"fields":[
    {"name":"id","type":"long","nullable":false},
    {"name":"at","type":"timestamp(ms)"},
    {"name":"blob","type":"binary"}
]}"#;

/// `inlet convert` with the test schema on `object`, staging under `dir/out`.
fn convert(dir: &Path, object: &Path) -> Output {
    let schema = dir.join("schema.json");
    std::fs::write(&schema, SCHEMA).unwrap();
    Command::new(env!("CARGO_BIN_EXE_inlet"))
        .args(["convert", "--schema"])
        .arg(&schema)
        .arg("--out")
        .arg(dir.join("out"))
        .arg(object)
        .env_remove("INLET_PARTITION_BY")
        .env_remove("INLET_UNKNOWN_FIELDS")
        .output()
        .unwrap()
}

#[test]
fn convert_stages_rows_and_reports_each_refused_line() {
    let dir = tempfile::tempdir().unwrap();
    let object = dir.path().join("sample.json.zst");
    let lines = "\u{feff}{\"id\":1,\"at\":1778925600000,\"blob\":\"aGk=\"}\n{\"id\":2.5}\n{\"id\":3,\"blob\":\"686\"}\n{\"id\":4}\n";
    std::fs::write(&object, zstd::encode_all(lines.as_bytes(), 3).unwrap()).unwrap();
    let out = dir.path().join("out");
    let output = convert(dir.path(), &object);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("rows             2"), "{stdout}");
    assert!(stdout.contains("quarantined      2 lines"), "{stdout}");
    assert!(stdout.contains("line 2: field id: expected an integer (no fraction or exponent)"), "{stdout}");
    assert!(stdout.contains("line 3: field blob: expected padded base64 (RFC 4648)"), "{stdout}");
    let fragments: Vec<_> = std::fs::read_dir(out.join("_inlet/fragments")).unwrap().collect();
    assert_eq!(fragments.len(), 1);
    let quarantine = std::fs::read_dir(out.join("_inlet/quarantine/local")).unwrap().count();
    assert_eq!(quarantine, 1, "the refused lines are kept where the Lambda keeps them");
}

#[test]
fn convert_fails_on_an_object_that_is_not_ndjson() {
    let dir = tempfile::tempdir().unwrap();
    let object = dir.path().join("broken.json.zst");
    std::fs::write(&object, b"not zstd at all").unwrap();
    let output = convert(dir.path(), &object);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("zstd decompression failed"), "{stderr}");
    assert!(stderr.contains("1 of 1 objects could not be converted"), "{stderr}");
}
