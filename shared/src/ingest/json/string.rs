//! String columns (and map keys), and binary columns: offsets and bytes built as the text is
//! read.

use std::sync::Arc;

use arrow_array::builder::NullBufferBuilder;
use arrow_array::{ArrayRef, BinaryArray, StringArray};
use arrow_schema::ArrowError;

use super::Decoded;
use super::column::{offset, offsets_buffer, take_offsets, take_sized};
use super::cursor::{Cursor, SCAN_STEP, first_mark};
use crate::schema::BinaryEncoding;

pub(super) struct Utf8Values {
    pub(super) offsets: Vec<i32>,
    pub(super) bytes: Vec<u8>,
    pub(super) nulls: NullBufferBuilder,
}

impl Utf8Values {
    pub(super) fn new() -> Self {
        Self { offsets: vec![0], bytes: Vec::new(), nulls: NullBufferBuilder::new(0) }
    }

    /// Reads the string at the cursor. Nine in ten strings here are under 32 bytes without
    /// an escape (enums, ids, tags, keys; four in five under 16): those take a few loads and
    /// compares inline, where the general path costs two calls, a `memcpy` call and their
    /// register saves.
    #[inline(always)]
    pub(super) fn parse(&mut self, cursor: &mut Cursor<'_>) -> Decoded<()> {
        if self.short(cursor) {
            return Ok(());
        }
        self.parse_any(cursor)
    }

    /// Appends the string at the cursor if it is plain (no escape) and closes within two scan
    /// steps (32 bytes on x86_64) of its opening quote; false, with nothing read, otherwise.
    #[inline(always)]
    pub(super) fn short(&mut self, cursor: &mut Cursor<'_>) -> bool {
        let start = cursor.pos + 1;
        // The window may reach past the line: the first mark in it is a line break at the latest.
        let (Some(b'"'), Some(chunk)) = (cursor.peek(), cursor.object.get(start..start + 2 * SCAN_STEP)) else {
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
    pub(super) fn parse_any(&mut self, cursor: &mut Cursor<'_>) -> Decoded<()> {
        cursor.string_into(&mut self.bytes)?;
        self.offsets.push(offset(self.bytes.len(), cursor)?);
        self.nulls.append_non_null();
        Ok(())
    }

    pub(super) fn append_null(&mut self) {
        append_null(&mut self.offsets, &mut self.nulls);
    }

    /// Appends the JSON value at the cursor (any type, validated as the rest of the line is)
    /// as its text, exactly as written: a `json` column.
    pub(super) fn parse_json_text(&mut self, cursor: &mut Cursor<'_>) -> Decoded<()> {
        let start = cursor.pos;
        cursor.skip_value(0)?;
        self.bytes.extend_from_slice(&cursor.bytes[start..cursor.pos]);
        self.offsets.push(offset(self.bytes.len(), cursor)?);
        self.nulls.append_non_null();
        Ok(())
    }

    /// The bytes of value `index`.
    pub(super) fn value(&self, index: usize) -> &[u8] {
        &self.bytes[self.offsets[index] as usize..self.offsets[index + 1] as usize]
    }

    pub(super) fn truncate(&mut self, len: usize) {
        truncate(&mut self.offsets, &mut self.bytes, &mut self.nulls, len);
    }

    pub(super) fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
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
        // SAFETY: `try_new` would only re-validate UTF-8, a second full pass over the text.
        // Every line was checked as UTF-8 before its values were read (the whole object at
        // once, or line by line when the whole is not valid), and the values of refused lines
        // were truncated away; every value is either a slice of a line between ASCII
        // delimiters (quotes, backslash escapes, or a whole JSON value, which starts and ends
        // with ASCII), so it starts and ends on character
        // boundaries, or text `escape_into` wrote from a `char`. Offsets are monotonic (`OffsetBuffer::new`
        // checks), end at the buffer's length and match the nulls in length (checked above).
        let array = unsafe { StringArray::new_unchecked(offsets, bytes.into(), nulls) };
        Ok(Arc::new(array))
    }
}

/// A binary column: bytes written as base64 or hex text, decoded as they are read.
pub(super) struct BinaryValues {
    encoding: BinaryEncoding,
    pub(super) offsets: Vec<i32>,
    bytes: Vec<u8>,
    nulls: NullBufferBuilder,
}

impl BinaryValues {
    pub(super) fn new(encoding: BinaryEncoding) -> Self {
        Self { encoding, offsets: vec![0], bytes: Vec::new(), nulls: NullBufferBuilder::new(0) }
    }

