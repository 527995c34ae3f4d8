//! Reading one large database with several connections that all see the same state.
//!
//! MySQL cannot share a snapshot between connections, and a global read lock needs RELOAD
//! (not granted on managed services). So, as MySQL Shell does there: a separate connection
//! takes `LOCK TABLES … READ` on the database's tables, which waits until no transaction has
//! uncommitted writes to them and holds new writers back; while it holds the lock, every
//! reading connection starts `START TRANSACTION WITH CONSISTENT SNAPSHOT`, and the lock is
//! released at once. No write to those tables can commit between the first and the last
//! snapshot, so all of them see one state of the database. The lock waits at most
//! `lock_wait` (`lock_wait_timeout`); writers stall at most that long plus the milliseconds the
//! snapshots take to start, and both times are reported. When the lock cannot be had (a long
//! transaction, no LOCK TABLES privilege), the caller reads the database on one connection.
//!
//! One connection reads the definitions; then all of them take tables and key ranges
//! ([`super::ranges`]) from a shared queue, largest first, each into its own pack sink.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::ranges::{self, KeyRange};
use super::{Chunking, DumpedDatabase, StoredRows, TablePlan};
use crate::error::{Error, ErrorKind, Result};
use crate::repo::snapshot::CopyPosition;
use crate::repo::tree::{ChunkRef, TableKind};
use crate::repo::writer::PackSink;
use crate::source::mysql::catalog::DatabaseInfo;
use crate::source::mysql::{MysqlTarget, mysql_error};
use crate::sql::{qualified, quote_ident};

/// No table is split into more ranges than this.
const MAX_RANGES_PER_TABLE: u64 = 256;

/// What the previous snapshot knew of one table: where its chunks started, to split the
/// table at the same places again (see [`super::ranges`]).
#[derive(Debug, Clone)]
pub struct PreviousTable {
    pub key_columns: Vec<String>,
    pub bytes: u64,
    pub chunks: Vec<ChunkRef>,
}

/// A large database to read with several connections.
pub struct ParallelRead<'a> {
    pub target: &'a MysqlTarget,
    pub db: &'a DatabaseInfo,
    pub chunking: &'a Chunking,
    pub bytes_read: &'a Arc<AtomicU64>,
    /// How long `LOCK TABLES … READ` may wait for running transactions.
    pub lock_wait: Duration,
    /// A key range is aimed at this many row bytes at least: smaller ones cost more in
    /// queries and cut chunks than they gain in balance.
    pub min_range_bytes: u64,
    /// The tables of the previous snapshot of this database, by name.
    pub previous: &'a HashMap<String, PreviousTable>,
    /// Tables that may be taken over from an earlier snapshot instead of read.
    pub carry: Option<&'a dyn super::TableCarryOver>,
}

/// How the lock went, for the run's report.
#[derive(Debug, Clone, Default)]
pub struct LockTimes {
    /// From asking for the lock to having it (writers queue behind it meanwhile).
    pub waited: Duration,
    /// From having the lock to releasing it.
    pub held: Duration,
    /// The binary-log position while it was held (where every snapshot is in the log).
    pub position: Option<CopyPosition>,
}

/// A database read with several connections.
#[derive(Debug)]
pub struct ParallelDump {
    pub dumped: DumpedDatabase,
    pub lock: LockTimes,
    pub connections: usize,
    pub ranges: usize,
}

/// Why a database could not be read in parallel; it is then read on one connection.
#[derive(Debug)]
pub enum ParallelError {
    /// The lock or the synchronised snapshots could not be had: read on one connection.
    Unsynchronised(String),
    /// Reading failed (possibly transient, see [`Error::is_transient`]).
    Failed(Error),
}

impl From<Error> for ParallelError {
    fn from(e: Error) -> Self {
        ParallelError::Failed(e)
    }
}

/// A reading connection with its pack sink, lent to [`read`] and handed back.
pub struct Reader {
    pub conn: Option<Conn>,
    pub sink: PackSink,
}

