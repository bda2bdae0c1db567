//! NDJSON to Arrow record batches, with the declared schema and the lineage column.

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray, new_null_array};
use arrow_json::ReaderBuilder;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ingest::json::ColumnDecoder;
use crate::lineage::SourceObject;
use crate::schema::{INGESTED_AT_COLUMN, RESCUED_COLUMN, SOURCE_ETAG_COLUMN, SOURCE_FILE_COLUMN, TableSchema};

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

/// Delta timestamps are UTC.
const UTC_TIMEZONE: &str = "UTC";

/// How much of an over-long line the quarantine keeps (the object itself stays in S3).
const QUARANTINED_RAW_LIMIT: usize = 64 * 1024;

/// Decodes NDJSON objects into record batches of the table schema.
#[derive(Debug, Clone)]
pub struct JsonDecoder {
    schema: Arc<TableSchema>,
    declared: Arc<HashSet<String>>,
    batch_rows: usize,
    max_line_bytes: usize,
    /// The one-pass decoder, tried first when the schema's types allow it.
    direct: Option<ColumnDecoder>,
}

/// What every row of one object shares.
struct Origin<'a> {
    uri: &'a str,
    etag: Option<&'a str>,
    /// Microseconds since the epoch, when the object was decoded.
    ingested_at: i64,
}

/// A line kept for decoding: its number and where it sits in the buffer of kept lines.
struct KeptLine {
    number: u64,
    range: std::ops::Range<usize>,
}

/// An object's lines that passed the screening, joined, with where each one is.
#[derive(Default)]
struct Screened {
    /// The kept lines, each ended by a newline.
    kept: Vec<u8>,
    lines: Vec<KeptLine>,
    /// When rescuing, each kept line's undeclared fields.
    rescued: Vec<Option<String>>,
    /// Non-blank lines seen, kept or not.
    seen: u64,
}

/// The lines of one object refused so far.
struct Refused<'a> {
    uri: &'a str,
    lines: Vec<QuarantinedLine>,
}

impl Refused<'_> {
    fn add(&mut self, number: u64, line: &[u8], error: String) {
        let raw = &line[..line.len().min(QUARANTINED_RAW_LIMIT)];
        let raw = String::from_utf8_lossy(raw).into_owned();
        self.lines.push(QuarantinedLine { source: self.uri.to_string(), line: number, error, raw });
    }
}

impl JsonDecoder {
    /// A decoder for `schema` producing batches of at most `batch_rows` rows.
    pub fn new(schema: Arc<TableSchema>, batch_rows: usize) -> Self {
        let declared = schema.decoded.fields().iter().map(|f| f.name().clone()).collect();
        Self {
            direct: ColumnDecoder::new(schema.decoded.clone(), batch_rows),
            schema,
            declared: Arc::new(declared),
            batch_rows: batch_rows.max(1),
            max_line_bytes: crate::config::Settings::defaults().max_line_bytes,
        }
    }

    /// `false` decodes with arrow-json only, not trying the one-pass column decoder first.
    pub fn with_direct(mut self, direct: bool) -> Self {
        self.direct = self.direct.filter(|_| direct);
        self
    }

    /// Refuses (quarantines) lines longer than `max_line_bytes`.
    pub fn with_max_line_bytes(mut self, max_line_bytes: usize) -> Self {
        self.max_line_bytes = max_line_bytes.max(1);
        self
    }

