//! The object store at a table's location: the converter stages fragments, seals, quarantine
//! and superseded records under its `_inlet/`, and the compactor writes the table beside them.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::DeltaTableBuilder;
pub use deltalake::ObjectStore;
use url::Url;

use crate::error::Result;

/// The object store rooted at the table location, without reading the Delta log.
pub fn table_store(url: &Url, storage_options: &HashMap<String, String>) -> Result<Arc<dyn ObjectStore>> {
    let log_store =
        DeltaTableBuilder::from_url(url.clone())?.with_storage_options(storage_options.clone()).build_storage()?;
    Ok(log_store.object_store(None))
}
