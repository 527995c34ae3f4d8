//! `coffer log show`: the archived changes to one database (or some of its tables) in a time
//! range, transaction by transaction, with the event to name to `restore --stop-before`.

use std::collections::BTreeMap;

use mysql_async::binlog::EventType;
use mysql_async::binlog::events::{
    EventData, QueryEvent, RowsEventData, RowsQueryEvent, TableMapEvent,
};
use serde::Serialize;

use mysql_common::binlog::row::BinlogRow;

use super::events::{Item, SegmentEvents};
use super::row_filter::RowFilter;
use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::repo::index::Index;
use crate::source::mysql::changes::{classify_statement, decoded, query_rules};

/// What to list.
#[derive(Debug, Clone)]
pub struct ShowRequest {
    pub database: String,
    /// Only these tables (all when empty).
    pub tables: Vec<String>,
    pub since: Option<jiff::Timestamp>,
    pub until: Option<jiff::Timestamp>,
    /// Only the archive of this server (`host:port` or socket path).
    pub server: Option<String>,
    /// At most this many transactions (the earliest).
    pub limit: usize,
    /// Only the changes to rows for which this SQL condition is true, before or after (judged
    /// by the server on the live table's columns, [`super::row_filter`]); DDL is then left out.
    pub filter: Option<String>,
}

