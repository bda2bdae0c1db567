//! Parquet fragments: the converter's output, staged under `<table>/_inlet/fragments/`
//! where Delta readers never look, each listing its sources in its key-value metadata.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Fields, SchemaRef};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::{ArrowWriter, parquet_to_arrow_schema};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::{KeyValue, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::error::{Error, Result};
use crate::layout::{
    BATCH_KEY, BATCHES_PREFIX, CORRUPT_PREFIX, FRAGMENTS_PREFIX, SEALED_KEY, SOURCES_KEY, batch_of_record, batch_record,
};
use crate::lineage::FragmentSource;
use crate::stage::page_writer::{PageCodec, PageFileWriter, PageLayout};

/// What a fragment's footer says, read without its rows.
#[derive(Debug, Clone)]
pub struct FragmentInfo {
    /// Location relative to the table root.
    pub path: Path,
    /// Size in bytes.
    pub size: u64,
    /// When it was staged.
    pub staged_at: chrono::DateTime<chrono::Utc>,
    /// Sources listed in its metadata.
    pub sources: Vec<FragmentSource>,
    /// The converter invocation that wrote it.
    pub batch: Option<String>,
    /// Whether it may be compacted only once its batch is sealed.
    pub awaits_seal: bool,
    /// Its columns, as its footer's Arrow schema gives them: a converter with a newer
    /// declared schema stages columns the table may not have yet.
    pub fields: Fields,
}

/// A fragment read back: its sources and its rows.
#[derive(Debug)]
pub struct Fragment {
    /// Location relative to the table root.
    pub path: Path,
    /// Sources listed in its metadata.
    pub sources: Vec<FragmentSource>,
    /// The converter invocation that wrote it.
    pub batch: Option<String>,
    /// Its rows.
    pub batches: Vec<RecordBatch>,
}

/// How fragments are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentEncoding {
    /// Page compression.
    pub compression: Compression,
    /// Dictionary-encode columns while their values repeat (costs a hash per value).
    pub dictionary: bool,
    /// Column chunk statistics (least and greatest value, nulls).
    pub statistics: bool,
    /// Encode pages straight from the Arrow arrays (`stage::page_writer`) where the settings and
    /// schema allow it, instead of through `ArrowWriter`.
    pub direct_pages: bool,
}

impl Default for FragmentEncoding {
    /// Fragments are encoded as table files keep their pages: zstd, dictionaries where values
    /// repeat, column chunk statistics. The compactor then copies their row groups into table files without
    /// decoding them (`commit::copy`), which costs far less than the converter spends on a
    /// lighter codec. zstd at level 1, since higher levels cost the converter more for no
    /// smaller files on this data. Direct pages: see `stage::page_writer`. `make bench`
    /// measures each choice (docs/performance.md).
    fn default() -> Self {
        Self {
            compression: Compression::ZSTD(ZstdLevel::try_new(1).expect("a valid zstd level")),
            dictionary: true,
            statistics: true,
            direct_pages: true,
        }
    }
}

// Pages and row groups: an open writer buffers its row group's compressed pages (and, for
// `ArrowWriter`, a page and dictionary per leaf column, ~60 here), so memory grows with both;
// row groups are also what table files copied from fragments are made of, which readers want
// large.
const PAGE_BYTES: usize = 128 * 1024;
const ROW_GROUP_ROWS: usize = 64 * 1024;
// Of closed pages (the direct page writer only; `PageLayout::row_group_bytes`): wide rows that
// barely compress would make a fragment one row group, held twice while the file is assembled,
// and copied whole by the compactor's multipart upload.
const ROW_GROUP_BYTES: usize = 32 * 1024 * 1024;

impl FragmentEncoding {
    fn properties(&self) -> WriterProperties {
        WriterProperties::builder()
            .set_compression(self.compression)
            .set_dictionary_enabled(self.dictionary)
            .set_statistics_enabled(if self.statistics { EnabledStatistics::Page } else { EnabledStatistics::None })
            .set_data_page_size_limit(PAGE_BYTES)
            .set_dictionary_page_size_limit(PAGE_BYTES)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build()
    }

