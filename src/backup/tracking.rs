//! Change tracking: which databases a backup can carry over from the previous snapshot of the
//! same server instead of reading them (issue 10). Why a carried database equals what a dump at
//! the new snapshot's time would give is argued in docs/ARCHITECTURE.md ("Change tracking");
//! whenever that cannot be guaranteed, every database is read and the snapshot says why.

use std::collections::{HashMap, HashSet};

use crate::error::Result;
use crate::repo::Repository;
use crate::repo::ids::{BlobId, SnapshotId};
use crate::repo::index::Index;
use crate::repo::snapshot::{
    BinlogPosition, CarriedChange, ChangeTracking, DatabaseEntry, ShardOf, Snapshot,
};
use crate::repo::summary::SnapshotSummary;
use crate::repo::tree::TableRef;
use crate::source::mysql::MysqlTarget;
use crate::source::mysql::catalog::{ServerLog, cascading_foreign_keys};
use crate::source::mysql::changes::{
    Changes, DefinitionReach, changes_since, database_reach, expand_cascades,
    expand_statement_reach,
};
use crate::source::mysql::dump::TableCarryOver;

/// How many of the databases a backup would carry it reads again, to check against the copy
/// it would have carried (`--verify-carried N` or `P%`; the safety net that catches what the
/// binary log did not show: `sql_log_bin=0` sessions, a path nobody foresaw).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VerifyCarried {
    /// At least this many (as many as there are, if fewer).
    pub at_least: usize,
    /// And at least this share of them, in percent.
    pub percent: f64,
}

impl Default for VerifyCarried {
    /// Two databases, or 1 % of those carried if more: every carried database is read again
    /// within about 100 runs at the most (50 days at two backups a day), with `--full-every`
    /// (default 30 days) bounding it further.
    fn default() -> Self {
        VerifyCarried {
            at_least: 2,
            percent: 1.0,
        }
    }
}

impl VerifyCarried {
    /// `N` (databases), `P%`, or both separated by a comma (whichever gives more).
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut rule = VerifyCarried {
            at_least: 0,
            percent: 0.0,
        };
        for part in text.split(',').map(str::trim) {
            if let Some(percent) = part.strip_suffix('%') {
                rule.percent = percent
                    .trim()
                    .parse()
                    .ok()
                    .filter(|p| (0.0..=100.0).contains(p))
                    .ok_or_else(|| format!("{part:?} is not a share between 0% and 100%"))?;
            } else {
                rule.at_least = part.parse().map_err(|_| {
                    format!("{part:?} is neither a number of databases nor a share such as 2%")
                })?;
            }
        }
        Ok(rule)
    }

    /// How many of `carried` databases to read again.
    fn count(self, carried: usize) -> usize {
        let share = (carried as f64 * self.percent / 100.0).ceil() as usize;
        self.at_least.max(share).min(carried)
    }
}

/// What this run may carry over, and what the snapshot records about it.
#[derive(Debug, Default)]
pub struct Plan {
    /// Databases carried over, by name: the previous snapshot's entry.
    pub carried: HashMap<String, DatabaseEntry>,
    /// Databases the log shows unchanged that this run reads again to check (the safety net),
    /// with the entry that would have been carried.
    pub verify: HashMap<String, DatabaseEntry>,
    /// The binary-log range the scan found no change in (for messages about `verify`).
    pub scanned_range: String,
    pub record: ChangeTracking,
    /// Row bytes per database in the latest snapshot of this server, to schedule the largest
    /// first without asking the server for sizes.
    pub previous_sizes: HashMap<String, u64>,
    /// Database trees of that snapshot, to split large tables where their chunks started.
    pub previous_trees: HashMap<String, crate::repo::ids::BlobId>,
    /// What carrying single tables of the databases read over needs; `None` when every
    /// database is read in full.
    pub table_basis: Option<TableBasis>,
}

/// The log scanned so far and the snapshot it starts from: the basis of [`TableTracker`].
#[derive(Debug)]
pub struct TableBasis {
    changes: Changes,
    server_id: u32,
    /// Database trees of the snapshot the scan starts from, by name, with when the database
    /// was read (for tables that carry no time of their own).
    pub trees: HashMap<String, (BlobId, jiff::Timestamp)>,
}

