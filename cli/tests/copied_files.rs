//! The compactor's two ways of writing table files, held to each other. Fragments encoded as
//! table files keep their pages (the default) are copied into table files row group by row
//! group; fragments without column statistics (here without dictionaries either) are decoded
//! and written again through delta-rs' writer. The same rows staged both ways must give tables
//! that delta-rs, pyarrow (reading the files themselves) and DuckDB's delta extension read
//! identically, and files with the same Delta statistics.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

use inlet::commit::{CompactionReport, Compactor, CompactorOptions, open_or_create};
use inlet::ingest::JsonDecoder;
use inlet::layout::partition_directories;
use inlet::lineage::{FragmentSource, SourceObject};
use inlet::partition::PartitionValues;
use inlet::schema::Layout;
use inlet::stage::{FragmentEncoding, FragmentStore, FragmentWriter, table_store};
use inlet::testing::schemas;
use serde_json::Value;

const OBJECTS: u64 = 6;

/// Stages the sample objects with `encoding` (one fragment each, in its key's date partition)
/// under `dir` and compacts them into a new table there.
async fn table_from(dir: &Path, encoding: FragmentEncoding) -> CompactionReport {
    let key_of = |index| (format!("web/date=2026-05-{}/part-{index}.json.zst", 16 + index % 2), index);
    table_partitioned(dir, encoding, "date=key", key_of).await
}

/// Stages sample objects, `key_of` their index giving the key and the sample's object number,
/// with `encoding` (a fragment per object and partition of `partition_by`) under `dir` and
/// compacts them into a new table.
async fn table_partitioned(
    dir: &Path,
    encoding: FragmentEncoding,
    partition_by: &str,
    key_of: impl Fn(u64) -> (String, u64),
) -> CompactionReport {
    let layout = Layout { partition: Some(partition_by.parse().unwrap()), ..Layout::default() };
    let schema = schemas::events_with(layout);
    let spec = schema.layout.partition.clone().unwrap();
    let url = url::Url::from_directory_path(dir).unwrap();
    let store = table_store(&url, &HashMap::new()).unwrap();
    let fragments = FragmentStore::new(store.clone());
    for index in 0..OBJECTS {
        let (key, sample) = key_of(index);
        let object =
            SourceObject { bucket: "raw".into(), key: key.clone(), etag: Some("e".into()), ..Default::default() };
        let data = inlet::testing::sample::ndjson_object(42, sample, 512 * 1024);
        let decoded = JsonDecoder::new(schema.clone(), 1024).decode(&object, &data).unwrap();
        let keys = spec.key_values(&key).unwrap();
        let rows: usize = decoded.batches.iter().map(|batch| batch.num_rows()).sum();
        let mut parts: BTreeMap<PartitionValues, Vec<_>> = BTreeMap::new();
        for batch in decoded.batches {
            for (values, part) in spec.split(batch, &keys).unwrap() {
                parts.entry(values).or_default().push(part);
            }
        }
        let batch = format!("batch-{index}");
        for (values, part) in &parts {
            let mut writer = FragmentWriter::with_encoding(&schema.table, &encoding).unwrap();
            let part_rows: usize = part.iter().map(|batch| batch.num_rows()).sum();
            writer.write(FragmentSource::new(&object, part_rows as u64, Some(rows as u64)), part).unwrap();
            fragments.put(writer.finish(&batch).unwrap(), &spec.directory(values)).await.unwrap();
        }
        fragments.seal(&batch, parts.len()).await.unwrap();
    }
    let mut table = open_or_create(&url, &HashMap::new(), &schema, &Default::default()).await.unwrap();
    let options = CompactorOptions { min_bytes: 0, ..CompactorOptions::default() };
    Compactor::new(store, schema, options).run(&mut table, true).await.unwrap()
}

/// The Delta statistics of each added file, by partition value, from the table's log.
fn stats_by_partition(table: &Path) -> BTreeMap<String, Value> {
    let mut stats = BTreeMap::new();
    for entry in std::fs::read_dir(table.join("_delta_log")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|extension| extension != "json") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let action: Value = serde_json::from_str(line).unwrap();
            if let Some(add) = action.get("add") {
                let partition = add["partitionValues"]["date"].as_str().unwrap().to_string();
                let file_stats: Value = serde_json::from_str(add["stats"].as_str().unwrap()).unwrap();
                assert!(stats.insert(partition, file_stats).is_none(), "one file per partition: {add}");
            }
        }
    }
    stats
}

