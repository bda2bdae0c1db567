//! NDJSON straight into the Arrow columns of the declared schema, in one pass over the bytes.
//!
//! arrow-json first writes every token of a batch to a tape, then walks the tape once per
//! column. On wide event lines that was about half of the converter's CPU. This decoder reads
//! each value once and appends it to its column on the spot.
//!
//! It is deliberately narrower than arrow-json. It accepts only input whose values it decodes
//! exactly as arrow-json would (strings for string columns, JSON integers for integer columns,
//! numbers for floats, text arrow-cast parses for timestamps and dates) and *rejects* the rest:
//! type coercions, duplicate keys, nulls in non-nullable columns, malformed JSON. A rejected
//! object is decoded again by arrow-json, whose line-by-line pass quarantines the bad lines
//! with its own messages, so what is ingested or quarantined never depends on which decoder
//! ran. The tests hold both decoders to identical batches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow_array::builder::{BooleanBufferBuilder, NullBufferBuilder};
use arrow_array::timezone::Tz;
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{
    ArrayRef, ArrowPrimitiveType, BooleanArray, ListArray, MapArray, PrimitiveArray, RecordBatch, StringArray,
    StructArray,
};
use arrow_buffer::OffsetBuffer;
use arrow_cast::parse::{Parser, string_to_datetime};
use arrow_schema::{ArrowError, DataType, FieldRef, Fields, SchemaRef, TimeUnit};

/// Why the direct decoder handed an object back to arrow-json (for logs and tests only: users
/// see arrow-json's verdict).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Byte offset in the object where decoding stopped.
    pub offset: usize,
    /// What was expected there.
    pub reason: &'static str,
}

/// The error is boxed: refusals are rare, and a 24-byte error made every parse call return
/// through memory, where `Ok(())` or `Ok(&[u8])` now comes back in registers.
type Decoded<T> = std::result::Result<T, Box<Rejected>>;

/// A refusal at `offset`, expecting `reason`.
fn rejected(offset: usize, reason: &'static str) -> Box<Rejected> {
    Box::new(Rejected { offset, reason })
}

/// Deepest nesting skipped inside fields the schema does not declare.
const MAX_SKIPPED_DEPTH: usize = 64;

/// Decodes objects for one schema; `None` from [`DirectDecoder::new`] means the schema holds a
/// type this decoder leaves to arrow-json.
#[derive(Debug, Clone)]
pub struct DirectDecoder {
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

impl DirectDecoder {
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

/// The bytes of one object and a position in them.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Unescaped keys and skipped strings.
    scratch: Vec<u8>,
}

/// A JSON number: its text, and its value when it is an integer that fits `i64`.
struct Number<'a> {
    text: &'a [u8],
    integer: Option<i64>,
}

impl<'a> Cursor<'a> {
    fn reject(&self, reason: &'static str) -> Box<Rejected> {
        rejected(self.pos, reason)
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    #[inline]
    fn eat(&mut self, byte: u8, reason: &'static str) -> Decoded<()> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.reject(reason))
        }
    }

    fn literal(&mut self, text: &'static [u8]) -> Decoded<()> {
        if self.bytes[self.pos..].starts_with(text) {
            self.pos += text.len();
            Ok(())
        } else {
            Err(self.reject("true, false or null"))
        }
    }

