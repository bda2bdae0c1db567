//! Column chunk statistics: the least and greatest value of a leaf in a row group, kept as
//! Parquet orders them, so that files whose pages are copied into table files unchanged carry
//! the statistics readers skip row groups with (and Delta's file statistics are made from).
//!
//! The rules are the format's, as the parquet crate's own writer applies them: NaN takes no
//! part, a zero minimum is written as -0.0 and a zero maximum as +0.0, and byte arrays compare
//! as unsigned bytes, cut to [`TRUNCATE_BYTES`] (a cut maximum rounded up, so it still bounds).

use parquet::basic::Type as PhysicalType;
use parquet::data_type::ByteArray;
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::schema::types::ColumnDescriptor;

/// Longest byte array bound kept, as the parquet crate's default.
pub(super) const TRUNCATE_BYTES: usize = 64;

/// The bounds of one leaf's values so far; `None` until a value that counts is seen.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Bounds {
    Boolean(Option<(bool, bool)>),
    Int32(Option<(i32, i32)>),
    Int64(Option<(i64, i64)>),
    Float(Option<(f32, f32)>),
    Double(Option<(f64, f64)>),
    Bytes(Option<(Vec<u8>, Vec<u8>)>),
}

impl Bounds {
    /// Empty bounds for values of `physical` type.
    pub(super) fn new(physical: PhysicalType) -> Self {
        match physical {
            PhysicalType::BOOLEAN => Self::Boolean(None),
            PhysicalType::INT32 => Self::Int32(None),
            PhysicalType::INT64 => Self::Int64(None),
            PhysicalType::FLOAT => Self::Float(None),
            PhysicalType::DOUBLE => Self::Double(None),
            _ => Self::Bytes(None),
        }
    }

    /// Takes in a page's PLAIN values (`count` booleans, bit-packed, for a boolean leaf), or
    /// for byte arrays their `lengths` and bytes back to back.
    pub(super) fn update(&mut self, values: &[u8], lengths: &[i32], count: usize) {
        match self {
            Self::Boolean(bounds) => {
                for index in 0..count {
                    let value = values[index / 8] >> (index % 8) & 1 == 1;
                    widen(bounds, value, value);
                }
            }
            Self::Int32(bounds) => fixed(bounds, values, i32::from_le_bytes),
            Self::Int64(bounds) => fixed(bounds, values, i64::from_le_bytes),
            Self::Float(bounds) => floats(bounds, values, f32::from_le_bytes),
            Self::Double(bounds) => floats(bounds, values, f64::from_le_bytes),
            Self::Bytes(bounds) => {
                let mut start = 0;
                byte_arrays(
                    bounds,
                    lengths.iter().map(|&length| {
                        start += length as usize;
                        &values[start - length as usize..start]
                    }),
                );
            }
        }
    }

    /// Takes in PLAIN-encoded values as a dictionary page holds them (byte arrays each after
    /// its 4-byte length): a dictionary's new entries bound every value that refers to them.
    pub(super) fn update_from_dictionary(&mut self, entries: &[u8]) {
        match self {
            Self::Bytes(bounds) => {
                let mut rest = entries;
                byte_arrays(
                    bounds,
                    std::iter::from_fn(|| {
                        let (length, tail) = rest.split_first_chunk::<4>()?;
                        let (value, tail) = tail.split_at(u32::from_le_bytes(*length) as usize);
                        rest = tail;
                        Some(value)
                    }),
                );
            }
            _ => self.update(entries, &[], 0),
        }
    }