const READ: &str = r#"
import json, sys
import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable
from duckdb_extensions import import_extension

con = duckdb.connect()
import_extension("delta", con=con)
con.sql("LOAD delta")

def ordered(table):
    return table.sort_by([("event_id", "ascending")])

def engines(uri):
    table = DeltaTable(uri)
    # The files alone: no partition column inferred from their directories.
    files = pa.concat_tables([pq.ParquetFile(path).read() for path in table.file_uris()])
    duck = con.sql(f"SELECT * FROM delta_scan('{uri}')").to_arrow_table()
    return {
        "delta_rs": ordered(table.to_pyarrow_table()),
        "pyarrow": ordered(files),
        "duckdb": ordered(duck),
    }

old, new = engines(sys.argv[1]), engines(sys.argv[2])
result = {}
for engine in old:
    a, b = old[engine], new[engine]
    result[engine] = {
        "rows": [a.num_rows, b.num_rows],
        "schema_equal": a.schema.equals(b.schema),
        "equal": a.equals(b),
        "columns": a.num_columns,
    }
print(json.dumps(result))
"#;

/// A temporary directory with one for the table written by decoding, one for the copied one.
fn two_table_dirs() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("rewritten"), dir.path().join("copied"));
    std::fs::create_dir_all(&old).unwrap();
    std::fs::create_dir_all(&new).unwrap();
    (dir, old, new)
}

#[tokio::test(flavor = "multi_thread")]
async fn copied_and_rewritten_table_files_read_the_same_everywhere() {
    let (_dir, old, new) = two_table_dirs();
    // Chunks without statistics cannot be copied: the compactor decodes these fragments.
    let uncopyable = FragmentEncoding { dictionary: false, statistics: false, ..FragmentEncoding::default() };
    let rewritten = table_from(&old, uncopyable).await;
    let copied = table_from(&new, FragmentEncoding::default()).await;
    assert_eq!(rewritten.copied_fragments, 0, "{rewritten:?}");
    assert_eq!(copied.copied_fragments as u64, OBJECTS, "{copied:?}");
    assert_eq!(copied.rows, rewritten.rows);
    assert!(copied.rows > 1000, "{copied:?}");
    assert_eq!((copied.files, rewritten.files), (2, 2));

    let (old_stats, new_stats) = (stats_by_partition(&old), stats_by_partition(&new));
    assert_eq!(new_stats.keys().collect::<Vec<_>>(), ["2026-05-16", "2026-05-17"]);
    for (partition, stats) in &old_stats {
        assert_eq!(&new_stats[partition], stats, "Delta statistics of partition {partition}");
    }
    assert!(old_stats["2026-05-16"]["minValues"]["event_time"].is_string(), "{old_stats:?}");

    assert_engines_read_alike(&old, &new, copied.rows);
}

/// The tools virtualenv's Python, which has delta-rs, pyarrow, DuckDB and pyspark.
fn tools_python() -> std::path::PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/tools/bin/python");
    assert!(python.exists(), "{} is missing: run `make tools-venv` (make test does)", python.display());
    python
}

/// delta-rs, pyarrow (the files alone) and DuckDB each read the same `rows` rows from the
/// tables at `old` and `new`.
fn assert_engines_read_alike(old: &Path, new: &Path, rows: u64) {
    let uri = |path: &Path| url::Url::from_directory_path(path).unwrap().to_string();
    let home = tempfile::tempdir().unwrap();
    let read = Command::new(tools_python())
        .args(["-c", READ, &uri(old), &uri(new)])
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    let read: Value = serde_json::from_slice(&read.stdout).unwrap();
    for engine in ["delta_rs", "pyarrow", "duckdb"] {
        let result = &read[engine];
        assert_eq!(result["rows"], serde_json::json!([rows, rows]), "{engine}: {read}");
        assert_eq!(result["schema_equal"], true, "{engine}: {read}");
        assert_eq!(result["equal"], true, "{engine} reads different rows: {read}");
    }
}

/// Every partition source and type at once: a key segment, a timestamp's UTC date and hour,
/// and a field's own value.
const FOUR_COLUMNS: &str = "origin=key,date=date(event_time),hour=hour(event_time),area=value(region)";

