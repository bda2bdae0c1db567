//! Fixed-width columns: integers, floats, dates and timestamps. Each takes only the JSON it
//! can hold exactly as written (the README's conversion table); anything else is refused
//! with what was expected.

use std::sync::Arc;

use arrow_array::builder::NullBufferBuilder;
use arrow_array::{ArrayRef, ArrowPrimitiveType, PrimitiveArray};
use arrow_schema::{ArrowError, DataType};
use chrono::NaiveDate;

use super::Decoded;
use super::column::take_sized;
use super::cursor::Cursor;
use crate::schema::EpochUnit;

pub(super) struct Primitives<T: ArrowPrimitiveType> {
    pub(super) data_type: DataType,
    pub(super) values: Vec<T::Native>,
    pub(super) nulls: NullBufferBuilder,
}

impl<T: ArrowPrimitiveType> Primitives<T> {
    pub(super) fn new(data_type: &DataType) -> Self {
        Self { data_type: data_type.clone(), values: Vec::new(), nulls: NullBufferBuilder::new(0) }
    }

    #[inline]
    pub(super) fn push(&mut self, value: T::Native) {
        self.values.push(value);
        self.nulls.append_non_null();
    }

    pub(super) fn append_null(&mut self) {
        self.values.push(T::Native::default());
        self.nulls.append_null();
    }

    pub(super) fn truncate(&mut self, len: usize) {
        self.values.truncate(len);
        self.nulls.truncate(len);
    }

    pub(super) fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let values = take_sized(&mut self.values);
        let array = PrimitiveArray::<T>::try_new(values.into(), self.nulls.finish())?;
        Ok(Arc::new(array.with_data_type(self.data_type.clone())))
    }
}

/// Microseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, the form producers
/// write most, read here without arrow-cast's general parser. Anything else (offsets, a
/// space for the `T`, leap seconds, impossible dates, a fraction finer than a microsecond)
/// is `None`, left to the general path.
pub(super) fn utc_micros(text: &[u8]) -> Option<i64> {
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
            if digits.len() <= 6 {
                value * scale
            } else if value % scale == 0 {
                value / scale
            } else {
                return None;
            }
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
pub(super) fn integer<N: TryFrom<i64>>(cursor: &mut Cursor<'_>) -> Decoded<N> {
    let start = cursor.pos;
    if let Some(value) = cursor.small_integer().and_then(|value| N::try_from(value).ok()) {
        return Ok(value);
    }
    // Out of the column's range after all: the general path reads it again and refuses it.
    cursor.pos = start;
    any_integer(cursor)
}

#[inline(never)]
pub(super) fn any_integer<N: TryFrom<i64>>(cursor: &mut Cursor<'_>) -> Decoded<N> {
    if !matches!(cursor.peek(), Some(b'-' | b'0'..=b'9')) {
        return Err(cursor.reject("an integer"));
    }
    let number = cursor.number()?;
    if let Some(value) = number.integer.and_then(|value| N::try_from(value).ok()) {
        return Ok(value);
    }
    Err(cursor.reject(if number.text.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        "an integer (no fraction or exponent)"
    } else {
        "an integer within the column's range"
    }))
}

/// A double column's value: a short decimal (prices, rates) read at once, else as [`float`].
#[inline(always)]
pub(super) fn double(cursor: &mut Cursor<'_>) -> Decoded<f64> {
    match cursor.short_decimal() {
        Some(value) => Ok(value),
        None => float(cursor),
    }
}

/// A float column's value: any JSON number, as the nearest value of the type, unless that is
/// infinite or zero for a number that is not (the number is outside the type's range).
pub(super) fn float<F: lexical_core::FromLexical + Into<f64> + Copy>(cursor: &mut Cursor<'_>) -> Decoded<F> {
    let number = cursor.number()?;
    let value = lexical_core::parse::<F>(number.text).ok().filter(|v| {
        let value: f64 = (*v).into();
        value.is_finite() && (value != 0.0 || !significant(number.text))
    });
    value.ok_or_else(|| cursor.reject("a number within the column's range"))
}

/// Whether a JSON number's digits before its exponent hold anything but zeros.
fn significant(text: &[u8]) -> bool {
    text.iter().take_while(|&&b| b != b'e' && b != b'E').any(|&b| (b'1'..=b'9').contains(&b))
}