    /// The chunk statistics for `descr`, with `nulls` null entries; the bounds are reset.
    pub(super) fn take_statistics(&mut self, descr: &ColumnDescriptor, nulls: u64) -> Statistics {
        // Older readers trust the deprecated min/max fields only for signed orders.
        let deprecated = descr.sort_order().is_signed();
        let nulls = Some(nulls);
        match self {
            Self::Boolean(bounds) => {
                let (min, max) = bounds.take().unzip();
                Statistics::Boolean(ValueStatistics::new(min, max, None, nulls, deprecated))
            }
            Self::Int32(bounds) => {
                let (min, max) = bounds.take().unzip();
                Statistics::Int32(ValueStatistics::new(min, max, None, nulls, deprecated))
            }
            Self::Int64(bounds) => {
                let (min, max) = bounds.take().unzip();
                Statistics::Int64(ValueStatistics::new(min, max, None, nulls, deprecated))
            }
            Self::Float(bounds) => {
                let (min, max) =
                    bounds.take().map(|(min, max)| (signed_zero(min, -0.0), signed_zero(max, 0.0))).unzip();
                Statistics::Float(ValueStatistics::new(min, max, None, nulls, deprecated))
            }
            Self::Double(bounds) => {
                let (min, max) =
                    bounds.take().map(|(min, max)| (signed_zero(min, -0.0), signed_zero(max, 0.0))).unzip();
                Statistics::Double(ValueStatistics::new(min, max, None, nulls, deprecated))
            }
            Self::Bytes(bounds) => {
                let utf8 = descr.logical_type_ref() == Some(&parquet::basic::LogicalType::String);
                match bounds.take() {
                    Some((min, max)) => {
                        let (min, min_cut) = lower_bound(min, utf8);
                        let (max, max_cut) = upper_bound(max, utf8);
                        let stats = ValueStatistics::new(
                            Some(ByteArray::from(min)),
                            Some(ByteArray::from(max)),
                            None,
                            nulls,
                            deprecated,
                        );
                        Statistics::ByteArray(stats.with_min_is_exact(!min_cut).with_max_is_exact(!max_cut))
                    }
                    None => Statistics::ByteArray(ValueStatistics::new(None, None, None, nulls, deprecated)),
                }
            }
        }
    }
}

fn byte_arrays<'a>(bounds: &mut Option<(Vec<u8>, Vec<u8>)>, values: impl Iterator<Item = &'a [u8]>) {
    let (mut least, mut greatest): (Option<&[u8]>, Option<&[u8]>) = (None, None);
    for value in values {
        if least.is_none_or(|least| value < least) {
            least = Some(value);
        }
        if greatest.is_none_or(|greatest| value > greatest) {
            greatest = Some(value);
        }
    }
    if let (Some(least), Some(greatest)) = (least, greatest) {
        match bounds {
            Some((min, max)) => {
                if least < min.as_slice() {
                    *min = least.to_vec();
                }
                if greatest > max.as_slice() {
                    *max = greatest.to_vec();
                }
            }
            None => *bounds = Some((least.to_vec(), greatest.to_vec())),
        }
    }
}

fn widen<T: PartialOrd + Copy>(bounds: &mut Option<(T, T)>, least: T, greatest: T) {
    match bounds {
        Some((min, max)) => {
            if least < *min {
                *min = least;
            }
            if greatest > *max {
                *max = greatest;
            }
        }
        None => *bounds = Some((least, greatest)),
    }
}

fn fixed<T: Ord + Copy, const N: usize>(bounds: &mut Option<(T, T)>, values: &[u8], read: fn([u8; N]) -> T) {
    let mut values = values.chunks_exact(N).map(|bytes| read(bytes.try_into().expect("N bytes")));
    let Some(first) = values.next() else { return };
    let (least, greatest) = values.fold((first, first), |(min, max), value| (min.min(value), max.max(value)));
    widen(bounds, least, greatest);
}

fn floats<T: PartialOrd + Copy, const N: usize>(bounds: &mut Option<(T, T)>, values: &[u8], read: fn([u8; N]) -> T) {
    // NaN is neither less nor greater than anything: it never becomes a bound, as the format asks.
    let mut values = values.chunks_exact(N).map(|bytes| read(bytes.try_into().expect("N bytes")));
    #[allow(clippy::eq_op)]
    let Some(first) = values.by_ref().find(|value| value == value) else { return };
    let (mut least, mut greatest) = (first, first);
    for value in values {
        if value < least {
            least = value;
        }
        if value > greatest {
            greatest = value;
        }
    }
    widen(bounds, least, greatest);
}

/// A float bound of zero written with the sign the format asks for it.
fn signed_zero<T: PartialEq + From<i8> + Copy>(value: T, zero: T) -> T {
    if value == T::from(0) { zero } else { value }
}

