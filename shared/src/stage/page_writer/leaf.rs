//! One leaf column: its open page's levels and values, and the row group's finished pages.

use std::ops::Range;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType,
};
use arrow_array::{Array, GenericByteArray, types::ByteArrayType};
use arrow_buffer::{ArrowNativeType, NullBuffer, ToByteSlice};
use bytes::Bytes;
use parquet::basic::{Encoding, Type as PhysicalType};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;

use super::PageLayout;
use super::bounds::Bounds;
use super::chunk::Chunk;
use super::codec::Codec;
use super::dictionary::{Dictionary, Values};
use super::levels::{count_equal, encode_indices, encode_levels};
use super::shape::{LeafSpec, Reps, ValueKind, nulls_of, valid_runs};
use crate::error::{Error, Result};

/// One leaf column: its open page and the row group's finished pages.
pub(super) struct Leaf {
    pub(super) spec: LeafSpec,
    pub(super) descr: ColumnDescPtr,
    /// Level entries in the open page (values plus nulls and empty lists).
    pub(super) levels: usize,
    pub(super) def: Vec<u8>,
    pub(super) rep: Vec<u8>,
    /// The open page's values, PLAIN-encoded but for byte arrays, whose lengths are apart.
    pub(super) values: Vec<u8>,
    /// The open page's byte array lengths (its `values` are their bytes, back to back).
    pub(super) lengths: Vec<i32>,
    /// Booleans in the open page (PLAIN booleans are bits, so `values` alone cannot tell).
    pub(super) booleans: usize,
    /// The row group's pages, serialized. A plain buffer, wrapped only while a page is
    /// written: parquet's `TrackedWrite` adds an 8 KiB write buffer, per column of every
    /// writer open (thousands, for an object over thousands of dates).
    pub(super) chunk: Vec<u8>,
    pub(super) chunk_levels: i64,
    /// Non-null values in the row group's pages.
    pub(super) chunk_values: i64,
    pub(super) chunk_uncompressed: i64,
    /// The row group's value bounds, when the file carries statistics.
    pub(super) bounds: Option<Bounds>,
    /// The row group's dictionary, when pages are dictionary-encoded where values repeat.
    pub(super) dictionary: Option<Dictionary>,
    /// Pages of the row group written PLAIN (not from the dictionary).
    pub(super) plain_pages: usize,
}

impl Leaf {
    /// Memory it holds: the open page, the row group's pages, its dictionary.
    pub(super) fn held_bytes(&self) -> usize {
        self.def.capacity()
            + self.rep.capacity()
            + self.values.capacity()
            + 4 * self.lengths.capacity()
            + self.chunk.capacity()
            + self.dictionary.as_ref().map_or(0, Dictionary::held_bytes)
    }

    pub(super) fn new(spec: LeafSpec, descr: ColumnDescPtr, layout: &PageLayout) -> Self {
        let (statistics, dictionary) = (layout.statistics, layout.dictionary);
        let bounds = statistics.then(|| Bounds::new(spec.kind.physical()));
        let values = match spec.kind.physical() {
            PhysicalType::INT32 | PhysicalType::FLOAT => Some(Values::Fixed(4)),
            PhysicalType::INT64 | PhysicalType::DOUBLE => Some(Values::Fixed(8)),
            PhysicalType::BYTE_ARRAY => Some(Values::Bytes),
            // Booleans are a bit each already.
            _ => None,
        };
        let dictionary = values.filter(|_| dictionary).map(Dictionary::new);
        Self {
            spec,
            descr,
            levels: 0,
            def: Vec::new(),
            rep: Vec::new(),
            values: Vec::new(),
            lengths: Vec::new(),
            booleans: 0,
            chunk: Vec::new(),
            chunk_levels: 0,
            chunk_values: 0,
            chunk_uncompressed: 0,
            bounds,
            dictionary,
            plain_pages: 0,
        }
    }

    /// Bytes of the row group's closed pages, and of its dictionary page before compression.
    pub(super) fn group_bytes(&self) -> usize {
        self.chunk.len() + self.dictionary.as_ref().map_or(0, |dictionary| dictionary.page.len())
    }

    /// Bytes the open page will take before compression, about.
    pub(super) fn page_bytes(&self) -> usize {
        self.values.len() + self.lengths.len() + (self.def.len() + self.rep.len()) / 4
    }

    pub(super) fn push_repetition(&mut self, reps: Reps<'_>, count: usize) {
        if self.spec.max_rep > 0 {
            match reps {
                Some(reps) => self.rep.extend_from_slice(reps),
                None => self.rep.resize(self.rep.len() + count, 0),
            }
        }
    }

    /// Writes the values `range` of `array`, whose ancestors define `def` levels.
    pub(super) fn write(
        &mut self,
        array: &dyn Array,
        range: Range<usize>,
        nullable: bool,
        def: u8,
        reps: Reps<'_>,
    ) -> Result<()> {
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
        self.push_values(array, nulls, &range);
        Ok(())
    }