impl Plan {
    fn full(why: impl Into<String>) -> Self {
        Plan {
            record: ChangeTracking {
                full_read_because: Some(why.into()),
                ..ChangeTracking::default()
            },
            ..Plan::default()
        }
    }
}

/// Everything a plan needs to know about this run.
pub struct Inputs<'a> {
    pub repo: &'a Repository,
    pub index: &'a Index,
    pub target: &'a MysqlTarget,
    pub server: &'a str,
    pub binlog: &'a std::result::Result<BinlogPosition, String>,
    pub log: &'a std::result::Result<ServerLog, String>,
    pub full: bool,
    pub full_every: Option<jiff::SignedDuration>,
    pub now: jiff::Timestamp,
    /// This run's id when it is one shard of several: the other shards' snapshots of the same
    /// run are not earlier backups.
    pub run_id: Option<&'a str>,
    /// How many databases the log shows unchanged to read again anyway.
    pub verify_carried: VerifyCarried,
    /// Databases at least this large are read by several connections, whose chunk boundaries
    /// differ from one connection's: only smaller ones are verified (`--full-every` bounds the
    /// others).
    pub large_database_bytes: u64,
}

/// Whether a snapshot of shard `shard` belongs to the run `run_id` (this run's other shards).
fn of_run(shard: Option<&ShardOf>, run_id: Option<&str>) -> bool {
    run_id.is_some_and(|run| shard.is_some_and(|s| s.run_id == run))
}

/// The whole snapshots of the earlier backups of `server` that `pick` chooses among the
/// summaries (newest first; each choice brings every shard of its run), oldest first. Only
/// these are read whole: a repository of 60 snapshots of 25,000 databases is not decrypted
/// for every backup.
async fn earlier_backups(
    repo: &Repository,
    server: &str,
    run_id: Option<&str>,
    picks: &[&(dyn Fn(&SnapshotSummary) -> bool + Sync)],
) -> Result<Vec<(SnapshotId, Snapshot)>> {
    let summaries = repo.summaries().await?;
    let earlier =
        |s: &SnapshotSummary| s.source.server == server && !of_run(s.shard.as_ref(), run_id);
    let keys: HashSet<String> = picks
        .iter()
        .filter_map(|pick| {
            summaries
                .iter()
                .rev()
                .find(|(_, s)| earlier(s) && pick(s))
                .map(|(id, s)| s.backup_key(id))
        })
        .collect();
    let mut whole = Vec::new();
    for (id, summary) in &summaries {
        if earlier(summary) && keys.contains(&summary.backup_key(id)) {
            whole.push(repo.find_snapshot(&id.to_hex()).await?);
        }
    }
    Ok(whole)
}

/// Row bytes per database as the newest earlier backup of `server` recorded them (for a shard
/// plan), leaving out the snapshots of `shard`'s own run.
pub async fn latest_sizes(
    repo: &Repository,
    server: &str,
    shard: &ShardOf,
) -> HashMap<String, u64> {
    // Without earlier snapshots the server is asked for every size.
    let Ok(latest) = earlier_backups(repo, server, Some(&shard.run_id), &[&|_| true]).await else {
        return HashMap::new();
    };
    latest
        .iter()
        .flat_map(|(_, s)| s.databases.iter().map(|d| (d.name.clone(), d.bytes)))
        .collect()
}

