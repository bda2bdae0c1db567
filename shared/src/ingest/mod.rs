//! Ingestion: an SQS batch of S3 notifications in, Parquet fragments out.
//!
//! [`event`] says which objects a batch names, [`source`] fetches and decompresses them,
//! [`decode`] turns their lines into Arrow batches of the declared schema (through the
//! one-pass [`json`] decoder, arrow-json where it declines), [`quarantine`] keeps the lines
//! that do not fit, and the [`converter`] stages what decoded and asks for a compaction
//! through [`trigger`].

pub mod converter;
pub mod decode;
pub mod event;
pub mod json;
pub mod quarantine;
pub mod source;
pub mod trigger;

pub use converter::{ConversionReport, Converter, ConverterOptions};
pub use decode::{JsonDecoder, QuarantinedLine};
pub use quarantine::Quarantine;
pub use source::{ObjectSource, S3Source};
pub use trigger::{CompactionTrigger, LambdaTrigger};
