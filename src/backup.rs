//! The backup run: select databases, dump them with `jobs` connections (largest first), store
//! trees and chunks, then write the index and, last, the snapshot.
//!
//! A database larger than its share of the run is read first, by all `jobs` connections at
//! once in synchronised snapshots ([`crate::source::mysql::dump::parallel`]), so it does not
//! hold one connection while the others run out of work; the rest are read one per
//! connection.
//!
//! A database that fails is retried when the error is transient (lost connection, lock wait
//! timeout, concurrent DDL); if it still fails the others carry on and the snapshot records the
//! failure. Any failure to store a blob the run claimed, whatever its kind, stops the run before
//! a snapshot is written (see [`crate::repo::writer`]).

pub mod shard;
mod tracking;

pub use tracking::VerifyCarried;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::error::{Error, ErrorKind, Result};
use crate::repo::Repository;
use crate::repo::accounts::AccountsEntry;
use crate::repo::ids::SnapshotId;
use crate::repo::pack::BlobKind;
use crate::repo::runs::ActiveRun;
use crate::repo::snapshot::{
    BackupStats, DatabaseEntry, FailedDatabase, ShardOf, Snapshot, SourceInfo,
};
use crate::repo::tree::{DatabaseTree, TableRef, TableTree};
use crate::repo::writer::BlobStore;
use crate::source::mysql::accounts;
use crate::source::mysql::catalog::{self, DatabaseInfo};
use crate::source::mysql::dump::TableCarryOver;
use crate::source::mysql::dump::parallel::{ParallelError, ParallelRead, PreviousTable, Reader};
use crate::source::mysql::dump::{Chunking, DumpedDatabase, dump_database};
use crate::source::mysql::{MysqlTarget, SYSTEM_SCHEMAS};
use tracking::TableTracker;

/// What to back up and how.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// Database name patterns to include (all when empty).
    pub include: Vec<glob::Pattern>,
    /// Database name patterns to leave out (applied after `include`).
    pub exclude: Vec<glob::Pattern>,
    /// Concurrent connections, each dumping a different database.
    pub jobs: usize,
    /// Tries per database for transient errors.
    pub attempts: u32,
    pub tags: Vec<String>,
    /// Record this as the snapshot's time instead of the clock's (importing older data, tests).
    pub time: Option<jiff::Timestamp>,
    /// How long the run may take before a prune may take it for abandoned (see
    /// [`crate::repo::runs`]); past it, the run ends without a snapshot.
    pub run_lease: std::time::Duration,
    /// Read every database, carrying none over from the previous snapshot (`--full`).
    pub full: bool,
    /// Read a database again once its carried data is this old (`--full-every`).
    pub full_every: Option<jiff::SignedDuration>,
    /// How long the brief `LOCK TABLES … READ` that synchronises the connections reading one
    /// large database may wait; zero reads every database on one connection (`--lock-wait`).
    pub lock_wait: Duration,
    /// A database at least this large (and over half a connection's share of the run) is read
    /// by all connections at once (`--large-database`); its key ranges aim at a quarter of it.
    pub large_database_bytes: u64,
    /// This process's share of a run split over several (`--shard K/N --run-id R`).
    pub shard: Option<ShardOf>,
    /// How many databases the binary log shows unchanged to read again and compare with the
    /// copy that would be carried (`--verify-carried`).
    pub verify_carried: VerifyCarried,
    /// Record the server's accounts, roles and grants (`--no-accounts` leaves them out). A
    /// sharded run records them in shard 0 only.
    pub accounts: bool,
}

/// Writers to a large database being synchronised wait at most this long (plus the
/// milliseconds the snapshots take to start).
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(2);

/// Tables of a database being read are carried over one by one only when it holds at least
/// this much: below, reading it whole costs less than extending the binary-log scan for it.
const TABLE_CARRY_MIN_BYTES: u64 = 4 << 20;

/// A database is read by several connections when it holds at least this much, and more than
/// half a connection's share of the run.
pub const DEFAULT_LARGE_DATABASE_BYTES: u64 = 64 << 20;

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            include: Vec::new(),
            exclude: Vec::new(),
            jobs: 4,
            attempts: 3,
            tags: Vec::new(),
            time: None,
            run_lease: crate::repo::runs::DEFAULT_RUN_LEASE,
            full: false,
            full_every: None,
            lock_wait: DEFAULT_LOCK_WAIT,
            large_database_bytes: DEFAULT_LARGE_DATABASE_BYTES,
            shard: None,
            verify_carried: VerifyCarried::default(),
            accounts: true,
        }
    }
}

