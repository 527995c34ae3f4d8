//! Choosing the snapshot a command reads: by id, the newest, or the newest taken at or before a
//! point in time, in each case only among snapshots that hold the database asked for.

use jiff::Timestamp;

use super::Repository;
use super::ids::SnapshotId;
use super::snapshot::Snapshot;
use super::summary::SnapshotSummary;
use crate::error::{Error, Result};

/// Which snapshot a command reads.
#[derive(Debug, Clone, PartialEq)]
pub enum SnapshotSelector {
    /// The newest (holding the database, when one is named).
    Latest,
    /// An id or a unique prefix of one.
    Id(String),
    /// The newest taken at or before this time (holding the database, when one is named).
    At(Timestamp),
}

impl SnapshotSelector {
    /// From `--snapshot ID|latest` and `--at TIME|DURATION` (at most one of them is given).
    pub fn from_args(snapshot: Option<&str>, at: Option<&str>, now: Timestamp) -> Result<Self> {
        match (snapshot, at) {
            (Some(_), Some(_)) => Err(Error::invalid("--snapshot and --at both choose a snapshot")
                .with_hint("give one of them")),
            (None, Some(at)) => Ok(Self::At(crate::timespec::parse_point_in_time(at, now)?)),
            (Some(id), None) if id != "latest" => Ok(Self::Id(id.to_string())),
            _ => Ok(Self::Latest),
        }
    }
}

/// The snapshot chosen, and in words why it is the one (printed for the operator).
#[derive(Debug)]
pub struct ChosenSnapshot {
    pub id: SnapshotId,
    pub snapshot: Snapshot,
    pub reason: String,
}

impl Repository {
    /// The snapshot `selector` names. With `database`, `latest` and `--at` consider only
    /// snapshots in which that database was backed up (not failed), so a database that failed
    /// last night is restored from the night before, and the reason says so.
    pub async fn select_snapshot(
        &self,
        selector: &SnapshotSelector,
        database: Option<&str>,
    ) -> Result<ChosenSnapshot> {
        let holds = |s: &SnapshotSummary| database.is_none_or(|db| s.holds(db));
        let holding = database.map_or(String::new(), |db| format!(" holding database {db}"));
        let (id, reason) = match selector {
            SnapshotSelector::Id(spec) => {
                let (id, snapshot) = self.find_snapshot(spec).await?;
                return Ok(ChosenSnapshot {
                    reason: format!("snapshot {} taken {}, as given", id.short(), snapshot.time),
                    id,
                    snapshot,
                });
            }
            SnapshotSelector::Latest => {
                // Summaries choose; only the chosen snapshot is read whole.
                let all = self.summaries().await?;
                let Some((newest_id, newest)) = all.last() else {
                    return Err(Error::not_found(format!(
                        "{} has no snapshots yet",
                        self.storage().location()
                    ))
                    .with_hint("run `coffer backup` first"));
                };
                let Some((id, chosen)) = all.iter().rev().find(|(_, s)| holds(s)) else {
                    return Err(self.not_held(newest_id, database.unwrap_or_default()).await);
                };
                // Another shard of the same run holding other databases is not news.
                let skipped = if newest.backup_key(newest_id) == chosen.backup_key(id) {
                    String::new()
                } else {
                    format!(
                        " (the newer snapshot {} of {} does not hold it)",
                        newest_id.short(),
                        newest.time
                    )
                };
                (
                    *id,
                    format!(
                        "snapshot {} taken {}, the newest{holding}{skipped}",
                        id.short(),
                        chosen.time
                    ),
                )
            }
            SnapshotSelector::At(at) => {
                let all = self.summaries().await?;
                let oldest_holding = all.iter().find(|(_, s)| holds(s)).map(|(_, s)| s.time);
                let Some((id, chosen)) = all.iter().rev().find(|(_, s)| s.time <= *at && holds(s))
                else {
                    let hint = match oldest_holding {
                        Some(time) => format!("the oldest snapshot{holding} was taken {time}"),
                        None => "`coffer snapshots` lists the snapshots".to_string(),
                    };
                    return Err(Error::not_found(format!(
                        "no snapshot{holding} was taken at or before {at}"
                    ))
                    .with_hint(hint));
                };
                (
                    *id,
                    format!(
                        "snapshot {} taken {}, the newest{holding} at or before {at}",
                        id.short(),
                        chosen.time
                    ),
                )
            }
        };
        let (id, snapshot) = self.find_snapshot(&id.to_hex()).await?;
        Ok(ChosenSnapshot {
            id,
            snapshot,
            reason,
        })
    }

