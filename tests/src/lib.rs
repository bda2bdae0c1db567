//! Shared fixtures for Inlet's LocalStack integration tests and the demo, one module per
//! concern: [`localstack`] connects to LocalStack, [`deploy`] sets up a pipeline (buckets,
//! queues, notification, functions, mappings), [`feed`] puts objects and messages into it,
//! [`invoke`] runs its compactor and the `inlet` command, [`wait`] waits for what it does, and
//! [`read`] reads what it staged and committed, the table with an independent reader.

use std::path::{Path, PathBuf};

pub mod deploy;
pub mod feed;
pub mod invoke;
pub mod localstack;
pub mod read;
pub mod wait;

pub use deploy::{Pipeline, PipelineOptions, code_dir, code_dir_of};
pub use localstack::LocalStack;
pub use read::{TableFile, TableSnapshot, read_table};

/// The workspace root, to find binaries, schemas and scripts.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The cargo target directory the binaries under test were built in.
pub fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| workspace_root().join("target"))
}