/// How one database ended.
#[derive(Debug, Clone)]
pub enum DatabaseOutcome {
    Done(DumpedDatabase),
    Failed { error: String, attempts: u32 },
}

/// Receives progress; implemented by the CLI (progress bar or log lines).
pub trait BackupObserver: Send + Sync {
    /// The selected databases, before any is dumped.
    fn planned(&self, databases: usize, approx_bytes: u64);
    /// A database finished, successfully or not.
    fn database_done(&self, name: &str, outcome: &DatabaseOutcome, elapsed: Duration);
}

/// Counters a progress display can poll while the backup runs.
#[derive(Debug, Default)]
pub struct LiveCounters {
    pub bytes_read: Arc<AtomicU64>,
}

/// The result of a backup run.
#[derive(Debug)]
pub struct BackupReport {
    pub snapshot_id: SnapshotId,
    pub snapshot: Snapshot,
}

/// Whether `name` is selected by the include and exclude patterns.
pub fn selected(name: &str, options: &BackupOptions) -> bool {
    (options.include.is_empty() || options.include.iter().any(|p| p.matches(name)))
        && !options.exclude.iter().any(|p| p.matches(name))
}

/// Run a backup of `target` into `repo`.
pub async fn run_backup(
    repo: Arc<Repository>,
    target: &MysqlTarget,
    options: &BackupOptions,
    observer: Arc<dyn BackupObserver>,
    counters: Arc<LiveCounters>,
) -> Result<BackupReport> {
    // The marker first: a prune that condemns packs after it was written waits for this run.
    let run = repo.begin_run("backup", options.run_lease).await?;
    let result = back_up(&repo, target, options, observer, counters, &run).await;
    // Over either way: with its snapshot stored, or without one it will ever write.
    repo.end_run(run).await;
    result
}

