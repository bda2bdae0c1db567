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

use super::bounds::Bounds;
use super::codec::Codec;
use super::dictionary::{Dictionary, Values};
use super::levels::{count_equal, delta_binary_packed, encode_indices, encode_levels};
use super::shape::{LeafSpec, Reps, ValueKind, nulls_of, valid_runs};
use super::{PageFormat, PageLayout};
use crate::error::{Error, Result};

/// Pages of a leaf stored uncompressed after one saved less than an eighth of its size.
pub(super) const STORED_PAGES_AFTER_POOR_COMPRESSION: usize = 8;

/// One leaf column: its open page and the row group's finished pages.
pub(super) struct Leaf {
    pub(super) spec: LeafSpec,
    pub(super) descr: ColumnDescPtr,
    /// Level entries in the open page (values plus nulls and empty lists).
    pub(super) levels: usize,
    pub(super) def: Vec<u8>,
    pub(super) rep: Vec<u8>,
    /// The open page's PLAIN-encoded values, after `gap` bytes kept free in front.
    pub(super) values: Vec<u8>,
    /// Room in front of a byte array page's bytes for its encoded lengths, which lets the page
    /// be compressed where it is instead of copied next to them (sized from the last page).
    pub(super) gap: usize,
    /// The open page's byte array lengths (its `values` are their bytes, back to back).
    pub(super) lengths: Vec<i32>,
    /// Booleans in the open page (PLAIN booleans are bits, so `values` alone cannot tell).
    pub(super) booleans: usize,
    /// Pages still to store uncompressed since one compressed poorly.
    pub(super) pages_to_store: usize,
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
    pub(super) format: PageFormat,
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
            gap: 0,
            lengths: Vec::new(),
            booleans: 0,
            pages_to_store: 0,
            chunk: Vec::new(),
            chunk_levels: 0,
            chunk_values: 0,
            chunk_uncompressed: 0,
            bounds,
            dictionary,
            plain_pages: 0,
            format: layout.format,
        }
    }

    /// Bytes the open page will take before compression, about.
    pub(super) fn page_bytes(&self) -> usize {
        self.values.len() - self.gap + self.lengths.len() + (self.def.len() + self.rep.len()) / 4
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

    /// Closes the open page, if it holds anything, into the chunk. It is a V2 data page: its
    /// levels, already run-length encoded, stay uncompressed, and its values are compressed
    /// straight from the leaf's buffer.
    pub(super) fn flush_page(&mut self, codec: &mut Codec) -> Result<()> {
        if self.levels == 0 {
            return Ok(());
        }
        let (max_def, max_rep) = (self.spec.max_def, self.spec.max_rep);
        let v1 = self.format == PageFormat::V1Plain;
        // V1 pages prefix each level run with its length and compress it with the values; V2
        // pages keep levels apart, uncompressed.
        let levels = &mut codec.levels;
        levels.clear();
        let rep_bytes = if max_rep > 0 { level_run(&self.rep, max_rep, v1, levels) } else { 0 };
        let def_bytes = if max_def > 0 { level_run(&self.def, max_def, v1, levels) } else { 0 };
        let values = if max_def > 0 { count_equal(&self.def, max_def) } else { self.levels };
        let rows = if max_rep > 0 { count_equal(&self.rep, 0) } else { self.levels };
        let (from_dictionary, new_entries) = match &mut self.dictionary {
            Some(dictionary) => {
                let known = dictionary.page.len();
                (dictionary.encode(&self.values[self.gap..], &self.lengths), known)
            }
            None => (false, 0),
        };
        if let Some(bounds) = &mut self.bounds {
            match &self.dictionary {
                // Values already in the dictionary were bounded when they entered it.
                Some(dictionary) if from_dictionary => bounds.update_from_dictionary(&dictionary.page[new_entries..]),
                _ => bounds.update(&self.values[self.gap..], &self.lengths, self.booleans),
            }
        }
        let encoding = if from_dictionary { Encoding::RLE_DICTIONARY } else { self.value_encoding() };
        self.plain_pages += !from_dictionary as usize;
        let encoded = match encoding {
            Encoding::RLE_DICTIONARY => {
                let dictionary = self.dictionary.as_ref().expect("encoded with it");
                codec.staged.clear();
                encode_indices(&dictionary.indices, dictionary.entries, &mut codec.staged);
                &codec.staged[..]
            }
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
            // PLAIN byte arrays: each value after its 4-byte length.
            _ if self.spec.kind.physical() == PhysicalType::BYTE_ARRAY => {
                let staged = &mut codec.staged;
                staged.clear();
                staged.reserve(self.values.len() - self.gap + 4 * self.lengths.len());
                let mut start = self.gap;
                for &length in &self.lengths {
                    staged.extend_from_slice(&length.to_le_bytes());
                    staged.extend_from_slice(&self.values[start..start + length as usize]);
                    start += length as usize;
                }
                &codec.staged[..]
            }
            _ => &self.values[self.gap..],
        };
        let page = &mut codec.page;
        page.clear();
        let (compressed, uncompressed) = if v1 {
            // The format has no uncompressed V1 page in a compressed chunk.
            let body = &mut codec.body;
            body.clear();
            body.extend_from_slice(&codec.levels);
            body.extend_from_slice(encoded);
            codec.compressor.compress(body, page)?;
            (true, body.len())
        } else {
            page.extend_from_slice(&codec.levels);
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
            (compressed, rep_bytes + def_bytes + encoded.len())
        };
        let count = |n: usize| u32::try_from(n).map_err(|_| parquet_error("a page of over 4 G values or bytes"));
        // The page's buffer goes to the page writer and comes back once it is copied out.
        let page_bytes = Bytes::from(std::mem::take(&mut codec.page));
        let page = if v1 {
            Page::DataPage {
                buf: page_bytes.clone(),
                num_values: count(self.levels)?,
                encoding,
                def_level_encoding: Encoding::RLE,
                rep_level_encoding: Encoding::RLE,
                statistics: None,
            }
        } else {
            Page::DataPageV2 {
                buf: page_bytes.clone(),
                num_values: count(self.levels)?,
                encoding,
                num_nulls: count(self.levels - values)?,
                num_rows: count(rows)?,
                def_levels_byte_len: count(def_bytes)?,
                rep_levels_byte_len: count(rep_bytes)?,
                is_compressed: compressed,
                statistics: None,
            }
        };
        let mut chunk = TrackedWrite::new(&mut self.chunk);
        let spec = SerializedPageWriter::new(&mut chunk).write_page(CompressedPage::new(page, uncompressed))?;
        chunk.into_inner()?;
        codec.page = Vec::from(page_bytes);
        self.chunk_levels += self.levels as i64;
        self.chunk_values += values as i64;
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

    /// How the leaf's values are written when not from a dictionary.
    fn value_encoding(&self) -> Encoding {
        match self.format {
            PageFormat::V2Delta => self.spec.kind.encoding(),
            PageFormat::V1Plain => Encoding::PLAIN,
        }
    }

    /// Hands over the row group's pages (its dictionary first, if pages used one) and their
    /// metadata, relative to the chunk's start.
    pub(super) fn close_chunk(&mut self, codec: &mut Codec, rows: usize) -> Result<(Bytes, ColumnCloseResult)> {
        let pages = std::mem::take(&mut self.chunk);
        let mut encodings = vec![Encoding::RLE];
        if std::mem::take(&mut self.plain_pages) > 0 {
            encodings.push(self.value_encoding());
        }
        let (chunk, dictionary_bytes) = match &mut self.dictionary {
            Some(dictionary) if dictionary.used() => {
                let mut compressed = Vec::new();
                codec.compressor.compress(&dictionary.page, &mut compressed)?;
                let page = Page::DictionaryPage {
                    buf: Bytes::from(compressed),
                    num_values: dictionary.entries,
                    encoding: Encoding::PLAIN,
                    is_sorted: false,
                };
                let mut chunk = TrackedWrite::new(Vec::with_capacity(pages.len() + dictionary.page.len()));
                let spec = SerializedPageWriter::new(&mut chunk)
                    .write_page(CompressedPage::new(page, dictionary.page.len()))?;
                self.chunk_uncompressed += spec.uncompressed_size as i64;
                let dictionary_bytes = chunk.bytes_written();
                std::io::Write::write_all(&mut chunk, &pages).map_err(|err| parquet_error(&err.to_string()))?;
                dictionary.reset();
                encodings.extend([Encoding::PLAIN, Encoding::RLE_DICTIONARY]);
                (chunk.into_inner()?, Some(dictionary_bytes))
            }
            Some(dictionary) => {
                dictionary.reset();
                (pages, None)
            }
            None => (pages, None),
        };
        let nulls = (self.chunk_levels - std::mem::take(&mut self.chunk_values)) as u64;
        let statistics = self.bounds.as_mut().map(|bounds| bounds.take_statistics(&self.descr, nulls));
        let mut metadata = ColumnChunkMetaData::builder(self.descr.clone())
            .set_compression(codec.compressor.kind.compression())
            .set_encodings(encodings)
            .set_num_values(std::mem::take(&mut self.chunk_levels))
            .set_total_compressed_size(chunk.len() as i64)
            .set_total_uncompressed_size(std::mem::take(&mut self.chunk_uncompressed))
            .set_data_page_offset(dictionary_bytes.unwrap_or(0) as i64)
            .set_dictionary_page_offset(dictionary_bytes.map(|_| 0));
        if let Some(statistics) = statistics {
            metadata = metadata.set_statistics(statistics);
        }
        let metadata = metadata.build()?;
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
    pub(super) fn reuse_chunk_buffer(&mut self, chunk: Bytes) {
        let mut buffer = Vec::from(chunk);
        buffer.clear();
        self.chunk = buffer;
    }
}

/// Appends one level run: RLE/bit-packed, after its 4-byte length in V1 pages. Returns the bytes
/// appended.
fn level_run(levels: &[u8], max: u8, v1: bool, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    if v1 {
        out.extend_from_slice(&[0; 4]);
    }
    let encoded = encode_levels(levels, max, out);
    if v1 {
        out[start..start + 4].copy_from_slice(&(encoded as u32).to_le_bytes());
    }
    out.len() - start
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

/// Byte arrays as `DELTA_LENGTH_BYTE_ARRAY` takes them: each valid value's length to `lengths`,
/// the values' bytes back to back to `out`, one copy per run of valid values.
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
