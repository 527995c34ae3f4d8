//! Putting back only the rows of one table that match a `--where` expression, into the live
//! table or as SQL.
//!
//! The server decides which rows match, never coffer: the chunks that can hold them
//! ([`super::pin`]) are loaded into a copy of the table as it was, in a private staging
//! database, and the rows for which the expression is not true are deleted there. So
//! collations, dates, DECIMAL, NULL and functions behave exactly as in `SELECT … WHERE` on the
//! table at the snapshot's time. (A `TEMPORARY` table would vanish with a crashed session, but
//! cannot carry every table shape: MySQL refuses foreign keys, partitions and fulltext indexes
//! on some, so the staging database that whole-database restores use serves here too.)
//!
//! Into the live table, one transaction on a session with every check on (unique and foreign
//! keys, strict mode): `fail` writes nothing if any matching row's key is taken, `skip` inserts
//! only the rows whose key is free, `replace` updates the rows whose key is taken and inserts
//! the rest. Conflicts are judged by the key the snapshot sorted the table by (the primary key,
//! else a unique key); a row that collides on another unique key fails the transaction and
//! nothing is written. A table with neither has nothing to judge conflicts by: its matching rows
//! are inserted. The live table's triggers fire as for any write.
//!
//! With `--at` the staged copy is first taken to the moment by replaying the archived binary
//! log onto it ([`crate::pitr::replay`]), and only then filtered: every chunk is read, since a
//! row may have moved into or out of the condition after the snapshot. A table whose definition
//! changed on the way (replayed DDL) is refused: the rows would no longer fit the live table
//! as the snapshot knew it.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::pin::candidate_chunks;
use super::staging::{
    check_plan_is_readable, create_staging, drop_staging, exec, load_rows, prepare_session,
    random_tag, run_statement,
};
use super::tables::existing_tables;
use super::{RestorePlan, Statement};
use crate::error::{Error, ErrorKind, Result};
use crate::repo::Repository;
use crate::repo::index::Index;
use crate::repo::tree::TableKind;
use crate::source::mysql::dump::for_each_row_as_text;
use crate::source::mysql::{MysqlTarget, mysql_error};
use crate::sql::{column_list, qualified, quote_ident, split_foreign_keys};

/// What to do with a matching row whose key is already in the live table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnConflict {
    /// Overwrite the live row with the snapshot's.
    Replace,
    /// Keep the live row.
    Skip,
    /// Write nothing at all.
    Fail,
}

/// Where the matching rows go.
pub enum RowsDestination<'a> {
    /// Into the live table `plan.target_name`.`table_targets[0]`.
    LiveTable(OnConflict),
    /// As INSERT statements, naming the table qualified with `database` if given.
    Sql {
        out: &'a mut dyn Write,
        database: Option<String>,
    },
}

/// What a rows restore did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RowsOutcome {
    pub matched: u64,
    pub inserted: u64,
    pub replaced: u64,
    pub skipped: u64,
    pub chunks_read: usize,
    pub chunks_total: usize,
    /// Whether the expression narrowed the chunks read.
    pub pinned: bool,
    /// How the chunks were chosen, in words.
    pub chunk_choice: String,
    pub bytes_fetched: u64,
    /// What was replayed from the archived binary log onto the staged copy (`--at`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<crate::pitr::replay::ReplayReport>,
}

/// Which rows, where to, over how many connections.
pub struct RowsRequest<'a> {
    /// The SQL condition (`--where`).
    pub expression: &'a str,
    pub destination: RowsDestination<'a>,
    /// Connections loading candidate chunks at once.
    pub jobs: usize,
    /// Take the staged copy to a moment first (`restore --at`).
    pub replay: Option<Arc<crate::pitr::replay::ReplayPlan>>,
}