async fn back_up(
    repo: &Arc<Repository>,
    target: &MysqlTarget,
    options: &BackupOptions,
    observer: Arc<dyn BackupObserver>,
    counters: Arc<LiveCounters>,
    run: &ActiveRun,
) -> Result<BackupReport> {
    let started = jiff::Timestamp::now();
    let clock = Instant::now();
    let mut control = target.connect().await?;
    let server_version = catalog::server_version(&mut control).await?;
    let binlog = catalog::binlog_position(&mut control).await;
    let server_log = catalog::server_log(&mut control).await;
    let all = catalog::list_databases(&mut control).await?;
    let accounts = match &options.shard {
        Some(shard) if shard.index != 0 => None,
        _ if !options.accounts => None,
        _ => Some(accounts::read_accounts(&mut control, None).await),
    };
    let databases: Vec<DatabaseInfo> = all
        .iter()
        .filter(|db| selected(&db.name, options))
        .cloned()
        .collect();
    if databases.is_empty() {
        let names: Vec<&str> = all.iter().map(|d| d.name.as_str()).take(20).collect();
        return Err(Error::invalid(format!(
            "no database on {} matches the --include/--exclude patterns (the server has {} user databases{}{})",
            target.describe(),
            all.len(),
            if names.is_empty() { "" } else { ": " },
            names.join(", ")
        ))
        .with_hint(format!("system schemas ({}) are never backed up; adjust --include/--exclude", SYSTEM_SCHEMAS.join(", "))));
    }
    let databases = match &options.shard {
        Some(shard) => {
            let plan = match shard::stored_plan(repo, shard, options.run_lease).await? {
                Some(plan) => plan,
                None => {
                    let mut sized = databases.clone();
                    let previous = tracking::latest_sizes(repo, &target.describe(), shard).await;
                    catalog::estimate_sizes(&mut control, &mut sized, &previous).await?;
                    shard::store_plan(repo, shard, &sized).await?
                }
            };
            shard::share_of(&plan, shard, databases)
        }
        None => databases,
    };
    let index = repo.load_index().await?;
    let names: Vec<String> = databases.iter().map(|d| d.name.clone()).collect();
    let now = options.time.unwrap_or(started);
    let mut plan = tracking::plan(
        tracking::Inputs {
            repo,
            index: &index,
            target,
            server: &target.describe(),
            binlog: &binlog,
            log: &server_log,
            full: options.full,
            full_every: options.full_every,
            now,
            run_id: options.shard.as_ref().map(|s| s.run_id.as_str()),
            verify_carried: options.verify_carried,
            large_database_bytes: options.large_database_bytes,
        },
        &names,
    )
    .await?;
    let mut databases: Vec<DatabaseInfo> = databases
        .into_iter()
        .filter(|d| !plan.carried.contains_key(&d.name))
        .collect();
    catalog::estimate_sizes(&mut control, &mut databases, &plan.previous_sizes).await?;
    drop(control);
    observer.planned(
        databases.len(),
        databases.iter().map(|d| d.approx_bytes).sum(),
    );
    let jobs = options.jobs.max(1);
    let total: u64 = databases.iter().map(|d| d.approx_bytes).sum();
    let large_from = (total / (2 * jobs as u64)).max(options.large_database_bytes);
    let parallel = jobs > 1 && !options.lock_wait.is_zero();
    let (large_dbs, databases): (Vec<DatabaseInfo>, Vec<DatabaseInfo>) = databases
        .into_iter()
        .partition(|d| parallel && d.approx_bytes >= large_from);
    // What the previous snapshot knew of the large databases' tables, read while the index
    // is at hand (the blob store keeps only the ids).
    let mut previous_tables = HashMap::new();
    for db in &large_dbs {
        if let Some(tree) = plan.previous_trees.get(&db.name) {
            previous_tables.insert(
                db.name.clone(),
                previous_tables_of(repo, &index, tree).await,
            );
        }
    }
    // The tables of the copies the safety net compares with, to name what differs (a key
    // that cannot read trees names only the database).
    let verify_tables = tracking::carried_tables(repo, &index, &plan.verify).await;
    let carry: Option<Arc<dyn TableCarryOver>> = match plan.table_basis.take() {
        Some(basis) => {
            // A database read to check it is read whole: a carried table would hide a change.
            let worth_it = large_dbs
                .iter()
                .chain(&databases)
                .filter(|d| d.approx_bytes >= TABLE_CARRY_MIN_BYTES)
                .filter(|d| !plan.verify.contains_key(&d.name));
            let mut earlier = HashMap::new();
            for db in worth_it {
                let Some((tree, read_at)) = basis.trees.get(&db.name) else {
                    continue;
                };
                let Ok(tree) = repo.read_tree::<DatabaseTree>(&index, tree).await else {
                    continue;
                };
                let tables: Vec<TableRef> = tree
                    .tables
                    .into_iter()
                    .map(|t| TableRef {
                        read_at: Some(t.read_at.unwrap_or(*read_at)),
                        ..t
                    })
                    // --full-every bounds how old carried data gets, table by table too.
                    .filter(|t| match (options.full_every, t.read_at) {
                        (Some(limit), Some(at)) => now.duration_since(at) < limit,
                        _ => true,
                    })
                    .collect();
                earlier.insert(db.name.clone(), tables);
            }
            Some(Arc::new(TableTracker::new(target.clone(), basis, earlier)))
        }
        None => None,
    };
    let store = BlobStore::new(Arc::clone(repo), &index, jobs + 2);
    drop(index);
    let accounts = match accounts {
        Some(read) => Some(
            store_accounts(&store, read)
                .await
                .map_err(|e| e.context("backup aborted, no snapshot written"))?,
        ),
        None => None,
    };
    let chunking = Chunking {
        gear: crate::chunker::gear_table(repo.keys().chunker_key()),
        params: repo.config().chunker,
    };
    let readers: Vec<Reader> = (0..jobs)
        .map(|_| Reader {
            conn: None,
            sink: store.sink(),
        })
        .collect();
    let mut queue = databases.into_iter().collect::<VecDeque<_>>();
    let large = LargeDatabases {
        target,
        chunking: &chunking,
        options,
        store: &store,
        observer: observer.as_ref(),
        bytes_read: &counters.bytes_read,
        previous_tables: &previous_tables,
        carry: carry.as_deref(),
    };
    let (readers, outcomes, unsynchronised, longest_lock) = large.read(large_dbs, readers).await?;
    // Those the lock could not synchronise are read on one connection, first, as the large
    // databases they are.
    for db in unsynchronised.into_iter().rev() {
        queue.push_front(db);
    }
    let queue = Arc::new(Mutex::new(queue));
    let outcomes = Arc::new(Mutex::new(outcomes));
    let mut workers = tokio::task::JoinSet::new();
    for reader in readers {
        let worker = Worker {
            target: target.clone(),
            store: Arc::clone(&store),
            chunking: chunking.clone(),
            queue: Arc::clone(&queue),
            outcomes: Arc::clone(&outcomes),
            observer: Arc::clone(&observer),
            counters: Arc::clone(&counters),
            attempts: options.attempts.max(1),
            carry: carry.clone(),
            lock_wait: options.lock_wait,
        };
        workers.spawn(worker.run(reader));
    }
    let mut fatal_error = None;
    while let Some(joined) = workers.join_next().await {
        let result = joined.map_err(|e| {
            Error::new(ErrorKind::Storage, "a backup worker stopped unexpectedly").with_source(e)
        });
        if let Err(e) = result.and_then(|r| r) {
            // Stop handing out work; the snapshot cannot be written anyway.
            queue.lock().await.clear();
            fatal_error.get_or_insert(e);
        }
    }
    if let Some(e) = fatal_error {
        return Err(e.context("backup aborted, no snapshot written"));
    }
    store
        .finish_run()
        .await
        .map_err(|e| e.context("backup aborted, no snapshot written"))?;

    let mut outcomes = std::mem::take(&mut *outcomes.lock().await);
    outcomes.sort_by(|a: &(String, DatabaseOutcome), b| a.0.cmp(&b.0));
    tracking::settle_verification(&mut plan, &mut outcomes, &verify_tables);
    let mut snapshot = Snapshot {
        version: 1,
        time: options.time.unwrap_or(started),
        // With a given time, the run's duration after it.
        finished: options.time.map_or_else(jiff::Timestamp::now, |t| {
            t.checked_add(jiff::Timestamp::now().duration_since(started))
                .unwrap_or(t)
        }),
        hostname: crate::hostname(),
        source: SourceInfo {
            server: target.describe(),
            server_version,
            binlog_unavailable: binlog.as_ref().err().cloned(),
            binlog: binlog.ok(),
            server_identity: server_log.as_ref().ok().map(|l| l.identity.clone()),
        },
        databases: Vec::new(),
        failed: Vec::new(),
        stats: BackupStats::default(),
        tags: options.tags.clone(),
        time_given: options.time.is_some(),
        run: Some(run.id.clone()),
        change_tracking: Some(plan.record.clone()),
        shard: options.shard.clone(),
        // Set by `Repository::save_snapshot`.
        writer: None,
        accounts,
    };
    for (name, outcome) in outcomes {
        match outcome {
            DatabaseOutcome::Done(d) => {
                snapshot.stats.tables += d.tables;
                snapshot.stats.rows += d.rows;
                snapshot.databases.push(DatabaseEntry {
                    name,
                    tree: d.tree,
                    tables: d.tables,
                    rows: d.rows,
                    bytes: d.bytes,
                    carried_from: None,
                    read_at: None,
                    tables_carried: d.tables_carried,
                    content: Some(d.content),
                    position_proven: d.position_proven,
                    log_position: d.log_position,
                });
            }
            DatabaseOutcome::Failed { error, attempts } => snapshot.failed.push(FailedDatabase {
                name,
                error,
                attempts,
            }),
        }
    }
    // Carried databases join the ones read, in name order like them.
    snapshot.databases.extend(plan.carried.into_values());
    snapshot.databases.sort_by(|a, b| a.name.cmp(&b.name));
    snapshot.stats.bytes_read = counters.bytes_read.load(Ordering::Relaxed);
    snapshot.stats.blobs_new = store.blobs_new.load(Ordering::Relaxed);
    snapshot.stats.bytes_stored_new = store.bytes_stored_new.load(Ordering::Relaxed);
    snapshot.stats.duration_secs = clock.elapsed().as_secs_f64();
    snapshot.stats.longest_lock_ms = longest_lock.map(|d| d.as_millis() as u64);
    run.check_lease()
        .map_err(|e| e.context("backup aborted, no snapshot written"))?;
    let snapshot_id = repo.save_snapshot(&snapshot).await?;
    // Repositories from before summaries existed get them from their first backup on.
    match repo.store_missing_summaries().await {
        Ok(0) => {}
        Ok(n) => tracing::info!("stored the summaries of {n} earlier snapshots"),
        Err(e) => tracing::warn!("summaries of earlier snapshots not stored: {e}"),
    }
    Ok(BackupReport {
        snapshot_id,
        snapshot,
    })
}

