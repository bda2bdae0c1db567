//! The JSON tokenizer: a position in one object's bytes, and the grammar read from there.
//! It knows nothing of Arrow; the column builders call it for the tokens they expect.

use super::{Decoded, Rejected, rejected};

/// Deepest nesting skipped inside fields the schema does not declare.
const MAX_SKIPPED_DEPTH: usize = 64;

/// The bytes of one object and a position in them.
pub(super) struct Cursor<'a> {
    /// What the cursor reads: the object up to the end of the current line.
    pub(super) bytes: &'a [u8],
    /// The whole object, for scans that read a fixed window ahead and stop at a line break
    /// anyway (a line break is a control character, which ends every plain run).
    pub(super) object: &'a [u8],
    pub(super) pos: usize,
    /// Unescaped keys and skipped strings.
    pub(super) scratch: Vec<u8>,
}

/// A JSON number: its text, and its value when it is an integer that fits `i64`.
pub(super) struct Number<'a> {
    pub(super) text: &'a [u8],
    pub(super) integer: Option<i64>,
}

impl<'a> Cursor<'a> {
    pub(super) fn reject(&self, reason: &'static str) -> Box<Rejected> {
        rejected(self.pos, reason)
    }

    #[inline]
    pub(super) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Steps over whitespace inside a row. A line break is not among it: a row is one line,
    /// so a value that goes on past the end of its line is refused.
    #[inline]
    pub(super) fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    #[inline]
    pub(super) fn eat(&mut self, byte: u8, reason: &'static str) -> Decoded<()> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.reject(reason))
        }
    }

    pub(super) fn literal(&mut self, text: &'static [u8]) -> Decoded<()> {
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
    pub(super) fn each(&mut self, open: u8, close: u8, mut item: impl FnMut(&mut Self) -> Decoded<()>) -> Decoded<()> {
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
    pub(super) fn colon(&mut self) -> Decoded<()> {
        self.skip_whitespace();
        self.eat(b':', "':'")?;
        self.skip_whitespace();
        Ok(())
    }

    /// Appends the string at the cursor, unescaped, to `out`.
    pub(super) fn string_into(&mut self, out: &mut Vec<u8>) -> Decoded<()> {
        self.eat(b'"', "a string")?;
        loop {
            let rest = &self.bytes[self.pos..];
            let Some(stop) = string_mark(rest) else {
                return Err(self.reject("the string to end on its line"));
            };
            out.extend_from_slice(&rest[..stop]);
            self.pos += stop;
            match rest[stop] {
                b'"' => {
                    self.pos += 1;
                    return Ok(());
                }
                b'\\' => {
                    self.pos += 1;
                    self.escape_into(out)?;
                }
                b'\n' => return Err(self.reject("the string to end on its line")),
                _ => return Err(self.reject("a control character to be escaped")),
            }
        }
    }

    /// The escape after a backslash (RFC 8259: a surrogate pair makes one character).
    pub(super) fn escape_into(&mut self, out: &mut Vec<u8>) -> Decoded<()> {
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

    pub(super) fn hex4(&mut self) -> Decoded<u16> {
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
    pub(super) fn raw_string(&mut self) -> Decoded<&[u8]> {
        if self.peek() != Some(b'"') {
            return Err(self.reject("a string"));
        }
        let start = self.pos + 1;
        if let Some(len) = string_mark(&self.bytes[start..])
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

    /// A non-negative integer of at most 18 digits at the cursor, the common kind (counts,
    /// sizes, statuses), in one short loop; `None`, with nothing read, for anything else
    /// (which [`Self::number`] reads or refuses).
    #[inline(always)]
    pub(super) fn small_integer(&mut self) -> Option<i64> {
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
    pub(super) fn short_decimal(&mut self) -> Option<f64> {
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
    pub(super) fn number(&mut self) -> Decoded<Number<'a>> {
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
    pub(super) fn skip_value(&mut self, depth: usize) -> Decoded<()> {
        if depth > MAX_SKIPPED_DEPTH {
            return Err(self.reject("at most 64 levels of nesting"));
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
                // Even a number no column reads must be one a reader could hold.
                let number = self.number()?;
                let finite = number.integer.is_some()
                    || lexical_core::parse::<f64>(number.text).is_ok_and(|value| value.is_finite());
                if !finite {
                    return Err(self.reject("a number within the range of a double"));
                }
            }
            _ => return Err(self.reject("a value")),
        }
        Ok(())
    }
}

/// Appends the decimal digits from `*pos` on to `value`, at most `*room` more of them; false
/// if a digit is left once the room is used up.
#[inline(always)]
pub(super) fn decimal_digits(bytes: &[u8], pos: &mut usize, value: &mut u64, room: &mut u32) -> bool {
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
pub(super) fn integer_part(bytes: &[u8], start: usize, end: usize) -> bool {
    end > start && (end - start == 1 || bytes[start] != b'0')
}

/// Where the first byte that ends a string's plain run is: a `"`, a `\\`, or a control
/// character (which JSON only allows escaped). Most strings are short (ids, enums, keys), so
/// the scan goes a step (16 bytes on x86_64, a word elsewhere) at a time from the start.
#[inline]
pub(super) fn string_mark(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    while at + SCAN_STEP <= bytes.len() {
        if let Some(found) = first_mark(&bytes[at..at + SCAN_STEP]) {
            return Some(at + found);
        }
        at += SCAN_STEP;
    }
    bytes[at..].iter().position(|&byte| is_mark(byte)).map(|found| at + found)
}

/// Whether `byte` ends a string's plain run.
#[inline]
pub(super) fn is_mark(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || byte < 0x20
}

#[cfg(target_arch = "x86_64")]
pub(super) const SCAN_STEP: usize = 16;
#[cfg(not(target_arch = "x86_64"))]
pub(super) const SCAN_STEP: usize = 8;

/// The first mark ([`is_mark`]) of a 16-byte chunk.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(super) fn first_mark(chunk: &[u8]) -> Option<usize> {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let chunk: &[u8; 16] = chunk.try_into().expect("16 bytes");
    // SAFETY: SSE2 is part of every x86_64 target, and the load reads the 16 bytes of
    // `chunk` (an unaligned load needs no more).
    let hits = unsafe {
        let chunk = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
        let quotes = _mm_cmpeq_epi8(chunk, _mm_set1_epi8(b'"' as i8));
        let backslashes = _mm_cmpeq_epi8(chunk, _mm_set1_epi8(b'\\' as i8));
        // A byte is below 0x20 exactly when the unsigned minimum with 0x1f leaves it unchanged.
        let controls = _mm_cmpeq_epi8(_mm_min_epu8(chunk, _mm_set1_epi8(0x1f)), chunk);
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quotes, backslashes), controls))
    };
    (hits != 0).then(|| hits.trailing_zeros() as usize)
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
pub(super) fn first_mark(chunk: &[u8]) -> Option<usize> {
    first_mark_in_word(chunk)
}

/// The first mark ([`is_mark`]) of an 8-byte word (compiled everywhere so that its test runs
/// here).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline]
pub(super) fn first_mark_in_word(chunk: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
    let quotes = word ^ (ONES * u64::from(b'"'));
    let backslashes = word ^ (ONES * u64::from(b'\\'));
    // A zero byte in either marks a hit, as does a byte below 0x20 in the word itself; in each
    // test the lowest marked byte is always a true one, so the lowest of all is too.
    let hits = (quotes.wrapping_sub(ONES) & !quotes
        | backslashes.wrapping_sub(ONES) & !backslashes
        | word.wrapping_sub(ONES * 0x20) & !word)
        & HIGHS;
    (hits != 0).then(|| hits.trailing_zeros() as usize / 8)
}

/// `a == b`. Field keys are short, where a memcmp call costs more
/// than the comparison: up to 24 bytes take two or three overlapping word loads per side.
#[inline]
pub(super) fn same_short(a: &[u8], b: &[u8]) -> bool {
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