/// Decide which of `selected` databases can be carried over.
pub async fn plan(inputs: Inputs<'_>, selected: &[String]) -> Result<Plan> {
    // The newest earlier backup of this server (sizes and trees), and the newest that followed
    // the binary log of the server as it is now (what can be carried over).
    let identity = inputs.log.as_ref().ok().map(|l| l.identity.clone());
    let newest = |_: &SnapshotSummary| true;
    let same_log = |s: &SnapshotSummary| {
        s.source.binlog.is_some()
            && s.source.server_identity.is_some()
            && s.source.server_identity == identity
    };
    let with_identity = |s: &SnapshotSummary| s.source.server_identity.is_some();
    let snapshots = match earlier_backups(
        inputs.repo,
        inputs.server,
        inputs.run_id,
        &[&newest, &same_log, &with_identity],
    )
    .await
    {
        Ok(snapshots) => snapshots,
        Err(e) => {
            return Ok(Plan::full(format!(
                "the earlier snapshots could not be read: {e}"
            )));
        }
    };
    let run_id = inputs.run_id;
    let server = inputs.server.to_string();
    let mut plan = decide(inputs, selected, &snapshots).await?;
    let latest = snapshots
        .iter()
        .rev()
        .find(|(_, s)| s.source.server == server && !of_run(s.shard.as_ref(), run_id));
    if let Some((latest_id, latest)) = latest {
        let key = latest.backup_key(latest_id);
        for (id, snapshot) in &snapshots {
            if snapshot.backup_key(id) != key {
                continue;
            }
            for db in &snapshot.databases {
                plan.previous_sizes.insert(db.name.clone(), db.bytes);
                plan.previous_trees.insert(db.name.clone(), db.tree);
            }
        }
    }
    Ok(plan)
}

