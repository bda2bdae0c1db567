//! Compaction: merge staged fragments into target-sized Parquet files and commit them to
//! Delta in one transaction, then delete the consumed fragments.

use deltalake::DeltaTable;
use deltalake::kernel::Action;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use object_store::path::Path;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::fragment::FragmentStore;
use crate::metrics::Metric;
use crate::table::open_or_create;

/// An on-demand or scheduled compaction request (the compactor Lambda's payload).
/// `{}` and EventBridge's scheduled-event payload both mean "compact the configured table".
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
pub struct CompactRequest {
    /// Table to compact; must be the configured one when given.
    #[serde(default)]
    pub table: Option<String>,
}

impl CompactRequest {
    /// Reads a request from an invocation payload; unknown fields (EventBridge's) are ignored.
    pub fn from_payload(payload: &serde_json::Value) -> Result<Self> {
        if payload.is_null() {
            return Ok(Self::default());
        }
        Ok(serde_json::from_value(payload.clone())?)
    }
}

/// Compacts the context's table as asked by `request`.
pub async fn compact_table(context: &Context, request: &CompactRequest) -> Result<CompactionReport> {
    if let Some(table) = &request.table {
        let configured = &context.settings.table_uri;
        if table.trim_end_matches('/') != configured && !configured.ends_with(&format!("/{table}")) {
            return Err(Error::Config(format!("this compactor serves {configured}, not {table:?}")));
        }
    }
    let url = context.settings.table_url()?;
    let mut table = open_or_create(&url, &context.storage_options, &context.schema).await?;
    Compactor::new(FragmentStore::new(context.table_store.clone()), context.settings.target_file_bytes)
        .run(&mut table)
        .await
}

/// What one compaction run did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct CompactionReport {
    /// Fragments merged and deleted.
    pub fragments: usize,
    /// Source objects whose rows were committed.
    pub sources: usize,
    /// Rows committed.
    pub rows: u64,
    /// Parquet files added to the table.
    pub files: usize,
    /// Bytes of Parquet added to the table.
    pub bytes: u64,
    /// Table version created, if anything was committed.
    pub version: Option<u64>,
}

impl CompactionReport {
    /// The report as CloudWatch metrics.
    pub fn metrics(&self) -> [Metric; 5] {
        [
            Metric { name: "FragmentsConsumed", value: self.fragments as f64, unit: "Count" },
            Metric { name: "RowsCommitted", value: self.rows as f64, unit: "Count" },
            Metric { name: "FilesWritten", value: self.files as f64, unit: "Count" },
            Metric { name: "BytesWritten", value: self.bytes as f64, unit: "Bytes" },
            Metric { name: "CommitVersion", value: self.version.map_or(-1.0, |v| v as f64), unit: "None" },
        ]
    }
}

/// Merges fragments of one table into its Delta log.
pub struct Compactor {
    fragments: FragmentStore,
    target_file_bytes: u64,
}

impl Compactor {
    /// A compactor for the fragments staged in `fragments`.
    pub fn new(fragments: FragmentStore, target_file_bytes: u64) -> Self {
        Self { fragments, target_file_bytes }
    }

    /// Merges every staged fragment into `table` in one commit.
    pub async fn run(&self, table: &mut DeltaTable) -> Result<CompactionReport> {
        let staged = self.fragments.list().await?;
        if staged.is_empty() {
            return Ok(CompactionReport::default());
        }
        let mut writer = RecordBatchWriter::for_table(table)?
            .with_target_file_size(self.target_file_bytes)
            .with_writer_properties(output_properties()?);
        let mut report = CompactionReport { fragments: staged.len(), ..Default::default() };
        let mut consumed: Vec<Path> = Vec::with_capacity(staged.len());
        let mut sources = Vec::new();
        for meta in &staged {
            let fragment = self.fragments.read(&meta.location).await?;
            for batch in fragment.batches {
                report.rows += batch.num_rows() as u64;
                writer.write(batch).await?;
            }
            sources.extend(fragment.sources.into_iter().map(|source| source.uri));
            consumed.push(fragment.path);
        }
        report.sources = sources.len();
        let adds = writer.flush().await?;
        report.files = adds.len();
        report.bytes = adds.iter().map(|add| add.size.max(0) as u64).sum();
        let properties = CommitProperties::default().with_metadata([
            (
                "inlet.fragments".to_string(),
                serde_json::json!(consumed.iter().map(|p| p.to_string()).collect::<Vec<_>>()),
            ),
            ("inlet.rows".to_string(), serde_json::json!(report.rows)),
        ]);
        let operation = DeltaOperation::Write { mode: SaveMode::Append, partition_by: None, predicate: None };
        let committed = CommitBuilder::from(properties)
            .with_actions(adds.into_iter().map(Action::Add).collect())
            .build(Some(table.snapshot()?), table.log_store(), operation)
            .await?;
        report.version = Some(committed.version());
        table.update_state().await?;
        // Only after the commit: a crash before this line leaves fragments that are already in the table.
        self.fragments.delete(&consumed).await?;
        tracing::info!(
            fragments = report.fragments,
            rows = report.rows,
            files = report.files,
            bytes = report.bytes,
            version = committed.version(),
            "compaction committed"
        );
        Ok(report)
    }
}

