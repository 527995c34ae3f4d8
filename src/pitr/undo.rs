//! `coffer log undo`: the inverse of the archived row changes to one database in a time range,
//! as a script to review and apply (what `mariadb-binlog --flashback`, binlog2sql and MyFlash
//! do from a log still on the server, from the archive instead).
//!
//! Rules (each with the test that shows it, `point_in_time::undo_reverses_a_range_and_names_rows_changed_since`):
//! - **Newest first.** Changes are inverted from the last to the first: an insert becomes a
//!   delete, a delete an insert, an update the update back.
//! - **Never over a later change.** Each inverse is checked against the live row (or, for a row
//!   the script changes again, against what the script leaves): a row changed since is named
//!   and left alone, with every earlier change to it. Each statement also carries the row it
//!   expects in its `WHERE`, so a row changed between review and apply is not overwritten.
//! - **In UTC.** Values are written as the log holds them (TIMESTAMP in UTC); the live rows are
//!   read, and the script sets its session, to `time_zone = '+00:00'`.
//! - **Rows only.** A range holding DDL, statement-format changes or partial JSON updates on the
//!   database is refused: their inverse is not in the log.

use std::collections::{HashMap, HashSet};

use mysql_async::Conn;
use mysql_async::binlog::EventType;
use mysql_async::binlog::events::{Event, EventData, QueryEvent, RowsEventData, TableMapEvent};
use mysql_async::prelude::Queryable;
use mysql_common::binlog::row::BinlogRow;
use serde::Serialize;

use super::events::{Item, SegmentEvents};
use super::replay::{TableShape, table_shape};
use super::row_filter::{RowFilter, row_literals, utc_session};
use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::repo::index::Index;
use crate::source::mysql::changes::{StatementClass, classify_statement, decoded, query_rules};
use crate::sql::{qualified, quote_ident};

/// Which changes to invert.
#[derive(Debug, Clone)]
pub struct UndoRequest {
    pub database: String,
    /// Only these tables (all when empty).
    pub tables: Vec<String>,
    pub since: jiff::Timestamp,
    pub until: jiff::Timestamp,
    pub server: Option<String>,
    /// Only the changes whose row, before or after, this SQL condition is true for (judged by
    /// the server on the live table's columns, [`super::row_filter`]).
    pub filter: Option<String>,
}

/// The script and what it holds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UndoScript {
    #[serde(skip)]
    pub sql: String,
    pub transactions: u64,
    pub statements: u64,
    /// Rows changed since the range: named, not undone.
    pub conflicts: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Insert,
    Update,
    Delete,
}

struct Change {
    table: String,
    kind: Kind,
    before: Option<BinlogRow>,
    after: Option<BinlogRow>,
    columns: usize,
    time: jiff::Timestamp,
}

