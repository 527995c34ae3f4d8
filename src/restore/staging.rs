//! What every way of restoring into a server shares: the staging database a restore loads into
//! (`coffer_restore_<tag>`), the loaders that fill it from the repository, the session they run
//! in, the trial of stored objects there, and the options and statistics of a restore.
//! [`super::server`] (a whole database, then the swap), [`super::tables`], [`super::matching`],
//! [`super::history`] and [`super::staged`] build on it; it depends on none of them.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::stream::{self, StreamExt};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::sync::Mutex;

use super::{LOAD_SESSION, LoadLimits, RestorePlan, Statement};
use crate::error::{Error, ErrorKind, Result};
use crate::repo::index::Index;
use crate::repo::tree::ObjectKind;
use crate::repo::{Repository, paths};
use crate::source::mysql::{
    MysqlTarget, is_mariadb, mysql_error, transaction_retrying_lock_conflicts,
};
use crate::sql::{qualified, quote_ident};

/// What a restore did.
#[derive(Debug, Clone, Default)]
pub struct RestoreStats {
    pub tables: u64,
    pub rows: u64,
    pub chunks: u64,
    /// Bytes read from the repository for this database.
    pub bytes_fetched: u64,
    pub objects: u64,
    /// Whether an existing database was replaced.
    pub replaced: bool,
    /// What was replayed from the archived binary log onto the copy (`restore --at`).
    pub replay: Option<crate::pitr::replay::ReplayReport>,
}

/// Options for loading into a server.
#[derive(Debug, Clone)]
pub struct ServerRestoreOptions {
    /// Replace an existing database of the target name (swapped in only once all is loaded).
    pub drop_existing: bool,
    /// Connections loading rows at once.
    pub jobs: usize,
    /// Replay the archived binary log onto the copy before it is swapped in (`restore --at`;
    /// whole databases only).
    pub replay: Option<Arc<crate::pitr::replay::ReplayPlan>>,
    /// The staging database's tag ([`new_staging_tag`]), when the caller must know it before
    /// the restore starts (an estate restore records it, so that a resumed run drops what a
    /// killed one left); otherwise a random one.
    pub staging_tag: Option<String>,
}

impl ServerRestoreOptions {
    /// The staging tag given, or a new random one.
    pub(super) fn staging_tag_or_new(&self) -> Result<String> {
        match &self.staging_tag {
            Some(tag) => Ok(tag.clone()),
            None => random_tag(),
        }
    }
}

/// A new tag for a staging database `coffer_restore_<tag>` ([`staging_database`]).
pub fn new_staging_tag() -> Result<String> {
    random_tag()
}

/// The staging database a restore with `tag` loads into.
pub fn staging_database(tag: &str) -> String {
    format!("coffer_restore_{tag}")
}

/// Drop the staging database of `tag` if a restore that was stopped left it behind.
pub async fn drop_leftover_staging(target: &MysqlTarget, tag: &str) -> Result<()> {
    let mut conn = target.connect().await?;
    drop_staging(&mut conn, &staging_database(tag)).await;
    let _ = conn.disconnect().await;
    Ok(())
}

/// Create the private staging database `coffer_restore_<tag>` with the snapshot's character set.
pub(super) async fn create_staging(
    conn: &mut Conn,
    plan: &RestorePlan,
    tag: &str,
) -> Result<String> {
    let staging = staging_database(tag);
    exec(
        conn,
        &plan.create_database_named(&staging, false).sql,
        "creating the staging database",
    )
    .await
    .map_err(|e| {
        e.with_hint(
            "the restoring account needs to create and drop the staging databases coffer_restore_% \
             (CREATE and DROP on them, or globally)",
        )
    })?;
    Ok(staging)
}

/// Drop the staging database; a failure is only reported, the restore's outcome stands.
pub(super) async fn drop_staging(conn: &mut Conn, staging: &str) {
    if let Err(e) = exec(
        conn,
        &format!("DROP DATABASE IF EXISTS {}", quote_ident(staging)),
        "dropping the staging database",
    )
    .await
    {
        tracing::warn!(database = %staging, "could not drop the staging database; drop it by hand: {e}");
    }
}

