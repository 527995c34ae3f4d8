//! The index: which pack holds each blob, at which byte range.
//!
//! Stored as many immutable index files (`index/<id>`), each listing some packs and their blobs;
//! the in-memory [`Index`] is their union. An index file is written only after every pack it names
//! is stored, so anything the index points to exists.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::ids::{BlobId, PackId};
use super::pack::{BlobKind, PackEntry};

/// The stored form of one index file (JSON, compressed and sealed).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IndexFile {
    pub version: u32,
    pub packs: Vec<IndexedPack>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexedPack {
    pub id: PackId,
    pub size: u64,
    pub blobs: Vec<IndexedBlob>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexedBlob {
    pub id: BlobId,
    #[serde(rename = "type")]
    pub kind: BlobKind,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
}

impl IndexedPack {
    pub fn new(id: PackId, size: u64, entries: &[PackEntry]) -> Self {
        let blobs = entries
            .iter()
            .map(|e| IndexedBlob {
                id: e.id,
                kind: e.kind,
                offset: e.offset,
                length: e.length,
                raw_length: e.raw_length,
            })
            .collect();
        IndexedPack { id, size, blobs }
    }
}

/// Where one blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    pub pack: PackId,
    pub kind: BlobKind,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
}

#[derive(Debug, Clone, Copy)]
struct CompactLocation {
    pack: u32,
    kind: BlobKind,
    offset: u32,
    length: u32,
    raw_length: u32,
}

/// The union of all index files, kept compact: pack ids are stored once and referred to by number.
///
/// A blob stored in several packs (two backups stored it at once, or a prune copied it) has its
/// first location here: the first pack added that holds it. [`Index::ranked`] adds packs in an
/// order of preference, so copies in condemned packs are used only when there is no other. The
/// other locations are kept too ([`Index::locations`]): index files are metadata any write-only
/// key can write, so a location is a claim, and a reader falls back to the next when one does
/// not hold the blob.
#[derive(Debug, Default)]
pub struct Index {
    packs: Vec<(PackId, u64)>,
    pack_numbers: HashMap<PackId, u32>,
    blobs: HashMap<BlobId, CompactLocation>,
    /// Locations of blobs beyond their first, in the order added.
    more: HashMap<BlobId, Vec<CompactLocation>>,
    /// Packs a prune mark condemned.
    condemned: HashSet<PackId>,
}

impl Index {
    /// The union of `files`, adding the packs of a lower `rank` first (so a blob's location is
    /// in the lowest-ranked pack that holds it); packs in `condemned` count as condemned. Each
    /// pack's entries are freed once added, so the files and the index are not both held whole.
    pub fn ranked(
        files: Vec<IndexFile>,
        rank: impl Fn(&PackId) -> u8,
        condemned: HashSet<PackId>,
    ) -> Index {
        let mut by_rank: std::collections::BTreeMap<u8, Vec<IndexedPack>> = Default::default();
        for pack in files.into_iter().flat_map(|f| f.packs) {
            by_rank.entry(rank(&pack.id)).or_default().push(pack);
        }
        let mut index = Index {
            condemned,
            ..Index::default()
        };
        for pack in by_rank.into_values().flatten() {
            index.add_pack(&pack);
        }
        index
    }

    pub fn add_file(&mut self, file: &IndexFile) {
        for pack in &file.packs {
            self.add_pack(pack);
        }
    }

    pub fn add_pack(&mut self, pack: &IndexedPack) {
        let number = match self.pack_numbers.get(&pack.id) {
            Some(n) => *n,
            None => {
                let n = self.packs.len() as u32;
                self.packs.push((pack.id, pack.size));
                self.pack_numbers.insert(pack.id, n);
                n
            }
        };
        for blob in &pack.blobs {
            let location = CompactLocation {
                pack: number,
                kind: blob.kind,
                offset: blob.offset,
                length: blob.length,
                raw_length: blob.raw_length,
            };
            match self.blobs.entry(blob.id) {
                std::collections::hash_map::Entry::Vacant(vacant) => {
                    vacant.insert(location);
                }
                std::collections::hash_map::Entry::Occupied(first) => {
                    let known = |l: &CompactLocation| l.pack == number && l.offset == blob.offset;
                    let more = self.more.entry(blob.id).or_default();
                    if !known(first.get()) && !more.iter().any(known) {
                        more.push(location);
                    }
                }
            }
        }
    }

