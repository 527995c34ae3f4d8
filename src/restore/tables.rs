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
//! A target table that exists is refused before anything is written, unless `--drop-existing`:
//! then the same `RENAME TABLE` sets it aside (`coffer_old_<hex>_<n>`, same database), its
//! triggers and foreign keys are dropped (their names are unique per database), the foreign
//! keys of other tables, which followed it to its set-aside name, are pointed at the restored
//! table, and only when all of that and the new table's keys and triggers are in place is it
//! dropped. A failure on the way undoes each step in reverse.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::staging::{
    RestoreStats, check_plan_is_readable, create_staging, database_exists, drop_object,
    drop_staging, exec, load_rows, prepare_session, random_tag, run_statement, try_objects,
};
use super::statements::trigger_table;
use super::{RestorePlan, RestoreScope, Statement};
use crate::error::{Error, ErrorKind, Result};
use crate::repo::Repository;
use crate::repo::index::Index;
use crate::repo::tree::ObjectKind;
use crate::source::mysql::catalog;
use crate::source::mysql::{MysqlTarget, mysql_error};
use crate::sql::{leading_quoted_name, qualified, quote_ident, split_foreign_keys};

/// Restore the tables of `plan` (narrowed with [`RestorePlan::select_tables`]) into
/// `plan.target_name` on `target`, creating that database if it does not exist (called by
/// [`super::server::restore_to_server`]).
pub(super) async fn restore_tables(
    repo: Arc<Repository>,
    index: Arc<Index>,
    plan: Arc<RestorePlan>,
    target: &MysqlTarget,
    options: &super::staging::ServerRestoreOptions,
    chunks_done: Arc<AtomicU64>,
) -> Result<RestoreStats> {
    if options.drop_existing && matches!(plan.scope, RestoreScope::Tables { renamed: true }) {
        return Err(Error::invalid(
            "--drop-existing with --into-table: a renamed copy never replaces a table",
        )
        .with_hint(
            "leave out --into-table to replace the live table, or --drop-existing to make a copy",
        ));
    }
    check_plan_is_readable(&repo, &index, &plan).await?;
    let database = plan.target_name.clone();
    let mut conn = target.connect().await?;
    super::compat::refuse_incompatible(&mut conn, &plan, &target.describe()).await?;
    let database_existed = database_exists(&mut conn, &database).await?;
    let mut replaced = Vec::new();
    if database_existed {
        let taken = existing_tables(&mut conn, &database, &plan.table_targets).await?;
        if !taken.is_empty() && options.drop_existing {
            replaced = read_replaced(&mut conn, &database, &taken).await?;
        } else if !taken.is_empty() {
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
                "replace it with --drop-existing (swapped in only once the snapshot's table is loaded), \
                 or restore beside it with --into-table NEW (one table) or into another database with --into DB",
            ));
        }
    }
    let tag = random_tag()?;
    for (n, table) in replaced.iter_mut().enumerate() {
        table.aside = format!("coffer_old_{tag}_{n}");
    }
    let staging = create_staging(&mut conn, &plan, &tag).await?;
    let result = async {
        let (rows, fetched, replay) = stage_tables(&repo, &index, &plan, target, &staging, options, &chunks_done)
            .await
            .map_err(|e| {
                e.context(format!(
                    "restore into staging database {staging} failed; database {database} was not touched"
                ))
            })?;
        if !database_existed {
            exec(&mut conn, &plan.create_database(false).sql, "creating the database").await?;
        }
        let objects =
            move_into_place(&mut conn, &plan, &staging, database_existed, &replaced).await?;
        Ok::<_, Error>(RestoreStats {
            tables: plan.tables.len() as u64,
            rows,
            chunks: chunks_done.load(Ordering::Relaxed),
            bytes_fetched: fetched,
            objects,
            replaced: !replaced.is_empty(),
            replay,
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
pub(super) async fn stage_tables(
    repo: &Arc<Repository>,
    index: &Arc<Index>,
    plan: &Arc<RestorePlan>,
    target: &MysqlTarget,
    staging: &str,
    options: &super::staging::ServerRestoreOptions,
    chunks_done: &Arc<AtomicU64>,
) -> Result<(u64, u64, Option<crate::pitr::replay::ReplayReport>)> {
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
    let replay = super::staging::replay_onto(repo, index, options, target, staging).await?;
    try_objects(&mut conn, plan, staging).await?;
    Ok((rows, fetched, replay))
}

/// A live table that a restored one replaces, as it was just before the swap.
pub(super) struct Replaced {
    /// Its name on the server.
    name: String,
    /// Where it is set aside during the swap (`coffer_old_<tag>_<n>`, same database).
    aside: String,
    /// Its own foreign keys (re-added if the swap is undone).
    foreign_keys: Vec<String>,
    /// Its triggers (recreated if the swap is undone).
    triggers: Vec<crate::repo::tree::StoredObject>,
}

/// The live tables `taken` as they are now: their foreign keys and triggers. A view is refused.
async fn read_replaced(conn: &mut Conn, database: &str, taken: &[String]) -> Result<Vec<Replaced>> {
    let objects = catalog::stored_objects(conn, database).await?;
    let mut replaced = Vec::with_capacity(taken.len());
    for name in taken {
        if objects.views.iter().any(|v| &v.name == name) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("{name} in database {database} is a view, which a table restore does not replace; nothing was written"),
            )
            .with_hint("drop the view first, or restore the table under another name with --into-table"));
        }
        let create = catalog::create_table(conn, database, name, false).await?;
        replaced.push(Replaced {
            name: name.clone(),
            aside: String::new(),
            foreign_keys: split_foreign_keys(&create).1,
            triggers: objects
                .triggers
                .iter()
                .filter(|t| trigger_table(&t.create_sql).as_deref() == Some(name.as_str()))
                .cloned()
                .collect(),
        });
    }
    Ok(replaced)
}

