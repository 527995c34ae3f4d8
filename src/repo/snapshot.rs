//! Snapshots: the root of one backup run.

use serde::{Deserialize, Serialize};

use super::ids::BlobId;

/// The stored form of a snapshot (`snapshots/<id>`, JSON compressed and sealed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    /// When the backup started.
    pub time: jiff::Timestamp,
    pub finished: jiff::Timestamp,
    /// The host coffer ran on.
    pub hostname: String,
    pub source: SourceInfo,
    pub databases: Vec<DatabaseEntry>,
    /// Databases that were selected but could not be backed up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<FailedDatabase>,
    pub stats: BackupStats,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// `time` was given by the operator (`backup --time`), not read from the clock.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub time_given: bool,
    /// The run marker (`runs/<id>`) the backup wrote before loading the index; a prune
    /// waits for a run until a snapshot names it (or its lease ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Whether databases were carried over from an earlier snapshot, and if not, why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_tracking: Option<ChangeTracking>,
    /// One share of a backup run split over several processes (`backup --shard K/N`): the
    /// snapshots with the same `run_id` together are one backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardOf>,
    /// Which key slot wrote the snapshot, and a mark only a full key can make: what a
    /// write-only key wrote is told apart (docs/FORMAT.md, "Snapshots").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<SnapshotWriter>,
    /// The server's accounts, roles and grants (since coffer 0.4; on a sharded run, in shard 0's
    /// snapshot only). Absent: not recorded (older snapshots, or a backup that left them out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<super::accounts::AccountsEntry>,
}

/// Who wrote a snapshot (since coffer 0.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotWriter {
    /// The key slot that opened the repository for the backup.
    pub slot: String,
    /// The writer's own word that it held a write-only key.
    pub write_only: bool,
    /// Hex BLAKE3 keyed with a key only full keys derive, over the snapshot's canonical JSON
    /// without `writer`: absent or wrong, the snapshot counts as written by a write-only key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_key_mark: Option<String>,
}

/// Who wrote a snapshot, as far as the reader's key can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WrittenBy {
    /// A full key (its mark verified), through this slot.
    FullKey { slot: String },
    /// A write-only key, or a snapshot from before coffer 0.4, or a mark that does not verify
    /// (or a reader that holds a write-only key itself and cannot verify marks).
    NotProven {
        slot: Option<String>,
        why: &'static str,
    },
}

impl WrittenBy {
    pub fn is_full_key(&self) -> bool {
        matches!(self, WrittenBy::FullKey { .. })
    }

    /// For listings: `full key (slot 1a2b3c4d)`, `write-only key (slot …)`, `unknown`.
    pub fn describe(&self) -> String {
        let short = |slot: &str| slot.chars().take(8).collect::<String>();
        match self {
            WrittenBy::FullKey { slot } => format!("full key (slot {})", short(slot)),
            WrittenBy::NotProven {
                slot: Some(slot),
                why,
            } => format!("{why} (slot {})", short(slot)),
            WrittenBy::NotProven { slot: None, why } => why.to_string(),
        }
    }
}

impl Snapshot {
    /// The bytes a writer mark covers: the snapshot without `writer`, as JSON with every
    /// object's keys sorted (the same bytes whatever order a reader parses fields in).
    pub fn marked_bytes(&self) -> Vec<u8> {
        let mut unmarked = self.clone();
        unmarked.writer = None;
        canonical_json(&unmarked)
    }
}

/// `value` as JSON with every object's keys sorted and no whitespace: the same bytes whatever
/// order a reader parsed its fields in (what a writer's mark covers).
pub(crate) fn canonical_json<T: Serialize>(value: &T) -> Vec<u8> {
    let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    serde_json::to_vec(&sorted(value)).unwrap_or_default()
}

/// `value` with the keys of every object in sorted order.
fn sorted(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(key, value)| (key, sorted(value)))
                    .collect(),
            )
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sorted).collect())
        }
        other => other,
    }
}

/// Which share of a sharded backup run a snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardOf {
    /// The run's name, the same for every shard (`backup --run-id`).
    pub run_id: String,
    /// This shard, counted from 0.
    pub index: u32,
    /// How many shards the run has.
    pub count: u32,
}

/// How a backup used the binary log to skip unchanged databases.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangeTracking {
    /// The snapshot whose binary-log position the changes were read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_snapshot: Option<String>,
    /// Why every database was read, when none could be carried over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_read_because: Option<String>,
    /// Databases carried over without reading them.
    pub carried: usize,
    /// Databases the log showed unchanged that were read again to check it (the safety net),
    /// and found unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verified: Vec<String>,
    /// Databases the log showed unchanged that the check found changed: change tracking would
    /// have carried stale data. The fresh copy is in this snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_while_carried: Vec<CarriedChange>,
}