impl ParallelRead<'_> {
    /// Read the database with `readers` (at least two). The readers come back in any case; a
    /// reader whose connection failed comes back without it.
    pub async fn read(
        &self,
        mut readers: Vec<Reader>,
    ) -> (
        Vec<Reader>,
        std::result::Result<ParallelDump, ParallelError>,
    ) {
        for reader in &mut readers {
            if reader.conn.is_none() {
                match self.target.connect().await {
                    Ok(conn) => reader.conn = Some(conn),
                    Err(e) => return (readers, Err(e.into())),
                }
            }
        }
        let lock = match self.start_snapshots(&mut readers).await {
            Ok(lock) => lock,
            Err(e) => {
                end_transactions(&mut readers).await;
                return (readers, Err(e));
            }
        };
        let (mut readers, result) = self.read_in_snapshots(readers).await;
        end_transactions(&mut readers).await;
        let result = result.map(|(dumped, ranges)| ParallelDump {
            // Every snapshot started while the lock was held: see `super::start_snapshot`.
            dumped: DumpedDatabase {
                position_proven: true,
                log_position: lock.position.clone(),
                ..dumped
            },
            lock,
            connections: readers.len(),
            ranges,
        });
        (readers, result.map_err(ParallelError::Failed))
    }

    /// Lock the database's tables on a connection of its own, start a consistent snapshot on
    /// every reader, unlock.
    async fn start_snapshots(
        &self,
        readers: &mut [Reader],
    ) -> std::result::Result<LockTimes, ParallelError> {
        let name = &self.db.name;
        let mut locker = self.target.connect().await?;
        let tables: Vec<String> = locker
            .exec(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? \
                 AND TABLE_TYPE IN ('BASE TABLE', 'SEQUENCE', 'SYSTEM VERSIONED') ORDER BY TABLE_NAME",
                (name,),
            )
            .await
            .map_err(|e| mysql_error(e, &format!("listing tables of {name}")))?;
        if tables.is_empty() {
            return Err(ParallelError::Unsynchronised(format!(
                "{name} has no tables"
            )));
        }
        let seconds = self.lock_wait.as_secs().max(1);
        locker
            .query_drop(format!("SET SESSION lock_wait_timeout = {seconds}"))
            .await
            .map_err(|e| mysql_error(e, "setting lock_wait_timeout"))?;
        let statement = format!(
            "LOCK TABLES {}",
            tables
                .iter()
                .map(|t| format!("{} READ", qualified(name, t)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let asked = Instant::now();
        if let Err(e) = locker.query_drop(statement).await {
            return Err(ParallelError::Unsynchronised(format!(
                "LOCK TABLES … READ on {name} failed after {:.1} s ({e}); grant LOCK TABLES, or raise --lock-wait if long transactions hold the tables",
                asked.elapsed().as_secs_f64()
            )));
        }
        let granted = Instant::now();
        let started = futures_util::future::join_all(readers.iter_mut().map(|r| async {
            match r.conn.as_mut() {
                Some(conn) => conn
                    .query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                    .await
                    .map_err(|e| mysql_error(e, "starting a snapshot transaction")),
                None => Err(Error::new(ErrorKind::Mysql, "no connection")),
            }
        }))
        .await;
        // Every snapshot started while the tables were locked: the position now is exactly
        // where they all are in the log.
        let position = super::log_file_position(&mut locker).await;
        let unlocked = locker.query_drop("UNLOCK TABLES").await;
        let lock = LockTimes {
            position: position.map(|(file, at)| CopyPosition::exact(&file, at)),
            waited: granted.duration_since(asked),
            held: granted.elapsed(),
        };
        // Disconnecting would release the lock too; this closes the connection cleanly.
        let _ = locker.disconnect().await;
        unlocked.map_err(|e| mysql_error(e, &format!("unlocking the tables of {name}")))?;
        for result in started {
            result.map_err(|e| e.context(format!("database {name}")))?;
        }
        Ok(lock)
    }

    /// Inside the synchronised snapshots: definitions on the first reader, then rows by every
    /// reader from a shared queue of tables and key ranges. Returns the database and how many
    /// ranges were read.
    async fn read_in_snapshots(
        &self,
        mut readers: Vec<Reader>,
    ) -> (Vec<Reader>, Result<(DumpedDatabase, usize)>) {
        let connections = readers.len();
        let planned = async {
            let leader = readers
                .first_mut()
                .and_then(|r| r.conn.as_mut())
                .ok_or_else(|| Error::new(ErrorKind::Mysql, "no connection"))?;
            let carried = super::carried_tables(leader, &self.db.name, self.carry).await;
            let definitions = super::read_definitions(leader, &self.db.name).await?;
            let tasks = self
                .plan_tasks(leader, &definitions.tables, &carried, connections)
                .await?;
            Ok::<_, Error>((definitions, carried, tasks))
        };
        let (definitions, mut carried, tasks) = match planned.await {
            Ok(planned) => planned,
            Err(e) => return (readers, Err(e)),
        };
        let ranges = tasks.len();
        let super::Definitions {
            tables,
            objects,
            warnings,
        } = definitions;
        let plans = Arc::new(tables);
        let queue = Arc::new(Mutex::new(tasks.into_iter().collect::<VecDeque<_>>()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut running = tokio::task::JoinSet::new();
        let mut idle = Vec::new();
        for (slot, reader) in readers.into_iter().enumerate() {
            if reader.conn.is_none() {
                idle.push((slot, reader));
                continue;
            }
            let worker = RangeWorker {
                db: self.db.name.clone(),
                plans: Arc::clone(&plans),
                queue: Arc::clone(&queue),
                stop: Arc::clone(&stop),
                chunking: self.chunking.clone(),
                bytes_read: Arc::clone(self.bytes_read),
            };
            running.spawn(async move {
                let (reader, result) = worker.run(reader).await;
                (slot, reader, result)
            });
        }
        let mut pieces: Vec<(usize, usize, StoredRows)> = Vec::new();
        let mut failure = None;
        let mut back = idle;
        while let Some(joined) = running.join_next().await {
            match joined {
                Ok((slot, reader, result)) => {
                    back.push((slot, reader));
                    match result {
                        Ok(mut read) => pieces.append(&mut read),
                        Err(e) => {
                            stop.store(true, Ordering::Relaxed);
                            failure.get_or_insert(e);
                        }
                    }
                }
                // A panicked task loses its reader (and the blobs its sink held: the run
                // cannot write a snapshot, which the sink's failure flag ensures).
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    failure.get_or_insert(
                        Error::new(ErrorKind::Mysql, "a reading task stopped unexpectedly")
                            .with_source(e),
                    );
                }
            }
        }
        back.sort_by_key(|(slot, _)| *slot);
        let mut readers: Vec<Reader> = back.into_iter().map(|(_, r)| r).collect();
        if let Some(e) = failure {
            return (
                readers,
                Err(e.context(format!("database {}", self.db.name))),
            );
        }
        // Ranges back in key order, table by table.
        pieces.sort_by_key(|(table, range, _)| (*table, *range));
        let mut rows: Vec<StoredRows> = (0..plans.len()).map(|_| StoredRows::default()).collect();
        for (table, _, piece) in pieces {
            if let Some(slot) = rows.get_mut(table) {
                slot.extend(piece);
            }
        }
        let contents: Vec<super::TableContent> = plans
            .iter()
            .zip(rows)
            .map(|(plan, read)| match carried.remove(&plan.name) {
                Some(earlier) if plan.kind == TableKind::Base => {
                    super::TableContent::Carried(earlier)
                }
                _ => super::TableContent::Read(read),
            })
            .collect();
        let Ok(tables) = Arc::try_unwrap(plans) else {
            let e = Error::new(
                ErrorKind::Mysql,
                "a reading task still holds the table plans",
            );
            return (readers, Err(e));
        };
        let definitions = super::Definitions {
            tables,
            objects,
            warnings,
        };
        let stored = match readers.first_mut() {
            Some(leader) => {
                super::store_trees(&mut leader.sink, self.db, definitions, contents).await
            }
            None => Err(Error::new(ErrorKind::Mysql, "no reader")),
        };
        (readers, stored.map(|dumped| (dumped, ranges)))
    }

    /// Tables and key ranges to read, largest first. A table with an all-integer primary key
    /// larger than the range size is split: at the previous snapshot's chunk starts when it
    /// has some, else evenly between the smallest and largest leading key.
    async fn plan_tasks(
        &self,
        conn: &mut Conn,
        tables: &[TablePlan],
        carried: &HashMap<String, crate::repo::tree::TableRef>,
        connections: usize,
    ) -> Result<Vec<RangeTask>> {
        let name = &self.db.name;
        let sizes: HashMap<String, u64> =
            if tables.iter().all(|t| self.previous.contains_key(&t.name)) {
                self.previous
                    .iter()
                    .map(|(t, p)| (t.clone(), p.bytes))
                    .collect()
            } else {
                let listed: Vec<(String, u64)> = conn
                    .exec(
                        "SELECT TABLE_NAME, CAST(COALESCE(DATA_LENGTH, 0) AS UNSIGNED) \
                     FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
                        (name,),
                    )
                    .await
                    .map_err(|e| mysql_error(e, &format!("reading table sizes of {name}")))?;
                listed
                    .into_iter()
                    .map(|(t, size)| {
                        let previous = self.previous.get(&t).map(|p| p.bytes);
                        (t, previous.unwrap_or(size))
                    })
                    .collect()
            };
        let total: u64 = sizes.values().sum();
        let range_bytes = (total / (connections as u64 * 4)).max(self.min_range_bytes);
        let mut tasks = Vec::new();
        for (index, plan) in tables.iter().enumerate() {
            if plan.kind != TableKind::Base || carried.contains_key(&plan.name) {
                continue;
            }
            let size = sizes.get(&plan.name).copied().unwrap_or(0);
            let wanted = size.div_ceil(range_bytes).min(MAX_RANGES_PER_TABLE) as usize;
            let points = if wanted >= 2 && plan.integer_key() {
                self.split_points(conn, plan, wanted).await?
            } else {
                Vec::new()
            };
            let count = points.len() + 1;
            for (range_index, range) in ranges::ranges_between(&points).into_iter().enumerate() {
                tasks.push(RangeTask {
                    table: index,
                    range_index,
                    range,
                    approx_bytes: size / count as u64,
                });
            }
        }
        tasks.sort_by(|a, b| {
            b.approx_bytes
                .cmp(&a.approx_bytes)
                .then((a.table, a.range_index).cmp(&(b.table, b.range_index)))
        });
        Ok(tasks)
    }

    async fn split_points(
        &self,
        conn: &mut Conn,
        plan: &TablePlan,
        wanted: usize,
    ) -> Result<Vec<Vec<i128>>> {
        if let Some(previous) = self.previous.get(&plan.name)
            && previous.key_columns == plan.key_columns
            && let Some(points) =
                ranges::points_from_chunks(&previous.chunks, plan.key_columns.len(), wanted)
        {
            return Ok(points);
        }
        let Some(leading) = plan.key_columns.first() else {
            return Ok(Vec::new());
        };
        let table = qualified(&self.db.name, &plan.name);
        let column = quote_ident(leading);
        // Text, so any integer type (up to BIGINT UNSIGNED) parses into i128.
        let bounds: Option<(Option<String>, Option<String>)> = conn
            .query_first(format!(
                "SELECT CAST(MIN({column}) AS CHAR), CAST(MAX({column}) AS CHAR) FROM {table}"
            ))
            .await
            .map_err(|e| mysql_error(e, &format!("reading the key bounds of {table}")))?;
        let parse = |v: Option<String>| v.and_then(|v| v.parse::<i128>().ok());
        Ok(match bounds {
            Some((min, max)) => match (parse(min), parse(max)) {
                (Some(min), Some(max)) => ranges::points_between(min, max, wanted),
                _ => Vec::new(),
            },
            None => Vec::new(),
        })
    }
}

/// One table, or one key range of it, to read.
#[derive(Debug)]
struct RangeTask {
    table: usize,
    range_index: usize,
    range: KeyRange,
    approx_bytes: u64,
}

/// A reader taking tasks from the shared queue until it is empty or another reader failed.
struct RangeWorker {
    db: String,
    plans: Arc<Vec<TablePlan>>,
    queue: Arc<Mutex<VecDeque<RangeTask>>>,
    stop: Arc<AtomicBool>,
    chunking: Chunking,
    bytes_read: Arc<AtomicU64>,
}

type RangeResult = Result<Vec<(usize, usize, StoredRows)>>;

impl RangeWorker {
    async fn run(self, mut reader: Reader) -> (Reader, RangeResult) {
        let result = match reader.conn.as_mut() {
            Some(conn) => self.read_tasks(conn, &mut reader.sink).await,
            None => Ok(Vec::new()),
        };
        // A connection that failed mid-read is not trusted with the next database.
        if result.is_err() {
            reader.conn = None;
        }
        (reader, result)
    }

    async fn read_tasks(&self, conn: &mut Conn, sink: &mut PackSink) -> RangeResult {
        super::binary_results(conn, true).await?;
        let mut read = Vec::new();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let task = match self.queue.lock() {
                Ok(mut queue) => queue.pop_front(),
                Err(_) => None,
            };
            let Some(task) = task else { break };
            let Some(plan) = self.plans.get(task.table) else {
                continue;
            };
            let rows = super::read_rows(
                conn,
                &self.db,
                plan,
                &task.range,
                sink,
                &self.chunking,
                &self.bytes_read,
            )
            .await?;
            read.push((task.table, task.range_index, rows));
        }
        super::binary_results(conn, false).await?;
        Ok(read)
    }
}

/// End every reader's snapshot transaction (releasing its metadata locks).
async fn end_transactions(readers: &mut [Reader]) {
    for reader in readers {
        if let Some(conn) = reader.conn.as_mut()
            && conn.query_drop("ROLLBACK").await.is_err()
        {
            reader.conn = None;
        }
    }
}
