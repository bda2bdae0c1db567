//! Operations only the `inlet` command performs: [`backfill`] of existing objects, a local
//! [`convert`] run on sample files, and a table's status.

pub mod backfill;
pub mod convert;
pub(crate) mod status;

pub use status::{TableStatus, table_status};