/// Settings of committed files: zstd, statistics for pruning.
fn output_properties() -> Result<WriterProperties> {
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_max_row_group_row_count(Some(128 * 1024))
        .build())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;
    use crate::decode::JsonDecoder;
    use crate::event::SourceObject;
    use crate::fragment::{self, FragmentSource};
    use crate::schema::TableSchema;
    use crate::table::table_store;

    async fn stage(store: &FragmentStore, schema: &Arc<TableSchema>, key: &str, ids: std::ops::Range<i64>) {
        let object = SourceObject { bucket: "raw".into(), key: key.into(), etag: None };
        let data: String = ids.clone().map(|i| format!("{{\"id\":{i}}}\n")).collect();
        let batches = JsonDecoder::new(schema.clone(), 64).decode(&object, data.as_bytes()).unwrap().batches;
        let sources = [FragmentSource { uri: object.uri(), etag: None, rows: ids.count() as u64 }];
        store.put(fragment::encode(&schema.table, &batches, &sources).unwrap(), None).await.unwrap();
    }

    fn rows_in(dir: &std::path::Path, table: &DeltaTable) -> Vec<i64> {
        let mut ids = Vec::new();
        for uri in table.get_file_uris().unwrap() {
            let path = uri.strip_prefix("file://").map(str::to_string).unwrap_or(uri);
            let file = std::fs::File::open(if path.starts_with('/') { path.into() } else { dir.join(path) }).unwrap();
            for batch in ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap() {
                let batch = batch.unwrap();
                let column = batch.column_by_name("id").unwrap();
                let values = column.as_any().downcast_ref::<arrow_array::Int64Array>().unwrap();
                ids.extend(values.iter().flatten());
            }
        }
        ids.sort();
        ids
    }

    #[tokio::test]
    async fn fragments_become_one_commit_and_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(dir.path()).unwrap();
        let schema = Arc::new(TableSchema::parse(r#"{"fields":[{"name":"id","type":"long"}]}"#, "t").unwrap());
        let options = HashMap::new();
        let fragments = FragmentStore::new(table_store(&url, &options).unwrap());
        stage(&fragments, &schema, "a.json", 0..100).await;
        stage(&fragments, &schema, "b.json", 100..250).await;

        let mut table = open_or_create(&url, &options, &schema).await.unwrap();
        assert_eq!(table.version(), Some(0), "created with the declared schema");
        let report = Compactor::new(fragments.clone(), 1 << 20).run(&mut table).await.unwrap();
        assert_eq!((report.fragments, report.sources, report.rows, report.version), (2, 2, 250, Some(1)));
        assert_eq!(report.files, 1, "small fragments merge into one file");
        assert!(fragments.list().await.unwrap().is_empty(), "consumed fragments are deleted");
        assert_eq!(rows_in(dir.path(), &table), (0..250).collect::<Vec<_>>());

        // Nothing staged: nothing committed.
        let report = Compactor::new(fragments, 1 << 20).run(&mut table).await.unwrap();
        assert_eq!(report, CompactionReport::default());
        assert_eq!(table.version(), Some(1));
    }

    #[test]
    fn requests_accept_empty_scheduled_and_named_payloads() {
        let empty = CompactRequest::from_payload(&serde_json::json!({})).unwrap();
        assert_eq!(empty, CompactRequest::default());
        let scheduled =
            serde_json::json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
        assert_eq!(CompactRequest::from_payload(&scheduled).unwrap(), CompactRequest::default());
        let named = CompactRequest::from_payload(&serde_json::json!({"table": "events"})).unwrap();
        assert_eq!(named.table.as_deref(), Some("events"));
        assert!(CompactRequest::from_payload(&serde_json::json!({"table": 3})).is_err());
    }
}
