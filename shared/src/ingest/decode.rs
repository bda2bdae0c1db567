//! NDJSON to Arrow record batches, with the declared schema and the lineage column.
//!
//! One decoder reads every object ([`crate::ingest::json`]), by one set of rules, so whether
//! a line becomes a row, and with which values, depends on that line and the schema alone.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray, new_null_array};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ingest::json::{ColumnDecoder, DecodedRows, Progress, StepBudget};
use crate::lineage::SourceObject;
use crate::schema::{
    INGESTED_AT_COLUMN, RESCUED_COLUMN, SOURCE_DIGEST_COLUMN, SOURCE_ETAG_COLUMN, SOURCE_FILE_COLUMN, TableSchema,
};

/// A line that could not become a row, kept with everything needed to replay it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantinedLine {
    /// `s3://bucket/key` of the object.
    pub source: String,
    /// 1-based line number within the decompressed object.
    pub line: u64,
    /// Why the line was refused: the field and what it expected.
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

/// A piece of an object decoded: its rows, its refused lines, and how many lines it held.
#[derive(Debug, Default)]
pub struct DecodedPiece {
    /// Rows, with the lineage columns.
    pub batches: Vec<RecordBatch>,
    /// Refused lines, numbered within the whole object.
    pub quarantined: Vec<QuarantinedLine>,
    /// Lines that were not blank.
    pub lines: u64,
}

/// What an object decoded to, as a whole, once all its pieces are in (`total` adds them up;
/// `bytes` is its decompressed size): an empty object is one quarantine record saying so.
/// Every other line's verdict is its own: an object whose every line is refused has every line
/// quarantined, as each would be alone (only an object that is not text fails whole, see
/// [`JsonDecoder::decode_piece`]).
pub fn object_outcome(
    object: &SourceObject,
    bytes: u64,
    total: DecodedPiece,
) -> Result<(Vec<RecordBatch>, Vec<QuarantinedLine>)> {
    let DecodedPiece { batches, quarantined, lines } = total;
    if lines == 0 {
        let error = format!("object is empty ({bytes} bytes after decompression, no lines)");
        let empty = QuarantinedLine { source: object.uri(), line: 0, error, raw: String::new() };
        return Ok((Vec::new(), vec![empty]));
    }
    Ok((batches, quarantined))
}

/// How much of an object's first line is looked at to tell text from binary data.
const TEXT_SNIFF_BYTES: usize = 8000;

/// Why an object whose bytes start with `data` is not text, if it is not: its first line holds
/// a NUL byte or is not UTF-8, as the start of every binary format (images, archives, Parquet)
/// is and no JSON text is. A property of the object's start, so no later line's verdict
/// depends on another's: NUL padding at the end of a log only has its own line quarantined.
fn not_text(data: &[u8]) -> Option<String> {
    let start = &data[..data.len().min(TEXT_SNIFF_BYTES)];
    let first = &start[..memchr::memchr(b'\n', start).unwrap_or(start.len())];
    if let Some(at) = memchr::memchr(0, first) {
        return Some(format!("line 1 holds a NUL byte at offset {at}"));
    }
    match std::str::from_utf8(first) {
        Ok(_) => None,
        // A character cut by the end of the window is not a fault of the text.
        Err(err) if err.error_len().is_none() && first.len() == TEXT_SNIFF_BYTES => None,
        Err(err) => Some(format!("line 1 is not UTF-8 (at offset {})", err.valid_up_to())),
    }
}

/// Delta timestamps are UTC.
const UTC_TIMEZONE: &str = "UTC";

/// How much of an over-long line the quarantine keeps (the object itself stays in S3).
pub(crate) const QUARANTINED_RAW_LIMIT: usize = 64 * 1024;

/// The UTF-8 byte-order mark some producers write first; it is not part of the first line.
pub(crate) use crate::framing::BYTE_ORDER_MARK;

/// Decodes NDJSON objects into record batches of the table schema.
#[derive(Debug, Clone)]
pub struct JsonDecoder {
    schema: Arc<TableSchema>,
    columns: ColumnDecoder,
}

/// A piece of an object being decoded in steps.
#[derive(Debug, Clone, Copy)]
pub struct Decoding {
    progress: Progress,
    /// When its rows were decoded (microseconds since the epoch): one time for the piece.
    ingested_at: i64,
}

impl Decoding {
    /// Whether every line of the piece has been decoded.
    pub fn done(&self) -> bool {
        self.progress.done()
    }
}