/// Every chunk the plan needs is indexed and its pack is in storage: checked before the server
/// is touched, so a repository that lost a pack fails the restore at once.
pub(super) async fn check_plan_is_readable(
    repo: &Repository,
    index: &Index,
    plan: &RestorePlan,
) -> Result<()> {
    let mut packs = HashSet::new();
    for table in &plan.tables {
        for chunk in &table.chunks {
            let location = index.get(&chunk.id).ok_or_else(|| {
                Error::corrupt(format!(
                    "table {}: chunk {} is not in the index; nothing was restored",
                    table.name,
                    chunk.id.short()
                ))
                .with_hint("run `coffer check`; restore from another snapshot")
            })?;
            packs.insert(location.pack);
        }
    }
    let existence: Vec<_> = stream::iter(packs)
        .map(|pack| async move {
            let exists = repo.storage().exists(&paths::pack(&pack)).await;
            (pack, exists)
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for (pack, exists) in existence {
        if !exists? {
            return Err(Error::corrupt(format!(
                "pack {} holding rows of database {} is missing from storage; nothing was restored",
                pack.short(),
                plan.source_name
            ))
            .with_hint("run `coffer check`; restore from another snapshot"));
        }
    }
    Ok(())
}

/// Replay the archived binary log onto the staging copy, when the restore asks (`--at`): after
/// the rows are loaded and before any trigger exists there.
pub(super) async fn replay_onto(
    repo: &Arc<Repository>,
    index: &Arc<Index>,
    options: &ServerRestoreOptions,
    target: &MysqlTarget,
    staging: &str,
) -> Result<Option<crate::pitr::replay::ReplayReport>> {
    let Some(replay) = &options.replay else {
        return Ok(None);
    };
    let mut conn = target.connect().await?;
    let report = crate::pitr::replay::replay(repo, index, replay, &mut conn, staging).await?;
    let _ = conn.disconnect().await;
    Ok(Some(report))
}

/// A trial of the plan's views, routines and triggers in the staging database, dropped again: a
/// missing privilege, a definer the account may not use or a reference to a database that is
/// gone shows here, while the target is still untouched. Events are left out: one due now
/// would run.
pub(super) async fn try_objects(conn: &mut Conn, plan: &RestorePlan, staging: &str) -> Result<()> {
    let mut tried = Vec::new();
    for statement in plan.object_statements_in(staging) {
        let Some((kind, name)) = statement.object.clone() else {
            continue;
        };
        if kind == ObjectKind::Event {
            continue;
        }
        run_statement(conn, &statement).await?;
        tried.push((kind, name));
    }
    // Views may depend on the views before them: drop in reverse order.
    for (kind, name) in tried.iter().rev() {
        drop_object(conn, *kind, staging, name).await?;
    }
    Ok(())
}

/// Load every data chunk of `plan` into the tables already created in `database`, over `jobs`
/// connections; returns the rows loaded and the bytes of blobs fetched.
pub(super) async fn load_rows(
    repo: &Arc<Repository>,
    index: &Arc<Index>,
    plan: &Arc<RestorePlan>,
    target: &MysqlTarget,
    database: &str,
    jobs: usize,
    chunks_done: &Arc<AtomicU64>,
) -> Result<(u64, u64)> {
    let queue = Arc::new(Mutex::new(
        plan.data_items_striped(jobs)
            .into_iter()
            .collect::<VecDeque<_>>(),
    ));
    let fetched = Arc::new(AtomicU64::new(0));
    let rows = Arc::new(AtomicU64::new(0));
    let mut loaders = tokio::task::JoinSet::new();
    for _ in 0..jobs.max(1) {
        let (repo, index, plan, queue) = (
            Arc::clone(repo),
            Arc::clone(index),
            Arc::clone(plan),
            Arc::clone(&queue),
        );
        let (fetched, rows, chunks_done, target) = (
            Arc::clone(&fetched),
            Arc::clone(&rows),
            Arc::clone(chunks_done),
            target.clone(),
        );
        let database = database.to_string();
        loaders.spawn(async move {
            let mut conn = target.connect().await?;
            // Read on each loader's own connection: a connection of its own for it was one
            // more handshake per database (an estate restores thousands).
            let limits = load_limits(&mut conn).await?;
            prepare_session(&mut conn, &database).await?;
            exec(&mut conn, "SET NAMES binary", "switching to binary input").await?;
            loop {
                let Some(item) = queue.lock().await.pop_front() else {
                    break;
                };
                let data = repo.read_blob(&index, &item.chunk.id).await?;
                fetched.fetch_add(
                    index.get(&item.chunk.id).map_or(0, |l| u64::from(l.length)),
                    Ordering::Relaxed,
                );
                let table = &plan.tables[item.table].name;
                // Each INSERT commits on its own: measured faster than transactions of
                // several MiB (bench/README.md), and a lost lock conflict costs one statement.
                for insert in plan.insert_statements(item.table, &data, &limits)? {
                    transaction_retrying_lock_conflicts(&mut conn, &[insert], || {
                        format!("loading rows of table {}", quote_ident(table))
                    })
                    .await
                    .map_err(|e| {
                        e.with_hint(
                            "check the privileges of the restoring account and max_allowed_packet",
                        )
                    })?;
                }
                rows.fetch_add(item.chunk.rows, Ordering::Relaxed);
                chunks_done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, Error>(())
        });
    }
    while let Some(joined) = loaders.join_next().await {
        joined.map_err(|e| {
            Error::new(ErrorKind::Mysql, "a restore worker stopped unexpectedly").with_source(e)
        })??;
    }
    Ok((
        rows.load(Ordering::Relaxed),
        fetched.load(Ordering::Relaxed),
    ))
}

/// The server refused a DEFINER the account may not set (errors 1227 and 1449).
pub(super) fn definer_refused(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if s.code == 1227 || s.code == 1449)
}

pub(super) async fn database_exists(conn: &mut Conn, name: &str) -> Result<bool> {
    let exists: Option<String> = conn
        .exec_first(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (name,),
        )
        .await
        .map_err(|e| mysql_error(e, "checking the target database"))?;
    Ok(exists.is_some())
}

pub(super) async fn drop_object(
    conn: &mut Conn,
    kind: ObjectKind,
    db: &str,
    name: &str,
) -> Result<()> {
    exec(
        conn,
        &format!("DROP {} IF EXISTS {}", kind.keyword(), qualified(db, name)),
        &format!(
            "dropping {} {}",
            kind.keyword().to_lowercase(),
            qualified(db, name)
        ),
    )
    .await
}

/// 16 random hex digits naming this restore's staging database and set-aside tables.
pub(super) fn random_tag() -> Result<String> {
    let mut bytes = [0u8; 8];
    crate::crypto::fill_random(&mut bytes)?;
    Ok(hex::encode(bytes))
}

pub(super) async fn exec(conn: &mut Conn, sql: &str, what: &str) -> Result<()> {
    conn.query_drop(sql).await.map_err(|e| mysql_error(e, what))
}

pub(super) async fn prepare_session(conn: &mut Conn, db: &str) -> Result<()> {
    exec(
        conn,
        &format!("USE {}", quote_ident(db)),
        "selecting the target database",
    )
    .await?;
    for statement in LOAD_SESSION {
        exec(conn, statement, "setting up the restore session").await?;
    }
    // MySQL 8 (Azure) may require a primary key on every new table; a snapshot can hold
    // tables without one. Turning the check off needs SESSION_VARIABLES_ADMIN, which Azure's
    // admin has; without it such a table fails with the server's own error 3750.
    if !is_mariadb(conn) && conn.server_version() >= (8, 0, 13) {
        let _ = conn
            .query_drop("SET SESSION sql_require_primary_key = 0")
            .await;
    }
    Ok(())
}

/// Statements at most half of `max_allowed_packet` (at most 8 MiB); values up to all of it.
pub(super) async fn load_limits(conn: &mut Conn) -> Result<LoadLimits> {
    let max: Option<u64> = conn
        .query_first("SELECT @@max_allowed_packet")
        .await
        .map_err(|e| mysql_error(e, "reading max_allowed_packet"))?;
    let max = usize::try_from(max.unwrap_or(4 << 20)).unwrap_or(usize::MAX);
    Ok(LoadLimits {
        statement: (max / 2).clamp(64 << 10, 8 << 20),
        value: max,
    })
}

pub(super) async fn run_statement(conn: &mut Conn, statement: &Statement) -> Result<()> {
    for set in RestorePlan::session_for(statement) {
        exec(conn, &set, "setting the object's session").await?;
    }
    let what = match &statement.object {
        Some((kind, name)) => format!(
            "creating {} {}",
            kind.keyword().to_lowercase(),
            quote_ident(name)
        ),
        None => format!(
            "running `{}…`",
            statement.sql.chars().take(80).collect::<String>()
        ),
    };
    conn.query_drop(&statement.sql).await.map_err(|e| {
        let definer = definer_refused(&e);
        let err = mysql_error(e, &what);
        if definer {
            err.with_hint("the restoring account may not create objects for another DEFINER: add --skip-definer")
        } else {
            err
        }
    })?;
    for reset in RestorePlan::session_reset_after(statement) {
        exec(conn, reset, "resetting the session").await?;
    }
    Ok(())
}
