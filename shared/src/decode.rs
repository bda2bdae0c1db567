//! NDJSON to Arrow record batches, with the declared schema and the lineage column.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_json::ReaderBuilder;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::event::SourceObject;
use crate::schema::TableSchema;

/// A line that could not become a row, kept with everything needed to replay it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantinedLine {
    /// `s3://bucket/key` of the object.
    pub source: String,
    /// 1-based line number within the decompressed object.
    pub line: u64,
    /// Why the line was refused.
    pub error: String,
    /// The line as it was (lossily UTF-8).
    pub raw: String,
}

/// An object decoded: its rows, and the lines that did not parse or fit the schema.
#[derive(Debug, Default)]
pub struct DecodedObject {
    /// Rows, with `_source_file`.
    pub batches: Vec<RecordBatch>,
    /// Refused lines.
    pub quarantined: Vec<QuarantinedLine>,
}

impl DecodedObject {
    /// Rows decoded.
    pub fn rows(&self) -> u64 {
        self.batches.iter().map(|b| b.num_rows() as u64).sum()
    }
}

/// Decodes NDJSON objects into record batches of the table schema.
#[derive(Debug, Clone)]
pub struct JsonDecoder {
    schema: Arc<TableSchema>,
    batch_rows: usize,
}

impl JsonDecoder {
    /// A decoder for `schema` producing batches of at most `batch_rows` rows.
    pub fn new(schema: Arc<TableSchema>, batch_rows: usize) -> Self {
        Self { schema, batch_rows: batch_rows.max(1) }
    }

    /// Decodes a whole (decompressed) object; every batch carries `_source_file`.
    ///
    /// Lines that are not JSON or do not fit the schema are quarantined and the rest ingest.
    /// An object in which no line decodes is not NDJSON at all and fails as a whole.
    pub fn decode(&self, object: &SourceObject, data: &[u8]) -> Result<DecodedObject> {
        let uri = object.uri();
        // Fast path: the whole object in one pass. Only an object with a bad line pays for
        // the line-by-line pass below.
        if let Ok(batches) = self.decode_all(data, &uri) {
            return Ok(DecodedObject { batches, quarantined: Vec::new() });
        }
        let mut good = Vec::with_capacity(data.len());
        let mut quarantined = Vec::new();
        let mut lines_seen = 0u64;
        for (index, line) in data.split(|byte| *byte == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            lines_seen += 1;
            match self.decode_all(line, &uri) {
                Ok(_) => {
                    good.extend_from_slice(line);
                    good.push(b'\n');
                }
                Err(err) => quarantined.push(QuarantinedLine {
                    source: uri.clone(),
                    line: index as u64 + 1,
                    error: err.to_string(),
                    raw: String::from_utf8_lossy(line).into_owned(),
                }),
            }
        }
        if quarantined.len() as u64 == lines_seen {
            let first = &quarantined[0];
            return Err(Error::Source {
                uri,
                reason: format!("not NDJSON: no line fits the declared schema (line {}: {})", first.line, first.error),
                retryable: false,
            });
        }
        let batches = self.decode_all(&good, &uri).map_err(|err| Error::Source {
            uri: uri.clone(),
            reason: format!("lines that decoded alone failed together: {err}"),
            retryable: false,
        })?;
        Ok(DecodedObject { batches, quarantined })
    }