/// The matching rows of the single table of `plan` (see [`RestorePlan::select_tables`]).
pub async fn restore_rows(
    repo: Arc<Repository>,
    index: Arc<Index>,
    plan: &RestorePlan,
    target: &MysqlTarget,
    request: RowsRequest<'_>,
    chunks_done: Arc<AtomicU64>,
) -> Result<RowsOutcome> {
    let RowsRequest {
        expression,
        destination,
        jobs,
        replay,
    } = request;
    let [table] = plan.tables.as_slice() else {
        return Err(Error::invalid("--where selects rows of one table")
            .with_hint("give exactly one --table with --where"));
    };
    if table.kind == TableKind::Sequence {
        return Err(Error::invalid(format!(
            "{} is a sequence, which has no rows to select",
            table.name
        )));
    }
    if expression.trim().is_empty() {
        return Err(Error::invalid("the --where expression is empty")
            .with_hint("give a condition such as \"id IN (4, 7)\", or leave --where out to restore the whole table"));
    }
    let choice = match &replay {
        None => candidate_chunks(table, expression),
        Some(_) => super::pin::ChunkChoice::every_chunk(
            table,
            "the archived binary log is replayed onto the table, so rows may have moved into or out of the condition since the snapshot",
        ),
    };
    let mut narrowed = plan.clone();
    narrowed.tables[0].chunks = choice
        .chunks
        .iter()
        .map(|&i| table.chunks[i].clone())
        .collect();
    let narrowed = Arc::new(narrowed);
    check_plan_is_readable(&repo, &index, &narrowed).await?;
    let database = plan.target_name.as_str();
    let name = plan.table_targets[0].as_str();

    let mut conn = target.connect().await?;
    if matches!(destination, RowsDestination::LiveTable(_))
        && existing_tables(&mut conn, database, &[name.to_string()])
            .await?
            .is_empty()
    {
        return Err(Error::not_found(format!(
            "table {} does not exist on {}; nothing was written",
            qualified(database, name),
            target.describe()
        ))
        .with_hint(format!(
            "restore the whole table with --table {} (without --where), or write the rows as SQL with --to-sql",
            table.name
        )));
    }
    let staging = create_staging(&mut conn, plan, &random_tag()?).await?;
    let result = async {
        let (matched, bytes_fetched, replayed) = stage_matching(
            &repo,
            &index,
            &narrowed,
            target,
            &staging,
            expression,
            jobs,
            replay.as_deref(),
            &chunks_done,
        )
        .await?;
        let mut outcome = RowsOutcome {
            matched,
            chunks_read: choice.chunks.len(),
            chunks_total: table.chunks.len(),
            pinned: choice.pinned,
            chunk_choice: choice.explanation.clone(),
            bytes_fetched,
            replay: replayed,
            ..RowsOutcome::default()
        };
        match destination {
            RowsDestination::LiveTable(policy) => {
                let (inserted, replaced, skipped) =
                    write_live(target, &narrowed, &staging, policy).await?;
                outcome.inserted = inserted;
                outcome.replaced = replaced;
                outcome.skipped = skipped;
            }
            RowsDestination::Sql { out, database } => {
                write_sql(
                    &mut conn,
                    &narrowed,
                    &staging,
                    database.as_deref(),
                    matched,
                    out,
                )
                .await?;
            }
        }
        Ok::<_, Error>(outcome)
    }
    .await;
    drop_staging(&mut conn, &staging).await;
    result
}

/// Load the candidate chunks into a copy of the table in `staging`, replay the archived log
/// onto it if asked, and keep only the rows for which the expression is true; returns (rows
/// kept, bytes fetched, what was replayed).
#[allow(clippy::too_many_arguments)]
async fn stage_matching(
    repo: &Arc<Repository>,
    index: &Arc<Index>,
    plan: &Arc<RestorePlan>,
    target: &MysqlTarget,
    staging: &str,
    expression: &str,
    jobs: usize,
    replay: Option<&crate::pitr::replay::ReplayPlan>,
    chunks_done: &Arc<AtomicU64>,
) -> Result<(u64, u64, Option<crate::pitr::replay::ReplayReport>)> {
    let mut conn = target.connect().await?;
    prepare_session(&mut conn, staging).await?;
    let (staged, condition) = create_copy(&mut conn, plan, staging, expression).await?;
    let (_, fetched) = load_rows(repo, index, plan, target, staging, jobs, chunks_done).await?;
    let replayed = match replay {
        None => None,
        Some(replay) => {
            let mut replay_conn = target.connect().await?;
            let report =
                crate::pitr::replay::replay(repo, index, replay, &mut replay_conn, staging).await?;
            let _ = replay_conn.disconnect().await;
            same_definition_after_replay(&mut conn, plan, staging).await?;
            Some(report)
        }
    };
    keep_matching(&mut conn, &staged, &condition).await?;
    let matched: Option<u64> = conn
        .query_first(format!("SELECT COUNT(*) FROM {staged}"))
        .await
        .map_err(|e| mysql_error(e, "counting the matching rows"))?;
    Ok((matched.unwrap_or(0), fetched, replayed))
}

/// Refuse a staged table whose columns replayed DDL changed: its rows are written with the
/// snapshot's column list (the stored columns; generated ones are computed).
async fn same_definition_after_replay(
    conn: &mut Conn,
    plan: &RestorePlan,
    staging: &str,
) -> Result<()> {
    let (table, name) = (&plan.tables[0], &plan.table_targets[0]);
    let shape = crate::pitr::replay::table_shape(conn, staging, name).await?;
    let columns: Vec<&str> = shape
        .as_ref()
        .map(|s| {
            s.columns
                .iter()
                .filter(|c| !c.generated)
                .map(|c| c.name.as_str())
                .collect()
        })
        .unwrap_or_default();
    if columns != table.columns.iter().map(String::as_str).collect::<Vec<_>>() {
        return Err(Error::invalid(format!(
            "the definition of {} changed between the snapshot and the moment (the archived log holds DDL on it); nothing was written",
            table.name
        ))
        .with_hint(format!(
            "restore the table to the moment beside the live one (--table {} --into-table NEW_NAME, without --where), then take the rows from it",
            table.name
        )));
    }
    Ok(())
}