/// A foreign key of another table that pointed at a replaced table and was pointed at its
/// replacement.
struct Repointed {
    schema: String,
    table: String,
    constraint: String,
    /// The definition as it was after the swap (referencing the set-aside table).
    to_aside: String,
}

/// Move the staged tables into the target (one `RENAME TABLE`, which also sets replaced tables
/// aside), then finish: the replaced tables' triggers and foreign keys dropped, the foreign keys
/// of other tables that referenced them pointed at the new tables, the new tables' foreign keys
/// added and their triggers created, the replaced tables dropped. A failure before the last
/// step undoes what was done, in reverse order.
async fn move_into_place(
    conn: &mut Conn,
    plan: &RestorePlan,
    staging: &str,
    database_existed: bool,
    replaced: &[Replaced],
) -> Result<u64> {
    let database = &plan.target_name;
    let mut renames: Vec<String> = replaced
        .iter()
        .map(|r| {
            format!(
                "{} TO {}",
                qualified(database, &r.name),
                qualified(database, &r.aside)
            )
        })
        .collect();
    renames.extend(plan.table_targets.iter().map(|name| {
        format!(
            "{} TO {}",
            qualified(staging, name),
            qualified(database, name)
        )
    }));
    exec(
        conn,
        &format!("RENAME TABLE {}", renames.join(", ")),
        "moving the restored tables into place",
    )
    .await
    .map_err(|e| e.context(format!("database {database} was not changed")))?;
    let mut undo = Undo::default();
    let finished = finish_move(conn, plan, replaced, &mut undo).await;
    match finished {
        Ok(()) => {
            for r in replaced {
                if let Err(e) = exec(
                    conn,
                    &format!("DROP TABLE {}", qualified(database, &r.aside)),
                    "dropping a replaced table",
                )
                .await
                {
                    tracing::warn!(table = %r.aside, "could not drop the replaced table {}; drop it by hand: {e}", r.name);
                }
            }
            Ok(undo.created.len() as u64)
        }
        Err(e) => {
            let undone = take_back(conn, plan, staging, &undo, replaced, database_existed).await;
            Err(e.context(match undone {
                Ok(()) if database_existed => format!(
                    "the restored tables could not be completed and were removed again; database {database} is as it was"
                ),
                Ok(()) => format!("database {database} could not be completed and was removed again"),
                Err(cleanup) => format!(
                    "the restored tables could not be completed, and undoing it failed too ({cleanup}): \
                     the restored tables are {} in {database}{}",
                    plan.table_targets.join(", "),
                    if replaced.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", the replaced ones were set aside as {}",
                            replaced.iter().map(|r| r.aside.as_str()).collect::<Vec<_>>().join(", ")
                        )
                    }
                ),
            }))
        }
    }
}

/// What [`finish_move`] did, for [`take_back`].
#[derive(Default)]
struct Undo {
    /// Replaced tables (by index) whose triggers were dropped.
    dropped_triggers: Vec<usize>,
    /// Replaced tables (by index) whose own foreign keys were dropped.
    dropped_foreign_keys: Vec<usize>,
    repointed: Vec<Repointed>,
    created: Vec<(ObjectKind, String)>,
}