    /// Appends the valid values of `range` to the open page, encoded as the leaf's kind says.
    #[inline]
    fn push_values(&mut self, array: &dyn Array, nulls: Option<&NullBuffer>, range: &Range<usize>) {
        let range = range.clone();
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
    }

    /// Closes the open page, if it holds anything, into the chunk: a V1 data page, its levels
    /// and values compressed together in one call.
    pub(super) fn flush_page(&mut self, codec: &mut Codec) -> Result<()> {
        if self.levels == 0 {
            return Ok(());
        }
        codec.body.clear();
        self.write_levels(&mut codec.body);
        let encoding = self.write_values(&mut codec.body);
        codec.page.clear();
        codec.compressor.compress(&codec.body, &mut codec.page)?;
        self.append_page(codec, encoding)?;
        self.clear_page();
        Ok(())
    }

    /// Appends the open page's levels as a V1 page holds them: its repetition levels, then its
    /// definition levels, each run after its length (none for a level the leaf does not have).
    fn write_levels(&self, body: &mut Vec<u8>) {
        if self.spec.max_rep > 0 {
            level_run(&self.rep, self.spec.max_rep, body);
        }
        if self.spec.max_def > 0 {
            level_run(&self.def, self.spec.max_def, body);
        }
    }

    /// Appends the open page's values: indices into the leaf's dictionary while its values
    /// repeat, PLAIN otherwise. Returns their encoding.
    fn write_values(&mut self, body: &mut Vec<u8>) -> Encoding {
        if self.look_up_values() {
            let dictionary = self.dictionary.as_ref().expect("looked up in it");
            encode_indices(&dictionary.indices, dictionary.entries, body);
            return Encoding::RLE_DICTIONARY;
        }
        self.plain_pages += 1;
        if self.spec.kind.physical() == PhysicalType::BYTE_ARRAY {
            plain_byte_arrays(&self.values, &self.lengths, body);
        } else {
            body.extend_from_slice(&self.values);
        }
        Encoding::PLAIN
    }

    /// Looks the open page's values up in the leaf's dictionary, if it keeps one, and takes
    /// them into the chunk's bounds, if it keeps those. True if the page is to be written as
    /// dictionary indices.
    fn look_up_values(&mut self) -> bool {
        let (from_dictionary, known_bytes) = match &mut self.dictionary {
            Some(dictionary) => {
                let known_bytes = dictionary.page.len();
                (dictionary.encode(&self.values, &self.lengths), known_bytes)
            }
            None => (false, 0),
        };
        if let Some(bounds) = &mut self.bounds {
            match &self.dictionary {
                // Values already in the dictionary were bounded when they entered it.
                Some(dictionary) if from_dictionary => bounds.update_from_dictionary(&dictionary.page[known_bytes..]),
                _ => bounds.update(&self.values, &self.lengths, self.booleans),
            }
        }
        from_dictionary
    }

    /// Writes the page `codec` compressed (`codec.page`, from `codec.body`) to the chunk, after
    /// its header.
    fn append_page(&mut self, codec: &mut Codec, encoding: Encoding) -> Result<()> {
        let num_values = u32::try_from(self.levels).map_err(|_| parquet_error("a page of over 4 G values"))?;
        // The page's buffer goes to the page writer and comes back once it is copied out.
        let buf = Bytes::from(std::mem::take(&mut codec.page));
        let page = Page::DataPage {
            buf: buf.clone(),
            num_values,
            encoding,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            statistics: None,
        };
        let mut chunk = TrackedWrite::new(&mut self.chunk);
        let spec = SerializedPageWriter::new(&mut chunk).write_page(CompressedPage::new(page, codec.body.len()))?;
        chunk.into_inner()?;
        codec.page = Vec::from(buf);
        self.chunk_uncompressed += spec.uncompressed_size as i64;
        Ok(())
    }

    /// Counts the closed page's levels and values into the chunk's, and empties the page for
    /// the next.
    fn clear_page(&mut self) {
        let max_def = self.spec.max_def;
        let values = if max_def > 0 { count_equal(&self.def, max_def) } else { self.levels };
        self.chunk_levels += self.levels as i64;
        self.chunk_values += values as i64;
        self.levels = 0;
        self.booleans = 0;
        self.def.clear();
        self.rep.clear();
        self.values.clear();
        self.lengths.clear();
    }

