//! How an Arrow schema maps onto Parquet leaf columns, and the walk that takes an array's
//! entries down to its leaves with their definition and repetition levels.

use std::ops::Range;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_buffer::bit_iterator::BitSliceIterator;
use arrow_buffer::{ArrowNativeType, NullBuffer};
use arrow_schema::{DataType, Field, TimeUnit};
use parquet::basic::Type as PhysicalType;

use super::leaf::Leaf;
use crate::error::Result;

/// The repetition level of each entry of a range, or `None` at the top, where each entry starts
/// a row (level 0).
pub(super) type Reps<'a> = Option<&'a [u8]>;

/// The repetition levels of the entries `range` of `reps`.
pub(super) fn sub_reps(reps: Reps<'_>, range: Range<usize>) -> Reps<'_> {
    reps.map(|reps| &reps[range])
}

/// How one Arrow field maps onto Parquet leaf columns. `leaves` are the indexes of the leaf
/// columns under it, which are contiguous in schema order.
pub(super) enum Node {
    Leaf {
        leaf: usize,
        nullable: bool,
    },
    Struct {
        nullable: bool,
        children: Vec<Node>,
        leaves: Range<usize>,
    },
    /// A list or a map (a list of key-value structs). `level` is its own repetition level.
    List {
        nullable: bool,
        level: u8,
        child: Box<Node>,
        leaves: Range<usize>,
    },
}

/// What a leaf column is: its value type and its maximum levels.
pub(super) struct LeafSpec {
    pub(super) kind: ValueKind,
    pub(super) max_def: u8,
    pub(super) max_rep: u8,
}

/// The Arrow value types this writer encodes, by how their values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ValueKind {
    Boolean,
    Int8,
    Int16,
    Int32,
    Date32,
    Int64,
    TimestampMillis,
    TimestampMicros,
    TimestampNanos,
    Float32,
    Float64,
    Utf8,
    LargeUtf8,
    Binary,
    LargeBinary,
}

impl ValueKind {
    pub(super) fn of(data_type: &DataType) -> Option<Self> {
        Some(match data_type {
            DataType::Boolean => Self::Boolean,
            DataType::Int8 => Self::Int8,
            DataType::Int16 => Self::Int16,
            DataType::Int32 => Self::Int32,
            DataType::Date32 => Self::Date32,
            DataType::Int64 => Self::Int64,
            // Seconds would need converting: Parquet has no second unit.
            DataType::Timestamp(TimeUnit::Millisecond, _) => Self::TimestampMillis,
            DataType::Timestamp(TimeUnit::Microsecond, _) => Self::TimestampMicros,
            DataType::Timestamp(TimeUnit::Nanosecond, _) => Self::TimestampNanos,
            DataType::Float32 => Self::Float32,
            DataType::Float64 => Self::Float64,
            DataType::Utf8 => Self::Utf8,
            DataType::LargeUtf8 => Self::LargeUtf8,
            DataType::Binary => Self::Binary,
            DataType::LargeBinary => Self::LargeBinary,
            _ => return None,
        })
    }

    pub(super) fn physical(self) -> PhysicalType {
        match self {
            Self::Boolean => PhysicalType::BOOLEAN,
            Self::Int8 | Self::Int16 | Self::Int32 | Self::Date32 => PhysicalType::INT32,
            Self::Int64 | Self::TimestampMillis | Self::TimestampMicros | Self::TimestampNanos => PhysicalType::INT64,
            Self::Float32 => PhysicalType::FLOAT,
            Self::Float64 => PhysicalType::DOUBLE,
            Self::Utf8 | Self::LargeUtf8 | Self::Binary | Self::LargeBinary => PhysicalType::BYTE_ARRAY,
        }
    }
}

/// Maps `field`, reached with definition level `def` and repetition level `rep`, onto leaves
/// appended to `leaves`; `None` if it holds a type this writer does not encode.
pub(super) fn plan(field: &Field, def: u8, rep: u8, leaves: &mut Vec<LeafSpec>) -> Option<Node> {
    let nullable = field.is_nullable();
    let def = def.checked_add(nullable as u8)?;
    let first = leaves.len();
    Some(match field.data_type() {
        DataType::Struct(children) => {
            let children = children.iter().map(|child| plan(child, def, rep, leaves)).collect::<Option<Vec<_>>>()?;
            if children.is_empty() {
                return None;
            }
            Node::Struct { nullable, children, leaves: first..leaves.len() }
        }
        DataType::List(item) | DataType::Map(item, _) => {
            let level = rep.checked_add(1)?;
            let child = plan(item, def.checked_add(1)?, level, leaves)?;
            Node::List { nullable, level, child: Box::new(child), leaves: first..leaves.len() }
        }
        data_type => {
            leaves.push(LeafSpec { kind: ValueKind::of(data_type)?, max_def: def, max_rep: rep });
            Node::Leaf { leaf: first, nullable }
        }
    })
}