    fn decode_all(&self, data: &[u8], uri: &str) -> Result<Vec<RecordBatch>, arrow_schema::ArrowError> {
        let mut decoder =
            ReaderBuilder::new(self.schema.decoded.clone()).with_batch_size(self.batch_rows).build_decoder()?;
        let mut batches = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let consumed = decoder.decode(rest)?;
            rest = &rest[consumed..];
            // The decoder stops early when a batch is full; drain it before feeding more.
            if let Some(batch) = decoder.flush()? {
                batches.push(self.with_lineage(batch, uri)?);
            }
        }
        if let Some(batch) = decoder.flush()? {
            batches.push(self.with_lineage(batch, uri)?);
        }
        Ok(batches)
    }

    fn with_lineage(&self, batch: RecordBatch, uri: &str) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let lineage: ArrayRef = Arc::new(StringArray::from_iter_values(std::iter::repeat_n(uri, batch.num_rows())));
        let mut columns = batch.columns().to_vec();
        columns.push(lineage);
        RecordBatch::try_new(self.schema.table.clone(), columns)
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, TimestampMicrosecondType};
    use arrow_array::{Array, ListArray, StructArray};

    use super::*;

    const SCHEMA: &str = r#"{"fields": [
        {"name": "id", "type": "string", "nullable": false},
        {"name": "at", "type": "timestamp"},
        {"name": "n", "type": "long"},
        {"name": "device", "type": {"struct": [{"name": "os", "type": "string"}, {"name": "v", "type": "integer"}]}},
        {"name": "items", "type": {"list": {"struct": [{"name": "sku", "type": "string"}, {"name": "qty", "type": "integer"}]}}},
        {"name": "flags", "type": {"list": "string"}}
    ]}"#;

    fn decoder(batch_rows: usize) -> JsonDecoder {
        JsonDecoder::new(Arc::new(TableSchema::parse(SCHEMA, "test").unwrap()), batch_rows)
    }

    fn object() -> SourceObject {
        SourceObject { bucket: "raw".into(), key: "svc/a.json".into(), etag: None }
    }

    #[test]
    fn nested_structs_lists_and_nulls_decode() {
        let data = br#"{"id":"a","at":"2026-05-16T10:00:00.5Z","n":7,"device":{"os":"ios","v":17},"items":[{"sku":"S1","qty":2},{"sku":"S2","qty":null}],"flags":["x","y"]}
{"id":"b","at":null,"device":null,"items":[],"flags":null,"unknown":"ignored"}

{"id":"c","n":null}
"#;
        let decoded = decoder(1024).decode(&object(), data).unwrap();
        assert!(decoded.quarantined.is_empty());
        let batches = decoded.batches;
        assert_eq!(batches.len(), 1);
        let batch = &batches[0];
        assert_eq!(batch.num_rows(), 3);
        let at = batch.column_by_name("at").unwrap().as_primitive::<TimestampMicrosecondType>();
        assert_eq!(at.value(0), 1_778_925_600_500_000);
        assert!(at.is_null(1));
        let n = batch.column_by_name("n").unwrap().as_primitive::<Int64Type>();
        assert_eq!((n.value(0), n.is_null(1), n.is_null(2)), (7, true, true));
        let device = batch.column_by_name("device").unwrap().as_any().downcast_ref::<StructArray>().unwrap();
        assert_eq!(device.column_by_name("os").unwrap().as_string::<i32>().value(0), "ios");
        assert!(device.is_null(1));
        let items = batch.column_by_name("items").unwrap().as_any().downcast_ref::<ListArray>().unwrap();
        assert_eq!(items.value_length(0), 2);
        assert_eq!(items.value_length(1), 0);
        let item_structs = items.values().as_struct();
        assert_eq!(item_structs.column_by_name("sku").unwrap().as_string::<i32>().value(1), "S2");
        assert!(item_structs.column_by_name("qty").unwrap().is_null(1));
        let source = batch.column_by_name("_source_file").unwrap().as_string::<i32>();
        assert!((0..3).all(|row| source.value(row) == "s3://raw/svc/a.json"));
    }

    #[test]
    fn batches_respect_the_row_cap() {
        let data: String = (0..10).map(|i| format!("{{\"id\":\"{i}\"}}\n")).collect();
        let batches = decoder(4).decode(&object(), data.as_bytes()).unwrap().batches;
        assert_eq!(batches.iter().map(|b| b.num_rows()).collect::<Vec<_>>(), vec![4, 4, 2]);
    }

    #[test]
    fn bad_lines_are_quarantined_with_line_number_and_reason_and_the_rest_ingests() {
        let data = b"{\"id\":\"a\",\"n\":1}\n{\"id\":\"b\",\"n\":\"seven\"}\n\n{\"id\":\"c\"\n{\"id\":\"d\",\"n\":4}\n";
        let decoded = decoder(8).decode(&object(), data).unwrap();
        let ids: Vec<String> = decoded
            .batches
            .iter()
            .flat_map(|b| {
                b.column_by_name("id")
                    .unwrap()
                    .as_string::<i32>()
                    .iter()
                    .flatten()
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(ids, vec!["a", "d"]);
        let lines: Vec<(u64, &str)> = decoded.quarantined.iter().map(|q| (q.line, q.raw.as_str())).collect();
        assert_eq!(lines, vec![(2, "{\"id\":\"b\",\"n\":\"seven\"}"), (4, "{\"id\":\"c\"")]);
        assert!(decoded.quarantined.iter().all(|q| q.source == "s3://raw/svc/a.json"));
        assert!(
            decoded.quarantined[0].error.contains("seven") || decoded.quarantined[0].error.contains("Int64"),
            "{}",
            decoded.quarantined[0].error
        );
        assert!(!decoded.quarantined[1].error.is_empty());
    }

    #[test]
    fn an_object_with_no_good_line_is_not_ndjson_and_fails_whole() {
        let err = decoder(8).decode(&object(), b"this is not json\nnor is this\n").unwrap_err();
        assert!(!err.is_retryable());
        let text = err.to_string();
        assert!(text.starts_with("s3://raw/svc/a.json: not NDJSON") && text.contains("line 1"), "{text}");
    }

    #[test]
    fn the_reference_workload_decodes() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/events.schema.json");
        let schema = Arc::new(TableSchema::from_path(std::path::Path::new(path)).unwrap());
        let data = crate::sample::ndjson_object(1, 0, 256 * 1024);
        let lines = data.iter().filter(|b| **b == b'\n').count();
        let decoded = JsonDecoder::new(schema, 1024).decode(&object(), &data).unwrap();
        assert_eq!(decoded.rows(), lines as u64);
    }
}
