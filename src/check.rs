//! `check`: verify that every snapshot can be restored.
//!
//! Damage is reported, never fatal: a damaged index file or snapshot is listed as a problem and
//! the check goes on with the rest.
//!
//! Always: every index file and snapshot authenticates, every pack the index names exists with
//! the indexed size, and every tree and chunk a snapshot refers to is indexed (trees are read and
//! decrypted). With `read_data`: every pack is read whole, its hash matches its name, its header
//! matches the index, and every blob decrypts to its id.

use std::collections::{HashMap, HashSet};

use crate::error::Result;
use crate::repo::ids::{BlobId, PackId};
use crate::repo::index::Index;
use crate::repo::pack::read_header;
use crate::repo::tree::{DatabaseTree, TableTree};
use crate::repo::{Repository, paths};

/// What `check` found.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub snapshots: usize,
    pub packs: usize,
    pub blobs_checked: usize,
    pub problems: Vec<String>,
}

pub async fn check(repo: &Repository, read_data: bool) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let (index, damaged_index) = repo.load_index_reporting().await?;
    report
        .problems
        .extend(damaged_index.iter().map(|e| format!("index file: {e}")));
    let stored: HashMap<String, u64> = repo
        .storage()
        .list(paths::DATA)
        .await?
        .into_iter()
        .map(|m| (m.name, m.size))
        .collect();
    for (pack, size) in index.packs() {
        report.packs += 1;
        match stored.get(&paths::pack(pack)) {
            None => report.problems.push(format!(
                "pack {} is in the index but missing from storage",
                pack.short()
            )),
            Some(actual) if actual != size => report.problems.push(format!(
                "pack {} has {actual} bytes, the index says {size}",
                pack.short()
            )),
            Some(_) => {}
        }
    }
    let (snapshots, damaged_snapshots) = repo.snapshots_reporting().await?;
    report.snapshots = snapshots.len() + damaged_snapshots.len();
    report
        .problems
        .extend(damaged_snapshots.iter().map(|e| format!("snapshot: {e}")));
    let mut seen_trees: HashSet<BlobId> = HashSet::new();
    for (id, snapshot) in &snapshots {
        for db in &snapshot.databases {
            let what = format!("snapshot {} database {}", id.short(), db.name);
            if !seen_trees.insert(db.tree) {
                continue;
            }
            let tree: DatabaseTree = match repo.read_tree(&index, &db.tree).await {
                Ok(t) => t,
                Err(e) => {
                    report.problems.push(format!("{what}: {e}"));
                    continue;
                }
            };
            for table in &tree.tables {
                if !seen_trees.insert(table.tree) {
                    continue;
                }
                match repo.read_tree::<TableTree>(&index, &table.tree).await {
                    Ok(t) => {
                        for chunk in &t.chunks {
                            if !index.contains(&chunk.id) {
                                report.problems.push(format!(
                                    "{what} table {}: chunk {} is not indexed",
                                    t.name,
                                    chunk.id.short()
                                ));
                            }
                        }
                    }
                    Err(e) => report
                        .problems
                        .push(format!("{what} table {}: {e}", table.name)),
                }
            }
        }
    }
    if read_data {
        check_pack_data(repo, &index, &mut report).await;
    }
    Ok(report)
}

async fn check_pack_data(repo: &Repository, index: &Index, report: &mut CheckReport) {
    let packs: Vec<(PackId, u64)> = index.packs().copied().collect();
    for (pack, size) in packs {
        let name = paths::pack(&pack);
        let bytes = match repo.storage().get(&name, size).await {
            Ok(b) => b,
            Err(e) => {
                report.problems.push(format!("pack {}: {e}", pack.short()));
                continue;
            }
        };
        if crate::repo::ids::storage_hash(&bytes) != pack.0 {
            report.problems.push(format!(
                "pack {} does not match its name (damaged)",
                pack.short()
            ));
        }
        let entries = match read_header(repo.keys(), &bytes, &format!("pack {}", pack.short())) {
            Ok(entries) => entries,
            Err(e) => {
                report.problems.push(e.to_string());
                continue;
            }
        };
        for entry in entries {
            let Some(loc) = index.get(&entry.id) else {
                continue;
            };
            if loc.pack != pack {
                continue;
            }
            report.blobs_checked += 1;
            if let Err(e) = repo.read_blob(index, &entry.id).await {
                report.problems.push(e.to_string());
            }
        }
    }
}