/// Days since the epoch of 0001-01-01 and 9999-12-31: the dates Delta readers take.
const DAYS: std::ops::RangeInclusive<i32> = -719_162..=2_932_896;
/// Microseconds since the epoch of 0001-01-01T00:00:00Z and the last of 9999-12-31.
const MICROS: std::ops::RangeInclusive<i64> = -62_135_596_800_000_000..=253_402_300_799_999_999;

/// A date column's value: a `YYYY-MM-DD` string of years 1 to 9999.
pub(super) fn date(cursor: &mut Cursor<'_>) -> Decoded<i32> {
    if cursor.peek() != Some(b'"') {
        return Err(cursor.reject("a date string (YYYY-MM-DD)"));
    }
    let text = cursor.raw_string()?;
    let days = match text {
        [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] => {
            let digits = [*y0, *y1, *y2, *y3, *m0, *m1, *d0, *d1];
            digits.iter().all(u8::is_ascii_digit).then(|| {
                let number = |digits: &[u8]| digits.iter().fold(0u32, |v, d| v * 10 + u32::from(d - b'0'));
                NaiveDate::from_ymd_opt(number(&digits[..4]) as i32, number(&digits[4..6]), number(&digits[6..]))
            })
        }
        _ => None,
    };
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch is a date");
    let days = days.flatten().map(|date| date.signed_duration_since(epoch).num_days());
    let days = days.ok_or_else(|| cursor.reject("a date (YYYY-MM-DD)"))? as i32;
    if !DAYS.contains(&days) {
        return Err(cursor.reject("a date in years 1 to 9999"));
    }
    Ok(days)
}

/// A timestamp column's value: an ISO-8601 string ([`iso_micros`]) or a number of `unit`s
/// since the epoch, in years 1 to 9999 and no finer than a microsecond. Without a zone
/// (`timestamp_ntz`) the text is a wall-clock time: one with a non-zero offset names an instant,
/// not a wall-clock time, and is refused rather than shifted.
pub(super) fn timestamp(cursor: &mut Cursor<'_>, unit: EpochUnit, zoned: bool) -> Decoded<i64> {
    let micros = match cursor.peek() {
        Some(b'"') => {
            let text = cursor.raw_string()?;
            // The form producers write most goes the short way.
            match utc_micros(text) {
                Some(micros) => micros,
                None if zoned => iso_micros(text).map_err(|reason| cursor.reject(reason))?,
                None => match iso_parts(text) {
                    Ok((wall_clock, None | Some(0))) => wall_clock,
                    Ok(_) => return Err(cursor.reject("a timestamp without a time zone (or in UTC)")),
                    Err(reason) => return Err(cursor.reject(reason)),
                },
            }
        }
        Some(b'-' | b'0'..=b'9') => {
            let number = cursor.number()?;
            epoch_micros(number.text, unit).map_err(|reason| cursor.reject(reason))?
        }
        _ => return Err(cursor.reject("a timestamp string or an epoch number")),
    };
    if !MICROS.contains(&micros) {
        return Err(cursor.reject("a timestamp in years 1 to 9999"));
    }
    Ok(micros)
}

/// Microseconds since the epoch of an ISO-8601 timestamp: `YYYY-MM-DD`, then `T` (or `t`, or
/// a space), `HH:MM`, optionally `:SS` and a fraction of 1 to 9 digits, then `Z` (or `z`), an
/// offset `+HH:MM`, `+HHMM` or `+HH` (or `-`), or nothing for UTC.
pub(super) fn iso_micros(text: &[u8]) -> Result<i64, &'static str> {
    let (local_micros, offset_minutes) = iso_parts(text)?;
    Ok(local_micros - offset_minutes.unwrap_or(0) * 60 * 1_000_000)
}