    /// The direct page writer's codec, when these settings are ones it implements.
    fn page_codec(&self) -> Option<PageCodec> {
        if !self.direct_pages {
            return None;
        }
        PageCodec::for_compression(self.compression)
    }
}

/// The encoder behind a [`FragmentWriter`].
enum Encoder {
    Pages(PageFileWriter),
    Arrow(ArrowWriter<Vec<u8>>),
}

impl Encoder {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            Encoder::Pages(writer) => writer.write(batch),
            Encoder::Arrow(writer) => Ok(writer.write(batch)?),
        }
    }

    fn held_bytes(&self) -> usize {
        match self {
            Encoder::Pages(writer) => writer.held_bytes(),
            Encoder::Arrow(writer) => writer.memory_size() + writer.inner().capacity(),
        }
    }

    fn append_key_value_metadata(&mut self, entry: KeyValue) {
        match self {
            Encoder::Pages(writer) => writer.append_key_value_metadata(entry),
            Encoder::Arrow(writer) => writer.append_key_value_metadata(entry),
        }
    }

    /// Closes the file and returns its bytes.
    fn finish(self) -> Result<Vec<u8>> {
        match self {
            Encoder::Pages(writer) => writer.finish(),
            Encoder::Arrow(writer) => Ok(writer.into_inner()?),
        }
    }
}

/// Streams record batches into one fragment file in memory, remembering their sources.
pub struct FragmentWriter {
    encoder: Encoder,
    sources: Vec<FragmentSource>,
    arrow_bytes: usize,
}

impl FragmentWriter {
    /// A writer of fragments with `schema` (the table schema), encoded the default way.
    pub fn new(schema: &SchemaRef) -> Result<Self> {
        Self::with_encoding(schema, &FragmentEncoding::default())
    }

    /// A writer of fragments with `schema`, encoded as `encoding` says.
    pub fn with_encoding(schema: &SchemaRef, encoding: &FragmentEncoding) -> Result<Self> {
        let limits = PageLayout {
            page_bytes: PAGE_BYTES,
            row_group_rows: ROW_GROUP_ROWS,
            row_group_bytes: ROW_GROUP_BYTES,
            statistics: encoding.statistics,
            dictionary: encoding.dictionary,
        };
        let pages = match encoding.page_codec() {
            Some(codec) => PageFileWriter::try_new(schema, codec, limits)?,
            None => None,
        };
        let encoder = match pages {
            Some(writer) => Encoder::Pages(writer),
            None => Encoder::Arrow(ArrowWriter::try_new(Vec::new(), schema.clone(), Some(encoding.properties()))?),
        };
        Ok(Self { encoder, sources: Vec::new(), arrow_bytes: 0 })
    }

    /// Whether pages are written directly (not through `ArrowWriter`).
    pub fn writes_pages_directly(&self) -> bool {
        matches!(self.encoder, Encoder::Pages(_))
    }

    /// Appends one source's rows. A source written again (the next piece of a large object,
    /// or only its total or failure, with no rows) is counted in the same entry.
    pub fn write(&mut self, source: FragmentSource, batches: &[RecordBatch]) -> Result<()> {
        for batch in batches {
            self.encoder.write(batch)?;
            self.arrow_bytes += batch_bytes(batch);
        }
        match self.sources.iter_mut().find(|listed| listed.id == source.id) {
            Some(listed) => listed.absorb(source),
            None => self.sources.push(source),
        }
        Ok(())
    }

    /// Whether it holds an entry for `source`.
    pub fn lists(&self, source: &crate::lineage::SourceId) -> bool {
        self.sources.iter().any(|listed| listed.id == *source)
    }

    /// Arrow bytes written so far.
    pub fn arrow_bytes(&self) -> usize {
        self.arrow_bytes
    }