async fn decide(
    inputs: Inputs<'_>,
    selected: &[String],
    snapshots: &[(
        crate::repo::ids::SnapshotId,
        crate::repo::snapshot::Snapshot,
    )],
) -> Result<Plan> {
    if inputs.full {
        return Ok(Plan::full("--full was given"));
    }
    if let Err(why) = inputs.binlog {
        return Ok(Plan::full(format!("no binary-log position: {why}")));
    }
    let log = match inputs.log {
        Ok(log) => log,
        Err(why) => {
            return Ok(Plan::full(format!(
                "the binary-log settings could not be read: {why}"
            )));
        }
    };
    if !matches!(
        log.binlog_format.to_ascii_uppercase().as_str(),
        "ROW" | "MIXED"
    ) {
        return Ok(Plan::full(format!(
            "binlog_format is {:?}, not ROW or MIXED",
            log.binlog_format
        )));
    }
    if let Some(filters) = &log.filters {
        return Ok(Plan::full(format!(
            "the server filters its binary log ({filters}): changes to some databases are not logged"
        )));
    }
    let follows_this_log = |s: &Snapshot| {
        s.source.server == inputs.server
            && s.source.binlog.is_some()
            && s.source.server_identity.as_deref() == Some(log.identity.as_str())
    };
    let previous = snapshots
        .iter()
        .rev()
        .find(|(_, s)| follows_this_log(s) && !of_run(s.shard.as_ref(), inputs.run_id));
    let Some((previous_id, previous)) = previous else {
        let other_identity = snapshots
            .iter()
            .rev()
            .find(|(_, s)| s.source.server == inputs.server && s.source.server_identity.is_some());
        return Ok(Plan::full(match other_identity {
            Some((id, _)) => format!(
                "the server is not the one snapshot {} was taken from ({}): failover, restore or a new server",
                id.short(),
                log.identity
            ),
            None => "no earlier snapshot of this server with a binary-log position".to_string(),
        }));
    };
    // A sharded backup is the snapshots of all its shards; the log is read from the earliest
    // of their positions, so it covers every change since each of them.
    let key = previous.backup_key(previous_id);
    let members: Vec<&(SnapshotId, Snapshot)> = snapshots
        .iter()
        .filter(|(id, s)| follows_this_log(s) && s.backup_key(id) == key)
        .collect();
    let mut positions = members.iter().filter_map(|(_, s)| s.source.binlog.as_ref());
    let Some(mut from) = positions.next() else {
        return Ok(Plan::full(
            "the previous snapshot has no binary-log position",
        ));
    };
    for position in positions {
        if log_moved_forward(position, from) {
            from = position;
        } else if !log_moved_forward(from, position) {
            return Ok(Plan::full(format!(
                "the shards of the previous run were at positions of different binary logs ({} and {})",
                from.file, position.file
            )));
        }
    }
    // Each database from the member that holds it.
    let earlier: HashMap<&str, (&SnapshotId, &Snapshot, &DatabaseEntry)> = members
        .iter()
        .flat_map(|(id, s)| {
            s.databases
                .iter()
                .map(move |d| (d.name.as_str(), (id, s, d)))
        })
        .collect();
    if let Ok(now) = inputs.binlog
        && !log_moved_forward(from, now)
    {
        return Ok(Plan::full(format!(
            "the binary log restarted since snapshot {} (it was at {}:{}, it is at {}:{})",
            previous_id.short(),
            from.file,
            from.position,
            now.file,
            now.position
        )));
    }
    // The same identity, but a server that lost transactions the previous snapshot saw (restored
    // from a backup, a replica promoted behind its source) has another history than the log
    // position says: its log files may even reach the old position with other contents.
    if let Ok(now) = inputs.binlog
        && crate::source::mysql::gtid::contains(&now.gtid_set, &from.gtid_set) == Some(false)
    {
        return Ok(Plan::full(format!(
            "the server's GTID set ({}) no longer holds every transaction snapshot {} had seen ({}): the server went back (restored, or a replica promoted behind its source)",
            now.gtid_set,
            previous_id.short(),
            from.gtid_set
        )));
    }
    let server_id = scan_server_id()?;
    let mut changes =
        match changes_since(inputs.target, from, server_id, Changes::new(log.fold_case)).await {
            Ok(changes) => changes,
            Err(e) => {
                return Ok(Plan::full(format!(
                    "the binary log since snapshot {} ({}:{}) could not be read: {e}",
                    previous_id.short(),
                    from.file,
                    from.position
                )));
            }
        };
    // The argument for carrying a database needs the scan to reach this run's position: every
    // change before it must have been seen (docs/ARCHITECTURE.md, "Change tracking").
    let scanned_to = BinlogPosition {
        file: changes.end_file.clone(),
        position: changes.end_position,
        gtid_set: String::new(),
    };
    if let Ok(now) = inputs.binlog
        && !log_moved_forward(now, &scanned_to)
    {
        return Ok(Plan::full(format!(
            "the binary-log scan stopped at {}:{}, before this run's position {}:{}",
            scanned_to.file, scanned_to.position, now.file, now.position
        )));
    }
    if let Err(why) = widen(inputs.target, &mut changes).await {
        return Ok(Plan::full(format!(
            "{why} (changes since snapshot {})",
            previous_id.short()
        )));
    }
    if let Some(why) = &changes.all {
        return Ok(Plan::full(format!(
            "{why} since snapshot {}: every database may have changed",
            previous_id.short()
        )));
    }
    let condemned_exist = inputs
        .index
        .packs()
        .any(|(p, _)| inputs.index.is_condemned(p));
    let mut carried = HashMap::new();
    for name in selected {
        let earlier_copy = earlier.get(name.as_str()).copied();
        let decision = match may_carry(name, earlier_copy, &changes, inputs.full_every, inputs.now)
        {
            Ok(entry) if condemned_exist && !blobs_all_live(&inputs, &entry).await => {
                Err(ReadAnyway::BlobsCondemned)
            }
            decision => decision,
        };
        match decision {
            Ok(entry) => {
                carried.insert(name.clone(), entry);
            }
            Err(rule) => tracing::debug!(database = %name, "read: {}", rule.describe()),
        }
    }
    let verify = verification_sample(&mut carried, &inputs);
    let count = carried.len();
    // Blobs of a carried table would have to be checked against condemned packs one tree at a
    // time; while a prune mark exists, databases are read whole instead.
    let table_basis = (!condemned_exist).then(|| TableBasis {
        changes,
        server_id,
        // Rule "position proven" holds for tables too.
        trees: earlier
            .iter()
            .filter(|(_, (_, _, d))| d.position_proven)
            .map(|(&name, (_, member, d))| {
                (name.to_string(), (d.tree, d.read_at.unwrap_or(member.time)))
            })
            .collect(),
    });
    Ok(Plan {
        carried,
        verify,
        scanned_range: format!(
            "{}:{} … {}:{}",
            from.file, from.position, scanned_to.file, scanned_to.position
        ),
        table_basis,
        record: ChangeTracking {
            from_snapshot: Some(previous_id.to_string()),
            carried: count,
            ..ChangeTracking::default()
        },
        ..Plan::default()
    })
}

