//! The SLA report: which databases have no successful backup within a window, and which months
//! have no kept snapshot. Read from snapshot summaries only ([`crate::repo::summary`]).
//!
//! The databases expected are those on the server now, when it is asked (so a study created
//! since the last backup shows up); otherwise those of the newest backup of each server, and
//! when that backup is a sharded run with shards missing, also those of the backup before it
//! (the missing shards' databases would otherwise go unnoticed). A database counts as backed up
//! at the time of a snapshot that holds it, read or carried over unchanged; a failed one does
//! not.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use serde::Serialize;

use crate::repo::ids::SnapshotId;
use crate::repo::summary::SnapshotSummary;

/// What the report checks.
#[derive(Debug, Clone)]
pub struct SlaPolicy {
    /// Every database needs a snapshot holding it no older than this.
    pub within: SignedDuration,
    /// Each of this many months up to the current one needs a snapshot (0: not checked).
    pub monthly: u32,
}

/// The databases of one server as they are now, to compare the snapshots with.
#[derive(Debug, Clone)]
pub struct LiveServer {
    /// As snapshots name it (`host:port` or the socket).
    pub server: String,
    pub databases: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SlaReport {
    pub checked_at: Timestamp,
    pub within_seconds: i64,
    pub monthly: u32,
    pub servers: Vec<ServerReport>,
    /// Nothing is missing.
    pub met: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerReport {
    pub server: String,
    /// Where the list of databases came from: `server` (asked now) or `snapshots`.
    pub expected_from: &'static str,
    pub expected: usize,
    pub backed_up: usize,
    pub missing: Vec<MissingDatabase>,
    /// Months (`YYYY-MM`, UTC) without a snapshot.
    pub months_missing: Vec<String>,
    /// Months not checked because the server's first snapshot is later.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_snapshot: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MissingDatabase {
    pub database: String,
    /// The newest snapshot holding it, if any.
    pub last_backup: Option<Timestamp>,
    pub snapshot: Option<String>,
}

impl SlaReport {
    pub fn missing_databases(&self) -> usize {
        self.servers.iter().map(|s| s.missing.len()).sum()
    }

    pub fn missing_months(&self) -> usize {
        self.servers.iter().map(|s| s.months_missing.len()).sum()
    }
}

/// Check `summaries` (oldest first) against `policy` at `now` for the databases `selected`
/// (the backup's include/exclude); with `live`, only that server, and its databases as they
/// are now.
pub fn report(
    summaries: &[(SnapshotId, SnapshotSummary)],
    live: Option<&LiveServer>,
    policy: &SlaPolicy,
    now: Timestamp,
    selected: &dyn Fn(&str) -> bool,
) -> SlaReport {
    let mut by_server: BTreeMap<&str, Vec<&(SnapshotId, SnapshotSummary)>> = BTreeMap::new();
    for entry in summaries {
        by_server
            .entry(&entry.1.source.server)
            .or_default()
            .push(entry);
    }
    let servers: Vec<ServerReport> = match live {
        Some(live) => vec![server_report(
            &live.server,
            by_server
                .get(live.server.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default(),
            Some(&live.databases),
            policy,
            now,
            selected,
        )],
        None => by_server
            .iter()
            .map(|(server, snapshots)| {
                server_report(server, snapshots, None, policy, now, selected)
            })
            .collect(),
    };
    let met = servers
        .iter()
        .all(|s| s.missing.is_empty() && s.months_missing.is_empty());
    SlaReport {
        checked_at: now,
        within_seconds: policy.within.as_secs(),
        monthly: policy.monthly,
        servers,
        met,
    }
}

fn server_report(
    server: &str,
    snapshots: &[&(SnapshotId, SnapshotSummary)],
    live: Option<&Vec<String>>,
    policy: &SlaPolicy,
    now: Timestamp,
    selected: &dyn Fn(&str) -> bool,
) -> ServerReport {
    // The newest snapshot holding each database.
    let mut newest: HashMap<&str, (Timestamp, &SnapshotId)> = HashMap::new();
    for (id, summary) in snapshots {
        for database in &summary.databases {
            let slot = newest.entry(database).or_insert((summary.time, id));
            if summary.time >= slot.0 {
                *slot = (summary.time, id);
            }
        }
    }
    let mut expected: BTreeSet<String> = match live {
        Some(databases) => databases.iter().cloned().collect(),
        None => expected_from_snapshots(snapshots),
    };
    expected.retain(|database| selected(database));
    let since = now.checked_sub(policy.within).unwrap_or(Timestamp::MIN);
    let missing: Vec<MissingDatabase> = expected
        .iter()
        .filter_map(|database| match newest.get(database.as_str()) {
            Some((time, _)) if *time >= since => None,
            found => Some(MissingDatabase {
                database: database.clone(),
                last_backup: found.map(|(time, _)| *time),
                snapshot: found.map(|(_, id)| id.short()),
            }),
        })
        .collect();
    let first_snapshot = snapshots.iter().map(|(_, s)| s.time).min();
    let months_missing = match first_snapshot {
        Some(first) if policy.monthly > 0 => missing_months(snapshots, first, policy, now),
        // A server never backed up: its databases are all missing already.
        _ => Vec::new(),
    };
    ServerReport {
        server: server.to_string(),
        expected_from: if live.is_some() {
            "server"
        } else {
            "snapshots"
        },
        expected: expected.len(),
        backed_up: expected.len() - missing.len(),
        missing,
        months_missing,
        first_snapshot,
    }
}

/// The databases of the newest backup (held or failed), and when it is a sharded run short of
/// shards, those of the backup before it too.
fn expected_from_snapshots(snapshots: &[&(SnapshotId, SnapshotSummary)]) -> BTreeSet<String> {
    // The two newest backups, newest first.
    let mut keys: Vec<String> = Vec::new();
    for (id, summary) in snapshots.iter().rev() {
        let key = summary.backup_key(id);
        if !keys.contains(&key) {
            keys.push(key);
            if keys.len() == 2 {
                break;
            }
        }
    }
    let newest_complete = keys
        .first()
        .is_none_or(|newest| complete(snapshots, newest));
    keys.truncate(if newest_complete { 1 } else { 2 });
    snapshots
        .iter()
        .filter(|(id, s)| keys.contains(&s.backup_key(id)))
        .flat_map(|(_, s)| s.databases.iter().chain(&s.failed).cloned())
        .collect()
}

/// Whether every shard of the backup `key` stored its snapshot (an unsharded one always did).
fn complete(snapshots: &[&(SnapshotId, SnapshotSummary)], key: &str) -> bool {
    let members: Vec<&SnapshotSummary> = snapshots
        .iter()
        .filter(|(id, s)| s.backup_key(id) == key)
        .map(|(_, s)| s)
        .collect();
    match members.first().and_then(|s| s.shard.as_ref()) {
        Some(shard) => {
            let present: BTreeSet<u32> = members
                .iter()
                .filter_map(|s| s.shard.as_ref().map(|o| o.index))
                .collect();
            present.len() >= shard.count as usize
        }
        None => true,
    }
}

/// The months (UTC) of the last `policy.monthly` up to the current one with no snapshot,
/// from the month of the `first` snapshot on. The current month is excused while it is younger
/// than the window (its first backup may not be due yet).
fn missing_months(
    snapshots: &[&(SnapshotId, SnapshotSummary)],
    first: Timestamp,
    policy: &SlaPolicy,
    now: Timestamp,
) -> Vec<String> {
    let month_of = |t: Timestamp| {
        let date = t.to_zoned(TimeZone::UTC).date();
        (date.year(), date.month())
    };
    let covered: BTreeSet<(i16, i8)> = snapshots.iter().map(|(_, s)| month_of(s.time)).collect();
    let (mut year, mut month) = month_of(now);
    let first = month_of(first);
    let current_started = Date::new(year, month, 1)
        .ok()
        .and_then(|d| d.to_zoned(TimeZone::UTC).ok())
        .map(|z| z.timestamp());
    let mut missing = Vec::new();
    for back in 0..policy.monthly {
        if (year, month) < first {
            break;
        }
        let excused = back == 0
            && current_started.is_some_and(|start| now.duration_since(start) < policy.within);
        if !covered.contains(&(year, month)) && !excused {
            missing.push(format!("{year:04}-{month:02}"));
        }
        (year, month) = if month == 1 {
            (year - 1, 12)
        } else {
            (year, month - 1)
        };
    }
    missing.reverse();
    missing
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::snapshot::{BackupStats, ShardOf, SourceInfo};

    fn summary(
        time: &str,
        databases: &[&str],
        shard: Option<(u32, u32)>,
    ) -> (SnapshotId, SnapshotSummary) {
        let time: Timestamp = time.parse().unwrap();
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&time.as_second().to_le_bytes());
        id[8] = shard.map_or(0, |s| s.0 as u8);
        (
            SnapshotId(id),
            SnapshotSummary {
                version: 1,
                snapshot: hex::encode(id),
                time,
                finished: time,
                hostname: "h".into(),
                source: SourceInfo {
                    server: "db:3306".into(),
                    server_version: "8.0".into(),
                    binlog: None,
                    binlog_unavailable: None,
                    server_identity: None,
                },
                tags: Vec::new(),
                time_given: false,
                run: None,
                change_tracking: None,
                shard: shard.map(|(index, count)| ShardOf {
                    run_id: format!("run-{time}"),
                    index,
                    count,
                }),
                stats: BackupStats::default(),
                total_bytes: 0,
                databases: databases.iter().map(|d| d.to_string()).collect(),
                failed: Vec::new(),
                writer: None,
                full_key_mark: None,
                accounts: None,
            },
        )
    }

    fn policy() -> SlaPolicy {
        SlaPolicy {
            within: SignedDuration::from_hours(12),
            monthly: 12,
        }
    }

    #[test]
    fn a_stale_database_a_new_one_and_a_missed_month_are_reported() {
        let now: Timestamp = "2026-11-25T15:00:00Z".parse().unwrap();
        let summaries = vec![
            summary("2025-12-10T02:00:00Z", &["a", "b"], None),
            // January 2026 missed.
            summary("2026-02-10T02:00:00Z", &["a", "b"], None),
            summary("2026-03-10T02:00:00Z", &["a", "b"], None),
            summary("2026-04-10T02:00:00Z", &["a", "b"], None),
            summary("2026-05-10T02:00:00Z", &["a", "b"], None),
            summary("2026-06-10T02:00:00Z", &["a", "b"], None),
            summary("2026-07-10T02:00:00Z", &["a", "b"], None),
            summary("2026-08-10T02:00:00Z", &["a", "b"], None),
            summary("2026-09-10T02:00:00Z", &["a", "b"], None),
            summary("2026-10-10T02:00:00Z", &["a", "b"], None),
            summary("2026-11-24T14:00:00Z", &["a", "b"], None),
            summary("2026-11-25T14:00:00Z", &["a"], None),
        ];
        let from_snapshots = report(&summaries, None, &policy(), now, &|_| true);
        assert_eq!(from_snapshots.servers[0].months_missing, ["2026-01"]);
        // Without the server, "b" is not expected any more (the newest backup left it out).
        assert!(from_snapshots.servers[0].missing.is_empty());
        assert!(!from_snapshots.met);

        let live = LiveServer {
            server: "db:3306".into(),
            databases: vec!["a".into(), "b".into(), "new".into()],
        };
        let against_server = report(&summaries, Some(&live), &policy(), now, &|_| true);
        let missing: Vec<(&str, bool)> = against_server.servers[0]
            .missing
            .iter()
            .map(|m| (m.database.as_str(), m.last_backup.is_some()))
            .collect();
        assert_eq!(missing, [("b", true), ("new", false)]);
    }

    #[test]
    fn the_missing_shard_of_the_newest_run_is_noticed_and_a_young_month_excused() {
        let now: Timestamp = "2026-12-01T05:00:00Z".parse().unwrap();
        let summaries = vec![
            summary("2026-11-30T14:00:00Z", &["a"], Some((0, 2))),
            summary("2026-11-30T14:00:01Z", &["b"], Some((1, 2))),
            // The newest run: shard 1 never stored its snapshot.
            summary("2026-12-01T02:00:00Z", &["a"], Some((0, 2))),
        ];
        let report = report(&summaries, None, &policy(), now, &|_| true);
        let server = &report.servers[0];
        // b is still expected although the newest run's shard holding it never reported, and
        // its last backup is 15 h old.
        assert_eq!(server.expected, 2);
        let missing: Vec<&str> = server.missing.iter().map(|m| m.database.as_str()).collect();
        assert_eq!(missing, ["b"]);
        assert!(
            server.months_missing.is_empty(),
            "{:?}",
            server.months_missing
        );
    }
}
