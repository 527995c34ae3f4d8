//! Rebuilding what can be rebuilt from the packs themselves.
//!
//! Every pack ends with a sealed header listing its blobs, which duplicates the index (see
//! docs/FORMAT.md, "Packs"). When index files are lost or damaged, `repair_index` reads the
//! packs no intact index file lists, checks each against its name, and writes a new index file
//! for them. Nothing is deleted or rewritten: a damaged index file stays where it is (a later
//! prune, or the operator, removes it) and the new one is simply another index file. Packs a
//! prune mark condemns are left alone.

use std::str::FromStr;

use crate::error::Result;
use crate::repo::ids::{PackId, storage_hash};
use crate::repo::index::{IndexFile, IndexedPack};
use crate::repo::pack::{MAX_PACK_LEN, read_header};
use crate::repo::{Repository, paths};

/// What `repair_index` did.
#[derive(Debug, Default, serde::Serialize)]
pub struct IndexRepair {
    /// Packs in storage that no intact index file listed.
    pub unindexed_packs: usize,
    /// Of those, packs now indexed again.
    pub packs_indexed: usize,
    pub blobs_indexed: usize,
    /// Packs that could not be read back (damaged or unreadable), with the reason.
    pub unreadable: Vec<String>,
    /// The new index file, if one was written.
    pub index_file: Option<String>,
}

pub async fn repair_index(repo: &Repository) -> Result<IndexRepair> {
    let (index, _damaged) = repo.load_index_reporting().await?;
    let indexed: std::collections::HashSet<PackId> = index.packs().map(|(id, _)| *id).collect();
    let mut report = IndexRepair::default();
    let mut packs = Vec::new();
    for object in repo.storage().list(paths::DATA).await? {
        let Some(hex) = object.name.rsplit('/').next() else {
            continue;
        };
        let Ok(id) = PackId::from_str(hex) else {
            continue;
        };
        // A condemned pack is on its way out (a prune's sweep may be deleting it now):
        // indexing it again would name a pack about to disappear.
        if indexed.contains(&id) || index.is_condemned(&id) {
            continue;
        }
        report.unindexed_packs += 1;
        // The listed size is the storage's word: capped like every other reader of packs.
        let bytes = match repo.storage().get(&object.name, MAX_PACK_LEN).await {
            Ok(bytes) => bytes,
            Err(e) => {
                report.unreadable.push(format!("pack {}: {e}", id.short()));
                continue;
            }
        };
        if storage_hash(&bytes) != id.0 {
            report.unreadable.push(format!(
                "pack {} does not match its name (damaged)",
                id.short()
            ));
            continue;
        }
        match read_header(repo.keys(), &bytes, &format!("pack {}", id.short())) {
            Ok(entries) => {
                report.blobs_indexed += entries.len();
                packs.push(IndexedPack::new(id, bytes.len() as u64, &entries));
            }
            Err(e) => report.unreadable.push(e.to_string()),
        }
    }
    report.packs_indexed = packs.len();
    if !packs.is_empty() {
        let id = repo.save_index(&IndexFile { version: 1, packs }).await?;
        report.index_file = Some(id.to_string());
    }
    Ok(report)
}