    /// Reads a list (`[`, `]`) or object (`{`, `}`) at the cursor, calling `item` at each
    /// element or member with the whitespace around the commas skipped.
    #[inline]
    fn each(&mut self, open: u8, close: u8, mut item: impl FnMut(&mut Self) -> Decoded<()>) -> Decoded<()> {
        self.eat(open, if open == b'[' { "a list" } else { "an object" })?;
        self.skip_whitespace();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(());
        }
        loop {
            item(self)?;
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_whitespace();
                }
                Some(byte) if byte == close => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.reject("',' or the end of the container")),
            }
        }
    }

    /// The `:` between a member's key and its value, and the whitespace around it.
    #[inline]
    fn colon(&mut self) -> Decoded<()> {
        self.skip_whitespace();
        self.eat(b':', "':'")?;
        self.skip_whitespace();
        Ok(())
    }

    /// Appends the string at the cursor, unescaped, to `out`.
    fn string_into(&mut self, out: &mut Vec<u8>) -> Decoded<()> {
        self.eat(b'"', "a string")?;
        loop {
            let rest = &self.bytes[self.pos..];
            let Some(stop) = quote_or_backslash(rest) else {
                return Err(self.reject("the end of the string"));
            };
            out.extend_from_slice(&rest[..stop]);
            self.pos += stop + 1;
            if rest[stop] == b'"' {
                return Ok(());
            }
            self.escape_into(out)?;
        }
    }

    /// The escape after a backslash, as arrow-json reads it.
    fn escape_into(&mut self, out: &mut Vec<u8>) -> Decoded<()> {
        let byte = self.peek().ok_or_else(|| self.reject("an escape"))?;
        self.pos += 1;
        let plain = match byte {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let high = self.hex4()?;
                let code = match high {
                    0xD800..=0xDBFF => {
                        self.eat(b'\\', "a low surrogate")?;
                        self.eat(b'u', "a low surrogate")?;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(self.reject("a low surrogate"));
                        }
                        0x10000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(low) - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return Err(self.reject("a high surrogate first")),
                    _ => u32::from(high),
                };
                let c = char::from_u32(code).ok_or_else(|| self.reject("a character"))?;
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                return Ok(());
            }
            _ => return Err(self.reject("a valid escape")),
        };
        out.push(plain);
        Ok(())
    }

    fn hex4(&mut self) -> Decoded<u16> {
        let digits = self.bytes.get(self.pos..self.pos + 4).ok_or_else(|| self.reject("4 hex digits"))?;
        let mut value = 0u16;
        for &digit in digits {
            let nibble = (digit as char).to_digit(16).ok_or_else(|| self.reject("4 hex digits"))?;
            value = (value << 4) | nibble as u16;
        }
        self.pos += 4;
        Ok(value)
    }

    /// A string's bytes: borrowed when it holds no escape, else unescaped into the scratch.
    fn raw_string(&mut self) -> Decoded<&[u8]> {
        if self.peek() != Some(b'"') {
            return Err(self.reject("a string"));
        }
        let start = self.pos + 1;
        if let Some(len) = quote_or_backslash(&self.bytes[start..])
            && self.bytes[start + len] == b'"'
        {
            self.pos = start + len + 1;
            return Ok(&self.bytes[start..start + len]);
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let read = self.string_into(&mut scratch);
        self.scratch = scratch;
        read?;
        Ok(&self.scratch)
    }

    /// A string as text (the object as a whole was checked as UTF-8, but not every escape).
    fn text(&mut self) -> Decoded<&str> {
        let offset = self.pos;
        let bytes = self.raw_string()?;
        utf8(bytes, offset)
    }

    /// A non-negative integer of at most 18 digits at the cursor, the common kind (counts,
    /// sizes, statuses), in one short loop; `None`, with nothing read, for anything else
    /// (which [`Self::number`] reads or refuses).
    #[inline(always)]
    fn small_integer(&mut self) -> Option<i64> {
        let (bytes, start) = (self.bytes, self.pos);
        let (mut pos, mut value, mut room) = (start, 0, 18);
        let fits = decimal_digits(bytes, &mut pos, &mut value, &mut room);
        if !fits || !integer_part(bytes, start, pos) || matches!(bytes.get(pos), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.pos = pos;
        // 18 digits stay below 2^63.
        Some(value as i64)
    }

    /// A decimal of at most 15 digits and no exponent at the cursor, as the nearest `f64`:
    /// its digits make an integer below 2^53 and its scale an exact power of ten, so their
    /// quotient is rounded once, as a correct parser rounds the decimal (Clinger's fast path).
    /// `None`, with nothing read, for anything else.
    #[inline(always)]
    fn short_decimal(&mut self) -> Option<f64> {
        const POWERS_OF_TEN: [f64; 16] =
            [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];
        let bytes = self.bytes;
        let negative = bytes.get(self.pos) == Some(&b'-');
        let integer_start = self.pos + usize::from(negative);
        let (mut pos, mut mantissa, mut room) = (integer_start, 0, 15);
        if !decimal_digits(bytes, &mut pos, &mut mantissa, &mut room) || !integer_part(bytes, integer_start, pos) {
            return None;
        }
        let mut scale = 0;
        if bytes.get(pos) == Some(&b'.') {
            pos += 1;
            let fraction_start = pos;
            if !decimal_digits(bytes, &mut pos, &mut mantissa, &mut room) || pos == fraction_start {
                return None;
            }
            scale = pos - fraction_start;
        }
        if matches!(bytes.get(pos), Some(b'e' | b'E')) {
            return None;
        }
        let value = mantissa as f64 / POWERS_OF_TEN[scale];
        self.pos = pos;
        Some(if negative { -value } else { value })
    }

    /// A number in JSON's grammar (no leading zeros, digits on both sides of the point).
    fn number(&mut self) -> Decoded<Number<'a>> {
        let bytes = self.bytes;
        let start = self.pos;
        let mut pos = start;
        let negative = bytes.get(pos) == Some(&b'-');
        pos += usize::from(negative);
        let digits_start = pos;
        let mut magnitude: u64 = 0;
        let mut overflow = false;
        while let Some(&digit @ b'0'..=b'9') = bytes.get(pos) {
            match magnitude.checked_mul(10).and_then(|m| m.checked_add(u64::from(digit - b'0'))) {
                Some(m) => magnitude = m,
                None => overflow = true,
            }
            pos += 1;
        }
        if !integer_part(bytes, digits_start, pos) {
            return Err(rejected(pos, "a number"));
        }
        let mut integral = true;
        if bytes.get(pos) == Some(&b'.') {
            integral = false;
            pos += 1;
            let fraction_start = pos;
            while let Some(b'0'..=b'9') = bytes.get(pos) {
                pos += 1;
            }
            if pos == fraction_start {
                return Err(rejected(pos, "digits after the point"));
            }
        }
        if let Some(b'e' | b'E') = bytes.get(pos) {
            integral = false;
            pos += 1;
            if let Some(b'+' | b'-') = bytes.get(pos) {
                pos += 1;
            }
            let exponent_start = pos;
            while let Some(b'0'..=b'9') = bytes.get(pos) {
                pos += 1;
            }
            if pos == exponent_start {
                return Err(rejected(pos, "exponent digits"));
            }
        }
        self.pos = pos;
        let text = &bytes[start..pos];
        let integer = if integral && !overflow {
            if negative { 0i64.checked_sub_unsigned(magnitude) } else { i64::try_from(magnitude).ok() }
        } else {
            None
        };
        Ok(Number { text, integer })
    }

    /// Steps over any valid JSON value (of a field the schema does not declare).
    fn skip_value(&mut self, depth: usize) -> Decoded<()> {
        if depth > MAX_SKIPPED_DEPTH {
            return Err(self.reject("shallower nesting"));
        }
        match self.peek() {
            Some(b'"') => {
                self.raw_string()?;
            }
            Some(b'{') => self.each(b'{', b'}', |cursor| {
                cursor.raw_string()?;
                cursor.colon()?;
                cursor.skip_value(depth + 1)
            })?,
            Some(b'[') => self.each(b'[', b']', |cursor| cursor.skip_value(depth + 1))?,
            Some(b't') => self.literal(b"true")?,
            Some(b'f') => self.literal(b"false")?,
            Some(b'n') => self.literal(b"null")?,
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
            }
            _ => return Err(self.reject("a value")),
        }
        Ok(())
    }
}

/// Appends the decimal digits from `*pos` on to `value`, at most `*room` more of them; false
/// if a digit is left once the room is used up.
#[inline(always)]
fn decimal_digits(bytes: &[u8], pos: &mut usize, value: &mut u64, room: &mut u32) -> bool {
    while let Some(&digit @ b'0'..=b'9') = bytes.get(*pos) {
        if *room == 0 {
            return false;
        }
        *value = *value * 10 + u64::from(digit - b'0');
        *room -= 1;
        *pos += 1;
    }
    true
}

/// Whether `bytes[start..end]`, all digits, is a number's integer part as JSON writes it: at
/// least one digit, and no leading zero.
#[inline(always)]
fn integer_part(bytes: &[u8], start: usize, end: usize) -> bool {
    end > start && (end - start == 1 || bytes[start] != b'0')
}

/// A string read at `offset` as text: the object was checked as UTF-8 as a whole, but not the
/// characters its escapes produce.
fn utf8(bytes: &[u8], offset: usize) -> Decoded<&str> {
    std::str::from_utf8(bytes).map_err(|_| rejected(offset, "UTF-8"))
}

/// Where the first `"` or `\\` is. Most strings here are short (ids, enums, keys), where a
/// 16-byte compare (x86_64; a word at a time elsewhere) beats setting up a vector search;
/// longer ones go to memchr.
#[inline]
fn quote_or_backslash(bytes: &[u8]) -> Option<usize> {
    let short = bytes.len().min(SHORT_STRING);
    let mut at = 0;
    while at + SCAN_STEP <= short {
        if let Some(found) = first_mark(&bytes[at..at + SCAN_STEP]) {
            return Some(at + found);
        }
        at += SCAN_STEP;
    }
    memchr::memchr2(b'"', b'\\', &bytes[at..]).map(|found| at + found)
}

/// Bytes scanned in steps before a string is handed to memchr.
const SHORT_STRING: usize = 64;

#[cfg(target_arch = "x86_64")]
const SCAN_STEP: usize = 16;
#[cfg(not(target_arch = "x86_64"))]
const SCAN_STEP: usize = 8;

