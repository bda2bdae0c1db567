//! One sorted run of the load history index: the keys of committed sources, ascending and
//! unique, in blocks that a lookup reads one at a time.
//!
//! ```text
//! keys     count × 16 bytes, ascending
//! fences   one per block of BLOCK_KEYS keys: the block's first key (16 bytes) and the
//!          xxh3-64 of the block's bytes (8, little-endian)
//! folders  the distinct folder parts of the keys (4 bytes each), ascending
//! footer   count (u64) · keys per block (u32) · folders (u32; u32::MAX: none listed)
//!          · xxh3-64 of the fences and folders (u64) · magic `INLETHI2` (8 bytes)
//! ```
//!
//! A lookup reads the footer, the fences (24 bytes per 1,024 keys) and the folders, passes over
//! the keys of folders the run does not hold, then reads only the blocks the other keys fall in,
//! so its cost follows the keys asked about, not the size of the run. Every block read is checked
//! against its fence: a damaged run is an error, never a wrong answer.
//!
//! Runs written before keys were grouped by folder ([`KeyLayout::Scattered`], magic `INLETHI1`)
//! have no folders and a footer without their count; they are read as they are.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};
use tokio::io::AsyncWriteExt;
use twox_hash::XxHash3_64;

use crate::error::{Error, Result};
use crate::lineage::{KeyLayout, SourceKey};

/// Keys per block: the unit a lookup reads (16 KiB).
pub const BLOCK_KEYS: usize = 1024;
/// Reads in flight at once during a lookup of one run.
const BLOCK_READS: usize = 16;
/// Most blocks one lookup read spans (512 KiB): wanted blocks close together are read at once.
const SPAN_BLOCKS: usize = 32;
/// Wanted blocks at most this many blocks apart share a read; the blocks between are skipped.
const SPAN_GAP_BLOCKS: usize = 2;
const KEY_BYTES: usize = 16;
const FENCE_BYTES: usize = KEY_BYTES + 8;
const FOOTER_BYTES: usize = 8 + 4 + 4 + 8 + 8;
const MAGIC: &[u8; 8] = b"INLETHI2";
/// A run written in [`KeyLayout::Scattered`]: no folders, and no count of them in its footer.
const SCATTERED_FOOTER_BYTES: usize = 8 + 4 + 8 + 8;
const SCATTERED_MAGIC: &[u8; 8] = b"INLETHI1";
const FOLDER_BYTES: usize = 4;
/// The folders are listed when there are at most this many more than blocks: a list of one
/// folder per source (sources each in a folder of their own) would cost more to read than the
/// reads it saves.
const FOLDER_SLACK: usize = 64;
/// Most folders a writer holds while writing (4 MiB): past that, none are listed.
const FOLDER_LIMIT: usize = 1 << 20;
const NO_FOLDERS: u32 = u32::MAX;
/// Blocks read at once when a run is streamed whole (a merge): 2 MiB.
const STREAM_BLOCKS: usize = 128;
/// Bytes a run writer buffers before it starts a multipart upload.
const WRITE_BUFFER: usize = 8 << 20;

/// A run's size and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    pub path: Path,
    pub entries: u64,
}

/// Writes one run from keys given in ascending order, streaming it to the store.
pub struct RunWriter {
    out: BufWriter,
    path: Path,
    layout: KeyLayout,
    block: Vec<u8>,
    fences: Vec<u8>,
    /// The distinct folders so far; `None` once there are too many to be worth listing.
    folders: Option<Vec<u32>>,
    count: u64,
    last: Option<SourceKey>,
}

impl RunWriter {
    /// A writer of keys in the current layout.
    pub fn new(store: Arc<dyn ObjectStore>, path: Path) -> Self {
        Self::in_layout(store, path, KeyLayout::CURRENT)
    }

