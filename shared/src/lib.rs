//! Inlet core: turns zstd-compressed NDJSON objects announced by S3 notifications into
//! Parquet fragments, and fragments into target-sized files committed to a Delta table.
//!
//! The data path, module by module:
//! [`event`] (which objects an SQS batch names) → [`source`] (fetch and decompress) →
//! [`decode`] (NDJSON to Arrow with the declared [`schema`], by [`direct`] or arrow-json) →
//! [`fragment`] (staged Parquet, its pages encoded by [`pages`]) →
//! [`compact`] (merge fragments and commit them to Delta through [`table`]).
#![deny(missing_docs)]

pub mod aws;
pub mod backfill;
pub mod compact;
pub mod config;
pub mod context;
pub mod converter;
pub mod decode;
pub mod direct;
pub mod error;
pub mod event;
pub mod evolution;
pub mod fragment;
pub mod history;
pub mod metrics;
pub mod optimize;
pub mod pages;
pub mod partition;
pub mod quarantine;
pub mod sample;
pub mod schema;
pub mod source;
pub mod status;
pub mod table;
pub mod telemetry;
pub mod trigger;

pub use error::{Error, Result};
