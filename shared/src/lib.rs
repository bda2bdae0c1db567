//! Inlet core: turns zstd-compressed NDJSON objects announced by S3 notifications into
//! Parquet fragments, and fragments into target-sized files committed to a Delta table.
//!
//! The folders follow the data path:
//! - [`ingest`]: an SQS batch of S3 notifications → decoded rows → staged fragments
//!   (the converter Lambda);
//! - [`stage`]: the fragment format and store both functions share;
//! - [`commit`]: staged fragments → one Delta commit, exactly once (the compactor Lambda);
//! - [`ops`]: what only the `inlet` command uses (backfill, status).
//!
//! Beside them: the declared [`schema`] and its [`partition`] spec, the [`routes`] of a deployment of
//! several tables, source identity
//! ([`lineage`]), crash points for tests on the real path ([`faults`]), every path and metadata key Inlet owns ([`layout`]), [`config`], the
//! process [`context`] and its allocator ([`memory`]), [`error`]s, [`metrics`] and [`telemetry`].
#![deny(missing_docs)]

pub mod aws;
pub mod commit;
pub mod config;
pub mod context;
pub mod error;
pub mod faults;
pub mod framing;
pub mod ingest;
pub mod layout;
pub mod lineage;
pub mod memory;
pub mod metrics;
pub mod ops;
pub mod partition;
pub mod properties;
pub mod routes;
pub mod schema;
pub mod stage;
pub mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::{Error, Result};
