//! `check`: verify that every snapshot can be restored.
//!
//! Damage is reported, never fatal: a damaged index file or snapshot is listed as a problem and
//! the check goes on with the rest.
//!
//! Always: every index file and snapshot authenticates, every pack the index names exists with
//! the indexed size, and every tree and chunk a snapshot refers to is indexed (trees are read and
//! decrypted). With [`DataCheck`] other than `None`: every pack of the subset is read whole, its
//! hash matches its name, its header matches the index, and every blob decrypts to its id.

use std::collections::{HashMap, HashSet};

use crate::error::Result;
use crate::repo::ids::{BlobId, PackId};
use crate::repo::index::Index;
use crate::repo::pack::{MAX_PACK_LEN, read_header};
use crate::repo::tree::{DatabaseTree, TableTree};
use crate::repo::{Repository, paths};

/// Which packs `check` reads whole.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DataCheck {
    /// None: structure only.
    None,
    All,
    /// Part `n` (1-based) of `of` parts, by pack id: `of` runs with n = 1..=of read every pack
    /// once (`--read-data-subset n/N`).
    Part {
        n: u64,
        of: u64,
    },
    /// A random share of the packs (`--read-data-subset 5%`).
    Share(f64),
}

impl DataCheck {
    /// `5%`, `2/7` or `0.05`.
    pub fn parse_subset(text: &str) -> std::result::Result<Self, String> {
        let text = text.trim();
        if let Some((n, of)) = text.split_once('/') {
            let (n, of): (u64, u64) = match (n.trim().parse(), of.trim().parse()) {
                (Ok(n), Ok(of)) => (n, of),
                _ => return Err(format!("{text:?} is not n/N")),
            };
            if of == 0 || n == 0 || n > of {
                return Err(format!("{text:?}: n/N needs 1 <= n <= N"));
            }
            return Ok(DataCheck::Part { n, of });
        }
        let share = match text.strip_suffix('%') {
            Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
            None => text.parse::<f64>(),
        }
        .map_err(|_| format!("{text:?} is neither a percentage (5%) nor a part (n/N)"))?;
        if !(share > 0.0 && share <= 1.0) {
            return Err(format!("{text:?} is not a share between 0 and 100%"));
        }
        Ok(DataCheck::Share(share))
    }

    fn includes(&self, pack: &PackId) -> Result<bool> {
        Ok(match *self {
            DataCheck::None => false,
            DataCheck::All => true,
            DataCheck::Part { n, of } => {
                let mut first = [0u8; 8];
                first.copy_from_slice(&pack.0[..8]);
                u64::from_le_bytes(first) % of == n - 1
            }
            DataCheck::Share(share) => {
                let mut r = [0u8; 8];
                crate::crypto::fill_random(&mut r)?;
                (u64::from_le_bytes(r) as f64 / u64::MAX as f64) < share
            }
        })
    }
}

/// What `check` found.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub snapshots: usize,
    pub packs: usize,
    pub blobs_checked: usize,
    /// Packs read whole (all, or the subset asked for).
    pub packs_read: usize,
    pub problems: Vec<String>,
}

pub async fn check(repo: &Repository, data: DataCheck) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let (index, damaged_index) = repo.load_index_reporting().await?;
    report
        .problems
        .extend(damaged_index.iter().map(|e| e.to_string()));
    for run in repo.list_runs().await? {
        if let Err(why) = &run.marker {
            report
                .problems
                .push(format!("run marker {}: {why}", run.name));
        }
    }
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
    for (id, snapshot) in &snapshots {
        let Some(tree) = snapshot.accounts.as_ref().and_then(|a| a.tree) else {
            continue;
        };
        if !seen_trees.insert(tree) {
            continue;
        }
        let checked = match repo.read_blob(&index, &tree).await {
            Ok(bytes) => crate::repo::accounts::AccountSet::decode(&bytes).map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = checked {
            report
                .problems
                .push(format!("snapshot {} accounts: {e}", id.short()));
        }
    }
    report
        .problems
        .extend(repo.summary_problems(&snapshots).await?);
    report.problems.extend(repo.future_dated(&snapshots).await?);
    if data != DataCheck::None {
        check_pack_data(repo, &index, data, &mut report).await?;
    }
    Ok(report)
}

async fn check_pack_data(
    repo: &Repository,
    index: &Index,
    data: DataCheck,
    report: &mut CheckReport,
) -> Result<()> {
    let packs: Vec<(PackId, u64)> = index.packs().copied().collect();
    for (pack, size) in packs {
        if !data.includes(&pack)? {
            continue;
        }
        report.packs_read += 1;
        let name = paths::pack(&pack);
        let bytes = match repo.storage().get(&name, size.min(MAX_PACK_LEN)).await {
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
    Ok(())
}
