//! One column of the declared schema: its values dispatched once by type to their builder.

use std::sync::Arc;

use arrow_array::builder::{BooleanBufferBuilder, NullBufferBuilder};
use arrow_array::timezone::Tz;
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{ArrayRef, BooleanArray, ListArray, MapArray, StructArray};
use arrow_buffer::OffsetBuffer;
use arrow_cast::parse::{Parser, string_to_datetime};
use arrow_schema::{ArrowError, DataType};

use super::Decoded;
use super::cursor::{Cursor, utf8};
use super::nested::{ListColumn, MapColumn, StructColumn};
use super::primitive::{Primitives, double, float, integer, utc_micros};
use super::string::Utf8Values;

/// Values of one column, with the type and nullability its field declares.
pub(super) struct Column {
    pub(super) nullable: bool,
    pub(super) values: Values,
}

pub(super) enum Values {
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
    pub(super) fn new(nullable: bool, data_type: &DataType) -> Self {
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
    pub(super) fn append_null(&mut self, masked: bool, cursor: &Cursor<'_>) -> Decoded<()> {
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
    pub(super) fn len(&self) -> usize {
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

    pub(super) fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
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
