//! Pack files: many encrypted blobs in one storage object.
//!
//! Layout (see docs/FORMAT.md): `blob* || sealed header || header length (u32 LE)`. The header
//! sits at the end so a pack can be written as one stream while blobs arrive; it duplicates what
//! the index says, so a lost index can be rebuilt from the packs alone.

use serde::{Deserialize, Serialize};

use super::ids::{BlobId, PackId, storage_hash};
use crate::crypto::{Keys, Role};
use crate::error::{Error, Result};

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobKind {
    /// A chunk of table rows.
    Data,
    /// A database or table tree (JSON metadata).
    Tree,
}

impl BlobKind {
    pub fn role(self) -> Role {
        match self {
            BlobKind::Data => Role::DataBlob,
            BlobKind::Tree => Role::TreeBlob,
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            BlobKind::Data => 0,
            BlobKind::Tree => 1,
        }
    }

    pub(crate) fn from_code(code: u8) -> Result<Self> {
        match code {
            0 => Ok(BlobKind::Data),
            1 => Ok(BlobKind::Tree),
            other => Err(Error::corrupt(format!(
                "unknown blob type {other} in pack header"
            ))),
        }
    }
}

/// A blob's place inside a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    pub id: BlobId,
    pub kind: BlobKind,
    pub offset: u32,
    /// Stored (sealed) length.
    pub length: u32,
    /// Length of the plaintext, an upper bound for decompression.
    pub raw_length: u32,
}

const HEADER_ENTRY_LEN: usize = 1 + 4 + 4 + 32;

/// Collects sealed blobs until the pack is big enough to store.
#[derive(Default)]
pub struct PackBuilder {
    bytes: Vec<u8>,
    entries: Vec<PackEntry>,
}

/// A finished pack, ready to store.
pub struct FinishedPack {
    pub id: PackId,
    pub bytes: Vec<u8>,
    pub entries: Vec<PackEntry>,
}

impl PackBuilder {
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Append one sealed blob.
    pub fn push(
        &mut self,
        id: BlobId,
        kind: BlobKind,
        sealed: &[u8],
        raw_length: usize,
    ) -> Result<()> {
        let too_big = || Error::invalid(format!("blob {} is too large for a pack", id.short()));
        let offset = u32::try_from(self.bytes.len()).map_err(|_| too_big())?;
        let length = u32::try_from(sealed.len()).map_err(|_| too_big())?;
        let raw_length = u32::try_from(raw_length).map_err(|_| too_big())?;
        self.bytes.extend_from_slice(sealed);
        self.entries.push(PackEntry {
            id,
            kind,
            offset,
            length,
            raw_length,
        });
        Ok(())
    }

    /// Seal the header, append it and name the pack.
    pub fn finish(self, keys: &Keys) -> Result<FinishedPack> {
        let PackBuilder { mut bytes, entries } = self;
        let mut header = Vec::with_capacity(entries.len() * HEADER_ENTRY_LEN);
        for entry in &entries {
            header.push(entry.kind.code());
            header.extend_from_slice(&entry.length.to_le_bytes());
            header.extend_from_slice(&entry.raw_length.to_le_bytes());
            header.extend_from_slice(&entry.id.0);
        }
        let sealed = keys.seal(Role::PackHeader, &header)?;
        let header_len =
            u32::try_from(sealed.len()).map_err(|_| Error::invalid("pack header too large"))?;
        bytes.extend_from_slice(&sealed);
        bytes.extend_from_slice(&header_len.to_le_bytes());
        Ok(FinishedPack {
            id: PackId(storage_hash(&bytes)),
            bytes,
            entries,
        })
    }
}

/// Largest pack any reader reads whole: the largest target size a config allows (256 MiB), one
/// largest chunk past it (the last blob may overflow the target) and the header. A larger
/// object is refused before a byte of it is read.
pub const MAX_PACK_LEN: u64 = 512 << 20;

/// Largest sealed pack header read on its own (41 bytes per blob: a pack of the largest size in
/// blobs of the smallest chunk size has a few MB).
pub const MAX_HEADER_LEN: u64 = 16 << 20;

