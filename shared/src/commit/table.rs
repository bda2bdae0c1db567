//! The Delta table: opening, creating it with the declared schema, and its storage.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU64;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, SchemaRef};
pub use deltalake::ObjectStore;
use deltalake::datafile::writer::{DeltaWriter, WriterConfig};
use deltalake::kernel::Add;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::logstore::ObjectStoreRef;
use deltalake::table::config::TablePropertiesExt as _;
use deltalake::{DeltaTable, TableProperty};
use parquet::arrow::ArrowSchemaConverter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use url::Url;

use crate::commit::history::indexed_version;
use crate::error::{Error, Result};
use crate::properties::TableProperties;
use crate::schema::{TableSchema, refused_column_name};
use futures::StreamExt as _;

/// Whether log cleanup should run with the next commit: only when that commit writes a
/// checkpoint (delta-rs would otherwise list the whole `_delta_log` after every commit once
/// `delta.enableExpiredLogCleanup` is set, which makes each commit slower as the log grows),
/// and only when the load history index covers every commit cleanup could delete.
pub async fn log_cleanup_due(table: &DeltaTable) -> Result<bool> {
    let snapshot = table.snapshot()?;
    let interval = snapshot.table_config().checkpoint_interval().get();
    let next = snapshot.version() + 1;
    if !(next + 1).is_multiple_of(interval) {
        return Ok(false);
    }
    let indexed = indexed_version(&table.object_store()).await?;
    Ok(indexed.is_some_and(|covers| covers >= snapshot.version()))
}

