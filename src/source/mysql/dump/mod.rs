//! Dumping one database: a consistent read of its definitions and rows into tree and data blobs.
//!
//! One `START TRANSACTION WITH CONSISTENT SNAPSHOT` per database (REPEATABLE READ, no global lock,
//! no privilege beyond SELECT, SHOW VIEW, TRIGGER, EVENT and routine metadata). Definitions are
//! read first, then rows table by table in primary-key order through the binary protocol,
//! streamed into the chunker: memory stays bounded by one chunk and one pack whatever the table
//! size. Concurrent DDL surfaces as server error 1412, which the caller retries.
//!
//! A large database can instead be read by several connections at once ([`parallel`]), its
//! big tables split into key ranges ([`ranges`]); both paths share the pieces here: reading
//! the definitions, reading the rows of a range, storing the trees.

pub mod parallel;
pub mod ranges;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use self::ranges::KeyRange;
use super::catalog::{self, ColumnInfo, ColumnStorage, DatabaseInfo, StoredObjects};
use super::mysql_error;
use super::rowtext::{ColumnKind, RowDecoder};
use crate::chunker::{Chunk, RowChunker};
use crate::error::{Error, ErrorKind, Result};
use crate::repo::ChunkerParams;
use crate::repo::ids::BlobId;
use crate::repo::pack::BlobKind;
use crate::repo::snapshot::CopyPosition;
use crate::repo::tree::{ChunkRef, DatabaseTree, TableKind, TableRef, TableTree};
use crate::repo::writer::PackSink;
use crate::sql::{column_list, qualified};

/// Tables a dump may take over from an earlier snapshot instead of reading them. Asked once the
/// database's snapshot transaction has started, with the binary-log position read right after
/// it: every change that snapshot sees lies before that position, so a table the log shows
/// unchanged from the earlier snapshot's position up to it is exactly what reading it would give.
#[async_trait::async_trait]
pub trait TableCarryOver: Send + Sync {
    /// The earlier snapshot's entries of the tables of `database` unchanged up to `position`
    /// (empty when that cannot be told).
    async fn unchanged_tables(
        &self,
        database: &str,
        position: &crate::repo::snapshot::BinlogPosition,
    ) -> HashMap<String, TableRef>;
}

/// What a table tree of the new snapshot holds: rows read now, or an earlier tree taken over.
#[derive(Debug)]
pub(crate) enum TableContent {
    Read(StoredRows),
    Carried(TableRef),
}

/// The tables `carry` takes over for `db`, asked with the position read on `conn`, whose
/// snapshot transaction has started.
pub(crate) async fn carried_tables(
    conn: &mut Conn,
    db: &str,
    carry: Option<&dyn TableCarryOver>,
) -> HashMap<String, TableRef> {
    let Some(carry) = carry else {
        return HashMap::new();
    };
    match catalog::binlog_position(conn).await {
        Ok(position) => carry.unchanged_tables(db, &position).await,
        Err(_) => HashMap::new(),
    }
}

/// How table data is cut, shared by all workers of a run.
#[derive(Clone)]
pub struct Chunking {
    pub gear: Box<[u64; 256]>,
    pub params: ChunkerParams,
}

/// Result of dumping one database.
#[derive(Debug, Clone)]
pub struct DumpedDatabase {
    pub tree: BlobId,
    /// The content fingerprint (see [`crate::repo::snapshot::DatabaseEntry::content`]).
    pub content: BlobId,
    /// Each table's tree, by name (to name what differs when a check finds a change).
    pub table_trees: Vec<(String, BlobId)>,
    /// Whether the snapshot is proven to see every transaction on the database the binary log
    /// holds before the run's position (see [`start_snapshot`]): only such a copy may be
    /// carried by a later backup.
    pub position_proven: bool,
    /// Where the copy sits in the binary log (see [`start_snapshot`]).
    pub log_position: Option<CopyPosition>,
    pub tables: u64,
    pub rows: u64,
    pub bytes: u64,
    /// Tables taken over from an earlier snapshot instead of read.
    pub tables_carried: u64,
}

