//! Snapshot summaries (`summaries/<hash>`): what listing, retention, snapshot selection and the
//! SLA report need of each snapshot, without its per-database trees.
//!
//! A snapshot of 25,000 databases is megabytes of JSON; its summary keeps the header and the
//! database names, about a tenth of that, and is cached like the snapshots. Summaries are
//! derived data: each is written right after its snapshot and names it; a snapshot without one
//! (written before summaries existed, or by a run that stopped in between) is summarised from
//! the snapshot itself on reading, and a backup stores the missing summaries. A summary whose
//! snapshot is gone is ignored (and `forget` deletes it: with its snapshot, or later).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::ids::SnapshotId;
use super::snapshot::{BackupStats, ChangeTracking, ShardOf, Snapshot, SourceInfo};

/// The stored form of a summary (JSON compressed and sealed with the metadata key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotSummary {
    pub version: u32,
    /// The snapshot summarised (hex id).
    pub snapshot: String,
    pub time: jiff::Timestamp,
    pub finished: jiff::Timestamp,
    pub hostname: String,
    pub source: SourceInfo,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub time_given: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_tracking: Option<ChangeTracking>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardOf>,
    pub stats: BackupStats,
    /// Row bytes of all its databases.
    pub total_bytes: u64,
    /// Names of the databases it holds, sorted.
    pub databases: Vec<String>,
    /// Names of the databases that failed in it, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
    /// The key slot that wrote the snapshot and whether it said it held a write-only key, as
    /// the snapshot records it (its full-key mark is checked on the snapshot itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<WriterClaim>,
    /// A full key's mark over the summary without it (see [`super::snapshot::SnapshotWriter`]):
    /// a summary it verified against its snapshot, or wrote itself. Anything else a full key
    /// checks against the snapshot before trusting it (summaries are metadata a write-only key
    /// can write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_key_mark: Option<String>,
    /// The snapshot's `accounts` entry (counts and where the tree is, or why it is missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<super::accounts::AccountsEntry>,
}

/// Which slot a snapshot says wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterClaim {
    pub slot: String,
    pub write_only: bool,
}

impl SnapshotSummary {
    pub fn of(id: &SnapshotId, snapshot: &Snapshot) -> SnapshotSummary {
        let mut databases: Vec<String> =
            snapshot.databases.iter().map(|d| d.name.clone()).collect();
        databases.sort();
        let mut failed: Vec<String> = snapshot.failed.iter().map(|f| f.name.clone()).collect();
        failed.sort();
        SnapshotSummary {
            version: 1,
            snapshot: id.to_hex(),
            time: snapshot.time,
            finished: snapshot.finished,
            hostname: snapshot.hostname.clone(),
            source: snapshot.source.clone(),
            tags: snapshot.tags.clone(),
            time_given: snapshot.time_given,
            run: snapshot.run.clone(),
            change_tracking: snapshot.change_tracking.clone(),
            shard: snapshot.shard.clone(),
            stats: snapshot.stats.clone(),
            total_bytes: snapshot.total_bytes(),
            databases,
            failed,
            writer: snapshot.writer.as_ref().map(|w| WriterClaim {
                slot: w.slot.clone(),
                write_only: w.write_only,
            }),
            full_key_mark: None,
            accounts: snapshot.accounts.clone(),
        }
    }

    /// The bytes a full key's mark covers: the summary without its mark, keys sorted.
    pub fn marked_bytes(&self) -> Vec<u8> {
        let mut unmarked = self.clone();
        unmarked.full_key_mark = None;
        super::snapshot::canonical_json(&unmarked)
    }

    /// Whether `other` says the same as this summary (marks aside).
    pub fn agrees_with(&self, other: &SnapshotSummary) -> bool {
        self.marked_bytes() == other.marked_bytes()
    }

    /// Whether the snapshot holds (backed up, not failed) `database`.
    pub fn holds(&self, database: &str) -> bool {
        self.databases
            .binary_search_by(|d| d.as_str().cmp(database))
            .is_ok()
    }

    /// See [`Snapshot::backup_key`].
    pub fn backup_key(&self, id: &SnapshotId) -> String {
        match &self.shard {
            Some(shard) => format!("run:{}", shard.run_id),
            None => id.to_hex(),
        }
    }
}

/// A snapshot's summary and the object it is stored as (`None`: made from the snapshot).
pub(crate) type StoredSummary = (SnapshotId, SnapshotSummary, Option<String>);

/// Pair each listed snapshot with the stored summary (with its object name) that names it;
/// returns the pairs and the snapshots that have none.
pub(crate) fn pair_up(
    snapshot_ids: Vec<SnapshotId>,
    stored: Vec<(String, SnapshotSummary)>,
) -> (Vec<StoredSummary>, Vec<SnapshotId>) {
    let mut by_snapshot: HashMap<String, (String, SnapshotSummary)> = stored
        .into_iter()
        .map(|(name, summary)| (summary.snapshot.clone(), (name, summary)))
        .collect();
    let mut paired = Vec::with_capacity(snapshot_ids.len());
    let mut missing = Vec::new();
    for id in snapshot_ids {
        match by_snapshot.remove(&id.to_hex()) {
            Some((name, summary)) => paired.push((id, summary, Some(name))),
            None => missing.push(id),
        }
    }
    (paired, missing)
}