async fn finish_move(
    conn: &mut Conn,
    plan: &RestorePlan,
    replaced: &[Replaced],
    undo: &mut Undo,
) -> Result<()> {
    let database = &plan.target_name;
    prepare_session(conn, database).await?;
    // Trigger and constraint names are unique per database: the set-aside tables give theirs up.
    for (i, r) in replaced.iter().enumerate() {
        for trigger in &r.triggers {
            drop_object(conn, ObjectKind::Trigger, database, &trigger.name).await?;
        }
        undo.dropped_triggers.push(i);
        let drops: Vec<String> = r
            .foreign_keys
            .iter()
            .filter_map(|k| constraint_name(k))
            .map(|name| format!("DROP FOREIGN KEY {}", quote_ident(&name)))
            .collect();
        if !drops.is_empty() {
            exec(
                conn,
                &format!("ALTER TABLE {} {}", quote_ident(&r.aside), drops.join(", ")),
                &format!("dropping the foreign keys of the replaced table {}", r.name),
            )
            .await?;
        }
        undo.dropped_foreign_keys.push(i);
    }
    // Foreign keys of other tables followed the replaced tables to their set-aside names.
    for r in replaced {
        for (schema, table, constraint) in referencing(conn, database, &r.aside).await? {
            let definition = foreign_key_definition(conn, &schema, &table, &constraint).await?;
            let to_new = definition.replace(&quote_ident(&r.aside), &quote_ident(&r.name));
            let child = qualified(&schema, &table);
            exec(
                conn,
                &format!(
                    "ALTER TABLE {child} DROP FOREIGN KEY {}",
                    quote_ident(&constraint)
                ),
                &format!("re-pointing foreign key {constraint} of {schema}.{table}"),
            )
            .await?;
            let repointed = Repointed {
                schema,
                table,
                constraint,
                to_aside: definition,
            };
            let added = exec(
                conn,
                &format!("ALTER TABLE {child} ADD {to_new}"),
                &format!(
                    "re-pointing foreign key {} of {}.{}",
                    repointed.constraint, repointed.schema, repointed.table
                ),
            )
            .await;
            undo.repointed.push(repointed);
            added?;
        }
    }
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
            undo.created.push(object);
        }
    }
    Ok(())
}

/// Foreign keys (schema, table, constraint) that reference `database`.`table`.
async fn referencing(
    conn: &mut Conn,
    database: &str,
    table: &str,
) -> Result<Vec<(String, String, String)>> {
    conn.exec(
        "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS \
         WHERE UNIQUE_CONSTRAINT_SCHEMA = ? AND REFERENCED_TABLE_NAME = ? ORDER BY 1, 2, 3",
        (database, table),
    )
    .await
    .map_err(|e| mysql_error(e, &format!("listing the foreign keys that reference {database}.{table}")))
}

/// The `CONSTRAINT … FOREIGN KEY …` definition of `constraint` in `schema`.`table`.
async fn foreign_key_definition(
    conn: &mut Conn,
    schema: &str,
    table: &str,
    constraint: &str,
) -> Result<String> {
    let create = catalog::create_table(conn, schema, table, false).await?;
    split_foreign_keys(&create)
        .1
        .into_iter()
        .find(|k| constraint_name(k).as_deref() == Some(constraint))
        .ok_or_else(|| {
            Error::not_found(format!(
                "foreign key {constraint} of {schema}.{table} is not in its SHOW CREATE TABLE"
            ))
        })
}

/// The name in a `CONSTRAINT \`name\` FOREIGN KEY …` definition.
fn constraint_name(definition: &str) -> Option<String> {
    leading_quoted_name(definition.strip_prefix("CONSTRAINT ")?)
}

/// Undo what [`finish_move`] did, in reverse: the new triggers dropped, re-pointed foreign keys
/// pointed back at the set-aside tables, the new tables moved back into the staging database
/// (dropped with it) and the set-aside ones back under their names, their foreign keys and
/// triggers recreated; or the database dropped if this restore created it.
async fn take_back(
    conn: &mut Conn,
    plan: &RestorePlan,
    staging: &str,
    undo: &Undo,
    replaced: &[Replaced],
    database_existed: bool,
) -> Result<()> {
    let database = &plan.target_name;
    for (kind, name) in undo.created.iter().rev() {
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
    for r in undo.repointed.iter().rev() {
        let child = qualified(&r.schema, &r.table);
        // The new definition may not have been added; dropping it is then a no-op error.
        let _ = conn
            .query_drop(format!(
                "ALTER TABLE {child} DROP FOREIGN KEY {}",
                quote_ident(&r.constraint)
            ))
            .await;
        exec(
            conn,
            &format!("ALTER TABLE {child} ADD {}", r.to_aside),
            &format!(
                "restoring foreign key {} of {}.{}",
                r.constraint, r.schema, r.table
            ),
        )
        .await?;
    }
    let mut renames: Vec<String> = plan
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
    renames.extend(replaced.iter().map(|r| {
        format!(
            "{} TO {}",
            qualified(database, &r.aside),
            qualified(database, &r.name)
        )
    }));
    exec(
        conn,
        &format!("RENAME TABLE {}", renames.join(", ")),
        "moving the restored tables out again",
    )
    .await?;
    prepare_session(conn, database).await?;
    for &i in undo.dropped_foreign_keys.iter().rev() {
        let r = &replaced[i];
        if r.foreign_keys.is_empty() {
            continue;
        }
        let adds: Vec<String> = r.foreign_keys.iter().map(|k| format!("ADD {k}")).collect();
        exec(
            conn,
            &format!("ALTER TABLE {} {}", quote_ident(&r.name), adds.join(", ")),
            &format!("restoring the foreign keys of table {}", r.name),
        )
        .await?;
    }
    for &i in undo.dropped_triggers.iter().rev() {
        for trigger in &replaced[i].triggers {
            run_statement(
                conn,
                &Statement::for_object(trigger, trigger.create_sql.clone()),
            )
            .await?;
        }
    }
    Ok(())
}