/// How one table is read: its definition and the stored columns to select.
pub(crate) struct TablePlan {
    pub name: String,
    pub kind: TableKind,
    create_sql: String,
    pub columns: Vec<String>,
    pub kinds: Vec<ColumnKind>,
    pub key_columns: Vec<String>,
    sequence_next: Option<String>,
}

impl TablePlan {
    /// Whether every primary-key column is an integer: such a table can be split into key
    /// ranges whose bounds are plain numbers.
    pub fn integer_key(&self) -> bool {
        !self.key_columns.is_empty()
            && self.key_columns.iter().all(|k| {
                self.columns
                    .iter()
                    .position(|c| c == k)
                    .and_then(|i| self.kinds.get(i))
                    == Some(&ColumnKind::Integer)
            })
    }
}

/// A database's definitions, read inside its snapshot transaction.
pub(crate) struct Definitions {
    pub tables: Vec<TablePlan>,
    objects: StoredObjects,
    warnings: Vec<String>,
}

/// Rows of a table, or of one key range of it, as stored.
#[derive(Debug, Default)]
pub(crate) struct StoredRows {
    pub chunks: Vec<ChunkRef>,
    pub rows: u64,
    pub bytes: u64,
}

impl StoredRows {
    /// Append the rows of the next key range.
    pub fn extend(&mut self, next: StoredRows) {
        self.chunks.extend(next.chunks);
        self.rows += next.rows;
        self.bytes += next.bytes;
    }
}

/// Dump `db` over `conn` into `sink`. `bytes_read` counts row text as it streams (for progress);
/// `lock_wait` bounds the brief lock that proves the snapshot's position ([`start_snapshot`]).
pub async fn dump_database(
    conn: &mut Conn,
    db: &DatabaseInfo,
    sink: &mut PackSink,
    chunking: &Chunking,
    bytes_read: &AtomicU64,
    carry: Option<&dyn TableCarryOver>,
    lock_wait: std::time::Duration,
) -> Result<DumpedDatabase> {
    let (proven, log_position) = start_snapshot(conn, &db.name, lock_wait).await?;
    let result = dump_in_transaction(conn, db, sink, chunking, bytes_read, carry).await;
    // Ending the transaction releases metadata locks; after an error the connection may be gone.
    let _ = conn.query_drop("ROLLBACK").await;
    result.map(|dumped| DumpedDatabase {
        position_proven: proven,
        log_position,
        ..dumped
    })
}

