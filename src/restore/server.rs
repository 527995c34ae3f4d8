//! Restoring a [`RestorePlan`] into a live server, loading chunks over several connections.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::sync::Mutex;

use super::{LOAD_SESSION, RestorePlan, Statement};
use crate::error::{Error, ErrorKind, Result};
use crate::repo::Repository;
use crate::repo::index::Index;
use crate::source::mysql::{MysqlTarget, mysql_error};
use crate::sql::quote_ident;

/// What a restore did.
#[derive(Debug, Clone, Default)]
pub struct RestoreStats {
    pub tables: u64,
    pub rows: u64,
    pub chunks: u64,
    /// Bytes read from the repository for this database.
    pub bytes_fetched: u64,
    pub objects: u64,
}

/// Options for loading into a server.
#[derive(Debug, Clone)]
pub struct ServerRestoreOptions {
    /// Drop an existing database of the target name first.
    pub drop_existing: bool,
    /// Connections loading rows at once.
    pub jobs: usize,
}

/// Restore `plan` into the server at `target`.
pub async fn restore_to_server(
    repo: Arc<Repository>,
    index: Arc<Index>,
    plan: Arc<RestorePlan>,
    target: &MysqlTarget,
    options: &ServerRestoreOptions,
    chunks_done: Arc<AtomicU64>,
) -> Result<RestoreStats> {
    let name = &plan.target_name;
    let mut conn = target.connect().await?;
    let exists: Option<String> = conn
        .exec_first(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (name,),
        )
        .await
        .map_err(|e| mysql_error(e, "checking the target database"))?;
    if exists.is_some() {
        if !options.drop_existing {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("database {name} already exists on {}", target.describe()),
            )
            .with_hint(
                "restore under another name with --into NAME, or replace it with --drop-existing",
            ));
        }
        exec(
            &mut conn,
            &format!("DROP DATABASE {}", quote_ident(name)),
            "dropping the existing database",
        )
        .await?;
    }
    exec(
        &mut conn,
        &plan.create_database(false).sql,
        "creating the database",
    )
    .await?;
    prepare_session(&mut conn, name).await?;
    let mut stats = RestoreStats {
        tables: plan.tables.len() as u64,
        ..Default::default()
    };
    for statement in plan.table_statements() {
        run_statement(&mut conn, &statement).await?;
    }

    let max_len = statement_limit(&mut conn).await?;
    let queue = Arc::new(Mutex::new(
        plan.data_items().into_iter().collect::<VecDeque<_>>(),
    ));
    let fetched = Arc::new(AtomicU64::new(0));
    let rows = Arc::new(AtomicU64::new(0));
    let mut loaders = tokio::task::JoinSet::new();
    for _ in 0..options.jobs.max(1) {
        let (repo, index, plan, queue) = (
            Arc::clone(&repo),
            Arc::clone(&index),
            Arc::clone(&plan),
            Arc::clone(&queue),
        );
        let (fetched, rows, chunks_done, target) = (
            Arc::clone(&fetched),
            Arc::clone(&rows),
            Arc::clone(&chunks_done),
            target.clone(),
        );
        loaders.spawn(async move {
            let mut conn = target.connect().await?;
            prepare_session(&mut conn, &plan.target_name).await?;
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
                for insert in plan.insert_statements(item.table, &data, max_len)? {
                    conn.query_drop(insert).await.map_err(|e| {
                        let hint =
                            "check the privileges of the restoring account and max_allowed_packet";
                        mysql_error(
                            e,
                            &format!(
                                "loading rows into {}.{}",
                                quote_ident(&plan.target_name),
                                quote_ident(table)
                            ),
                        )
                        .with_hint(hint)
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
    stats.rows = rows.load(Ordering::Relaxed);
    stats.bytes_fetched = fetched.load(Ordering::Relaxed);
    stats.chunks = chunks_done.load(Ordering::Relaxed);

    for statement in plan.object_statements() {
        run_statement(&mut conn, &statement).await?;
        stats.objects += 1;
    }
    Ok(stats)
}

async fn exec(conn: &mut Conn, sql: &str, what: &str) -> Result<()> {
    conn.query_drop(sql).await.map_err(|e| mysql_error(e, what))
}

async fn prepare_session(conn: &mut Conn, db: &str) -> Result<()> {
    exec(
        conn,
        &format!("USE {}", quote_ident(db)),
        "selecting the target database",
    )
    .await?;
    for statement in LOAD_SESSION {
        exec(conn, statement, "setting up the restore session").await?;
    }
    Ok(())
}

/// Largest INSERT to send: half of `max_allowed_packet`, at most 8 MiB.
async fn statement_limit(conn: &mut Conn) -> Result<usize> {
    let max: Option<u64> = conn
        .query_first("SELECT @@max_allowed_packet")
        .await
        .map_err(|e| mysql_error(e, "reading max_allowed_packet"))?;
    Ok(usize::try_from(max.unwrap_or(4 << 20) / 2)
        .unwrap_or(usize::MAX)
        .clamp(64 << 10, 8 << 20))
}

async fn run_statement(conn: &mut Conn, statement: &Statement) -> Result<()> {
    for set in RestorePlan::session_for(statement) {
        exec(conn, &set, "setting the object's session").await?;
    }
    let head: String = statement.sql.chars().take(80).collect();
    conn.query_drop(&statement.sql).await.map_err(|e| {
        let definer = matches!(&e, mysql_async::Error::Server(s) if s.code == 1227 || s.code == 1449);
        let err = mysql_error(e, &format!("running `{head}…`"));
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
