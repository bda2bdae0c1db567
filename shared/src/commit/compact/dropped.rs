//! Rows a run deletes uncommitted, and why: the copies of sources that are never to be
//! committed (a voided batch, a copy its converter failed, an incomplete copy from before
//! batches were sealed). None of these was acknowledged to SQS as ingested, so each source
//! comes again; the record names them, so a loss never reads as harmless deduplication.
//! Each run that drops rows writes one JSON record under `<table>/_inlet/dropped/`.

use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::layout::DROPPED_PREFIX;
use crate::lineage::SourceId;

/// One source's rows deleted uncommitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DroppedSource {
    /// The source.
    #[serde(flatten)]
    pub id: SourceId,
    /// Rows deleted.
    pub rows: u64,
    /// Why they were not committed, and what brings them back.
    pub reason: String,
}

/// Why a copy of a source is dropped: it failed, or it is an incomplete copy from before
/// batches were sealed whose converter died.
pub fn reason(failed: bool) -> &'static str {
    if failed {
        "its converter found the object unreadable after staging part of it and failed the message, \
         which SQS delivers again"
    } else {
        "an incomplete copy from a converter that died before batches were sealed; its message was \
         not answered, so SQS delivers it again"
    }
}

/// The reason of the sources of a voided batch.
pub const VOIDED: &str =
    "its batch was voided: the converter never sealed it, so it failed its messages and SQS delivers them again";

/// Writes one record of `dropped` (nothing when empty); returns where.
pub async fn record(store: &Arc<dyn ObjectStore>, dropped: &[DroppedSource]) -> Result<Option<Path>> {
    if dropped.is_empty() {
        return Ok(None);
    }
    let now = Utc::now();
    let name = format!("{}-{}.json", now.format("%Y%m%dT%H%M%S%.3fZ"), uuid::Uuid::new_v4().simple());
    let path = Path::from(DROPPED_PREFIX).join(name);
    let record = serde_json::json!({
        "recorded_at": now.to_rfc3339_opts(SecondsFormat::Millis, true),
        "sources": dropped,
    });
    store.put(&path, PutPayload::from(serde_json::to_vec(&record)?)).await?;
    tracing::warn!(record = %path, sources = dropped.len(), rows = dropped.iter().map(|d| d.rows).sum::<u64>(), "rows deleted uncommitted, their sources recorded");
    Ok(Some(path))
}