    /// No snapshot holds `database`: say why the newest (`newest`) does not (it failed there,
    /// with the error, or it was never backed up).
    async fn not_held(&self, newest: &SnapshotId, database: &str) -> Error {
        let failed = match self.find_snapshot(&newest.to_hex()).await {
            Ok((_, snapshot)) => snapshot.failed.into_iter().find(|f| f.name == database),
            Err(e) => return e,
        };
        match failed {
            Some(f) => Error::not_found(format!(
                "database {database} failed in snapshot {} and no snapshot holds it: {}",
                newest.short(),
                f.error
            ))
            .with_hint("fix the cause and run `coffer backup` again"),
            None => Error::not_found(format!("database {database} is not in any snapshot"))
                .with_hint("`coffer ls` lists the databases of the newest snapshot"),
        }
    }
}

/// The databases of one backup (every shard of a sharded run), each with its snapshot.
#[derive(Debug, Clone, Default)]
pub struct BackupDatabases {
    /// Databases with a copy in the backup.
    pub held: Vec<(String, SnapshotId)>,
    /// Databases that failed in it (no copy there), with the snapshot they failed in.
    pub failed: Vec<(String, SnapshotId)>,
}

impl Repository {
    /// The databases of `chosen`'s backup, each with the snapshot holding it: the snapshot's
    /// own, and for a shard of a sharded run also those of the run's other shards (their
    /// summaries read once), so the whole backup is drilled or restored as one.
    pub async fn databases_of_backup(&self, chosen: &ChosenSnapshot) -> Result<BackupDatabases> {
        let mut databases = BackupDatabases {
            held: (chosen.snapshot.databases.iter())
                .map(|d| (d.name.clone(), chosen.id))
                .collect(),
            failed: (chosen.snapshot.failed.iter())
                .map(|f| (f.name.clone(), chosen.id))
                .collect(),
        };
        if chosen.snapshot.shard.is_some() {
            let run = chosen.snapshot.backup_key(&chosen.id);
            for (id, summary) in self.summaries().await? {
                if id != chosen.id && summary.backup_key(&id) == run {
                    let named = |names: &[String]| {
                        names.iter().map(|n| (n.clone(), id)).collect::<Vec<_>>()
                    };
                    databases.held.extend(named(&summary.databases));
                    databases.failed.extend(named(&summary.failed));
                }
            }
        }
        Ok(databases)
    }

    /// The snapshot of the chosen backup that holds its accounts: the chosen one, or on a
    /// sharded run the shard that recorded them (shard 0).
    pub async fn accounts_of_backup(
        &self,
        chosen: &ChosenSnapshot,
    ) -> Result<(SnapshotId, Snapshot)> {
        if chosen.snapshot.accounts.is_some() || chosen.snapshot.shard.is_none() {
            return Ok((chosen.id, chosen.snapshot.clone()));
        }
        let run = chosen.snapshot.backup_key(&chosen.id);
        for (id, summary) in self.summaries().await? {
            if id != chosen.id && summary.backup_key(&id) == run && summary.accounts.is_some() {
                return self.find_snapshot(&id.to_hex()).await;
            }
        }
        Ok((chosen.id, chosen.snapshot.clone()))
    }
}