/// A log's file path as the object key it names (the log keeps paths percent-encoded).
fn percent_decoded(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&path[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The `add` actions of a table's log.
fn adds_of(table: &Path) -> Vec<Value> {
    let mut adds = Vec::new();
    for entry in std::fs::read_dir(table.join("_delta_log")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "json") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let action: Value = serde_json::from_str(line).unwrap();
                adds.extend(action.get("add").cloned());
            }
        }
    }
    adds
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_partitions_of_several_columns_are_copied_and_every_reader_agrees_on_their_values() {
    let (_dir, old, new) = two_table_dirs();
    // `+` is one of the characters a partition directory escapes.
    // The sample's object 3n starts at hour n/2 and crosses into the next: rows of one object
    // fall in several hours.
    let key_of =
        |index: u64| (format!("raw/origin={}/part-{index}.json.zst", ["web", "api+v2"][index as usize % 2]), 3 * index);
    let uncopyable = FragmentEncoding { dictionary: false, statistics: false, ..FragmentEncoding::default() };
    let rewritten = table_partitioned(&old, uncopyable, FOUR_COLUMNS, key_of).await;
    let copied = table_partitioned(&new, FragmentEncoding::default(), FOUR_COLUMNS, key_of).await;
    assert_eq!(rewritten.copied_fragments, 0, "{rewritten:?}");
    assert!(copied.fragments > OBJECTS as usize, "objects span partitions: {copied:?}");
    assert_eq!(copied.copied_fragments, copied.fragments, "every fragment copied: {copied:?}");
    assert_eq!(copied.rows, rewritten.rows);

    // Both writers name and value the partitions alike, and each file sits in its directory.
    let partitions = |table: &Path| {
        let mut seen: Vec<(String, Value)> = adds_of(table)
            .iter()
            .map(|add| {
                let path = percent_decoded(add["path"].as_str().unwrap());
                let directory = path.rsplit_once('/').unwrap().0.to_string();
                (directory, add["partitionValues"].clone())
            })
            .collect();
        seen.sort_by(|a, b| a.0.cmp(&b.0));
        seen
    };
    let (old_partitions, new_partitions) = (partitions(&old), partitions(&new));
    assert_eq!(old_partitions, new_partitions);
    let hours: BTreeSet<String> = new_partitions.iter().map(|(_, values)| values["hour"].to_string()).collect();
    assert!(hours.len() >= 3, "{hours:?}");
    assert!(new_partitions.len() >= 24, "two origins, hours, four regions: {new_partitions:?}");
    for (directory, values) in &new_partitions {
        let hour: u32 = values["hour"].as_str().unwrap().parse().unwrap();
        assert!(hour <= 5, "{values}");
        let value = |column: &str| values[column].as_str();
        let expected = partition_directories(["origin", "date", "hour", "area"].map(|c| (c, value(c))));
        assert_eq!(directory, &expected);
        assert!(value("origin") == Some("web") || directory.starts_with("origin=api%2Bv2/"), "{directory}");
        assert_eq!(values["date"], "2026-05-16");
    }
    assert_engines_read_alike(&old, &new, copied.rows);

    // delta-rs and DuckDB (from the log) and Spark (from the directories) read the same
    // typed values for every row.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reader/partition_values.py");
    let home = tempfile::tempdir().unwrap();
    let python = tools_python();
    let output = Command::new(&python)
        .arg(&script)
        .arg(new.to_str().unwrap())
        .args(["event_id", "origin", "date", "hour", "area"])
        .env("HOME", home.path())
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .env("PYSPARK_PYTHON", &python)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let read: Value = serde_json::from_slice(&output.stdout).unwrap();
    let rows = read["delta_rs"]["rows"].as_array().unwrap();
    assert_eq!(rows.len() as u64, copied.rows);
    assert!(rows.iter().all(|row| row[2] == "2026-05-16" && row[4].is_string()), "{:?}", &rows[..3]);
    for engine in ["duckdb", "spark"] {
        assert_eq!(read[engine]["rows"], read["delta_rs"]["rows"], "{engine} reads other partition values");
    }
    let types = |engine: &str| -> Vec<String> {
        ["origin", "date", "hour", "area"]
            .iter()
            .map(|c| read[engine]["types"][c].as_str().unwrap().to_lowercase())
            .collect()
    };
    assert_eq!(types("delta_rs"), ["string", "date32[day]", "int32", "string"], "{read}");
    assert_eq!(types("duckdb"), ["varchar", "date", "integer", "varchar"], "{read}");
    assert_eq!(types("spark"), ["string", "date", "int", "string"], "{read}");
}