    /// Decodes a whole (decompressed) object; rows carry the lineage of `object`, whose `etag`
    /// should be that of the version actually read.
    ///
    /// Lines that are not JSON, do not fit the schema or are too long are quarantined and the
    /// rest ingest. An object in which no line decodes is not NDJSON at all and fails whole; an
    /// empty object yields no rows and one quarantine record saying so.
    pub fn decode(&self, object: &SourceObject, data: &[u8]) -> Result<DecodedObject> {
        let uri = object.uri();
        let ingested_at = chrono::Utc::now().timestamp_micros();
        let origin = Origin { uri: &uri, etag: object.etag.as_deref(), ingested_at };
        let rescue = self.schema.layout.rescue_unknown_fields;
        // Fast paths: the whole object in one pass, by the direct decoder, else by arrow-json.
        // Only objects with a bad or over-long line, or deployments rescuing unknown fields, pay
        // for the line-by-line pass below.
        if !rescue && longest_line(data) <= self.max_line_bytes {
            if let Some(direct) = &self.direct
                && let Ok(rows) = direct.decode(data)
                && !rows.is_empty()
                && let Ok(batches) = rows.into_iter().map(|batch| self.complete(batch, &origin, None)).collect()
            {
                return Ok(DecodedObject { batches, quarantined: Vec::new() });
            }
            if let Ok(batches) = self.decode_rows(data, &origin, None)
                && !batches.is_empty()
            {
                return Ok(DecodedObject { batches, quarantined: Vec::new() });
            }
        }

        let mut refused = Refused { uri: &uri, lines: Vec::new() };
        let screened = self.screen(data, rescue, &mut refused);
        if screened.seen == 0 {
            let error = format!("object is empty ({} bytes after decompression, no lines)", data.len());
            refused.add(0, b"", error);
            return Ok(DecodedObject { batches: Vec::new(), quarantined: refused.lines });
        }
        let rescued_column = rescue.then_some(screened.rescued.as_slice());
        let batches = match self.decode_rows(&screened.kept, &origin, rescued_column) {
            Ok(batches) => batches,
            // Some kept line does not fit the schema: find each one, then decode the rest.
            Err(_) => self.decode_fitting(&screened, &origin, rescue, &mut refused)?,
        };
        let quarantined = refused.lines;
        if quarantined.len() as u64 == screened.seen {
            let first = &quarantined[0];
            return Err(Error::Source {
                uri: uri.clone(),
                reason: format!("not NDJSON: no line fits the declared schema (line {}: {})", first.line, first.error),
                retryable: false,
            });
        }
        Ok(DecodedObject { batches, quarantined })
    }

    /// The object's non-blank lines that are short enough (and, when rescuing, JSON objects),
    /// joined for decoding; the others are refused.
    fn screen(&self, data: &[u8], rescue: bool, refused: &mut Refused<'_>) -> Screened {
        let mut screened = Screened { kept: Vec::with_capacity(data.len()), ..Screened::default() };
        for (index, line) in data.split(|byte| *byte == b'\n').enumerate() {
            let number = index as u64 + 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            screened.seen += 1;
            if line.len() > self.max_line_bytes {
                let error = format!(
                    "line is {} bytes, over the limit of {} (INLET_MAX_LINE_BYTES)",
                    line.len(),
                    self.max_line_bytes
                );
                refused.add(number, line, error);
                continue;
            }
            if rescue {
                match self.unknown_fields(line) {
                    Ok(extra) => screened.rescued.push(extra),
                    Err(error) => {
                        refused.add(number, line, error);
                        continue;
                    }
                }
            }
            let start = screened.kept.len();
            screened.kept.extend_from_slice(line);
            screened.lines.push(KeptLine { number, range: start..screened.kept.len() });
            screened.kept.push(b'\n');
        }
        screened
    }

    /// Decodes each screened line alone to refuse those that do not fit, then the rest together.
    fn decode_fitting(
        &self,
        screened: &Screened,
        origin: &Origin<'_>,
        rescue: bool,
        refused: &mut Refused<'_>,
    ) -> Result<Vec<RecordBatch>> {
        let mut fitting = Vec::with_capacity(screened.kept.len());
        let mut fitting_rescued = Vec::new();
        for (position, line) in screened.lines.iter().enumerate() {
            let text = &screened.kept[line.range.clone()];
            match self.decode_rows(text, origin, None) {
                Ok(_) => {
                    fitting.extend_from_slice(text);
                    fitting.push(b'\n');
                    if rescue {
                        fitting_rescued.push(screened.rescued[position].clone());
                    }
                }
                Err(err) => refused.add(line.number, text, err.to_string()),
            }
        }
        refused.lines.sort_by_key(|q| q.line);
        self.decode_rows(&fitting, origin, rescue.then_some(fitting_rescued.as_slice())).map_err(|err| Error::Source {
            uri: refused.uri.to_string(),
            reason: format!("lines that decoded alone failed together: {err}"),
            retryable: false,
        })
    }

    /// The line's top-level fields the schema does not declare, as a JSON object (or none).
    fn unknown_fields(&self, line: &[u8]) -> Result<Option<String>, String> {
        let mut fields: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(line).map_err(|err| format!("not a JSON object: {err}"))?;
        fields.retain(|name, _| !self.declared.contains(name));
        Ok((!fields.is_empty()).then(|| serde_json::Value::Object(fields).to_string()))
    }