    /// A writer of keys made in `layout` (older runs merge among themselves in theirs).
    pub fn in_layout(store: Arc<dyn ObjectStore>, path: Path, layout: KeyLayout) -> Self {
        let out = BufWriter::with_capacity(store, path.clone(), WRITE_BUFFER);
        let block = Vec::with_capacity(BLOCK_KEYS * KEY_BYTES);
        // Keys spread evenly have no folders to list.
        let folders = (layout == KeyLayout::ByFolder).then(Vec::new);
        Self { out, path, layout, block, fences: Vec::new(), folders, count: 0, last: None }
    }

    /// Appends `key`; a repeat of the previous key is skipped.
    pub async fn push(&mut self, key: SourceKey) -> Result<()> {
        match self.last {
            Some(last) if last == key => return Ok(()),
            Some(last) if last > key => {
                return Err(Error::Integrity(format!("history run {}: keys out of order", self.path)));
            }
            _ => {}
        }
        self.last = Some(key);
        self.block.extend_from_slice(&key.0);
        self.count += 1;
        if let Some(folders) = &mut self.folders
            && folders.last() != Some(&key.folder())
        {
            folders.push(key.folder());
            if folders.len() > FOLDER_LIMIT {
                self.folders = None;
            }
        }
        if self.block.len() == BLOCK_KEYS * KEY_BYTES {
            self.flush_block().await?;
        }
        Ok(())
    }

    async fn flush_block(&mut self) -> Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        self.fences.extend_from_slice(&self.block[..KEY_BYTES]);
        self.fences.extend_from_slice(&XxHash3_64::oneshot(&self.block).to_le_bytes());
        let block = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK_KEYS * KEY_BYTES));
        self.out.put(Bytes::from(block)).await?;
        Ok(())
    }

    /// Writes the fences and the footer and completes the upload.
    pub async fn finish(mut self) -> Result<RunInfo> {
        self.flush_block().await?;
        let mut tail = std::mem::take(&mut self.fences);
        let blocks = (self.count as usize).div_ceil(BLOCK_KEYS);
        let listed = match &self.folders {
            Some(folders) if folders.len() <= blocks + FOLDER_SLACK => {
                tail.extend(folders.iter().flat_map(|folder| folder.to_be_bytes()));
                folders.len() as u32
            }
            _ => NO_FOLDERS,
        };
        let digest = XxHash3_64::oneshot(&tail);
        tail.extend_from_slice(&self.count.to_le_bytes());
        tail.extend_from_slice(&(BLOCK_KEYS as u32).to_le_bytes());
        match self.layout {
            KeyLayout::ByFolder => {
                tail.extend_from_slice(&listed.to_le_bytes());
                tail.extend_from_slice(&digest.to_le_bytes());
                tail.extend_from_slice(MAGIC);
            }
            KeyLayout::Scattered => {
                tail.extend_from_slice(&digest.to_le_bytes());
                tail.extend_from_slice(SCATTERED_MAGIC);
            }
        }
        self.out.put(Bytes::from(tail)).await?;
        self.out.shutdown().await?;
        Ok(RunInfo { path: self.path, entries: self.count })
    }
}

/// An open run: its footer and fences, ready for lookups.
#[derive(Debug, Clone)]
pub struct Run {
    pub path: Path,
    pub entries: u64,
    /// How its keys were made: a lookup asks it in the same layout.
    pub layout: KeyLayout,
    /// The folders its keys are in, when listed: a key of another folder is not held.
    folders: Option<Vec<u32>>,
    /// First key of each block.
    firsts: Vec<SourceKey>,
    /// Digest of each block.
    digests: Vec<u64>,
}