    /// Hands over the row group's pages (its dictionary first, if pages used one) and their
    /// metadata, relative to the chunk's start.
    pub(super) fn close_chunk(&mut self, codec: &mut Codec, rows: usize) -> Result<(Chunk, ColumnCloseResult)> {
        let pages = std::mem::take(&mut self.chunk);
        let mut encodings = vec![Encoding::RLE];
        if std::mem::take(&mut self.plain_pages) > 0 {
            encodings.push(Encoding::PLAIN);
        }
        let dictionary_page = match &mut self.dictionary {
            Some(dictionary) if dictionary.used() => {
                let mut compressed = Vec::new();
                codec.compressor.compress(&dictionary.page, &mut compressed)?;
                // The page and its header (a few dozen bytes).
                let mut head = TrackedWrite::new(Vec::with_capacity(compressed.len() + 64));
                let page = Page::DictionaryPage {
                    buf: Bytes::from(compressed),
                    num_values: dictionary.entries,
                    encoding: Encoding::PLAIN,
                    is_sorted: false,
                };
                let spec = SerializedPageWriter::new(&mut head)
                    .write_page(CompressedPage::new(page, dictionary.page.len()))?;
                self.chunk_uncompressed += spec.uncompressed_size as i64;
                dictionary.reset();
                encodings.extend([Encoding::PLAIN, Encoding::RLE_DICTIONARY]);
                Bytes::from(head.into_inner()?)
            }
            Some(dictionary) => {
                dictionary.reset();
                Bytes::new()
            }
            None => Bytes::new(),
        };
        let chunk = Chunk { dictionary: dictionary_page, pages: Bytes::from(pages) };
        // The data pages start after the dictionary page, if there is one.
        let dictionary_bytes = (!chunk.dictionary.is_empty()).then_some(chunk.dictionary.len());
        let nulls = (self.chunk_levels - std::mem::take(&mut self.chunk_values)) as u64;
        let statistics = self.bounds.as_mut().map(|bounds| bounds.take_statistics(&self.descr, nulls));
        let mut metadata = ColumnChunkMetaData::builder(self.descr.clone())
            .set_compression(codec.compressor.kind.compression())
            .set_encodings(encodings)
            .set_num_values(std::mem::take(&mut self.chunk_levels))
            .set_total_compressed_size(chunk.size() as i64)
            .set_total_uncompressed_size(std::mem::take(&mut self.chunk_uncompressed))
            .set_data_page_offset(dictionary_bytes.unwrap_or(0) as i64)
            .set_dictionary_page_offset(dictionary_bytes.map(|_| 0));
        if let Some(statistics) = statistics {
            metadata = metadata.set_statistics(statistics);
        }
        let metadata = metadata.build()?;
        let close = ColumnCloseResult {
            bytes_written: chunk.size() as u64,
            rows_written: rows as u64,
            metadata,
            bloom_filter: None,
            column_index: None,
            offset_index: None,
        };
        Ok((chunk, close))
    }

    /// Takes back the buffer of a chunk [`Self::close_chunk`] handed over, once it was copied
    /// out (a copy only when something else still holds it).
    pub(super) fn reuse_chunk_buffer(&mut self, chunk: Bytes) {
        let mut buffer = Vec::from(chunk);
        buffer.clear();
        self.chunk = buffer;
    }
}

/// Appends one run of levels as V1 pages hold it: its 4-byte length, then the levels
/// RLE/bit-packed.
fn level_run(levels: &[u8], max: u8, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let encoded = encode_levels(levels, max, out);
    out[start..start + 4].copy_from_slice(&(encoded as u32).to_le_bytes());
}

/// PLAIN byte arrays: each of `lengths` in 4 bytes, then that many of `bytes`, which holds the
/// values back to back.
fn plain_byte_arrays(bytes: &[u8], lengths: &[i32], out: &mut Vec<u8>) {
    out.reserve(bytes.len() + 4 * lengths.len());
    let mut start = 0;
    for &length in lengths {
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(&bytes[start..start + length as usize]);
        start += length as usize;
    }
}

pub(super) fn parquet_error(message: &str) -> Error {
    Error::Parquet(parquet::errors::ParquetError::General(message.to_string()))
}

/// Calls `each` with every valid row of `range`.
pub(super) fn for_each_valid(nulls: Option<&NullBuffer>, range: &Range<usize>, mut each: impl FnMut(usize)) {
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
pub(super) fn fixed<T: ArrowNativeType>(
    out: &mut Vec<u8>,
    values: &[T],
    nulls: Option<&NullBuffer>,
    range: &Range<usize>,
) {
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
pub(super) fn widen<T: ArrowNativeType + Into<i32>>(
    out: &mut Vec<u8>,
    values: &[T],
    nulls: Option<&NullBuffer>,
    range: &Range<usize>,
) {
    for_each_valid(nulls, range, |row| out.extend_from_slice(&values[row].into().to_le_bytes()));
}

/// Byte arrays as a leaf buffers them: each valid value's length to `lengths`, the values' bytes
/// back to back to `out`, one copy per run of valid values (the page interleaves them as PLAIN
/// when it closes).
pub(super) fn byte_arrays<T: ByteArrayType>(
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
