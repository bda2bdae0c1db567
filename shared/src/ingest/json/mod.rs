//! NDJSON straight into the Arrow columns of the declared schema, in one pass over the bytes.
//!
//! arrow-json first writes every token of a batch to a tape, then walks the tape once per
//! column; on wide event lines that second pass is much of the converter's work. This decoder
//! reads each value once and appends it to its column on the spot.
//!
//! It is deliberately narrower than arrow-json. It accepts only input whose values it decodes
//! exactly as arrow-json would (strings for string columns, JSON integers for integer columns,
//! numbers for floats, text arrow-cast parses for timestamps and dates) and *rejects* the rest:
//! type coercions, duplicate keys, nulls in non-nullable columns, malformed JSON. A rejected
//! object is decoded again by arrow-json, whose line-by-line pass quarantines the bad lines
//! with its own messages, so what is ingested or quarantined never depends on which decoder
//! ran. The tests hold both decoders to identical batches.
//!
//! The parts, as arrow-json splits its reader: [`cursor`] reads JSON tokens and knows nothing
//! of Arrow; [`column`] dispatches each column's values once by type, to [`string`],
//! [`primitive`] and [`nested`] (struct, list, map) builders.

use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_array::builder::NullBufferBuilder;
use arrow_schema::{DataType, SchemaRef, TimeUnit};

use cursor::Cursor;
use nested::StructColumn;

mod column;
mod cursor;
mod nested;
mod primitive;
mod string;
#[cfg(test)]
mod tests;

/// Why the column decoder handed an object back to arrow-json (for logs and tests only: users
/// see arrow-json's verdict).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Byte offset in the object where decoding stopped.
    pub offset: usize,
    /// What was expected there.
    pub reason: &'static str,
}

/// The error is boxed: refusals are rare, and a small `Err` lets every parse call return
/// `Ok(())` or `Ok(&[u8])` in registers instead of through memory.
pub(super) type Decoded<T> = std::result::Result<T, Box<Rejected>>;

/// A refusal at `offset`, expecting `reason`.
pub(super) fn rejected(offset: usize, reason: &'static str) -> Box<Rejected> {
    Box::new(Rejected { offset, reason })
}

/// Decodes objects for one schema; `None` from [`ColumnDecoder::new`] means the schema holds a
/// type this decoder leaves to arrow-json.
#[derive(Debug, Clone)]
pub struct ColumnDecoder {
    schema: SchemaRef,
    batch_rows: usize,
    spare: Arc<Spare>,
}

/// Column buffers of finished objects, kept at the size they last reached so that the next
/// object's values land without regrowing (and copying) them. At most one per decode running
/// at once.
#[derive(Default)]
struct Spare(Mutex<Vec<StructColumn>>);

impl std::fmt::Debug for Spare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Spare")
    }
}

impl ColumnDecoder {
    /// A decoder for `schema` (every type supported) producing batches of `batch_rows` rows.
    pub fn new(schema: SchemaRef, batch_rows: usize) -> Option<Self> {
        schema.fields().iter().all(|field| supported(field.data_type())).then_some(Self {
            schema,
            batch_rows: batch_rows.max(1),
            spare: Arc::default(),
        })
    }

    /// Every value of the whole object as record batches, or where it stopped.
    pub fn decode(&self, data: &[u8]) -> std::result::Result<Vec<RecordBatch>, Rejected> {
        self.decode_all(data).map_err(|rejected| *rejected)
    }

    fn decode_all(&self, data: &[u8]) -> Decoded<Vec<RecordBatch>> {
        if let Err(err) = simdutf8::compat::from_utf8(data) {
            return Err(rejected(err.valid_up_to(), "UTF-8"));
        }
        let spare = self.spare.0.lock().ok().and_then(|mut spare| spare.pop());
        // A refused object leaves its columns half filled: they are dropped, not kept.
        let mut rows = spare.unwrap_or_else(|| StructColumn::new(self.schema.fields()));
        let mut cursor = Cursor { bytes: data, pos: 0, scratch: Vec::new() };
        let mut batches = Vec::new();
        let mut pending = 0;
        loop {
            cursor.skip_whitespace();
            match cursor.peek() {
                None => break,
                Some(b'{') => rows.parse_object(&mut cursor)?,
                Some(_) => return Err(cursor.reject("an object")),
            }
            pending += 1;
            if pending == self.batch_rows {
                batches.push(self.finish(&mut rows, cursor.pos)?);
                pending = 0;
            }
        }
        if pending > 0 {
            batches.push(self.finish(&mut rows, cursor.pos)?);
        }
        if let Ok(mut spare) = self.spare.0.lock() {
            spare.push(rows);
        }
        Ok(batches)
    }

    fn finish(&self, rows: &mut StructColumn, offset: usize) -> Decoded<RecordBatch> {
        // The root is never null; its validity only counted rows.
        rows.nulls = NullBufferBuilder::new(0);
        let columns = rows.finish_children().map_err(|_| rejected(offset, "valid arrays"))?;
        RecordBatch::try_new(self.schema.clone(), columns).map_err(|_| rejected(offset, "a valid batch"))
    }
}

fn supported(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8
        | DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Float32
        | DataType::Float64
        | DataType::Date32
        | DataType::Timestamp(TimeUnit::Microsecond, _) => true,
        DataType::Struct(fields) => fields.iter().all(|f| supported(f.data_type())),
        DataType::List(element) => supported(element.data_type()),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) => {
                kv.len() == 2 && kv[0].data_type() == &DataType::Utf8 && supported(kv[1].data_type())
            }
            _ => false,
        },
        _ => false,
    }
}