/// The table at `url`, loaded; not loaded (no version) when no log is there yet. Looking for
/// the log first spares delta-rs' load of an empty location, which it logs as an error though
/// a table's first run is no error.
pub async fn open_table(url: &Url, storage_options: &HashMap<String, String>) -> Result<DeltaTable> {
    let mut table =
        deltalake::DeltaTableBuilder::from_url(url.clone())?.with_storage_options(storage_options.clone()).build()?;
    let log = object_store::path::Path::from("_delta_log");
    let has_log = table.log_store().object_store(None).list(Some(&log)).next().await.transpose()?.is_some();
    if has_log {
        match table.load().await {
            Ok(()) | Err(deltalake::DeltaTableError::NotATable(_)) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(table)
}

/// Opens the table at `url`, creating it with `schema` and `properties` if no table is there yet.
pub async fn open_or_create(
    url: &Url,
    storage_options: &HashMap<String, String>,
    schema: &TableSchema,
    properties: &TableProperties,
) -> Result<DeltaTable> {
    let table = open_table(url, storage_options).await?;
    if table.version().is_some() {
        let partitioned_by = table.snapshot()?.metadata().partition_columns().to_vec();
        if partitioned_by != schema.partition_columns() {
            let reason = format!(
                "the table is partitioned by {partitioned_by:?}, and the settings declare {:?} \
                 (INLET_PARTITION_BY): a Delta table's partition columns cannot change, so set it \
                 back, or write a new table",
                schema.partition_columns()
            );
            return Err(Error::Schema { location: url.to_string(), reason });
        }
        return Ok(table);
    }
    if let Some(problem) = schema.delta.fields().find_map(refused_column_name) {
        return Err(Error::Schema { location: url.to_string(), reason: problem });
    }
    let name = url.path_segments().and_then(|mut segments| segments.next_back()).unwrap_or("inlet").to_string();
    let created = table
        .create()
        .with_table_name(name)
        .with_comment("Ingested by Inlet")
        .with_columns(schema.delta.fields().cloned())
        .with_partition_columns(schema.partition_columns())
        .with_configuration(properties.iter().map(|(name, value)| (name, Some(value))))
        .with_configuration_property(TableProperty::EnableExpiredLogCleanup, Some("true"))
        .await;
    match created {
        Ok(table) => {
            tracing::info!(table = %url, "created Delta table");
            Ok(table)
        }
        // Another compactor created it first: use theirs.
        Err(err) => {
            let table = open_table(url, storage_options).await?;
            if table.version().is_some() { Ok(table) } else { Err(err.into()) }
        }
    }
}

/// Sets the properties of `table` that differ from `properties`, in one metadata commit; the
/// ones set, as `name=value`. A table whose properties match is left without a commit. A
/// compaction or optimize whose commit races this one is refused (`MetadataChanged`) before it
/// deletes anything, and its rows wait for the next run. The commit runs no log cleanup: that
/// waits until the load history has read the commits it would delete.
pub async fn keep_properties(table: &mut DeltaTable, properties: &TableProperties) -> Result<Vec<String>> {
    let drift = properties.drift(table.snapshot()?.metadata().configuration());
    if drift.is_empty() {
        return Ok(Vec::new());
    }
    let set: HashMap<String, String> = drift.iter().map(|(name, _, wants)| (name.clone(), wants.clone())).collect();
    let no_cleanup = CommitProperties::default().with_cleanup_expired_logs(Some(false));
    *table = table
        .clone()
        .set_tbl_properties()
        .with_properties(set)
        .with_raise_if_not_exists(false)
        .with_commit_properties(no_cleanup)
        .await?;
    Ok(drift.into_iter().map(|(name, _, wants)| format!("{name}={wants}")).collect())
}

/// Data files being written for `table` with `schema` (its own, or an evolved one), rolled at
/// `target_file_bytes`. Files stream to storage as multipart uploads a row group at a time, so
/// memory stays near one row group per partition rather than one whole file. The writer starts
/// at the first batch, whose values decide which columns get dictionary encoding.
pub struct DataFiles {
    store: ObjectStoreRef,
    partition_columns: Vec<String>,
    target_file_bytes: NonZeroU64,
    /// The writer's configuration from the table's own settings, given the Parquet settings,
    /// partition columns and target size.
    config: Box<dyn Fn(WriterProperties, Vec<String>, NonZeroU64) -> WriterConfig + Send + Sync>,
    writer: Option<DeltaWriter>,
}

impl DataFiles {
    /// Nothing is written until the first batch.
    pub fn new(table: &DeltaTable, schema: SchemaRef, target_file_bytes: u64) -> Result<Self> {
        let snapshot = table.snapshot()?;
        let properties = snapshot.table_config();
        let num_indexed_cols = properties.data_skipping_num_indexed_cols.unwrap_or_default();
        let stats_columns: Option<Vec<String>> = properties
            .data_skipping_stats_columns
            .as_ref()
            .map(|columns| columns.iter().map(|column| column.to_string()).collect());
        Ok(Self {
            store: table.object_store(),
            partition_columns: snapshot.metadata().partition_columns().to_vec(),
            target_file_bytes: NonZeroU64::new(target_file_bytes)
                .ok_or_else(|| Error::Config("target file size is 0".into()))?,
            config: Box::new(move |parquet, partition_columns, target| {
                let stats_columns = stats_columns.clone();
                WriterConfig::new(
                    schema.clone(),
                    partition_columns,
                    Some(parquet),
                    Some(target),
                    None,
                    num_indexed_cols,
                    stats_columns,
                )
            }),
            writer: None,
        })
    }

    /// Appends rows (partition columns included; they pick the file's partition).
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let writer = match &mut self.writer {
            Some(writer) => writer,
            None => {
                let unique = mostly_unique_columns(batch, &self.partition_columns);
                if !unique.is_empty() {
                    tracing::debug!(columns = ?unique, "no dictionary encoding for mostly distinct columns");
                }
                let parquet = data_file_properties(self.target_file_bytes.get(), unique)?;
                let config = (self.config)(parquet, self.partition_columns.clone(), self.target_file_bytes);
                self.writer.insert(DeltaWriter::new(self.store.clone(), config))
            }
        };
        Ok(writer.write(batch).await?)
    }

    /// Finishes the open files; their Add actions, none if nothing was written.
    pub async fn close(self) -> Result<Vec<Add>> {
        match self.writer {
            Some(writer) => Ok(writer.close().await?),
            None => Ok(Vec::new()),
        }
    }
}

/// Settings of committed files: zstd, row groups big enough for efficient scans and small
/// enough to bound the writer's memory; statistics (for pruning) are on by default. The writer
/// cuts files on its estimate of the bytes written, which counts open dictionaries and pages
/// uncompressed: capping both at 1/64 of the target (1 MiB, the Parquet default, for targets of
/// 64 MiB and more) keeps that estimate, and so the file sizes, close to the target. Columns in
/// `no_dictionary` are written plain.
fn data_file_properties(target_file_bytes: u64, no_dictionary: Vec<ColumnPath>) -> Result<WriterProperties> {
    let page_bytes = (target_file_bytes / 64).clamp(1024, 1024 * 1024) as usize;
    let mut builder = WriterProperties::builder();
    for column in no_dictionary {
        builder = builder.set_column_dictionary_enabled(column, false);
    }
    Ok(builder
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_max_row_group_row_count(Some(128 * 1024))
        .set_data_page_size_limit(page_bytes)
        .set_dictionary_page_size_limit(page_bytes)
        .build())
}

/// Values sampled per column to judge its cardinality, and the fewest that make a judgement.
const DICTIONARY_SAMPLE_VALUES: usize = 4096;
const DICTIONARY_MIN_SAMPLE: usize = 256;

/// The Parquet columns of `batch` (outside `partition_columns`) whose sampled values are over
/// 90% distinct: ids, timestamps, prices. A dictionary there is hashing for nothing (the writer
/// drops it once its page fills) and made the files larger than plain values under zstd
/// (docs/performance.md). Columns with repeats keep the dictionary.
fn mostly_unique_columns(batch: &RecordBatch, partition_columns: &[String]) -> Vec<ColumnPath> {
    let schema = batch.schema();
    let (fields, columns): (Vec<_>, Vec<_>) = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(field, _)| !partition_columns.contains(field.name()))
        .map(|(field, column)| (field.clone(), column.clone()))
        .unzip();
    let Ok(descriptor) = ArrowSchemaConverter::new().convert(&arrow_schema::Schema::new(fields)) else {
        return Vec::new();
    };
    let mut leaves = Vec::new();
    for column in &columns {
        leaf_arrays(column, &mut leaves);
    }
    // Leaves come in the order Parquet numbers its columns; if that ever differs, decide nothing.
    if leaves.len() != descriptor.num_columns() {
        return Vec::new();
    }
    descriptor
        .columns()
        .iter()
        .zip(&leaves)
        .filter(|(_, leaf)| mostly_unique(leaf.as_ref()))
        .map(|(column, _)| column.path().clone())
        .collect()
}