    fn located(&self, loc: &CompactLocation) -> Option<BlobLocation> {
        let (pack, _) = self.packs.get(loc.pack as usize)?;
        Some(BlobLocation {
            pack: *pack,
            kind: loc.kind,
            offset: loc.offset,
            length: loc.length,
            raw_length: loc.raw_length,
        })
    }

    /// Every location the index files claim for `id`, the preferred first.
    pub fn locations(&self, id: &BlobId) -> Vec<BlobLocation> {
        self.blobs
            .get(id)
            .into_iter()
            .chain(self.more.get(id).into_iter().flatten())
            .filter_map(|loc| self.located(loc))
            .collect()
    }

    pub fn get(&self, id: &BlobId) -> Option<BlobLocation> {
        self.located(self.blobs.get(id)?)
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        self.blobs.contains_key(id)
    }

    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    /// All indexed packs with the size the index expects.
    pub fn packs(&self) -> impl Iterator<Item = &(PackId, u64)> {
        self.packs.iter()
    }

    pub fn blob_ids(&self) -> impl Iterator<Item = &BlobId> {
        self.blobs.keys()
    }

    /// Blobs with a copy outside condemned packs: what a backup may deduplicate against.
    pub fn live_blob_ids(&self) -> impl Iterator<Item = &BlobId> {
        self.blobs.iter().filter_map(|(id, loc)| {
            let (pack, _) = self.packs.get(loc.pack as usize)?;
            (!self.condemned.contains(pack)).then_some(id)
        })
    }

    /// Every blob and its location.
    pub fn entries(&self) -> impl Iterator<Item = (&BlobId, BlobLocation)> {
        self.blobs.iter().filter_map(|(id, loc)| {
            let (pack, _) = self.packs.get(loc.pack as usize)?;
            Some((
                id,
                BlobLocation {
                    pack: *pack,
                    kind: loc.kind,
                    offset: loc.offset,
                    length: loc.length,
                    raw_length: loc.raw_length,
                },
            ))
        })
    }

    /// Whether `blob` has an indexed copy outside condemned packs.
    pub fn is_live(&self, blob: &BlobId) -> bool {
        self.blobs.get(blob).is_some_and(|loc| {
            self.packs
                .get(loc.pack as usize)
                .is_some_and(|(pack, _)| !self.condemned.contains(pack))
        })
    }

    pub fn has_pack(&self, pack: &PackId) -> bool {
        self.pack_numbers.contains_key(pack)
    }

    pub fn is_condemned(&self, pack: &PackId) -> bool {
        self.condemned.contains(pack)
    }
}

/// What opens a cached index (`repo::index_cache`): the encoding below, versioned.
const CACHE_MAGIC: &[u8] = b"coffer-index-cache/1\n";

/// Reads the fixed-size fields of a cached index, refusing to read past its end.
struct CacheReader<'a> {
    bytes: &'a [u8],
}

impl<'a> CacheReader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }
    fn id(&mut self) -> Option<[u8; 32]> {
        self.take(32)?.try_into().ok()
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    /// A count of records of `size` bytes each, no more than the bytes left can hold.
    fn count(&mut self, size: usize) -> Option<usize> {
        let n = usize::try_from(self.u64()?).ok()?;
        (n.checked_mul(size)? <= self.bytes.len()).then_some(n)
    }
    fn location(&mut self, packs: usize) -> Option<CompactLocation> {
        let pack = self.u32()?;
        if pack as usize >= packs {
            return None;
        }
        let kind = BlobKind::from_code(self.take(1)?[0]).ok()?;
        Some(CompactLocation {
            pack,
            kind,
            offset: self.u32()?,
            length: self.u32()?,
            raw_length: self.u32()?,
        })
    }
}

/// Bytes of one location record.
const LOCATION_BYTES: usize = 4 + 1 + 4 + 4 + 4;

impl Index {
    fn push_location(out: &mut Vec<u8>, location: &CompactLocation) {
        out.extend_from_slice(&location.pack.to_le_bytes());
        out.push(location.kind.code());
        out.extend_from_slice(&location.offset.to_le_bytes());
        out.extend_from_slice(&location.length.to_le_bytes());
        out.extend_from_slice(&location.raw_length.to_le_bytes());
    }