/// Start the snapshot `db` is read in, so that it sees every transaction on `db` the binary log
/// holds before the run's position (docs/ARCHITECTURE.md, "The position and the snapshots").
///
/// Why: a transaction is written to the binary log before its InnoDB commit completes, so one
/// logged before the position the run read first may still be invisible to a snapshot started
/// just after, and the next backup's scan starts at that position: it would never see it. So
/// `LOCK TABLES … READ` on the database's tables comes first: it is granted only once no
/// transaction holds a metadata lock on them, and a writing transaction holds one until its
/// commit is complete. `START TRANSACTION WITH CONSISTENT SNAPSHOT` then releases the lock (and
/// anything committed after that is logged after the position). Returns whether the lock was
/// had within `lock_wait`; without it (a long transaction holds the tables, no LOCK TABLES
/// privilege, `lock_wait` zero) the copy is read all the same but is never carried over.
pub(crate) async fn start_snapshot(
    conn: &mut Conn,
    db: &str,
    lock_wait: std::time::Duration,
) -> Result<(bool, Option<CopyPosition>)> {
    let tables: Vec<String> = if lock_wait.is_zero() {
        Vec::new()
    } else {
        conn.exec(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? \
             AND TABLE_TYPE IN ('BASE TABLE', 'SEQUENCE', 'SYSTEM VERSIONED')",
            (db,),
        )
        .await
        .map_err(|e| mysql_error(e, &format!("listing tables of {db}")))?
    };
    let proven = if lock_wait.is_zero() {
        false
    } else if tables.is_empty() {
        // No table: no transaction can have written it.
        true
    } else {
        lock_tables_briefly(conn, db, &tables, lock_wait).await
    };
    let mariadb = super::is_mariadb(conn);
    // MySQL: read while the tables are locked: every transaction on them logged before it is
    // committed, so it is in the snapshot started next.
    let locked_at = if proven && !mariadb {
        log_file_position(conn).await
    } else {
        None
    };
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        .await
        .map_err(|e| mysql_error(e, &format!("starting the snapshot transaction for {db}")))?;
    let log_position = if mariadb {
        // MariaDB says where in the log the snapshot itself is (`Binlog_snapshot_file`).
        mariadb_snapshot_position(conn)
            .await
            .map(|(file, position)| CopyPosition::exact(&file, position))
    } else {
        // MySQL does not: the snapshot lies between the lock's position and this one.
        match (locked_at, log_file_position(conn).await) {
            (Some((from_file, from)), Some((to_file, to))) => Some(CopyPosition {
                from_file,
                from,
                to_file,
                to,
            }),
            _ => None,
        }
    };
    Ok((proven, log_position))
}

/// The binary log's current file and position, if this account may read them.
pub(crate) async fn log_file_position(conn: &mut Conn) -> Option<(String, u64)> {
    let statement = super::catalog::binlog_status_statement(conn.server_version());
    let row: Option<mysql_async::Row> = conn.query_first(statement).await.ok()?;
    let row = row?;
    let file: String = row.get_opt(0)?.ok()?;
    let position: u64 = row.get_opt(1)?.ok()?;
    Some((file, position))
}

