//! Table files assembled from fragments' (and, for optimize, smaller table files') row groups
//! without decoding them.
//!
//! The converter encodes fragments the way table files keep their pages (zstd, dictionaries
//! where values repeat, column chunk statistics). A fragment that holds only rows to commit, in the table's schema, is then
//! copied into a table file row group by row group: its column chunks are appended byte for
//! byte, its partition columns left out (Delta keeps partition values in the log). No value is
//! decoded, encoded or compressed again, so a compaction costs about its I/O. Files stream to
//! storage as multipart uploads a row group at a time and roll at the target size; each gets
//! the Delta statistics delta-rs would have written for it ([`stats`](super::stats)).
//!
//! Anything else (fragments of an older encoding or schema, or with rows already committed)
//! goes through [`DataFiles`](super::table::DataFiles), which decodes and re-encodes.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use arrow_schema::{DataType, Schema, SchemaRef};
use bytes::Bytes;
use deltalake::DeltaTable;
use deltalake::kernel::Add;
use deltalake::logstore::ObjectStoreRef;
use object_store::path::Path;
use object_store::{ObjectStoreExt, WriteMultipart};
use parquet::arrow::{ARROW_SCHEMA_META_KEY, ArrowSchemaConverter, encode_arrow_schema, parquet_to_arrow_schema};
use parquet::basic::Compression;
use parquet::column::writer::ColumnCloseResult;
use parquet::file::metadata::{KeyValue, ParquetMetaData};
use parquet::file::properties::WriterProperties;
use parquet::file::statistics::Statistics;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::SchemaDescPtr;

use crate::commit::stats::{StatsColumns, file_stats};
use crate::error::{Error, Result};
use crate::layout::partition_directories;
use crate::partition::date_text;

/// Multipart parts uploading at once per open file.
const UPLOADS_IN_FLIGHT: usize = 4;

/// How a file's row groups become a table file's: for each table file column, the column it
/// is copied from, and the partition the rows belong to (a value per partition column, as the
/// Delta log writes it).
#[derive(Debug, Clone)]
pub struct CopyPlan {
    columns: Vec<usize>,
    partition: Vec<Option<String>>,
}

/// Table files being assembled from copied row groups.
pub struct CopiedFiles {
    store: ObjectStoreRef,
    /// The table's schema (partition columns included), which fragments must have exactly.
    schema: SchemaRef,
    /// The table files' Arrow schema: the table's without its partition columns.
    file_schema: Schema,
    /// The data files' Parquet schema: the table's without its partition columns.
    descriptor: SchemaDescPtr,
    properties: Arc<WriterProperties>,
    /// The partition columns and their Arrow types, in the table's order.
    partition_columns: Vec<(String, DataType)>,
    stats: StatsColumns,
    target_file_bytes: u64,
    /// The file being written, and its partition.
    open: Option<(Vec<Option<String>>, OpenFile)>,
    adds: Vec<Add>,
}