/// Create an empty copy of the plan's single table in `staging` (without foreign keys, whose
/// references would point into the staging database) and try `expression` on it, so that a
/// syntax error or an unknown column is reported before a single chunk is read. Returns the
/// copy's qualified name and the condition to use (parenthesised on lines of its own, so that a
/// `--` comment inside it ends there).
pub(super) async fn create_copy(
    conn: &mut Conn,
    plan: &RestorePlan,
    staging: &str,
    expression: &str,
) -> Result<(String, String)> {
    let (table, name) = (&plan.tables[0], &plan.table_targets[0]);
    let (without_foreign_keys, _) = split_foreign_keys(&plan.create_table_sql(table, name));
    run_statement(conn, &Statement::plain(without_foreign_keys)).await?;
    let staged = qualified(staging, name);
    let condition = format!("(\n{expression}\n)");
    conn.query_drop(format!("SELECT COUNT(*) FROM {staged} WHERE {condition}"))
        .await
        .map_err(|e| {
            mysql_error(
                e,
                &format!("the --where expression {expression:?} is refused by the server"),
            )
            .with_hint(format!(
                "write a SQL condition over the columns of {}: {}",
                table.name,
                table.columns.join(", ")
            ))
        })?;
    Ok((staged, condition))
}

/// Delete the staged rows for which `condition` is not true (false or NULL), as the server
/// decides.
pub(super) async fn keep_matching(conn: &mut Conn, staged: &str, condition: &str) -> Result<()> {
    exec(
        conn,
        &format!("DELETE FROM {staged} WHERE {condition} IS NOT TRUE"),
        "keeping only the rows the --where expression matches",
    )
    .await
}

