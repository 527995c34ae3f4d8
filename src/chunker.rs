//! Content-defined chunking at row boundaries.
//!
//! Rows arrive as encoded text, one at a time. A gear rolling hash runs over the bytes; once the
//! chunk holds `min_size` bytes, the first position whose hash has its top bits clear *fires*, and
//! the chunk is cut at the end of the row that contains it (or at the first row end past
//! `max_size`). Cut points therefore depend on content, not on offsets, so inserting or changing a
//! row moves at most the chunks around it, and a chunk always holds whole rows: a restore can send
//! it as one INSERT and a reader can find a row by the first key of its chunk.
//!
//! The gear table is derived from the repository key, so chunk lengths do not reveal content
//! shared with other repositories. The algorithm is part of the repository format (docs/FORMAT.md)
//! and pinned by a golden test: changing it silently would break deduplication.

use crate::repo::ChunkerParams;

/// Cuts a stream of rows into chunks.
pub struct RowChunker {
    gear: Box<[u64; 256]>,
    mask: u64,
    params: ChunkerParams,
    buf: Vec<u8>,
    rows: u64,
    hash: u64,
    fired: bool,
}

/// A completed chunk: whole rows, and how many.
#[derive(Debug)]
pub struct Chunk {
    pub data: Vec<u8>,
    pub rows: u64,
}

/// The gear table for a repository: 256 words of BLAKE3 keyed output.
pub fn gear_table(key: &[u8; 32]) -> Box<[u64; 256]> {
    let mut bytes = [0u8; 256 * 8];
    blake3::Hasher::new_keyed(key)
        .update(b"coffer gear table v1")
        .finalize_xof()
        .fill(&mut bytes);
    let mut table = Box::new([0u64; 256]);
    for (slot, word) in table.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        *slot = u64::from_le_bytes(w);
    }
    table
}

impl RowChunker {
    pub fn new(gear: Box<[u64; 256]>, params: ChunkerParams) -> Self {
        let bits = params.avg_size.max(2).trailing_zeros();
        // The top bits of a gear hash depend on the last 64 bytes; the low bits on only a few.
        let mask = !0u64 << (64 - bits);
        RowChunker {
            gear,
            mask,
            params,
            buf: Vec::new(),
            rows: 0,
            hash: 0,
            fired: false,
        }
    }

    /// Add one encoded row; returns a chunk when this row ends one.
    pub fn push_row(&mut self, row: &[u8]) -> Option<Chunk> {
        let start = self.buf.len();
        self.buf.extend_from_slice(row);
        self.rows += 1;
        if !self.fired {
            let min = self.params.min_size as usize;
            let from = start.max(min);
            for &b in self.buf.get(from..).unwrap_or_default() {
                self.hash = (self.hash << 1).wrapping_add(self.gear[b as usize]);
                if self.hash & self.mask == 0 {
                    self.fired = true;
                    break;
                }
            }
        }
        if self.fired || self.buf.len() >= self.params.max_size as usize {
            self.take()
        } else {
            None
        }
    }

    /// The rows not yet in a chunk, at the end of a table.
    pub fn finish(&mut self) -> Option<Chunk> {
        self.take()
    }

    /// Bytes buffered and not yet emitted.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn take(&mut self) -> Option<Chunk> {
        if self.rows == 0 {
            return None;
        }
        let data = std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(self.params.avg_size as usize),
        );
        let rows = std::mem::take(&mut self.rows);
        self.hash = 0;
        self.fired = false;
        Some(Chunk { data, rows })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(seed: u64, count: usize) -> Vec<Vec<u8>> {
        // xorshift: deterministic, varied row lengths and content.
        let mut x = seed;
        (0..count)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let len = 20 + (x % 200) as usize;
                let mut row = format!("({i},'").into_bytes();
                row.extend((0..len).map(|j| b'a' + ((x >> (j % 60)) % 26) as u8));
                row.extend_from_slice(b"')\n");
                row
            })
            .collect()
    }

    fn cut(key: [u8; 32], rows: &[Vec<u8>]) -> Vec<(usize, u64)> {
        let params = ChunkerParams::with_average(4096).unwrap();
        let mut chunker = RowChunker::new(gear_table(&key), params);
        let mut out = Vec::new();
        for row in rows {
            if let Some(c) = chunker.push_row(row) {
                out.push((c.data.len(), c.rows));
            }
        }
        out.extend(chunker.finish().map(|c| (c.data.len(), c.rows)));
        out
    }

    #[test]
    fn chunks_hold_whole_rows_within_bounds() {
        let data = rows(1, 5000);
        let chunks = cut([5; 32], &data);
        let total: usize = data.iter().map(Vec::len).sum();
        assert_eq!(chunks.iter().map(|c| c.0).sum::<usize>(), total);
        assert_eq!(chunks.iter().map(|c| c.1).sum::<u64>(), 5000);
        for (len, _) in &chunks[..chunks.len() - 1] {
            assert!(*len >= 1024 && *len < 16384 + 300, "chunk of {len} bytes");
        }
    }

    #[test]
    fn a_changed_row_changes_few_chunks() {
        let data = rows(2, 5000);
        let mut changed = data.clone();
        changed[2500] = b"(2500,'changed')\n".to_vec();
        let before = cut([5; 32], &data);
        let after = cut([5; 32], &changed);
        let same = before.iter().filter(|c| after.contains(c)).count();
        assert!(
            before.len() - same <= 2,
            "{} of {} chunks changed",
            before.len() - same,
            before.len()
        );
    }

    #[test]
    fn cut_points_depend_on_the_repository_key() {
        let data = rows(3, 3000);
        assert_ne!(cut([5; 32], &data), cut([6; 32], &data));
    }

    /// Cut points are part of the repository format: this must never change within a format
    /// version, or existing repositories stop deduplicating.
    #[test]
    fn golden_cut_points() {
        let data = rows(4, 2000);
        let lens: Vec<usize> = cut([0; 32], &data).into_iter().map(|c| c.0).collect();
        assert_eq!(lens, GOLDEN);
    }

    const GOLDEN: &[usize] = &[
        4900, 3470, 4273, 8085, 5172, 5488, 1234, 8816, 2670, 7515, 1338, 8530, 2662, 5041, 2189,
        3141, 6471, 5752, 1181, 1434, 7260, 2331, 2657, 7741, 3945, 1572, 4448, 1368, 1991, 1273,
        3642, 1470, 5923, 14600, 6649, 3477, 5528, 3521, 2391, 7533, 5901, 12940, 4108, 3797, 5503,
        4110, 12339, 1580, 6332, 9014, 2201, 11954,
    ];
}
