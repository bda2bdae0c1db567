//! The one error type of the library.
//!
//! Each variant says what failed, on which object, and carries the typed cause. Whether a
//! retry can help decides what happens next: the converter fails a message whose object hit a
//! retryable error so SQS delivers it again, and sends one with a permanent error the same
//! way but logs it as such, since only the DLQ will end it; the compactor's schedule retries
//! any failed run, so there [`Error::is_retryable`] tells an operator whether to wait or to act.

use deltalake::DeltaTableError;

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed cause, for errors whose concrete type depends on the call (AWS SDK operations).
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

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

    /// A route's table could not be set up (its schema could not be read or parsed, its location
    /// is malformed): that table's work fails, retried until fixed, while the others go on.
    #[error("table {table} (route {route}) is unavailable: {reason}")]
    TableUnavailable {
        /// The route's name.
        route: String,
        /// The table's URI.
        table: String,
        /// Why its setup failed.
        reason: String,
    },

    /// A request (an invocation payload, a command's arguments) asks for something impossible.
    #[error("bad request: {0}")]
    BadRequest(String),

    /// There is no Delta table at the location and nothing staged there: most likely a
    /// mistyped table URI, so no empty table is created unless asked.
    #[error(
        "no Delta table at {0} and nothing staged there: check the table URI (INLET_TABLE_URI, --table-uri or \
         the route's table_uri), or create the table anyway with `inlet compact --create` ({{\"create\": true}})"
    )]
    NoTable(String),

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

    /// The notified version of a source object no longer exists: the key was overwritten or
    /// deleted before it was read. Not a failure of the message: the converter records it
    /// under `_inlet/superseded/` and the version that replaced it has its own notification.
    #[error("{object}: superseded ({reason})")]
    Superseded {
        /// The version, as [`crate::lineage::SourceObject::describe`] names it.
        object: String,
        /// What happened to it.
        reason: String,
    },

    /// A call to an AWS service (SQS, Lambda, S3 through the SDK) failed.
    #[error("{operation} {target}: {detail}")]
    Aws {
        /// The API operation (`SendMessageBatch`, `Invoke`, ...).
        operation: &'static str,
        /// What it was called on: a queue URL, a function name, an object.
        target: String,
        /// The SDK's full explanation, service error code included.
        detail: String,
        /// The SDK error itself.
        #[source]
        cause: Cause,
    },

    /// What Inlet recorded about the table contradicts itself or is missing (load history,
    /// lineage): compacting anyway could lose or duplicate rows, so the run stops.
    #[error("integrity: {0}")]
    Integrity(String),

    /// What a run read has moved on under it (another writer got there first): running again
    /// reads the new state.
    #[error("stale: {0}")]
    Stale(String),

    /// Scheduled reconciliations of some tables failed (each named with its cause); the other
    /// tables were reconciled.
    #[error("reconciliation failed: {0}")]
    Reconcile(String),

    /// A task running part of the work panicked or was cancelled.
    #[error("task failed: {0}")]
    Task(#[from] tokio::task::JoinError),

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
    /// An AWS SDK call `operation` on `target` that failed with `err`.
    pub fn aws<E>(operation: &'static str, target: impl Into<String>, err: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let detail = aws_sdk_s3::error::DisplayErrorContext(&err).to_string();
        Error::Aws { operation, target: target.into(), detail, cause: Box::new(err) }
    }

    /// A short, stable name for the kind of failure (Lambda's `errorType`).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config(_) => "Inlet.Config",
            Error::Schema { .. } => "Inlet.Schema",
            Error::TableUnavailable { .. } => "Inlet.TableUnavailable",
            Error::BadRequest(_) => "Inlet.BadRequest",
            Error::NoTable(_) => "Inlet.NoTable",
            Error::Source { .. } => "Inlet.Source",
            Error::Superseded { .. } => "Inlet.Superseded",
            Error::Aws { .. } => "Inlet.Aws",
            Error::Integrity(_) => "Inlet.Integrity",
            Error::Stale(_) => "Inlet.Stale",
            Error::Reconcile(_) => "Inlet.Reconcile",
            Error::Task(_) => "Inlet.Task",
            Error::Storage(_) => "Inlet.Storage",
            Error::Delta(_) => "Inlet.Delta",
            Error::Arrow(_) => "Inlet.Arrow",
            Error::Parquet(_) => "Inlet.Parquet",
            Error::Io(_) => "Inlet.Io",
            Error::Json(_) => "Inlet.Json",
        }
    }

    /// Whether a commit was refused because another writer's commit took what it would have
    /// (another compaction of the same sources, files it removes, new metadata).
    pub fn is_commit_conflict(&self) -> bool {
        matches!(
            self,
            Error::Delta(DeltaTableError::Transaction {
                source: deltalake::kernel::transaction::TransactionError::CommitConflict(_)
            })
        )
    }

    /// Whether the failed operation may succeed if simply retried.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Source { retryable, .. } => *retryable,
            // Fixed by deploying a good schema or routing file; tried again until then.
            Error::TableUnavailable { .. } => true,
            // A cancelled task (shutdown) may finish next time; a panic is a bug that repeats.
            Error::Task(err) => err.is_cancelled(),
            Error::Aws { .. } | Error::Storage(_) | Error::Delta(_) | Error::Io(_) | Error::Stale(_) => true,
            Error::Reconcile(_) => true,
            Error::Config(_)
            | Error::Schema { .. }
            | Error::BadRequest(_)
            | Error::NoTable(_)
            | Error::Superseded { .. }
            | Error::Integrity(_)
            | Error::Arrow(_)
            | Error::Parquet(_)
            | Error::Json(_) => false,
        }
    }
}

impl From<Error> for lambda_runtime::Diagnostic {
    /// The error as Lambda reports it: `Inlet.<kind>` and the message, logged once here so both
    /// functions record every failure the same way.
    fn from(error: Error) -> Self {
        tracing::error!(error = %error, kind = error.kind(), retryable = error.is_retryable(), "invocation failed");
        lambda_runtime::Diagnostic { error_type: error.kind().to_string(), error_message: error.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_retryability_say_what_to_do() {
        let unreachable = Error::aws("Invoke", "compactor", std::io::Error::other("connection refused"));
        assert_eq!((unreachable.kind(), unreachable.is_retryable()), ("Inlet.Aws", true));
        assert!(unreachable.to_string().starts_with("Invoke compactor: "), "{unreachable}");
        let broken = Error::Integrity("commit 3 is gone".into());
        assert_eq!((broken.kind(), broken.is_retryable()), ("Inlet.Integrity", false));
        let request = Error::BadRequest("unknown table".into());
        assert_eq!((request.kind(), request.is_retryable()), ("Inlet.BadRequest", false));
        let diagnostic = lambda_runtime::Diagnostic::from(broken);
        assert_eq!(diagnostic.error_type, "Inlet.Integrity");
        assert_eq!(diagnostic.error_message, "integrity: commit 3 is gone");
    }

    #[tokio::test]
    async fn a_panicked_task_is_a_task_failure_not_io() {
        let joined = tokio::spawn(async { panic!("boom") }).await.unwrap_err();
        let error = Error::from(joined);
        assert_eq!((error.kind(), error.is_retryable()), ("Inlet.Task", false));
    }
}
