//! The one error type of the library.

use deltalake::DeltaTableError;

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in Inlet, saying what failed and on which object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is missing or malformed; fix the deployment.
    #[error("configuration: {0}")]
    Config(String),

    /// The declared schema cannot be read or is not valid.
    #[error("schema {location}: {reason}")]
    Schema {
        /// Where the schema was read from.
        location: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A source object could not be read or decoded as a whole.
    #[error("{uri}: {reason}")]
    Source {
        /// The object, as `s3://bucket/key`.
        uri: String,
        /// What went wrong.
        reason: String,
        /// Whether trying again later can succeed (network, throttling) or not (corrupt data).
        retryable: bool,
    },

    /// Reading or writing the lake's object store failed.
    #[error("lake storage: {0}")]
    Storage(#[from] object_store::Error),

    /// A Delta Lake operation failed.
    #[error("delta table: {0}")]
    Delta(#[from] DeltaTableError),

    /// Building or converting Arrow data failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),

    /// Encoding or decoding Parquet failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),

    /// A local file could not be read or written.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),

    /// JSON metadata could not be encoded or decoded.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// A short, stable name for the kind of failure (Lambda's `errorType`).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config(_) => "Inlet.Config",
            Error::Schema { .. } => "Inlet.Schema",
            Error::Source { .. } => "Inlet.Source",
            Error::Storage(_) => "Inlet.Storage",
            Error::Delta(_) => "Inlet.Delta",
            Error::Arrow(_) => "Inlet.Arrow",
            Error::Parquet(_) => "Inlet.Parquet",
            Error::Io(_) => "Inlet.Io",
            Error::Json(_) => "Inlet.Json",
        }
    }

    /// Whether the failed operation may succeed if simply retried.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Source { retryable, .. } => *retryable,
            Error::Storage(_) | Error::Delta(_) | Error::Io(_) => true,
            Error::Config(_) | Error::Schema { .. } | Error::Arrow(_) | Error::Parquet(_) | Error::Json(_) => false,
        }
    }
}
