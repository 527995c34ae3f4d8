//! What a server holds: databases and their sizes, the definitions of stored objects, and the
//! binary-log position. Everything here reads `information_schema` or `SHOW CREATE …` output.

use std::collections::HashMap;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::{SYSTEM_SCHEMAS, is_mariadb, mysql_error};
use crate::error::{Error, ErrorKind, Result};
use crate::repo::snapshot::BinlogPosition;
use crate::repo::tree::{ObjectKind, StoredObject};
use crate::sql::{qualified, quote_ident};

/// A database on the server, as listed before the dump.
#[derive(Debug, Clone)]
pub struct DatabaseInfo {
    pub name: String,
    pub charset: String,
    pub collation: String,
    /// Estimated size, to schedule the largest databases first: the row bytes the previous
    /// snapshot read, else `DATA_LENGTH` from `information_schema.TABLES` (see
    /// [`estimate_sizes`]); 0 until estimated.
    pub approx_bytes: u64,
}

/// All user databases, by name. Reads only `information_schema.SCHEMATA`: sizes come from
/// `information_schema.TABLES`, which MariaDB answers by opening every table (tens of seconds
/// over 60,000 tables), so [`estimate_sizes`] asks it only for databases with no earlier size.
pub async fn list_databases(conn: &mut Conn) -> Result<Vec<DatabaseInfo>> {
    let rows: Vec<(String, String, String)> = conn
        .query(
            "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME \
             FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME",
        )
        .await
        .map_err(|e| mysql_error(e, "listing databases"))?;
    Ok(rows
        .into_iter()
        .filter(|(name, ..)| !SYSTEM_SCHEMAS.contains(&name.to_ascii_lowercase().as_str()))
        .map(|(name, charset, collation)| DatabaseInfo {
            name,
            charset,
            collation,
            approx_bytes: 0,
        })
        .collect())
}

/// Up to this many databases without a known size are measured one query each (MariaDB then
/// opens only their tables); beyond it, one query over the whole server is cheaper.
const SIZE_QUERIES_ONE_BY_ONE: usize = 64;

/// Fill in `approx_bytes` (from `known` sizes, else the server's table statistics) and sort
/// `databases` largest first.
pub async fn estimate_sizes(
    conn: &mut Conn,
    databases: &mut [DatabaseInfo],
    known: &HashMap<String, u64>,
) -> Result<()> {
    let unknown: Vec<usize> = (0..databases.len())
        .filter(|&i| !known.contains_key(&databases[i].name))
        .collect();
    let mut measured: HashMap<String, u64> = HashMap::new();
    if unknown.len() > SIZE_QUERIES_ONE_BY_ONE {
        let rows: Vec<(String, u64)> = conn
            .query(
                "SELECT TABLE_SCHEMA, CAST(COALESCE(SUM(DATA_LENGTH), 0) AS UNSIGNED) \
                 FROM information_schema.TABLES GROUP BY TABLE_SCHEMA",
            )
            .await
            .map_err(|e| mysql_error(e, "reading database sizes"))?;
        measured.extend(rows);
    } else {
        for &i in &unknown {
            let name = &databases[i].name;
            let size: Option<u64> = conn
                .exec_first(
                    "SELECT CAST(COALESCE(SUM(DATA_LENGTH), 0) AS UNSIGNED) \
                     FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
                    (name,),
                )
                .await
                .map_err(|e| mysql_error(e, &format!("reading the size of {name}")))?;
            measured.insert(name.clone(), size.unwrap_or(0));
        }
    }
    for db in databases.iter_mut() {
        db.approx_bytes = known
            .get(&db.name)
            .or_else(|| measured.get(&db.name))
            .copied()
            .unwrap_or(0);
    }
    databases.sort_by(|a, b| {
        b.approx_bytes
            .cmp(&a.approx_bytes)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(())
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
        .query_first(binlog_status_statement(conn.server_version()))
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
        gtid_set: normalize_gtid_set(&gtid_set.unwrap_or_default()),
    })
}

/// What the server says about its binary log beyond the position.
pub struct ServerLog {
    /// MySQL's `server_uuid`, or MariaDB's `server_id` (it has no UUID).
    pub identity: String,
    pub binlog_format: String,
    /// `Binlog_Do_DB` / `Binlog_Ignore_DB`, if any is set.
    pub filters: Option<String>,
    /// Whether the server compares database and table names case-insensitively
    /// (`lower_case_table_names` 1 or 2; Azure Database for MySQL's default is 1).
    pub fold_case: bool,
}

