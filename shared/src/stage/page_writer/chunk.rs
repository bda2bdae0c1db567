//! A closed column chunk, in the two buffers it was written to.

use std::io::Read;

use bytes::{Buf, Bytes};
use parquet::file::reader::{ChunkReader, Length};

/// A column chunk: its dictionary page (empty without one), then its data pages. Kept apart
/// so that closing a chunk does not copy its pages behind the dictionary into a fresh buffer
/// (whose pages the kernel would fault in and zero, every row group); the file writer reads
/// the two in turn.
pub(super) struct Chunk {
    pub(super) dictionary: Bytes,
    pub(super) pages: Bytes,
}

impl Chunk {
    /// Its bytes, dictionary page included.
    pub(super) fn size(&self) -> usize {
        self.dictionary.len() + self.pages.len()
    }
}

impl Length for Chunk {
    fn len(&self) -> u64 {
        self.size() as u64
    }
}

impl ChunkReader for Chunk {
    type T = std::io::Chain<bytes::buf::Reader<Bytes>, bytes::buf::Reader<Bytes>>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let start = usize::try_from(start).unwrap_or(usize::MAX).min(self.size());
        let dictionary = self.dictionary.slice(start.min(self.dictionary.len())..);
        let pages = self.pages.slice(start.saturating_sub(self.dictionary.len())..);
        Ok(dictionary.reader().chain(pages.reader()))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let available = self.size().saturating_sub(usize::try_from(start).unwrap_or(usize::MAX));
        let mut bytes = Vec::with_capacity(length.min(available));
        self.get_read(start)?.take(length as u64).read_to_end(&mut bytes)?;
        if bytes.len() != length {
            return Err(parquet::errors::ParquetError::EOF(format!(
                "{length} bytes from {start} asked of a chunk of {}",
                self.size()
            )));
        }
        Ok(Bytes::from(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_run_across_the_two_buffers_from_any_start() {
        let chunk = Chunk { dictionary: Bytes::from_static(b"dict"), pages: Bytes::from_static(b"pages") };
        assert_eq!(chunk.len(), 9);
        for start in 0..=9u64 {
            let mut read = Vec::new();
            chunk.get_read(start).unwrap().read_to_end(&mut read).unwrap();
            assert_eq!(read, &b"dictpages"[start as usize..], "from {start}");
        }
        assert_eq!(chunk.get_bytes(2, 4).unwrap(), Bytes::from_static(b"ctpa"));
        assert!(chunk.get_bytes(8, 2).is_err(), "past the end");
        let empty = Chunk { dictionary: Bytes::new(), pages: Bytes::from_static(b"p") };
        assert_eq!(empty.get_bytes(0, 1).unwrap(), Bytes::from_static(b"p"));
    }
}
