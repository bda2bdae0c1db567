//! Fragment files encoded page by page straight from Arrow arrays, without `ArrowWriter`.
//!
//! A fragment is read once, by the compactor, so it needs none of what makes `ArrowWriter`
//! general: no dictionaries, statistics, bloom filters or page indexes. What is left is V2 data
//! pages holding RLE/bit-packed levels (uncompressed) and values (PLAIN, strings as
//! `DELTA_LENGTH_BYTE_ARRAY`) through one codec call per page. Writing that directly skips
//! `ArrowWriter`'s level builder, its byte-array encoder's buffer regrowth, a copy of every page
//! and the LZ4 codec's per-page zero-fill, and it compresses with liblz4, which runs ~40% fewer
//! instructions than the pure-Rust `lz4_flex` the parquet crate uses. Together 16% fewer
//! instructions for the converter (docs/performance.md, session 6). The file itself (page
//! headers, footer, schema) is still written by the parquet crate, and read back by its reader
//! like any other file.
//!
//! Schemas with a type this writer does not know make [`PageFileWriter::try_new`] return `None`;
//! the fragment writer then falls back to `ArrowWriter`.

use std::ffi::c_int;
use std::ops::Range;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType,
};
use arrow_array::{Array, GenericByteArray, RecordBatch, types::ByteArrayType};
use arrow_buffer::bit_iterator::BitSliceIterator;
use arrow_buffer::{ArrowNativeType, NullBuffer, ToByteSlice};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use bytes::Bytes;
use lz4::liblz4::LZ4_compress_default;
use parquet::arrow::{ARROW_SCHEMA_META_KEY, ArrowSchemaConverter, encode_arrow_schema};
use parquet::basic::{Compression, Encoding, Type as PhysicalType, ZstdLevel};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::file::metadata::{ColumnChunkMetaData, KeyValue};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedFileWriter, SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;

use crate::error::{Error, Result};

/// The page codecs this writer implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageCodec {
    /// Pages stored as they are.
    Uncompressed,
    /// Parquet's `LZ4_RAW` (an LZ4 block per page), compressed by liblz4.
    Lz4Raw,
    /// Zstandard at the given level, compressed by libzstd.
    Zstd(ZstdLevel),
}

impl PageCodec {
    /// The codec for a Parquet compression setting, if this writer implements it.
    pub fn for_compression(compression: Compression) -> Option<Self> {
        match compression {
            Compression::UNCOMPRESSED => Some(Self::Uncompressed),
            Compression::LZ4_RAW => Some(Self::Lz4Raw),
            Compression::ZSTD(level) => Some(Self::Zstd(level)),
            _ => None,
        }
    }

    fn compression(self) -> Compression {
        match self {
            Self::Uncompressed => Compression::UNCOMPRESSED,
            Self::Lz4Raw => Compression::LZ4_RAW,
            Self::Zstd(level) => Compression::ZSTD(level),
        }
    }
}

/// Rows written between checks of the page and row group limits.
const ROWS_PER_STEP: usize = 1024;

/// Size limits of a [`PageFileWriter`].
#[derive(Debug, Clone, Copy)]
pub struct PageLimits {
    /// A leaf's page is closed after the batch (or 1,024 rows of one) that takes its values
    /// and levels past this.
    pub page_bytes: usize,
    /// A row group is closed after the batch (or 1,024 rows of one) that takes it past this
    /// many rows.
    pub row_group_rows: usize,
}

/// Writes record batches of one schema into a Parquet file held in memory.
pub struct PageFileWriter {
    file: SerializedFileWriter<Vec<u8>>,
    fields: arrow_schema::Fields,
    columns: Vec<Node>,
    leaves: Vec<Leaf>,
    codec: Codec,
    limits: PageLimits,
    group_rows: usize,
}

impl PageFileWriter {
    /// A writer for `schema`, or `None` when the schema holds a type this writer does not
    /// encode (the caller then uses `ArrowWriter`).
    pub fn try_new(schema: &Schema, codec: PageCodec, limits: PageLimits) -> Result<Option<Self>> {
        let descriptor = ArrowSchemaConverter::new().convert(schema)?;
        let mut specs = Vec::new();
        let mut columns = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            match plan(field, 0, 0, &mut specs) {
                Some(node) => columns.push(node),
                None => return Ok(None),
            }
        }
        let descriptors = descriptor.columns();
        if specs.len() != descriptors.len() {
            return Ok(None);
        }
        let mut leaves = Vec::with_capacity(specs.len());
        for (spec, descr) in specs.into_iter().zip(descriptors) {
            // Our walk of the Arrow schema must agree with the parquet crate's mapping of it.
            let agrees = spec.max_def as i16 == descr.max_def_level()
                && spec.max_rep as i16 == descr.max_rep_level()
                && spec.kind.physical() == descr.physical_type();
            if !agrees {
                return Ok(None);
            }
            leaves.push(Leaf::new(spec, descr.clone()));
        }
        let properties = Arc::new(WriterProperties::builder().set_compression(codec.compression()).build());
        let mut file = SerializedFileWriter::new(Vec::new(), descriptor.root_schema_ptr(), properties)?;
        // What lets readers rebuild the exact Arrow types (time zones, map and list field names).
        file.append_key_value_metadata(KeyValue::new(ARROW_SCHEMA_META_KEY.to_string(), encode_arrow_schema(schema)));
        let fields = schema.fields().clone();
        Ok(Some(Self { file, fields, columns, leaves, codec: Codec::new(codec), limits, group_rows: 0 }))
    }

    /// Appends a batch of the writer's schema.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        // The walk downcasts each array to the type it planned for: check that first.
        let columns = batch.columns();
        let mismatch = columns.len() != self.fields.len()
            || columns.iter().zip(&self.fields).any(|(column, field)| column.data_type() != field.data_type());
        if mismatch {
            return Err(Error::Arrow(arrow_schema::ArrowError::SchemaError(format!(
                "batch schema {} is not the fragment schema {}",
                batch.schema(),
                Schema::new(self.fields.clone())
            ))));
        }
        // A step at a time, so a page outgrows its limit by at most a step's values.
        for start in (0..rows).step_by(ROWS_PER_STEP) {
            let range = start..rows.min(start + ROWS_PER_STEP);
            for (node, column) in self.columns.iter().zip(columns) {
                node.write(column.as_ref(), range.clone(), 0, None, &mut self.leaves)?;
            }
            self.group_rows += range.len();
            // Pages end between steps only, so every page starts a new row.
            for leaf in &mut self.leaves {
                if leaf.page_bytes() >= self.limits.page_bytes {
                    leaf.flush_page(&mut self.codec)?;
                }
            }
            if self.group_rows >= self.limits.row_group_rows {
                self.flush_row_group()?;
            }
        }
        Ok(())
    }

    /// Adds a key-value entry to the footer.
    pub fn append_key_value_metadata(&mut self, entry: KeyValue) {
        self.file.append_key_value_metadata(entry);
    }

    /// Closes the file and returns its bytes.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        self.flush_row_group()?;
        Ok(self.file.into_inner()?)
    }

    fn flush_row_group(&mut self) -> Result<()> {
        if self.group_rows == 0 {
            return Ok(());
        }
        let mut chunks = Vec::with_capacity(self.leaves.len());
        for leaf in &mut self.leaves {
            leaf.flush_page(&mut self.codec)?;
            chunks.push(leaf.close_chunk(self.codec.compressor.kind, self.group_rows)?);
        }
        // Room for the whole row group at once, not a doubling of the file buffer per chunk.
        self.file.inner_mut().reserve(chunks.iter().map(|(chunk, _)| chunk.len()).sum());
        let mut group = self.file.next_row_group()?;
        for ((chunk, close), leaf) in chunks.into_iter().zip(&mut self.leaves) {
            group.append_column(&chunk, close)?;
            // The chunk is copied into the file: its buffer serves the leaf's next chunk. Fresh
            // ones grew by reallocation, and their new pages faulted in, every row group.
            leaf.reuse_chunk_buffer(chunk);
        }
        group.close()?;
        self.group_rows = 0;
        Ok(())
    }
}