    fn decode_rows(
        &self,
        data: &[u8],
        origin: &Origin<'_>,
        rescued: Option<&[Option<String>]>,
    ) -> Result<Vec<RecordBatch>, arrow_schema::ArrowError> {
        let mut decoder =
            ReaderBuilder::new(self.schema.decoded.clone()).with_batch_size(self.batch_rows).build_decoder()?;
        let mut batches = Vec::new();
        let mut rows_done = 0;
        let mut rest = data;
        loop {
            let consumed = decoder.decode(rest)?;
            rest = &rest[consumed..];
            // The decoder stops early when a batch is full; drain it before feeding more.
            match decoder.flush()? {
                Some(batch) => {
                    let rows = batch.num_rows();
                    let rescued = rescued.map(|values| &values[rows_done..rows_done + rows]);
                    batches.push(self.complete(batch, origin, rescued)?);
                    rows_done += rows;
                }
                None if consumed == 0 => break,
                None => {}
            }
        }
        if !rest.is_empty() {
            // Never drop input silently: a stalled decoder fails the object.
            return Err(arrow_schema::ArrowError::JsonError(format!("decoder stopped with {} bytes left", rest.len())));
        }
        Ok(batches)
    }

    /// Adds the partition (filled later), rescue and lineage columns after the declared ones.
    fn complete(
        &self,
        batch: RecordBatch,
        origin: &Origin<'_>,
        rescued: Option<&[Option<String>]>,
    ) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let rows = batch.num_rows();
        let mut columns = batch.columns().to_vec();
        for field in self.schema.table.fields().iter().skip(columns.len()) {
            let column: ArrayRef = match field.name().as_str() {
                SOURCE_FILE_COLUMN => Arc::new(StringArray::from_iter_values(std::iter::repeat_n(origin.uri, rows))),
                SOURCE_ETAG_COLUMN => Arc::new(StringArray::from(vec![origin.etag; rows])),
                INGESTED_AT_COLUMN => Arc::new(
                    TimestampMicrosecondArray::from(vec![origin.ingested_at; rows]).with_timezone(UTC_TIMEZONE),
                ),
                RESCUED_COLUMN => match rescued {
                    Some(values) => Arc::new(StringArray::from_iter(values.iter().map(Option::as_deref))),
                    None => new_null_array(field.data_type(), rows),
                },
                _ => new_null_array(field.data_type(), rows),
            };
            columns.push(column);
        }
        RecordBatch::try_new(self.schema.table.clone(), columns)
    }
}

/// Length of the longest line, found with a vectorised newline scan.
fn longest_line(data: &[u8]) -> usize {
    let mut longest = 0;
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', data) {
        longest = longest.max(end - start);
        start = end + 1;
    }
    longest.max(data.len() - start)
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
        let data = crate::testing::sample::ndjson_object(1, 0, 256 * 1024);
        let lines = data.iter().filter(|b| **b == b'\n').count();
        let decoded = JsonDecoder::new(schema, 1024).decode(&object(), &data).unwrap();
        assert_eq!(decoded.rows(), lines as u64);
    }

    #[test]
    fn the_direct_decoder_and_arrow_json_ingest_and_quarantine_the_same() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/events.schema.json");
        let schema = Arc::new(TableSchema::from_path(std::path::Path::new(path)).unwrap());
        let clean = crate::testing::sample::ndjson_object(3, 0, 64 * 1024);
        let mut mixed = clean.clone();
        mixed.extend_from_slice(
            b"{\"event_id\":\"x\",\"event_time\":\"2026-05-16T00:00:00Z\",\"http_status\":\"200\"}\n",
        );
        mixed.extend_from_slice(b"{\"event_id\":\"y\",\"event_time\":\"2026-05-16T00:00:00Z\",\"retries\":true}\n");
        // The string "200" is coerced by arrow-json (the direct decoder hands that object over);
        // a boolean for an integer is refused by both.
        for (data, refused) in [(clean, 0), (mixed, 1)] {
            let direct = JsonDecoder::new(schema.clone(), 100).decode(&object(), &data).unwrap();
            let arrow = JsonDecoder::new(schema.clone(), 100).with_direct(false).decode(&object(), &data).unwrap();
            assert_eq!(direct.batches, arrow.batches);
            assert_eq!(direct.quarantined, arrow.quarantined);
            assert_eq!(direct.quarantined.len(), refused);
        }
    }
}