    /// What fragments are rolled by: the Arrow bytes written, or the memory the writer holds
    /// when that is more (each column's open page and dictionary, in a schema of hundreds).
    pub fn size(&self) -> usize {
        self.arrow_bytes.max(self.encoder.held_bytes())
    }

    /// Closes the file, recording its sources and the invocation (`batch`) that wrote it; it
    /// may be compacted once that batch is sealed ([`FragmentStore::seal`]).
    pub fn finish(mut self, batch: &str) -> Result<Vec<u8>> {
        self.encoder.append_key_value_metadata(KeyValue::new(SEALED_KEY.to_string(), "batch".to_string()));
        self.finish_unsealed(batch)
    }

    fn finish_unsealed(mut self, batch: &str) -> Result<Vec<u8>> {
        let sources = serde_json::to_string(&self.sources)?;
        self.encoder.append_key_value_metadata(KeyValue::new(SOURCES_KEY.to_string(), sources));
        self.encoder.append_key_value_metadata(KeyValue::new(BATCH_KEY.to_string(), batch.to_string()));
        self.encoder.finish()
    }
}

/// The Arrow bytes of `batch`'s rows: for a slice (one partition of a decoded batch) its
/// share of the buffers it shares, not the whole of them.
fn batch_bytes(batch: &RecordBatch) -> usize {
    batch.columns().iter().map(|column| array_bytes(column.as_ref())).sum()
}

/// The bytes of `array`'s own values. A sliced list or map keeps its whole child array, of
/// which it covers the range its offsets give; a struct's children are sliced with it.
fn array_bytes(array: &dyn Array) -> usize {
    let nulls = array.nulls().map_or(0, |nulls| nulls.len().div_ceil(8));
    let children = |values: &ArrayRef, start: usize, end: usize| array_bytes(values.slice(start, end - start).as_ref());
    match array.data_type() {
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let offsets = list.value_offsets();
            let (start, end) = (offsets[0] as usize, offsets[offsets.len() - 1] as usize);
            nulls + 4 * offsets.len() + children(list.values(), start, end)
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>();
            let offsets = list.value_offsets();
            let (start, end) = (offsets[0] as usize, offsets[offsets.len() - 1] as usize);
            nulls + 8 * offsets.len() + children(list.values(), start, end)
        }
        DataType::Map(_, _) => {
            let map = array.as_map();
            let offsets = map.value_offsets();
            let (start, end) = (offsets[0] as usize, offsets[offsets.len() - 1] as usize);
            let entries: ArrayRef = Arc::new(map.entries().clone());
            nulls + 4 * offsets.len() + children(&entries, start, end)
        }
        DataType::Struct(_) => {
            nulls + array.as_struct().columns().iter().map(|child| array_bytes(child.as_ref())).sum::<usize>()
        }
        _ => array.to_data().get_slice_memory_size().unwrap_or_else(|_| array.get_array_memory_size()),
    }
}

/// Encodes batches and their complete sources as one self-contained Parquet file (a one-shot
/// [`FragmentWriter`] whose single upload is all there is: it needs no seal).
pub fn encode(schema: &SchemaRef, batches: &[RecordBatch], sources: &[FragmentSource]) -> Result<Vec<u8>> {
    let mut writer = FragmentWriter::new(schema)?;
    for batch in batches {
        writer.encoder.write(batch)?;
    }
    writer.sources = sources.to_vec();
    writer.finish_unsealed("encode")
}

/// Decodes a fragment file.
pub fn decode(path: Path, data: Bytes) -> Result<Fragment> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(data)?;
    let (sources, batch, _) = inlet_metadata(&path, builder.metadata())?;
    let batches = builder.build()?.collect::<Result<Vec<_>, _>>()?;
    Ok(Fragment { path, sources, batch, batches })
}

