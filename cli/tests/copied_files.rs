//! The compactor's two ways of writing table files, held to each other. Fragments encoded as
//! table files keep their pages (the default) are copied into table files row group by row
//! group; fragments without column statistics (here without dictionaries either) are decoded
//! and written again through delta-rs' writer. The same rows staged both ways must give tables
//! that delta-rs, pyarrow (reading the files themselves) and DuckDB's delta extension read
//! identically, and files with the same Delta statistics.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;

use inlet::commit::{CompactionReport, Compactor, CompactorOptions, open_or_create};
use inlet::ingest::JsonDecoder;
use inlet::lineage::{FragmentSource, SourceObject};
use inlet::schema::Layout;
use inlet::stage::{FragmentEncoding, FragmentStore, FragmentWriter, table_store};
use inlet::testing::schemas;
use serde_json::Value;

const OBJECTS: u64 = 6;

/// Stages the sample objects with `encoding` (one fragment each, in its key's date partition)
/// under `dir` and compacts them into a new table there.
async fn table_from(dir: &Path, encoding: FragmentEncoding) -> CompactionReport {
    let layout = Layout { partition: Some("date=key".parse().unwrap()), ..Layout::default() };
    let schema = schemas::events_with(layout);
    let spec = schema.layout.partition.clone().unwrap();
    let url = url::Url::from_directory_path(dir).unwrap();
    let store = table_store(&url, &HashMap::new()).unwrap();
    let fragments = FragmentStore::new(store.clone());
    for index in 0..OBJECTS {
        let key = format!("web/date=2026-05-{}/part-{index}.json.zst", 16 + index % 2);
        let object =
            SourceObject { bucket: "raw".into(), key: key.clone(), etag: Some("e".into()), ..Default::default() };
        let data = inlet::testing::sample::ndjson_object(42, index, 512 * 1024);
        let decoded = JsonDecoder::new(schema.clone(), 1024).decode(&object, &data).unwrap();
        let value = spec.value_from_key(&key);
        let mut writer = FragmentWriter::with_encoding(&schema.table, &encoding).unwrap();
        let rows: usize = decoded.batches.iter().map(|batch| batch.num_rows()).sum();
        let mut parts = Vec::new();
        for batch in decoded.batches {
            parts.extend(spec.split(batch, value.as_deref()).unwrap().into_iter().map(|(_, batch)| batch));
        }
        writer.write(FragmentSource::new(&object, rows as u64, Some(rows as u64)), &parts).unwrap();
        let batch = format!("batch-{index}");
        fragments.put(writer.finish(&batch).unwrap(), Some(("date", value.as_deref()))).await.unwrap();
        fragments.seal(&batch, 1).await.unwrap();
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

#[tokio::test(flavor = "multi_thread")]
async fn copied_and_rewritten_table_files_read_the_same_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("rewritten"), dir.path().join("copied"));
    std::fs::create_dir_all(&old).unwrap();
    std::fs::create_dir_all(&new).unwrap();
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

    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/tools/bin/python");
    assert!(python.exists(), "{} is missing: run `make tools-venv` (make test does)", python.display());
    let uri = |path: &Path| url::Url::from_directory_path(path).unwrap().to_string();
    let home = tempfile::tempdir().unwrap();
    let read =
        Command::new(&python).args(["-c", READ, &uri(&old), &uri(&new)]).env("HOME", home.path()).output().unwrap();
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    let read: Value = serde_json::from_slice(&read.stdout).unwrap();
    for engine in ["delta_rs", "pyarrow", "duckdb"] {
        let result = &read[engine];
        let rows = copied.rows;
        assert_eq!(result["rows"], serde_json::json!([rows, rows]), "{engine}: {read}");
        assert_eq!(result["schema_equal"], true, "{engine}: {read}");
        assert_eq!(result["equal"], true, "{engine} reads different rows: {read}");
    }
}
