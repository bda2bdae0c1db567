//! Operations the `inlet` command performs: [`backfill`] of existing objects (read through a
//! [`listing`] or an inventory), a local
//! [`convert`] run on sample files (read through the [`local`] source), a table's status, the
//! [`check`] of a deployment, the [`trace`] of one object, the [`dlq`] decoded, and the [`reconcile`]
//! of a prefix; also the one the compactor runs on a schedule, the [`scheduled`] reconciliation.

pub mod backfill;
pub mod check;
pub mod convert;
pub mod dlq;
pub mod infer;
pub mod listing;
pub mod local;
pub mod quarantine;
pub mod reconcile;
pub mod scheduled;
pub(crate) mod status;
pub mod trace;

pub use status::{StagedPartition, TableStatus, status_at, table_status};