impl Run {
    /// Reads and checks a run's footer, fences and folders.
    pub async fn open(store: &Arc<dyn ObjectStore>, path: &Path) -> Result<Self> {
        let damaged = |what: &str| Error::Integrity(format!("history run {path}: {what}"));
        let options = GetOptions { range: Some(GetRange::Suffix(FOOTER_BYTES as u64)), ..Default::default() };
        let found = store.get_opts(path, options).await?;
        let size = found.meta.size;
        let tail = found.bytes().await?;
        let (layout, footer) = match tail.len().checked_sub(8).map(|at| &tail[at..]) {
            Some(magic) if magic == MAGIC && tail.len() == FOOTER_BYTES => (KeyLayout::ByFolder, &tail[..]),
            Some(magic) if magic == SCATTERED_MAGIC && tail.len() >= SCATTERED_FOOTER_BYTES => {
                (KeyLayout::Scattered, &tail[tail.len() - SCATTERED_FOOTER_BYTES..])
            }
            _ => return Err(damaged("no footer")),
        };
        let word = |at: usize, bytes: usize| {
            footer[at..at + bytes].iter().rev().fold(0u64, |value, byte| (value << 8) | u64::from(*byte))
        };
        let (entries, block_keys) = (word(0, 8), word(8, 4));
        let (listed, digest) = match layout {
            KeyLayout::ByFolder => (word(12, 4) as u32, word(16, 8)),
            KeyLayout::Scattered => (NO_FOLDERS, word(12, 8)),
        };
        if block_keys != BLOCK_KEYS as u64 {
            return Err(damaged("unknown block size"));
        }
        let blocks = entries.div_ceil(block_keys);
        let folders_bytes = if listed == NO_FOLDERS { 0 } else { u64::from(listed) * FOLDER_BYTES as u64 };
        let impossible = || damaged("size does not match its footer");
        let keys_end = entries.checked_mul(KEY_BYTES as u64).ok_or_else(impossible)?;
        let fences_end = blocks
            .checked_mul(FENCE_BYTES as u64)
            .and_then(|fences| fences.checked_add(keys_end))
            .ok_or_else(impossible)?;
        if fences_end.checked_add(folders_bytes + footer.len() as u64) != Some(size) {
            return Err(impossible());
        }
        let index = get_range(store, path, keys_end..fences_end + folders_bytes).await?;
        if XxHash3_64::oneshot(&index) != digest {
            return Err(damaged("fences do not match their digest"));
        }
        let (fences, folders) = index.split_at((fences_end - keys_end) as usize);
        let (firsts, digests) = fences
            .chunks_exact(FENCE_BYTES)
            .map(|fence| {
                let first = SourceKey(fence[..KEY_BYTES].try_into().expect("16 bytes"));
                (first, u64::from_le_bytes(fence[KEY_BYTES..].try_into().expect("8 bytes")))
            })
            .unzip();
        let folders = (listed != NO_FOLDERS).then(|| {
            folders
                .chunks_exact(FOLDER_BYTES)
                .map(|folder| u32::from_be_bytes(folder.try_into().expect("4 bytes")))
                .collect()
        });
        Ok(Self { path: path.clone(), entries, layout, folders, firsts, digests })
    }

    /// Which of `keys` the run holds. The blocks they fall in are read a few at a time and
    /// dropped once answered, so memory is a few reads whatever the number of keys; blocks
    /// lying close together are read together ([`read_spans`]), so a lookup of many keys
    /// reads a dense stretch of the run in few requests.
    pub async fn holding(&self, store: &Arc<dyn ObjectStore>, keys: &[SourceKey]) -> Result<Vec<SourceKey>> {
        let mut wanted: Vec<(usize, SourceKey)> = keys
            .iter()
            .filter(|key| self.folders.as_ref().is_none_or(|folders| folders.binary_search(&key.folder()).is_ok()))
            .filter_map(|key| Some((self.firsts.partition_point(|first| first <= key).checked_sub(1)?, *key)))
            .collect();
        wanted.sort_unstable();
        let mut blocks: Vec<usize> = wanted.iter().map(|(block, _)| *block).collect();
        blocks.dedup();
        // One ranged read per span. Not `get_ranges`: on S3 it merges ranges less than a MiB
        // apart into reads of any size, which a lookup could not bound.
        let mut reads = futures::stream::iter(read_spans(&blocks))
            .map(|span| async move {
                let start = self.block_range(span.start).start;
                let bytes = get_range(store, &self.path, start..self.block_range(span.end - 1).end).await?;
                Ok::<_, Error>((span, start, bytes))
            })
            // In order (`buffered`, not `buffer_unordered`): each span answers the wanted
            // blocks after the previous one's.
            .buffered(BLOCK_READS);
        let mut held = Vec::new();
        let mut next = 0;
        while let Some((span, start, bytes)) = reads.try_next().await? {
            for &block in &blocks[next..] {
                if block >= span.end {
                    break;
                }
                next += 1;
                let range = self.block_range(block);
                let at = (range.start - start) as usize..(range.end - start) as usize;
                let keys = self.checked_block(block, bytes.get(at).unwrap_or_default())?;
                let first = wanted.partition_point(|(b, _)| *b < block);
                let last = wanted.partition_point(|(b, _)| *b <= block);
                held.extend(
                    wanted[first..last].iter().map(|(_, key)| *key).filter(|key| keys.binary_search(key).is_ok()),
                );
            }
        }
        Ok(held)
    }