/// What every row of one object shares.
struct Origin<'a> {
    uri: &'a str,
    etag: Option<&'a str>,
    digest: Option<&'a str>,
    /// Microseconds since the epoch, when the object was decoded.
    ingested_at: i64,
}

impl JsonDecoder {
    /// A decoder for `schema` producing batches of at most `batch_rows` rows.
    pub fn new(schema: Arc<TableSchema>, batch_rows: usize) -> Self {
        let rescue = schema.layout.rescue_unknown_fields;
        let columns = ColumnDecoder::new(schema.decoded.clone(), &schema.formats, batch_rows, rescue)
            .with_max_line_bytes(crate::config::Settings::defaults().max_line_bytes);
        Self { schema, columns }
    }

    /// Refuses (quarantines) lines longer than `max_line_bytes`.
    pub fn with_max_line_bytes(mut self, max_line_bytes: usize) -> Self {
        self.columns = self.columns.with_max_line_bytes(max_line_bytes);
        self
    }

    /// Decodes a whole (decompressed) object; rows carry the lineage of `object`, whose `etag`
    /// should be that of the version actually read.
    ///
    /// Lines that are not JSON, do not fit the schema or are too long are quarantined and the
    /// rest ingest. An object that is not text fails whole; an empty object yields no rows and
    /// one quarantine record saying so.
    pub fn decode(&self, object: &SourceObject, data: &[u8]) -> Result<DecodedObject> {
        let data = data.strip_prefix(BYTE_ORDER_MARK).unwrap_or(data);
        let piece = self.decode_piece(object, data, 1)?;
        let (batches, quarantined) = object_outcome(object, data.len() as u64, piece)?;
        Ok(DecodedObject { batches, quarantined })
    }

    /// Decodes one piece of an object: whole lines, the first of them line `first_line` (a
    /// first piece has its byte-order mark removed by the caller). What holds for the whole
    /// object (that it is empty, or not NDJSON at all) is for `object_outcome` to say once
    /// every piece is decoded.
    pub fn decode_piece(&self, object: &SourceObject, data: &[u8], first_line: u64) -> Result<DecodedPiece> {
        let mut decoding = self.start(object, data, first_line)?;
        self.decode_step(object, data, &mut decoding, usize::MAX)
    }

    /// Starts decoding `data`, a piece of `object` whose first line is line `first_line`, in
    /// steps ([`JsonDecoder::decode_step`]). An object whose first line is not text is refused
    /// whole here.
    pub fn start(&self, object: &SourceObject, data: &[u8], first_line: u64) -> Result<Decoding> {
        if first_line == 1
            && let Some(reason) = not_text(data)
        {
            return Err(Error::Source {
                uri: object.uri(),
                reason: format!("not NDJSON: the object is not text ({reason})"),
                retryable: false,
            });
        }
        Ok(Decoding {
            progress: ColumnDecoder::start(data, first_line),
            ingested_at: chrono::Utc::now().timestamp_micros(),
        })
    }