/// Why a database is read although the scan attributed no change to it: the rules of what
/// change tracking may carry, each with the test that shows it. The argument they guard is in
/// docs/ARCHITECTURE.md ("Change tracking"); everything before them (no log, another server,
/// a filtered log, an unattributable event) reads every database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAnyway {
    /// The scan attributed a change to it, directly or through definitions and cascading
    /// foreign keys (`change_tracking::every_kind_of_change_is_caught_and_every_database_restores_equal`).
    Changed,
    /// The previous backup has no copy of it: new, or failed there
    /// (`change_tracking::unchanged_databases_are_carried_over_and_restore_exactly`).
    NoEarlierCopy,
    /// The copy's snapshot is not proven to see every transaction logged before its position
    /// (copies from before coffer 0.4, a lock not had in time):
    /// `tracking::tests::only_what_the_rules_allow_is_carried`.
    PositionNotProven,
    /// The copy is older than `--full-every`
    /// (`change_tracking::unchanged_databases_are_carried_over_and_restore_exactly`, its
    /// `--full-every` part; `tracking::tests::only_what_the_rules_allow_is_carried`).
    TooOld,
    /// Some of its blobs live only in packs a prune condemned
    /// (`prune::prune_racing_backups_for_many_rounds_loses_nothing`: backups that carry
    /// databases over beside prunes that condemn their packs).
    BlobsCondemned,
}

impl ReadAnyway {
    pub fn describe(self) -> &'static str {
        match self {
            ReadAnyway::Changed => "the binary log shows a change",
            ReadAnyway::NoEarlierCopy => "no copy in the previous backup",
            ReadAnyway::PositionNotProven => {
                "its copy's snapshot is not proven consistent with the log position"
            }
            ReadAnyway::TooOld => "its copy is older than --full-every",
            ReadAnyway::BlobsCondemned => "its copy's blobs are condemned by a prune",
        }
    }
}

/// The entry to carry for `name` from `earlier_copy` (the previous backup's snapshot and
/// entry holding it), or the rule that says to read it (all but [`ReadAnyway::BlobsCondemned`],
/// which needs the index: [`blobs_all_live`]).
fn may_carry(
    name: &str,
    earlier_copy: Option<(&SnapshotId, &Snapshot, &DatabaseEntry)>,
    changes: &Changes,
    full_every: Option<jiff::SignedDuration>,
    now: jiff::Timestamp,
) -> std::result::Result<DatabaseEntry, ReadAnyway> {
    if changes.database_changed(name) {
        return Err(ReadAnyway::Changed);
    }
    let (member_id, member, entry) = earlier_copy.ok_or(ReadAnyway::NoEarlierCopy)?;
    if !entry.position_proven {
        return Err(ReadAnyway::PositionNotProven);
    }
    let read_at = entry.read_at.unwrap_or(member.time);
    if let Some(limit) = full_every
        && now.duration_since(read_at) >= limit
    {
        return Err(ReadAnyway::TooOld);
    }
    Ok(DatabaseEntry {
        carried_from: Some(
            entry
                .carried_from
                .clone()
                .unwrap_or_else(|| member_id.to_string()),
        ),
        read_at: Some(read_at),
        ..entry.clone()
    })
}

/// Whether every blob of `entry`'s copy has a copy outside condemned packs: a prune may be
/// about to delete a pack only condemned copies of its blobs live in, so such a database is
/// read again, as a backup stores such blobs again. A tree this key cannot read (a write-only
/// key) counts as not live.
async fn blobs_all_live(inputs: &Inputs<'_>, entry: &DatabaseEntry) -> bool {
    match inputs.repo.database_blobs(inputs.index, &entry.tree).await {
        Ok(blobs) => blobs.iter().all(|b| inputs.index.is_live(b)),
        Err(_) => false,
    }
}

/// Take the databases this run reads again to check from `carried`: those whose copy is the
/// oldest (so every carried database comes round within `carried / count` runs), among those
/// read on one connection (a read by several has other chunk boundaries).
fn verification_sample(
    carried: &mut HashMap<String, DatabaseEntry>,
    inputs: &Inputs<'_>,
) -> HashMap<String, DatabaseEntry> {
    let mut candidates: Vec<(&String, &DatabaseEntry)> = carried
        .iter()
        .filter(|(_, entry)| entry.bytes < inputs.large_database_bytes)
        .collect();
    let count = inputs.verify_carried.count(candidates.len());
    candidates.sort_by(|a, b| (a.1.read_at, a.0).cmp(&(b.1.read_at, b.0)));
    let chosen: Vec<String> = candidates
        .into_iter()
        .take(count)
        .map(|(name, _)| name.clone())
        .collect();
    chosen
        .into_iter()
        .filter_map(|name| carried.remove_entry(&name))
        .collect()
}