/// One transaction that changed the database.
#[derive(Debug, Clone, Serialize)]
pub struct ShownTransaction {
    pub time: jiff::Timestamp,
    /// What `restore --stop-before` takes: the GTID, else `file:position`.
    pub event: String,
    pub server: String,
    pub file: String,
    pub start: u64,
    pub end: u64,
    /// Rows inserted, updated and deleted, by table.
    pub tables: BTreeMap<String, RowCounts>,
    /// DDL on the database, and the statements the server logged before row events
    /// (`binlog_rows_query_log_events`).
    pub statements: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RowCounts {
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
}

/// The transactions on `request.database` the archive holds in the range, in log order.
/// `conn` (to the live server) judges `request.filter`, which needs it.
pub async fn show(
    repo: &Repository,
    index: &Index,
    request: &ShowRequest,
    mut conn: Option<&mut mysql_async::Conn>,
) -> Result<Vec<ShownTransaction>> {
    let mut filter = match (&request.filter, conn.is_some()) {
        (None, _) => None,
        (Some(expression), true) => Some(RowFilter::new(&request.database, expression)?),
        (Some(_), false) => {
            return Err(
                Error::invalid("--where is judged by the server: it needs --mysql")
                    .with_hint("add --mysql URL of the live server (its tables give the columns)"),
            );
        }
    };
    let shown = list(repo, index, request, &mut filter, &mut conn).await;
    if let (Some(filter), Some(conn)) = (filter, conn) {
        filter.close(conn).await;
    }
    shown
}

async fn list(
    repo: &Repository,
    index: &Index,
    request: &ShowRequest,
    filter: &mut Option<RowFilter>,
    conn: &mut Option<&mut mysql_async::Conn>,
) -> Result<Vec<ShownTransaction>> {
    let segments = super::events::segments_touching(
        repo,
        &request.database,
        request.server.as_deref(),
        request.since,
        request.until,
    )
    .await?;
    let mut shown = Vec::new();
    for segment in &segments {
        let bytes = super::archive::segment_bytes(repo, index, segment).await?;
        let mut events = SegmentEvents::new(segment, &bytes)?;
        let mut tables: HashMapTables = std::collections::HashMap::new();
        let mut current = Current::default();
        while let Some(item) = events.next_item()? {
            match item {
                Item::Event(event) => read_event(&event, request, &mut tables, &mut current)?,
                Item::End(done) => {
                    let mut taken = std::mem::take(&mut current);
                    if let (Some(filter), Some(conn)) = (filter.as_mut(), conn.as_deref_mut()) {
                        keep_matching_rows(&mut taken, filter, conn).await?;
                    }
                    if !taken.touched {
                        continue;
                    }
                    let time = jiff::Timestamp::from_second(i64::from(done.last_time))
                        .map_err(|e| Error::corrupt(format!("an event time: {e}")))?;
                    if request.since.is_some_and(|since| time < since)
                        || request.until.is_some_and(|until| time > until)
                    {
                        continue;
                    }
                    shown.push(ShownTransaction {
                        time,
                        event: done
                            .gtid
                            .clone()
                            .unwrap_or_else(|| format!("{}:{}", done.file, done.start)),
                        server: segment.server.clone(),
                        file: done.file.clone(),
                        start: done.start,
                        end: done.end,
                        tables: taken.tables,
                        statements: taken.statements,
                    });
                    if shown.len() >= request.limit {
                        return Ok(shown);
                    }
                }
            }
        }
    }
    Ok(shown)
}

type HashMapTables = std::collections::HashMap<u64, TableMapEvent<'static>>;

/// The transaction being read.
#[derive(Default)]
struct Current {
    touched: bool,
    tables: BTreeMap<String, RowCounts>,
    statements: Vec<String>,
    /// The statement text of the rows that follow (ROWS_QUERY), until they show whose they are.
    rows_query: Option<String>,
    /// With `--where`: the rows, counted once judged at the transaction's end.
    rows: Vec<LoggedRow>,
}

/// One changed row, kept for `--where`.
struct LoggedRow {
    table: String,
    kind: RowKind,
    before: Option<BinlogRow>,
    after: Option<BinlogRow>,
    /// Its statement's text, if the server logged it.
    statement: Option<usize>,
}

#[derive(Clone, Copy)]
enum RowKind {
    Inserted,
    Updated,
    Deleted,
}

impl RowCounts {
    fn add(&mut self, kind: RowKind, count: u64) {
        match kind {
            RowKind::Inserted => self.inserted += count,
            RowKind::Updated => self.updated += count,
            RowKind::Deleted => self.deleted += count,
        }
    }
}

/// Count only the rows `filter` matches (before or after), with their statements.
async fn keep_matching_rows(
    current: &mut Current,
    filter: &mut RowFilter,
    conn: &mut mysql_async::Conn,
) -> Result<()> {
    let rows = std::mem::take(&mut current.rows);
    let statements = std::mem::take(&mut current.statements);
    current.touched = false;
    let mut kept_statements = Vec::new();
    for row in rows {
        if !filter
            .either_matches(conn, &row.table, row.before.as_ref(), row.after.as_ref())
            .await?
        {
            continue;
        }
        current.touched = true;
        current
            .tables
            .entry(row.table)
            .or_default()
            .add(row.kind, 1);
        if let Some(text) = row.statement.and_then(|i| statements.get(i))
            && kept_statements.last() != Some(text)
        {
            kept_statements.push(text.clone());
        }
    }
    current.statements = kept_statements;
    Ok(())
}

fn read_event(
    event: &mysql_async::binlog::events::Event,
    request: &ShowRequest,
    tables: &mut HashMapTables,
    current: &mut Current,
) -> Result<()> {
    let wanted_table = |table: &str| {
        request.tables.is_empty() || request.tables.iter().any(|t| t.eq_ignore_ascii_case(table))
    };
    let ours = |database: &str| database.eq_ignore_ascii_case(&request.database);
    match event.header().event_type() {
        Ok(EventType::TABLE_MAP_EVENT) => {
            let map: TableMapEvent<'_> = decoded(|| event.read_event())
                .map_err(|e| Error::corrupt(format!("a table map: {e}")))?;
            tables.insert(map.table_id(), map.into_owned());
        }
        Ok(EventType::ROWS_QUERY_EVENT) => {
            let query: RowsQueryEvent<'_> = decoded(|| event.read_event())
                .map_err(|e| Error::corrupt(format!("a rows query event: {e}")))?;
            current.rows_query = Some(query.query().into_owned());
        }
        Ok(EventType::QUERY_EVENT) => {
            let query: QueryEvent<'_> = decoded(|| event.read_event())
                .map_err(|e| Error::corrupt(format!("a query event: {e}")))?;
            let (class, databases) =
                classify_statement(&query.schema(), &query.query(), query_rules(&query), true);
            let names_ours = databases.map_or(true, |d| d.iter().any(|d| ours(d)));
            if names_ours
                && class != crate::source::mysql::changes::StatementClass::Control
                && request.tables.is_empty()
                && request.filter.is_none()
            {
                current.touched = true;
                current.statements.push(query.query().into_owned());
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
            if !ours(&map.database_name()) || !wanted_table(&table) {
                return Ok(());
            }
            let kind = match rows {
                RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => {
                    RowKind::Inserted
                }
                RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => {
                    RowKind::Deleted
                }
                _ => RowKind::Updated,
            };
            if let Some(text) = current.rows_query.take() {
                current.statements.push(text);
            }
            if request.filter.is_some() {
                let statement = current.statements.len().checked_sub(1);
                for row in rows.rows(map) {
                    let (before, after) = decoded(|| row)
                        .map_err(|e| Error::corrupt(format!("a row of {table}: {e}")))?;
                    current.rows.push(LoggedRow {
                        table: table.clone(),
                        kind,
                        before,
                        after,
                        statement,
                    });
                }
            } else {
                let count = rows.rows(map).count() as u64;
                current.tables.entry(table).or_default().add(kind, count);
            }
            current.touched = true;
        }
    }
    Ok(())
}
