//! Restoring some tables of a snapshot into a live database without touching its other tables.
//!
//! The tables are created and loaded in a private staging database, their triggers tried
//! there, and then moved into the target with one `RENAME TABLE`. Foreign keys are left out of
//! the staged tables and added after the move: a constraint created in the staging database
//! would keep referencing that database's (absent) parent tables after the move, and
//! constraint names are unique per database. They are added with `FOREIGN_KEY_CHECKS = 0`, as
//! the rows of a consistent snapshot were loaded; the live parent rows are not checked.
//!
//! A table restored under another name (`--into-table`) is a copy for comparing: it gets its
//! columns, keys and rows but neither foreign keys nor triggers, whose names belong to the
//! original.
//!
//! A target table that exists is refused before anything is written: replacing a live table
//! would also re-point the foreign keys of the tables that reference it, which this release
//! does not do (restore it beside the live one with `--into-table` and swap by hand).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::server::{
    RestoreStats, check_plan_is_readable, create_staging, database_exists, drop_object,
    drop_staging, exec, load_rows, prepare_session, random_tag, run_statement,
};
use super::{RestorePlan, RestoreScope, Statement};
use crate::error::{Error, ErrorKind, Result};
use crate::repo::Repository;
use crate::repo::index::Index;
use crate::repo::tree::ObjectKind;
use crate::source::mysql::{MysqlTarget, mysql_error};
use crate::sql::{qualified, quote_ident, split_foreign_keys};

/// Restore the tables of `plan` (narrowed with [`RestorePlan::select_tables`]) into
/// `plan.target_name` on `target`, creating that database if it does not exist.
pub async fn restore_tables(
    repo: Arc<Repository>,
    index: Arc<Index>,
    plan: Arc<RestorePlan>,
    target: &MysqlTarget,
    jobs: usize,
    chunks_done: Arc<AtomicU64>,
) -> Result<RestoreStats> {
    check_plan_is_readable(&repo, &index, &plan).await?;
    let database = plan.target_name.clone();
    let mut conn = target.connect().await?;
    let database_existed = database_exists(&mut conn, &database).await?;
    if database_existed {
        let taken = existing_tables(&mut conn, &database, &plan.table_targets).await?;
        if !taken.is_empty() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "{} already in database {database} on {}; nothing was written",
                    match taken.as_slice() {
                        [one] => format!("table {one} is"),
                        many => format!("tables {} are", many.join(", ")),
                    },
                    target.describe()
                ),
            )
            .with_hint(
                "restore beside it with --into-table NEW (one table) or into another database with --into DB, \
                 then compare or swap by hand; or drop the live table first",
            ));
        }
    }
    let tag = random_tag()?;
    let staging = create_staging(&mut conn, &plan, &tag).await?;
    let result = async {
        let (rows, fetched) = stage_tables(&repo, &index, &plan, target, &staging, jobs, &chunks_done)
            .await
            .map_err(|e| {
                e.context(format!(
                    "restore into staging database {staging} failed; database {database} was not touched"
                ))
            })?;
        if !database_existed {
            exec(&mut conn, &plan.create_database(false).sql, "creating the database").await?;
        }
        let objects = move_into_place(&mut conn, &plan, &staging, database_existed).await?;
        Ok::<_, Error>(RestoreStats {
            tables: plan.tables.len() as u64,
            rows,
            chunks: chunks_done.load(Ordering::Relaxed),
            bytes_fetched: fetched,
            objects,
            replaced: false,
        })
    }
    .await;
    drop_staging(&mut conn, &staging).await;
    result
}

/// Which of `names` exist in `database` as tables or views (compared by the server, so its
/// `lower_case_table_names` decides).
pub(super) async fn existing_tables(
    conn: &mut Conn,
    database: &str,
    names: &[String],
) -> Result<Vec<String>> {
    let mut taken = Vec::new();
    for name in names {
        let found: Option<String> = conn
            .exec_first(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (database, name),
            )
            .await
            .map_err(|e| mysql_error(e, &format!("checking for table {name} in {database}")))?;
        if let Some(found) = found {
            taken.push(found);
        }
    }
    Ok(taken)
}