    /// The whole index in a fixed-size binary form (for the local cache: read back many times
    /// faster than the JSON index files it was built from, with the same preference order).
    pub fn to_cache_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            CACHE_MAGIC.len() + self.packs.len() * 40 + self.blobs.len() * (32 + LOCATION_BYTES),
        );
        out.extend_from_slice(CACHE_MAGIC);
        out.extend_from_slice(&(self.packs.len() as u64).to_le_bytes());
        for (pack, size) in &self.packs {
            out.extend_from_slice(&pack.0);
            out.extend_from_slice(&size.to_le_bytes());
        }
        out.extend_from_slice(&(self.condemned.len() as u64).to_le_bytes());
        for pack in &self.condemned {
            out.extend_from_slice(&pack.0);
        }
        out.extend_from_slice(&(self.blobs.len() as u64).to_le_bytes());
        for (blob, location) in &self.blobs {
            out.extend_from_slice(&blob.0);
            Self::push_location(&mut out, location);
        }
        out.extend_from_slice(&(self.more.len() as u64).to_le_bytes());
        for (blob, locations) in &self.more {
            out.extend_from_slice(&blob.0);
            out.extend_from_slice(&(locations.len() as u64).to_le_bytes());
            for location in locations {
                Self::push_location(&mut out, location);
            }
        }
        out
    }

    /// [`Index::to_cache_bytes`] read back; `None` for anything else (another version, cut
    /// short, a pack number out of range): the caller then reads the index files.
    pub fn from_cache_bytes(bytes: &[u8]) -> Option<Index> {
        let mut reader = CacheReader {
            bytes: bytes.strip_prefix(CACHE_MAGIC)?,
        };
        let pack_count = reader.count(40)?;
        let mut index = Index::default();
        index.packs.reserve(pack_count);
        for number in 0..pack_count {
            let pack = PackId(reader.id()?);
            let size = reader.u64()?;
            index.packs.push((pack, size));
            index.pack_numbers.insert(pack, number as u32);
        }
        for _ in 0..reader.count(32)? {
            index.condemned.insert(PackId(reader.id()?));
        }
        let blob_count = reader.count(32 + LOCATION_BYTES)?;
        index.blobs.reserve(blob_count);
        for _ in 0..blob_count {
            let blob = BlobId(reader.id()?);
            let location = reader.location(pack_count)?;
            index.blobs.insert(blob, location);
        }
        for _ in 0..reader.count(32 + 8)? {
            let blob = BlobId(reader.id()?);
            let mut locations = Vec::new();
            for _ in 0..reader.count(LOCATION_BYTES)? {
                locations.push(reader.location(pack_count)?);
            }
            index.more.insert(blob, locations);
        }
        reader.bytes.is_empty().then_some(index)
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    fn pack(id: u8, blobs: &[(u8, u32)]) -> IndexedPack {
        IndexedPack {
            id: PackId([id; 32]),
            size: 1000 + u64::from(id),
            blobs: blobs
                .iter()
                .map(|(blob, offset)| IndexedBlob {
                    id: BlobId([*blob; 32]),
                    kind: if blob % 2 == 0 {
                        BlobKind::Data
                    } else {
                        BlobKind::Tree
                    },
                    offset: *offset,
                    length: 10,
                    raw_length: 20,
                })
                .collect(),
        }
    }

    #[test]
    fn the_cached_form_reads_back_the_same_index_and_refuses_anything_else() {
        let files = vec![IndexFile {
            version: 1,
            packs: vec![pack(1, &[(1, 0), (2, 10)]), pack(2, &[(2, 0), (3, 10)])],
        }];
        let condemned: HashSet<PackId> = [PackId([2; 32])].into();
        let index = Index::ranked(files, |p| u8::from(*p == PackId([2; 32])), condemned);
        let bytes = index.to_cache_bytes();
        let back = Index::from_cache_bytes(&bytes).expect("reads back");
        for blob in [1u8, 2, 3, 4] {
            let id = BlobId([blob; 32]);
            assert_eq!(back.locations(&id), index.locations(&id), "blob {blob}");
        }
        assert_eq!(back.packs().count(), 2);
        assert!(back.is_condemned(&PackId([2; 32])));
        assert!(!back.is_live(&BlobId([3; 32])));
        // Cut short, grown, or with a pack number out of range: refused, never a panic.
        for cut in 0..bytes.len() {
            assert!(
                Index::from_cache_bytes(&bytes[..cut]).is_none(),
                "cut at {cut}"
            );
        }
        let mut grown = bytes.clone();
        grown.push(0);
        assert!(Index::from_cache_bytes(&grown).is_none());
        let mut huge = bytes.clone();
        let at = CACHE_MAGIC.len();
        huge[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Index::from_cache_bytes(&huge).is_none());
    }
}