/// Read the server's identity, binlog format and binlog filters.
pub async fn server_log(conn: &mut Conn) -> std::result::Result<ServerLog, String> {
    // MariaDB has no server_uuid (the query fails there); its server_id identifies it.
    let uuid: Option<String> = conn
        .query_first::<Option<String>, _>("SELECT @@GLOBAL.server_uuid")
        .await
        .ok()
        .flatten()
        .flatten();
    let (id, format, lower_case): (Option<u64>, Option<String>, Option<u64>) = conn
        .query_first(
            "SELECT @@GLOBAL.server_id, @@GLOBAL.binlog_format, @@GLOBAL.lower_case_table_names",
        )
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or((None, None, None));
    let statement = binlog_status_statement(conn.server_version());
    let status: Option<mysql_async::Row> = conn
        .query_first(statement)
        .await
        .map_err(|e| e.to_string())?;
    let filters = status.and_then(|row| {
        let column = |i: usize| -> String {
            row.get_opt::<Option<String>, usize>(i)
                .and_then(|v| v.ok())
                .flatten()
                .unwrap_or_default()
        };
        let (only, ignore) = (column(2), column(3));
        (!only.is_empty() || !ignore.is_empty())
            .then(|| format!("binlog_do_db={only:?} binlog_ignore_db={ignore:?}"))
    });
    Ok(ServerLog {
        identity: match uuid {
            Some(uuid) if !uuid.is_empty() => format!("server_uuid:{uuid}"),
            _ => format!("server_id:{}", id.unwrap_or(0)),
        },
        binlog_format: format.unwrap_or_default(),
        filters,
        fold_case: lower_case.is_some_and(|n| n != 0),
    })
}

/// MySQL 8.4 removed `SHOW MASTER STATUS` (a syntax error there); its replacement `SHOW BINARY
/// LOG STATUS` exists from 8.2.0 on. MariaDB (10.x and later) keeps `SHOW MASTER STATUS`.
pub(crate) fn binlog_status_statement(version: (u16, u16, u16)) -> &'static str {
    if ((8, 2, 0)..(10, 0, 0)).contains(&version) {
        "SHOW BINARY LOG STATUS"
    } else {
        "SHOW MASTER STATUS"
    }
}

/// MySQL prints `gtid_executed` with `",\n"` between server UUIDs; store it on one line.
fn normalize_gtid_set(raw: &str) -> String {
    raw.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(",")
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

/// The bodies of the triggers, views and routines of `db`, or `None` when this account cannot
/// read one of them (MySQL shows an empty view definition without SHOW VIEW and no routine
/// body without SHOW_ROUTINE). A database that does not exist has none.
pub async fn definition_bodies(conn: &mut Conn, db: &str) -> Result<Option<Vec<String>>> {
    let triggers: Vec<mysql_async::Row> = match conn
        .query(format!("SHOW TRIGGERS FROM {}", quote_ident(db)))
        .await
    {
        Ok(rows) => rows,
        Err(mysql_async::Error::Server(e)) if e.code == ER_BAD_DB_ERROR => {
            return Ok(Some(Vec::new()));
        }
        Err(e) => return Err(mysql_error(e, &format!("listing triggers of {db}"))),
    };
    let mut bodies = Vec::with_capacity(triggers.len());
    for row in &triggers {
        match text(row, "Statement") {
            Some(body) => bodies.push(body),
            None => return Ok(None),
        }
    }
    let views: Vec<Option<String>> = conn
        .exec(
            "SELECT VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ?",
            (db,),
        )
        .await
        .map_err(|e| mysql_error(e, &format!("reading the views of {db}")))?;
    let routines: Vec<Option<String>> = conn
        .exec(
            "SELECT ROUTINE_DEFINITION FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?",
            (db,),
        )
        .await
        .map_err(|e| mysql_error(e, &format!("reading the routines of {db}")))?;
    for body in views.into_iter().chain(routines) {
        match body.filter(|b| !b.trim().is_empty()) {
            Some(body) => bodies.push(body),
            None => return Ok(None),
        }
    }
    Ok(Some(bodies))
}

/// A foreign key whose `ON DELETE`/`ON UPDATE` changes child rows (CASCADE, SET NULL): InnoDB
/// applies it itself and logs nothing of the child rows on MySQL 8.0/8.4 (docs/ARCHITECTURE.md,
/// "MySQL 8 dialect"), so a change to the parent table is a change to the child table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CascadeEdge {
    /// The parent's database and table, `None` when its name could not be decoded (then any
    /// change may fire it).
    pub parent: Option<(String, String)>,
    /// The child's database, `None` when its name could not be decoded (MariaDB's InnoDB
    /// dictionary encodes unusual characters): it may be any database.
    pub child_database: Option<String>,
    /// The child table, `None` when its name could not be decoded (any table of the database).
    pub child_table: Option<String>,
}