/// The first `"` or `\\` of a 16-byte chunk.
#[cfg(target_arch = "x86_64")]
#[inline]
fn first_mark(chunk: &[u8]) -> Option<usize> {
    use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8};
    let chunk: &[u8; 16] = chunk.try_into().expect("16 bytes");
    // SAFETY: SSE2 is part of every x86_64 target, and the load reads the 16 bytes of
    // `chunk` (an unaligned load needs no more).
    let hits = unsafe {
        let chunk = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
        let quotes = _mm_cmpeq_epi8(chunk, _mm_set1_epi8(b'"' as i8));
        let backslashes = _mm_cmpeq_epi8(chunk, _mm_set1_epi8(b'\\' as i8));
        _mm_movemask_epi8(_mm_or_si128(quotes, backslashes))
    };
    (hits != 0).then(|| hits.trailing_zeros() as usize)
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn first_mark(chunk: &[u8]) -> Option<usize> {
    first_mark_in_word(chunk)
}

/// The first `"` or `\\` of an 8-byte word (compiled everywhere so that its test runs here).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline]
fn first_mark_in_word(chunk: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
    let quotes = word ^ (ONES * u64::from(b'"'));
    let backslashes = word ^ (ONES * u64::from(b'\\'));
    // A zero byte in either marks a hit; the lowest marked byte is always a true one.
    let hits = (quotes.wrapping_sub(ONES) & !quotes | backslashes.wrapping_sub(ONES) & !backslashes) & HIGHS;
    (hits != 0).then(|| hits.trailing_zeros() as usize / 8)
}

/// `a == b`. Field keys are short, where a memcmp call costs more
/// than the comparison: up to 24 bytes take two or three overlapping word loads per side.
#[inline]
fn same_short(a: &[u8], b: &[u8]) -> bool {
    // Also what lets the compiler drop the bounds checks of `b`'s loads.
    if a.len() != b.len() {
        return false;
    }
    let word = |bytes: &[u8], at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let half = |bytes: &[u8], at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    match a.len() {
        n @ 17..=24 => word(a, 0) == word(b, 0) && word(a, 8) == word(b, 8) && word(a, n - 8) == word(b, n - 8),
        n @ 8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        n @ 4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        _ => a == b,
    }
}

/// Values of one column, with the type and nullability its field declares.
struct Column {
    nullable: bool,
    values: Values,
}

enum Values {
    Utf8(Utf8Values),
    Boolean { values: BooleanBufferBuilder, nulls: NullBufferBuilder },
    Int8(Primitives<Int8Type>),
    Int16(Primitives<Int16Type>),
    Int32(Primitives<Int32Type>),
    Int64(Primitives<Int64Type>),
    Float32(Primitives<Float32Type>),
    Float64(Primitives<Float64Type>),
    Date32(Primitives<Date32Type>),
    Timestamp { values: Primitives<TimestampMicrosecondType>, zone: Option<Tz> },
    Struct(Box<StructColumn>),
    List(Box<ListColumn>),
    Map(Box<MapColumn>),
}

struct Utf8Values {
    offsets: Vec<i32>,
    bytes: Vec<u8>,
    nulls: NullBufferBuilder,
}

struct Primitives<T: ArrowPrimitiveType> {
    data_type: DataType,
    values: Vec<T::Native>,
    nulls: NullBufferBuilder,
}

struct StructColumn {
    fields: Fields,
    children: Vec<Column>,
    /// Which fields the object being read has set.
    seen: Vec<bool>,
    index: HashMap<Box<[u8]>, usize>,
    /// Each field's key as compact JSON writes it, `name":` after the opening quote, when the
    /// name needs no escape (then the raw bytes can be compared with it).
    plain_keys: Vec<Option<Box<[u8]>>>,
    nulls: NullBufferBuilder,
}

struct ListColumn {
    element: FieldRef,
    offsets: Vec<i32>,
    child: Column,
    nulls: NullBufferBuilder,
}

struct MapColumn {
    entries: FieldRef,
    ordered: bool,
    offsets: Vec<i32>,
    keys: Utf8Values,
    values: Column,
    nulls: NullBufferBuilder,
}

fn offset(len: usize, cursor: &Cursor<'_>) -> Decoded<i32> {
    i32::try_from(len).map_err(|_| cursor.reject("fewer than 2 GiB per batch"))
}

impl Utf8Values {
    fn new() -> Self {
        Self { offsets: vec![0], bytes: Vec::new(), nulls: NullBufferBuilder::new(0) }
    }

    /// Reads the string at the cursor. Nine in ten strings here are under 32 bytes without
    /// an escape (enums, ids, tags, keys; four in five under 16): those take a few loads and
    /// compares inline, where the general path costs two calls, a `memcpy` call and their
    /// register saves.
    #[inline(always)]
    fn parse(&mut self, cursor: &mut Cursor<'_>) -> Decoded<()> {
        if self.short(cursor) {
            return Ok(());
        }
        self.parse_any(cursor)
    }

    /// Appends the string at the cursor if it is plain (no escape) and closes within two scan
    /// steps (32 bytes on x86_64) of its opening quote; false, with nothing read, otherwise.
    #[inline(always)]
    fn short(&mut self, cursor: &mut Cursor<'_>) -> bool {
        let start = cursor.pos + 1;
        let (Some(b'"'), Some(chunk)) = (cursor.peek(), cursor.bytes.get(start..start + 2 * SCAN_STEP)) else {
            return false;
        };
        let found =
            first_mark(&chunk[..SCAN_STEP]).or_else(|| first_mark(&chunk[SCAN_STEP..]).map(|len| SCAN_STEP + len));
        let Some(len) = found.filter(|&len| chunk[len] == b'"') else {
            return false;
        };
        let Ok(end) = i32::try_from(self.bytes.len() + len) else {
            return false;
        };
        // Both steps copied and cut back: a fixed-size copy needs no `memcpy` call. The cut
        // falls before a quote, so the bytes kept end on a character boundary.
        self.bytes.extend_from_slice(chunk);
        self.bytes.truncate(end as usize);
        self.offsets.push(end);
        self.nulls.append_non_null();
        cursor.pos = start + len + 1;
        true
    }

    #[inline(never)]
    fn parse_any(&mut self, cursor: &mut Cursor<'_>) -> Decoded<()> {
        cursor.string_into(&mut self.bytes)?;
        self.offsets.push(offset(self.bytes.len(), cursor)?);
        self.nulls.append_non_null();
        Ok(())
    }

    fn append_null(&mut self) {
        self.offsets.push(*self.offsets.last().expect("offsets start with 0"));
        self.nulls.append_null();
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let offsets = offsets_buffer(take_offsets(&mut self.offsets));
        let bytes = take_sized(&mut self.bytes);
        let nulls = self.nulls.finish();
        let rows = offsets.len() - 1;
        if offsets.last().copied() != i32::try_from(bytes.len()).ok() || nulls.as_ref().is_some_and(|n| n.len() != rows)
        {
            return Err(ArrowError::InvalidArgumentError("string offsets or nulls out of step".into()));
        }
        debug_assert!(
            StringArray::try_new(offsets.clone(), bytes.clone().into(), nulls.clone()).is_ok(),
            "decoded strings are UTF-8 at every offset"
        );
        // SAFETY: `try_new` would only re-validate UTF-8, a second full pass over the text
        // (2% of the converter's instructions). The object was checked as UTF-8 before
        // decoding; every value is either a slice of it between ASCII delimiters (quotes,
        // backslash escapes), so it starts and ends on character boundaries, or text
        // `escape_into` wrote from a `char`. Offsets are monotonic (`OffsetBuffer::new`
        // checks), end at the buffer's length and match the nulls in length (checked above).
        let array = unsafe { StringArray::new_unchecked(offsets, bytes.into(), nulls) };
        Ok(Arc::new(array))
    }
}

