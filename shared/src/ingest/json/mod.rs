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
    /// Leaf columns of the schema: a row costs a value (or a null) in each.
    leaves: usize,
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

/// A batch ends at the decoder's row count, or sooner once its rows hold this many values
/// (rows times leaf columns), so a wide schema's batches stay as small as a narrow one's...
pub const BATCH_VALUES: usize = 256 * 1024;

/// ...or once its lines add up to this much text, so long lines make short batches.
pub const BATCH_TEXT_BYTES: usize = 4 << 20;

/// Where decoding of one piece of text stands between steps ([`ColumnDecoder::decode_step`]).
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Byte offset the next step starts at.
    offset: usize,
    /// Number of the line at `offset` (or of the line ending there).
    line: u64,
    /// Whether the whole text is valid UTF-8, checked once so no line needs checking.
    checked: bool,
    /// Whether every line has been read.
    done: bool,
}

impl Progress {
    /// Whether every line of the text has been decoded.
    pub fn done(&self) -> bool {
        self.done
    }
}

/// How much one step may hold before it returns.
#[derive(Debug, Clone, Copy)]
pub struct StepBudget {
    /// Bytes of decoded batches, rescued values and refused lines.
    pub bytes: usize,
    /// What each row costs beyond its decoded columns (the lineage columns added later).
    pub row_bytes: usize,
    /// What each refused line costs beyond its reason and kept text (its quarantine record's
    /// source and fields).
    pub refused_bytes: usize,
}

impl StepBudget {
    /// No bound: the whole text in one step.
    #[cfg(test)]
    pub const WHOLE: Self = Self { bytes: usize::MAX, row_bytes: 0, refused_bytes: 0 };
}

/// What a refused line is charged against a step's budget: its reason and the part of its
/// text the quarantine keeps.
fn refused_line_bytes(line: &RefusedLine, budget: StepBudget) -> usize {
    let raw = line.text.len().min(crate::ingest::decode::QUARANTINED_RAW_LIMIT);
    std::mem::size_of::<RefusedLine>() + line.reason.len() + raw + budget.refused_bytes
}