/// Every cascading foreign key of the server, inside a database and between databases. MySQL 8
/// answers `REFERENTIAL_CONSTRAINTS` from its data dictionary; MariaDB would open every table of
/// the server for it, so there the InnoDB dictionary (`INNODB_SYS_FOREIGN`, needs PROCESS) is
/// read, and `REFERENTIAL_CONSTRAINTS` only when that is refused.
pub async fn cascading_foreign_keys(conn: &mut Conn) -> Result<Vec<CascadeEdge>> {
    if is_mariadb(conn) {
        let listed: std::result::Result<Vec<(String, String, u32)>, _> = conn
            .query("SELECT FOR_NAME, REF_NAME, TYPE FROM information_schema.INNODB_SYS_FOREIGN")
            .await;
        if let Ok(rows) = listed {
            // TYPE bits: 1 ON DELETE CASCADE, 2 ON DELETE SET NULL, 4 ON UPDATE CASCADE,
            // 8 ON UPDATE SET NULL. Names are `db/table` in InnoDB's file-name encoding, where
            // `@` starts the escape of any character but ASCII letters, digits and `_`.
            let decoded = |name: &str| {
                let (db, table) = name.split_once('/')?;
                let plain = |part: &str| (!part.contains('@')).then(|| part.to_string());
                Some((plain(db), plain(table)))
            };
            return Ok(rows
                .into_iter()
                .filter(|(_, _, kind)| kind & 0b1111 != 0)
                .map(|(child, parent, _)| {
                    let (child_database, child_table) = decoded(&child).unwrap_or((None, None));
                    let parent = match decoded(&parent) {
                        Some((Some(db), Some(table))) => Some((db, table)),
                        _ => None,
                    };
                    CascadeEdge {
                        parent,
                        child_table: child_database.as_ref().and(child_table),
                        child_database,
                    }
                })
                .collect());
        }
    }
    let rows: Vec<(String, String, String, String, String, String)> = conn
        .query(
            "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, UNIQUE_CONSTRAINT_SCHEMA, REFERENCED_TABLE_NAME, \
             UPDATE_RULE, DELETE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS",
        )
        .await
        .map_err(|e| mysql_error(e, "reading cascading foreign keys"))?;
    let changes_child =
        |rule: &str| !matches!(rule.to_ascii_uppercase().as_str(), "RESTRICT" | "NO ACTION");
    Ok(rows
        .into_iter()
        .filter(|(_, _, _, _, update, delete)| changes_child(update) || changes_child(delete))
        .map(
            |(child_db, child_table, parent_db, parent_table, _, _)| CascadeEdge {
                parent: Some((parent_db, parent_table)),
                child_database: Some(child_db),
                child_table: Some(child_table),
            },
        )
        .collect())
}

/// Server error "Unknown database".
const ER_BAD_DB_ERROR: u16 = 1049;

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
    let row = row.ok_or_else(|| Error::not_found(context()).transient(true))?;
    let create_column = match kind {
        ObjectKind::View => "Create View",
        ObjectKind::Procedure => "Create Procedure",
        ObjectKind::Function => "Create Function",
        ObjectKind::Trigger => "SQL Original Statement",
        ObjectKind::Event => "Create Event",
    };
    let create_sql = text(&row, create_column).ok_or_else(|| {
        Error::new(ErrorKind::Mysql, format!("{}: the server returned no definition", context()))
            .with_hint("the backup account needs the privileges to read routine bodies (SHOW_ROUTINE on MySQL 8, SELECT on mysql.proc on MariaDB) or must be the definer")
    })?;
    Ok(StoredObject {
        kind,
        name: name.to_string(),
        create_sql,
        sql_mode: text(&row, "sql_mode"),
        character_set_client: text(&row, "character_set_client"),
        collation_connection: text(&row, "collation_connection"),
        time_zone: text(&row, "time_zone"),
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
    pub storage: ColumnStorage,
}

/// Whether a column's values are dumped, from `information_schema.COLUMNS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnStorage {
    /// Holds values that must be dumped (including columns with an expression default, which
    /// MySQL 8 marks `DEFAULT_GENERATED`, and invisible columns).
    Stored,
    /// A generated column (`VIRTUAL`, `STORED`, MariaDB `PERSISTENT`): the server recomputes it.
    Generated,
    /// A system-versioning period column (MariaDB `ROW START` / `ROW END`): set by the server.
    SystemVersioning,
}

