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