    /// The next lines of `data` (a piece of `object`, started by [`JsonDecoder::start`]), until
    /// the rows and refused lines held reach `budget_bytes` or the piece ends: a step holds at
    /// most its budget and one batch more, whatever the shape of the lines.
    pub fn decode_step(
        &self,
        object: &SourceObject,
        data: &[u8],
        decoding: &mut Decoding,
        budget_bytes: usize,
    ) -> Result<DecodedPiece> {
        let uri = object.uri();
        let (etag, digest) = (object.etag.as_deref(), object.digest.as_deref());
        let origin = Origin { uri: &uri, etag, digest, ingested_at: decoding.ingested_at };
        // The lineage columns: the key, ETag and digest repeated on every row, their offsets, the time.
        let row_bytes = uri.len() + etag.map_or(0, str::len) + digest.map_or(0, str::len) + 20;
        // A refused line's record repeats the key, beside its reason and text.
        let refused_bytes = uri.len() + std::mem::size_of::<QuarantinedLine>();
        let budget = StepBudget { bytes: budget_bytes, row_bytes, refused_bytes };
        let DecodedRows { batches, rescued, refused, lines } =
            self.columns.decode_step(data, &mut decoding.progress, budget)?;
        let quarantined: Vec<QuarantinedLine> = refused
            .into_iter()
            .map(|line| {
                let raw = &data[line.text.start..line.text.end.min(line.text.start + QUARANTINED_RAW_LIMIT)];
                let raw = String::from_utf8_lossy(raw).into_owned();
                QuarantinedLine { source: uri.clone(), line: line.line, error: line.reason, raw }
            })
            .collect();
        let rescue = self.schema.layout.rescue_unknown_fields;
        let mut done = 0;
        let mut completed = Vec::with_capacity(batches.len());
        for batch in batches {
            let rows = batch.num_rows();
            let rescued = rescue.then(|| &rescued[done..done + rows]);
            completed.push(self.complete(batch, &origin, rescued)?);
            done += rows;
        }
        Ok(DecodedPiece { batches: completed, quarantined, lines })
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
                SOURCE_DIGEST_COLUMN => Arc::new(StringArray::from(vec![origin.digest; rows])),
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
        SourceObject { bucket: "raw".into(), key: "svc/a.json".into(), etag: None, ..Default::default() }
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
    fn a_byte_order_mark_before_the_first_line_is_not_part_of_it() {
        let decoded = decoder(8).decode(&object(), b"\xEF\xBB\xBF{\"id\":\"a\"}").unwrap();
        assert!(decoded.quarantined.is_empty(), "{:?}", decoded.quarantined);
        assert_eq!(decoded.rows(), 1);
    }

    #[test]
    fn rescue_keeps_undeclared_fields_and_values_that_do_not_fit_with_the_row() {
        let layout = crate::schema::Layout { rescue_unknown_fields: true, ..Default::default() };
        let schema = Arc::new(TableSchema::parse_with(SCHEMA, "test", layout).unwrap());
        let data = br#"{"id":"a","n":"seven","extra":{"k":[1, 2]},"device":{"os":"ios","v":"x"}}
{"id":"b","n":2}
{"id":7}
"#;
        let decoded = JsonDecoder::new(schema, 8).decode(&object(), data).unwrap();
        let batch = &decoded.batches[0];
        assert_eq!(batch.num_rows(), 2);
        let n = batch.column_by_name("n").unwrap().as_primitive::<Int64Type>();
        assert!(n.is_null(0) && n.value(1) == 2);
        assert!(batch.column_by_name("device").unwrap().is_null(0), "a nested misfit rescues its top-level field");
        let rescued = batch.column_by_name("_rescued").unwrap().as_string::<i32>();
        assert_eq!(rescued.value(0), r#"{"n":"seven","extra":{"k":[1, 2]},"device":{"os":"ios","v":"x"}}"#);
        assert!(rescued.is_null(1));
        // A value a non-nullable column cannot do without is not rescued: the line is refused.
        assert_eq!(decoded.quarantined.len(), 1);
        assert_eq!(decoded.quarantined[0].error, "field id: expected a string");
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
        assert_eq!(decoded.quarantined[0].error, "field n: expected an integer");
        assert!(!decoded.quarantined[1].error.is_empty());
    }

    #[test]
    fn an_object_that_is_not_text_is_not_ndjson_and_fails_whole() {
        let err = decoder(8).decode(&object(), b"\x00\x00\x00\x1cftypisom not json\n\xff\xfe\n").unwrap_err();
        assert!(!err.is_retryable());
        let text = err.to_string();
        assert!(text.starts_with("s3://raw/svc/a.json: not NDJSON") && text.contains("line 1"), "{text}");
    }

    #[test]
    fn nul_padding_after_good_lines_costs_only_its_own_line() {
        let mut padded = b"{\"id\":\"a\"}\n{\"id\":\"b\"}\n".to_vec();
        padded.extend([0u8; 64]);
        let decoded = decoder(8).decode(&object(), &padded).unwrap();
        assert_eq!((decoded.rows(), decoded.quarantined.len()), (2, 1));
        assert_eq!(decoded.quarantined[0].line, 3);
        let png = decoder(8).decode(&object(), b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR").unwrap_err().to_string();
        assert!(png.contains("not NDJSON: the object is not text (line 1 is not UTF-8"), "{png}");
    }

    #[test]
    fn nesting_past_the_limit_is_refused_naming_the_field() {
        let deep = format!("{}1{}", "[".repeat(70), "]".repeat(70));
        let line = format!(r#"{{"id":"a","extra":{deep}}}"#);
        let decoded = decoder(8).decode(&object(), line.as_bytes()).unwrap();
        assert_eq!(decoded.quarantined.len(), 1);
        let error = &decoded.quarantined[0].error;
        assert!(error.contains("field extra") && error.contains("at most 64 levels of nesting"), "{error}");
        let shallow = format!(r#"{{"id":"a","extra":{}1{}}}"#, "[".repeat(60), "]".repeat(60));
        assert_eq!(decoder(8).decode(&object(), shallow.as_bytes()).unwrap().rows(), 1);
    }

    #[test]
    fn an_object_with_no_good_line_has_each_line_quarantined_as_it_would_be_alone() {
        let lines: [&[u8]; 3] = [b"this is not json", b"{\"id\": 7}", b"{\"id\":\"x\",\"n\":\"seven\"}"];
        let together = decoder(8).decode(&object(), &lines.join(&b'\n')).unwrap();
        assert_eq!((together.rows(), together.quarantined.len()), (0, 3), "every line kept, none lost");
        for (index, line) in lines.iter().enumerate() {
            let alone = decoder(8).decode(&object(), line).unwrap();
            assert_eq!(alone.quarantined.len(), 1);
            assert_eq!(alone.quarantined[0].error, together.quarantined[index].error, "line {}", index + 1);
            // Beside a good line, the same verdict again.
            let beside = decoder(8).decode(&object(), &[*line, b"{\"id\":\"ok\"}"].join(&b'\n')).unwrap();
            assert_eq!((beside.rows(), beside.quarantined[0].error.as_str()), (1, alone.quarantined[0].error.as_str()));
        }
    }

    #[test]
    fn the_reference_workload_decodes() {
        let schema = crate::testing::schemas::events();
        let data = crate::testing::sample::ndjson_object(1, 0, 256 * 1024);
        let lines = data.iter().filter(|b| **b == b'\n').count();
        let decoded = JsonDecoder::new(schema, 1024).decode(&object(), &data).unwrap();
        assert_eq!(decoded.rows(), lines as u64);
    }

    #[test]
    fn an_object_and_its_lines_alone_ingest_and_quarantine_the_same() {
        let schema = crate::testing::schemas::events();
        let clean = crate::testing::sample::ndjson_object(3, 0, 64 * 1024);
        let mut mixed = clean.clone();
        mixed.extend_from_slice(
            b"{\"event_id\":\"x\",\"event_time\":\"2026-05-16T00:00:00Z\",\"http_status\":\"200\"}\n",
        );
        mixed.extend_from_slice(b"{\"event_id\":\"y\",\"event_time\":\"2026-05-16T00:00:00Z\",\"retries\":true}\n");
        mixed.extend_from_slice(
            "{\"event_id\":\"\\ud842\\udfb7\",\"event_time\":\"2026-05-16T00:00:00Z\"}\n".as_bytes(),
        );
        // A string for an integer is not coerced, a boolean for an integer neither; the
        // surrogate pair decodes to the same character whatever the other lines hold.
        let decoder = JsonDecoder::new(schema.clone(), 100);
        for (data, refused) in [(clean, 0), (mixed, 2)] {
            let whole = decoder.decode(&object(), &data).unwrap();
            assert_eq!(whole.quarantined.len(), refused);
            let mut rows = Vec::new();
            let mut quarantined = Vec::new();
            for line in data.split(|b| *b == b'\n').filter(|line| !line.is_empty()) {
                let alone = decoder.decode(&object(), line);
                match alone {
                    Ok(alone) => {
                        rows.extend(alone.batches);
                        quarantined.extend(alone.quarantined.into_iter().map(|line| line.error));
                    }
                    Err(err) => quarantined.push(err.to_string()),
                }
            }
            let concat =
                |batches: &[RecordBatch]| arrow_select::concat::concat_batches(&schema.table, batches).unwrap();
            assert_eq!(concat(&whole.batches), concat(&rows));
            assert_eq!(quarantined.len(), refused, "{quarantined:?}");
            for (whole, alone) in whole.quarantined.iter().zip(&quarantined) {
                assert!(alone.contains(&whole.error), "{alone} / {}", whole.error);
            }
        }
        let last = decoder.decode(&object(), &data_line_of_the_pair()).unwrap();
        let ids = last.batches[0].column_by_name("event_id").unwrap().as_string::<i32>().value(0).to_string();
        assert_eq!(ids, "\u{20BB7}");
    }

    fn data_line_of_the_pair() -> Vec<u8> {
        "{\"event_id\":\"\\ud842\\udfb7\",\"event_time\":\"2026-05-16T00:00:00Z\"}\n".as_bytes().to_vec()
    }
}
