//! Operations only the `inlet` command performs: [`backfill`] of existing objects, a local
//! [`convert`] run on sample files (read through the [`local`] source), a table's status, and
//! the [`check`] of a deployment.

pub mod backfill;
pub mod check;
pub mod convert;
pub mod infer;
pub mod local;
pub mod quarantine;
pub(crate) mod status;

pub use status::{TableStatus, table_status};
