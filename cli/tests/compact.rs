//! `inlet compact` at a location with no table: refused unless asked to create one, so a
//! mistyped table URI is an error, not a new empty table.

use std::path::Path;
use std::process::{Command, Output};

use inlet::testing::schemas;

fn compact(dir: &Path, table: &Path, extra: &[&str]) -> Output {
    let schema = dir.join("schema.json");
    std::fs::write(&schema, schemas::ID.text).unwrap();
    let uri = url::Url::from_directory_path(table).unwrap().to_string();
    Command::new(env!("CARGO_BIN_EXE_inlet"))
        .args(["compact", "--table-uri", &uri, "--schema"])
        .arg(&schema)
        .args(extra)
        .env_remove("INLET_PARTITION_BY")
        .env_remove("INLET_COMPACTOR_FUNCTION")
        .output()
        .unwrap()
}

#[test]
fn compact_refuses_a_location_with_no_table_and_nothing_staged_unless_told_to_create() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("evnets");
    std::fs::create_dir_all(&table).unwrap();

    let refused = compact(dir.path(), &table, &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("no Delta table at") && stderr.contains("nothing staged there"), "{stderr}");
    assert!(stderr.contains("inlet compact --create"), "the error says how to create it anyway: {stderr}");
    assert!(!table.join("_delta_log").exists(), "no table was created");

    let created = compact(dir.path(), &table, &["--create"]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    assert!(table.join("_delta_log/00000000000000000000.json").exists(), "the table was created");
    let again = compact(dir.path(), &table, &[]);
    assert!(again.status.success(), "an existing table compacts: {}", String::from_utf8_lossy(&again.stderr));
}