/// Room for the next batch of a column: what this one held plus an eighth. Batches of text
/// vary by a few percent; at exactly the last size, every other batch outgrew its buffer and
/// copied it whole to a new one.
fn next_capacity(len: usize) -> usize {
    len + len / 8
}

/// The filled buffer, replaced by an empty one for the next batch.
fn take_sized<T>(values: &mut Vec<T>) -> Vec<T> {
    let capacity = next_capacity(values.len());
    std::mem::replace(values, Vec::with_capacity(capacity))
}

/// The filled offsets, replaced by `[0]` with room for the next batch.
fn take_offsets(offsets: &mut Vec<i32>) -> Vec<i32> {
    let mut fresh = Vec::with_capacity(next_capacity(offsets.len()));
    fresh.push(0);
    std::mem::replace(offsets, fresh)
}

fn offsets_buffer(offsets: Vec<i32>) -> OffsetBuffer<i32> {
    OffsetBuffer::new(offsets.into())
}

impl<T: ArrowPrimitiveType> Primitives<T> {
    fn new(data_type: &DataType) -> Self {
        Self { data_type: data_type.clone(), values: Vec::new(), nulls: NullBufferBuilder::new(0) }
    }

    #[inline]
    fn push(&mut self, value: T::Native) {
        self.values.push(value);
        self.nulls.append_non_null();
    }

    fn append_null(&mut self) {
        self.values.push(T::Native::default());
        self.nulls.append_null();
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let values = take_sized(&mut self.values);
        let array = PrimitiveArray::<T>::try_new(values.into(), self.nulls.finish())?;
        Ok(Arc::new(array.with_data_type(self.data_type.clone())))
    }
}

impl Column {
    fn new(nullable: bool, data_type: &DataType) -> Self {
        let values = match data_type {
            DataType::Utf8 => Values::Utf8(Utf8Values::new()),
            DataType::Boolean => {
                Values::Boolean { values: BooleanBufferBuilder::new(0), nulls: NullBufferBuilder::new(0) }
            }
            DataType::Int8 => Values::Int8(Primitives::new(data_type)),
            DataType::Int16 => Values::Int16(Primitives::new(data_type)),
            DataType::Int32 => Values::Int32(Primitives::new(data_type)),
            DataType::Int64 => Values::Int64(Primitives::new(data_type)),
            DataType::Float32 => Values::Float32(Primitives::new(data_type)),
            DataType::Float64 => Values::Float64(Primitives::new(data_type)),
            DataType::Date32 => Values::Date32(Primitives::new(data_type)),
            DataType::Timestamp(_, zone) => Values::Timestamp {
                values: Primitives::new(data_type),
                // arrow-json reads zone-less timestamps as UTC; a bad zone fails the decoder
                // at construction there, and here falls back to it.
                zone: zone.as_deref().and_then(|zone| zone.parse().ok()),
            },
            DataType::Struct(fields) => Values::Struct(Box::new(StructColumn::new(fields))),
            DataType::List(element) => Values::List(Box::new(ListColumn {
                element: element.clone(),
                offsets: vec![0],
                child: Column::new(element.is_nullable(), element.data_type()),
                nulls: NullBufferBuilder::new(0),
            })),
            DataType::Map(entries, ordered) => {
                let DataType::Struct(kv) = entries.data_type() else { unreachable!("checked by supported()") };
                Values::Map(Box::new(MapColumn {
                    entries: entries.clone(),
                    ordered: *ordered,
                    offsets: vec![0],
                    keys: Utf8Values::new(),
                    values: Column::new(kv[1].is_nullable(), kv[1].data_type()),
                    nulls: NullBufferBuilder::new(0),
                }))
            }
            other => unreachable!("{other} is refused by supported()"),
        };
        Self { nullable, values }
    }

    /// A null for this row: `masked` when it only pads under a null parent. arrow-json accepts a
    /// masked null in a non-nullable primitive, but in no non-nullable nested column.
    fn append_null(&mut self, masked: bool, cursor: &Cursor<'_>) -> Decoded<()> {
        let nested = matches!(self.values, Values::Struct(_) | Values::List(_) | Values::Map(_));
        if !self.nullable && (nested || !masked) {
            return Err(cursor.reject("a value in a non-nullable column"));
        }
        match &mut self.values {
            Values::Utf8(v) => v.append_null(),
            Values::Boolean { values, nulls } => {
                values.append(false);
                nulls.append_null();
            }
            Values::Int8(v) => v.append_null(),
            Values::Int16(v) => v.append_null(),
            Values::Int32(v) => v.append_null(),
            Values::Int64(v) => v.append_null(),
            Values::Float32(v) => v.append_null(),
            Values::Float64(v) => v.append_null(),
            Values::Date32(v) => v.append_null(),
            Values::Timestamp { values, .. } => values.append_null(),
            Values::Struct(s) => {
                for child in &mut s.children {
                    child.append_null(true, cursor)?;
                }
                s.nulls.append_null();
            }
            Values::List(l) => {
                l.offsets.push(*l.offsets.last().expect("offsets start with 0"));
                l.nulls.append_null();
            }
            Values::Map(m) => {
                m.offsets.push(*m.offsets.last().expect("offsets start with 0"));
                m.nulls.append_null();
            }
        }
        Ok(())
    }

    /// Reads the value at the cursor into this column. A string for a string column, the most
    /// common value here, skips the general dispatch, whose stack frame and register saves
    /// cost more than copying a short string.
    #[inline(always)]
    fn parse_value(&mut self, cursor: &mut Cursor<'_>) -> Decoded<()> {
        if let Values::Utf8(values) = &mut self.values
            && cursor.peek() == Some(b'"')
        {
            return values.parse(cursor);
        }
        self.parse(cursor)
    }