/// A database the binary log showed unchanged whose fresh read differed from the copy that
/// would have been carried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CarriedChange {
    pub database: String,
    /// The snapshot whose copy would have been carried.
    pub carried_from: String,
    /// The tables whose content or definition differ (empty when the key cannot read trees).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    /// The binary-log range the scan read and found nothing in, `file:pos … file:pos`.
    pub binlog_range: String,
}

/// Which server was backed up (never credentials).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceInfo {
    /// `host:port` or the socket path.
    pub server: String,
    pub server_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binlog: Option<BinlogPosition>,
    /// Why the binlog position is missing, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binlog_unavailable: Option<String>,
    /// `server_uuid:…` (MySQL) or `server_id:…` (MariaDB): change tracking only follows a
    /// binary log of the same server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_identity: Option<String>,
}

/// The server's binary-log coordinates when the backup started (for point-in-time recovery).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BinlogPosition {
    pub file: String,
    pub position: u64,
    /// MySQL `gtid_executed` or MariaDB `gtid_binlog_pos`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gtid_set: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabaseEntry {
    pub name: String,
    pub tree: BlobId,
    pub tables: u64,
    pub rows: u64,
    pub bytes: u64,
    /// Not read by this backup: unchanged since this (earlier) snapshot read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried_from: Option<String>,
    /// When the data was read from the server, for a carried database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_at: Option<jiff::Timestamp>,
    /// Of a database read: how many of its tables were carried over from an earlier snapshot
    /// instead (unchanged since, by the binary log).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tables_carried: u64,
    /// The database's content fingerprint (since coffer 0.4): the keyed id of its database
    /// tree with the tables' `read_at` left out, so a read of unchanged data gives the same
    /// fingerprint whether its tables were carried or read. A backup re-reads a sample of the
    /// databases it would carry and compares (change tracking's safety net).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<BlobId>,
    /// The copy's snapshot is proven to see every transaction on the database that the binary
    /// log holds before the snapshot's position (since coffer 0.4; absent: not proven). Only
    /// such a copy is carried over by a later backup.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub position_proven: bool,
    /// Where the copy sits in the server's binary log (since coffer 0.4): what point-in-time
    /// recovery replays the archived log from. Absent: not recorded (older copies, or the
    /// account cannot read the position).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_position: Option<CopyPosition>,
}

/// Where a database's copy sits in the binary log: every transaction on the database logged at
/// or before `from` is in the copy, none logged after `to` is; those between may be either
/// (replay applies them so that either way the result is the same, and stops where it could
/// not be). Equal when exact: MariaDB gives the position of the snapshot itself; a
/// synchronised parallel read takes it while every table is locked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CopyPosition {
    pub from_file: String,
    pub from: u64,
    pub to_file: String,
    pub to: u64,
}

impl CopyPosition {
    /// A position known exactly.
    pub fn exact(file: &str, position: u64) -> Self {
        CopyPosition {
            from_file: file.to_string(),
            from: position,
            to_file: file.to_string(),
            to: position,
        }
    }

    pub fn is_exact(&self) -> bool {
        self.from_file == self.to_file && self.from == self.to
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailedDatabase {
    pub name: String,
    pub error: String,
    pub attempts: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackupStats {
    pub tables: u64,
    pub rows: u64,
    /// Row text read from the server.
    pub bytes_read: u64,
    /// Blobs this backup stored that were not in the repository yet.
    pub blobs_new: u64,
    /// Stored (compressed, encrypted) bytes this backup added.
    pub bytes_stored_new: u64,
    pub duration_secs: f64,
    /// The longest `LOCK TABLES … READ` held to synchronise the connections reading one large
    /// database (writers to it waited at most this, plus the wait for the lock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longest_lock_ms: Option<u64>,
}

impl Snapshot {
    /// The backup this snapshot is part of: its shard run's id, or its own id when the run
    /// was not sharded. Snapshots with the same key are listed and forgotten together.
    pub fn backup_key(&self, id: &super::ids::SnapshotId) -> String {
        match &self.shard {
            Some(shard) => format!("run:{}", shard.run_id),
            None => id.to_hex(),
        }
    }

    pub fn total_bytes(&self) -> u64 {
        self.databases.iter().map(|d| d.bytes).sum()
    }

    /// Databases carried over from an earlier snapshot instead of read.
    pub fn databases_carried(&self) -> usize {
        self.databases
            .iter()
            .filter(|d| d.carried_from.is_some())
            .count()
    }

    /// Tables of the databases read that were carried over from an earlier snapshot.
    pub fn tables_carried(&self) -> u64 {
        self.databases.iter().map(|d| d.tables_carried).sum()
    }
}