    fn block_range(&self, block: usize) -> Range<u64> {
        let start = (block * BLOCK_KEYS) as u64;
        let end = (start + BLOCK_KEYS as u64).min(self.entries);
        start * KEY_BYTES as u64..end * KEY_BYTES as u64
    }

    /// The keys of `block`, checked against its fence and the run's folders.
    fn checked_block(&self, block: usize, bytes: &[u8]) -> Result<Vec<SourceKey>> {
        let expected = self.block_range(block);
        if bytes.len() as u64 != expected.end - expected.start || XxHash3_64::oneshot(bytes) != self.digests[block] {
            return Err(Error::Integrity(format!(
                "history run {}: block {block} does not match its digest",
                self.path
            )));
        }
        let keys: Vec<SourceKey> =
            bytes.chunks_exact(KEY_BYTES).map(|key| SourceKey(key.try_into().expect("16 bytes"))).collect();
        // A key of a folder the list lacks would be passed over by lookups: the run is wrong.
        if let Some(folders) = &self.folders
            && keys.iter().any(|key| folders.binary_search(&key.folder()).is_err())
        {
            return Err(Error::Integrity(format!("history run {}: block {block} holds an unlisted folder", self.path)));
        }
        Ok(keys)
    }

    fn blocks(&self) -> usize {
        self.firsts.len()
    }
}

/// The reads covering `blocks` (ascending, distinct), as ranges of blocks: consecutive wanted
/// blocks at most [`SPAN_GAP_BLOCKS`] apart share a read of at most [`SPAN_BLOCKS`] blocks.
fn read_spans(blocks: &[usize]) -> Vec<Range<usize>> {
    let mut spans: Vec<Range<usize>> = Vec::new();
    for &block in blocks {
        match spans.last_mut() {
            Some(span) if block - (span.end - 1) <= SPAN_GAP_BLOCKS && block - span.start < SPAN_BLOCKS => {
                span.end = block + 1;
            }
            _ => spans.push(block..block + 1),
        }
    }
    spans
}

async fn get_range(store: &Arc<dyn ObjectStore>, path: &Path, range: Range<u64>) -> Result<Bytes> {
    if range.is_empty() {
        return Ok(Bytes::new());
    }
    Ok(store.get_ranges(path, &[range]).await?.pop().unwrap_or_default())
}

/// Reads a run front to back, a few blocks at a time.
struct RunCursor<'a> {
    run: &'a Run,
    next_block: usize,
    keys: Vec<SourceKey>,
    at: usize,
}

impl<'a> RunCursor<'a> {
    fn new(run: &'a Run) -> Self {
        Self { run, next_block: 0, keys: Vec::new(), at: 0 }
    }