/// Read the entries of a whole pack from its own header (used by `check` and index rebuilds).
pub fn read_header(
    keys: &Keys,
    pack: &[u8],
    what: &dyn std::fmt::Display,
) -> Result<Vec<PackEntry>> {
    let short = || {
        Error::corrupt(format!("{what} is too short to be a pack")).with_hint("run `coffer check`")
    };
    let len_at = pack.len().checked_sub(4).ok_or_else(short)?;
    let mut len_bytes = [0u8; 4];
    len_bytes.copy_from_slice(&pack[len_at..]);
    let header_len = u32::from_le_bytes(len_bytes) as usize;
    let header_at = len_at.checked_sub(header_len).ok_or_else(short)?;
    parse_header(keys, &pack[header_at..len_at], header_at as u64, what)
}

/// Where the sealed header of a pack of `pack_len` bytes lies, from its last 4 bytes: the
/// byte range, checked to fit the pack and [`MAX_HEADER_LEN`].
pub fn header_range(
    pack_len: u64,
    tail: [u8; 4],
    what: &dyn std::fmt::Display,
) -> Result<std::ops::Range<u64>> {
    let header_len = u64::from(u32::from_le_bytes(tail));
    let end = pack_len
        .checked_sub(4)
        .filter(|end| header_len <= *end && header_len <= MAX_HEADER_LEN)
        .ok_or_else(|| {
            Error::corrupt(format!("{what} does not end with a header that fits it"))
                .with_hint("run `coffer check`")
        })?;
    Ok(end - header_len..end)
}

/// The entries of a sealed pack header, whose blobs fill the `blob_area` bytes before it.
pub fn parse_header(
    keys: &Keys,
    sealed: &[u8],
    blob_area: u64,
    what: &dyn std::fmt::Display,
) -> Result<Vec<PackEntry>> {
    let header = keys.open(Role::PackHeader, sealed, what)?;
    if header.len() % HEADER_ENTRY_LEN != 0 {
        return Err(Error::corrupt(format!(
            "{what} has a header of invalid length"
        )));
    }
    let mut entries = Vec::with_capacity(header.len() / HEADER_ENTRY_LEN);
    let mut offset: u64 = 0;
    for raw in header.chunks_exact(HEADER_ENTRY_LEN) {
        let length = u32::from_le_bytes([raw[1], raw[2], raw[3], raw[4]]);
        let raw_length = u32::from_le_bytes([raw[5], raw[6], raw[7], raw[8]]);
        let mut id = [0u8; 32];
        id.copy_from_slice(&raw[9..41]);
        let entry_offset = u32::try_from(offset)
            .map_err(|_| Error::corrupt(format!("{what} header offsets overflow")))?;
        entries.push(PackEntry {
            id: BlobId(id),
            kind: BlobKind::from_code(raw[0])?,
            offset: entry_offset,
            length,
            raw_length,
        });
        offset += u64::from(length);
    }
    if offset != blob_area {
        return Err(Error::corrupt(format!(
            "{what}: header lengths do not add up to the blob area"
        )));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterSecret;

    #[test]
    fn header_round_trip() {
        let keys = Keys::derive(&MasterSecret::from_bytes([3; 32]));
        let mut builder = PackBuilder::default();
        let a = keys.seal(Role::DataBlob, b"aaaa").unwrap();
        let b = keys.seal(Role::TreeBlob, b"bb").unwrap();
        builder
            .push(BlobId([1; 32]), BlobKind::Data, &a, 4)
            .unwrap();
        builder
            .push(BlobId([2; 32]), BlobKind::Tree, &b, 2)
            .unwrap();
        let pack = builder.finish(&keys).unwrap();
        assert_eq!(pack.id, PackId(storage_hash(&pack.bytes)));
        let entries = read_header(&keys, &pack.bytes, &"pack").unwrap();
        assert_eq!(entries, pack.entries);
        assert_eq!(entries[1].offset as usize, a.len());
        assert!(read_header(&keys, &pack.bytes[1..], &"pack").is_err());
    }
}