impl ColumnStorage {
    /// Classify a column from its `EXTRA` and `GENERATION_EXPRESSION` values.
    ///
    /// `EXTRA` is a list of words, and only whole words count: MySQL 8 prints
    /// `DEFAULT_GENERATED` for every column with an expression default (`DEFAULT
    /// CURRENT_TIMESTAMP`, `DEFAULT (uuid())`), which holds ordinary stored values. Generated
    /// columns are `VIRTUAL GENERATED` or `STORED GENERATED` (MySQL, MariaDB) and `PERSISTENT
    /// GENERATED` (older MariaDB), and have a non-empty `GENERATION_EXPRESSION` (MySQL prints an
    /// empty string for other columns, MariaDB NULL). The two sources must agree: a column with
    /// an expression but no generated marker, or the reverse, is an error rather than a guess.
    pub fn classify(extra: &str, generation_expression: Option<&str>) -> Result<Self, String> {
        // MySQL separates the flags with a space, MariaDB with a comma and a space.
        let words: Vec<String> = extra
            .split(|c: char| c.is_ascii_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_uppercase)
            .collect();
        let pair = |first: &[&str], second: &str| {
            words
                .windows(2)
                .any(|w| first.contains(&w[0].as_str()) && w[1] == second)
        };
        if pair(&["ROW"], "START") || pair(&["ROW"], "END") {
            return Ok(ColumnStorage::SystemVersioning);
        }
        let marked = pair(&["VIRTUAL", "STORED", "PERSISTENT"], "GENERATED");
        let has_expression = generation_expression.is_some_and(|g| !g.trim().is_empty());
        match (marked, has_expression) {
            (true, true) => Ok(ColumnStorage::Generated),
            (false, false) => Ok(ColumnStorage::Stored),
            (true, false) => Err(format!(
                "EXTRA {extra:?} marks a generated column but GENERATION_EXPRESSION is empty"
            )),
            (false, true) => Err(format!(
                "GENERATION_EXPRESSION is set but EXTRA {extra:?} does not mark a generated column"
            )),
        }
    }
}