/// What reading a database the log showed unchanged found.
#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    /// The same content as the copy that would have been carried.
    Unchanged,
    /// Different content: the log missed a change.
    Changed,
    /// The copy had no fingerprint (written before coffer 0.4): it has one now.
    NoFingerprint,
}

/// Compare the fingerprint of a fresh read with the entry that would have been carried.
pub fn compare_with_carried(fresh: &BlobId, carried: &DatabaseEntry) -> Verified {
    match &carried.content {
        Some(content) if content == fresh => Verified::Unchanged,
        Some(_) => Verified::Changed,
        None => Verified::NoFingerprint,
    }
}

/// Each table's tree in the copies `verify` would have carried, by database (empty for a key
/// that cannot read trees).
pub async fn carried_tables(
    repo: &Repository,
    index: &Index,
    verify: &HashMap<String, DatabaseEntry>,
) -> HashMap<String, HashMap<String, BlobId>> {
    let mut out = HashMap::new();
    for (name, entry) in verify {
        if let Ok(tree) = repo
            .read_tree::<crate::repo::tree::DatabaseTree>(index, &entry.tree)
            .await
        {
            out.insert(
                name.clone(),
                tree.tables.into_iter().map(|t| (t.name, t.tree)).collect(),
            );
        }
    }
    out
}

/// After the reads: record what the safety net found. A database read to check it that came
/// back different is named at error level (the fresh copy is what the snapshot holds); one
/// whose read failed is carried after all (the check must never cost the copy).
pub fn settle_verification(
    plan: &mut Plan,
    outcomes: &mut Vec<(String, super::DatabaseOutcome)>,
    carried_tables: &HashMap<String, HashMap<String, BlobId>>,
) {
    use super::DatabaseOutcome;
    let mut kept = Vec::with_capacity(outcomes.len());
    for (name, outcome) in outcomes.drain(..) {
        let Some(entry) = plan.verify.remove(&name) else {
            kept.push((name, outcome));
            continue;
        };
        let fresh = match &outcome {
            DatabaseOutcome::Done(fresh) => fresh,
            DatabaseOutcome::Failed { error, .. } => {
                tracing::warn!(database = %name, "reading it again to check it failed ({error}); its unchanged copy is carried");
                plan.record.carried += 1;
                plan.carried.insert(name, entry);
                continue;
            }
        };
        match compare_with_carried(&fresh.content, &entry) {
            Verified::Unchanged => plan.record.verified.push(name.clone()),
            Verified::NoFingerprint => {}
            Verified::Changed => {
                let tables = differing_tables(&fresh.table_trees, carried_tables.get(&name));
                let carried_from = entry.carried_from.clone().unwrap_or_default();
                tracing::error!(
                    database = %name,
                    tables = %tables.join(", "),
                    binlog = %plan.scanned_range,
                    "the binary log showed no change, but the database changed: the copy carried from snapshot {} was stale; the fresh copy is stored",
                    crate::repo::ids::short_text(&carried_from)
                );
                plan.record.changed_while_carried.push(CarriedChange {
                    database: name.clone(),
                    carried_from,
                    tables,
                    binlog_range: plan.scanned_range.clone(),
                });
            }
        }
        kept.push((name, outcome));
    }
    *outcomes = kept;
    plan.record.verified.sort();
}