/// Store what was read of the server's accounts as a tree blob; what could not be read is
/// recorded as the reason (the databases are backed up either way).
async fn store_accounts(
    store: &Arc<BlobStore>,
    read: Result<accounts::ReadAccounts>,
) -> Result<AccountsEntry> {
    let read = match read {
        Ok(read) => read,
        Err(e) => {
            tracing::warn!("the accounts are not recorded in this backup: {e}");
            return Ok(AccountsEntry {
                tree: None,
                accounts: 0,
                roles: 0,
                unavailable: Some(e.to_string()),
            });
        }
    };
    for warning in &read.warnings {
        tracing::warn!("accounts: {warning}");
    }
    let bytes = serde_json::to_vec(&read.set)
        .map_err(|e| Error::invalid("encoding the accounts").with_source(e))?;
    let mut sink = store.sink();
    let tree = sink.add(BlobKind::Tree, bytes).await?;
    sink.finish().await?;
    let roles = read.set.accounts.iter().filter(|a| a.role).count() as u64;
    Ok(AccountsEntry {
        tree: Some(tree),
        accounts: read.set.accounts.len() as u64 - roles,
        roles,
        unavailable: None,
    })
}

/// What reading the large databases, each by every connection at once, needs.
struct LargeDatabases<'a> {
    target: &'a MysqlTarget,
    chunking: &'a Chunking,
    options: &'a BackupOptions,
    store: &'a BlobStore,
    observer: &'a dyn BackupObserver,
    bytes_read: &'a Arc<AtomicU64>,
    previous_tables: &'a HashMap<String, HashMap<String, PreviousTable>>,
    carry: Option<&'a dyn TableCarryOver>,
}

