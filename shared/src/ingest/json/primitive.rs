//! Fixed-width columns: integers, floats, dates and timestamps, read exactly as arrow-json
//! reads them.

use std::sync::Arc;

use arrow_array::builder::NullBufferBuilder;
use arrow_array::{ArrayRef, ArrowPrimitiveType, PrimitiveArray};
use arrow_schema::{ArrowError, DataType};

use super::Decoded;
use super::column::take_sized;
use super::cursor::Cursor;

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

    pub(super) fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let values = take_sized(&mut self.values);
        let array = PrimitiveArray::<T>::try_new(values.into(), self.nulls.finish())?;
        Ok(Arc::new(array.with_data_type(self.data_type.clone())))
    }
}

/// Microseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, the form producers
/// write most, read here at under half of arrow-cast's cost. Anything else (offsets, a
/// space for the `T`, leap seconds, impossible dates) is `None`, left to arrow-cast. Digits
/// past the sixth of the fraction are dropped, as arrow-cast's nanoseconds become micros.
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
    let number = cursor.number()?;
    number.integer.and_then(|value| N::try_from(value).ok()).ok_or_else(|| cursor.reject("an integer in range"))
}

/// A double column's value: a short decimal (prices, rates) read at once, else as [`float`].
#[inline(always)]
pub(super) fn double(cursor: &mut Cursor<'_>) -> Decoded<f64> {
    match cursor.short_decimal() {
        Some(value) => Ok(value),
        None => float(cursor),
    }
}

/// A float column's value: any finite JSON number, parsed by the parser arrow-json uses.
pub(super) fn float<F: lexical_core::FromLexical + Into<f64> + Copy>(cursor: &mut Cursor<'_>) -> Decoded<F> {
    let number = cursor.number()?;
    let value = lexical_core::parse::<F>(number.text).ok().filter(|v| (*v).into().is_finite());
    value.ok_or_else(|| cursor.reject("a finite number"))
}