/// The tables whose tree differs between a fresh read and the copy that would have been
/// carried (either side missing one counts); empty when the copy's tables are not known.
fn differing_tables(
    fresh: &[(String, BlobId)],
    carried: Option<&HashMap<String, BlobId>>,
) -> Vec<String> {
    let Some(carried) = carried else {
        return Vec::new();
    };
    let fresh: HashMap<&String, &BlobId> = fresh.iter().map(|(n, t)| (n, t)).collect();
    let mut names: Vec<String> = fresh
        .iter()
        .filter(|(name, tree)| carried.get(**name) != Some(**tree))
        .map(|(name, _)| (*name).clone())
        .chain(
            carried
                .keys()
                .filter(|name| !fresh.contains_key(name))
                .cloned(),
        )
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Carries single tables of a database being read over from the snapshot the log scan
/// starts from: those no event touched from that snapshot's position up to the position read
/// right after the database's own snapshot started (docs/ARCHITECTURE.md, "Change tracking").
/// The scan is extended, one database at a time, as far as each needs.
pub struct TableTracker {
    target: MysqlTarget,
    server_id: u32,
    scan: tokio::sync::Mutex<Scan>,
    /// The earlier snapshot's tables of the databases worth it, with when each was read.
    earlier: HashMap<String, Vec<TableRef>>,
}

struct Scan {
    changes: Changes,
    /// Why the log can no longer be followed this run: no table is carried from then on.
    broken: Option<String>,
}

impl Scan {
    /// Where the scan so far stopped.
    fn scanned_to(&self) -> BinlogPosition {
        BinlogPosition {
            file: self.changes.end_file.clone(),
            position: self.changes.end_position,
            gtid_set: String::new(),
        }
    }
}

impl TableTracker {
    pub fn new(
        target: MysqlTarget,
        basis: TableBasis,
        earlier: HashMap<String, Vec<TableRef>>,
    ) -> Self {
        TableTracker {
            target,
            server_id: basis.server_id,
            scan: tokio::sync::Mutex::new(Scan {
                changes: basis.changes,
                broken: None,
            }),
            earlier,
        }
    }
}

#[async_trait::async_trait]
impl TableCarryOver for TableTracker {
    async fn unchanged_tables(
        &self,
        database: &str,
        position: &BinlogPosition,
    ) -> HashMap<String, TableRef> {
        let Some(tables) = self.earlier.get(database) else {
            return HashMap::new();
        };
        let mut scan = self.scan.lock().await;
        if scan.broken.is_none() && !log_moved_forward(position, &scan.scanned_to()) {
            let from = scan.scanned_to();
            let continuation = scan.changes.continuation();
            match changes_since(&self.target, &from, self.server_id, continuation).await {
                Ok(later) => {
                    scan.changes.append(later);
                    if let Err(why) = widen(&self.target, &mut scan.changes).await {
                        scan.broken = Some(why);
                    }
                }
                Err(e) => scan.broken = Some(e.to_string()),
            }
            if let Some(why) = &scan.broken {
                tracing::warn!(reason = %why, "tables are read in full from here on");
            }
        }
        if scan.broken.is_some() || !log_moved_forward(position, &scan.scanned_to()) {
            return HashMap::new();
        }
        tables
            .iter()
            .filter(|t| !scan.changes.table_changed(database, &t.name))
            .map(|t| (t.name.clone(), t.clone()))
            .collect()
    }
}

/// Add what the log names only indirectly: databases statement-format writes reach through
/// triggers, views and routines, then databases foreign keys cascade into. Fails (so every
/// database is read) when the definitions needed cannot be read.
async fn widen(target: &MysqlTarget, changes: &mut Changes) -> std::result::Result<(), String> {
    if changes.all.is_some() || changes.databases.is_empty() {
        return Ok(());
    }
    let mut conn = target.connect().await.map_err(|e| e.to_string())?;
    let mut reach = DefinitionReach::new();
    loop {
        let missing = expand_statement_reach(changes, &reach);
        if missing.is_empty() {
            break;
        }
        for db in missing {
            let found = database_reach(&mut conn, &db).await.map_err(|e| {
                format!(
                    "the definitions statement-format writes may run through could not be read: {e}"
                )
            })?;
            reach.insert(db, found);
        }
    }
    if changes.all.is_none() {
        let edges = cascading_foreign_keys(&mut conn)
            .await
            .map_err(|e| format!("the cascading foreign keys could not be read: {e}"))?;
        expand_cascades(changes, &edges);
    }
    Ok(())
}

/// Whether `now` lies at or after `then` in the same binary-log sequence (`name.000042`): a log
/// that restarted (a new data directory with the same server id) would otherwise be read from a
/// position that means something else there.
fn log_moved_forward(then: &BinlogPosition, now: &BinlogPosition) -> bool {
    let split = |file: &str| -> Option<(String, u64)> {
        let (base, number) = file.rsplit_once('.')?;
        Some((base.to_string(), number.parse().ok()?))
    };
    match (split(&then.file), split(&now.file)) {
        (Some((base_then, n_then)), Some((base_now, n_now))) => {
            base_then == base_now
                && (n_now > n_then || (n_now == n_then && now.position >= then.position))
        }
        _ => false,
    }
}

/// A replica id for the binary-log dump, high and random so it collides with no real replica.
fn scan_server_id() -> Result<u32> {
    let mut raw = [0u8; 4];
    crate::crypto::fill_random(&mut raw)?;
    Ok(u32::from_le_bytes(raw) | 0x8000_0000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(file: &str, position: u64) -> BinlogPosition {
        BinlogPosition {
            file: file.into(),
            position,
            gtid_set: String::new(),
        }
    }

    fn entry(name: &str, proven: bool) -> DatabaseEntry {
        DatabaseEntry {
            name: name.into(),
            tree: BlobId([1; 32]),
            tables: 1,
            rows: 1,
            bytes: 1,
            carried_from: None,
            read_at: None,
            tables_carried: 0,
            content: None,
            position_proven: proven,
            log_position: None,
        }
    }

    fn snapshot_at(time: &str) -> Snapshot {
        serde_json::from_value(serde_json::json!({
            "version": 1, "time": time, "finished": time, "hostname": "h",
            "source": {"server": "db:3306", "server_version": "8.0.40"},
            "databases": [], "stats": {"tables": 0, "rows": 0, "bytes_read": 0, "blobs_new": 0,
            "bytes_stored_new": 0, "duration_secs": 0.0}
        }))
        .expect("snapshot")
    }

    /// Each rule of [`ReadAnyway`] that needs no index, one database at a time.
    #[test]
    fn only_what_the_rules_allow_is_carried() {
        let id = SnapshotId([7; 32]);
        let previous = snapshot_at("2026-11-30T00:00:00Z");
        let now: jiff::Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let mut changes = Changes::default();
        changes.table_written("written", "t");
        let proven = entry("quiet", true);
        let unproven = entry("quiet", false);
        let carry = |name: &str, copy: Option<&DatabaseEntry>, full_every: Option<&str>| {
            let full_every =
                full_every.map(|d| jiff::SignedDuration::from_hours(d.parse().unwrap()));
            may_carry(
                name,
                copy.map(|e| (&id, &previous, e)),
                &changes,
                full_every,
                now,
            )
        };
        assert_eq!(
            carry("written", Some(&proven), None).err(),
            Some(ReadAnyway::Changed)
        );
        assert_eq!(
            carry("quiet", None, None).err(),
            Some(ReadAnyway::NoEarlierCopy)
        );
        assert_eq!(
            carry("quiet", Some(&unproven), None).err(),
            Some(ReadAnyway::PositionNotProven)
        );
        assert_eq!(
            carry("quiet", Some(&proven), Some("24")).err(),
            Some(ReadAnyway::TooOld)
        );
        let carried = carry("quiet", Some(&proven), Some("25")).expect("carried");
        assert_eq!(
            carried.carried_from.as_deref(),
            Some(id.to_string().as_str())
        );
        assert_eq!(carried.read_at, Some(previous.time));
        // Carried again later: it keeps naming the snapshot that read it, and its read time.
        let again = carry("quiet", Some(&carried), None).expect("carried");
        assert_eq!(again.carried_from, carried.carried_from);
        assert_eq!(again.read_at, carried.read_at);
    }

    #[test]
    fn a_restarted_log_is_not_followed() {
        assert!(log_moved_forward(
            &at("binlog.000007", 900),
            &at("binlog.000007", 900)
        ));
        assert!(log_moved_forward(
            &at("binlog.000007", 900),
            &at("binlog.000008", 4)
        ));
        assert!(!log_moved_forward(
            &at("binlog.000007", 900),
            &at("binlog.000007", 300)
        ));
        assert!(!log_moved_forward(
            &at("binlog.000007", 900),
            &at("binlog.000001", 9000)
        ));
        assert!(!log_moved_forward(
            &at("mysql-bin.000007", 1),
            &at("binlog.000008", 1)
        ));
    }
}
