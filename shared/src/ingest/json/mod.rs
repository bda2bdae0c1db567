//! NDJSON straight into the Arrow columns of the declared schema, in one pass over the bytes.
//!
//! Each value is read once and appended to its column on the spot, with one set of rules
//! (the README's conversion table): strict JSON (RFC 8259), one object per line, and a value
//! converted only when the conversion keeps it exactly as written. A line that breaks a rule
//! is taken back out of every column it had reached and refused with the field and the reason,
//! and decoding goes on at the next line, so whether a line becomes a row depends on that line
//! and the schema alone, never on the rest of its object.
//!
//! The parts, as arrow-json splits its reader: [`cursor`] reads JSON tokens and knows nothing
//! of Arrow; [`column`] dispatches each column's values once by type, to [`string`],
//! [`primitive`] and [`nested`] (struct, list, map) builders.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_array::builder::NullBufferBuilder;
use arrow_schema::{ArrowError, SchemaRef};

use crate::schema::ValueFormats;
use cursor::Cursor;
use nested::{Rescue, StructColumn};

mod column;
#[cfg(test)]
mod conversions;
mod cursor;
mod nested;
#[cfg(test)]
mod oracle;
mod primitive;

/// For ISO-8601 timestamp text a `timestamp` column takes: whether it names a zone (`Z` or an
/// offset). `None` for text such a column refuses.
pub(crate) fn timestamp_names_zone(text: &[u8]) -> Option<bool> {
    primitive::iso_parts(text).ok().map(|(_, offset)| offset.is_some())
}
mod string;
#[cfg(test)]
mod tests;

/// Why a line was refused: where, what was expected there, and in which field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Byte offset in the object where decoding stopped.
    pub offset: usize,
    /// What was expected there.
    pub reason: Cow<'static, str>,
    /// The field the value belongs to, innermost first (empty for the row itself).
    pub path: Vec<String>,
}

impl Rejected {
    /// The reason as the quarantine records it.
    pub fn message(&self) -> String {
        if self.path.is_empty() {
            return format!("expected {}", self.reason);
        }
        let path: Vec<&str> = self.path.iter().rev().map(String::as_str).collect();
        format!("field {}: expected {}", path.join("."), self.reason)
    }
}

/// The error is boxed: refusals are rare, and a small `Err` lets every parse call return
/// `Ok(())` or `Ok(&[u8])` in registers instead of through memory.
pub(super) type Decoded<T> = std::result::Result<T, Box<Rejected>>;

/// A refusal at `offset`, expecting `reason`.
pub(super) fn rejected(offset: usize, reason: &'static str) -> Box<Rejected> {
    Box::new(Rejected { offset, reason: Cow::Borrowed(reason), path: Vec::new() })
}

/// Adds the field a refusal happened in, as it travels out of that field.
pub(super) fn in_field(mut rejected: Box<Rejected>, name: &str) -> Box<Rejected> {
    rejected.path.push(name.to_string());
    rejected
}

/// A line of the object that did not become a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedLine {
    /// 1-based line number.
    pub line: u64,
    /// Where the line's text is in the object (without its line break).
    pub text: Range<usize>,
    /// Why it was refused.
    pub reason: String,
}

/// An object decoded: its rows and the lines that did not become rows.
#[derive(Debug, Default)]
pub struct DecodedRows {
    /// Rows, in batches of at most the decoder's batch size.
    pub batches: Vec<RecordBatch>,
    /// When rescuing, each row's rescued fields as a JSON object (or none), in row order.
    pub rescued: Vec<Option<String>>,
    /// Refused lines, in line order.
    pub refused: Vec<RefusedLine>,
    /// Non-blank lines seen: rows plus refused lines.
    pub lines: u64,
}

/// Decodes objects for one schema.
#[derive(Debug, Clone)]
pub struct ColumnDecoder {
    schema: SchemaRef,
    formats: Arc<ValueFormats>,
    batch_rows: usize,
    max_line_bytes: usize,
    rescue: bool,
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

/// Where the line being decoded starts, and its number.
#[derive(Debug, Clone, Copy)]
struct Line {
    number: u64,
    start: usize,
}

impl ColumnDecoder {
    /// A decoder for `schema`, whose timestamp and binary columns read JSON as `formats` say,
    /// producing batches of at most `batch_rows` rows. `rescue` keeps undeclared top-level
    /// fields, and top-level values that do not fit their column, as raw JSON beside the row
    /// instead of dropping or refusing them.
    pub fn new(schema: SchemaRef, formats: &ValueFormats, batch_rows: usize, rescue: bool) -> Self {
        Self {
            schema,
            formats: Arc::new(formats.clone()),
            batch_rows: batch_rows.max(1),
            max_line_bytes: usize::MAX,
            rescue,
            spare: Arc::default(),
        }
    }