    /// Reads the value at the cursor into this column.
    fn parse(&mut self, cursor: &mut Cursor<'_>) -> Decoded<()> {
        if cursor.peek() == Some(b'n') {
            cursor.literal(b"null")?;
            return self.append_null(false, cursor);
        }
        match &mut self.values {
            Values::Utf8(v) => v.parse(cursor)?,
            Values::Boolean { values, nulls } => {
                let value = match cursor.peek() {
                    Some(b't') => cursor.literal(b"true").map(|_| true)?,
                    Some(b'f') => cursor.literal(b"false").map(|_| false)?,
                    _ => return Err(cursor.reject("a boolean")),
                };
                values.append(value);
                nulls.append_non_null();
            }
            Values::Int8(v) => v.push(integer(cursor)?),
            Values::Int16(v) => v.push(integer(cursor)?),
            Values::Int32(v) => v.push(integer(cursor)?),
            Values::Int64(v) => v.push(integer(cursor)?),
            Values::Float32(v) => v.push(float(cursor)?),
            Values::Float64(v) => v.push(double(cursor)?),
            Values::Date32(v) => {
                if cursor.peek() != Some(b'"') {
                    return Err(cursor.reject("a date string"));
                }
                let date = Date32Type::parse(cursor.text()?);
                v.push(date.ok_or_else(|| cursor.reject("a date"))?);
            }
            Values::Timestamp { values, zone } => {
                if cursor.peek() != Some(b'"') {
                    return Err(cursor.reject("a timestamp string"));
                }
                let offset = cursor.pos;
                let raw = cursor.raw_string()?;
                // A `Z` timestamp names its instant whatever the column's zone.
                let micros = match utc_micros(raw) {
                    Some(micros) => Ok(micros),
                    None => {
                        let text = utf8(raw, offset)?;
                        match zone {
                            Some(zone) => string_to_datetime(zone, text).map(|t| t.timestamp_micros()),
                            None => string_to_datetime(&chrono::Utc, text).map(|t| t.timestamp_micros()),
                        }
                    }
                };
                values.push(micros.map_err(|_| cursor.reject("a timestamp"))?);
            }
            Values::Struct(s) => s.parse_object(cursor)?,
            Values::List(l) => {
                cursor.each(b'[', b']', |cursor| l.child.parse_value(cursor))?;
                l.offsets.push(offset(l.child.len(), cursor)?);
                l.nulls.append_non_null();
            }
            Values::Map(m) => {
                cursor.each(b'{', b'}', |cursor| {
                    m.keys.parse(cursor)?;
                    cursor.colon()?;
                    m.values.parse_value(cursor)
                })?;
                m.offsets.push(offset(m.keys.offsets.len() - 1, cursor)?);
                m.nulls.append_non_null();
            }
        }
        Ok(())
    }

    /// Values (rows, list elements or map entries) held so far.
    fn len(&self) -> usize {
        match &self.values {
            Values::Utf8(v) => v.offsets.len() - 1,
            Values::Boolean { values, .. } => values.len(),
            Values::Int8(v) => v.values.len(),
            Values::Int16(v) => v.values.len(),
            Values::Int32(v) => v.values.len(),
            Values::Int64(v) => v.values.len(),
            Values::Float32(v) => v.values.len(),
            Values::Float64(v) => v.values.len(),
            Values::Date32(v) => v.values.len(),
            Values::Timestamp { values, .. } => values.values.len(),
            Values::Struct(s) => s.nulls.len(),
            Values::List(l) => l.offsets.len() - 1,
            Values::Map(m) => m.offsets.len() - 1,
        }
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        match &mut self.values {
            Values::Utf8(v) => v.finish(),
            Values::Boolean { values, nulls } => Ok(Arc::new(BooleanArray::new(values.finish(), nulls.finish()))),
            Values::Int8(v) => v.finish(),
            Values::Int16(v) => v.finish(),
            Values::Int32(v) => v.finish(),
            Values::Int64(v) => v.finish(),
            Values::Float32(v) => v.finish(),
            Values::Float64(v) => v.finish(),
            Values::Date32(v) => v.finish(),
            Values::Timestamp { values, .. } => values.finish(),
            Values::Struct(s) => {
                let nulls = s.nulls.finish();
                let children = s.finish_children()?;
                Ok(Arc::new(StructArray::try_new(s.fields.clone(), children, nulls)?))
            }
            Values::List(l) => {
                let offsets = take_offsets(&mut l.offsets);
                let values = l.child.finish()?;
                Ok(Arc::new(ListArray::try_new(l.element.clone(), offsets_buffer(offsets), values, l.nulls.finish())?))
            }
            Values::Map(m) => {
                let DataType::Struct(kv) = m.entries.data_type() else { unreachable!("checked by supported()") };
                let entries = StructArray::try_new(kv.clone(), vec![m.keys.finish()?, m.values.finish()?], None)?;
                let offsets = take_offsets(&mut m.offsets);
                let array = MapArray::try_new(
                    m.entries.clone(),
                    offsets_buffer(offsets),
                    entries,
                    m.nulls.finish(),
                    m.ordered,
                )?;
                Ok(Arc::new(array))
            }
        }
    }
}

/// Microseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, the form producers
/// write most, read here at under half of arrow-cast's cost. Anything else (offsets, a
/// space for the `T`, leap seconds, impossible dates) is `None`, left to arrow-cast. Digits
/// past the sixth of the fraction are dropped, as arrow-cast's nanoseconds become micros.
fn utc_micros(text: &[u8]) -> Option<i64> {
    let [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1, b'T', h0, h1, b':', i0, i1, b':', s0, s1, rest @ ..] = text else {
        return None;
    };
    let (b'Z', fraction) = rest.split_last()? else { return None };
    let number = |digits: &[u8]| {
        digits
            .iter()
            .try_fold(0i64, |value, digit| digit.is_ascii_digit().then(|| value * 10 + i64::from(digit - b'0')))
    };
    let year = number(&[*y0, *y1, *y2, *y3])?;
    let month = number(&[*m0, *m1])?;
    let day = number(&[*d0, *d1])?;
    let hour = number(&[*h0, *h1])?;
    let minute = number(&[*i0, *i1])?;
    let second = number(&[*s0, *s1])?;
    let micros = match fraction {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            let value = number(digits)?;
            let scale = 10i64.pow(digits.len().abs_diff(6) as u32);
            if digits.len() > 6 { value / scale } else { value * scale }
        }
        _ => return None,
    };
    // chrono checks the calendar (month lengths, leap years) and counts the days.
    let date = chrono::NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month as u32, day as u32)?;
    let time = date.and_hms_opt(hour as u32, minute as u32, second as u32)?;
    Some(time.and_utc().timestamp() * 1_000_000 + micros)
}

/// An integer column's value: a JSON integer in the column's range.
#[inline(always)]
fn integer<N: TryFrom<i64>>(cursor: &mut Cursor<'_>) -> Decoded<N> {
    let start = cursor.pos;
    if let Some(value) = cursor.small_integer().and_then(|value| N::try_from(value).ok()) {
        return Ok(value);
    }
    // Out of the column's range after all: the general path reads it again and refuses it.
    cursor.pos = start;
    any_integer(cursor)
}

#[inline(never)]
fn any_integer<N: TryFrom<i64>>(cursor: &mut Cursor<'_>) -> Decoded<N> {
    let number = cursor.number()?;
    number.integer.and_then(|value| N::try_from(value).ok()).ok_or_else(|| cursor.reject("an integer in range"))
}

/// A double column's value: a short decimal (prices, rates) read at once, else as [`float`].
#[inline(always)]
fn double(cursor: &mut Cursor<'_>) -> Decoded<f64> {
    match cursor.short_decimal() {
        Some(value) => Ok(value),
        None => float(cursor),
    }
}

