//! `inlet check` finds a deployment's mistakes before data does: a schema the table cannot
//! take, a schema file that is not there, a routing file that does not parse.

use std::path::Path;
use std::process::{Command, Output};

use inlet::testing::schemas;

fn inlet(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_inlet"));
    command.args(args).current_dir(dir);
    for variable in
        ["INLET_TABLE_URI", "INLET_SCHEMA", "INLET_PARTITION_BY", "INLET_ROUTES", "INLET_QUEUE_URL", "INLET_DLQ_URL"]
    {
        command.env_remove(variable);
    }
    command.env_remove("INLET_ISOLATION_QUEUE_URL").env_remove("INLET_COMPACTOR_FUNCTION");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn uri(path: &Path) -> String {
    url::Url::from_directory_path(path).unwrap().to_string()
}

#[test]
fn check_names_each_problem_of_each_route_and_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("web.json"), schemas::PAGE.text).unwrap();
    std::fs::write(root.join("api_v1.json"), schemas::STATUS.text).unwrap();
    std::fs::write(root.join("api.json"), schemas::column("status", r#""string""#)).unwrap();
    // The api table exists, created with `status` a long; the declared schema now says string.
    let api = root.join("api");
    let created = inlet(
        root,
        &["compact", "--create", "--table-uri", &uri(&api), "--schema", root.join("api_v1.json").to_str().unwrap()],
        &[],
    );
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let routes = serde_json::json!({"routes": [
        {"name": "web", "prefix": "web/", "table_uri": uri(&root.join("web")), "schema": "web.json"},
        {"name": "api", "prefix": "api/", "table_uri": uri(&api), "schema": "api.json"},
        {"name": "billing", "prefix": "billing/", "table_uri": uri(&root.join("billing")), "schema": "billing.json"}
    ]});
    std::fs::write(root.join("routes.json"), routes.to_string()).unwrap();

    let output = inlet(root, &["check"], &[("INLET_ROUTES", root.join("routes.json").display().to_string())]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "problems fail the command: {stdout}");
    let line = |subject: &str| stdout.lines().find(|line| line.contains(subject)).unwrap_or_default().to_string();
    assert!(line("settings").starts_with("ok") && line("settings").contains("3 routes"), "{stdout}");
    assert!(line("web: table").starts_with("ok") && line("web: table").contains("no table yet"), "{stdout}");
    let api_table = line("api: table");
    assert!(api_table.starts_with("PROBLEM") && api_table.contains("\"status\" changes type"), "{stdout}");
    assert!(api_table.contains("change the declared schema back"), "{stdout}");
    let billing = line("billing: schema");
    assert!(billing.starts_with("PROBLEM") && billing.contains("INLET_SCHEMA"), "{stdout}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("2 problem(s) found"));

    std::fs::write(root.join("routes.json"), r#"{"routes": [{"name": "web", "prefix": "web/"}]}"#).unwrap();
    let output = inlet(root, &["check", "--json"], &[("INLET_ROUTES", root.join("routes.json").display().to_string())]);
    let findings: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(findings[0]["subject"], "settings");
    assert_eq!(findings[0]["ok"], false);
    assert!(findings[0]["detail"].as_str().unwrap().contains("missing field `table_uri`"), "{findings}");
}

#[test]
fn check_reports_table_properties_the_settings_no_longer_match_and_sets_them_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("id.json"), schemas::ID.text).unwrap();
    let table = root.join("events");
    let settings = |interval: &str| {
        vec![
            ("INLET_TABLE_URI", uri(&table)),
            ("INLET_SCHEMA", root.join("id.json").display().to_string()),
            ("INLET_CHECKPOINT_INTERVAL", interval.to_string()),
            ("INLET_LOG_RETENTION_DAYS", "30".to_string()),
        ]
    };
    let created = inlet(root, &["compact", "--create"], &settings("100"));
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let line = |output: &Output| {
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        stdout.lines().find(|line| line.contains("table properties")).unwrap_or_default().to_string()
    };
    let same = inlet(root, &["check"], &settings("100"));
    assert!(same.status.success() && line(&same).starts_with("ok"), "{}", line(&same));

    // The setting changed after the table was made: reported, with how to apply it.
    let drifted = inlet(root, &["check"], &settings("10"));
    let problem = line(&drifted);
    assert!(!drifted.status.success(), "{problem}");
    assert!(problem.contains("delta.checkpointInterval is 100 where the settings say 10"), "{problem}");
    assert!(problem.contains("--apply-properties"), "{problem}");

    let applied = inlet(root, &["check", "--apply-properties"], &settings("10"));
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    assert!(String::from_utf8_lossy(&applied.stderr).contains("set delta.checkpointInterval=10"));
    assert!(line(&applied).starts_with("ok") && line(&applied).contains("delta.checkpointInterval=10"));
    let again = inlet(root, &["check"], &settings("10"));
    assert!(again.status.success(), "{}", line(&again));
}

#[test]
fn the_compactor_keeps_the_table_properties_the_settings_name_after_they_change() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("id.json"), schemas::ID.text).unwrap();
    let table = root.join("events");
    let settings = |interval: &str, others: Option<&str>| {
        let mut settings = vec![
            ("INLET_TABLE_URI", uri(&table)),
            ("INLET_SCHEMA", root.join("id.json").display().to_string()),
            ("INLET_CHECKPOINT_INTERVAL", interval.to_string()),
        ];
        settings.extend(others.map(|others| ("INLET_TABLE_PROPERTIES", others.to_string())));
        settings
    };
    let created = inlet(root, &["compact", "--create"], &settings("100", None));
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let others =
        r#"{"delta.dataSkippingNumIndexedCols": "8", "delta.deletedFileRetentionDuration": "interval 2 days"}"#;
    let changed = settings("10", Some(others));
    let drifted = inlet(root, &["check"], &changed);
    let stdout = String::from_utf8_lossy(&drifted.stdout).to_string();
    assert!(!drifted.status.success(), "{stdout}");
    assert!(stdout.contains("delta.dataSkippingNumIndexedCols is unset where the settings say 8"), "{stdout}");
    assert!(stdout.contains("the compactor's next run sets them"), "{stdout}");

    // The next compaction sets them with a commit of their own; the one after sets nothing.
    let compacted = inlet(root, &["compact"], &changed);
    assert!(compacted.status.success(), "{}", String::from_utf8_lossy(&compacted.stderr));
    let log: Vec<String> = std::fs::read_dir(table.join("_delta_log"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    assert_eq!(log.len(), 2, "{log:?}");
    let commit = std::fs::read_to_string(table.join("_delta_log/00000000000000000001.json")).unwrap();
    let metadata =
        commit.lines().find_map(|line| serde_json::from_str::<serde_json::Value>(line).ok()?.get("metaData").cloned());
    let configuration = &metadata.expect("a metadata commit")["configuration"];
    assert_eq!(configuration["delta.checkpointInterval"], "10");
    assert_eq!(configuration["delta.dataSkippingNumIndexedCols"], "8");
    assert_eq!(configuration["delta.deletedFileRetentionDuration"], "interval 2 days");
    assert_eq!(configuration["delta.enableExpiredLogCleanup"], "true", "a property the settings do not name stays");
    let again = inlet(root, &["compact"], &changed);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(!table.join("_delta_log/00000000000000000002.json").exists(), "no commit when nothing changed");
    let checked = inlet(root, &["check"], &changed);
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stdout));

    // A property that would change how the table is written is refused before anything runs.
    let refused = inlet(root, &["compact"], &settings("10", Some(r#"{"delta.appendOnly": "true"}"#)));
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("\"delta.appendOnly\" cannot be kept on an Inlet table"));
}
