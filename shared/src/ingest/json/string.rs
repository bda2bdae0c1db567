//! String columns (and map keys): offsets and bytes built as the text is read.

use std::sync::Arc;

use arrow_array::builder::NullBufferBuilder;
use arrow_array::{ArrayRef, StringArray};
use arrow_schema::ArrowError;

use super::Decoded;
use super::column::{offset, offsets_buffer, take_offsets, take_sized};
use super::cursor::{Cursor, SCAN_STEP, first_mark};

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
    pub(super) fn parse_any(&mut self, cursor: &mut Cursor<'_>) -> Decoded<()> {
        cursor.string_into(&mut self.bytes)?;
        self.offsets.push(offset(self.bytes.len(), cursor)?);
        self.nulls.append_non_null();
        Ok(())
    }

    pub(super) fn append_null(&mut self) {
        self.offsets.push(*self.offsets.last().expect("offsets start with 0"));
        self.nulls.append_null();
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
        // The object was checked as UTF-8 before
        // decoding; every value is either a slice of it between ASCII delimiters (quotes,
        // backslash escapes), so it starts and ends on character boundaries, or text
        // `escape_into` wrote from a `char`. Offsets are monotonic (`OffsetBuffer::new`
        // checks), end at the buffer's length and match the nulls in length (checked above).
        let array = unsafe { StringArray::new_unchecked(offsets, bytes.into(), nulls) };
        Ok(Arc::new(array))
    }
}
