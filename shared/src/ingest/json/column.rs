//! One column of the declared schema: its values dispatched once by type to their builder.

use std::sync::Arc;

use arrow_array::builder::{BooleanBufferBuilder, NullBufferBuilder};
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimestampMicrosecondType,
};
use arrow_array::{ArrayRef, BooleanArray, ListArray, MapArray, StructArray};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{ArrowError, DataType};

use super::Decoded;
use super::cursor::Cursor;
use super::nested::{ListColumn, MapColumn, StructColumn};
use super::primitive::{Primitives, date, decimal, double, float, integer, timestamp};
use super::string::{BinaryValues, Utf8Values};
use crate::schema::{BinaryEncoding, EpochUnit, ValueFormat, ValueFormats};

/// Values of one column, with the type and nullability its field declares.
pub(super) struct Column {
    pub(super) nullable: bool,
    pub(super) values: Values,
}

pub(super) enum Values {
    Utf8(Utf8Values),
    /// A `json` column: each value's JSON text as written.
    Json(Utf8Values),
    Boolean {
        values: BooleanBufferBuilder,
        nulls: NullBufferBuilder,
    },
    Int8(Primitives<Int8Type>),
    Int16(Primitives<Int16Type>),
    Int32(Primitives<Int32Type>),
    Int64(Primitives<Int64Type>),
    Float32(Primitives<Float32Type>),
    Float64(Primitives<Float64Type>),
    Date32(Primitives<Date32Type>),
    /// `zoned`: a `timestamp` (UTC instants; text with any offset is converted); otherwise a
    /// `timestamp_ntz` (wall-clock times; text with a non-zero offset is refused, not shifted).
    Timestamp {
        values: Primitives<TimestampMicrosecondType>,
        unit: EpochUnit,
        zoned: bool,
    },
    Decimal {
        values: Primitives<Decimal128Type>,
        precision: u8,
        scale: i8,
    },
    Binary(BinaryValues),
    Struct(Box<StructColumn>),
    List(Box<ListColumn>),
    Map(Box<MapColumn>),
}

pub(super) fn offset(len: usize, cursor: &Cursor<'_>) -> Decoded<i32> {
    i32::try_from(len).map_err(|_| cursor.reject("fewer than 2 GiB per batch"))
}

/// Room for the next batch of a column: what this one held plus an eighth. Batches of text
/// vary by a few percent; at exactly the last size, every other batch outgrew its buffer and
/// copied it whole to a new one.
pub(super) fn next_capacity(len: usize) -> usize {
    len + len / 8
}

/// The filled buffer, replaced by an empty one for the next batch.
pub(super) fn take_sized<T>(values: &mut Vec<T>) -> Vec<T> {
    let capacity = next_capacity(values.len());
    std::mem::replace(values, Vec::with_capacity(capacity))
}

/// The filled offsets, replaced by `[0]` with room for the next batch.
pub(super) fn take_offsets(offsets: &mut Vec<i32>) -> Vec<i32> {
    let mut fresh = Vec::with_capacity(next_capacity(offsets.len()));
    fresh.push(0);
    std::mem::replace(offsets, fresh)
}

pub(super) fn offsets_buffer(offsets: Vec<i32>) -> OffsetBuffer<i32> {
    OffsetBuffer::new(offsets.into())
}

impl Column {
    /// The column of `data_type` at `path`, reading values as `formats` say.
    pub(super) fn new(nullable: bool, data_type: &DataType, path: &str, formats: &ValueFormats) -> Self {
        let values = match data_type {
            DataType::Utf8 if formats.get(path) == Some(&ValueFormat::Json) => Values::Json(Utf8Values::new()),
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
            // Declared timestamps are UTC; text without a zone is read as UTC.
            DataType::Timestamp(_, zone) => Values::Timestamp {
                values: Primitives::new(data_type),
                unit: match formats.get(path) {
                    Some(ValueFormat::Epoch(unit)) => *unit,
                    _ => EpochUnit::Seconds,
                },
                zoned: zone.is_some(),
            },
            DataType::Decimal128(precision, scale) => {
                Values::Decimal { values: Primitives::new(data_type), precision: *precision, scale: *scale }
            }
            DataType::Binary => Values::Binary(BinaryValues::new(match formats.get(path) {
                Some(ValueFormat::Binary(encoding)) => *encoding,
                _ => BinaryEncoding::Base64,
            })),
            DataType::Struct(fields) => Values::Struct(Box::new(StructColumn::new(fields, path, formats))),
            DataType::List(element) => Values::List(Box::new(ListColumn {
                element: element.clone(),
                offsets: vec![0],
                child: Column::new(element.is_nullable(), element.data_type(), &format!("{path}[]"), formats),
                nulls: NullBufferBuilder::new(0),
            })),
            DataType::Map(entries, ordered) => {
                let DataType::Struct(kv) = entries.data_type() else { unreachable!("a map's entries are a struct") };
                Values::Map(Box::new(MapColumn {
                    entries: entries.clone(),
                    ordered: *ordered,
                    offsets: vec![0],
                    keys: Utf8Values::new(),
                    values: Column::new(kv[1].is_nullable(), kv[1].data_type(), &format!("{path}{{}}"), formats),
                    nulls: NullBufferBuilder::new(0),
                }))
            }
            other => unreachable!("the schema language has no {other}"),
        };
        Self { nullable, values }
    }

