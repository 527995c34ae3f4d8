//! What a repository holds and what it costs: size, snapshots, per-database stored size (unique
//! to the database and shared with others), deduplication, and growth per snapshot.
//!
//! Sizes are stored bytes (compressed and sealed) of the blobs the snapshots reference, from the
//! index; packs may also hold blobs no snapshot references any more, which prune removes.

use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::Timestamp;

use crate::error::Result;
use crate::repo::Repository;
use crate::repo::ids::BlobId;
use crate::repo::index::Index;

#[derive(Debug, Clone, serde::Serialize)]
pub struct RepositoryStats {
    pub snapshots: usize,
    pub packs: usize,
    /// Bytes of all packs.
    pub pack_bytes: u64,
    /// Stored bytes of the blobs some snapshot references.
    pub referenced_bytes: u64,
    /// Row text all snapshots hold together, as if each were a full plain dump.
    pub logical_bytes: u64,
    /// `logical_bytes / referenced_bytes`.
    pub dedup_ratio: f64,
    pub databases: Vec<DatabaseStats>,
    pub growth: Vec<SnapshotGrowth>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DatabaseStats {
    pub name: String,
    /// Snapshots that hold it.
    pub snapshots: usize,
    /// Stored bytes of blobs only this database references.
    pub unique_bytes: u64,
    /// Stored bytes of blobs this database shares with others.
    pub shared_bytes: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotGrowth {
    pub id: String,
    pub time: Timestamp,
    /// Stored bytes of the blobs no earlier snapshot referenced.
    pub new_bytes: u64,
}

/// Which databases reference a blob: one, or more than one.
#[derive(Clone, Copy, PartialEq)]
enum Owner {
    One(usize),
    Shared,
}

pub async fn repository_stats(repo: &Repository) -> Result<RepositoryStats> {
    let snapshots = repo.snapshots().await?;
    let index = repo.load_index().await?;
    let mut names: Vec<String> = Vec::new();
    let mut name_index: HashMap<String, usize> = HashMap::new();
    let mut owners: HashMap<BlobId, Owner> = HashMap::new();
    let mut in_snapshots: BTreeMap<usize, usize> = BTreeMap::new();
    // A database tree's blobs, read once however many snapshots share it.
    let mut blobs_of_tree: HashMap<BlobId, Vec<BlobId>> = HashMap::new();
    let mut seen: HashSet<BlobId> = HashSet::new();
    let mut growth = Vec::with_capacity(snapshots.len());
    let mut logical_bytes = 0u64;
    for (id, snapshot) in &snapshots {
        let mut new_bytes = 0u64;
        for entry in &snapshot.databases {
            logical_bytes += entry.bytes;
            let db = *name_index.entry(entry.name.clone()).or_insert_with(|| {
                names.push(entry.name.clone());
                names.len() - 1
            });
            *in_snapshots.entry(db).or_default() += 1;
            if let std::collections::hash_map::Entry::Vacant(vacant) =
                blobs_of_tree.entry(entry.tree)
            {
                vacant.insert(repo.database_blobs(&index, &entry.tree).await?);
            }
            for blob in &blobs_of_tree[&entry.tree] {
                owners
                    .entry(*blob)
                    .and_modify(|o| {
                        if *o != Owner::One(db) {
                            *o = Owner::Shared;
                        }
                    })
                    .or_insert(Owner::One(db));
                if seen.insert(*blob) {
                    new_bytes += stored(&index, blob);
                }
            }
        }
        growth.push(SnapshotGrowth {
            id: id.to_string(),
            time: snapshot.time,
            new_bytes,
        });
    }
    let mut databases: Vec<DatabaseStats> = names
        .iter()
        .enumerate()
        .map(|(i, name)| DatabaseStats {
            name: name.clone(),
            snapshots: in_snapshots.get(&i).copied().unwrap_or(0),
            unique_bytes: 0,
            shared_bytes: 0,
        })
        .collect();
    let mut referenced_bytes = 0;
    for (blob, owner) in &owners {
        let bytes = stored(&index, blob);
        referenced_bytes += bytes;
        if let Owner::One(db) = owner {
            databases[*db].unique_bytes += bytes;
        }
    }
    // Shared bytes per database: the blobs it references that another database references too.
    let mut shared_seen: HashSet<(usize, BlobId)> = HashSet::new();
    for (_, snapshot) in &snapshots {
        for entry in &snapshot.databases {
            let db = name_index[&entry.name];
            for blob in &blobs_of_tree[&entry.tree] {
                if owners.get(blob) == Some(&Owner::Shared) && shared_seen.insert((db, *blob)) {
                    databases[db].shared_bytes += stored(&index, blob);
                }
            }
        }
    }
    databases.sort_by(|a, b| {
        (b.unique_bytes + b.shared_bytes)
            .cmp(&(a.unique_bytes + a.shared_bytes))
            .then_with(|| a.name.cmp(&b.name))
    });
    let packs: Vec<_> = index.packs().collect();
    Ok(RepositoryStats {
        snapshots: snapshots.len(),
        packs: packs.len(),
        pack_bytes: packs.iter().map(|(_, size)| size).sum(),
        referenced_bytes,
        logical_bytes,
        dedup_ratio: if referenced_bytes == 0 {
            0.0
        } else {
            logical_bytes as f64 / referenced_bytes as f64
        },
        databases,
        growth,
    })
}

fn stored(index: &Index, blob: &BlobId) -> u64 {
    index.get(blob).map_or(0, |l| u64::from(l.length))
}