/// Columns of every table of `db`, in column order, by table name. One query per database
/// rather than per table: at tens of thousands of tables, round trips dominate.
pub async fn columns_by_table(
    conn: &mut Conn,
    db: &str,
) -> Result<HashMap<String, Vec<ColumnInfo>>> {
    type ColumnRow = (String, String, String, Option<String>, Option<String>);
    let rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, GENERATION_EXPRESSION, EXTRA FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (db,),
        )
        .await
        .map_err(|e| mysql_error(e, &format!("listing columns of {db}")))?;
    let mut out: HashMap<String, Vec<ColumnInfo>> = HashMap::new();
    for (table, name, data_type, generation, extra) in rows {
        let storage = ColumnStorage::classify(extra.as_deref().unwrap_or(""), generation.as_deref())
            .map_err(|why| {
                Error::new(
                    ErrorKind::Mysql,
                    format!(
                        "cannot tell whether column {}.{} is generated: {why}",
                        qualified(db, &table),
                        quote_ident(&name)
                    ),
                )
                .with_hint("report this server version to the coffer developers; the database is not backed up rather than backed up without this column")
            })?;
        out.entry(table).or_default().push(ColumnInfo {
            name,
            data_type,
            storage,
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
        .ok_or_else(|| Error::not_found(context()).transient(true))
}

#[cfg(test)]
mod tests {
    use super::ColumnStorage::{self, Generated, Stored, SystemVersioning};

    /// `(EXTRA, GENERATION_EXPRESSION, expected)` as the servers print them for
    /// `information_schema.COLUMNS`: the flags the MySQL 8.0/8.4 manual lists
    /// (information-schema-columns-table.html, invisible-columns.html), combined as
    /// mysql-test's invisible_columns.result prints them; GENERATION_EXPRESSION is '' for
    /// other columns (see docs/ARCHITECTURE.md, "MySQL 8 dialect").
    const MYSQL_8: &[(&str, Option<&str>, ColumnStorage)] = &[
        ("", Some(""), Stored),
        ("auto_increment", Some(""), Stored),
        ("DEFAULT_GENERATED", Some(""), Stored),
        (
            "DEFAULT_GENERATED on update CURRENT_TIMESTAMP",
            Some(""),
            Stored,
        ),
        ("on update CURRENT_TIMESTAMP", Some(""), Stored),
        ("INVISIBLE", Some(""), Stored),
        ("DEFAULT_GENERATED INVISIBLE", Some(""), Stored),
        ("auto_increment INVISIBLE", Some(""), Stored),
        ("VIRTUAL GENERATED", Some("(`a` + 1)"), Generated),
        (
            "STORED GENERATED",
            Some("concat(`a`,_utf8mb4'x')"),
            Generated,
        ),
        ("VIRTUAL GENERATED INVISIBLE", Some("(`a` * 2)"), Generated),
        ("STORED GENERATED INVISIBLE", Some("(`a` * 2)"), Generated),
        (
            "DEFAULT_GENERATED on update CURRENT_TIMESTAMP INVISIBLE",
            Some(""),
            Stored,
        ),
        ("on update CURRENT_TIMESTAMP INVISIBLE", Some(""), Stored),
    ];

    /// MariaDB 10.11 joins flags with ", " (mysql-test main/invisible_field.result) and
    /// prints NULL as the GENERATION_EXPRESSION of other columns.
    const MARIADB: &[(&str, Option<&str>, ColumnStorage)] = &[
        ("", None, Stored),
        ("auto_increment", None, Stored),
        ("on update current_timestamp()", None, Stored),
        ("INVISIBLE", None, Stored),
        ("auto_increment, INVISIBLE", None, Stored),
        ("VIRTUAL GENERATED", Some("`a` + 1"), Generated),
        ("VIRTUAL GENERATED, INVISIBLE", Some("`a` + 1"), Generated),
        ("STORED GENERATED, INVISIBLE", Some("`a` + 1"), Generated),
        ("STORED GENERATED", Some("`a` + 1"), Generated),
        ("PERSISTENT GENERATED", Some("`a` + 1"), Generated),
        ("ROW START", None, SystemVersioning),
        ("ROW END", None, SystemVersioning),
        ("ROW START, INVISIBLE", None, SystemVersioning),
        ("ROW END, INVISIBLE", None, SystemVersioning),
    ];

    #[test]
    fn columns_are_classified_as_each_server_prints_them() {
        for (extra, expression, expected) in MYSQL_8.iter().chain(MARIADB) {
            assert_eq!(
                ColumnStorage::classify(extra, *expression),
                Ok(*expected),
                "EXTRA {extra:?}, GENERATION_EXPRESSION {expression:?}"
            );
        }
    }

    #[test]
    fn binlog_status_statement_follows_the_server_version() {
        assert_eq!(
            super::binlog_status_statement((8, 0, 40)),
            "SHOW MASTER STATUS"
        );
        assert_eq!(
            super::binlog_status_statement((8, 4, 3)),
            "SHOW BINARY LOG STATUS"
        );
        assert_eq!(
            super::binlog_status_statement((10, 11, 9)),
            "SHOW MASTER STATUS"
        );
    }

    #[test]
    fn gtid_sets_are_stored_on_one_line() {
        // The server separates UUID sets with ",\n" (the manual prints ", ").
        assert_eq!(
            super::normalize_gtid_set(
                "2174B383-5441-11E8-B90A-C80AA9429562:1-3,\n24DA167-0C0C-11E8-8442-00059A3C7B00:1-19"
            ),
            "2174B383-5441-11E8-B90A-C80AA9429562:1-3,24DA167-0C0C-11E8-8442-00059A3C7B00:1-19"
        );
        assert_eq!(super::normalize_gtid_set("0-1-26"), "0-1-26");
        assert_eq!(super::normalize_gtid_set(""), "");
    }

    #[test]
    fn expression_defaults_are_not_generated_columns() {
        // The 0.1 bug: any EXTRA containing "GENERATED" left the column out of the dump.
        assert_eq!(
            ColumnStorage::classify("DEFAULT_GENERATED", Some("")),
            Ok(Stored)
        );
    }

    #[test]
    fn disagreeing_sources_are_an_error_not_a_guess() {
        assert!(ColumnStorage::classify("VIRTUAL GENERATED", Some("")).is_err());
        assert!(ColumnStorage::classify("", Some("`a` + 1")).is_err());
    }
}
