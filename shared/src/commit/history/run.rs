//! One sorted run of the load history index: the keys of committed sources, ascending and
//! unique, in blocks that a lookup reads one at a time.
//!
//! ```text
//! keys     count × 16 bytes, ascending
//! fences   one per block of BLOCK_KEYS keys: the block's first key (16 bytes) and the
//!          xxh3-64 of the block's bytes (8, little-endian)
//! footer   count (u64) · keys per block (u32) · xxh3-64 of the fences (u64) · magic (8 bytes)
//! ```
//!
//! A lookup reads the footer and the fences (24 bytes per 1,024 keys), then only the blocks its
//! keys fall in, so its cost follows the keys asked about, not the size of the run. Every block
//! read is checked against its fence: a damaged run is an error, never a wrong answer.

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
use crate::lineage::SourceKey;

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
const FOOTER_BYTES: usize = 8 + 4 + 8 + 8;
const MAGIC: &[u8; 8] = b"INLETHI1";
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
    block: Vec<u8>,
    fences: Vec<u8>,
    count: u64,
    last: Option<SourceKey>,
}

impl RunWriter {
    pub fn new(store: Arc<dyn ObjectStore>, path: Path) -> Self {
        let out = BufWriter::with_capacity(store, path.clone(), WRITE_BUFFER);
        Self { out, path, block: Vec::with_capacity(BLOCK_KEYS * KEY_BYTES), fences: Vec::new(), count: 0, last: None }
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
        let fences_digest = XxHash3_64::oneshot(&tail);
        tail.extend_from_slice(&self.count.to_le_bytes());
        tail.extend_from_slice(&(BLOCK_KEYS as u32).to_le_bytes());
        tail.extend_from_slice(&fences_digest.to_le_bytes());
        tail.extend_from_slice(MAGIC);
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
    /// First key of each block.
    firsts: Vec<SourceKey>,
    /// Digest of each block.
    digests: Vec<u64>,
}

impl Run {
    /// Reads and checks a run's footer and fences.
    pub async fn open(store: &Arc<dyn ObjectStore>, path: &Path) -> Result<Self> {
        let damaged = |what: &str| Error::Integrity(format!("history run {path}: {what}"));
        let options = GetOptions { range: Some(GetRange::Suffix(FOOTER_BYTES as u64)), ..Default::default() };
        let found = store.get_opts(path, options).await?;
        let size = found.meta.size;
        let footer = found.bytes().await?;
        if footer.len() != FOOTER_BYTES || &footer[20..] != MAGIC {
            return Err(damaged("no footer"));
        }
        let entries = u64::from_le_bytes(footer[..8].try_into().expect("8 bytes"));
        let block_keys = u32::from_le_bytes(footer[8..12].try_into().expect("4 bytes")) as u64;
        let fences_digest = u64::from_le_bytes(footer[12..20].try_into().expect("8 bytes"));
        if block_keys != BLOCK_KEYS as u64 {
            return Err(damaged("unknown block size"));
        }
        let blocks = entries.div_ceil(block_keys);
        let keys_end = entries * KEY_BYTES as u64;
        if keys_end + blocks * FENCE_BYTES as u64 + FOOTER_BYTES as u64 != size {
            return Err(damaged("size does not match its footer"));
        }
        let fences = get_range(store, path, keys_end..keys_end + blocks * FENCE_BYTES as u64).await?;
        if XxHash3_64::oneshot(&fences) != fences_digest {
            return Err(damaged("fences do not match their digest"));
        }
        let (firsts, digests) = fences
            .chunks_exact(FENCE_BYTES)
            .map(|fence| {
                let first = SourceKey(fence[..KEY_BYTES].try_into().expect("16 bytes"));
                (first, u64::from_le_bytes(fence[KEY_BYTES..].try_into().expect("8 bytes")))
            })
            .unzip();
        Ok(Self { path: path.clone(), entries, firsts, digests })
    }

    /// Which of `keys` the run holds. The blocks they fall in are read a few at a time and
    /// dropped once answered, so memory is a few reads whatever the number of keys; blocks
    /// lying close together are read together ([`read_spans`]), so a lookup of many keys
    /// reads a dense stretch of the run in few requests.
    pub async fn holding(&self, store: &Arc<dyn ObjectStore>, keys: &[SourceKey]) -> Result<Vec<SourceKey>> {
        let mut wanted: Vec<(usize, SourceKey)> = keys
            .iter()
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

    /// The keys of `block`, checked against its fence.
    fn checked_block(&self, block: usize, bytes: &[u8]) -> Result<Vec<SourceKey>> {
        let expected = self.block_range(block);
        if bytes.len() as u64 != expected.end - expected.start || XxHash3_64::oneshot(bytes) != self.digests[block] {
            return Err(Error::Integrity(format!(
                "history run {}: block {block} does not match its digest",
                self.path
            )));
        }
        Ok(bytes.chunks_exact(KEY_BYTES).map(|key| SourceKey(key.try_into().expect("16 bytes"))).collect())
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

/// Merges `runs` into one run at `path`, streaming: memory is a few blocks per input run.
pub async fn merge(store: &Arc<dyn ObjectStore>, runs: &[Run], path: Path) -> Result<RunInfo> {
    let mut cursors: Vec<RunCursor> = runs.iter().map(RunCursor::new).collect();
    let mut writer = RunWriter::new(store.clone(), path);
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
}