/// The arrays holding `array`'s leaf values, depth first (Parquet's column order).
fn leaf_arrays(array: &ArrayRef, out: &mut Vec<ArrayRef>) {
    match array.data_type() {
        DataType::Struct(_) => array.as_struct().columns().iter().for_each(|child| leaf_arrays(child, out)),
        DataType::List(_) => leaf_arrays(array.as_list::<i32>().values(), out),
        DataType::LargeList(_) => leaf_arrays(array.as_list::<i64>().values(), out),
        DataType::Map(_, _) => {
            let entries = array.as_map();
            leaf_arrays(entries.keys(), out);
            leaf_arrays(entries.values(), out);
        }
        _ => out.push(array.clone()),
    }
}

/// Whether over 90% of the first non-null values are distinct (strings, binaries, fixed-width
/// primitives; anything else keeps its dictionary).
fn mostly_unique(array: &dyn Array) -> bool {
    match array.data_type() {
        DataType::Utf8 => mostly_distinct(array, |i| array.as_string::<i32>().value(i).as_bytes()),
        DataType::LargeUtf8 => mostly_distinct(array, |i| array.as_string::<i64>().value(i).as_bytes()),
        DataType::Binary => mostly_distinct(array, |i| array.as_binary::<i32>().value(i)),
        DataType::LargeBinary => mostly_distinct(array, |i| array.as_binary::<i64>().value(i)),
        other => match other.primitive_width() {
            Some(width) => {
                let data = array.to_data();
                let Some(values) = data.buffers().first() else { return false };
                let start = data.offset();
                mostly_distinct(array, |i| &values.as_slice()[(start + i) * width..(start + i + 1) * width])
            }
            None => false,
        },
    }
}

fn mostly_distinct<'a>(array: &dyn Array, value: impl Fn(usize) -> &'a [u8]) -> bool {
    let mut distinct = HashSet::new();
    let mut present = 0;
    for i in (0..array.len()).filter(|&i| array.is_valid(i)).take(DICTIONARY_SAMPLE_VALUES) {
        present += 1;
        distinct.insert(value(i));
    }
    present >= DICTIONARY_MIN_SAMPLE && distinct.len() * 10 > present * 9
}

#[cfg(test)]
mod tests {
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use std::sync::Arc;

    use super::*;
    use crate::ingest::decode::JsonDecoder;
    use crate::lineage::SourceObject;