    /// The current key, reading the next blocks when the buffered ones are used up.
    async fn peek(&mut self, store: &Arc<dyn ObjectStore>) -> Result<Option<SourceKey>> {
        if self.at == self.keys.len() {
            let blocks = self.next_block..(self.next_block + STREAM_BLOCKS).min(self.run.blocks());
            if blocks.is_empty() {
                return Ok(None);
            }
            let ranges: Vec<Range<u64>> = blocks.clone().map(|block| self.run.block_range(block)).collect();
            let data = store.get_ranges(&self.run.path, &ranges).await?;
            self.keys.clear();
            for (block, bytes) in blocks.clone().zip(&data) {
                self.keys.extend(self.run.checked_block(block, bytes)?);
            }
            self.at = 0;
            self.next_block = blocks.end;
        }
        Ok(self.keys.get(self.at).copied())
    }
}

/// Merges `runs` (of one key layout) into one run of that layout at `path`, streaming: memory
/// is a few blocks per input run.
pub async fn merge(store: &Arc<dyn ObjectStore>, runs: &[Run], path: Path) -> Result<RunInfo> {
    let layout = runs.first().map_or(KeyLayout::CURRENT, |run| run.layout);
    // Keys of two layouts in one run would be found by no lookup.
    if let Some(run) = runs.iter().find(|run| run.layout != layout) {
        return Err(Error::Integrity(format!("history run {}: of another key layout, not merged", run.path)));
    }
    let mut cursors: Vec<RunCursor> = runs.iter().map(RunCursor::new).collect();
    let mut writer = RunWriter::in_layout(store.clone(), path, layout);
    loop {
        let mut smallest: Option<(SourceKey, usize)> = None;
        for (index, cursor) in cursors.iter_mut().enumerate() {
            if let Some(key) = cursor.peek(store).await?
                && smallest.is_none_or(|(least, _)| key < least)
            {
                smallest = Some((key, index));
            }
        }
        let Some((key, index)) = smallest else { break };
        writer.push(key).await?;
        cursors[index].at += 1;
    }
    writer.finish().await
}