/// `l.k1 = s.k1 AND …` over the snapshot's sort key.
fn key_join(keys: &[String]) -> String {
    keys.iter()
        .map(|k| format!("l.{0} = s.{0}", quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Write the staged rows into the live table in one transaction; returns (inserted,
/// replaced, skipped).
async fn write_live(
    target: &MysqlTarget,
    plan: &RestorePlan,
    staging: &str,
    policy: OnConflict,
) -> Result<(u64, u64, u64)> {
    let table = &plan.tables[0];
    let live = qualified(&plan.target_name, &plan.table_targets[0]);
    let staged = qualified(staging, &plan.table_targets[0]);
    let columns = column_list(&table.columns);
    let mut conn = target.connect().await?;
    // A normal session: unique and foreign-key checks on, strict mode, UTC like the staged rows.
    for statement in [
        "SET NAMES utf8mb4",
        "SET SESSION time_zone = '+00:00'",
        "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,STRICT_ALL_TABLES'",
        "SET SESSION FOREIGN_KEY_CHECKS = 1",
        "SET SESSION UNIQUE_CHECKS = 1",
        "START TRANSACTION",
    ] {
        exec(
            &mut conn,
            statement,
            "preparing the session writing the rows",
        )
        .await?;
    }
    let written = write_in_transaction(&mut conn, table, &live, &staged, &columns, policy).await;
    match written {
        Ok(counts) => {
            exec(&mut conn, "COMMIT", "committing the restored rows").await?;
            Ok(counts)
        }
        Err(e) => {
            let rolled_back = conn.query_drop("ROLLBACK").await;
            Err(e.context(match rolled_back {
                Ok(()) => format!("no row of {live} was written"),
                Err(_) => format!(
                    "the transaction writing into {live} was not committed (the server rolls it back when the connection closes)"
                ),
            }))
        }
    }
}

async fn write_in_transaction(
    conn: &mut Conn,
    table: &crate::repo::tree::TableTree,
    live: &str,
    staged: &str,
    columns: &str,
    policy: OnConflict,
) -> Result<(u64, u64, u64)> {
    let keys = &table.key_columns;
    let insert_error = |e: mysql_async::Error| {
        let hint = match &e {
            mysql_async::Error::Server(s) if s.code == 1062 => Some(
                "a matching row collides with a live row on a unique key other than the one conflicts are judged by; \
                 narrow --where or resolve that row first",
            ),
            mysql_async::Error::Server(s) if s.code == 1452 => Some(
                "a restored row references a parent row that is not in the live database: restore the parent rows first",
            ),
            _ => None,
        };
        let err = mysql_error(e, &format!("inserting the restored rows into {live}"));
        match hint {
            Some(h) => err.with_hint(h),
            None => err,
        }
    };
    if keys.is_empty() {
        conn.query_drop(format!(
            "INSERT INTO {live} ({columns}) SELECT {columns} FROM {staged}"
        ))
        .await
        .map_err(insert_error)?;
        return Ok((conn.affected_rows(), 0, 0));
    }
    let join = key_join(keys);
    // Locks the live rows with the keys in question until the commit.
    let conflicting: Vec<String> = conn
        .query(format!(
            "SELECT CONCAT_WS(', ', {}) FROM {staged} s JOIN {live} l ON {join} ORDER BY {} FOR UPDATE",
            keys.iter()
                .map(|k| format!("QUOTE(s.{})", quote_ident(k)))
                .collect::<Vec<_>>()
                .join(", "),
            keys.iter()
                .map(|k| format!("s.{}", quote_ident(k)))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .await
        .map_err(|e| mysql_error(e, &format!("looking for rows of {live} with the same keys")))?;
    let conflicts = conflicting.len() as u64;
    if policy == OnConflict::Fail && conflicts > 0 {
        let shown: Vec<&str> = conflicting.iter().take(5).map(String::as_str).collect();
        return Err(Error::new(
            ErrorKind::AlreadyExists,
            format!(
                "{conflicts} matching rows have keys ({}) that {live} already holds, e.g. ({})",
                keys.join(", "),
                shown.join("), (")
            ),
        )
        .with_hint(
            "choose --on-conflict replace (overwrite them) or --on-conflict skip (keep them)",
        ));
    }
    let mut replaced = 0;
    if policy == OnConflict::Replace && conflicts > 0 {
        let updates: Vec<String> = table
            .columns
            .iter()
            .filter(|c| !keys.contains(c))
            .map(|c| format!("l.{0} = s.{0}", quote_ident(c)))
            .collect();
        if !updates.is_empty() {
            conn.query_drop(format!(
                "UPDATE {live} l JOIN {staged} s ON {join} SET {}",
                updates.join(", ")
            ))
            .await
            .map_err(|e| mysql_error(e, &format!("replacing rows of {live}")))?;
        }
        replaced = conflicts;
    }
    conn.query_drop(format!(
        "INSERT INTO {live} ({columns}) SELECT {columns} FROM {staged} s \
         WHERE NOT EXISTS (SELECT 1 FROM {live} l WHERE {join})",
    ))
    .await
    .map_err(insert_error)?;
    let inserted = conn.affected_rows();
    let skipped = if policy == OnConflict::Skip {
        conflicts
    } else {
        0
    };
    Ok((inserted, replaced, skipped))
}

/// Write the staged rows as INSERT statements a stock client loads.
async fn write_sql(
    conn: &mut Conn,
    plan: &RestorePlan,
    staging: &str,
    database: Option<&str>,
    matched: u64,
    out: &mut dyn Write,
) -> Result<()> {
    let table = &plan.tables[0];
    prepare_session(conn, staging).await?;
    let io = |e: std::io::Error| Error::new(ErrorKind::Storage, "writing the SQL").with_source(e);
    writeln!(
        out,
        "-- {matched} rows of table {} from database {}\n\
         SET NAMES binary;\nSET SESSION time_zone = '+00:00';\n\
         SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,STRICT_ALL_TABLES';",
        table.name, plan.source_name
    )
    .map_err(io)?;
    let limits = super::LoadLimits {
        statement: super::script::SCRIPT_STATEMENT_LIMIT,
        value: super::script::SCRIPT_VALUE_LIMIT,
    };
    // Rows are streamed and written in batches of statements, whatever their number.
    let mut batch: Vec<u8> = Vec::new();
    let write_batch = |batch: &mut Vec<u8>, out: &mut dyn Write| -> Result<()> {
        for insert in plan.insert_statements_into(0, batch, &limits, database)? {
            out.write_all(&insert).map_err(io)?;
            out.write_all(b";\n").map_err(io)?;
        }
        batch.clear();
        Ok(())
    };
    for_each_row_as_text(
        conn,
        staging,
        &plan.table_targets[0],
        &table.columns,
        &table.key_columns,
        |row| {
            batch.extend_from_slice(row);
            batch.push(b'\n');
            if batch.len() >= limits.statement {
                write_batch(&mut batch, out)?;
            }
            Ok(())
        },
    )
    .await?;
    write_batch(&mut batch, out)?;
    writeln!(out, "SET NAMES utf8mb4;").map_err(io)?;
    out.flush().map_err(io)
}