/// Invert the row changes `request` names, checked against the live database over `conn`.
pub async fn undo(
    repo: &Repository,
    index: &Index,
    request: &UndoRequest,
    conn: &mut Conn,
) -> Result<UndoScript> {
    // The literals are UTC (TIMESTAMP values as the log holds them): the live rows are read,
    // and the script applies, in a UTC session.
    utc_session(conn, "preparing the session the live rows are read in").await?;
    let changes = collect(repo, index, request).await?;
    let mut filter = request
        .filter
        .as_deref()
        .map(|expression| RowFilter::new(&request.database, expression))
        .transpose()?;
    let mut script = UndoScript::default();
    let mut shapes: HashMap<String, TableShape> = HashMap::new();
    // What the script leaves each row it touches as: (table, key) -> the row's literals, or
    // `None` when it deletes it.
    let mut planned: HashMap<(String, String), Option<Vec<String>>> = HashMap::new();
    let mut refused: HashSet<(String, String)> = HashSet::new();
    let mut statements = Vec::new();
    for change in changes.iter().rev() {
        if !shapes.contains_key(&change.table) {
            let shape = table_shape(conn, &request.database, &change.table)
                .await?
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "table {} of {} no longer exists: nothing of it can be undone",
                        change.table, request.database
                    ))
                })?;
            shapes.insert(change.table.clone(), shape);
        }
        let Some(shape) = shapes.get(&change.table) else {
            continue;
        };
        if change.columns != shape.columns.len() {
            return Err(Error::invalid(format!(
                "table {} has {} columns now and {} in the log: its definition changed since; nothing was written",
                change.table,
                shape.columns.len(),
                change.columns
            )));
        }
        if let Some(filter) = filter.as_mut()
            && !filter
                .either_matches(
                    conn,
                    &change.table,
                    change.before.as_ref(),
                    change.after.as_ref(),
                )
                .await?
        {
            continue;
        }
        let image = |row: &Option<BinlogRow>| -> Result<Option<Vec<String>>> {
            row.as_ref()
                .map(|row| row_literals(&change.table, row, shape))
                .transpose()
        };
        let before = image(&change.before)?;
        let after = image(&change.after)?;
        let key_of = |values: &[String]| -> String {
            let columns: Vec<usize> = if shape.key.is_empty() {
                (0..shape.columns.len()).collect()
            } else {
                shape.key.clone()
            };
            columns
                .iter()
                .map(|&i| values[i].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let table = qualified(&request.database, &change.table);
        let stored: Vec<usize> = (0..shape.columns.len())
            .filter(|&i| !shape.columns[i].generated)
            .collect();
        let matches = |values: &[String]| {
            stored
                .iter()
                .map(|&i| format!("{} <=> {}", quote_ident(&shape.columns[i].name), values[i]))
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        // The row the change left (what must be there now), and the key it has now.
        let (expected, key) = match (&before, &after) {
            (_, Some(after)) => (Some(after.clone()), key_of(after)),
            (Some(before), None) => (None, key_of(before)),
            (None, None) => continue,
        };
        let slot = (change.table.clone(), key.clone());
        let describe = || {
            format!(
                "{} row ({key}) changed at {}",
                change.table,
                change.time.strftime("%Y-%m-%d %H:%M:%S")
            )
        };
        if refused.contains(&slot) {
            script.conflicts.push(format!(
                "{}: left alone (a later change to it is)",
                describe()
            ));
            continue;
        }
        let present = match planned.get(&slot) {
            Some(state) => state.clone() == expected,
            None => match &expected {
                Some(values) => {
                    count(
                        conn,
                        &format!("SELECT COUNT(*) FROM {table} WHERE {}", matches(values)),
                    )
                    .await?
                        == 1
                }
                None => match &before {
                    Some(before) => {
                        let key_match = key_condition(shape, before);
                        count(
                            conn,
                            &format!("SELECT COUNT(*) FROM {table} WHERE {key_match}"),
                        )
                        .await?
                            == 0
                    }
                    None => continue,
                },
            },
        };
        if !present {
            script.conflicts.push(format!(
                "{}: it was changed again since; not undone",
                describe()
            ));
            refused.insert(slot);
            continue;
        }
        let columns = |values: &[String]| {
            let names: Vec<String> = stored
                .iter()
                .map(|&i| quote_ident(&shape.columns[i].name))
                .collect();
            let literals: Vec<&str> = stored.iter().map(|&i| values[i].as_str()).collect();
            (names.join(", "), literals.join(", "))
        };
        let statement = match (change.kind, &before, &after) {
            (Kind::Insert, _, Some(after)) => {
                planned.insert(slot, None);
                format!("DELETE FROM {table} WHERE {} LIMIT 1;", matches(after))
            }
            (Kind::Delete, Some(before), _) => {
                planned.insert(slot, Some(before.clone()));
                let (names, literals) = columns(before);
                format!("INSERT INTO {table} ({names}) VALUES ({literals});")
            }
            (Kind::Update, Some(before), Some(after)) => {
                planned.insert((change.table.clone(), key_of(before)), Some(before.clone()));
                if key_of(before) != key {
                    planned.insert(slot, None);
                }
                let set: Vec<String> = stored
                    .iter()
                    .map(|&i| format!("{} = {}", quote_ident(&shape.columns[i].name), before[i]))
                    .collect();
                format!(
                    "UPDATE {table} SET {} WHERE {} LIMIT 1;",
                    set.join(", "),
                    matches(after)
                )
            }
            _ => continue,
        };
        statements.push(format!("-- undo {}\n{statement}", describe()));
    }
    if let Some(filter) = filter {
        filter.close(conn).await;
    }
    script.statements = statements.len() as u64;
    script.transactions = changes.iter().map(|c| c.time).collect::<HashSet<_>>().len() as u64;
    let mut sql = format!(
        "-- coffer log undo: {} change(s) to {} between {} and {}, newest first.\n\
         -- Review before applying. Each statement names the row as the change left it, so a row\n\
         -- changed after this script was written is not touched (it affects 0 rows).\n",
        statements.len(),
        request.database,
        request.since,
        request.until
    );
    if let Some(expression) = &request.filter {
        sql.push_str(&format!(
            "-- Only the changes to rows for which this was true, before or after: {}\n",
            expression.replace('\n', " ")
        ));
    }
    for conflict in &script.conflicts {
        sql.push_str(&format!("-- NOT UNDONE: {conflict}\n"));
    }
    // Its TIMESTAMP literals are UTC, whatever the applying client's zone.
    sql.push_str("SET NAMES utf8mb4;\nSET time_zone = '+00:00';\nSTART TRANSACTION;\n");
    for statement in &statements {
        sql.push_str(statement);
        sql.push('\n');
    }
    sql.push_str("COMMIT;\n");
    script.sql = sql;
    Ok(script)
}

fn key_condition(shape: &TableShape, values: &[String]) -> String {
    let columns: Vec<usize> = if shape.key.is_empty() {
        (0..shape.columns.len())
            .filter(|&i| !shape.columns[i].generated)
            .collect()
    } else {
        shape.key.clone()
    };
    columns
        .iter()
        .map(|&i| format!("{} <=> {}", quote_ident(&shape.columns[i].name), values[i]))
        .collect::<Vec<_>>()
        .join(" AND ")
}

async fn count(conn: &mut Conn, sql: &str) -> Result<u64> {
    let n: Option<u64> = conn
        .query_first(sql)
        .await
        .map_err(|e| crate::source::mysql::mysql_error(e, "checking a live row"))?;
    Ok(n.unwrap_or(0))
}

/// The row changes on the database in the range, in log order; refuses what cannot be undone.
async fn collect(repo: &Repository, index: &Index, request: &UndoRequest) -> Result<Vec<Change>> {
    let segments = super::events::segments_touching(
        repo,
        &request.database,
        request.server.as_deref(),
        Some(request.since),
        Some(request.until),
    )
    .await?;
    let mut out = Vec::new();
    for segment in &segments {
        let bytes = super::archive::segment_bytes(repo, index, segment).await?;
        let mut events = SegmentEvents::new(segment, &bytes)?;
        let mut tables: HashMap<u64, TableMapEvent<'static>> = HashMap::new();
        let mut pending: Vec<Change> = Vec::new();
        let mut refusal: Option<String> = None;
        while let Some(item) = events.next_item()? {
            match item {
                Item::Event(event) => {
                    read(&event, request, &mut tables, &mut pending, &mut refusal)?;
                }
                Item::End(done) => {
                    let time = jiff::Timestamp::from_second(i64::from(done.last_time))
                        .map_err(|e| Error::corrupt(format!("an event time: {e}")))?;
                    let taken = std::mem::take(&mut pending);
                    let why = refusal.take();
                    if time < request.since || time > request.until {
                        continue;
                    }
                    if let Some(why) = why {
                        return Err(Error::invalid(format!(
                            "the range holds {why} at {time} ({}:{}): its inverse is not in the log; nothing was written",
                            done.file, done.start
                        ))
                        .with_hint("choose a range without it, or restore the database to a moment with `restore --at`"));
                    }
                    out.extend(taken.into_iter().map(|c| Change { time, ..c }));
                }
            }
        }
    }
    Ok(out)
}

fn read(
    event: &Event,
    request: &UndoRequest,
    tables: &mut HashMap<u64, TableMapEvent<'static>>,
    pending: &mut Vec<Change>,
    refusal: &mut Option<String>,
) -> Result<()> {
    let ours = |database: &str| database.eq_ignore_ascii_case(&request.database);
    let wanted = |table: &str| {
        request.tables.is_empty() || request.tables.iter().any(|t| t.eq_ignore_ascii_case(table))
    };
    match event.header().event_type() {
        Ok(EventType::TABLE_MAP_EVENT) => {
            let map: TableMapEvent<'_> = decoded(|| event.read_event())
                .map_err(|e| Error::corrupt(format!("a table map: {e}")))?;
            tables.insert(map.table_id(), map.into_owned());
        }
        Ok(EventType::QUERY_EVENT) => {
            let query: QueryEvent<'_> = decoded(|| event.read_event())
                .map_err(|e| Error::corrupt(format!("a query event: {e}")))?;
            let (class, databases) =
                classify_statement(&query.schema(), &query.query(), query_rules(&query), true);
            let names_ours = databases.map_or(true, |d| d.iter().any(|d| ours(d)));
            if names_ours && !matches!(class, StatementClass::Control) {
                let shown: String = query.query().chars().take(60).collect();
                refusal.get_or_insert(format!("a statement on the database ({shown}…)"));
            }
        }
        _ => {
            let data = decoded(|| event.read_data())
                .map_err(|e| Error::corrupt(format!("an event: {e}")))?;
            let Some(EventData::RowsEvent(rows)) = data else {
                return Ok(());
            };
            let Some(map) = tables.get(&rows.table_id()) else {
                return Ok(());
            };
            let table = map.table_name().into_owned();
            if !ours(&map.database_name()) || !wanted(&table) {
                return Ok(());
            }
            let kind = match rows {
                RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => {
                    Kind::Insert
                }
                RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => {
                    Kind::Delete
                }
                RowsEventData::UpdateRowsEvent(_) | RowsEventData::UpdateRowsEventV1(_) => {
                    Kind::Update
                }
                RowsEventData::PartialUpdateRowsEvent(_) => {
                    refusal.get_or_insert("a partial JSON update".to_string());
                    return Ok(());
                }
            };
            for row in rows.rows(map) {
                let (before, after) = decoded(|| row)
                    .map_err(|e| Error::corrupt(format!("a row of {table}: {e}")))?;
                pending.push(Change {
                    table: table.clone(),
                    kind,
                    before,
                    after,
                    columns: map.columns_count() as usize,
                    time: jiff::Timestamp::UNIX_EPOCH,
                });
            }
        }
    }
    Ok(())
}