/// The bytes of a run as written before keys were grouped by folder ([`KeyLayout::Scattered`]):
/// `keys` ascending, their fences, a footer without a folder count.
#[cfg(test)]
pub(crate) fn scattered_run_bytes(keys: &[SourceKey]) -> Vec<u8> {
    let mut bytes: Vec<u8> = keys.iter().flat_map(|key| key.0).collect();
    let mut fences = Vec::new();
    for block in bytes.chunks(BLOCK_KEYS * KEY_BYTES) {
        fences.extend_from_slice(&block[..KEY_BYTES]);
        fences.extend_from_slice(&XxHash3_64::oneshot(block).to_le_bytes());
    }
    let digest = XxHash3_64::oneshot(&fences);
    bytes.extend_from_slice(&fences);
    bytes.extend_from_slice(&(keys.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&(BLOCK_KEYS as u32).to_le_bytes());
    bytes.extend_from_slice(&digest.to_le_bytes());
    bytes.extend_from_slice(SCATTERED_MAGIC);
    bytes
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt, PutPayload};

    use super::*;

    fn key(n: u64) -> SourceKey {
        let mut bytes = [0u8; 16];
        bytes[8..].copy_from_slice(&n.to_be_bytes());
        SourceKey(bytes)
    }

    async fn write(store: &Arc<dyn ObjectStore>, name: &str, keys: impl IntoIterator<Item = u64>) -> Run {
        let mut writer = RunWriter::new(store.clone(), Path::from(name));
        for n in keys {
            writer.push(key(n)).await.unwrap();
        }
        let info = writer.finish().await.unwrap();
        Run::open(store, &info.path).await.unwrap()
    }

    #[tokio::test]
    async fn lookups_find_exactly_the_keys_a_run_holds() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        // Even numbers, over several blocks and a partial last one.
        let run = write(&store, "even.run", (0..5000).map(|n| n * 2)).await;
        assert_eq!(run.entries, 5000);
        let asked: Vec<SourceKey> = [0, 1, 2, 2047, 2048, 4096, 9998, 9999, 100_000].into_iter().map(key).collect();
        let mut held = run.holding(&store, &asked).await.unwrap();
        held.sort();
        assert_eq!(held, [0, 2, 2048, 4096, 9998].into_iter().map(key).collect::<Vec<_>>());
        let empty = write(&store, "empty.run", []).await;
        assert!(empty.holding(&store, &asked).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_merge_holds_every_key_of_its_inputs_once() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let a = write(&store, "a.run", (0..3000).map(|n| n * 3)).await;
        let b = write(&store, "b.run", (0..3000).map(|n| n * 2)).await;
        let merged = merge(&store, &[a, b], Path::from("ab.run")).await.unwrap();
        let expected: Vec<u64> = (0..9000).filter(|n| (n % 2 == 0 && *n < 6000) || n % 3 == 0).collect();
        assert_eq!(merged.entries, expected.len() as u64);
        let run = Run::open(&store, &merged.path).await.unwrap();
        let all: Vec<SourceKey> = (0..9000).map(key).collect();
        let mut held = run.holding(&store, &all).await.unwrap();
        held.sort();
        assert_eq!(held, expected.into_iter().map(key).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn damage_is_an_error_not_an_answer() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let run = write(&store, "r.run", 0..3000).await;
        let path = Path::from("r.run");
        let mut bytes = store.get(&path).await.unwrap().bytes().await.unwrap().to_vec();
        bytes[1500 * KEY_BYTES + 3] ^= 1;
        store.put(&path, PutPayload::from(bytes.clone())).await.unwrap();
        let err = run.holding(&store, &[key(1500)]).await.unwrap_err().to_string();
        assert!(err.contains("block 1 does not match"), "{err}");
        bytes.truncate(bytes.len() - 1);
        store.put(&path, PutPayload::from(bytes)).await.unwrap();
        assert!(Run::open(&store, &path).await.is_err(), "a cut run does not open");
        let unsorted = {
            let mut writer = RunWriter::new(store.clone(), Path::from("u.run"));
            writer.push(key(2)).await.unwrap();
            writer.push(key(1)).await
        };
        assert!(unsorted.is_err());
    }

    #[test]
    fn close_blocks_share_a_read_and_far_ones_do_not() {
        assert_eq!(read_spans(&[]), Vec::<Range<usize>>::new());
        assert_eq!(read_spans(&[0, 1, 3, 10, 11, 20]), vec![0..4, 10..12, 20..21]);
        let dense: Vec<usize> = (0..100).collect();
        let spans = read_spans(&dense);
        assert!(spans.iter().all(|span| span.len() <= SPAN_BLOCKS), "{spans:?}");
        assert_eq!(spans.iter().map(|span| span.len()).sum::<usize>(), 100);
    }

    #[tokio::test]
    async fn a_lookup_of_every_key_of_a_run_finds_them_all_block_by_block() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let run = write(&store, "dense.run", (0..100_000).map(|n| n * 2)).await;
        let asked: Vec<SourceKey> = (0..200_001).map(key).collect();
        let mut held = run.holding(&store, &asked).await.unwrap();
        held.sort();
        assert_eq!(held, (0..100_000).map(|n| key(n * 2)).collect::<Vec<_>>());
    }

    fn in_folder(folder: u32, n: u64) -> SourceKey {
        let mut key = key(n);
        key.0[..4].copy_from_slice(&folder.to_be_bytes());
        key
    }

    #[tokio::test]
    async fn keys_of_a_folder_the_run_does_not_hold_are_answered_without_a_read() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let mut keys: Vec<SourceKey> =
            (0..3000).map(|n| in_folder(7, n)).chain((0..3000).map(|n| in_folder(9, n))).collect();
        keys.sort();
        let mut writer = RunWriter::new(store.clone(), Path::from("f.run"));
        for key in &keys {
            writer.push(*key).await.unwrap();
        }
        writer.finish().await.unwrap();
        let path = Path::from("f.run");
        let run = Run::open(&store, &path).await.unwrap();
        assert_eq!((run.layout, run.folders.clone()), (KeyLayout::ByFolder, Some(vec![7, 9])));
        let asked = [in_folder(7, 5), in_folder(8, 5), in_folder(9, 2999), in_folder(9, 3000), in_folder(10, 1)];
        assert_eq!(run.holding(&store, &asked).await.unwrap(), [in_folder(7, 5), in_folder(9, 2999)]);
        // Every block damaged: a key of a folder the run holds is an error, one of another
        // folder is answered from the folders alone.
        let mut bytes = store.get(&path).await.unwrap().bytes().await.unwrap().to_vec();
        for block in 0..run.blocks() {
            bytes[block * BLOCK_KEYS * KEY_BYTES + 15] ^= 1;
        }
        store.put(&path, PutPayload::from(bytes)).await.unwrap();
        assert!(run.holding(&store, &[in_folder(9, 1)]).await.is_err());
        assert!(run.holding(&store, &[in_folder(8, 1), in_folder(10, 1), in_folder(1, 1)]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_run_of_a_folder_per_key_lists_no_folders_and_still_answers() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let keys: Vec<SourceKey> = (0..2000u32).map(|n| in_folder(n, 1)).collect();
        let mut writer = RunWriter::new(store.clone(), Path::from("many.run"));
        for key in &keys {
            writer.push(*key).await.unwrap();
        }
        writer.finish().await.unwrap();
        let run = Run::open(&store, &Path::from("many.run")).await.unwrap();
        assert_eq!(run.folders, None, "a list as long as the keys would cost more than it saves");
        let asked = [in_folder(5, 1), in_folder(5, 2), in_folder(1999, 1), in_folder(2000, 1)];
        assert_eq!(run.holding(&store, &asked).await.unwrap(), [in_folder(5, 1), in_folder(1999, 1)]);
    }

    #[tokio::test]
    async fn runs_written_before_keys_were_grouped_by_folder_are_read_as_they_are_and_never_merged() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let keys: Vec<SourceKey> = (0..2500).map(|n| key(n * 2)).collect();
        store.put(&Path::from("old.run"), PutPayload::from(scattered_run_bytes(&keys))).await.unwrap();
        let old = Run::open(&store, &Path::from("old.run")).await.unwrap();
        assert_eq!((old.layout, old.entries, old.folders.clone()), (KeyLayout::Scattered, 2500, None));
        let asked: Vec<SourceKey> = [0, 1, 2048, 4998, 5000].into_iter().map(key).collect();
        assert_eq!(old.holding(&store, &asked).await.unwrap(), [0, 2048, 4998].map(key));
        let new = write(&store, "new.run", [1, 3]).await;
        let err = merge(&store, &[old.clone(), new], Path::from("mixed.run")).await.unwrap_err().to_string();
        assert!(err.contains("of another key layout"), "{err}");
        // Older runs merge among themselves, into a run of their layout.
        let other = Path::from("other.run");
        store.put(&other, PutPayload::from(scattered_run_bytes(&[key(1), key(4999)]))).await.unwrap();
        let other = Run::open(&store, &other).await.unwrap();
        let merged = merge(&store, &[old, other], Path::from("merged.run")).await.unwrap();
        let merged = Run::open(&store, &merged.path).await.unwrap();
        assert_eq!((merged.layout, merged.entries, merged.folders.clone()), (KeyLayout::Scattered, 2502, None));
        let asked: Vec<SourceKey> = [1, 2, 3, 4999].into_iter().map(key).collect();
        assert_eq!(merged.holding(&store, &asked).await.unwrap(), [1, 2, 4999].map(key));
        let bytes = store.get(&merged.path).await.unwrap().bytes().await.unwrap();
        let mut keys: Vec<SourceKey> = (0..2500).map(|n| key(n * 2)).chain([key(1), key(4999)]).collect();
        keys.sort();
        assert_eq!(bytes.to_vec(), scattered_run_bytes(&keys), "as an earlier release writes it");
    }
}