/// MariaDB's position of the current consistent snapshot (`SHOW STATUS LIKE
/// 'binlog_snapshot_%'`, valid after `START TRANSACTION WITH CONSISTENT SNAPSHOT`).
async fn mariadb_snapshot_position(conn: &mut Conn) -> Option<(String, u64)> {
    let rows: Vec<(String, String)> = conn
        .query("SHOW SESSION STATUS LIKE 'binlog_snapshot_%'")
        .await
        .ok()?;
    let value = |name: &str| {
        rows.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let file = value("Binlog_snapshot_file").filter(|f| !f.is_empty())?;
    let position = value("Binlog_snapshot_position")?.parse().ok()?;
    Some((file, position))
}

/// `LOCK TABLES … READ` on `tables` of `db`, waiting at most `lock_wait`, with the session's
/// own lock wait restored afterwards (the reads that follow wait for DDL as before). The lock
/// stays held: the caller's `START TRANSACTION` releases it.
async fn lock_tables_briefly(
    conn: &mut Conn,
    db: &str,
    tables: &[String],
    lock_wait: std::time::Duration,
) -> bool {
    let seconds = lock_wait.as_secs().max(1);
    if conn
        .query_drop(format!("SET SESSION lock_wait_timeout = {seconds}"))
        .await
        .is_err()
    {
        return false;
    }
    let statement = format!(
        "LOCK TABLES {}",
        tables
            .iter()
            .map(|t| format!("{} READ", crate::sql::qualified(db, t)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let locked = conn.query_drop(statement).await;
    let restored = conn
        .query_drop("SET SESSION lock_wait_timeout = DEFAULT")
        .await;
    if let Err(e) = &locked {
        tracing::info!(database = %db, "the snapshot's position is not proven (its copy will not be carried over): LOCK TABLES … READ failed: {e}");
    }
    locked.is_ok() && restored.is_ok()
}

async fn dump_in_transaction(
    conn: &mut Conn,
    db: &DatabaseInfo,
    sink: &mut PackSink,
    chunking: &Chunking,
    bytes_read: &AtomicU64,
    carry: Option<&dyn TableCarryOver>,
) -> Result<DumpedDatabase> {
    let mut carried = carried_tables(conn, &db.name, carry).await;
    let definitions = read_definitions(conn, &db.name).await?;
    binary_results(conn, true).await?;
    let mut rows = Vec::with_capacity(definitions.tables.len());
    for plan in &definitions.tables {
        rows.push(match carried.remove(&plan.name) {
            Some(earlier) if plan.kind == TableKind::Base => TableContent::Carried(earlier),
            _ if plan.kind == TableKind::Base => TableContent::Read(
                read_rows(
                    conn,
                    &db.name,
                    plan,
                    &KeyRange::whole(),
                    sink,
                    chunking,
                    bytes_read,
                )
                .await?,
            ),
            _ => TableContent::Read(StoredRows::default()),
        });
    }
    binary_results(conn, false).await?;
    store_trees(sink, db, definitions, rows).await
}

/// Rows as the bytes stored, without conversion to the connection character set (`on`), or
/// back to the utf8mb4 text results definitions are read with.
pub(crate) async fn binary_results(conn: &mut Conn, on: bool) -> Result<()> {
    let (statement, what) = if on {
        (
            "SET character_set_results = NULL",
            "switching to binary results",
        )
    } else {
        (
            "SET character_set_results = utf8mb4",
            "switching back to text results",
        )
    };
    conn.query_drop(statement)
        .await
        .map_err(|e| mysql_error(e, what))
}

/// Read the definitions of every table and stored object of `name`, in the utf8mb4 session
/// the connection was set up with, inside the caller's snapshot transaction.
pub(crate) async fn read_definitions(conn: &mut Conn, name: &str) -> Result<Definitions> {
    let mut warnings = Vec::new();
    let listed: Vec<(String, String, Option<String>)> = conn
        .exec(
            "SELECT TABLE_NAME, TABLE_TYPE, ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? \
             AND TABLE_TYPE IN ('BASE TABLE', 'SEQUENCE', 'SYSTEM VERSIONED') ORDER BY TABLE_NAME",
            (name,),
        )
        .await
        .map_err(|e| mysql_error(e, &format!("listing tables of {name}")))?;

    let mut columns_by_table = catalog::columns_by_table(conn, name).await?;
    let mut keys_by_table = catalog::primary_keys_by_table(conn, name).await?;
    let mut plans = Vec::with_capacity(listed.len());
    for (table, table_type, engine) in listed {
        let is_sequence = table_type.eq_ignore_ascii_case("SEQUENCE");
        let create_sql = catalog::create_table(conn, name, &table, is_sequence).await?;
        if is_sequence {
            let next: Option<String> = conn
                .query_first(format!(
                    "SELECT CAST(next_not_cached_value AS CHAR) FROM {}",
                    qualified(name, &table)
                ))
                .await
                .map_err(|e| {
                    mysql_error(e, &format!("reading sequence {}", qualified(name, &table)))
                })?;
            plans.push(TablePlan {
                name: table,
                kind: TableKind::Sequence,
                create_sql,
                columns: Vec::new(),
                kinds: Vec::new(),
                key_columns: Vec::new(),
                sequence_next: next,
            });
            continue;
        }
        if let Some(engine) = engine.filter(|e| !is_transactional(e)) {
            warnings.push(format!(
                "table {table} uses the {engine} engine, which the consistent snapshot does not cover"
            ));
        }
        let listed_columns = columns_by_table.remove(&table).unwrap_or_default();
        check_columns_visible(name, &table, &create_sql, &listed_columns)?;
        let columns: Vec<_> = listed_columns
            .into_iter()
            .filter(|c| c.storage == ColumnStorage::Stored)
            .collect();
        if columns.is_empty() {
            return Err(Error::new(
                ErrorKind::Mysql,
                format!(
                    "table {} has no stored column to read (every column is generated)",
                    qualified(name, &table)
                ),
            )
            .with_hint("such a table cannot be dumped row by row; exclude its database or add a stored column"));
        }
        let key_columns = keys_by_table.remove(&table).unwrap_or_default();
        plans.push(TablePlan {
            name: table,
            kind: TableKind::Base,
            create_sql,
            kinds: columns
                .iter()
                .map(|c| ColumnKind::from_data_type(&c.data_type))
                .collect(),
            columns: columns.into_iter().map(|c| c.name).collect(),
            key_columns,
            sequence_next: None,
        });
    }
    let objects = catalog::stored_objects(conn, name).await?;
    Ok(Definitions {
        tables: plans,
        objects,
        warnings,
    })
}

/// Store the table trees (rows of each table of `definitions`, in order) and the database
/// tree of `db`.
pub(crate) async fn store_trees(
    sink: &mut PackSink,
    db: &DatabaseInfo,
    definitions: Definitions,
    contents: Vec<TableContent>,
) -> Result<DumpedDatabase> {
    let Definitions {
        tables: plans,
        objects,
        warnings,
    } = definitions;
    let mut tables = Vec::with_capacity(plans.len());
    let mut total_rows = 0;
    let mut total_bytes = 0;
    let mut tables_carried = 0;
    for (plan, content) in plans.into_iter().zip(contents) {
        let stored = match content {
            TableContent::Read(stored) => stored,
            TableContent::Carried(earlier) => {
                total_rows += earlier.rows;
                total_bytes += earlier.bytes;
                tables_carried += 1;
                tables.push(TableRef {
                    name: plan.name,
                    ..earlier
                });
                continue;
            }
        };
        total_rows += stored.rows;
        total_bytes += stored.bytes;
        let tree = TableTree {
            version: 1,
            name: plan.name.clone(),
            kind: plan.kind,
            create_sql: plan.create_sql,
            columns: plan.columns,
            key_columns: plan.key_columns,
            sequence_next: plan.sequence_next,
            chunks: stored.chunks,
        };
        let json = serde_json::to_vec(&tree)
            .map_err(|e| Error::invalid("encoding table tree").with_source(e))?;
        let id = sink.add(BlobKind::Tree, json).await?;
        tables.push(TableRef {
            name: plan.name,
            tree: id,
            rows: stored.rows,
            bytes: stored.bytes,
            read_at: None,
        });
    }
    let tree = DatabaseTree {
        version: 1,
        name: db.name.clone(),
        charset: db.charset.clone(),
        collation: db.collation.clone(),
        tables,
        views: objects.views,
        routines: objects.routines,
        triggers: objects.triggers,
        events: objects.events,
        warnings,
    };
    let json = serde_json::to_vec(&tree)
        .map_err(|e| Error::invalid("encoding database tree").with_source(e))?;
    let content = sink.content_id(&tree.content_bytes()?);
    let id = sink.add(BlobKind::Tree, json).await?;
    Ok(DumpedDatabase {
        position_proven: false,
        log_position: None,
        content,
        table_trees: tree
            .tables
            .iter()
            .map(|t| (t.name.clone(), t.tree))
            .collect(),
        tree: id,
        tables: tree.tables.len() as u64,
        rows: total_rows,
        bytes: total_bytes,
        tables_carried,
    })
}

/// Refuse to dump a table whose columns the account cannot all see. `information_schema.COLUMNS`
/// lists only the columns the account has some privilege on (column-level grants), and nothing
/// at all for a table dropped or altered since it was listed; `SHOW CREATE TABLE` shows every
/// column. A column missing from the list would be restored as its default: silent data loss.
fn check_columns_visible(
    db: &str,
    table: &str,
    create_sql: &str,
    listed: &[ColumnInfo],
) -> Result<()> {
    let defined = crate::sql::create_table_columns(create_sql);
    let missing: Vec<&str> = defined
        .iter()
        .filter(|d| !listed.iter().any(|c| c.name.eq_ignore_ascii_case(d)))
        .map(String::as_str)
        .collect();
    if listed.is_empty() || !missing.is_empty() {
        let what = if listed.is_empty() {
            "information_schema.COLUMNS lists no column".to_string()
        } else {
            format!(
                "information_schema.COLUMNS does not list column(s) {}",
                missing.join(", ")
            )
        };
        return Err(Error::new(
            ErrorKind::Mysql,
            format!("table {}: {what}", qualified(db, table)),
        )
        .transient(true)
        .with_hint(
            "grant the backup account SELECT on the whole table (column-level privileges hide columns), \
             or retry if the table was being altered",
        ));
    }
    Ok(())
}

fn is_transactional(engine: &str) -> bool {
    matches!(
        engine.to_ascii_lowercase().as_str(),
        "innodb" | "rocksdb" | "tokudb" | "ndbcluster" | "sequence"
    )
}

/// Read the rows of `plan` within `range`, in key order, cutting them into chunks from a fresh
/// chunker (so a range boundary is a chunk boundary).
pub(crate) async fn read_rows(
    conn: &mut Conn,
    db: &str,
    plan: &TablePlan,
    range: &KeyRange,
    sink: &mut PackSink,
    chunking: &Chunking,
    bytes_read: &AtomicU64,
) -> Result<StoredRows> {
    let table = qualified(db, &plan.name);
    let order = if plan.key_columns.is_empty() {
        String::new()
    } else {
        format!(" ORDER BY {}", column_list(&plan.key_columns))
    };
    let key_positions: Vec<usize> = plan
        .key_columns
        .iter()
        .filter_map(|k| plan.columns.iter().position(|c| c == k))
        .collect();
    let filter = range
        .condition(&plan.key_columns)
        .map(|c| format!(" WHERE {c}"))
        .unwrap_or_default();
    let select = format!(
        "SELECT {} FROM {table}{filter}{order}",
        column_list(&plan.columns)
    );
    let context = || format!("reading rows of {table}");
    // The binary protocol returns FLOAT/DOUBLE as IEEE values, not as lossy text.
    let mut result = conn
        .exec_iter(select, ())
        .await
        .map_err(|e| mysql_error(e, &context()))?;
    let decoder = row_decoder(result.columns_ref(), &plan.kinds, &table)?;
    let mut chunker = RowChunker::new(chunking.gear.clone(), chunking.params);
    let mut chunks = Vec::new();
    let mut first_key: Option<Vec<String>> = None;
    let mut row_text = Vec::with_capacity(4096);
    let mut value_starts = Vec::with_capacity(plan.columns.len() + 1);
    let (mut rows, mut bytes) = (0u64, 0u64);
    while let Some(packet) = result
        .next_row_packet()
        .await
        .map_err(|e| mysql_error(e, &context()))?
    {
        row_text.clear();
        decoder
            .push_row(&packet, &mut row_text, &mut value_starts)
            .map_err(|what| malformed_row(&table, what))?;
        drop(packet);
        if chunker.buffered() == 0 && !key_positions.is_empty() {
            first_key = Some(
                key_positions
                    .iter()
                    .map(|&i| {
                        String::from_utf8_lossy(RowDecoder::value(&row_text, &value_starts, i))
                            .into_owned()
                    })
                    .collect(),
            );
        }
        rows += 1;
        bytes += row_text.len() as u64;
        bytes_read.fetch_add(row_text.len() as u64, Ordering::Relaxed);
        if let Some(chunk) = chunker.push_row(&row_text) {
            chunks.push(store_chunk(sink, chunk, first_key.take()).await?);
        }
    }
    drop(result);
    if let Some(chunk) = chunker.finish() {
        chunks.push(store_chunk(sink, chunk, first_key.take()).await?);
    }
    Ok(StoredRows {
        chunks,
        rows,
        bytes,
    })
}

/// The decoder for a result's rows; a column the protocol does not define stops the table.
fn row_decoder(
    columns: &[mysql_async::Column],
    kinds: &[ColumnKind],
    table: &str,
) -> Result<RowDecoder> {
    RowDecoder::new(columns, kinds).map_err(|what| {
        Error::new(ErrorKind::Mysql, format!("reading rows of {table}: {what}")).with_hint(
            "report this with the server's version and the table's definition (SHOW CREATE TABLE)",
        )
    })
}

fn malformed_row(table: &str, what: &str) -> Error {
    Error::new(
        ErrorKind::Mysql,
        format!("reading rows of {table}: the server sent a malformed row: {what}"),
    )
    .transient(true)
}

async fn store_chunk(
    sink: &mut PackSink,
    chunk: Chunk,
    first_key: Option<Vec<String>>,
) -> Result<ChunkRef> {
    let id = sink.add(BlobKind::Data, chunk.data).await?;
    Ok(ChunkRef {
        id,
        rows: chunk.rows,
        first_key,
    })
}

/// The rows of `db`.`table` (the columns given, ordered by `order_by`) in coffer's row text
/// (one `(…)` per row, without the newline), exactly as a dump writes them: for handing
/// selected rows back as SQL. The connection's session time zone must be UTC, as during a dump.
pub async fn rows_as_text(
    conn: &mut Conn,
    db: &str,
    table: &str,
    columns: &[String],
    order_by: &[String],
) -> Result<Vec<Vec<u8>>> {
    let mut rows = Vec::new();
    for_each_row_as_text(conn, db, table, columns, order_by, |row| {
        rows.push(row.to_vec());
        Ok(())
    })
    .await?;
    Ok(rows)
}

/// [`rows_as_text`] one row at a time, streamed from the server: memory stays at one row
/// whatever the table's size.
pub async fn for_each_row_as_text(
    conn: &mut Conn,
    db: &str,
    table: &str,
    columns: &[String],
    order_by: &[String],
    mut each: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let listed = catalog::columns_by_table(conn, db).await?;
    let info = listed.get(table).ok_or_else(|| {
        Error::not_found(format!("table {} has no columns", qualified(db, table)))
    })?;
    let kinds = columns
        .iter()
        .map(|name| {
            info.iter()
                .find(|c| &c.name == name)
                .map(|c| ColumnKind::from_data_type(&c.data_type))
                .ok_or_else(|| {
                    Error::not_found(format!(
                        "column {name} is missing from {}",
                        qualified(db, table)
                    ))
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let order = if order_by.is_empty() {
        String::new()
    } else {
        format!(" ORDER BY {}", column_list(order_by))
    };
    conn.query_drop("SET character_set_results = NULL")
        .await
        .map_err(|e| mysql_error(e, "switching to binary results"))?;
    let select = format!(
        "SELECT {} FROM {}{order}",
        column_list(columns),
        qualified(db, table)
    );
    let context = || format!("reading rows of {}", qualified(db, table));
    let mut result = conn
        .exec_iter(select, ())
        .await
        .map_err(|e| mysql_error(e, &context()))?;
    let table = qualified(db, table);
    let decoder = row_decoder(result.columns_ref(), &kinds, &table)?;
    let (mut text, mut value_starts) = (Vec::new(), Vec::new());
    while let Some(packet) = result
        .next_row_packet()
        .await
        .map_err(|e| mysql_error(e, &context()))?
    {
        text.clear();
        decoder
            .push_row(&packet, &mut text, &mut value_starts)
            .map_err(|what| malformed_row(&table, what))?;
        if text.last() == Some(&b'\n') {
            text.pop();
        }
        each(&text)?;
    }
    drop(result);
    conn.query_drop("SET character_set_results = utf8mb4")
        .await
        .map_err(|e| mysql_error(e, "switching back to text results"))?;
    Ok(())
}
