//! Fragment files encoded page by page straight from Arrow arrays, without `ArrowWriter`.
//!
//! Fragments are written as table files keep their pages, so the compactor can copy their row
//! groups into table files without decoding them. Every column chunk is laid out the same way:
//!
//! - **Data pages** are Parquet V1 pages: the repetition levels, then the definition levels,
//!   each in the RLE/bit-packed hybrid encoding after its 4-byte length, then the values, all
//!   compressed together in one codec call per page. A page ends only between steps of rows,
//!   so every page starts a new row, and closes after the step that takes its levels and
//!   values past [`PageLayout::page_bytes`]; a row group closes after the step that takes it
//!   past [`PageLayout::row_group_rows`] or its pages past [`PageLayout::row_group_bytes`].
//! - **Values** are PLAIN (byte arrays each after its 4-byte length, booleans a bit each), or,
//!   with [`PageLayout::dictionary`], `RLE_DICTIONARY` indices into the chunk's dictionary
//!   while its values repeat. The dictionary, PLAIN, is the chunk's first page; once it stops
//!   paying (mostly distinct values, or grown past its limit) the chunk's later pages are
//!   PLAIN, which readers take in the same chunk.
//! - **Compression** is per page, zstd (or none), through buffers and a compression context
//!   each thread keeps for every writer on it.
//! - **Statistics**, with [`PageLayout::statistics`]: each chunk's least and greatest value and
//!   its null count, with the format's rules for NaN, signed zeros and long byte arrays, as
//!   `ArrowWriter` writes them. No page statistics, page indexes or bloom filters.
//!
//! The parquet crate still writes the page headers and the footer, with the Arrow schema in
//! it, so any reader reads fragments like other Parquet files.
//!
//! The parts, as arrow-rs splits its own writer: [`shape`] maps the Arrow schema onto leaf
//! columns and walks arrays into them, [`leaf`] buffers one leaf column's levels and values
//! and closes its pages and chunks, [`levels`] holds the RLE/bit-packed encodings of levels
//! and dictionary indices, [`dictionary`] the dictionary encoding, [`bounds`] the chunk
//! statistics, and [`codec`] the page compression.
//!
//! Schemas with a type this writer does not know make [`PageFileWriter::try_new`] return `None`,
//! and codecs it does not implement have no [`PageCodec`]; the fragment writer then falls back
//! to `ArrowWriter`.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::Schema;
use parquet::arrow::{ARROW_SCHEMA_META_KEY, ArrowSchemaConverter, encode_arrow_schema};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

use crate::error::{Error, Result};
use codec::with_codec;
use leaf::Leaf;
use shape::{Node, plan};

mod bounds;
mod chunk;
mod codec;
mod dictionary;
mod leaf;
mod levels;
mod shape;
#[cfg(test)]
mod tests;

/// The page codecs this writer implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageCodec {
    /// Pages stored as they are.
    Uncompressed,
    /// Zstandard at the given level, compressed by libzstd.
    Zstd(ZstdLevel),
}

impl PageCodec {
    /// The codec for a Parquet compression setting, if this writer implements it.
    pub fn for_compression(compression: Compression) -> Option<Self> {
        match compression {
            Compression::UNCOMPRESSED => Some(Self::Uncompressed),
            Compression::ZSTD(level) => Some(Self::Zstd(level)),
            _ => None,
        }
    }

    pub(crate) fn compression(self) -> Compression {
        match self {
            Self::Uncompressed => Compression::UNCOMPRESSED,
            Self::Zstd(level) => Compression::ZSTD(level),
        }
    }
}

/// Rows written between checks of the page and row group limits.
const ROWS_PER_STEP: usize = 1024;

/// How a [`PageFileWriter`] lays out its file.
#[derive(Debug, Clone, Copy)]
pub struct PageLayout {
    /// A leaf's page is closed after the batch (or 1,024 rows of one) that takes its values
    /// and levels past this.
    pub page_bytes: usize,
    /// A row group is closed after the batch (or 1,024 rows of one) that takes it past this
    /// many rows.
    pub row_group_rows: usize,
    /// ... or that takes its closed pages (compressed) and dictionary pages (before
    /// compression) past this many bytes: rows wide or barely compressible would otherwise
    /// hold a whole fragment in one row group, which the file then copies while holding it.
    pub row_group_bytes: usize,
    /// Write each column chunk's statistics (least and greatest value, nulls).
    pub statistics: bool,
    /// Dictionary-encode a leaf's pages while its values repeat (`dictionary`).
    pub dictionary: bool,
}

/// Writes record batches of one schema into a Parquet file held in memory.
pub struct PageFileWriter {
    file: SerializedFileWriter<Vec<u8>>,
    fields: arrow_schema::Fields,
    columns: Vec<Node>,
    leaves: Vec<Leaf>,
    /// Its pages' codec; the codec's buffers and context are the thread's ([`with_codec`]).
    codec: PageCodec,
    limits: PageLayout,
    group_rows: usize,
}

impl PageFileWriter {
    /// A writer for `schema`, or `None` when the schema holds a type this writer does not
    /// encode (the caller then uses `ArrowWriter`).
    pub fn try_new(schema: &Schema, codec: PageCodec, limits: PageLayout) -> Result<Option<Self>> {
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
            leaves.push(Leaf::new(spec, descr.clone(), &limits));
        }
        let properties = Arc::new(WriterProperties::builder().set_compression(codec.compression()).build());
        let mut file = SerializedFileWriter::new(Vec::new(), descriptor.root_schema_ptr(), properties)?;
        // What lets readers rebuild the exact Arrow types (time zones, map and list field names).
        file.append_key_value_metadata(KeyValue::new(ARROW_SCHEMA_META_KEY.to_string(), encode_arrow_schema(schema)));
        let fields = schema.fields().clone();
        Ok(Some(Self { file, fields, columns, leaves, codec, limits, group_rows: 0 }))
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
                    with_codec(self.codec, |codec| leaf.flush_page(codec))?;
                }
            }
            let group_bytes: usize = self.leaves.iter().map(Leaf::group_bytes).sum();
            if self.group_rows >= self.limits.row_group_rows || group_bytes >= self.limits.row_group_bytes {
                self.flush_row_group()?;
            }
        }
        Ok(())
    }

    /// Memory the file holds so far: its finished row groups, and each column's open pages,
    /// row group pages and dictionary.
    pub fn held_bytes(&self) -> usize {
        self.file.inner().capacity() + self.leaves.iter().map(Leaf::held_bytes).sum::<usize>()
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
            let rows = self.group_rows;
            chunks.push(with_codec(self.codec, |codec| {
                leaf.flush_page(codec)?;
                leaf.close_chunk(codec, rows)
            })?);
        }
        // Room for the whole row group at once, not a doubling of the file buffer per chunk.
        self.file.inner_mut().reserve(chunks.iter().map(|(chunk, _)| chunk.size()).sum());
        let mut group = self.file.next_row_group()?;
        for ((chunk, close), leaf) in chunks.into_iter().zip(&mut self.leaves) {
            group.append_column(&chunk, close)?;
            // The chunk is copied into the file: its buffer serves the leaf's next chunk. Fresh
            // ones grew by reallocation, and their new pages faulted in, every row group.
            leaf.reuse_chunk_buffer(chunk.pages);
        }
        group.close()?;
        self.group_rows = 0;
        Ok(())
    }
}

impl std::fmt::Debug for PageFileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageFileWriter").field("codec", &self.codec).field("limits", &self.limits).finish()
    }
}
