//! `inlet convert`: the converter run on local files, staging exactly what it would stage in
//! the lake (Parquet fragments, quarantine records) under a local directory instead. It is how
//! a schema is tried on sample objects before it is deployed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::framing::Framing;
use crate::ingest::sqs_message;
use crate::ingest::{ConversionReport, Converter, ConverterOptions, Quarantine, QuarantinedLine};
pub use crate::ops::local::LOCAL_BUCKET;
use crate::ops::local::LocalSource;
use crate::schema::TableSchema;
use crate::stage::FragmentStore;
use crate::stage::table_store;

/// How many quarantined lines a conversion's summary reads back.
pub const SHOWN_QUARANTINED_LINES: usize = 100;

/// What a local conversion staged.
#[derive(Debug, Serialize)]
pub struct LocalConversion {
    /// The converter's report: objects, rows, fragments (relative to the output directory).
    pub report: ConversionReport,
    /// Files that could not be read or were not NDJSON at all (their reasons are logged).
    pub failed: Vec<PathBuf>,
    /// The first quarantined lines (at most [`SHOWN_QUARANTINED_LINES`]), with source, line
    /// number and reason; the report counts them all, and the records under the output
    /// directory hold them all.
    pub quarantined: Vec<QuarantinedLine>,
}

/// Converts `files` (compressed by extension, as in S3, their records laid out as `framing`
/// says) with `schema` and `options`, staging under `out` as under a table's root.
pub async fn convert_files(
    schema: Arc<TableSchema>,
    options: ConverterOptions,
    framing: Framing,
    out: &Path,
    files: &[PathBuf],
) -> Result<LocalConversion> {
    std::fs::create_dir_all(out)?;
    let root = out.canonicalize()?;
    let url = url::Url::from_directory_path(&root)
        .map_err(|()| Error::BadRequest(format!("{} is not a usable directory", root.display())))?;
    let store = table_store(&url, &HashMap::new())?;
    let converter = Converter::new(
        Arc::new(LocalSource::files()),
        FragmentStore::new(store.clone()),
        Quarantine::new(store.clone()),
        schema,
        options,
    )
    .with_framing(framing);
    let mut paths = HashMap::new();
    let mut event = SqsEvent::default();
    for (index, file) in files.iter().enumerate() {
        let id = index.to_string();
        event.records.push(sqs_message(id.clone(), LocalSource::file_object(file)?));
        paths.insert(id, file.clone());
    }
    let report = converter.convert(&event).await?;
    let failed = report.failed_messages.iter().filter_map(|id| paths.get(id).cloned()).collect();
    let quarantined = Quarantine::new(store).first_lines(SHOWN_QUARANTINED_LINES).await?;
    Ok(LocalConversion { report, failed, quarantined })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::schemas;

    #[tokio::test]
    async fn local_files_are_staged_and_quarantined_as_the_lambda_would() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("a.json.zst");
        let lines = "{\"id\":1,\"at\":1778925600}\n{\"id\":\"two\"}\n{\"id\":3,\"at\":\"2026-05-16T10:00Z\"}\n";
        std::fs::write(&good, zstd::encode_all(lines.as_bytes(), 3).unwrap()).unwrap();
        let broken = dir.path().join("b.json.zst");
        std::fs::write(&broken, b"not zstd").unwrap();
        let out = dir.path().join("out");
        let schema = schemas::ID_AT.parse();
        let converted =
            convert_files(schema, ConverterOptions::default(), Framing::Lines, &out, &[good.clone(), broken.clone()])
                .await
                .unwrap();
        assert_eq!((converted.report.objects, converted.report.rows), (1, 2));
        assert_eq!(converted.failed, vec![broken]);
        assert_eq!(converted.quarantined.len(), 1);
        let refused = &converted.quarantined[0];
        assert_eq!((refused.line, refused.error.as_str()), (2, "field id: expected an integer"));
        assert!(refused.source.ends_with("/a.json.zst") && refused.source.starts_with("s3://local/"));
        let fragment = &converted.report.fragments[0];
        assert!(fragment.starts_with("_inlet/fragments/") && out.join(fragment).exists(), "{fragment}");
    }
}
