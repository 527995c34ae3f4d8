//! What a server holds: databases and their sizes, the definitions of stored objects, and the
//! binary-log position. Everything here reads `information_schema` or `SHOW CREATE …` output.

use std::collections::HashMap;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::{SYSTEM_SCHEMAS, is_mariadb, mysql_error};
use crate::error::Result;
use crate::repo::snapshot::BinlogPosition;
use crate::repo::tree::{ObjectKind, StoredObject};
use crate::sql::{qualified, quote_ident};

/// A database on the server, as listed before the dump.
#[derive(Debug, Clone)]
pub struct DatabaseInfo {
    pub name: String,
    pub charset: String,
    pub collation: String,
    /// Approximate size (data + index) from `information_schema.TABLES`, to schedule the
    /// largest databases first.
    pub approx_bytes: u64,
}

/// All user databases, largest first.
pub async fn list_databases(conn: &mut Conn) -> Result<Vec<DatabaseInfo>> {
    let rows: Vec<(String, String, String, u64)> = conn
        .query(
            "SELECT s.SCHEMA_NAME, s.DEFAULT_CHARACTER_SET_NAME, s.DEFAULT_COLLATION_NAME, \
             CAST(COALESCE(SUM(t.DATA_LENGTH + t.INDEX_LENGTH), 0) AS UNSIGNED) \
             FROM information_schema.SCHEMATA s LEFT JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = s.SCHEMA_NAME \
             GROUP BY s.SCHEMA_NAME, s.DEFAULT_CHARACTER_SET_NAME, s.DEFAULT_COLLATION_NAME",
        )
        .await
        .map_err(|e| mysql_error(e, "listing databases"))?;
    let mut dbs: Vec<DatabaseInfo> = rows
        .into_iter()
        .filter(|(name, ..)| !SYSTEM_SCHEMAS.contains(&name.to_ascii_lowercase().as_str()))
        .map(|(name, charset, collation, approx_bytes)| DatabaseInfo {
            name,
            charset,
            collation,
            approx_bytes,
        })
        .collect();
    dbs.sort_by(|a, b| {
        b.approx_bytes
            .cmp(&a.approx_bytes)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(dbs)
}

/// `VERSION()`, e.g. `10.11.19-MariaDB-0+deb12u1`.
pub async fn server_version(conn: &mut Conn) -> Result<String> {
    let version: Option<String> = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(|e| mysql_error(e, "reading the server version"))?;
    Ok(version.unwrap_or_default())
}

/// The binary-log coordinates now, or why they cannot be read (binary logging off, or the
/// account lacks REPLICATION CLIENT / BINLOG MONITOR).
pub async fn binlog_position(conn: &mut Conn) -> std::result::Result<BinlogPosition, String> {
    let status: Option<mysql_async::Row> = conn
        .query_first("SHOW MASTER STATUS")
        .await
        .map_err(|e| e.to_string())?;
    let Some(row) = status else {
        return Err("binary logging is disabled on the server".into());
    };
    let file: String = row.get(0).unwrap_or_default();
    let position: u64 = row.get(1).unwrap_or_default();
    let gtid_query = if is_mariadb(conn) {
        "SELECT @@GLOBAL.gtid_binlog_pos"
    } else {
        "SELECT @@GLOBAL.gtid_executed"
    };
    let gtid_set: Option<String> = conn.query_first(gtid_query).await.unwrap_or_default();
    Ok(BinlogPosition {
        file,
        position,
        gtid_set: gtid_set.unwrap_or_default(),
    })
}

fn text(row: &mysql_async::Row, column: &str) -> Option<String> {
    let idx = row
        .columns_ref()
        .iter()
        .position(|c| c.name_str().eq_ignore_ascii_case(column))?;
    row.get_opt::<Option<String>, usize>(idx)
        .and_then(|r| r.ok())
        .flatten()
}

/// Views, routines, triggers and events of `db`, with views in creation order.
pub async fn stored_objects(conn: &mut Conn, db: &str) -> Result<StoredObjects> {
    let views: Vec<String> = conn
        .exec("SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME", (db,))
        .await
        .map_err(|e| mysql_error(e, &format!("listing views of {db}")))?;
    let routines: Vec<(String, String)> = conn
        .exec(
            "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? \
             AND ROUTINE_TYPE IN ('PROCEDURE','FUNCTION') ORDER BY ROUTINE_TYPE, ROUTINE_NAME",
            (db,),
        )
        .await
        .map_err(|e| mysql_error(e, &format!("listing routines of {db}")))?;
    // SHOW TRIGGERS reads only this schema; information_schema.TRIGGERS opens every table of
    // the server (tens of milliseconds per database on a server with thousands of schemas).
    // Its rows come in firing order for each table, which creating them in turn reproduces.
    let shown: Vec<mysql_async::Row> = conn
        .query(format!("SHOW TRIGGERS FROM {}", quote_ident(db)))
        .await
        .map_err(|e| mysql_error(e, &format!("listing triggers of {db}")))?;
    let mut triggers: Vec<(String, String)> = shown
        .iter()
        .filter_map(|row| Some((text(row, "Table")?, text(row, "Trigger")?)))
        .collect();
    triggers.sort_by(|a, b| a.0.cmp(&b.0));
    let triggers: Vec<String> = triggers.into_iter().map(|(_, name)| name).collect();
    let events: Vec<String> = conn
        .exec("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY EVENT_NAME", (db,))
        .await
        .map_err(|e| mysql_error(e, &format!("listing events of {db}")))?;

    let mut out = StoredObjects::default();
    for name in views {
        out.views
            .push(show_create(conn, db, ObjectKind::View, &name).await?);
    }
    out.views = order_views(db, out.views);
    for (name, kind) in routines {
        let kind = if kind.eq_ignore_ascii_case("FUNCTION") {
            ObjectKind::Function
        } else {
            ObjectKind::Procedure
        };
        out.routines.push(show_create(conn, db, kind, &name).await?);
    }
    for name in triggers {
        out.triggers
            .push(show_create(conn, db, ObjectKind::Trigger, &name).await?);
    }
    for name in events {
        out.events
            .push(show_create(conn, db, ObjectKind::Event, &name).await?);
    }
    Ok(out)
}

#[derive(Debug, Default)]
pub struct StoredObjects {
    pub views: Vec<StoredObject>,
    pub routines: Vec<StoredObject>,
    pub triggers: Vec<StoredObject>,
    pub events: Vec<StoredObject>,
}

async fn show_create(
    conn: &mut Conn,
    db: &str,
    kind: ObjectKind,
    name: &str,
) -> Result<StoredObject> {
    let context = || {
        format!(
            "reading the definition of {} {}",
            kind.keyword().to_lowercase(),
            qualified(db, name)
        )
    };
    let sql = format!("SHOW CREATE {} {}", kind.keyword(), qualified(db, name));
    let row: Option<mysql_async::Row> = conn
        .query_first(sql)
        .await
        .map_err(|e| mysql_error(e, &context()))?;
    let row = row.ok_or_else(|| crate::error::Error::not_found(context()).transient(true))?;
    let create_column = match kind {
        ObjectKind::View => "Create View",
        ObjectKind::Procedure => "Create Procedure",
        ObjectKind::Function => "Create Function",
        ObjectKind::Trigger => "SQL Original Statement",
        ObjectKind::Event => "Create Event",
    };
    let create_sql = text(&row, create_column).ok_or_else(|| {
        crate::error::Error::new(crate::error::ErrorKind::Mysql, format!("{}: the server returned no definition", context()))
            .with_hint("the backup account needs the privileges to read routine bodies (SHOW_ROUTINE on MySQL 8, SELECT on mysql.proc on MariaDB) or must be the definer")
    })?;
    Ok(StoredObject {
        kind,
        name: name.to_string(),
        create_sql,
        sql_mode: text(&row, "sql_mode"),
        character_set_client: text(&row, "character_set_client"),
        collation_connection: text(&row, "collation_connection"),
    })
}

/// Order views so that each comes after the views it references. The server prints references
/// fully qualified (`` `db`.`v` ``), which is what is looked for.
fn order_views(db: &str, views: Vec<StoredObject>) -> Vec<StoredObject> {
    let refs: Vec<String> = views.iter().map(|v| qualified(db, &v.name)).collect();
    let depends_on = |body: &str, i: usize| -> bool { body.contains(&refs[i]) };
    let mut placed = vec![false; views.len()];
    let mut order = Vec::with_capacity(views.len());
    while order.len() < views.len() {
        let before = order.len();
        for i in 0..views.len() {
            if placed[i] {
                continue;
            }
            let body = as_body(&views[i].create_sql);
            let ready = (0..views.len()).all(|j| j == i || placed[j] || !depends_on(body, j));
            if ready {
                placed[i] = true;
                order.push(i);
            }
        }
        if order.len() == before {
            // A cycle cannot exist among valid views; keep the rest in name order.
            order.extend((0..views.len()).filter(|i| !placed[*i]));
            break;
        }
    }
    let mut slots: Vec<Option<StoredObject>> = views.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// The part of `CREATE VIEW … AS body` after the view's own name.
fn as_body(create_sql: &str) -> &str {
    create_sql
        .find(" AS ")
        .map(|at| &create_sql[at..])
        .unwrap_or(create_sql)
}

/// Columns of a table with the kind that decides their encoding.
pub struct ColumnInfo {
    pub name: String,
    pub data_type: String,
    pub generated: bool,
}

/// Columns of every table of `db`, in column order, by table name. One query per database
/// rather than per table: at tens of thousands of tables, round trips dominate.
pub async fn columns_by_table(
    conn: &mut Conn,
    db: &str,
) -> Result<HashMap<String, Vec<ColumnInfo>>> {
    let rows: Vec<(String, String, String, Option<String>, String)> = conn
        .exec(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, GENERATION_EXPRESSION, EXTRA FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (db,),
        )
        .await
        .map_err(|e| mysql_error(e, &format!("listing columns of {db}")))?;
    let mut out: HashMap<String, Vec<ColumnInfo>> = HashMap::new();
    for (table, name, data_type, generation, extra) in rows {
        let extra = extra.to_ascii_uppercase();
        let generated = generation.is_some_and(|g| !g.is_empty())
            || extra.contains("GENERATED")
            || extra.contains("ROW START")
            || extra.contains("ROW END");
        out.entry(table).or_default().push(ColumnInfo {
            name,
            data_type,
            generated,
        });
    }
    Ok(out)
}

/// Primary-key columns of every table of `db` that has one, in key order, by table name.
pub async fn primary_keys_by_table(
    conn: &mut Conn,
    db: &str,
) -> Result<HashMap<String, Vec<String>>> {
    let rows: Vec<(String, String)> = conn
        .exec(
            "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? \
             AND INDEX_NAME = 'PRIMARY' ORDER BY TABLE_NAME, SEQ_IN_INDEX",
            (db,),
        )
        .await
        .map_err(|e| mysql_error(e, &format!("reading the primary keys of {db}")))?;
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (table, column) in rows {
        out.entry(table).or_default().push(column);
    }
    Ok(out)
}

/// `SHOW CREATE TABLE` / `SHOW CREATE SEQUENCE`.
pub async fn create_table(
    conn: &mut Conn,
    db: &str,
    table: &str,
    sequence: bool,
) -> Result<String> {
    let keyword = if sequence { "SEQUENCE" } else { "TABLE" };
    let context = || format!("reading the definition of {}", qualified(db, table));
    let row: Option<(String, String)> = conn
        .query_first(format!("SHOW CREATE {keyword} {}", qualified(db, table)))
        .await
        .map_err(|e| mysql_error(e, &context()))?;
    row.map(|(_, sql)| sql)
        .ok_or_else(|| crate::error::Error::not_found(context()).transient(true))
}