/// The nulls of `array` when it has any.
pub(super) fn nulls_of(array: &dyn Array) -> Option<&NullBuffer> {
    array.nulls().filter(|nulls| nulls.null_count() > 0)
}

/// Runs of valid entries within `range`, as ranges relative to its start.
pub(super) fn valid_runs<'a>(nulls: &'a NullBuffer, range: &Range<usize>) -> BitSliceIterator<'a> {
    let bits = nulls.inner();
    BitSliceIterator::new(bits.values(), bits.offset() + range.start, range.len())
}

impl Node {
    /// Writes the entries `range` of `array`, whose ancestors define `def` levels.
    pub(super) fn write(
        &self,
        array: &dyn Array,
        range: Range<usize>,
        def: u8,
        reps: Reps<'_>,
        leaves: &mut [Leaf],
    ) -> Result<()> {
        match self {
            Node::Leaf { leaf, nullable } => leaves[*leaf].write(array, range, *nullable, def, reps),
            Node::Struct { nullable, children, leaves: under } => {
                write_struct(array, range, def, reps, leaves, (*nullable, children, under))
            }
            Node::List { nullable, level, child, leaves: under } => {
                write_list(array, range, def, reps, leaves, (*nullable, *level, child, under))
            }
        }
    }
}

/// A struct's entries: its children where it is valid, a level per leaf where it is null.
fn write_struct(
    array: &dyn Array,
    range: Range<usize>,
    def: u8,
    reps: Reps<'_>,
    leaves: &mut [Leaf],
    (nullable, children, under): (bool, &[Node], &Range<usize>),
) -> Result<()> {
    let array = array.as_struct();
    let nulls = if nullable { nulls_of(array) } else { None };
    let Some(nulls) = nulls else {
        let def = def + nullable as u8;
        for (child, column) in children.iter().zip(array.columns()) {
            child.write(column.as_ref(), range.clone(), def, reps, leaves)?;
        }
        return Ok(());
    };
    let mut done = 0;
    for (start, end) in valid_runs(nulls, &range) {
        if start > done {
            absent(&mut leaves[under.clone()], def, sub_reps(reps, done..start), start - done);
        }
        let run = range.start + start..range.start + end;
        for (child, column) in children.iter().zip(array.columns()) {
            child.write(column.as_ref(), run.clone(), def + 1, sub_reps(reps, start..end), leaves)?;
        }
        done = end;
    }
    if done < range.len() {
        absent(&mut leaves[under.clone()], def, sub_reps(reps, done..range.len()), range.len() - done);
    }
    Ok(())
}

/// A list's (or map's) entries. Consecutive non-empty lists are written as one range of their
/// elements, whose repetition levels say where each list starts: a few calls per batch, not
/// one per list. A null or empty list ends such a run and gets one level per leaf.
fn write_list(
    array: &dyn Array,
    range: Range<usize>,
    def: u8,
    reps: Reps<'_>,
    leaves: &mut [Leaf],
    (nullable, level, child, under): (bool, u8, &Node, &Range<usize>),
) -> Result<()> {
    let (offsets, values): (&[i32], &dyn Array) = match array.data_type() {
        DataType::Map(..) => {
            let map = array.as_map();
            (map.value_offsets(), map.entries())
        }
        _ => {
            let list = array.as_list::<i32>();
            (list.value_offsets(), list.values().as_ref())
        }
    };
    let nulls = if nullable { nulls_of(array) } else { None };
    let defined = def + nullable as u8;
    let mut element_reps = Vec::new();
    let mut run_start = None;
    for (index, row) in range.clone().enumerate() {
        let rep = reps.map_or(0, |reps| reps[index]);
        let (start, end) = (offsets[row].as_usize(), offsets[row + 1].as_usize());
        let stops_at = if nulls.is_some_and(|nulls| nulls.is_null(row)) {
            def
        } else if start == end {
            defined
        } else {
            run_start.get_or_insert(start);
            element_reps.push(rep);
            element_reps.resize(element_reps.len() + end - start - 1, level);
            continue;
        };
        if let Some(run_start) = run_start.take() {
            child.write(values, run_start..start, defined + 1, Some(&element_reps), leaves)?;
            element_reps.clear();
        }
        absent(&mut leaves[under.clone()], stops_at, Some(std::slice::from_ref(&rep)), 1);
    }
    if let Some(run_start) = run_start {
        let end = offsets[range.end].as_usize();
        child.write(values, run_start..end, defined + 1, Some(&element_reps), leaves)?;
    }
    Ok(())
}

/// Records `count` entries that stop at definition level `def` (a null or an empty list above
/// these leaves): a level each, no value.
pub(super) fn absent(leaves: &mut [Leaf], def: u8, reps: Reps<'_>, count: usize) {
    for leaf in leaves {
        leaf.levels += count;
        leaf.push_repetition(reps, count);
        leaf.def.resize(leaf.def.len() + count, def);
    }
}
