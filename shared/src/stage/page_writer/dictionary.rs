//! Dictionary encoding of a leaf's pages, where its values repeat.
//!
//! A page's PLAIN values are looked up in the row group's dictionary and written as indices
//! (`RLE_DICTIONARY`); the dictionary becomes the chunk's first page. A chunk whose first page
//! is mostly distinct values (ids, timestamps) stops trying, as does one whose dictionary
//! outgrows [`DICTIONARY_BYTES`]: its later pages are PLAIN, which readers take in the same
//! chunk. Repeated values then cost a few bits each instead of their bytes, which zstd alone
//! does not match (docs/performance.md).

use rustc_hash::FxHashMap;

/// Largest dictionary page, before compression.
pub(super) const DICTIONARY_BYTES: usize = 1024 * 1024;
/// A first page with at least this many values, over 90% of them distinct, ends the attempt.
const JUDGED_VALUES: usize = 256;

/// How a leaf's PLAIN values are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Values {
    /// Little-endian values of this many bytes.
    Fixed(usize),
    /// Byte arrays: lengths apart, bytes back to back.
    Bytes,
}

/// One row group's dictionary of a leaf.
pub(super) struct Dictionary {
    values: Values,
    fixed: FxHashMap<u64, u32>,
    bytes: FxHashMap<Box<[u8]>, u32>,
    /// The dictionary page's PLAIN values.
    pub(super) page: Vec<u8>,
    pub(super) entries: u32,
    /// Indices of the page just encoded.
    pub(super) indices: Vec<u32>,
    /// Pages encoded with it in this chunk, and whether it is still tried.
    pub(super) pages: usize,
    active: bool,
}

impl Dictionary {
    /// Memory it holds: its page, the indices of the page just encoded, its hash tables.
    pub(super) fn held_bytes(&self) -> usize {
        // The byte keys repeat the page's values.
        2 * self.page.capacity() + 4 * self.indices.capacity() + 16 * self.fixed.capacity() + 32 * self.bytes.capacity()
    }

    pub(super) fn new(values: Values) -> Self {
        Self {
            values,
            fixed: FxHashMap::default(),
            bytes: FxHashMap::default(),
            page: Vec::new(),
            entries: 0,
            indices: Vec::new(),
            pages: 0,
            active: true,
        }
    }

    /// Looks a page's PLAIN `values` (with `lengths` for byte arrays) up, leaving their indices
    /// in `self.indices`; false if the page is to be written PLAIN instead, from which on the
    /// chunk's pages all are.
    pub(super) fn encode(&mut self, values: &[u8], lengths: &[i32]) -> bool {
        if !self.active {
            return false;
        }
        self.indices.clear();
        let count = match self.values {
            Values::Fixed(width) => values.len() / width,
            Values::Bytes => lengths.len(),
        };
        // A page of nulls only: no dictionary of its own, but nothing against one in use.
        if count == 0 {
            return self.pages > 0;
        }
        let before = self.entries;
        match self.values {
            Values::Fixed(width) => {
                for value in values.chunks_exact(width) {
                    let mut bits = [0u8; 8];
                    bits[..width].copy_from_slice(value);
                    let next = self.entries;
                    let index = *self.fixed.entry(u64::from_le_bytes(bits)).or_insert_with(|| {
                        self.page.extend_from_slice(value);
                        next
                    });
                    self.entries += (index == next) as u32;
                    self.indices.push(index);
                }
            }
            Values::Bytes => {
                let mut start = 0;
                for &length in lengths {
                    let value = &values[start..start + length as usize];
                    start += length as usize;
                    let index = match self.bytes.get(value) {
                        Some(&index) => index,
                        None => {
                            let index = self.entries;
                            self.bytes.insert(value.into(), index);
                            self.page.extend_from_slice(&length.to_le_bytes());
                            self.page.extend_from_slice(value);
                            self.entries += 1;
                            index
                        }
                    };
                    self.indices.push(index);
                }
            }
        }
        let added = (self.entries - before) as usize;
        let mostly_distinct =
            self.pages == 0 && self.indices.len() >= JUDGED_VALUES && added * 10 > self.indices.len() * 9;
        if mostly_distinct || self.page.len() > DICTIONARY_BYTES {
            // The entries this page added stay: unused, but harmless, and the page is PLAIN.
            self.active = false;
            // No value is looked up again before the next row group: the tables go now, not
            // then (a schema of hundreds of columns would hold one per column), and the page
            // too if no page used it.
            self.fixed = FxHashMap::default();
            self.bytes = FxHashMap::default();
            if self.pages == 0 {
                self.page = Vec::new();
                self.entries = 0;
            }
            return false;
        }
        self.pages += 1;
        true
    }

    /// Whether any page of the chunk was encoded with it.
    pub(super) fn used(&self) -> bool {
        self.pages > 0
    }

    /// Empties it for the next row group.
    pub(super) fn reset(&mut self) {
        self.fixed.clear();
        self.bytes.clear();
        self.page.clear();
        self.entries = 0;
        self.pages = 0;
        self.active = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_values_get_indices_and_distinct_ones_stop_it() {
        let mut dictionary = Dictionary::new(Values::Bytes);
        assert!(dictionary.encode(b"abcab", &[1, 2, 1, 1]));
        assert_eq!(dictionary.indices, [0, 1, 0, 2]);
        assert_eq!(dictionary.entries, 3);
        assert_eq!(dictionary.page, b"\x01\0\0\0a\x02\0\0\0bc\x01\0\0\0b");

        let mut ids = Dictionary::new(Values::Fixed(8));
        let distinct: Vec<u8> = (0..1000i64).flat_map(|i| i.to_le_bytes()).collect();
        assert!(!ids.encode(&distinct, &[]));
        assert!(!ids.used());
        ids.reset();
        let repeated: Vec<u8> = (0..1000i64).flat_map(|i| (i % 7).to_le_bytes()).collect();
        assert!(ids.encode(&repeated, &[]));
        assert_eq!(ids.entries, 7);
    }

    #[test]
    fn a_dictionary_past_its_limit_ends_in_plain_pages() {
        let mut dictionary = Dictionary::new(Values::Bytes);
        let big = vec![b'x'; 600 * 1024];
        let mut first = big.clone();
        first.extend_from_slice(&big); // the same value twice: not mostly distinct
        let length = big.len() as i32;
        assert!(dictionary.encode(&first, &[length, length]));
        let mut other = big.clone();
        other[0] = b'y';
        assert!(!dictionary.encode(&other, &[length]));
        let same: Vec<u8> = big.clone();
        assert!(!dictionary.encode(&same, &[length]), "no longer tried in this chunk");
        assert!(dictionary.used());
    }
}