/// A float column's value: any finite JSON number, parsed by the parser arrow-json uses.
fn float<F: lexical_core::FromLexical + Into<f64> + Copy>(cursor: &mut Cursor<'_>) -> Decoded<F> {
    let number = cursor.number()?;
    let value = lexical_core::parse::<F>(number.text).ok().filter(|v| (*v).into().is_finite());
    value.ok_or_else(|| cursor.reject("a finite number"))
}

impl StructColumn {
    fn new(fields: &Fields) -> Self {
        Self {
            fields: fields.clone(),
            children: fields.iter().map(|f| Column::new(f.is_nullable(), f.data_type())).collect(),
            seen: vec![false; fields.len()],
            index: fields.iter().enumerate().rev().map(|(i, f)| (f.name().as_bytes().into(), i)).collect(),
            plain_keys: fields
                .iter()
                .map(|f| {
                    let name = f.name().as_bytes();
                    let plain = name.iter().all(|b| *b >= 0x20 && *b != b'"' && *b != b'\\');
                    plain.then(|| [name, b"\":"].concat().into())
                })
                .collect(),
            nulls: NullBufferBuilder::new(0),
        }
    }

    /// The declared field named `key`; `expected` (the one after the last field read) is
    /// tried first, since producers write fields in a steady order.
    #[inline]
    fn field(&self, key: &[u8], expected: usize) -> Option<usize> {
        match self.fields.get(expected) {
            Some(field) if field.name().as_bytes() == key => Some(expected),
            _ => self.index.get(key).copied(),
        }
    }

    /// Steps over the key and colon at the cursor if they are exactly the `expected` field's
    /// name and `:` with nothing between (compact JSON); anything else takes the general path.
    #[inline]
    fn expected_key(&self, cursor: &mut Cursor<'_>, expected: usize) -> Option<usize> {
        let key = self.plain_keys.get(expected)?.as_deref()?;
        let start = cursor.pos + 1;
        let found = cursor.bytes.get(start..start + key.len())?;
        same_short(found, key).then(|| {
            cursor.pos = start + key.len();
            expected
        })
    }

    /// Reads the object at the cursor as one row (or element) of this struct.
    fn parse_object(&mut self, cursor: &mut Cursor<'_>) -> Decoded<()> {
        self.seen.fill(false);
        let mut expected = 0;
        let mut present = 0;
        cursor.each(b'{', b'}', |cursor| {
            if cursor.peek() != Some(b'"') {
                return Err(cursor.reject("a field name"));
            }
            let field = match self.expected_key(cursor, expected) {
                Some(index) => {
                    cursor.skip_whitespace();
                    Some(index)
                }
                None => {
                    let key = cursor.raw_string()?;
                    let field = self.field(key, expected);
                    cursor.colon()?;
                    field
                }
            };
            let Some(index) = field else {
                return cursor.skip_value(0);
            };
            // arrow-json keeps the last of duplicate keys; rare enough to leave to it.
            if std::mem::replace(&mut self.seen[index], true) {
                return Err(cursor.reject("no duplicate field"));
            }
            expected = index + 1;
            present += 1;
            self.children[index].parse_value(cursor)
        })?;
        // Producers that write nulls out (serde does) leave no field absent: skip the pass.
        if present < self.children.len() {
            for (child, seen) in self.children.iter_mut().zip(&self.seen) {
                if !seen {
                    child.append_null(false, cursor)?;
                }
            }
        }
        self.nulls.append_non_null();
        Ok(())
    }