/// The readers back, the outcomes, the databases the lock could not synchronise (to be read
/// on one connection), and the longest lock held.
type LargeRead = (
    Vec<Reader>,
    Vec<(String, DatabaseOutcome)>,
    Vec<DatabaseInfo>,
    Option<Duration>,
);

impl LargeDatabases<'_> {
    /// Read `large`, one database at a time, each with all `readers`; transient failures are
    /// retried like on one connection. An error means blobs of the run were lost.
    async fn read(&self, large: Vec<DatabaseInfo>, mut readers: Vec<Reader>) -> Result<LargeRead> {
        let options = self.options;
        let mut outcomes = Vec::new();
        let mut unsynchronised = Vec::new();
        let mut longest_lock = None;
        let empty = HashMap::new();
        for db in large {
            let read = ParallelRead {
                target: self.target,
                db: &db,
                chunking: self.chunking,
                bytes_read: self.bytes_read,
                lock_wait: options.lock_wait,
                min_range_bytes: (options.large_database_bytes / 4).max(1),
                previous: self.previous_tables.get(&db.name).unwrap_or(&empty),
                carry: self.carry,
            };
            let started = Instant::now();
            let mut attempt = 0;
            let outcome = loop {
                attempt += 1;
                let (back, result) = read.read(readers).await;
                readers = back;
                match result {
                    Ok(done) => {
                        tracing::info!(
                            database = %db.name,
                            connections = done.connections,
                            ranges = done.ranges,
                            lock_waited_ms = done.lock.waited.as_millis() as u64,
                            lock_held_ms = done.lock.held.as_millis() as u64,
                            "large database read by several connections in one state"
                        );
                        longest_lock = longest_lock.max(Some(done.lock.held));
                        break Some(DatabaseOutcome::Done(done.dumped));
                    }
                    Err(ParallelError::Unsynchronised(why)) => {
                        tracing::warn!(database = %db.name, reason = %why, "reading the database on one connection");
                        break None;
                    }
                    Err(ParallelError::Failed(e)) if self.store.failure().is_some() => {
                        return Err(e.context("backup aborted, no snapshot written"));
                    }
                    Err(ParallelError::Failed(e))
                        if e.is_transient() && attempt < options.attempts.max(1) =>
                    {
                        tracing::warn!(database = %db.name, attempt, error = %e, "retrying database");
                        tokio::time::sleep(Duration::from_millis(500 * (1 << attempt.min(6))))
                            .await;
                    }
                    Err(ParallelError::Failed(e)) => {
                        break Some(DatabaseOutcome::Failed {
                            error: e.to_string(),
                            attempts: attempt,
                        });
                    }
                }
            };
            match outcome {
                Some(outcome) => {
                    self.observer
                        .database_done(&db.name, &outcome, started.elapsed());
                    outcomes.push((db.name.clone(), outcome));
                }
                None => unsynchronised.push(db),
            }
        }
        Ok((readers, outcomes, unsynchronised, longest_lock))
    }
}