    const SCHEMA: &str = r#"{"fields": [
        {"name": "id", "type": "string"},
        {"name": "kind", "type": "string"},
        {"name": "n", "type": "long"},
        {"name": "price", "type": "double"},
        {"name": "items", "type": {"list": {"struct": [
            {"name": "sku", "type": "string"},
            {"name": "qty", "type": "integer"}
        ]}}}
    ]}"#;

    /// Rows whose `id`, `n` and item `sku` never repeat, while `kind`, `price` and `qty` do.
    fn rows(schema: &Arc<TableSchema>, count: usize) -> Vec<RecordBatch> {
        let ndjson: String = (0..count)
            .map(|i| {
                format!(
                    r#"{{"id":"id-{i}","kind":"{}","n":{},"price":{}.5,"items":[{{"sku":"s-{i}","qty":{}}}]}}"#,
                    ["click", "view", "buy"][i % 3],
                    i * 7,
                    i % 5,
                    i % 3
                ) + "\n"
            })
            .collect();
        let object = SourceObject { bucket: "raw".into(), key: "a.json".into(), etag: None, ..Default::default() };
        JsonDecoder::new(schema.clone(), 4096).decode(&object, ndjson.as_bytes()).unwrap().batches
    }

    fn names(columns: Vec<ColumnPath>) -> Vec<String> {
        columns.iter().map(ColumnPath::string).collect()
    }

    #[test]
    fn columns_whose_sampled_values_are_mostly_distinct_are_found_at_every_depth() {
        let schema = Arc::new(TableSchema::parse(SCHEMA, "test").unwrap());
        let batch = &rows(&schema, 1000)[0];
        assert_eq!(names(mostly_unique_columns(batch, &[])), ["id", "n", "items.list.element.sku"]);
        // Partition columns are not in the files, so not among their columns either.
        assert_eq!(names(mostly_unique_columns(batch, &["id".to_string()])), ["n", "items.list.element.sku"]);
        // Too few values to judge: every column keeps its dictionary.
        assert!(mostly_unique_columns(&rows(&schema, 100)[0], &[]).is_empty());
    }

    #[tokio::test]
    async fn a_new_table_is_not_created_with_a_column_name_delta_refuses() {
        let schema = TableSchema::parse(r#"{"fields":[{"name":"user agent","type":"string"}]}"#, "t").unwrap();
        let lake = tempfile::tempdir().unwrap();
        let url = Url::from_directory_path(lake.path()).unwrap();
        let err = open_or_create(&url, &HashMap::new(), &schema, &Default::default()).await.unwrap_err().to_string();
        assert!(err.contains(r#"{"name": "user_agent", "from": "user agent", ...}"#), "{err}");
        assert!(open_table(&url, &HashMap::new()).await.unwrap().version().is_none(), "no table was made");
    }

    #[tokio::test]
    async fn a_table_is_not_opened_with_other_partition_columns_than_it_has() {
        let lake = tempfile::tempdir().unwrap();
        let url = Url::from_directory_path(lake.path()).unwrap();
        let with = |spec: &str| {
            let layout = crate::schema::Layout { partition: Some(spec.parse().unwrap()), ..Default::default() };
            TableSchema::parse_with(SCHEMA, "t", layout).unwrap()
        };
        open_or_create(&url, &HashMap::new(), &with("date=key"), &Default::default()).await.unwrap();
        open_or_create(&url, &HashMap::new(), &with("date=key"), &Default::default()).await.unwrap();
        let err = open_or_create(&url, &HashMap::new(), &with("date=key,hour=key:integer"), &Default::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(r#"partitioned by ["date"], and the settings declare ["date", "hour"]"#), "{err}");
    }

    /// A new table with [`SCHEMA`] in a temporary directory.
    async fn new_table() -> (Arc<TableSchema>, tempfile::TempDir, DeltaTable) {
        let schema = Arc::new(TableSchema::parse(SCHEMA, "test").unwrap());
        let lake = tempfile::tempdir().unwrap();
        let url = Url::from_directory_path(lake.path()).unwrap();
        let table = open_or_create(&url, &HashMap::new(), &schema, &Default::default()).await.unwrap();
        (schema, lake, table)
    }

    #[tokio::test]
    async fn data_files_leave_dictionaries_out_of_mostly_distinct_columns_only() {
        let (schema, lake, table) = new_table().await;
        let mut files = DataFiles::new(&table, schema.table.clone(), 1 << 30).unwrap();
        for batch in rows(&schema, 3000) {
            files.write(&batch).await.unwrap();
        }
        let adds = files.close().await.unwrap();
        assert_eq!(adds.len(), 1);
        let file = std::fs::File::open(lake.path().join(&adds[0].path)).unwrap();
        let reader = SerializedFileReader::new(file).unwrap();
        let row_group = reader.metadata().row_group(0);
        let dictionary: HashMap<String, bool> = row_group
            .columns()
            .iter()
            .map(|column| (column.column_path().string(), column.dictionary_page_offset().is_some()))
            .collect();
        for (column, expected) in
            [("id", false), ("n", false), ("items.list.element.sku", false), ("kind", true), ("price", true)]
        {
            assert_eq!(dictionary[column], expected, "{column}: {dictionary:?}");
        }
        assert_eq!(reader.metadata().file_metadata().num_rows(), 3000);
    }

    #[tokio::test]
    async fn data_files_with_no_rows_write_no_file() {
        let (schema, _lake, table) = new_table().await;
        assert!(DataFiles::new(&table, schema.table.clone(), 1 << 30).unwrap().close().await.unwrap().is_empty());
    }
}