/// Create the tables (without foreign keys) in `staging`, load their rows, try their triggers.
async fn stage_tables(
    repo: &Arc<Repository>,
    index: &Arc<Index>,
    plan: &Arc<RestorePlan>,
    target: &MysqlTarget,
    staging: &str,
    jobs: usize,
    chunks_done: &Arc<AtomicU64>,
) -> Result<(u64, u64)> {
    let mut conn = target.connect().await?;
    prepare_session(&mut conn, staging).await?;
    for statement in plan.table_statements() {
        let (without_foreign_keys, _) = split_foreign_keys(&statement.sql);
        run_statement(
            &mut conn,
            &Statement {
                sql: without_foreign_keys,
                ..statement
            },
        )
        .await?;
    }
    let loaded = load_rows(repo, index, plan, target, staging, jobs, chunks_done).await?;
    let mut tried = Vec::new();
    for statement in plan.object_statements_in(staging) {
        run_statement(&mut conn, &statement).await?;
        if let Some(object) = statement.object {
            tried.push(object);
        }
    }
    for (kind, name) in tried.iter().rev() {
        drop_object(&mut conn, *kind, staging, name).await?;
    }
    Ok(loaded)
}

/// Move the staged tables into the target (one `RENAME TABLE`), add their foreign keys and
/// create their triggers; on failure, take back exactly what was added.
async fn move_into_place(
    conn: &mut Conn,
    plan: &RestorePlan,
    staging: &str,
    database_existed: bool,
) -> Result<u64> {
    let database = &plan.target_name;
    let renames: Vec<String> = plan
        .tables
        .iter()
        .zip(&plan.table_targets)
        .map(|(_, name)| {
            format!(
                "{} TO {}",
                qualified(staging, name),
                qualified(database, name)
            )
        })
        .collect();
    exec(
        conn,
        &format!("RENAME TABLE {}", renames.join(", ")),
        "moving the restored tables into place",
    )
    .await
    .map_err(|e| e.context(format!("database {database} was not changed")))?;
    let mut created = Vec::new();
    let finished = async {
        prepare_session(conn, database).await?;
        // A renamed copy sits beside its original, whose constraint names it would repeat.
        let renamed = matches!(plan.scope, RestoreScope::Tables { renamed: true });
        for (table, name) in plan
            .tables
            .iter()
            .zip(&plan.table_targets)
            .filter(|_| !renamed)
        {
            let (_, foreign_keys) = split_foreign_keys(&plan.create_table_sql(table, name));
            if foreign_keys.is_empty() {
                continue;
            }
            let adds: Vec<String> = foreign_keys.iter().map(|k| format!("ADD {k}")).collect();
            exec(
                conn,
                &format!("ALTER TABLE {} {}", quote_ident(name), adds.join(", ")),
                &format!("adding the foreign keys of table {name}"),
            )
            .await?;
        }
        for statement in plan.object_statements() {
            run_statement(conn, &statement).await?;
            if let Some(object) = statement.object {
                created.push(object);
            }
        }
        Ok::<_, Error>(())
    }
    .await;
    match finished {
        Ok(()) => Ok(created.len() as u64),
        Err(e) => {
            let undone = take_back(conn, plan, staging, &created, database_existed).await;
            Err(e.context(match undone {
                Ok(()) if database_existed => format!(
                    "the restored tables could not be completed and were removed again; database {database} is as it was"
                ),
                Ok(()) => format!("database {database} could not be completed and was removed again"),
                Err(cleanup) => format!(
                    "the restored tables could not be completed, and removing them failed too ({cleanup}): drop {} in {database} by hand",
                    plan.table_targets.join(", ")
                ),
            }))
        }
    }
}

/// Remove what [`move_into_place`] added: triggers created, tables moved in (back into the
/// staging database, dropped with it), the database if this restore created it.
async fn take_back(
    conn: &mut Conn,
    plan: &RestorePlan,
    staging: &str,
    created: &[(ObjectKind, String)],
    database_existed: bool,
) -> Result<()> {
    let database = &plan.target_name;
    for (kind, name) in created.iter().rev() {
        drop_object(conn, *kind, database, name).await?;
    }
    if !database_existed {
        return exec(
            conn,
            &format!("DROP DATABASE {}", quote_ident(database)),
            "dropping the half-created database",
        )
        .await;
    }
    let renames: Vec<String> = plan
        .table_targets
        .iter()
        .map(|name| {
            format!(
                "{} TO {}",
                qualified(database, name),
                qualified(staging, name)
            )
        })
        .collect();
    exec(
        conn,
        &format!("RENAME TABLE {}", renames.join(", ")),
        "moving the restored tables out again",
    )
    .await
}