    fn finish_children(&mut self) -> Result<Vec<ArrayRef>, ArrowError> {
        self.children.iter_mut().map(Column::finish).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use arrow_json::ReaderBuilder;
    use arrow_schema::{Field, Schema};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::schema::TableSchema;

    /// Every type the direct decoder takes, nested every way the schema language allows.
    const SCHEMA: &str = r#"{"fields": [
        {"name": "id", "type": "string", "nullable": false},
        {"name": "at", "type": "timestamp"},
        {"name": "day", "type": "date"},
        {"name": "b", "type": "byte"},
        {"name": "s", "type": "short"},
        {"name": "i", "type": "integer"},
        {"name": "n", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "ok", "type": "boolean"},
        {"name": "device", "type": {"struct": [
            {"name": "os", "type": "string", "nullable": false},
            {"name": "v", "type": "integer"},
            {"name": "inner", "type": {"struct": [{"name": "x", "type": "long"}]}}
        ]}},
        {"name": "items", "type": {"list": {"struct": [
            {"name": "sku", "type": "string"},
            {"name": "tags", "type": {"list": "string"}}
        ]}}},
        {"name": "flags", "type": {"list": "string"}},
        {"name": "attrs", "type": {"map": "string"}},
        {"name": "scores", "type": {"map": "double"}}
    ]}"#;

    /// Lines that exercise escapes, whitespace, field order, unknown fields, nulls and absences.
    const LINES: &[&str] = &[
        r#"{"id":"a","at":"2026-05-16T10:00:00.5Z","day":"2026-05-16","b":-128,"s":32767,"i":-7,"n":9223372036854775807,"f":1.5,"d":-0.0,"ok":true,"device":{"os":"ios","v":17,"inner":{"x":-9223372036854775808}},"items":[{"sku":"S1","tags":["x","y"]},{"sku":null,"tags":[]}],"flags":["p"],"attrs":{"k":"v","k":"again"},"scores":{"a":1e3,"b":null}}"#,
        r#"  { "ok" : false , "id" : "tab\there \"quoted\" back\\slash \/ \b\f\n\r \u00e9\u4e2d \ud83d\ude00" , "d" : 12345678901234567890 , "f" : 3.4028235e38 }  "#,
        r#"{"id":"b","device":null,"items":null,"flags":null,"attrs":null,"at":null,"ok":null}"#,
        r#"{"id":"c","unknown":{"deep":[1,2.5e-3,{"z":[null,true,false,"s\u0041"]}],"e":{}},"other":[],"n":0}"#,
        r#"{"id":"d","device":{"os":"android"},"items":[{}],"flags":[null,"q"],"attrs":{}}"#,
        r#"{"id":"e","at":"2026-05-16 10:00:00+02:00","day":"2026-05-16","d":1E-7,"i":2147483647}"#,
        r#"{"id":"\u0000ctl","note":"raw	tab","d":0.1,"f":0.1}"#,
        r#"{"id":"f"}{"id":"g"}"#,
        "{\"id\":\"h\",\r\n\"n\":-1}",
        r#"{"device":{"inner":null,"v":null,"os":"x"},"id":"é"}"#,
    ];

    fn schema() -> SchemaRef {
        TableSchema::parse(SCHEMA, "test").unwrap().decoded
    }

    fn arrow_json(schema: &SchemaRef, data: &[u8], batch_rows: usize) -> Option<Vec<RecordBatch>> {
        let run = || -> Result<Vec<RecordBatch>, ArrowError> {
            let mut decoder = ReaderBuilder::new(schema.clone()).with_batch_size(batch_rows).build_decoder()?;
            let mut batches = Vec::new();
            let mut rest = data;
            loop {
                let consumed = decoder.decode(rest)?;
                rest = &rest[consumed..];
                match decoder.flush()? {
                    Some(batch) => batches.push(batch),
                    None if consumed == 0 => break,
                    None => {}
                }
            }
            Ok(batches)
        };
        // A panic in arrow-json counts as a refusal: the direct decoder must then refuse too.
        catch_unwind(AssertUnwindSafe(run)).ok().and_then(Result::ok)
    }

    fn assert_same_as_arrow_json(schema: &SchemaRef, data: &[u8], batch_rows: usize) {
        let direct = DirectDecoder::new(schema.clone(), batch_rows).unwrap().decode(data);
        let direct = direct.unwrap_or_else(|r| panic!("refused at {} ({}): {}", r.offset, r.reason, show(data)));
        let expected = arrow_json(schema, data, batch_rows).expect("arrow-json accepts it");
        assert_eq!(direct, expected, "{}", show(data));
    }

    fn show(data: &[u8]) -> String {
        String::from_utf8_lossy(data).into_owned()
    }

    #[test]
    fn every_line_decodes_as_arrow_json_decodes_it() {
        let schema = schema();
        for line in LINES {
            assert_same_as_arrow_json(&schema, line.as_bytes(), 4);
        }
        let all = LINES.join("\n");
        for batch_rows in [1, 3, 1024] {
            assert_same_as_arrow_json(&schema, all.as_bytes(), batch_rows);
        }
    }

    #[test]
    fn the_reference_workload_decodes_as_arrow_json_decodes_it() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/events.schema.json");
        let schema = TableSchema::from_path(std::path::Path::new(path)).unwrap().decoded;
        for seed in 1..4 {
            let data = crate::sample::ndjson_object(seed, 0, 128 * 1024);
            assert_same_as_arrow_json(&schema, &data, 100);
        }
    }

    #[test]
    fn input_arrow_json_would_refuse_or_read_differently_is_refused() {
        let schema = schema();
        let decoder = DirectDecoder::new(schema.clone(), 8).unwrap();
        for bad in [
            r#"{"id":"a""#,
            r#"{"id":"a",}"#,
            r#"{"id":"a"} x"#,
            r#"["id"]"#,
            r#"null"#,
            r#"{"n":1}"#,                     // non-nullable id missing
            r#"{"id":null}"#,                 // non-nullable id null
            r#"{"id":"a","device":{"v":1}}"#, // non-nullable os missing in a present struct
            r#"{"id":"a","n":"7"}"#,          // arrow-json coerces; left to it
            r#"{"id":7}"#,                    // a number for a string
            r#"{"id":"a","i":2147483648}"#,   // out of range
            r#"{"id":"a","n":1.0}"#,          // a float for an integer: left to arrow-json
            r#"{"id":"a","n":01}"#,           // leading zero
            r#"{"id":"a","d":1.}"#,           // no digits after the point
            r#"{"id":"a","d":1e999}"#,        // infinite
            r#"{"id":"a","at":1}"#,           // epoch number: left to arrow-json
            r#"{"id":"a","at":"yesterday"}"#, // not a timestamp
            r#"{"id":"a","id":"b"}"#,         // duplicate: arrow-json keeps the last
            r#"{"id":"\ud83d"}"#,             // lone surrogate
            r#"{"id":"\x"}"#,                 // bad escape
            r#"{"id":"a","ok":tru}"#,
            r#"{"id":"a","flags":"p"}"#,
        ] {
            assert!(decoder.decode(bad.as_bytes()).is_err(), "accepted {bad}");
        }
        assert!(decoder.decode(b"{\"id\":\"\xff\"}").is_err(), "accepted invalid UTF-8");
    }

    /// The safety property the fallback rests on: whatever the direct decoder accepts,
    /// arrow-json accepts too, with the same batches.
    #[test]
    fn mutated_input_is_refused_or_decoded_exactly_as_arrow_json_does() {
        let schema = schema();
        let decoder = DirectDecoder::new(schema.clone(), 3).unwrap();
        let alphabet = b"{}[]\":,\\ \n0123456789.-+eEtrufalsn\"abu";
        let base = LINES.join("\n");
        // INLET_FUZZ_ITERATIONS and INLET_FUZZ_SEED widen the search when run by hand.
        let setting =
            |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
        let mut rng = StdRng::seed_from_u64(setting("INLET_FUZZ_SEED", 7));
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..setting("INLET_FUZZ_ITERATIONS", 3000) {
            let mut data = base.clone().into_bytes();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..data.len());
                match rng.random_range(0..3) {
                    0 => {
                        data.remove(at);
                    }
                    1 => data.insert(at, alphabet[rng.random_range(0..alphabet.len())]),
                    _ => data[at] = alphabet[rng.random_range(0..alphabet.len())],
                }
            }
            match decoder.decode(&data) {
                Ok(direct) => {
                    accepted += 1;
                    let expected = arrow_json(&schema, &data, 3);
                    if expected.is_some() && escapes_arrow_json_misreads(&data) {
                        continue;
                    }
                    assert_eq!(Some(direct), expected, "{}", show(&data));
                }
                Err(_) => refused += 1,
            }
        }
        // Both outcomes must actually be exercised for the property to mean anything.
        assert!(accepted > 100 && refused > 100, "accepted {accepted}, refused {refused}");
    }

    /// arrow-json 59 combines a surrogate pair with `|` where `+` is due, which is only right
    /// below U+20000 (high surrogates up to \uD83F).
    fn escapes_arrow_json_misreads(data: &[u8]) -> bool {
        data.windows(6).any(|w| {
            w.starts_with(b"\\u")
                && std::str::from_utf8(&w[2..])
                    .ok()
                    .and_then(|h| u16::from_str_radix(h, 16).ok())
                    .is_some_and(|high| (0xD840..=0xDBFF).contains(&high))
        })
    }

    #[test]
    fn utc_timestamps_are_read_as_arrow_cast_reads_them() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut fast = 0;
        for _ in 0..20_000 {
            let digits: usize = rng.random_range(0..=10);
            let fraction: String = (0..digits).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect();
            let text = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}{fraction}Z",
                rng.random_range(0..=9999),
                rng.random_range(0..=13),
                rng.random_range(0..=32),
                rng.random_range(0..=24),
                rng.random_range(0..=60),
                rng.random_range(0..=60),
                if digits > 0 || rng.random_bool(0.1) { "." } else { "" },
            );
            let expected = string_to_datetime(&chrono::Utc, &text).ok().map(|t| t.timestamp_micros());
            match utc_micros(text.as_bytes()) {
                Some(micros) => {
                    fast += 1;
                    assert_eq!(Some(micros), expected, "{text}");
                }
                // Left to arrow-cast, which decides: only rarities may take that way.
                None => assert!(expected.is_none() || text.contains(":60") || digits == 10, "{text} -> {expected:?}"),
            }
        }
        assert!(fast > 10_000, "{fast}");
        for text in
            ["1970-01-01T00:00:00Z", "2000-02-29T23:59:59.999999999Z", "1969-12-31T23:59:59.5Z", "0000-03-01T00:00:00Z"]
        {
            let expected = string_to_datetime(&chrono::Utc, text).unwrap().timestamp_micros();
            assert_eq!(utc_micros(text.as_bytes()), Some(expected), "{text}");
        }
        for text in
            ["2026-05-16T10:00:00+00:00", "2026-05-16 10:00:00Z", "2026-02-29T00:00:00Z", "2026-05-16T10:00:00.Z"]
        {
            assert_eq!(utc_micros(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn short_decimals_are_the_doubles_a_correct_parser_reads() {
        let mut rng = StdRng::seed_from_u64(9);
        let mut fast = 0;
        for _ in 0..50_000 {
            let magnitude = 10u64.pow(rng.random_range(1..=12));
            let integer: u64 = rng.random_range(0..magnitude);
            let fraction: String =
                (0..rng.random_range(0..=9)).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect();
            let sign = if rng.random_bool(0.2) { "-" } else { "" };
            let text =
                if fraction.is_empty() { format!("{sign}{integer}") } else { format!("{sign}{integer}.{fraction}") };
            let mut cursor = Cursor { bytes: text.as_bytes(), pos: 0, scratch: Vec::new() };
            if let Some(value) = cursor.short_decimal() {
                fast += 1;
                // std's parser rounds correctly, as lexical (arrow-json's) does.
                assert_eq!(value.to_bits(), text.parse::<f64>().unwrap().to_bits(), "{text}");
                assert_eq!(cursor.pos, text.len(), "{text}");
            }
        }
        assert!(fast > 30_000, "{fast}");
        // Past 15 digits, an exponent, or not JSON: left to the general path, nothing read.
        for text in ["9007199254740993", "1234567890.1234567", "1e5", "2.5E-3", "01.5", "1.", ".5", "-", "-x"] {
            let mut cursor = Cursor { bytes: text.as_bytes(), pos: 0, scratch: Vec::new() };
            assert_eq!((cursor.short_decimal(), cursor.pos), (None, 0), "{text}");
        }
        let schema = Arc::new(Schema::new(vec![Field::new("d", DataType::Float64, true)]));
        let lines = [
            "0",
            "-0",
            "-0.0",
            "0.1",
            "636.82",
            "123456789012345",
            "0.000000000000001",
            "12345678901234567890",
            "1e-7",
        ]
        .map(|d| format!("{{\"d\":{d}}}"))
        .join("\n");
        assert_same_as_arrow_json(&schema, lines.as_bytes(), 4);
    }

    #[test]
    fn small_integers_and_their_neighbours_read_as_arrow_json_reads_them() {
        let fields = vec![Field::new("n", DataType::Int64, true), Field::new("i", DataType::Int32, true)];
        let schema = Arc::new(Schema::new(fields));
        let decoder = DirectDecoder::new(schema.clone(), 8).unwrap();
        for n in
            ["0", "7", "-5", "123456789012345678", "1234567890123456789", "9223372036854775807", "-9223372036854775808"]
        {
            assert_same_as_arrow_json(&schema, format!("{{\"n\":{n}}}").as_bytes(), 4);
        }
        for i in ["0", "42", "-5", "2147483647", "-2147483648"] {
            assert_same_as_arrow_json(&schema, format!("{{\"i\":{i},\"n\":{i}}}").as_bytes(), 4);
        }
        for (column, bad) in [
            ("n", "9223372036854775808"),
            ("i", "2147483648"),
            ("i", "123456789012345678"),
            ("n", "01"),
            ("n", "1.0"),
            ("n", "1e3"),
        ] {
            let line = format!("{{\"{column}\":{bad}}}");
            // Refused here, the object goes to arrow-json, which decides (it reads `01` as 1).
            assert!(decoder.decode(line.as_bytes()).is_err(), "{line}");
        }
    }

    #[test]
    fn strings_either_side_of_the_short_path_decode_alike() {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
        // Plain and escaped strings of every length up to past the two 16-byte steps, ending
        // just before, at and after each, and at the very end of the input.
        let mut lines = Vec::new();
        for len in 0..70 {
            let plain: String = (0..len).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            lines.push(format!("{{\"s\":\"{plain}\"}}"));
            lines.push(format!("{{\"s\":\"{plain}\\n\"}}"));
            lines.push(format!("{{\"s\":\"\\t{plain}\"}}"));
            lines.push(format!("{{\"s\":\"é{plain}\"}}"));
        }
        for line in &lines {
            assert_same_as_arrow_json(&schema, line.as_bytes(), 4);
        }
        assert_same_as_arrow_json(&schema, lines.join("\n").as_bytes(), 7);
    }

    #[test]
    fn surrogate_pairs_beyond_u20000_decode_to_the_right_character() {
        let schema = schema();
        let line = br#"{"id":"\ud840\udc00 \udbff\udfff \ud83d\ude00"}"#;
        let batches = DirectDecoder::new(schema, 8).unwrap().decode(line).unwrap();
        let id = batches[0].column(0).as_any().downcast_ref::<StringArray>().unwrap().value(0);
        assert_eq!(id, "\u{20000} \u{10FFFF} \u{1F600}");
    }

    #[test]
    fn the_short_scan_finds_the_first_quote_or_backslash_anywhere() {
        for len in 0..80 {
            for at in 0..=len {
                for mark in [b'"', b'\\'] {
                    // Bytes either side of the marks' values, and multi-byte UTF-8, around it.
                    let mut bytes: Vec<u8> = (0..len).map(|i| [b'!', b'#', b'[', b']', 0xC3, 0xA9][i % 6]).collect();
                    if at < len {
                        bytes[at] = mark;
                        if at + 3 < len {
                            bytes[at + 3] = b'"';
                        }
                    }
                    let expected = bytes.iter().position(|b| *b == b'"' || *b == b'\\');
                    assert_eq!(quote_or_backslash(&bytes), expected, "len {len}, mark at {at}");
                    if len == 8 {
                        assert_eq!(first_mark_in_word(&bytes), expected, "word, mark at {at}");
                    }
                }
            }
        }
    }

    #[test]
    fn short_comparisons_see_every_byte() {
        for len in 0..32 {
            let a: Vec<u8> = (0..len as u8).collect();
            assert!(same_short(&a, &a.clone()));
            for at in 0..len {
                let mut b = a.clone();
                b[at] ^= 0x40;
                assert!(!same_short(&a, &b), "len {len}, differs at {at}");
            }
        }
    }

    #[test]
    fn schemas_with_types_it_does_not_handle_are_left_to_arrow_json() {
        let schema = TableSchema::parse(r#"{"fields": [{"name": "blob", "type": "binary"}]}"#, "t").unwrap();
        assert!(DirectDecoder::new(schema.decoded, 8).is_none());
    }
}