/// The wall-clock microseconds (as if UTC) of an ISO-8601 timestamp, and the offset in minutes
/// its zone designator names (`None` when it has none).
pub(super) fn iso_parts(text: &[u8]) -> Result<(i64, Option<i64>), &'static str> {
    const ISO: &str = "an ISO-8601 timestamp";
    let number = |digits: &[u8]| {
        digits
            .iter()
            .try_fold(0u32, |value, digit| digit.is_ascii_digit().then(|| value * 10 + u32::from(digit - b'0')))
    };
    let field = |start: usize, len: usize| text.get(start..start + len).and_then(number).ok_or(ISO);
    let shaped = text.len() >= 16
        && text[4] == b'-'
        && text[7] == b'-'
        && matches!(text[10], b'T' | b't' | b' ')
        && text[13] == b':';
    if !shaped {
        return Err(ISO);
    }
    let (year, month, day, hour, minute) = (field(0, 4)?, field(5, 2)?, field(8, 2)?, field(11, 2)?, field(14, 2)?);
    let (mut second, mut nanos, mut at) = (0, 0, 16);
    if text.get(at) == Some(&b':') {
        second = field(17, 2)?;
        at = 19;
        if text.get(at) == Some(&b'.') {
            let digits = text[at + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
            if !(1..=9).contains(&digits) {
                return Err(ISO);
            }
            nanos = field(at + 1, digits)? * 10u32.pow(9 - digits as u32);
            at += 1 + digits;
        }
    }
    let offset_minutes = match &text[at..] {
        [] => None,
        [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), zone @ ..] => {
            let (hours, minutes) = match zone {
                [h0, h1] => (number(&[*h0, *h1]), Some(0)),
                [h0, h1, b':', m0, m1] | [h0, h1, m0, m1] => (number(&[*h0, *h1]), number(&[*m0, *m1])),
                _ => return Err(ISO),
            };
            let (hours, minutes) = (hours.ok_or(ISO)?, minutes.ok_or(ISO)?);
            if hours > 23 || minutes > 59 {
                return Err(ISO);
            }
            let minutes = i64::from(hours * 60 + minutes);
            Some(if *sign == b'-' { -minutes } else { minutes })
        }
        _ => return Err(ISO),
    };
    if nanos % 1000 != 0 {
        return Err("a timestamp no finer than a microsecond");
    }
    // chrono checks the calendar and the clock (no 24th hour, no leap second).
    let date = NaiveDate::from_ymd_opt(year as i32, month, day).ok_or(ISO)?;
    let time = date.and_hms_opt(hour, minute, second).ok_or(ISO)?;
    Ok((time.and_utc().timestamp() * 1_000_000 + i64::from(nanos / 1000), offset_minutes))
}

/// A decimal column's value: a JSON number, or a string holding one (as money is often
/// written), of at most `precision` digits with at most `scale` after the point. Digits past
/// the scale are taken only when they are zeros: the value is stored exactly or refused,
/// never rounded.
pub(super) fn decimal(cursor: &mut Cursor<'_>, precision: u8, scale: i8) -> Decoded<i128> {
    let parsed = match cursor.peek() {
        Some(b'"') => {
            let text = cursor.raw_string()?;
            // The string holds a number as JSON writes one: `"012"`, `".5"` or `"5."` are not.
            if !is_json_number(text) {
                return Err(cursor.reject("a decimal number (JSON number syntax, in a string or not)"));
            }
            decimal_units(text, precision, scale)
        }
        Some(b'-' | b'0'..=b'9') => {
            let number = cursor.number()?;
            decimal_units(number.text, precision, scale)
        }
        _ => return Err(cursor.reject("a decimal number")),
    };
    parsed.map_err(|reason| cursor.reject(reason))
}

/// The value of decimal text in units of 10^-`scale`: `[-]digits[.digits][e[+-]digits]`.
pub(super) fn decimal_units(text: &[u8], precision: u8, scale: i8) -> Result<i128, &'static str> {
    const SHAPE: &str = "a decimal number";
    let DecimalText { negative, integer, fraction, exponent } = DecimalText::split(text).ok_or(SHAPE)?;
    if integer.is_empty() && fraction.is_empty() || !integer.iter().chain(fraction).all(u8::is_ascii_digit) {
        return Err(SHAPE);
    }
    // The digits without leading zeros, and the power of ten of the last one.
    let digits: Vec<u8> = integer.iter().chain(fraction).map(|d| d - b'0').skip_while(|d| *d == 0).collect();
    let last_power = exponent - fraction.len() as i64;
    // Trailing zeros carry no value: drop those past the scale.
    let mut digits = digits.as_slice();
    let mut last_power = last_power;
    while let [rest @ .., 0] = digits
        && last_power < -i64::from(scale)
    {
        digits = rest;
        last_power += 1;
    }
    if digits.is_empty() {
        return Ok(0);
    }
    if last_power < -i64::from(scale) {
        return Err("a decimal with no more digits after the point than the column's scale");
    }
    // Units of 10^-scale: the digits, then zeros down to the scale.
    let zeros = last_power + i64::from(scale);
    if digits.len() as i64 + zeros > i64::from(precision) {
        return Err("a decimal with no more digits than the column's precision");
    }
    let mut value: i128 = 0;
    for digit in digits {
        value = value * 10 + i128::from(*digit);
    }
    value *= 10i128.pow(zeros as u32);
    Ok(if negative { -value } else { value })
}