    /// A null for this row: `masked` when it only pads under a null parent, which even a
    /// non-nullable primitive column takes (the value is not there, its parent is).
    pub(super) fn append_null(&mut self, masked: bool, cursor: &Cursor<'_>) -> Decoded<()> {
        let nested = matches!(self.values, Values::Struct(_) | Values::List(_) | Values::Map(_));
        if !self.nullable && (nested || !masked) {
            return Err(cursor.reject("a value (the field is not nullable)"));
        }
        match &mut self.values {
            Values::Utf8(v) | Values::Json(v) => v.append_null(),
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
            Values::Decimal { values, .. } => values.append_null(),
            Values::Binary(v) => v.append_null(),
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
    pub(super) fn parse_value(&mut self, cursor: &mut Cursor<'_>) -> Decoded<()> {
        if let Values::Utf8(values) = &mut self.values
            && cursor.peek() == Some(b'"')
        {
            return values.parse(cursor);
        }
        self.parse(cursor)
    }

    /// Reads the value at the cursor into this column.
    pub(super) fn parse(&mut self, cursor: &mut Cursor<'_>) -> Decoded<()> {
        if cursor.peek() == Some(b'n') {
            cursor.literal(b"null")?;
            return self.append_null(false, cursor);
        }
        match &mut self.values {
            Values::Utf8(v) => v.parse(cursor)?,
            Values::Json(v) => v.parse_json_text(cursor)?,
            Values::Boolean { values, nulls } => {
                let value = match cursor.peek() {
                    Some(b't') => cursor.literal(b"true").map(|_| true)?,
                    Some(b'f') => cursor.literal(b"false").map(|_| false)?,
                    _ => return Err(cursor.reject("true or false")),
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
            Values::Date32(v) => v.push(date(cursor)?),
            Values::Timestamp { values, unit, zoned } => values.push(timestamp(cursor, *unit, *zoned)?),
            Values::Decimal { values, precision, scale } => values.push(decimal(cursor, *precision, *scale)?),
            Values::Binary(v) => v.parse(cursor)?,
            Values::Struct(s) => s.parse_object(cursor)?,
            Values::List(l) => l.parse(cursor)?,
            Values::Map(m) => m.parse(cursor)?,
        }
        Ok(())
    }

    /// Values (rows, list elements or map entries) held so far.
    pub(super) fn len(&self) -> usize {
        match &self.values {
            Values::Utf8(v) | Values::Json(v) => v.offsets.len() - 1,
            Values::Boolean { values, .. } => values.len(),
            Values::Int8(v) => v.values.len(),
            Values::Int16(v) => v.values.len(),
            Values::Int32(v) => v.values.len(),
            Values::Int64(v) => v.values.len(),
            Values::Float32(v) => v.values.len(),
            Values::Float64(v) => v.values.len(),
            Values::Date32(v) => v.values.len(),
            Values::Timestamp { values, .. } => values.values.len(),
            Values::Decimal { values, .. } => values.values.len(),
            Values::Binary(v) => v.offsets.len() - 1,
            Values::Struct(s) => s.len(),
            Values::List(l) => l.offsets.len() - 1,
            Values::Map(m) => m.offsets.len() - 1,
        }
    }

    /// Takes back every value after the first `len` (those of a refused line).
    pub(super) fn truncate(&mut self, len: usize) {
        match &mut self.values {
            Values::Utf8(v) | Values::Json(v) => v.truncate(len),
            Values::Boolean { values, nulls } => {
                values.truncate(len);
                nulls.truncate(len);
            }
            Values::Int8(v) => v.truncate(len),
            Values::Int16(v) => v.truncate(len),
            Values::Int32(v) => v.truncate(len),
            Values::Int64(v) => v.truncate(len),
            Values::Float32(v) => v.truncate(len),
            Values::Float64(v) => v.truncate(len),
            Values::Date32(v) => v.truncate(len),
            Values::Timestamp { values, .. } => values.truncate(len),
            Values::Decimal { values, .. } => values.truncate(len),
            Values::Binary(v) => v.truncate(len),
            Values::Struct(s) => s.truncate(len),
            Values::List(l) => l.truncate(len),
            Values::Map(m) => m.truncate(len),
        }
    }

    pub(super) fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        match &mut self.values {
            Values::Utf8(v) | Values::Json(v) => v.finish(),
            Values::Boolean { values, nulls } => Ok(Arc::new(BooleanArray::new(values.finish(), nulls.finish()))),
            Values::Int8(v) => v.finish(),
            Values::Int16(v) => v.finish(),
            Values::Int32(v) => v.finish(),
            Values::Int64(v) => v.finish(),
            Values::Float32(v) => v.finish(),
            Values::Float64(v) => v.finish(),
            Values::Date32(v) => v.finish(),
            Values::Timestamp { values, .. } => values.finish(),
            Values::Decimal { values, .. } => values.finish(),
            Values::Binary(v) => v.finish(),
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
                let DataType::Struct(kv) = m.entries.data_type() else { unreachable!("a map's entries are a struct") };
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
