//! Operations only the `inlet` command performs: [`backfill`] of existing objects and a
//! table's status.

pub mod backfill;
pub(crate) mod status;

pub use status::{TableStatus, table_status};
