//! Committing: staged fragments become target-sized files in one Delta commit, exactly once.
//!
//! [`compact`] plans and runs a compaction against the load history (`history`), in the
//! [`table`] it opens or creates, taking new nullable columns through `evolution`;
//! [`optimize`](mod@optimize) rewrites small table files and vacuums unreferenced ones. Both
//! write through `table_files`, which copies a file's row groups where it can (`copy`) and
//! decodes its rows where it cannot.

pub mod compact;
pub mod complete;
pub(crate) mod copy;
pub(crate) mod evolution;
pub(crate) mod exclusive;
pub(crate) mod history;
pub mod optimize;
pub(crate) mod stats;
pub mod table;
pub(crate) mod table_files;

pub use compact::{
    Clock, CompactRequest, CompactionReport, Compactor, CompactorOptions, Invocation, RoutedCompactor, SystemClock,
    TableOutcome, Timings, answer, compact_table,
};
pub use history::{LoadHistory, RebuildBudget, RebuildProgress, Rebuilt};
pub use optimize::{OptimizeOptions, OptimizeReport, VacuumReport, optimize, vacuum};
pub use table::{keep_properties, open_or_create};
