//! Operations only the `inlet` command performs: [`backfill`] of existing objects, a local
//! [`convert`] run on sample files (read through the [`local`] source), a table's status, the
//! [`check`] of a deployment, the [`trace`] of one object, the [`dlq`] decoded, and the [`reconcile`]
//! of a prefix.

pub mod backfill;
pub mod check;
pub mod convert;
pub mod dlq;
pub mod infer;
pub mod local;
pub mod quarantine;
pub mod reconcile;
pub(crate) mod status;
pub mod trace;

pub use status::{StagedPartition, TableStatus, status_at, table_status};