/// A fragment's rows, decoded one batch at a time: only the compressed file and one batch are
/// in memory, where decoding it whole would hold its full Arrow size (up to the fragment limit).
pub struct FragmentRows {
    reader: ParquetRecordBatchReader,
}

impl Iterator for FragmentRows {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.reader.next().map(|batch| batch.map_err(Error::from))
    }
}

/// The rows of the Parquet file `data` (a fragment, or a table file), a batch at a time.
pub fn parquet_rows(data: Bytes) -> Result<FragmentRows> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(data)?.with_batch_size(STREAM_BATCH_ROWS).build()?;
    Ok(FragmentRows { reader })
}

/// Rows per batch when streaming a fragment: big enough to amortise per-batch work, small
/// enough (a few MiB) not to matter for memory.
const STREAM_BATCH_ROWS: usize = 8 * 1024;

/// The sources, batch id and seal requirement recorded in a fragment's footer.
fn inlet_metadata(path: &Path, metadata: &ParquetMetaData) -> Result<(Vec<FragmentSource>, Option<String>, bool)> {
    let entry = |key: &str| {
        metadata
            .file_metadata()
            .key_value_metadata()
            .and_then(|entries| entries.iter().find(|entry| entry.key == key))
            .and_then(|entry| entry.value.clone())
    };
    let sources =
        entry(SOURCES_KEY).as_deref().map(serde_json::from_str).transpose()?.ok_or_else(|| Error::Source {
            uri: path.to_string(),
            reason: format!("fragment has no {SOURCES_KEY} metadata"),
            retryable: false,
        })?;
    Ok((sources, entry(BATCH_KEY), entry(SEALED_KEY).is_some()))
}

/// What a converter batch's record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchState {
    /// All its fragments are staged: they may be compacted.
    Sealed,
    /// Taken for abandoned before it was sealed: its fragments are garbage, and its converter
    /// failed its messages.
    Void,
}

/// The staging area of one table.
#[derive(Debug, Clone)]
pub struct FragmentStore {
    store: Arc<dyn ObjectStore>,
}

impl FragmentStore {
    /// Fragments in `store`, which is rooted at the table location.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }

    /// The table's store this staging area lives in.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// Stages a fragment under a new unique name (in its partition's directory) and returns it.
    /// `directory` is the partition's Hive directories (`service=web/date=2026-05-16`), empty
    /// when unpartitioned.
    pub async fn put(&self, data: Vec<u8>, directory: &str) -> Result<Path> {
        let name =
            format!("{}-{}.parquet", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"), uuid::Uuid::new_v4().simple());
        // Parsed, not built: the directory is already encoded, and encoding it again would
        // name the partition differently from the table's files.
        let path = Path::parse(format!("{FRAGMENTS_PREFIX}/{directory}/{name}").replace("//", "/"))
            .map_err(|err| Error::Integrity(format!("fragment path: {err}")))?;
        self.store.put(&path, in_pieces(Bytes::from(data))).await?;
        Ok(path)
    }

    /// Staged fragments, oldest name first.
    pub async fn list(&self) -> Result<Vec<ObjectMeta>> {
        let prefix = Path::from(FRAGMENTS_PREFIX);
        let mut listed: Vec<ObjectMeta> = self
            .store
            .list(Some(&prefix))
            .try_filter(|meta| futures::future::ready(meta.location.as_ref().ends_with(".parquet")))
            .try_collect()
            .await?;
        listed.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(listed)
    }

    /// Reads a fragment's footer only.
    pub async fn info(&self, meta: &ObjectMeta) -> Result<FragmentInfo> {
        // The footer is the last 8 bytes (metadata length, "PAR1") after the metadata itself:
        // one ranged GET of the tail usually covers both.
        let tail_len = meta.size.min(64 * 1024);
        let tail = self.store.get_range(&meta.location, meta.size - tail_len..meta.size).await?;
        let corrupt =
            |reason: &str| Error::Source { uri: meta.location.to_string(), reason: reason.into(), retryable: false };
        if tail.len() < 8 || &tail[tail.len() - 4..] != b"PAR1" {
            return Err(corrupt("not a Parquet file (no PAR1 footer)"));
        }
        let length = u32::from_le_bytes(tail[tail.len() - 8..tail.len() - 4].try_into().expect("4 bytes")) as u64;
        let footer = if length + 8 <= tail.len() as u64 {
            tail.slice(tail.len() - 8 - length as usize..tail.len() - 8)
        } else if length + 8 <= meta.size {
            self.store.get_range(&meta.location, meta.size - 8 - length..meta.size - 8).await?
        } else {
            return Err(corrupt("Parquet footer longer than the file"));
        };
        let metadata = ParquetMetaDataReader::decode_metadata(&footer)?;
        let (sources, batch, awaits_seal) = inlet_metadata(&meta.location, &metadata)?;
        let file = metadata.file_metadata();
        let fields = parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())?.fields().clone();
        let (path, size, staged_at) = (meta.location.clone(), meta.size, meta.last_modified);
        Ok(FragmentInfo { path, size, staged_at, sources, batch, awaits_seal, fields })
    }

