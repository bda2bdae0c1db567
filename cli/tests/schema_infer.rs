//! `inlet schema infer` drafts a schema the sample itself fits: converting the sample with the
//! draft refuses no line, and the review notes go to stderr.

use std::process::Command;

use inlet::testing::sample;

#[test]
fn a_drafted_schema_takes_every_line_of_its_sample() {
    let dir = tempfile::tempdir().unwrap();
    let object = dir.path().join("events.json.zst");
    std::fs::write(&object, zstd::encode_all(&sample::ndjson_object(3, 0, 256 * 1024)[..], 3).unwrap()).unwrap();

    let inferred = Command::new(env!("CARGO_BIN_EXE_inlet")).args(["schema", "infer"]).arg(&object).output().unwrap();
    assert!(inferred.status.success(), "{}", String::from_utf8_lossy(&inferred.stderr));
    let schema: serde_json::Value = serde_json::from_slice(&inferred.stdout).unwrap();
    let fields = schema["fields"].as_array().unwrap();
    let type_of = |name: &str| fields.iter().find(|field| field["name"] == name).map(|field| field["type"].clone());
    assert_eq!(type_of("event_time"), Some("timestamp".into()));
    assert_eq!(type_of("http_status"), Some("long".into()));
    assert_eq!(type_of("feature_flags"), Some(serde_json::json!({"list": "string"})));
    assert!(type_of("device").unwrap().get("struct").is_some());
    let stderr = String::from_utf8_lossy(&inferred.stderr);
    assert!(stderr.contains("drafted from"), "{stderr}");

    let schema_file = dir.path().join("draft.schema.json");
    std::fs::write(&schema_file, &inferred.stdout).unwrap();
    let converted = Command::new(env!("CARGO_BIN_EXE_inlet"))
        .args(["convert", "--json", "--schema"])
        .arg(&schema_file)
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg(&object)
        .env_remove("INLET_PARTITION_BY")
        .env_remove("INLET_UNKNOWN_FIELDS")
        .output()
        .unwrap();
    assert!(converted.status.success(), "{}", String::from_utf8_lossy(&converted.stderr));
    let report: serde_json::Value = serde_json::from_slice(&converted.stdout).unwrap();
    assert_eq!(report["quarantined"].as_array().unwrap().len(), 0, "{}", report["quarantined"]);
    assert!(report["report"]["rows"].as_u64().unwrap() > 100);
}