/// The tables of a database in a previous snapshot, for splitting them at the same places; a
/// tree that cannot be read only means the tables are split afresh.
async fn previous_tables_of(
    repo: &Repository,
    index: &crate::repo::index::Index,
    tree: &crate::repo::ids::BlobId,
) -> HashMap<String, PreviousTable> {
    let mut tables = HashMap::new();
    let Ok(database) = repo.read_tree::<DatabaseTree>(index, tree).await else {
        return tables;
    };
    for table in database.tables {
        let (key_columns, chunks) = match repo.read_tree::<TableTree>(index, &table.tree).await {
            Ok(tree) => (tree.key_columns, tree.chunks),
            Err(_) => continue,
        };
        tables.insert(
            table.name,
            PreviousTable {
                key_columns,
                bytes: table.bytes,
                chunks,
            },
        );
    }
    tables
}

struct Worker {
    target: MysqlTarget,
    store: Arc<BlobStore>,
    chunking: Chunking,
    queue: Arc<Mutex<VecDeque<DatabaseInfo>>>,
    outcomes: Arc<Mutex<Vec<(String, DatabaseOutcome)>>>,
    observer: Arc<dyn BackupObserver>,
    counters: Arc<LiveCounters>,
    attempts: u32,
    carry: Option<Arc<dyn TableCarryOver>>,
    lock_wait: Duration,
}

impl Worker {
    /// Pull databases until the queue is empty. Returns an error only when blobs of the run
    /// could not be stored, which ends the whole run.
    async fn run(self, reader: Reader) -> Result<()> {
        let Reader { mut conn, mut sink } = reader;
        loop {
            let Some(db) = self.queue.lock().await.pop_front() else {
                break;
            };
            if self.store.failure().is_some() {
                break;
            }
            let started = Instant::now();
            let mut attempt = 0;
            let outcome = loop {
                attempt += 1;
                let result = async {
                    if conn.is_none() {
                        conn = Some(self.target.connect().await?);
                    }
                    match conn.as_mut() {
                        Some(c) => {
                            dump_database(
                                c,
                                &db,
                                &mut sink,
                                &self.chunking,
                                &self.counters.bytes_read,
                                self.carry.as_deref(),
                                self.lock_wait,
                            )
                            .await
                        }
                        None => Err(Error::new(ErrorKind::Mysql, "no connection")),
                    }
                }
                .await;
                match result {
                    Ok(done) => break DatabaseOutcome::Done(done),
                    // Blobs claimed for the run were lost: no snapshot can be written, so stop.
                    Err(e) if self.store.failure().is_some() => {
                        return Err(e.context(format!("database {}", db.name)));
                    }
                    Err(e) if e.is_transient() && attempt < self.attempts => {
                        tracing::warn!(database = %db.name, attempt, error = %e, "retrying database");
                        // The connection may be unusable; start the next attempt on a fresh one.
                        conn = None;
                        tokio::time::sleep(Duration::from_millis(500 * (1 << attempt.min(6))))
                            .await;
                    }
                    Err(e) => {
                        conn = None;
                        break DatabaseOutcome::Failed {
                            error: e.to_string(),
                            attempts: attempt,
                        };
                    }
                }
            };
            self.observer
                .database_done(&db.name, &outcome, started.elapsed());
            self.outcomes.lock().await.push((db.name.clone(), outcome));
        }
        sink.finish().await
    }
}