impl ColumnDecoder {
    /// A decoder for `schema`, whose timestamp and binary columns read JSON as `formats` say,
    /// producing batches of at most `batch_rows` rows. `rescue` keeps undeclared top-level
    /// fields, and top-level values that do not fit their column, as raw JSON beside the row
    /// instead of dropping or refusing them.
    pub fn new(schema: SchemaRef, formats: &ValueFormats, batch_rows: usize, rescue: bool) -> Self {
        let leaves = schema.fields().iter().map(|field| leaf_columns(field.data_type())).sum::<usize>().max(1);
        Self {
            schema,
            formats: Arc::new(formats.clone()),
            batch_rows: batch_rows.max(1),
            leaves,
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
    #[cfg(test)]
    pub fn decode_from(&self, data: &[u8], first_line: u64) -> Result<DecodedRows, ArrowError> {
        let mut progress = Self::start(data, first_line);
        self.decode_step(data, &mut progress, StepBudget::WHOLE)
    }

    /// Decoding of `data`, whose first line is line `first_line`, before its first step.
    pub fn start(data: &[u8], first_line: u64) -> Progress {
        // Text that is valid UTF-8 as a whole needs no check per line.
        let checked = simdutf8::basic::from_utf8(data).is_ok();
        Progress { offset: 0, line: first_line, checked, done: false }
    }

    /// The lines of `data` from where `progress` stands, as rows and refused lines, until what
    /// the step holds reaches `budget` (checked between batches, so a step holds at most its
    /// budget and one batch more) or the text ends; `progress` moves past them. Decoding in
    /// steps gives the same rows and refusals as decoding in one go.
    pub fn decode_step(
        &self,
        data: &[u8],
        progress: &mut Progress,
        budget: StepBudget,
    ) -> Result<DecodedRows, ArrowError> {
        let mut out = DecodedRows::default();
        if progress.done {
            return Ok(out);
        }
        let spare = self.spare.0.lock().ok().and_then(|mut spare| spare.pop());
        let mut rows = spare.unwrap_or_else(|| StructColumn::new(self.schema.fields(), "", &self.formats));
        let mut rescue = self.rescue.then(Rescue::default);
        let mut cursor = Cursor { bytes: data, object: data, pos: progress.offset, scratch: Vec::new() };
        let mut line = Line { number: progress.line, start: progress.offset };
        let (mut held, mut batch_text) = (0usize, 0usize);
        let mut stopped_at = None;
        loop {
            skip_blank_lines(&mut cursor, &mut line);
            if cursor.peek().is_none() {
                progress.done = true;
                break;
            }
            if held >= budget.bytes && out.lines > 0 {
                // Refused lines count too: rows waiting among them end their batch early.
                if rows.len() > 0 {
                    self.finish_batch(&mut rows, &mut out, &mut held, budget)?;
                }
                // The next step starts at this line's start, leading blanks and all.
                stopped_at = Some(line.start);
                break;
            }
            out.lines += 1;
            let before = rows.len();
            // The row sees its own line only, so it decodes as it would alone.
            let end = memchr::memchr(b'\n', &data[line.start..]).map_or(data.len(), |at| line.start + at);
            if let Some(refused) = self.overlong(line, end) {
                self.refuse(&mut out, &mut held, refused, budget);
                cursor.pos = end;
                continue;
            }
            cursor.bytes = &data[..end];
            let decoded = self.row(&mut rows, &mut cursor, line, progress.checked, rescue.as_mut());
            cursor.bytes = data;
            match decoded {
                Ok(()) => {
                    if let Some(rescue) = &mut rescue {
                        let rescued = rescue.take_row();
                        held += rescued.as_ref().map_or(0, String::len);
                        out.rescued.push(rescued);
                    }
                    batch_text += end - line.start;
                    if self.batch_full(rows.len(), batch_text) {
                        self.finish_batch(&mut rows, &mut out, &mut held, budget)?;
                        batch_text = 0;
                    }
                }
                Err(rejected) => {
                    rows.truncate(before);
                    if let Some(rescue) = &mut rescue {
                        rescue.take_row();
                    }
                    let refused = RefusedLine { line: line.number, text: line.start..end, reason: rejected.message() };
                    self.refuse(&mut out, &mut held, refused, budget);
                    cursor.pos = end;
                }
            }
        }
        if rows.len() > 0 {
            self.finish_batch(&mut rows, &mut out, &mut held, budget)?;
        }
        progress.offset = stopped_at.unwrap_or(cursor.pos);
        progress.line = line.number;
        if let Ok(mut spare) = self.spare.0.lock() {
            spare.push(rows);
        }
        Ok(out)
    }

    /// The refusal of a line ending at `end` that is longer than the line limit.
    #[inline]
    fn overlong(&self, line: Line, end: usize) -> Option<RefusedLine> {
        let length = end - line.start;
        (length > self.max_line_bytes).then(|| RefusedLine {
            line: line.number,
            text: line.start..end,
            reason: format!("line is {length} bytes, over the limit of {} (INLET_MAX_LINE_BYTES)", self.max_line_bytes),
        })
    }

    /// Whether a batch of `rows` rows decoded from `text` bytes is to end here.
    #[inline]
    fn batch_full(&self, rows: usize, text: usize) -> bool {
        rows >= self.batch_rows || rows * self.leaves >= BATCH_VALUES || text >= BATCH_TEXT_BYTES
    }

    /// Adds a refused line to a step's output and to what the step holds.
    fn refuse(&self, out: &mut DecodedRows, held: &mut usize, line: RefusedLine, budget: StepBudget) {
        *held += refused_line_bytes(&line, budget);
        out.refused.push(line);
    }

    /// Turns the rows decoded so far into a batch of the step's output.
    fn finish_batch(
        &self,
        rows: &mut StructColumn,
        out: &mut DecodedRows,
        held: &mut usize,
        budget: StepBudget,
    ) -> Result<(), ArrowError> {
        let batch = self.finish(rows)?;
        *held += batch.get_array_memory_size() + batch.num_rows() * budget.row_bytes;
        out.batches.push(batch);
        Ok(())
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

/// Leaf (primitive) columns a value of `data_type` is stored in.
fn leaf_columns(data_type: &arrow_schema::DataType) -> usize {
    use arrow_schema::DataType;
    match data_type {
        DataType::Struct(fields) => fields.iter().map(|field| leaf_columns(field.data_type())).sum::<usize>().max(1),
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
            leaf_columns(item.data_type())
        }
        DataType::Map(entries, _) => leaf_columns(entries.data_type()),
        _ => 1,
    }
}