/// `min` cut to at most [`TRUNCATE_BYTES`] (at a character boundary for UTF-8), and whether it was.
fn lower_bound(min: Vec<u8>, utf8: bool) -> (Vec<u8>, bool) {
    if min.len() <= TRUNCATE_BYTES {
        return (min, false);
    }
    let cut = match std::str::from_utf8(&min) {
        Ok(text) if utf8 => (1..=TRUNCATE_BYTES).rev().find(|&at| text.is_char_boundary(at)),
        _ => Some(TRUNCATE_BYTES),
    };
    match cut {
        Some(at) => (min[..at].to_vec(), true),
        None => (min, false),
    }
}

/// `max` cut to at most [`TRUNCATE_BYTES`] and rounded up so that it still bounds every value;
/// kept whole when no shorter bound exists.
fn upper_bound(max: Vec<u8>, utf8: bool) -> (Vec<u8>, bool) {
    if max.len() <= TRUNCATE_BYTES {
        return (max, false);
    }
    let rounded = match std::str::from_utf8(&max) {
        Ok(text) if utf8 => (TRUNCATE_BYTES.saturating_sub(3)..=TRUNCATE_BYTES)
            .rev()
            .find(|&at| text.is_char_boundary(at))
            .and_then(|at| next_text(&text[..at])),
        _ => next_bytes(max[..TRUNCATE_BYTES].to_vec()),
    };
    match rounded {
        Some(bound) => (bound, true),
        None => (max, false),
    }
}

/// The shortest prefix of `text` with its last character raised by one code point (of the
/// same UTF-8 width) that is greater than every string starting with `text`.
fn next_text(text: &str) -> Option<Vec<u8>> {
    text.char_indices().rev().find_map(|(at, last)| {
        let next = char::from_u32(last as u32 + 1).filter(|next| next.len_utf8() == last.len_utf8())?;
        let mut bound = text.as_bytes()[..at].to_vec();
        bound.extend_from_slice(next.encode_utf8(&mut [0; 4]).as_bytes());
        Some(bound)
    })
}

/// `bytes` plus one, as a big-endian number of its length; `None` if every byte is 0xff.
fn next_bytes(mut bytes: Vec<u8>) -> Option<Vec<u8>> {
    for byte in bytes.iter_mut().rev() {
        let (raised, overflow) = byte.overflowing_add(1);
        *byte = raised;
        if !overflow {
            return Some(bytes);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_bounds_skip_nan_and_sign_their_zeros() {
        let values: Vec<u8> = [f64::NAN, 0.0, 2.5, -0.0, f64::NAN].iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut bounds = Bounds::new(PhysicalType::DOUBLE);
        bounds.update(&values, &[], 5);
        assert_eq!(bounds, Bounds::Double(Some((0.0, 2.5))));
        let nan: Vec<u8> = f64::NAN.to_le_bytes().to_vec();
        let mut only_nan = Bounds::new(PhysicalType::DOUBLE);
        only_nan.update(&nan, &[], 1);
        assert_eq!(only_nan, Bounds::Double(None));
    }

    #[test]
    fn long_strings_are_cut_to_bounds_that_still_bound() {
        let long = "é".repeat(40); // 80 bytes, 2 per character
        let (min, cut) = lower_bound(long.clone().into_bytes(), true);
        assert!(cut);
        assert_eq!(min.len(), 64);
        assert!(min.as_slice() <= long.as_bytes());
        let (max, cut) = upper_bound(long.clone().into_bytes(), true);
        assert!(cut);
        assert!(max.as_slice() > long.as_bytes());
        assert!(std::str::from_utf8(&max).is_ok());
        assert_eq!(upper_bound(b"short".to_vec(), true), (b"short".to_vec(), false));
        assert_eq!(next_bytes(vec![1, 0xff]), Some(vec![2, 0]));
        assert_eq!(next_bytes(vec![0xff]), None);
    }

    #[test]
    fn byte_arrays_compare_as_unsigned_bytes() {
        let mut bounds = Bounds::new(PhysicalType::BYTE_ARRAY);
        bounds.update("bzaé".as_bytes(), &[1, 1, 1, 2], 4);
        assert_eq!(bounds, Bounds::Bytes(Some((b"a".to_vec(), "é".as_bytes().to_vec()))));
    }
}