impl CopiedFiles {
    /// A copier for `table` with `schema` (its own, or an evolved one), or `None` when its files
    /// cannot be copied: statistics on named columns, a statistics column of a type the
    /// statistics here do not cover, or a partition column the schema does not have.
    pub fn new(table: &DeltaTable, schema: SchemaRef, target_file_bytes: u64) -> Result<Option<Self>> {
        let snapshot = table.snapshot()?;
        let metadata = snapshot.metadata();
        let mut partition_columns = Vec::new();
        for name in metadata.partition_columns() {
            let Ok(field) = schema.field_with_name(name) else { return Ok(None) };
            partition_columns.push((name.clone(), field.data_type().clone()));
        }
        let configuration = metadata.configuration();
        let Some(stats) = StatsColumns::from_configuration(configuration.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        else {
            return Ok(None);
        };
        let file_schema = Schema::new(
            schema
                .fields()
                .iter()
                .filter(|field| !partition_columns.iter().any(|(name, _)| name == field.name()))
                .cloned()
                .collect::<Vec<_>>(),
        );
        let descriptor = Arc::new(ArrowSchemaConverter::new().convert(&file_schema)?);
        if !stats.supports(&descriptor, &[]) {
            return Ok(None);
        }
        // What lets readers rebuild the exact Arrow types, as delta-rs' writer records it.
        let arrow_schema = KeyValue::new(ARROW_SCHEMA_META_KEY.to_string(), encode_arrow_schema(&file_schema));
        let properties = Arc::new(WriterProperties::builder().set_key_value_metadata(Some(vec![arrow_schema])).build());
        Ok(Some(Self {
            store: table.object_store(),
            schema,
            file_schema,
            descriptor,
            properties,
            partition_columns,
            stats,
            target_file_bytes,
            open: None,
            adds: Vec::new(),
        }))
    }

    /// How a fragment with `metadata` is copied, or `None` if it cannot be: its Arrow schema is
    /// not the table's, a column chunk is not zstd or has no statistics, or a partition column
    /// does not hold one value throughout.
    pub fn plan(&self, metadata: &ParquetMetaData) -> Option<CopyPlan> {
        let columns = self.columns_of(metadata, &self.schema)?;
        let available = metadata.file_metadata().schema_descr().columns();
        let mut partition = Vec::with_capacity(self.partition_columns.len());
        for (name, kind) in &self.partition_columns {
            let index = available.iter().position(|column| column.path().parts() == [name.clone()])?;
            partition.push(partition_value(metadata, index, kind)?);
        }
        Some(CopyPlan { columns, partition })
    }

    /// How a table file (partition columns left out, their values `partition` by column) with
    /// `metadata` is copied into a larger one, or `None` if it cannot be.
    pub fn plan_table_file(
        &self,
        metadata: &ParquetMetaData,
        partition: &BTreeMap<String, Option<String>>,
    ) -> Option<CopyPlan> {
        let columns = self.columns_of(metadata, &self.file_schema)?;
        let partition: Option<Vec<_>> =
            self.partition_columns.iter().map(|(name, _)| partition.get(name).cloned()).collect();
        Some(CopyPlan { columns, partition: partition? })
    }

    /// For each table file column, the column of a file with `metadata` it is copied from, if
    /// the file has the fields of `expected` and zstd chunks with statistics throughout.
    fn columns_of(&self, metadata: &ParquetMetaData, expected: &Schema) -> Option<Vec<usize>> {
        let file = metadata.file_metadata();
        let arrow = parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata()).ok()?;
        // The same fields, in any order: an evolved table appends columns after the lineage
        // ones, where the declared schema has them before. Chunks are copied in table order.
        let same_fields = arrow.fields().len() == expected.fields().len()
            && expected
                .fields()
                .iter()
                .all(|field| arrow.field_with_name(field.name()).is_ok_and(|ours| ours == field.as_ref()));
        if !same_fields {
            return None;
        }
        let available = file.schema_descr().columns();
        let mut columns = Vec::with_capacity(self.descriptor.num_columns());
        for column in self.descriptor.columns() {
            columns.push(available.iter().position(|candidate| candidate.as_ref() == column.as_ref())?);
        }
        let copyable = metadata.row_groups().iter().all(|group| {
            columns.iter().all(|&index| {
                let chunk = group.column(index);
                matches!(chunk.compression(), Compression::ZSTD(_)) && chunk.statistics().is_some()
            })
        });
        copyable.then_some(columns)
    }

    /// Copies every row group of the file `data` (with `metadata`) as `plan` says; returns the
    /// rows copied.
    pub async fn copy(&mut self, data: &Bytes, metadata: &ParquetMetaData, plan: &CopyPlan) -> Result<u64> {
        let partition = &plan.partition;
        // One file open at a time: callers give each partition's files one after another, so
        // memory holds one file's upload whatever the number of partitions.
        if self.open.as_ref().is_some_and(|(open, _)| open != partition) {
            self.finish_open().await?;
        }
        let mut rows = 0;
        for group in metadata.row_groups() {
            if self.open.is_none() {
                let file = self.open_file(partition).await?;
                self.open = Some((partition.clone(), file));
            }
            let (_, file) = self.open.as_mut().expect("opened above");
            let mut writer = file.writer.next_row_group()?;
            for &index in &plan.columns {
                let chunk = group.column(index);
                let close = ColumnCloseResult {
                    bytes_written: chunk.compressed_size() as u64,
                    rows_written: group.num_rows() as u64,
                    metadata: chunk.clone(),
                    bloom_filter: None,
                    column_index: None,
                    offset_index: None,
                };
                writer.append_column(data, close)?;
            }
            writer.close()?;
            rows += group.num_rows() as u64;
            file.drain().await?;
            if file.writer.bytes_written() as u64 >= self.target_file_bytes {
                self.finish_open().await?;
            }
        }
        Ok(rows)
    }

    /// Finishes the open file, if any, and keeps its Add action.
    async fn finish_open(&mut self) -> Result<()> {
        if let Some((partition, file)) = self.open.take() {
            let add = file.finish(&self.stats, &self.partition_columns, partition).await?;
            self.adds.push(add);
        }
        Ok(())
    }

