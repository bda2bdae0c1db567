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
use serde::Serialize;

use crate::error::Result;
use crate::fragment::FragmentStore;

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
            ("inlet.fragments".to_string(), serde_json::json!(consumed.iter().map(|p| p.to_string()).collect::<Vec<_>>())),
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
