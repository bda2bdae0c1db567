//! NDJSON to Arrow record batches, with the declared schema and the lineage column.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_json::ReaderBuilder;

use crate::error::{Error, Result};
use crate::event::SourceObject;
use crate::schema::TableSchema;

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
    pub fn decode(&self, object: &SourceObject, data: &[u8]) -> Result<Vec<RecordBatch>> {
        let uri = object.uri();
        let invalid = |err: arrow_schema::ArrowError| Error::Source {
            uri: uri.clone(),
            reason: format!("not valid NDJSON for the declared schema: {err}"),
            retryable: false,
        };
        let mut decoder = ReaderBuilder::new(self.schema.decoded.clone())
            .with_batch_size(self.batch_rows)
            .build_decoder()
            .map_err(invalid)?;
        let mut batches = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let consumed = decoder.decode(rest).map_err(invalid)?;
            rest = &rest[consumed..];
            // The decoder stops early when a batch is full; drain it before feeding more.
            if let Some(batch) = decoder.flush().map_err(invalid)? {
                batches.push(self.with_lineage(batch, &uri)?);
            }
        }
        if let Some(batch) = decoder.flush().map_err(invalid)? {
            batches.push(self.with_lineage(batch, &uri)?);
        }
        Ok(batches)
    }

    fn with_lineage(&self, batch: RecordBatch, uri: &str) -> Result<RecordBatch> {
        let lineage: ArrayRef = Arc::new(StringArray::from_iter_values(std::iter::repeat_n(uri, batch.num_rows())));
        let mut columns = batch.columns().to_vec();
        columns.push(lineage);
        Ok(RecordBatch::try_new(self.schema.table.clone(), columns)?)
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
        let batches = decoder(1024).decode(&object(), data).unwrap();
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
        let batches = decoder(4).decode(&object(), data.as_bytes()).unwrap();
        assert_eq!(batches.iter().map(|b| b.num_rows()).collect::<Vec<_>>(), vec![4, 4, 2]);
    }

    #[test]
    fn wrong_types_and_garbage_fail_the_object_with_its_name() {
        let err = decoder(8).decode(&object(), b"{\"id\":\"a\",\"n\":\"seven\"}\n").unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.to_string().starts_with("s3://raw/svc/a.json: not valid NDJSON"), "{err}");
        assert!(decoder(8).decode(&object(), b"this is not json\n").is_err());
    }

    #[test]
    fn the_reference_workload_decodes() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/events.schema.json");
        let schema = Arc::new(TableSchema::from_path(std::path::Path::new(path)).unwrap());
        let data = crate::sample::ndjson_object(1, 0, 256 * 1024);
        let lines = data.iter().filter(|b| **b == b'\n').count();
        let batches = JsonDecoder::new(schema, 1024).decode(&object(), &data).unwrap();
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), lines);
    }
}