    /// A new file in `partition`'s directory.
    async fn open_file(&self, partition: &[Option<String>]) -> Result<OpenFile> {
        let name = format!("part-00000-{}-c000.zstd.parquet", uuid::Uuid::new_v4());
        let names = self.partition_columns.iter().map(|(name, _)| name.as_str());
        let directory = partition_directories(names.zip(partition.iter().map(Option::as_deref)));
        // Parsed, not built: the directory is already encoded as the Delta writer encodes it.
        let path = Path::parse(format!("{directory}/{name}").trim_start_matches('/'))
            .map_err(|err| Error::Integrity(format!("table file path: {err}")))?;
        let upload = WriteMultipart::new(self.store.put_multipart(&path).await?);
        let spool = Spool::default();
        let writer =
            SerializedFileWriter::new(spool.clone(), self.descriptor.root_schema_ptr(), self.properties.clone())?;
        Ok(OpenFile { path, writer, spool, upload })
    }

    /// Finishes the open files; the Add actions of every file written.
    pub async fn close(mut self) -> Result<Vec<Add>> {
        self.finish_open().await?;
        Ok(self.adds)
    }
}

/// The one partition value (`Some(None)` for null) in column `index` of a fragment, as the
/// Delta log writes a value of `kind`, from its statistics; `None` if they do not show a
/// single value.
fn partition_value(metadata: &ParquetMetaData, index: usize, kind: &DataType) -> Option<Option<String>> {
    let mut value: Option<Option<String>> = None;
    for group in metadata.row_groups() {
        let stats = group.column(index).statistics()?;
        let rows = group.num_rows() as u64;
        let this = match stats.null_count_opt()? {
            nulls if nulls == rows && rows > 0 => None,
            0 if stats.min_is_exact() && stats.max_is_exact() => {
                let (min, max) = (statistic_text(stats, kind, true)?, statistic_text(stats, kind, false)?);
                if min != max {
                    return None;
                }
                Some(min)
            }
            _ => return None,
        };
        match &value {
            Some(seen) if *seen != this => return None,
            _ => value = Some(this),
        }
    }
    value
}

/// A column chunk's minimum (or maximum) as the Delta log writes a partition value of `kind`.
fn statistic_text(stats: &Statistics, kind: &DataType, min: bool) -> Option<String> {
    match (stats, kind) {
        (Statistics::ByteArray(s), DataType::Utf8) => {
            Some((if min { s.min_opt() } else { s.max_opt() })?.as_utf8().ok()?.to_string())
        }
        (Statistics::Int32(s), DataType::Date32) => date_text(*(if min { s.min_opt() } else { s.max_opt() })?),
        (Statistics::Int32(s), DataType::Int8 | DataType::Int16 | DataType::Int32) => {
            Some((if min { s.min_opt() } else { s.max_opt() })?.to_string())
        }
        (Statistics::Int64(s), DataType::Int64) => Some((if min { s.min_opt() } else { s.max_opt() })?.to_string()),
        (Statistics::Boolean(s), DataType::Boolean) => Some((if min { s.min_opt() } else { s.max_opt() })?.to_string()),
        _ => None,
    }
}

/// One table file being written.
struct OpenFile {
    path: Path,
    writer: SerializedFileWriter<Spool>,
    spool: Spool,
    upload: WriteMultipart,
}

impl OpenFile {
    /// Hands what the writer produced to the upload, waiting while too many parts are in flight.
    async fn drain(&mut self) -> Result<()> {
        let bytes = self.spool.take();
        if !bytes.is_empty() {
            self.upload.put(Bytes::from(bytes));
        }
        self.upload.wait_for_capacity(UPLOADS_IN_FLIGHT).await?;
        Ok(())
    }

    async fn finish(
        mut self,
        stats: &StatsColumns,
        columns: &[(String, DataType)],
        partition: Vec<Option<String>>,
    ) -> Result<Add> {
        let metadata = self.writer.finish()?;
        self.drain().await?;
        self.upload.finish().await?;
        let size = self.writer.bytes_written() as i64;
        let names: Vec<String> = columns.iter().map(|(name, _)| name.clone()).collect();
        let stats = file_stats(&metadata, stats, &names)?;
        let partition_values = names.into_iter().zip(partition).collect();
        Ok(Add {
            path: self.path.to_string(),
            size,
            partition_values,
            modification_time: chrono::Utc::now().timestamp_millis(),
            data_change: true,
            stats: Some(stats),
            ..Default::default()
        })
    }
}

/// Bytes a Parquet writer produced and the upload has not taken yet.
#[derive(Debug, Clone, Default)]
struct Spool(Arc<Mutex<Vec<u8>>>);

impl Spool {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().expect("spool lock"))
    }
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("spool lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