    /// Reads the string at the cursor and appends the bytes it encodes.
    pub(super) fn parse(&mut self, cursor: &mut Cursor<'_>) -> Decoded<()> {
        if cursor.peek() != Some(b'"') {
            return Err(cursor.reject("a string of encoded bytes"));
        }
        let start = cursor.pos;
        let text = cursor.raw_string()?;
        let decoded = match self.encoding {
            BinaryEncoding::Base64 => base64_into(text, &mut self.bytes),
            BinaryEncoding::Hex => hex_into(text, &mut self.bytes),
        };
        if !decoded {
            self.bytes.truncate(*self.offsets.last().expect("offsets start with 0") as usize);
            cursor.pos = start;
            return Err(cursor.reject(match self.encoding {
                BinaryEncoding::Base64 => "padded base64 (RFC 4648)",
                BinaryEncoding::Hex => "hex digits, two per byte",
            }));
        }
        self.offsets.push(offset(self.bytes.len(), cursor)?);
        self.nulls.append_non_null();
        Ok(())
    }

    pub(super) fn append_null(&mut self) {
        append_null(&mut self.offsets, &mut self.nulls);
    }

    pub(super) fn truncate(&mut self, len: usize) {
        truncate(&mut self.offsets, &mut self.bytes, &mut self.nulls, len);
    }

    pub(super) fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let offsets = offsets_buffer(take_offsets(&mut self.offsets));
        let bytes = take_sized(&mut self.bytes);
        Ok(Arc::new(BinaryArray::try_new(offsets, bytes.into(), self.nulls.finish())?))
    }
}

/// A null in a column of variable-length values: an empty value, marked null.
fn append_null(offsets: &mut Vec<i32>, nulls: &mut NullBufferBuilder) {
    offsets.push(*offsets.last().expect("offsets start with 0"));
    nulls.append_null();
}

/// Keeps the first `len` values of a column of variable-length values.
fn truncate(offsets: &mut Vec<i32>, bytes: &mut Vec<u8>, nulls: &mut NullBufferBuilder, len: usize) {
    offsets.truncate(len + 1);
    bytes.truncate(offsets[len] as usize);
    nulls.truncate(len);
}

/// Appends the bytes of standard, padded base64 `text` to `out`; false if it is not that.
fn base64_into(text: &[u8], out: &mut Vec<u8>) -> bool {
    if !text.len().is_multiple_of(4) {
        return false;
    }
    let sextet = |byte: u8| match byte {
        b'A'..=b'Z' => Some(byte - b'A'),
        b'a'..=b'z' => Some(byte - b'a' + 26),
        b'0'..=b'9' => Some(byte - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let quads = text.len() / 4;
    for (index, quad) in text.chunks_exact(4).enumerate() {
        let padding = if index + 1 == quads { quad.iter().rev().take_while(|&&b| b == b'=').count() } else { 0 };
        if padding > 2 {
            return false;
        }
        let mut bits = 0u32;
        for &byte in &quad[..4 - padding] {
            let Some(value) = sextet(byte) else { return false };
            bits = bits << 6 | u32::from(value);
        }
        bits <<= 6 * padding as u32;
        let bytes = bits.to_be_bytes();
        // Padding stands for bits that must be zero, or two texts would mean the same bytes.
        let kept = 3 - padding;
        if bytes[1 + kept..].iter().any(|&b| b != 0) {
            return false;
        }
        out.extend_from_slice(&bytes[1..1 + kept]);
    }
    true
}

/// Appends the bytes of hex `text` (either case) to `out`; false if it is not that.
fn hex_into(text: &[u8], out: &mut Vec<u8>) -> bool {
    if !text.len().is_multiple_of(2) {
        return false;
    }
    let nibble = |byte: u8| (byte as char).to_digit(16).map(|value| value as u8);
    for pair in text.chunks_exact(2) {
        let (Some(high), Some(low)) = (nibble(pair[0]), nibble(pair[1])) else { return false };
        out.push(high << 4 | low);
    }
    true
}
