//! Reading what a pipeline did: the fragments it staged, the versions it found superseded, its
//! queues' depths and its functions' logs, and the table as an independent reader (delta-rs'
//! Python bindings) sees it.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow, ensure};
use inlet::stage::FragmentStore;
use serde::Deserialize;

use crate::deploy::Pipeline;
use crate::localstack::LocalStack;
use crate::workspace_root;

/// A Delta table as the independent reader saw it.
#[derive(Debug, Deserialize)]
pub struct TableSnapshot {
    /// Table version.
    pub version: u64,
    /// Data files in the current snapshot.
    pub files: Vec<TableFile>,
    /// Row count.
    pub num_rows: u64,
    /// Column names.
    pub columns: Vec<String>,
    /// Rows (all, or a sample), as JSON objects.
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// One data file of a snapshot.
#[derive(Debug, Deserialize)]
pub struct TableFile {
    /// Path relative to the table root.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// Reads `table_uri` with delta-rs' Python bindings (`tests/reader/read_table.py`).
pub async fn read_table(localstack: &LocalStack, table_uri: &str, all_rows: bool) -> Result<TableSnapshot> {
    let root = workspace_root();
    let python =
        std::env::var("INLET_READER_PYTHON").map(PathBuf::from).unwrap_or_else(|_| root.join(".venv/tools/bin/python"));
    ensure!(python.exists(), "{} is missing: run `make tools-venv` (make test does)", python.display());
    let mut command = tokio::process::Command::new(&python);
    command.arg(root.join("tests/reader/read_table.py")).arg(table_uri);
    if all_rows {
        command.arg("--all-rows");
    }
    command.envs(localstack.aws_env());
    let output = command.output().await.context("running the independent reader")?;
    ensure!(output.status.success(), "reader failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).map_err(|err| anyhow!("reader printed unexpected output: {err}"))
}

impl Pipeline {
    /// Reads the table with the independent Python reader.
    pub async fn read_table(&self, all_rows: bool) -> Result<TableSnapshot> {
        read_table(&self.localstack, &self.table_uri, all_rows).await
    }

    /// The object store rooted at the table location (staging and quarantine live under it).
    pub fn table_store(&self) -> Result<Arc<dyn inlet::stage::store::ObjectStore>> {
        let url = url::Url::parse(&self.table_uri)?;
        Ok(inlet::stage::table_store(&url, &self.localstack.storage_options())?)
    }

    /// The table's staging area.
    pub fn fragments(&self) -> Result<FragmentStore> {
        Ok(FragmentStore::new(self.table_store()?))
    }

    /// Source URIs listed by the staged fragments.
    pub async fn staged_sources(&self) -> Result<Vec<String>> {
        let store = self.fragments()?;
        let mut sources = Vec::new();
        for meta in store.list().await? {
            sources.extend(store.info(&meta).await?.sources.into_iter().map(|s| s.id.uri));
        }
        Ok(sources)
    }

    /// Notified versions the converter found gone when it read them.
    pub async fn superseded(&self) -> Result<Vec<inlet::ingest::SupersededVersion>> {
        Ok(inlet::ingest::SupersededLog::new(self.table_store()?).versions().await?)
    }

    /// Messages in a queue, visible plus in flight.
    pub async fn queue_depth(&self, queue_url: &str) -> Result<u64> {
        Ok(inlet::aws::queue_depth(&self.localstack.sqs, queue_url).await?)
    }

    /// What a function printed so far (the local executor keeps one log per function).
    pub fn function_log(&self, function: &str) -> String {
        let path = workspace_root().join(format!(".localstack/lambda-logs/{function}.log"));
        std::fs::read_to_string(&path).unwrap_or_default()
    }
}