/// The repetition level of each entry of a range, or `None` at the top, where each entry starts
/// a row (level 0).
type Reps<'a> = Option<&'a [u8]>;

/// The repetition levels of the entries `range` of `reps`.
fn sub_reps(reps: Reps<'_>, range: Range<usize>) -> Reps<'_> {
    reps.map(|reps| &reps[range])
}

/// How one Arrow field maps onto Parquet leaf columns. `leaves` are the indexes of the leaf
/// columns under it, which are contiguous in schema order.
enum Node {
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
struct LeafSpec {
    kind: ValueKind,
    max_def: u8,
    max_rep: u8,
}

/// The Arrow value types this writer encodes, by how their values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueKind {
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
    fn of(data_type: &DataType) -> Option<Self> {
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

    /// How a page holds the values: byte arrays as their lengths then their bytes, which
    /// takes one copy per run of values (not one per value) and compresses better than PLAIN's
    /// interleaving of lengths and bytes.
    fn encoding(self) -> Encoding {
        match self.physical() {
            PhysicalType::BYTE_ARRAY => Encoding::DELTA_LENGTH_BYTE_ARRAY,
            _ => Encoding::PLAIN,
        }
    }

    fn physical(self) -> PhysicalType {
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
fn plan(field: &Field, def: u8, rep: u8, leaves: &mut Vec<LeafSpec>) -> Option<Node> {
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
fn nulls_of(array: &dyn Array) -> Option<&NullBuffer> {
    array.nulls().filter(|nulls| nulls.null_count() > 0)
}

/// Runs of valid entries within `range`, as ranges relative to its start.
fn valid_runs<'a>(nulls: &'a NullBuffer, range: &Range<usize>) -> BitSliceIterator<'a> {
    let bits = nulls.inner();
    BitSliceIterator::new(bits.values(), bits.offset() + range.start, range.len())
}

impl Node {
    /// Writes the entries `range` of `array`, whose ancestors define `def` levels.
    fn write(
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
                let array = array.as_struct();
                let nulls = if *nullable { nulls_of(array) } else { None };
                let Some(nulls) = nulls else {
                    let def = def + *nullable as u8;
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
            Node::List { nullable, level, child, leaves: under } => {
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
                let nulls = if *nullable { nulls_of(array) } else { None };
                let defined = def + *nullable as u8;
                // Consecutive non-empty lists are written as one range of their elements, whose
                // repetition levels say where each list starts: a few calls per batch, not one
                // per list. A null or empty list ends such a run and gets one level per leaf.
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
                        element_reps.resize(element_reps.len() + end - start - 1, *level);
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
        }
    }
}

/// Records `count` entries that stop at definition level `def` (a null or an empty list above
/// these leaves): a level each, no value.
fn absent(leaves: &mut [Leaf], def: u8, reps: Reps<'_>, count: usize) {
    for leaf in leaves {
        leaf.levels += count;
        leaf.push_repetition(reps, count);
        leaf.def.resize(leaf.def.len() + count, def);
    }
}

/// Pages of a leaf stored uncompressed after one saved less than an eighth of its size.
const STORED_PAGES_AFTER_POOR_COMPRESSION: usize = 8;

/// One leaf column: its open page and the row group's finished pages.
struct Leaf {
    spec: LeafSpec,
    descr: ColumnDescPtr,
    /// Level entries in the open page (values plus nulls and empty lists).
    levels: usize,
    def: Vec<u8>,
    rep: Vec<u8>,
    /// The open page's PLAIN-encoded values, after `gap` bytes kept free in front.
    values: Vec<u8>,
    /// Room in front of a byte array page's bytes for its encoded lengths, which lets the page
    /// be compressed where it is instead of copied next to them (sized from the last page).
    gap: usize,
    /// The open page's byte array lengths (its `values` are their bytes, back to back).
    lengths: Vec<i32>,
    /// Booleans in the open page (PLAIN booleans are bits, so `values` alone cannot tell).
    booleans: usize,
    /// Pages still to store uncompressed since one compressed poorly.
    pages_to_store: usize,
    /// The row group's pages, serialized.
    chunk: TrackedWrite<Vec<u8>>,
    chunk_levels: i64,
    chunk_uncompressed: i64,
}

impl Leaf {
    fn new(spec: LeafSpec, descr: ColumnDescPtr) -> Self {
        Self {
            spec,
            descr,
            levels: 0,
            def: Vec::new(),
            rep: Vec::new(),
            values: Vec::new(),
            gap: 0,
            lengths: Vec::new(),
            booleans: 0,
            pages_to_store: 0,
            chunk: TrackedWrite::new(Vec::new()),
            chunk_levels: 0,
            chunk_uncompressed: 0,
        }
    }

    /// Bytes the open page will take before compression, about.
    fn page_bytes(&self) -> usize {
        self.values.len() - self.gap + self.lengths.len() + (self.def.len() + self.rep.len()) / 4
    }

    fn push_repetition(&mut self, reps: Reps<'_>, count: usize) {
        if self.spec.max_rep > 0 {
            match reps {
                Some(reps) => self.rep.extend_from_slice(reps),
                None => self.rep.resize(self.rep.len() + count, 0),
            }
        }
    }

    /// Writes the values `range` of `array`, whose ancestors define `def` levels.
    fn write(&mut self, array: &dyn Array, range: Range<usize>, nullable: bool, def: u8, reps: Reps<'_>) -> Result<()> {
        let nulls = nulls_of(array);
        // A non-nullable column may hold nulls only where an ancestor is null, which is never
        // visited; in a visited range one would be a bug upstream.
        let nulls = match nulls {
            Some(nulls) if !nullable => {
                if valid_runs(nulls, &range).map(|(start, end)| end - start).sum::<usize>() < range.len() {
                    return Err(Error::Arrow(arrow_schema::ArrowError::InvalidArgumentError(format!(
                        "null in the non-nullable column {}",
                        self.descr.path()
                    ))));
                }
                None
            }
            nulls => nulls,
        };
        let count = range.len();
        self.levels += count;
        self.push_repetition(reps, count);
        if self.spec.max_def > 0 {
            match nulls {
                Some(nulls) => {
                    let start = self.def.len();
                    self.def.resize(start + count, def);
                    for (run_start, run_end) in valid_runs(nulls, &range) {
                        self.def[start + run_start..start + run_end].fill(def + 1);
                    }
                }
                None => self.def.resize(self.def.len() + count, def + nullable as u8),
            }
        }
        match self.spec.kind {
            ValueKind::Boolean => {
                let values = array.as_boolean().values();
                for_each_valid(nulls, &range, |row| {
                    let bit = self.booleans % 8;
                    if bit == 0 {
                        self.values.push(0);
                    }
                    *self.values.last_mut().expect("pushed above") |= (values.value(row) as u8) << bit;
                    self.booleans += 1;
                });
            }
            ValueKind::Int8 => widen(&mut self.values, array.as_primitive::<Int8Type>().values(), nulls, &range),
            ValueKind::Int16 => widen(&mut self.values, array.as_primitive::<Int16Type>().values(), nulls, &range),
            ValueKind::Int32 => fixed(&mut self.values, array.as_primitive::<Int32Type>().values(), nulls, &range),
            ValueKind::Date32 => fixed(&mut self.values, array.as_primitive::<Date32Type>().values(), nulls, &range),
            ValueKind::Int64 => fixed(&mut self.values, array.as_primitive::<Int64Type>().values(), nulls, &range),
            ValueKind::TimestampMillis => {
                fixed(&mut self.values, array.as_primitive::<TimestampMillisecondType>().values(), nulls, &range)
            }
            ValueKind::TimestampMicros => {
                fixed(&mut self.values, array.as_primitive::<TimestampMicrosecondType>().values(), nulls, &range)
            }
            ValueKind::TimestampNanos => {
                fixed(&mut self.values, array.as_primitive::<TimestampNanosecondType>().values(), nulls, &range)
            }
            ValueKind::Float32 => fixed(&mut self.values, array.as_primitive::<Float32Type>().values(), nulls, &range),
            ValueKind::Float64 => fixed(&mut self.values, array.as_primitive::<Float64Type>().values(), nulls, &range),
            ValueKind::Utf8 => {
                byte_arrays(&mut self.values, &mut self.lengths, array.as_string::<i32>(), nulls, &range)
            }
            ValueKind::LargeUtf8 => {
                byte_arrays(&mut self.values, &mut self.lengths, array.as_string::<i64>(), nulls, &range)
            }
            ValueKind::Binary => {
                byte_arrays(&mut self.values, &mut self.lengths, array.as_binary::<i32>(), nulls, &range)
            }
            ValueKind::LargeBinary => {
                byte_arrays(&mut self.values, &mut self.lengths, array.as_binary::<i64>(), nulls, &range)
            }
        }
        Ok(())
    }

    /// Closes the open page, if it holds anything, into the chunk. It is a V2 data page: its
    /// levels, already run-length encoded, stay uncompressed, and its values are compressed
    /// straight from the leaf's buffer.
    fn flush_page(&mut self, codec: &mut Codec) -> Result<()> {
        if self.levels == 0 {
            return Ok(());
        }
        let (max_def, max_rep) = (self.spec.max_def, self.spec.max_rep);
        let page = &mut codec.page;
        page.clear();
        let rep_bytes = if max_rep > 0 { encode_levels(&self.rep, max_rep, page) } else { 0 };
        let def_bytes = if max_def > 0 { encode_levels(&self.def, max_def, page) } else { 0 };
        let values = if max_def > 0 { count_equal(&self.def, max_def) } else { self.levels };
        let rows = if max_rep > 0 { count_equal(&self.rep, 0) } else { self.levels };
        let encoded = match self.spec.kind.encoding() {
            Encoding::DELTA_LENGTH_BYTE_ARRAY => {
                let staged = &mut codec.staged;
                staged.clear();
                delta_binary_packed(&self.lengths, staged);
                let lengths = staged.len();
                // The next page's room: this page's lengths, with a margin for a page of more values.
                let gap = std::mem::replace(&mut self.gap, lengths + lengths / 4 + 16);
                if lengths <= gap {
                    self.values[gap - lengths..gap].copy_from_slice(staged);
                    &self.values[gap - lengths..]
                } else {
                    staged.extend_from_slice(&self.values[gap..]);
                    &codec.staged[..]
                }
            }
            _ => &self.values[..],
        };
        let compressed = if self.pages_to_store > 0 {
            self.pages_to_store -= 1;
            page.extend_from_slice(encoded);
            false
        } else {
            let start = page.len();
            let compressed = codec.compressor.compress(encoded, page)?;
            // Values that barely compress (random ids, hashes) cost the codec's full price for
            // nothing: store the next pages as they are, and try again after those.
            if compressed && (page.len() - start) * 8 > encoded.len() * 7 {
                self.pages_to_store = STORED_PAGES_AFTER_POOR_COMPRESSION;
            }
            compressed
        };
        let uncompressed = rep_bytes + def_bytes + encoded.len();
        let count = |n: usize| u32::try_from(n).map_err(|_| parquet_error("a page of over 4 G values or bytes"));
        // The page's buffer goes to the page writer and comes back once it is copied out.
        let page_bytes = Bytes::from(std::mem::take(&mut codec.page));
        let page = Page::DataPageV2 {
            buf: page_bytes.clone(),
            num_values: count(self.levels)?,
            encoding: self.spec.kind.encoding(),
            num_nulls: count(self.levels - values)?,
            num_rows: count(rows)?,
            def_levels_byte_len: count(def_bytes)?,
            rep_levels_byte_len: count(rep_bytes)?,
            is_compressed: compressed,
            statistics: None,
        };
        let spec = SerializedPageWriter::new(&mut self.chunk).write_page(CompressedPage::new(page, uncompressed))?;
        codec.page = Vec::from(page_bytes);
        self.chunk_levels += self.levels as i64;
        self.chunk_uncompressed += spec.uncompressed_size as i64;
        self.levels = 0;
        self.booleans = 0;
        self.def.clear();
        self.rep.clear();
        self.values.clear();
        self.values.resize(self.gap, 0);
        self.lengths.clear();
        Ok(())
    }

    /// Hands over the row group's pages and their metadata, relative to the chunk's start.
    fn close_chunk(&mut self, codec: PageCodec, rows: usize) -> Result<(Bytes, ColumnCloseResult)> {
        let chunk = std::mem::replace(&mut self.chunk, TrackedWrite::new(Vec::new())).into_inner()?;
        let metadata = ColumnChunkMetaData::builder(self.descr.clone())
            .set_compression(codec.compression())
            .set_encodings(vec![self.spec.kind.encoding(), Encoding::RLE])
            .set_num_values(std::mem::take(&mut self.chunk_levels))
            .set_total_compressed_size(chunk.len() as i64)
            .set_total_uncompressed_size(std::mem::take(&mut self.chunk_uncompressed))
            .set_data_page_offset(0)
            .build()?;
        let close = ColumnCloseResult {
            bytes_written: chunk.len() as u64,
            rows_written: rows as u64,
            metadata,
            bloom_filter: None,
            column_index: None,
            offset_index: None,
        };
        Ok((Bytes::from(chunk), close))
    }

    /// Takes back the buffer of a chunk [`Self::close_chunk`] handed over, once it was copied
    /// out (a copy only when something else still holds it).
    fn reuse_chunk_buffer(&mut self, chunk: Bytes) {
        let mut buffer = Vec::from(chunk);
        buffer.clear();
        self.chunk = TrackedWrite::new(buffer);
    }
}

fn parquet_error(message: &str) -> Error {
    Error::Parquet(parquet::errors::ParquetError::General(message.to_string()))
}

/// Calls `each` with every valid row of `range`.
fn for_each_valid(nulls: Option<&NullBuffer>, range: &Range<usize>, mut each: impl FnMut(usize)) {
    match nulls {
        None => range.clone().for_each(each),
        Some(nulls) => {
            for (start, end) in valid_runs(nulls, range) {
                (range.start + start..range.start + end).for_each(&mut each);
            }
        }
    }
}

/// PLAIN values of a fixed-width type: the valid values' little-endian bytes, back to back.
fn fixed<T: ArrowNativeType>(out: &mut Vec<u8>, values: &[T], nulls: Option<&NullBuffer>, range: &Range<usize>) {
    // Native order is little-endian on every target Lambda runs (x86_64, aarch64).
    match nulls {
        None => out.extend_from_slice(values[range.clone()].to_byte_slice()),
        Some(nulls) => {
            for (start, end) in valid_runs(nulls, range) {
                out.extend_from_slice(values[range.start + start..range.start + end].to_byte_slice());
            }
        }
    }
}

/// PLAIN values of an 8- or 16-bit integer column, stored as Parquet INT32.
fn widen<T: ArrowNativeType + Into<i32>>(
    out: &mut Vec<u8>,
    values: &[T],
    nulls: Option<&NullBuffer>,
    range: &Range<usize>,
) {
    for_each_valid(nulls, range, |row| out.extend_from_slice(&values[row].into().to_le_bytes()));
}

/// Byte arrays as `DELTA_LENGTH_BYTE_ARRAY` takes them: each valid value's length to `lengths`,
/// the values' bytes back to back to `out`, one copy per run of valid values.
fn byte_arrays<T: ByteArrayType>(
    out: &mut Vec<u8>,
    lengths: &mut Vec<i32>,
    array: &GenericByteArray<T>,
    nulls: Option<&NullBuffer>,
    range: &Range<usize>,
) {
    let offsets = array.value_offsets();
    let bytes = array.value_data();
    let mut copy = |rows: Range<usize>| {
        out.extend_from_slice(&bytes[offsets[rows.start].as_usize()..offsets[rows.end].as_usize()]);
        // Page sizes keep every length far below 2 GiB.
        lengths.extend(offsets[rows.start..=rows.end].windows(2).map(|pair| (pair[1] - pair[0]).as_usize() as i32));
    };
    match nulls {
        None => copy(range.clone()),
        Some(nulls) => {
            for (start, end) in valid_runs(nulls, range) {
                copy(range.start + start..range.start + end);
            }
        }
    }
}

/// `values` in Parquet's `DELTA_BINARY_PACKED` encoding: blocks of 128 deltas from the previous
/// value, each block's minimum subtracted, in 4 miniblocks of 32 bit-packed at their own width.
fn delta_binary_packed(values: &[i32], out: &mut Vec<u8>) {
    const BLOCK: usize = 128;
    const MINIBLOCKS: usize = 4;
    const MINIBLOCK: usize = BLOCK / MINIBLOCKS;
    varint(BLOCK, out);
    varint(MINIBLOCKS, out);
    varint(values.len(), out);
    zigzag(values.first().map_or(0, |&first| i64::from(first)), out);
    let mut deltas = [0i64; BLOCK];
    // Block k holds the deltas to values 1 + 128k.. from the value before each.
    for block in (1..values.len()).step_by(BLOCK) {
        let count = BLOCK.min(values.len() - block);
        let mut min = i64::MAX;
        for (delta, pair) in deltas.iter_mut().zip(values[block - 1..block + count].windows(2)) {
            *delta = i64::from(pair[1]) - i64::from(pair[0]);
            min = min.min(*delta);
        }
        zigzag(min, out);
        // Widths of miniblocks the last block does not need stay 0, with no body; the last
        // one it needs is padded to its full 32 values.
        deltas[count..].fill(min);
        let widths = out.len();
        out.extend_from_slice(&[0; MINIBLOCKS]);
        for index in 0..count.div_ceil(MINIBLOCK) {
            let miniblock = &deltas[index * MINIBLOCK..(index + 1) * MINIBLOCK];
            let max = miniblock.iter().map(|&delta| (delta - min) as u64).max().unwrap_or(0);
            let width = 64 - max.leading_zeros();
            out[widths + index] = width as u8;
            pack_bits(miniblock.iter().map(|&delta| (delta - min) as u64), width, out);
        }
    }
}

/// Packs values of `width` bits, least significant first; zero bits fill the last byte.
fn pack_bits(values: impl Iterator<Item = u64>, width: u32, out: &mut Vec<u8>) {
    if width == 0 {
        return;
    }
    let (mut buffer, mut bits) = (0u64, 0u32);
    for value in values {
        buffer |= value << bits;
        bits += width;
        if bits >= 64 {
            out.extend_from_slice(&buffer.to_le_bytes());
            bits -= 64;
            // The value's bits that did not fit (none when it ended exactly at 64).
            buffer = if bits == 0 { 0 } else { value >> (width - bits) };
        }
    }
    out.extend_from_slice(&buffer.to_le_bytes()[..bits.div_ceil(8) as usize]);
}

/// A signed value as zigzag-mapped ULEB128.
fn zigzag(value: i64, out: &mut Vec<u8>) {
    varint(((value << 1) ^ (value >> 63)) as u64 as usize, out);
}

/// How many of `levels` are `level`.
fn count_equal(levels: &[u8], level: u8) -> usize {
    levels.iter().filter(|&&each| each == level).count()
}

/// Appends `levels` in the RLE/bit-packed hybrid encoding at the bit width of `max`, and
/// returns the bytes appended.
fn encode_levels(levels: &[u8], max: u8, out: &mut Vec<u8>) -> usize {
    let width = 8 - max.leading_zeros();
    let start = out.len();
    let mut literals = 0; // levels[literals..at] wait to be bit-packed
    let mut at = 0;
    while at < levels.len() {
        let value = levels[at];
        let run = run_length(&levels[at..]);
        // A bit-packed run holds whole groups of 8: complete the pending group from this run,
        // and repeat the rest if that leaves 8 or more.
        let fill = (8 - (at - literals) % 8) % 8;
        if run >= fill + 8 {
            if at + fill > literals {
                bit_pack(&levels[literals..at + fill], width, out);
            }
            varint((run - fill) << 1, out);
            out.push(value);
            literals = at + run;
        }
        at += run;
    }
    if literals < levels.len() {
        bit_pack(&levels[literals..], width, out);
    }
    out.len() - start
}

/// How many of `levels` from the first on equal the first, compared eight at a time.
fn run_length(levels: &[u8]) -> usize {
    let pattern = u64::from_ne_bytes([levels[0]; 8]);
    let mut words = levels.chunks_exact(8);
    let mut length = 0;
    for word in &mut words {
        let differs = u64::from_le_bytes(word.try_into().expect("8 bytes")) ^ pattern;
        if differs != 0 {
            return length + (differs.trailing_zeros() / 8) as usize;
        }
        length += 8;
    }
    length + words.remainder().iter().take_while(|&&level| level == levels[0]).count()
}

/// A bit-packed run of `levels`, padded with zeros to a whole group of 8.
fn bit_pack(levels: &[u8], width: u32, out: &mut Vec<u8>) {
    let groups = levels.len().div_ceil(8);
    varint((groups << 1) | 1, out);
    let start = out.len();
    if width == 1 {
        // Levels of 0 and 1 (a nullable column, or one list level): a multiply gathers the low
        // bit of each of eight bytes into one byte, a step instead of eight.
        let mut eights = levels.chunks_exact(8);
        out.extend(eights.by_ref().map(|eight| gather_low_bits(u64::from_le_bytes(eight.try_into().expect("8")))));
        let rest = eights.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            out.push(gather_low_bits(u64::from_le_bytes(last)));
        }
    } else {
        pack_bits(levels.iter().map(|&level| u64::from(level)), width, out);
    }
    // Zero levels pad the last group of 8.
    out.resize(start + groups * width as usize, 0);
}

/// Bit `i` of the result is the low bit of byte `i` of `bytes`, each byte being 0 or 1. The
/// multiplier's terms move byte `i`'s bit to bit 56 + `i`, and every other product lands
/// below bit 56 or past bit 63.
fn gather_low_bits(bytes: u64) -> u8 {
    (bytes.wrapping_mul(0x0102_0408_1020_4080) >> 56) as u8
}

/// Unsigned LEB128, as RLE run headers are written.
fn varint(mut value: usize, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A page codec and the buffers reused from page to page.
struct Codec {
    /// The page being assembled: levels, then values.
    page: Vec<u8>,
    /// Values encoded in two parts (lengths, bytes), joined for the codec.
    staged: Vec<u8>,
    compressor: Compressor,
}

impl Codec {
    fn new(kind: PageCodec) -> Self {
        Self { page: Vec::new(), staged: Vec::new(), compressor: Compressor { kind, output: Vec::new(), zstd: None } }
    }
}

/// Compresses page values.
struct Compressor {
    kind: PageCodec,
    /// zstd's output, sized once to the largest bound seen so it is zeroed only then.
    output: Vec<u8>,
    zstd: Option<zstd::bulk::Compressor<'static>>,
}

impl Compressor {
    /// Appends `input`, compressed, to `out`; false if it was stored as it is.
    fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        let written = match self.kind {
            PageCodec::Uncompressed => {
                out.extend_from_slice(input);
                return Ok(false);
            }
            PageCodec::Lz4Raw => {
                let source_len = c_int::try_from(input.len()).map_err(|_| parquet_error("a page of over 2 GiB"))?;
                out.reserve(lz4::block::compress_bound(input.len())?);
                let spare = out.spare_capacity_mut();
                let capacity = c_int::try_from(spare.len()).unwrap_or(c_int::MAX);
                // SAFETY: liblz4 reads `source_len` bytes from `input` and writes at most
                // `capacity` bytes, all within the spare capacity, returning how many (0 when
                // they do not fit). Compressing into the page itself saves copying every
                // page's output once more.
                let written = unsafe {
                    LZ4_compress_default(input.as_ptr().cast(), spare.as_mut_ptr().cast(), source_len, capacity)
                };
                let written =
                    usize::try_from(written).ok().filter(|n| *n > 0).ok_or_else(|| parquet_error("LZ4 failed"))?;
                // SAFETY: the first `written` bytes of the spare capacity were just written.
                unsafe { out.set_len(out.len() + written) };
                return Ok(true);
            }
            PageCodec::Zstd(level) => {
                let compressor = match &mut self.zstd {
                    Some(compressor) => compressor,
                    None => self.zstd.insert(zstd::bulk::Compressor::new(level.compression_level())?),
                };
                let output = sized(&mut self.output, zstd::zstd_safe::compress_bound(input.len()));
                compressor.compress_to_buffer(input, output)?
            }
        };
        out.extend_from_slice(&self.output[..written]);
        Ok(true)
    }
}

/// `output` grown to at least `bound` bytes (zero-filled only when it grows).
fn sized(output: &mut Vec<u8>, bound: usize) -> &mut [u8] {
    if output.len() < bound {
        output.resize(bound, 0);
    }
    output
}

impl std::fmt::Debug for PageFileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageFileWriter")
            .field("codec", &self.codec.compressor.kind)
            .field("limits", &self.limits)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, RecordBatch, RecordBatchReader};
    use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::{Value, json};

    use super::*;

    /// A file's rows as one batch, with the Arrow schema its footer gives.
    fn read_back(file: Vec<u8>) -> RecordBatch {
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(file)).unwrap().build().unwrap();
        let schema = reader.schema();
        concat(&schema, &reader.collect::<Result<Vec<_>, _>>().unwrap())
    }

    fn concat(schema: &SchemaRef, batches: &[RecordBatch]) -> RecordBatch {
        arrow_select::concat::concat_batches(schema, batches).unwrap()
    }

    fn write(batches: &[RecordBatch], codec: PageCodec, limits: PageLimits) -> Vec<u8> {
        let mut writer = PageFileWriter::try_new(&batches[0].schema(), codec, limits).unwrap().expect("supported");
        for batch in batches {
            writer.write(batch).unwrap();
        }
        writer.finish().unwrap()
    }

    /// Every way a value can be absent, in every type, nested every way the schema allows.
    fn nested_schema() -> SchemaRef {
        let tag = Field::new("item", DataType::Utf8, true);
        let item = DataType::Struct(
            vec![
                Field::new("sku", DataType::Utf8, false),
                Field::new("qty", DataType::Int64, true),
                Field::new("tags", DataType::List(Arc::new(tag.clone())), true),
            ]
            .into(),
        );
        let entries = Field::new(
            "entries",
            DataType::Struct(
                vec![Field::new("keys", DataType::Utf8, false), Field::new("values", DataType::Int64, true)].into(),
            ),
            false,
        );
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("flag", DataType::Boolean, true),
            Field::new("small", DataType::Int32, true),
            Field::new("ratio", DataType::Float64, true),
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("name", DataType::Utf8, true),
            Field::new(
                "device",
                DataType::Struct(
                    vec![
                        Field::new("os", DataType::Utf8, false),
                        Field::new("flags", DataType::List(Arc::new(tag.clone())), true),
                    ]
                    .into(),
                ),
                true,
            ),
            Field::new("tags", DataType::List(Arc::new(tag)), true),
            Field::new("items", DataType::List(Arc::new(Field::new("item", item, true))), true),
            Field::new("attributes", DataType::Map(Arc::new(entries), false), true),
        ]))
    }

    /// `value`, or null one time in ten.
    fn maybe(rng: &mut StdRng, value: impl FnOnce(&mut StdRng) -> Value) -> Value {
        if rng.random_range(0..10) == 0 { Value::Null } else { value(rng) }
    }

    fn strings(rng: &mut StdRng) -> Value {
        let count = rng.random_range(0..4);
        Value::Array((0..count).map(|i| maybe(rng, |_| json!(format!("s{i}")))).collect())
    }

    fn random_row(rng: &mut StdRng, id: i64) -> Value {
        let item = |rng: &mut StdRng, i: usize| json!({"sku": format!("k{i}"), "qty": maybe(rng, |_| json!(i)), "tags": maybe(rng, strings)});
        json!({
            "id": id,
            "flag": maybe(rng, |rng| json!(rng.random_bool(0.5))),
            "small": maybe(rng, |rng| json!(rng.random_range(-5..5))),
            "ratio": maybe(rng, |rng| json!(rng.random::<f64>())),
            "at": maybe(rng, |_| json!("2026-05-16T10:00:00.123456Z")),
            "name": maybe(rng, |rng| json!("x".repeat(rng.random_range(0..20)))),
            "device": maybe(rng, |rng| json!({"os": "linux", "flags": maybe(rng, strings)})),
            "tags": maybe(rng, strings),
            "items": maybe(rng, |rng| {
                Value::Array((0..rng.random_range(0..4)).map(|i| maybe(rng, |rng| item(rng, i))).collect())
            }),
            "attributes": maybe(rng, |rng| {
                Value::Object((0..rng.random_range(0..3)).map(|i| (format!("a{i}"), maybe(rng, |_| json!(i * 10)))).collect())
            }),
        })
    }

    fn random_batch(seed: u64, rows: usize) -> RecordBatch {
        let mut rng = StdRng::seed_from_u64(seed);
        let lines: String = (0..rows).map(|id| random_row(&mut rng, id as i64).to_string() + "\n").collect();
        let mut reader = arrow_json::ReaderBuilder::new(nested_schema())
            .with_batch_size(rows.max(1))
            .build(lines.as_bytes())
            .unwrap();
        reader.next().unwrap().unwrap()
    }

    #[test]
    fn nested_nullable_columns_read_back_as_written() {
        let unlimited = PageLimits { page_bytes: usize::MAX, row_group_rows: usize::MAX };
        let tiny = PageLimits { page_bytes: 64, row_group_rows: 7 };
        for seed in 0..40 {
            let batch = random_batch(seed, 1 + seed as usize * 5);
            // Slices start mid-buffer, as batches split by partition or by size do.
            let mut rng = StdRng::seed_from_u64(seed);
            let mut pieces = Vec::new();
            let mut start = 0;
            while start < batch.num_rows() {
                let length = rng.random_range(1..=batch.num_rows() - start);
                pieces.push(batch.slice(start, length));
                start += length;
            }
            for (codec, limits) in [
                (PageCodec::Lz4Raw, unlimited),
                (PageCodec::Uncompressed, tiny),
                (PageCodec::Zstd(ZstdLevel::default()), tiny),
            ] {
                assert_eq!(read_back(write(&pieces, codec, limits)), batch, "seed {seed} {codec:?}");
            }
        }
    }

    #[test]
    fn the_reference_workload_reads_back_as_decoded() {
        use crate::fragment::{FragmentEncoding, FragmentSource, FragmentWriter};
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/events.schema.json");
        let schema = Arc::new(crate::schema::TableSchema::from_path(std::path::Path::new(path)).unwrap());
        let object = crate::event::SourceObject { bucket: "raw".into(), key: "k.json".into(), etag: None };
        let data = crate::sample::ndjson_object(3, 0, 256 * 1024);
        let batches = crate::decode::JsonDecoder::new(schema.clone(), 100).decode(&object, &data).unwrap().batches;
        let mut read = Vec::new();
        for direct_pages in [true, false] {
            let encoding = FragmentEncoding { direct_pages, ..FragmentEncoding::default() };
            let mut writer = FragmentWriter::with_encoding(&schema.table, &encoding).unwrap();
            assert_eq!(writer.writes_pages_directly(), direct_pages);
            let source = FragmentSource { uri: object.uri(), etag: None, rows: 0, total_rows: None };
            writer.write(source, &batches).unwrap();
            let fragment = crate::fragment::decode("f".into(), Bytes::from(writer.finish("b").unwrap())).unwrap();
            read.push(concat(&schema.table, &fragment.batches));
        }
        assert_eq!(read[0], concat(&schema.table, &batches));
        assert_eq!(read[0], read[1]);
    }

    #[test]
    fn pages_and_row_groups_close_at_their_limits() {
        let batch = random_batch(99, 300);
        let pieces: Vec<_> = (0..30).map(|i| batch.slice(i * 10, 10)).collect();
        let file = write(&pieces, PageCodec::Lz4Raw, PageLimits { page_bytes: 200, row_group_rows: 64 });
        let metadata = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(file.clone())).unwrap().metadata().clone();
        // 64 rows is reached after 7 batches of 10: 4 groups of 70 rows, then 20.
        let rows: Vec<i64> = metadata.row_groups().iter().map(|group| group.num_rows()).collect();
        assert_eq!(rows, [70, 70, 70, 70, 20]);
        assert_eq!(read_back(file), batch);
    }

    #[test]
    fn narrow_and_binary_types_are_widened_as_parquet_stores_them() {
        let base = random_batch(5, 50);
        let cast = |column: &str, to: DataType| -> (Field, ArrayRef) {
            let array = base.column_by_name(column).unwrap();
            (Field::new(column, to.clone(), true), arrow_cast::cast(array, &to).unwrap())
        };
        let columns = [
            cast("small", DataType::Int8),
            cast("small", DataType::Int16),
            cast("small", DataType::Date32),
            cast("ratio", DataType::Float32),
            cast("name", DataType::Binary),
            cast("name", DataType::LargeUtf8),
            cast("name", DataType::LargeBinary),
            cast("at", DataType::Timestamp(TimeUnit::Millisecond, None)),
            cast("at", DataType::Timestamp(TimeUnit::Nanosecond, Some("+02:00".into()))),
        ];
        let fields: Vec<Field> =
            columns.iter().enumerate().map(|(i, (field, _))| field.clone().with_name(format!("c{i}"))).collect();
        let batch =
            RecordBatch::try_new(Arc::new(Schema::new(fields)), columns.into_iter().map(|(_, array)| array).collect())
                .unwrap();
        let limits = PageLimits { page_bytes: 100, row_group_rows: 1000 };
        assert_eq!(read_back(write(std::slice::from_ref(&batch), PageCodec::Lz4Raw, limits)), batch);
    }

    #[test]
    fn long_batches_are_paged_and_grouped_within_themselves() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let batch = random_batch(11, 5000);
        let file =
            write(std::slice::from_ref(&batch), PageCodec::Lz4Raw, PageLimits { page_bytes: 1, row_group_rows: 2048 });
        let reader = SerializedFileReader::new(Bytes::from(file.clone())).unwrap();
        let groups: Vec<i64> = reader.metadata().row_groups().iter().map(|group| group.num_rows()).collect();
        assert_eq!(groups, [2048, 2048, 904]);
        let pages = reader.get_row_group(0).unwrap().get_column_page_reader(0).unwrap().count();
        assert_eq!(pages, 2);
        assert_eq!(read_back(file), batch);
    }

    #[test]
    fn a_batch_of_another_schema_is_refused() {
        let limits = PageLimits { page_bytes: 100, row_group_rows: 100 };
        let mut writer = PageFileWriter::try_new(&nested_schema(), PageCodec::Lz4Raw, limits).unwrap().unwrap();
        let other = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)]));
        let batch = RecordBatch::try_new(other, vec![Arc::new(arrow_array::StringArray::from(vec!["a"]))]).unwrap();
        let err = writer.write(&batch).unwrap_err();
        assert!(err.to_string().contains("is not the fragment schema"), "{err}");
    }

    #[test]
    fn unknown_types_are_left_to_arrow_writer() {
        for data_type in [
            DataType::UInt32,
            DataType::Decimal128(10, 2),
            DataType::Timestamp(TimeUnit::Second, None),
            DataType::LargeList(Arc::new(Field::new("item", DataType::Int64, true))),
            DataType::Utf8View,
        ] {
            let schema = Schema::new(vec![Field::new("x", data_type.clone(), true)]);
            let limits = PageLimits { page_bytes: 100, row_group_rows: 100 };
            assert!(PageFileWriter::try_new(&schema, PageCodec::Lz4Raw, limits).unwrap().is_none(), "{data_type}");
        }
    }

    #[test]
    fn levels_use_runs_and_bit_packing_as_parquet_defines_them() {
        let mut out = Vec::new();
        assert_eq!(encode_levels(&[1; 20], 1, &mut out), 2);
        // One repeated run: header 20 << 1, value 1.
        assert_eq!(out, [40, 1]);
        out.clear();
        encode_levels(&[0, 1, 1, 0, 1], 1, &mut out);
        // One bit-packed group, padded: header (1 << 1) | 1, bits 0b10110.
        assert_eq!(out, [3, 0b10110]);
        out.clear();
        // Three literals borrow five from the run to fill their group; 10 remain to repeat.
        let mut levels = vec![2, 0, 3];
        levels.extend([1; 15]);
        encode_levels(&levels, 3, &mut out);
        // Width 2: levels 2, 0, 3, 1 fill the first byte, four 1s the second.
        assert_eq!(out, [3, 0b01_11_00_10, 0b01_01_01_01, 20, 1]);
    }

    #[test]
    fn one_bit_levels_pack_as_the_general_packer_packs_them() {
        for pattern in 0..=255u8 {
            let bytes: Vec<u8> = (0..8).map(|bit| (pattern >> bit) & 1).collect();
            assert_eq!(gather_low_bits(u64::from_le_bytes(bytes.try_into().unwrap())), pattern);
        }
        let mut rng = StdRng::seed_from_u64(5);
        for length in [1usize, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000] {
            let levels: Vec<u8> = (0..length).map(|_| rng.random_range(0..2)).collect();
            let (mut fast, mut general) = (Vec::new(), Vec::new());
            bit_pack(&levels, 1, &mut fast);
            varint((length.div_ceil(8) << 1) | 1, &mut general);
            pack_bits(levels.iter().map(|&level| u64::from(level)), 1, &mut general);
            assert_eq!(fast, general, "{length} levels");
        }
    }

    #[test]
    fn runs_are_measured_across_words() {
        for length in [1, 7, 8, 9, 16, 17, 100] {
            let mut levels = vec![3; length];
            assert_eq!(run_length(&levels), length);
            levels.push(2);
            levels.extend([3; 9]);
            assert_eq!(run_length(&levels), length);
        }
    }

    #[test]
    fn values_behind_a_null_list_are_skipped() {
        // Arrow lets a null list cover values; they are not part of any row.
        let item = Arc::new(Field::new("item", DataType::Int64, true));
        let values = arrow_array::Int64Array::from(vec![1, 2, 3, 4, 5]);
        let offsets = arrow_buffer::OffsetBuffer::new(vec![0, 2, 4, 4, 5].into());
        let nulls = NullBuffer::from(vec![true, false, true, true]);
        let list = arrow_array::ListArray::new(item.clone(), offsets, Arc::new(values), Some(nulls));
        let schema = Arc::new(Schema::new(vec![Field::new("l", DataType::List(item), true)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(list)]).unwrap();
        let limits = PageLimits { page_bytes: 100, row_group_rows: 100 };
        let read = read_back(write(std::slice::from_ref(&batch), PageCodec::Lz4Raw, limits));
        let read = read.column(0).as_list::<i32>();
        assert!(read.is_null(1));
        assert_eq!(read.value(0).as_primitive::<Int64Type>().values(), &[1, 2]);
        assert_eq!(read.value(2).len(), 0);
        assert_eq!(read.value(3).as_primitive::<Int64Type>().values(), &[5]);
    }

    #[test]
    fn pages_that_barely_compress_are_followed_by_stored_ones() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let mut rng = StdRng::seed_from_u64(1);
        let schema = Arc::new(Schema::new(vec![
            Field::new("random", DataType::Int64, false),
            Field::new("constant", DataType::Int64, false),
        ]));
        let batches: Vec<RecordBatch> = (0..40)
            .map(|_| {
                let random = arrow_array::Int64Array::from_iter_values((0..64).map(|_| rng.random::<i64>()));
                let constant = arrow_array::Int64Array::from(vec![7; 64]);
                RecordBatch::try_new(schema.clone(), vec![Arc::new(random), Arc::new(constant)]).unwrap()
            })
            .collect();
        let limits = PageLimits { page_bytes: 256, row_group_rows: usize::MAX };
        let file = write(&batches, PageCodec::Lz4Raw, limits);
        let reader = SerializedFileReader::new(Bytes::from(file.clone())).unwrap();
        let compressed = |column| {
            let pages = reader.get_row_group(0).unwrap().get_column_page_reader(column).unwrap();
            pages.map(|page| matches!(page.unwrap(), Page::DataPageV2 { is_compressed: true, .. })).collect::<Vec<_>>()
        };
        // Tried on the 1st, 10th, 19th... page; stored as they are in between.
        let random = compressed(0);
        assert_eq!(random.len(), 40);
        assert!(random.iter().enumerate().all(|(page, &compressed)| compressed == (page % 9 == 0)), "{random:?}");
        assert!(compressed(1).iter().all(|&compressed| compressed));
        assert_eq!(read_back(file), concat(&schema, &batches));
    }

    #[test]
    fn string_lengths_read_back_across_delta_blocks() {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
        let mut rng = StdRng::seed_from_u64(3);
        for count in [1, 2, 31, 32, 33, 127, 128, 129, 130, 300, 1000] {
            // Lengths from 0 to 70,000 bytes: miniblock widths from 0 to 17 bits.
            let values: Vec<Option<String>> = (0..count)
                .map(|i| match rng.random_range(0..8) {
                    0 => None,
                    1 => Some("y".repeat(rng.random_range(0..70_000))),
                    2 => Some(String::new()),
                    _ => Some(format!("{i}").repeat(rng.random_range(1..4))),
                })
                .collect();
            let column = arrow_array::StringArray::from(values);
            let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(column)]).unwrap();
            for limits in [
                PageLimits { page_bytes: usize::MAX, row_group_rows: usize::MAX },
                PageLimits { page_bytes: 1, row_group_rows: 50 },
            ] {
                let pieces: Vec<_> = (0..count).step_by(7).map(|at| batch.slice(at, 7.min(count - at))).collect();
                assert_eq!(read_back(write(&pieces, PageCodec::Lz4Raw, limits)), batch, "{count} values");
            }
        }
        // Pages with no value at all: their lengths are an empty delta sequence.
        let nulls = arrow_array::StringArray::from(vec![None::<&str>; 40]);
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(nulls)]).unwrap();
        let limits = PageLimits { page_bytes: 1, row_group_rows: 100 };
        assert_eq!(read_back(write(std::slice::from_ref(&batch), PageCodec::Lz4Raw, limits)), batch);
    }

    #[test]
    fn files_match_what_arrow_writer_reads_back() {
        let batch = random_batch(7, 500);
        let mut arrow = ArrowWriter::try_new(Vec::new(), batch.schema(), None).unwrap();
        arrow.write(&batch).unwrap();
        let expected = read_back(arrow.into_inner().unwrap());
        let limits = PageLimits { page_bytes: 1024, row_group_rows: 128 };
        assert_eq!(read_back(write(std::slice::from_ref(&batch), PageCodec::Lz4Raw, limits)), expected);
    }
}
