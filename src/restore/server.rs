//! Restoring a [`RestorePlan`] into a live server without ever leaving the target half-done.
//!
//! 1. **Check**: every chunk is indexed and every pack it lives in exists, before the server is
//!    touched (stored statements were checked when the plan was loaded).
//! 2. **Stage**: tables and rows load into a private staging database (`coffer_restore_<hex>`)
//!    over `jobs` connections; views, routines and triggers are then created there once and
//!    dropped again, as a trial of their privileges, definers and references.
//! 3. **Swap**: one `RENAME TABLE` statement (atomic) moves the target's current tables and
//!    views aside under temporary names (`coffer_old_<hex>_<n>`, in the same database, so
//!    their triggers stay attached) and the staged tables in. Then the target's old triggers,
//!    routines and events are replaced by the snapshot's.
//! 4. **Clean up**: only now are the old tables, views and the staging database dropped.
//!
//! A failure in steps 1 and 2 leaves the target untouched; one in step 3 is rolled back (the
//! old objects are recreated from the definitions read just before, the renames undone). The
//! error says what was and was not changed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::{RestorePlan, RestoreScope, Statement};
use crate::error::{Error, ErrorKind, Result};
use crate::repo::Repository;
use crate::repo::index::Index;
use crate::source::mysql::catalog::{self, StoredObjects};
use crate::source::mysql::{MysqlTarget, mysql_error};
use crate::sql::{qualified, quote_ident, strip_definer};

use super::staging::{
    check_plan_is_readable, create_staging, database_exists, definer_refused, drop_object,
    drop_staging, exec, load_rows, prepare_session, replay_onto, run_statement, try_objects,
};
// The options and statistics of a restore, and its staging database, as this module's API.
pub use super::staging::{
    RestoreStats, ServerRestoreOptions, drop_leftover_staging, new_staging_tag, staging_database,
};

/// Restore `plan` into the server at `target`: the whole database, or the tables a
/// [`RestorePlan::select_tables`] chose ([`super::tables`]).
pub async fn restore_to_server(
    repo: Arc<Repository>,
    index: Arc<Index>,
    plan: Arc<RestorePlan>,
    target: &MysqlTarget,
    options: &ServerRestoreOptions,
    chunks_done: Arc<AtomicU64>,
) -> Result<RestoreStats> {
    if matches!(plan.scope, RestoreScope::Tables { .. }) {
        return super::tables::restore_tables(repo, index, plan, target, options, chunks_done)
            .await;
    }
    check_plan_is_readable(&repo, &index, &plan).await?;
    let name = plan.target_name.clone();
    let mut conn = target.connect().await?;
    super::compat::refuse_incompatible(&mut conn, &plan, &target.describe()).await?;
    let exists = database_exists(&mut conn, &name).await?;
    if exists && !options.drop_existing {
        return Err(Error::new(
            ErrorKind::AlreadyExists,
            format!("database {name} already exists on {}", target.describe()),
        )
        .with_hint(
            "restore under another name with --into NAME, or replace it with --drop-existing",
        ));
    }
    let tag = options.staging_tag_or_new()?;
    let staging = create_staging(&mut conn, &plan, &tag).await?;
    let staged = stage(
        &repo,
        &index,
        &plan,
        target,
        options,
        &staging,
        &chunks_done,
    )
    .await;
    let result = match staged {
        Ok(stats) => swap_in(&mut conn, &plan, &staging, &tag, exists)
            .await
            .map(|objects| RestoreStats {
                objects,
                replaced: exists,
                ..stats
            }),
        Err(e) => Err(e.context(format!(
            "restore into staging database {staging} failed; database {name} was not touched"
        ))),
    };
    drop_staging(&mut conn, &staging).await;
    result
}

/// Load tables and rows into `staging`, then try the stored objects there.
pub(super) async fn stage(
    repo: &Arc<Repository>,
    index: &Arc<Index>,
    plan: &Arc<RestorePlan>,
    target: &MysqlTarget,
    options: &ServerRestoreOptions,
    staging: &str,
    chunks_done: &Arc<AtomicU64>,
) -> Result<RestoreStats> {
    let mut conn = target.connect().await?;
    prepare_session(&mut conn, staging).await?;
    for statement in plan.table_statements() {
        run_statement(&mut conn, &statement).await?;
    }
    let (rows, fetched) = load_rows(
        repo,
        index,
        plan,
        target,
        staging,
        options.jobs,
        chunks_done,
    )
    .await?;
    let replay = replay_onto(repo, index, options, target, staging).await?;
    try_objects(&mut conn, plan, staging).await?;
    Ok(RestoreStats {
        tables: staged_tables(&mut conn, staging).await?.len() as u64,
        rows,
        chunks: chunks_done.load(Ordering::Relaxed),
        bytes_fetched: fetched,
        objects: 0,
        replaced: false,
        replay,
    })
}

