//! Staging: the fragment format the converter writes and the compactor reads.
//!
//! A [`fragment`] is a Parquet file under `_inlet/fragments/` that lists its sources in its
//! footer; its pages are encoded by the `page_writer`. Fragments and the table share the
//! [`store`] at the table's location.

pub mod fragment;
pub(crate) mod page_writer;
pub mod store;

pub use fragment::{FragmentEncoding, FragmentInfo, FragmentStore, FragmentWriter};
pub use store::table_store;