/// Number text taken apart: `[-]integer[.fraction][e[+-]exponent]`. The digits are not checked
/// here (JSON numbers arrive checked; a decimal column checks its strings itself).
struct DecimalText<'a> {
    negative: bool,
    integer: &'a [u8],
    fraction: &'a [u8],
    /// Saturated at ±[`EXPONENT_LIMIT`]: any exponent that large makes a non-zero value too
    /// big or too fine for every column, while zero stays zero (`0e99999999999999999999`).
    exponent: i64,
}

/// Where exponents saturate: far beyond any column's range, far from overflowing an `i64`.
const EXPONENT_LIMIT: i64 = 1 << 40;

impl<'a> DecimalText<'a> {
    fn split(text: &'a [u8]) -> Option<Self> {
        let (negative, text) = match text.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, text),
        };
        let (mantissa, exponent) = match text.iter().position(|&b| b == b'e' || b == b'E') {
            Some(at) => (&text[..at], saturated_exponent(&text[at + 1..])?),
            None => (text, 0),
        };
        let (integer, fraction) = match mantissa.iter().position(|&b| b == b'.') {
            Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
            None => (mantissa, &[][..]),
        };
        Some(Self { negative, integer, fraction, exponent })
    }
}

/// `[+-]digits` as an exponent, saturated at ±[`EXPONENT_LIMIT`].
fn saturated_exponent(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude = digits.iter().fold(0i64, |value, digit| (value * 10 + i64::from(digit - b'0')).min(EXPONENT_LIMIT));
    Some(if negative { -magnitude } else { magnitude })
}

/// Whether `text` is a number as JSON writes one: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_json_number(text: &[u8]) -> bool {
    let text = text.strip_prefix(b"-").unwrap_or(text);
    let integer_end = text.iter().position(|b| !b.is_ascii_digit()).unwrap_or(text.len());
    let (integer, rest) = text.split_at(integer_end);
    if integer.is_empty() || (integer.len() > 1 && integer[0] == b'0') {
        return false;
    }
    let rest = match rest.strip_prefix(b".") {
        Some(fraction) => {
            let end = fraction.iter().position(|b| !b.is_ascii_digit()).unwrap_or(fraction.len());
            if end == 0 {
                return false;
            }
            &fraction[end..]
        }
        None => rest,
    };
    match rest.split_first() {
        None => true,
        Some((b'e' | b'E', exponent)) => {
            let digits = exponent.strip_prefix(b"+").or_else(|| exponent.strip_prefix(b"-")).unwrap_or(exponent);
            !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
        }
        Some(_) => false,
    }
}

/// Microseconds of a JSON number of `unit`s since the epoch, converted exactly: refused when
/// it holds a fraction of a microsecond or does not fit.
pub(super) fn epoch_micros(text: &[u8], unit: EpochUnit) -> Result<i64, &'static str> {
    let DecimalText { negative, integer, fraction, exponent } =
        DecimalText::split(text).ok_or("an epoch number within range")?;
    let unit_exponent = match unit {
        EpochUnit::Seconds => 6,
        EpochUnit::Millis => 3,
        EpochUnit::Micros => 0,
        EpochUnit::Nanos => -3,
    };
    let mut scale = exponent - fraction.len() as i64 + unit_exponent;
    // The significant digits: leading zeros carry nothing, trailing ones only a power of ten.
    let all = || integer.iter().chain(fraction);
    let first = all().position(|d| *d != b'0').unwrap_or(integer.len() + fraction.len());
    let trailing = all().rev().take_while(|d| **d == b'0').count();
    let significant = (integer.len() + fraction.len()).saturating_sub(first + trailing);
    if significant > 36 {
        return Err("an epoch number within range");
    }
    scale += trailing as i64;
    let value = all().skip(first).take(significant).fold(0i128, |value, digit| value * 10 + i128::from(digit - b'0'));
    let value = if value == 0 {
        0
    } else if scale >= 0 {
        let factor = 10i128.checked_pow(u32::try_from(scale).map_err(|_| "an epoch number within range")?);
        factor.and_then(|f| value.checked_mul(f)).ok_or("an epoch number within range")?
    } else {
        let divisor = u32::try_from(-scale).ok().and_then(|s| 10i128.checked_pow(s));
        match divisor {
            Some(divisor) if value % divisor == 0 => value / divisor,
            _ => return Err("an epoch number no finer than a microsecond"),
        }
    };
    let value = if negative { -value } else { value };
    i64::try_from(value).map_err(|_| "an epoch number within range")
}