    /// Refuses lines longer than `max_line_bytes`.
    pub fn with_max_line_bytes(mut self, max_line_bytes: usize) -> Self {
        self.max_line_bytes = max_line_bytes.max(1);
        self
    }

    /// A whole object: [`ColumnDecoder::decode_from`] its first line.
    #[cfg(test)]
    pub fn decode(&self, data: &[u8]) -> Result<DecodedRows, ArrowError> {
        self.decode_from(data, 1)
    }

    /// Every line of an object, or of a piece of one whose first line is line `first_line`, as
    /// a row or as a refused line. An error means the columns could not be assembled into
    /// arrays (a batch over 2 GiB of text), not a bad line.
    pub fn decode_from(&self, data: &[u8], first_line: u64) -> Result<DecodedRows, ArrowError> {
        // A whole object that is valid UTF-8 needs no check per line.
        let checked = simdutf8::basic::from_utf8(data).is_ok();
        let spare = self.spare.0.lock().ok().and_then(|mut spare| spare.pop());
        let mut rows = spare.unwrap_or_else(|| StructColumn::new(self.schema.fields(), "", &self.formats));
        let mut rescue = self.rescue.then(Rescue::default);
        let mut cursor = Cursor { bytes: data, object: data, pos: 0, scratch: Vec::new() };
        let mut out = DecodedRows::default();
        let mut line = Line { number: first_line, start: 0 };
        loop {
            skip_blank_lines(&mut cursor, &mut line);
            if cursor.peek().is_none() {
                break;
            }
            out.lines += 1;
            let before = rows.len();
            // The row sees its own line only, so it decodes as it would alone.
            let end = memchr::memchr(b'\n', &data[line.start..]).map_or(data.len(), |at| line.start + at);
            if end - line.start > self.max_line_bytes {
                let reason = format!(
                    "line is {} bytes, over the limit of {} (INLET_MAX_LINE_BYTES)",
                    end - line.start,
                    self.max_line_bytes
                );
                out.refused.push(RefusedLine { line: line.number, text: line.start..end, reason });
                cursor.pos = end;
                continue;
            }
            cursor.bytes = &data[..end];
            let decoded = self.row(&mut rows, &mut cursor, line, checked, rescue.as_mut());
            cursor.bytes = data;
            match decoded {
                Ok(()) => {
                    if let Some(rescue) = &mut rescue {
                        out.rescued.push(rescue.take_row());
                    }
                    if rows.len() == self.batch_rows {
                        out.batches.push(self.finish(&mut rows)?);
                    }
                }
                Err(rejected) => {
                    rows.truncate(before);
                    if let Some(rescue) = &mut rescue {
                        rescue.take_row();
                    }
                    out.refused.push(RefusedLine {
                        line: line.number,
                        text: line.start..end,
                        reason: rejected.message(),
                    });
                    cursor.pos = end;
                }
            }
        }
        if rows.len() > 0 {
            out.batches.push(self.finish(&mut rows)?);
        }
        if let Ok(mut spare) = self.spare.0.lock() {
            spare.push(rows);
        }
        Ok(out)
    }

    /// Reads the row at the cursor, which sees its line and nothing after it.
    fn row(
        &self,
        rows: &mut StructColumn,
        cursor: &mut Cursor<'_>,
        line: Line,
        checked: bool,
        rescue: Option<&mut Rescue>,
    ) -> Decoded<()> {
        if !checked && let Err(err) = simdutf8::compat::from_utf8(&cursor.bytes[line.start..]) {
            return Err(rejected(line.start + err.valid_up_to(), "UTF-8"));
        }
        if cursor.peek() != Some(b'{') {
            return Err(cursor.reject("an object"));
        }
        match rescue {
            Some(rescue) => rows.parse_members(cursor, rescue)?,
            None => rows.parse_object(cursor)?,
        }
        cursor.skip_whitespace();
        if cursor.peek().is_some() {
            return Err(cursor.reject("the end of the line after the object (one object per line)"));
        }
        Ok(())
    }

    fn finish(&self, rows: &mut StructColumn) -> Result<RecordBatch, ArrowError> {
        // The root is never null; its validity only counted rows.
        rows.nulls = NullBufferBuilder::new(0);
        let columns = rows.finish_children()?;
        RecordBatch::try_new(self.schema.clone(), columns)
    }
}

/// Steps over blanks and line breaks between rows, counting lines.
fn skip_blank_lines(cursor: &mut Cursor<'_>, line: &mut Line) {
    while let Some(byte) = cursor.peek() {
        match byte {
            b' ' | b'\t' | b'\r' => cursor.pos += 1,
            b'\n' => {
                cursor.pos += 1;
                line.number += 1;
                line.start = cursor.pos;
            }
            _ => return,
        }
    }
}
