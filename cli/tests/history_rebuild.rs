//! A load history rebuild whose processes are killed over and over (`inlet compact` aborting
//! right after each save of its progress) completes, and the rebuilt index answers as the lost
//! one did: a backfill of every old object is all duplicates, a new object lands.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output};

use inlet::testing::schemas;

const OBJECTS: usize = 8;
const LINES: usize = 10;

fn inlet(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_inlet"))
        .args(args)
        .env_remove("INLET_PARTITION_BY")
        .env_remove("INLET_COMPACTOR_FUNCTION")
        .env_remove("INLET_CRASH_POINTS")
        .env("INLET_CHECKPOINT_INTERVAL", "4")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .unwrap()
}

fn succeeded(output: &Output) -> &Output {
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Writes object `index` (ids `index * LINES ..`) and stages it into `table` with `inlet convert`.
fn stage(dir: &Path, table: &Path, index: usize) {
    let object = dir.join(format!("objects/o{index}.json.zst"));
    std::fs::create_dir_all(object.parent().unwrap()).unwrap();
    let lines: String = (0..LINES).map(|line| format!("{{\"id\":{}}}\n", index * LINES + line)).collect();
    std::fs::write(&object, zstd::encode_all(lines.as_bytes(), 3).unwrap()).unwrap();
    let args = ["convert", "--schema", "schema.json", "--out", table.to_str().unwrap(), object.to_str().unwrap()];
    succeeded(&inlet(dir, &args, &[]));
}

fn compact(dir: &Path, table: &Path, env: &[(&str, &str)]) -> Output {
    let uri = url::Url::from_directory_path(table).unwrap().to_string();
    inlet(dir, &["compact", "--table-uri", &uri, "--schema", "schema.json"], env)
}

/// The saved progress of the rebuild under way: files read, of how many.
fn progress(table: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read(table.join("_inlet/history/rebuild/progress.json")).ok()?;
    let progress: serde_json::Value = serde_json::from_slice(&text).unwrap();
    Some((progress["read"].as_u64().unwrap(), progress["files"].as_u64().unwrap()))
}

#[test]
fn a_rebuild_killed_after_every_save_completes_and_answers_as_the_lost_index_did() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.json"), schemas::ID.text).unwrap();
    let table = dir.path().join("table");
    for index in 0..OBJECTS {
        stage(dir.path(), &table, index);
        succeeded(&compact(dir.path(), &table, &[]));
    }
    // The index is lost, and log cleanup took every commit a checkpoint covers.
    std::fs::remove_dir_all(table.join("_inlet/history")).unwrap();
    let log = table.join("_delta_log");
    let checkpoint = std::fs::read_dir(&log)
        .unwrap()
        .filter_map(|entry| {
            entry.unwrap().file_name().to_str()?.strip_suffix(".checkpoint.parquet")?.parse::<u64>().ok()
        })
        .max()
        .expect("a checkpoint");
    for version in 0..checkpoint {
        std::fs::remove_file(log.join(format!("{version:020}.json"))).unwrap();
    }
    // A backfill of every object, and one new object.
    for index in 0..=OBJECTS {
        stage(dir.path(), &table, index);
    }
    let dying = [("INLET_CRASH_POINTS", "history.rebuild_saved=1"), ("INLET_HISTORY_REBUILD_SAVE_FILES", "2")];
    let (mut killed, mut reads) = (0, Vec::new());
    let report = loop {
        let output = compact(dir.path(), &table, &dying);
        if output.status.success() {
            break output;
        }
        assert_eq!(output.status.signal(), Some(6), "aborted: {}", String::from_utf8_lossy(&output.stderr));
        killed += 1;
        reads.push(progress(&table).expect("progress saved before the process died"));
        assert!(killed <= OBJECTS, "the rebuild does not advance: {reads:?}");
    };
    let files = reads[0].1;
    assert_eq!(files, OBJECTS as u64, "one data file per compaction");
    let expected: Vec<(u64, u64)> = (1..=files / 2).map(|saves| (saves * 2, files)).collect();
    assert_eq!(reads, expected, "each process continued where the last one saved");
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["rows"], LINES, "the new object lands: {report}");
    assert_eq!(report["duplicate_rows"], OBJECTS * LINES, "every old object is known: {report}");
    assert_eq!(progress(&table), None, "the finished rebuild left no progress behind");
    // The rebuilt index answers the next backfill without a rebuild.
    stage(dir.path(), &table, 3);
    let report: serde_json::Value =
        serde_json::from_slice(&succeeded(&compact(dir.path(), &table, &dying)).stdout).unwrap();
    assert_eq!((report["rows"].as_u64(), report["duplicate_rows"].as_u64()), (Some(0), Some(LINES as u64)), "{report}");
}