/// Move the staged tables into the target and create its objects; returns the number of
/// objects created.
async fn swap_in(
    conn: &mut Conn,
    plan: &RestorePlan,
    staging: &str,
    tag: &str,
    target_exists: bool,
) -> Result<u64> {
    let target = plan.target_name.as_str();
    if !target_exists {
        exec(
            conn,
            &plan.create_database(false).sql,
            "creating the database",
        )
        .await?;
        let moved = move_staged_tables(conn, plan, staging, &[]).await;
        let created = match moved {
            Ok(()) => create_objects(conn, plan).await,
            Err(e) => Err(e),
        };
        return match created {
            Ok(n) => Ok(n),
            Err(e) => {
                let cleanup = exec(
                    conn,
                    &format!("DROP DATABASE {}", quote_ident(target)),
                    "dropping the half-created database",
                )
                .await;
                Err(e.context(match cleanup {
                    Ok(()) => {
                        format!("database {target} could not be completed and was removed again")
                    }
                    Err(_) => format!("database {target} could not be completed; drop it by hand"),
                }))
            }
        };
    }

    // The target's current state, read just before it is changed, for a rollback.
    let old_tables = base_tables_and_views(conn, target).await?;
    let old_objects = catalog::stored_objects(conn, target).await?;
    let old_charset = database_charset(conn, target).await?;
    let aside: Vec<(String, String)> = old_tables
        .iter()
        .enumerate()
        .map(|(n, name)| (name.clone(), format!("coffer_old_{tag}_{n}")))
        .collect();
    move_staged_tables(conn, plan, staging, &aside)
        .await
        .map_err(|e| e.context(format!("database {target} was not changed")))?;
    match replace_objects(conn, plan, &old_objects).await {
        Ok(created) => {
            for (old, temporary) in &aside {
                let is_view = old_objects.views.iter().any(|v| &v.name == old);
                let keyword = if is_view { "VIEW" } else { "TABLE" };
                if let Err(e) = exec(
                    conn,
                    &format!("DROP {keyword} {}", qualified(target, temporary)),
                    "dropping a replaced table",
                )
                .await
                {
                    tracing::warn!(table = %temporary, "could not drop the replaced table {old}; drop it by hand: {e}");
                }
            }
            Ok(created)
        }
        Err(e) => {
            let undone = roll_back(conn, plan, staging, &aside, &old_objects, &old_charset).await;
            Err(match undone {
                Ok(without_definer) if without_definer.is_empty() => e.context(format!(
                    "replacing database {target} failed and was rolled back: it is as it was"
                )),
                Ok(without_definer) => e.context(format!(
                    "replacing database {target} failed and was rolled back, except that {} could only be recreated owned by the restoring account (it lacks SET_USER_ID)",
                    without_definer.join(", ")
                )),
                Err(rollback) => e.context(format!(
                    "replacing database {target} failed, and so did undoing it ({rollback}); its previous tables are kept as coffer_old_{tag}_* in {target}"
                )),
            })
        }
    }
}

/// One atomic `RENAME TABLE`: `aside` (current name, temporary name) within the target first,
/// then every staged table into the target.
async fn move_staged_tables(
    conn: &mut Conn,
    plan: &RestorePlan,
    staging: &str,
    aside: &[(String, String)],
) -> Result<()> {
    let target = &plan.target_name;
    let mut renames: Vec<String> = aside
        .iter()
        .map(|(name, temporary)| {
            format!(
                "{} TO {}",
                qualified(target, name),
                qualified(target, temporary)
            )
        })
        .collect();
    // What the staging database holds: the plan's tables, and whatever a replay of the
    // binary log created, renamed or dropped.
    renames.extend(staged_tables(conn, staging).await?.iter().map(|name| {
        format!(
            "{} TO {}",
            qualified(staging, name),
            qualified(target, name)
        )
    }));
    if renames.is_empty() {
        return Ok(());
    }
    exec(
        conn,
        &format!("RENAME TABLE {}", renames.join(", ")),
        "moving the restored tables into place",
    )
    .await
}

/// The tables of the staging database.
async fn staged_tables(conn: &mut Conn, staging: &str) -> Result<Vec<String>> {
    conn.exec(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? \
         AND TABLE_TYPE <> 'VIEW' ORDER BY TABLE_NAME",
        (staging,),
    )
    .await
    .map_err(|e| crate::source::mysql::mysql_error(e, "listing the staged tables"))
}

