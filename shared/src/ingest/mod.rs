//! Ingestion: an SQS batch of S3 notifications in, Parquet fragments out.
//!
//! `event` says which objects a batch names, `source` fetches and decompresses them,
//! `decode` turns their lines into Arrow batches of the declared schema (through the one-pass
//! `json` decoder, arrow-json where it declines), `quarantine` keeps the lines that do not
//! fit, `superseded` the notified versions that were gone when read, and the `converter` stages what decoded and asks for a compaction through `trigger`;
//! `routed` hands each message to the converter of its table when a deployment has several.
//! What other parts use is re-exported here.

pub(crate) mod converter;
pub(crate) mod decode;
pub(crate) mod decompress;
pub(crate) mod event;
pub(crate) mod failures;
pub(crate) mod isolation;
pub(crate) mod json;
pub(crate) mod quarantine;
pub(crate) mod routed;
pub(crate) mod source;
pub(crate) mod superseded;
pub(crate) mod trigger;

pub use converter::{
    ConversionReport, Converter, ConverterMemory, ConverterOptions, ZSTD_WINDOW_BYTES, blocking_threads, decode_slots,
    runtime,
};
pub use decode::{DecodedObject, JsonDecoder, QuarantinedLine};
pub use decompress::{Compression, ObjectLimits, with_decompressed};
pub use event::{notification_body, sqs_message};
pub use failures::{FailureLog, FailureRecord};
pub use isolation::{Isolation, SqsIsolation, receive_count};
pub use quarantine::Quarantine;
pub use routed::{RoutedConverter, RoutedReport};
pub use source::{Fetched, ObjectSource, Opened, S3Source, open_file};
pub use superseded::{SupersededLog, SupersededVersion};
pub use trigger::{CommitQueue, CompactionTrigger, LambdaTrigger, SealedBatches};