    /// Reads one fragment whole.
    pub async fn read(&self, path: &Path) -> Result<Fragment> {
        let data = self.store.get(path).await?.bytes().await?;
        decode(path.clone(), data)
    }

    /// One fragment's file, whole.
    pub async fn bytes(&self, path: &Path) -> Result<Bytes> {
        Ok(self.store.get(path).await?.bytes().await?)
    }

    /// Seals converter batch `batch`: every fragment it staged is uploaded, so they may be
    /// compacted. Fails if the batch was voided first (a compactor took it for abandoned):
    /// the caller must then fail its messages so that they are converted again.
    pub async fn seal(&self, batch: &str, fragments: usize) -> Result<()> {
        let seal = serde_json::to_vec(&serde_json::json!({ "batch": batch, "fragments": fragments }))?;
        match self.create_record(batch, seal).await? {
            BatchState::Sealed => Ok(()),
            BatchState::Void => Err(Error::Integrity(format!(
                "batch {batch} was voided before it could be sealed (a compactor took it for abandoned): \
                 its messages must be converted again"
            ))),
        }
    }

    /// Whether the staged file at `path` is there.
    pub async fn exists(&self, path: &Path) -> Result<bool> {
        match self.store.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// Voids unsealed batch `batch` so that it can never be sealed, and says what the batch is
    /// now: `Void` (its fragments are garbage) or `Sealed` (its converter sealed it first).
    pub async fn void(&self, batch: &str) -> Result<BatchState> {
        self.create_record(batch, Vec::new()).await
    }

    /// Creates `batch`'s record unless one exists (S3 `If-None-Match: *`); returns the state
    /// of whichever record won. An empty record voids, any other seals.
    async fn create_record(&self, batch: &str, record: Vec<u8>) -> Result<BatchState> {
        let path = batch_record(batch);
        let wanted = if record.is_empty() { BatchState::Void } else { BatchState::Sealed };
        let options = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.store.put_opts(&path, PutPayload::from(record), options).await {
            Ok(_) => Ok(wanted),
            Err(object_store::Error::AlreadyExists { .. }) => {
                let size = self.store.head(&path).await?.size;
                Ok(if size == 0 { BatchState::Void } else { BatchState::Sealed })
            }
            Err(err) => Err(err.into()),
        }
    }

    /// The state of every batch with a record.
    pub async fn batches(&self) -> Result<HashMap<String, BatchState>> {
        let prefix = Path::from(BATCHES_PREFIX);
        let listed: Vec<ObjectMeta> = self.store.list(Some(&prefix)).try_collect().await?;
        Ok(listed
            .into_iter()
            .filter_map(|meta| {
                let state = if meta.size == 0 { BatchState::Void } else { BatchState::Sealed };
                Some((batch_of_record(&meta.location)?.to_string(), state))
            })
            .collect())
    }

    /// Removes the records of batches none of whose fragments is staged any more.
    pub async fn forget_batches(&self, batches: impl IntoIterator<Item = &str>) -> Result<()> {
        let records: Vec<Path> = batches.into_iter().map(batch_record).collect();
        self.delete(&records).await
    }

    /// Moves a staged file that cannot be read as a fragment to `_inlet/corrupt/`, where it
    /// stays for an operator and no longer stops compactions; returns where it went.
    pub async fn set_aside(&self, path: &Path) -> Result<Path> {
        let relative = path.as_ref().strip_prefix(FRAGMENTS_PREFIX).unwrap_or(path.as_ref()).trim_start_matches('/');
        // Parsed, not built: the partition directories are already encoded.
        let aside = Path::parse(format!("{CORRUPT_PREFIX}/{relative}"))
            .map_err(|err| Error::Integrity(format!("corrupt area path: {err}")))?;
        self.store.copy(path, &aside).await?;
        self.delete(std::slice::from_ref(path)).await?;
        Ok(aside)
    }

    /// Deletes consumed fragments; already-deleted ones are fine.
    pub async fn delete(&self, paths: &[Path]) -> Result<()> {
        for (done, path) in paths.iter().enumerate() {
            if done > 0 {
                crate::faults::crash_point("compactor.mid_delete");
            }
            match self.store.delete(path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }
}

/// Fragments go to the store in pieces of this size, slices of one buffer. On S3, the Lambda's
/// store, the pieces stream as one request body, so their size changes nothing there. A local
/// store (benchmarks, local runs) writes each piece with one `write`: a whole fragment of tens
/// of MiB in one call makes the kernel take large page-cache pages that are slow to fault in,
/// while a MiB is already large enough that the number of calls does not matter.
const PUT_PIECE_BYTES: usize = 1 << 20;

/// `data` as a payload of `PUT_PIECE_BYTES` slices of it, not copied.
fn in_pieces(data: Bytes) -> PutPayload {
    (0..data.len())
        .step_by(PUT_PIECE_BYTES)
        .map(|start| data.slice(start..data.len().min(start + PUT_PIECE_BYTES)))
        .collect()
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;
    use crate::ingest::decode::JsonDecoder;
    use crate::lineage::SourceObject;
    use crate::schema::TableSchema;

    #[test]
    fn a_slice_counts_its_own_rows_not_the_buffers_it_shares() {
        let schema = r#"{"fields":[{"name":"id","type":"long"},{"name":"tags","type":{"list":"string"}},
            {"name":"attrs","type":{"map":"string"}},
            {"name":"s","type":{"struct":[{"name":"v","type":{"list":"long"}}]}}]}"#;
        let schema = Arc::new(TableSchema::parse(schema, "t").unwrap());
        let lines: String = (0..1000)
            .map(|i| format!("{{\"id\":{i},\"tags\":[\"a{i}\",\"b{i}\"],\"attrs\":{{\"k\":\"v{i}\"}},\"s\":{{\"v\":[{i},{i}]}}}}\n"))
            .collect();
        let object = SourceObject { bucket: "raw".into(), key: "k".into(), ..Default::default() };
        let decoded = JsonDecoder::new(schema, 1000).decode(&object, lines.as_bytes()).unwrap();
        let batch = &decoded.batches[0];
        let whole = batch_bytes(batch);
        // A hundred slices of ten rows: together about the whole, not a hundred times it.
        let sliced: usize = (0..100).map(|at| batch_bytes(&batch.slice(at * 10, 10))).sum();
        assert!(sliced > whole / 2 && sliced < whole * 3 / 2, "{sliced} bytes sliced, {whole} whole");
    }

    #[tokio::test]
    async fn fragments_round_trip_with_their_sources() {
        let schema = crate::testing::schemas::ID.parse();
        let object =
            SourceObject { bucket: "raw".into(), key: "k.json".into(), etag: Some("e1".into()), ..Default::default() };
        let batches =
            JsonDecoder::new(schema.clone(), 10).decode(&object, b"{\"id\":1}\n{\"id\":2}\n").unwrap().batches;
        let sources = vec![FragmentSource::new(&object, 2, None)];
        let store = FragmentStore::new(Arc::new(InMemory::new()));
        let path = store.put(encode(&schema.table, &batches, &sources).unwrap(), "").await.unwrap();
        assert!(path.as_ref().starts_with("_inlet/fragments/"));
        let listed = store.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        let info = store.info(&listed[0]).await.unwrap();
        assert_eq!((info.sources.clone(), info.batch.as_deref()), (sources.clone(), Some("encode")));
        let fragment = store.read(&listed[0].location).await.unwrap();
        assert_eq!(fragment.sources, sources);
        assert_eq!(fragment.batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
        assert_eq!(fragment.batches[0].schema(), schema.table);
        store.delete(&[path.clone(), path]).await.unwrap();
        assert!(store.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_fragment_with_footer_keys_and_source_fields_a_later_version_adds_still_reads() {
        let schema = crate::testing::schemas::ID.parse();
        let object =
            SourceObject { bucket: "raw".into(), key: "k.json".into(), etag: Some("e1".into()), ..Default::default() };
        let batches = JsonDecoder::new(schema.clone(), 10).decode(&object, b"{\"id\":1}\n").unwrap().batches;
        let mut writer = FragmentWriter::new(&schema.table).unwrap();
        for batch in &batches {
            writer.encoder.write(batch).unwrap();
        }
        // Its footer as a later version might write it: a key of its own, a field more per source.
        let sources = r#"[{"uri": "s3://raw/k.json", "etag": "e1", "rows": 1, "total_rows": 1, "codec": "zstd"}]"#;
        for (key, value) in [("inlet.later", "x"), (SOURCES_KEY, sources), (BATCH_KEY, "b1"), (SEALED_KEY, "batch")] {
            writer.encoder.append_key_value_metadata(KeyValue::new(key.to_string(), value.to_string()));
        }
        let store = FragmentStore::new(Arc::new(InMemory::new()));
        store.put(writer.encoder.finish().unwrap(), "").await.unwrap();
        let info = store.info(&store.list().await.unwrap()[0]).await.unwrap();
        assert_eq!(info.sources, vec![FragmentSource::new(&object, 1, Some(1))]);
        assert_eq!((info.batch.as_deref(), info.awaits_seal), (Some("b1"), true));
    }

    #[tokio::test]
    async fn a_seal_with_a_field_a_later_version_adds_is_still_a_seal_and_an_empty_record_a_void() {
        let store = FragmentStore::new(Arc::new(InMemory::new()));
        let seal = br#"{"batch": "b1", "fragments": 2, "rows": 10}"#;
        store.store().put(&batch_record("b1"), PutPayload::from(seal.to_vec())).await.unwrap();
        store.store().put(&batch_record("b2"), PutPayload::from(Vec::new())).await.unwrap();
        let states = store.batches().await.unwrap();
        assert_eq!((states["b1"], states["b2"]), (BatchState::Sealed, BatchState::Void));
        store.seal("b1", 2).await.unwrap();
    }

    #[test]
    fn payloads_are_cut_into_pieces_that_add_up_to_the_data() {
        let data: Vec<u8> = (0..2 * PUT_PIECE_BYTES + 7).map(|i| (i % 251) as u8).collect();
        let payload = in_pieces(Bytes::from(data.clone()));
        let sizes: Vec<usize> = payload.iter().map(|piece| piece.len()).collect();
        assert_eq!(sizes, vec![PUT_PIECE_BYTES, PUT_PIECE_BYTES, 7]);
        assert_eq!(payload.iter().flat_map(|piece| piece.iter().copied()).collect::<Vec<u8>>(), data);
        assert_eq!(in_pieces(Bytes::new()).content_length(), 0);
    }
}