/// Drop the target's old triggers, routines and events, then create the snapshot's objects.
async fn replace_objects(conn: &mut Conn, plan: &RestorePlan, old: &StoredObjects) -> Result<u64> {
    let target = &plan.target_name;
    for object in old.triggers.iter().chain(&old.routines).chain(&old.events) {
        drop_object(conn, object.kind, target, &object.name).await?;
    }
    exec(
        conn,
        &format!(
            "ALTER DATABASE {} CHARACTER SET {} COLLATE {}",
            quote_ident(target),
            plan.database.charset,
            plan.database.collation
        ),
        "setting the database's character set",
    )
    .await?;
    create_objects(conn, plan).await
}

async fn create_objects(conn: &mut Conn, plan: &RestorePlan) -> Result<u64> {
    prepare_session(conn, &plan.target_name).await?;
    let mut created = 0;
    for statement in plan.object_statements() {
        run_statement(conn, &statement).await?;
        created += 1;
    }
    Ok(created)
}

/// Put the target back as it was: the snapshot's objects dropped, the renames undone, the old
/// triggers, routines and events recreated from their definitions. An object whose definer the
/// account may not set is recreated without it rather than lost; those are returned.
async fn roll_back(
    conn: &mut Conn,
    plan: &RestorePlan,
    staging: &str,
    aside: &[(String, String)],
    old: &StoredObjects,
    (charset, collation): &(String, String),
) -> Result<Vec<String>> {
    let target = &plan.target_name;
    exec(
        conn,
        &format!(
            "ALTER DATABASE {} CHARACTER SET {} COLLATE {}",
            quote_ident(target),
            quote_ident(charset),
            quote_ident(collation)
        ),
        "restoring the database's character set",
    )
    .await?;
    let now = catalog::stored_objects(conn, target).await?;
    for object in now
        .triggers
        .iter()
        .chain(&now.routines)
        .chain(&now.events)
        .chain(&now.views)
    {
        if !aside.iter().any(|(_, temporary)| temporary == &object.name) {
            drop_object(conn, object.kind, target, &object.name).await?;
        }
    }
    let mut renames: Vec<String> = plan
        .tables
        .iter()
        .map(|t| {
            format!(
                "{} TO {}",
                qualified(target, &t.name),
                qualified(staging, &t.name)
            )
        })
        .collect();
    renames.extend(aside.iter().map(|(name, temporary)| {
        format!(
            "{} TO {}",
            qualified(target, temporary),
            qualified(target, name)
        )
    }));
    if !renames.is_empty() {
        exec(
            conn,
            &format!("RENAME TABLE {}", renames.join(", ")),
            "undoing the renames",
        )
        .await?;
    }
    prepare_session(conn, target).await?;
    let mut without_definer = Vec::new();
    for object in old.routines.iter().chain(&old.triggers).chain(&old.events) {
        let mut statement = Statement::for_object(object, object.create_sql.clone());
        if let Err(e) = run_statement(conn, &statement).await {
            let refused = std::error::Error::source(&e)
                .and_then(|source| source.downcast_ref::<mysql_async::Error>())
                .is_some_and(definer_refused);
            if !refused {
                return Err(e);
            }
            // The live server's own objects, put back: read in their own session.
            let rules = crate::sql::QuoteRules::of_sql_mode(object.sql_mode.as_deref());
            statement.sql = strip_definer(&statement.sql, rules).map_err(|why| {
                Error::invalid(format!(
                    "putting back {} {}: {why}",
                    object.kind.keyword().to_lowercase(),
                    object.name
                ))
            })?;
            run_statement(conn, &statement).await?;
            without_definer.push(format!(
                "{} {}",
                object.kind.keyword().to_lowercase(),
                object.name
            ));
        }
    }
    Ok(without_definer)
}

/// Base tables, sequences and views of `db`.
pub(super) async fn base_tables_and_views(conn: &mut Conn, db: &str) -> Result<Vec<String>> {
    conn.exec(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
        (db,),
    )
    .await
    .map_err(|e| mysql_error(e, &format!("listing the tables of {db}")))
}

/// The default character set and collation of `db`.
async fn database_charset(conn: &mut Conn, db: &str) -> Result<(String, String)> {
    let row: Option<(String, String)> = conn
        .exec_first(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (db,),
        )
        .await
        .map_err(|e| mysql_error(e, &format!("reading the character set of {db}")))?;
    row.ok_or_else(|| Error::not_found(format!("database {db} disappeared during the restore")))
}
