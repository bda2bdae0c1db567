//! Day 2 on a deployment of several tables, from its routing file alone: `status` shows every
//! table with no schema read, and `compact`, `quarantine` and `status` work on the table
//! `--table` names; without a name, a command of one table lists the tables.

use std::path::Path;
use std::process::{Command, Output};

use inlet::testing::schemas;

fn inlet(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_inlet"))
        .args(args)
        .env_remove("INLET_TABLE_URI")
        .env_remove("INLET_SCHEMA")
        .env_remove("INLET_TABLE")
        .env_remove("INLET_PARTITION_BY")
        .env_remove("INLET_COMPACTOR_FUNCTION")
        .env_remove("INLET_QUEUE_URL")
        .env_remove("INLET_DLQ_URL")
        .env("INLET_ROUTES", dir.join("routes.json"))
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .current_dir(dir)
        .output()
        .unwrap()
}

fn succeeded(output: Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}\n{stderr}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8(output.stdout).unwrap()
}

/// Stages `lines` into `table` with `inlet convert`, as object `name`.
fn stage(dir: &Path, table: &Path, name: &str, lines: &str) {
    let object = dir.join(format!("objects/{name}.json.zst"));
    std::fs::create_dir_all(object.parent().unwrap()).unwrap();
    std::fs::write(&object, zstd::encode_all(lines.as_bytes(), 3).unwrap()).unwrap();
    let table = table.to_str().unwrap();
    let args = ["convert", "--schema", "id.json", "--out", table, object.to_str().unwrap()];
    // `convert` works on local files and its own --out: no routing file involved.
    let output = Command::new(env!("CARGO_BIN_EXE_inlet"))
        .args(args)
        .env_remove("INLET_ROUTES")
        .env_remove("INLET_PARTITION_BY")
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn day_two_commands_take_a_table_of_a_routing_file_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("id.json"), schemas::ID.text).unwrap();
    let (web, api) = (root.join("web"), root.join("api"));
    let uri =
        |table: &Path| url::Url::from_directory_path(table).unwrap().to_string().trim_end_matches('/').to_string();
    // The schemas named here are never read by `status`: one is not even there.
    let routes = serde_json::json!({"routes": [
        {"name": "web", "prefix": "web/", "table_uri": uri(&web), "schema": "id.json"},
        {"name": "api", "prefix": "api/", "table_uri": uri(&api), "schema": "missing.json"}
    ]});
    std::fs::write(root.join("routes.json"), routes.to_string()).unwrap();
    stage(root, &web, "w0", "{\"id\":1}\n{\"id\":2}\n");
    stage(root, &api, "a0", "{\"id\":3}\noops\n");

    // Every table, no schema read: what waits staged, and the quarantined line.
    let status: serde_json::Value = serde_json::from_str(&succeeded(inlet(root, &["status", "--json"]))).unwrap();
    assert_eq!(status["tables"]["web"]["staged_fragments"], 1, "{status}");
    assert_eq!(status["tables"]["web"]["staged_partitions"][""]["fragments"], 1, "{status}");
    assert_eq!(status["tables"]["api"]["quarantine_records"], 1, "{status}");
    assert_eq!(status["tables"]["api"]["version"], serde_json::Value::Null, "no table yet: {status}");

    // A command of one table needs its name, and says which there are.
    let unnamed = inlet(root, &["compact"]);
    let stderr = String::from_utf8_lossy(&unnamed.stderr);
    assert!(!unnamed.status.success() && stderr.contains("--table") && stderr.contains("api ("), "{stderr}");
    let compacted: serde_json::Value =
        serde_json::from_str(&succeeded(inlet(root, &["compact", "--table", "web"]))).unwrap();
    assert_eq!(compacted["rows"], 2, "{compacted}");
    let records = succeeded(inlet(root, &["quarantine", "list", "--json", "--table", "api"]));
    let records: serde_json::Value = serde_json::from_str(&records).unwrap();
    assert_eq!(records.as_array().unwrap().len(), 1, "{records}");

    // One table's status by name: as a single table's, with its commit of the last hour.
    let web_status: serde_json::Value =
        serde_json::from_str(&succeeded(inlet(root, &["status", "--json", "--table", "web"]))).unwrap();
    let version = web_status["version"].as_u64().expect("a table now");
    let recent = (web_status["commits_last_hour"].as_u64(), web_status["rows_last_hour"].as_u64());
    assert_eq!(recent, (Some(version + 1), Some(2)), "its creation and its commit: {web_status}");
    assert_eq!(web_status["staged_fragments"], 0, "{web_status}");
    let text = succeeded(inlet(root, &["status"]));
    assert!(text.contains("[web]") && text.contains("[api]") && text.contains("quarantine records 1"), "{text}");
    let unknown = inlet(root, &["status", "--table", "billing"]);
    assert!(!unknown.status.success() && String::from_utf8_lossy(&unknown.stderr).contains("web ("));
}
