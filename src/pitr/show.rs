//! `coffer log show`: the archived changes to one database (or some of its tables) in a time
//! range, transaction by transaction, with the event to name to `restore --stop-before`.

use std::collections::BTreeMap;

use mysql_async::binlog::EventType;
use mysql_async::binlog::events::{
    EventData, QueryEvent, RowsEventData, RowsQueryEvent, TableMapEvent,
};
use serde::Serialize;

use super::events::{Item, SegmentEvents};
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
pub async fn show(
    repo: &Repository,
    index: &Index,
    request: &ShowRequest,
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
                    let taken = std::mem::take(&mut current);
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
            let count = rows.rows(map).count() as u64;
            let counts = current.tables.entry(table).or_default();
            match rows {
                RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => {
                    counts.inserted += count
                }
                RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => {
                    counts.deleted += count
                }
                _ => counts.updated += count,
            }
            current.touched = true;
            if let Some(text) = current.rows_query.take() {
                current.statements.push(text);
            }
        }
    }
    Ok(())
}
