//! Replaying the archived binary log onto a restored copy of one database: `restore --at`.
//!
//! The copy is loaded into a staging database as for any restore; [`plan`] finds the archived
//! segments from where the copy sits in the log ([`CopyPosition`]) to the moment asked for, and
//! [`replay`] applies what the log holds for that one database, transaction by transaction, as
//! statements on the staging copy; the restore then swaps it in as usual.
//!
//! Rules (each with the test that shows it):
//! - **Only a continuous archive is replayed**: the segments from the copy's position on must
//!   chain without a recorded gap, a missing or repeated number, and must reach the moment
//!   (`point_in_time::restore_at_moments_equals_the_reference`, `…_refuses_a_gap`).
//! - **Only the database asked for**: row events replay for its tables alone, whichever
//!   statement wrote them (a multi-table update across databases included); a statement (DDL)
//!   replays when the only database it names is this one, renamed to the staging copy.
//! - **Exact or refused**: a transaction on the database that cannot be replayed exactly
//!   stops the replay before anything of it is applied, naming the event and why, with the
//!   last exact point (`--stop-before` that event): statement-format DML, a statement naming
//!   other databases too, a change of a trigger, view or routine, an XA transaction, a
//!   partial JSON update, a row image without every column, a row missing where the log
//!   changed it.
//! - **The copy's window**: transactions logged before the copy's position are in it and are
//!   skipped; inside its window (MySQL: between the lock's position and the snapshot's) they
//!   may or may not be, so they are applied as "make the row look like this" (by key, `REPLACE`)
//!   and refused on a table without a key or for DDL.
//! - **Only its share of the log is read**: a segment whose descriptor says it touched neither
//!   the database nor anything it could not attribute is skipped, so restoring many databases
//!   at a moment reads each segment once per database it touched, not once per database
//!   (`restore_estate::an_estate_at_a_moment_replays_each_database_to_it`).
//! - **Triggers do not fire, foreign keys do not cascade**: the staging copy has no triggers
//!   yet (they are created at the swap) and the replay session sets `foreign_key_checks=0`,
//!   since the log holds every row such actions changed.

use std::collections::HashMap;

use mysql_async::Conn;
use mysql_async::binlog::EventType;
use mysql_async::binlog::events::{Event, EventData, QueryEvent, RowsEventData, TableMapEvent};
use mysql_async::prelude::Queryable;
use mysql_common::binlog::row::BinlogRow;
use mysql_common::binlog::value::BinlogValue;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::repo::index::Index;
use crate::repo::log_segments::LogSegment;
use crate::repo::snapshot::{CopyPosition, DatabaseEntry, Snapshot};
use crate::source::mysql::binlog::{LoggedTransaction, file_order};
use crate::source::mysql::changes::{StatementClass, classify_statement, query_rules};
use crate::sql::{qualified, quote_ident, rename_schema};

/// Where to stop: the moment (events logged at or before it are applied), or just before one
/// event (a GTID or `file:position`, as `coffer log show` prints them).
#[derive(Debug, Clone)]
pub struct ReplayTarget {
    pub until: jiff::Timestamp,
    pub stop_before: Option<String>,
}

/// What to replay onto a copy of one database.
#[derive(Debug, Clone)]
pub struct ReplayPlan {
    /// The database as the log names it.
    pub database: String,
    pub server: String,
    pub from: CopyPosition,
    pub segments: Vec<LogSegment>,
    pub target: ReplayTarget,
    pub fold_case: bool,
    /// Only these tables (a `--table` restore): their rows, and DDL that names one of them.
    pub tables: Option<Vec<String>>,
    /// Tables whose copy has another name (`--into-table`): (name in the log, copy's name).
    /// Their rows replay into the copy; DDL naming them is refused (its text names the
    /// original).
    pub renamed: Vec<(String, String)>,
}

impl ReplayPlan {
    /// The copy's name of the log's table `table`.
    fn copy_name(&self, table: &str) -> String {
        self.renamed
            .iter()
            .find(|(original, _)| original.eq_ignore_ascii_case(table))
            .map_or_else(|| table.to_string(), |(_, copy)| copy.clone())
    }
}

/// What a replay applied.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ReplayReport {
    pub segments_read: usize,
    pub transactions_applied: u64,
    pub rows_applied: u64,
    pub statements_applied: u64,
    /// The last transaction applied: its end position and time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_applied: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_time: Option<jiff::Timestamp>,
}

/// Whether the archive holds any segment of the server the snapshot was taken from.
pub async fn archive_exists(repo: &Repository, snapshot: &Snapshot) -> Result<bool> {
    let Some(identity) = snapshot.source.server_identity.as_deref() else {
        return Ok(false);
    };
    let stream = repo.log_stream_id(&snapshot.source.server, identity);
    Ok(repo
        .list_log_segments()
        .await?
        .iter()
        .any(|l| l.stream == stream))
}

/// Find the segments that take `entry`'s copy (in `snapshot`) to `target`, checking that they
/// continue each other from the copy's position and reach the moment.
pub async fn plan(
    repo: &Repository,
    snapshot: &Snapshot,
    entry: &DatabaseEntry,
    target: ReplayTarget,
) -> Result<ReplayPlan> {
    let segments = stream_segments(repo, snapshot).await?;
    plan_from(&segments, snapshot, entry, target)
}

/// Every archived segment of the server `snapshot` was taken from, in log order (read once for
/// many databases of one backup: [`plan_from`]).
pub async fn stream_segments(repo: &Repository, snapshot: &Snapshot) -> Result<Vec<LogSegment>> {
    let identity = snapshot.source.server_identity.clone().unwrap_or_default();
    let stream = repo.log_stream_id(&snapshot.source.server, &identity);
    let listed: Vec<_> = repo
        .list_log_segments()
        .await?
        .into_iter()
        .filter(|l| l.stream == stream)
        .collect();
    repo.read_log_segments(&listed).await
}

/// [`plan`] from the stream's segments already read.
pub fn plan_from(
    segments: &[LogSegment],
    snapshot: &Snapshot,
    entry: &DatabaseEntry,
    target: ReplayTarget,
) -> Result<ReplayPlan> {
    let from = entry.log_position.clone().ok_or_else(|| {
        Error::invalid(format!(
            "the copy of {} in this snapshot does not record where it sits in the binary log (taken before coffer 0.4, or the backup account lacks REPLICATION CLIENT)",
            entry.name
        ))
        .with_hint("restore the snapshot alone with --snapshot, or take a backup now and replay from it later")
    })?;
    let server = snapshot.source.server.clone();
    let at = |file: &str, position: u64| (file.to_string(), position);
    let from_at = at(&from.from_file, from.from);
    // The first segment that ends after the copy's position.
    let first = segments
        .iter()
        .position(|s| s.transactions > 0 && after(&at(&s.file, s.end), &from_at))
        .or_else(|| {
            segments
                .iter()
                .position(|s| after(&at(&s.file, s.end), &from_at) || at(&s.file, s.end) == from_at)
        });
    let no_archive = || {
        Error::invalid(format!(
            "the archived binary log of {server} does not reach back to where the copy of {} sits ({}:{})",
            entry.name, from.from_file, from.from
        ))
        .with_hint("`coffer log list` shows what the archive covers; restore a later snapshot, or the snapshot alone with --snapshot")
    };
    let Some(first) = first else {
        return Err(no_archive());
    };
    let start = &segments[first];
    let reaches_back = if start.file == from.from_file {
        start.start <= from.from
    } else {
        // The copy sits at the end of a file: the segment before must reach it, and chain on.
        first > 0 && {
            let previous = &segments[first - 1];
            !after(&from_at, &at(&previous.file, previous.end))
                && chain_break(previous, start).is_none()
        }
    };
    if !reaches_back || start.gap_before.is_some() {
        return Err(no_archive());
    }
    let mut chosen: Vec<LogSegment> = Vec::new();
    let mut reached = false;
    for segment in &segments[first..] {
        if let Some(previous) = chosen.last()
            && let Some(why) = chain_break(previous, segment)
        {
            return Err(Error::invalid(format!(
                    "the archived binary log of {server} has a gap before {}: {why}",
                    target.until
                ))
                .with_hint("`coffer log list` names every gap; choose a moment before it, or the snapshot alone with --snapshot"));
        }
        // Past the moment: this segment's transactions are later (its first event is).
        if segment.first_time.is_some_and(|t| t > target.until) {
            reached = true;
            break;
        }
        chosen.push(segment.clone());
        // Stored by a follower that had read the whole log, after the moment: everything
        // logged by then is archived.
        if segment.caught_up && segment.archived_at >= target.until {
            reached = true;
        }
    }
    if !reached {
        let newest = chosen.last().map(|s| s.archived_at);
        return Err(Error::invalid(format!(
            "the archived binary log of {server} reaches only {} (the follower lags or stopped), not {}",
            newest.map_or_else(|| "nothing".to_string(), |t| t.to_string()),
            target.until
        ))
        .with_hint("run `coffer log sync` for the server, or choose an earlier moment"));
    }
    Ok(ReplayPlan {
        database: entry.name.clone(),
        server,
        from,
        segments: chosen,
        target,
        fold_case: false,
        tables: None,
        renamed: Vec::new(),
    })
}

fn after(a: &(String, u64), b: &(String, u64)) -> bool {
    match file_order(&a.0, &b.0) {
        std::cmp::Ordering::Equal => a.1 > b.1,
        other => other.is_gt(),
    }
}

/// Why `next` does not continue `prev`: a recorded gap, or a break in the chain
/// ([`super::coverage::chain_break`]).
fn chain_break(prev: &LogSegment, next: &LogSegment) -> Option<String> {
    match &next.gap_before {
        Some(gap) => Some(gap.reason.clone()),
        None => super::coverage::chain_break(prev, next),
    }
}

/// A column of a staging table, as replay needs it.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) data_type: String,
    pub(crate) unsigned: bool,
    pub(crate) charset: Option<String>,
    pub(crate) generated: bool,
}

/// `information_schema.COLUMNS`: name, data type, column type, character set, extra,
/// generation expression, nullable.
type ColumnRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    String,
);

/// A staging table's columns (in order) and the columns that identify a row.
#[derive(Debug, Clone)]
pub(crate) struct TableShape {
    pub(crate) columns: Vec<Column>,
    pub(crate) key: Vec<usize>,
}

/// How a transaction is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// After the copy's window: exactly as logged, every row found where the log says.
    Exact,
    /// Inside the copy's window: the copy may already hold it; make rows look as logged.
    Converge,
}

/// What a row event does to one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowKind {
    Insert,
    Update,
    Delete,
}

/// One row changed by a row event of the database.
struct RowChange {
    table: String,
    kind: RowKind,
    before: Option<BinlogRow>,
    after: Option<BinlogRow>,
    columns: usize,
}

/// One step of a transaction, applied in log order at its end.
enum Step {
    /// A DDL statement, already renamed to the staging database.
    Ddl(String),
    Row(RowChange),
}

/// Replays the log onto one staging database.
struct Replayer<'a> {
    plan: &'a ReplayPlan,
    staging: &'a str,
    tables: HashMap<u64, TableMapEvent<'static>>,
    shapes: HashMap<String, TableShape>,
    pending: Vec<Step>,
    /// Why the transaction being read cannot be replayed exactly.
    refused: Option<String>,
    report: ReplayReport,
}

/// Apply `plan` to `staging` over `conn`.
pub async fn replay(
    repo: &Repository,
    index: &Index,
    plan: &ReplayPlan,
    conn: &mut Conn,
    staging: &str,
) -> Result<ReplayReport> {
    for statement in [
        "SET SESSION foreign_key_checks = 0",
        "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'",
        "SET SESSION time_zone = '+00:00'",
        "SET NAMES utf8mb4",
    ] {
        conn.query_drop(statement)
            .await
            .map_err(|e| crate::source::mysql::mysql_error(e, "preparing the replay session"))?;
    }
    conn.query_drop(format!("USE {}", quote_ident(staging)))
        .await
        .map_err(|e| crate::source::mysql::mysql_error(e, "entering the staging database"))?;
    let mut replayer = Replayer {
        plan,
        staging,
        tables: HashMap::new(),
        shapes: HashMap::new(),
        pending: Vec::new(),
        refused: None,
        report: ReplayReport::default(),
    };
    for segment in &plan.segments {
        // A segment that touched neither the database nor anything unknown holds nothing to
        // apply (`LogSegment::touches` counts a statement it could not attribute as touching
        // every database): not read, so a restore reads only its database's share of the log.
        if segment.transactions == 0 || !segment.touches(&plan.database) {
            continue;
        }
        let bytes = super::archive::segment_bytes(repo, index, segment).await?;
        replayer.report.segments_read += 1;
        if replayer.segment(segment, &bytes, conn).await? {
            break;
        }
    }
    Ok(replayer.report)
}

impl Replayer<'_> {
    /// Replay one segment; true once the target is reached.
    async fn segment(
        &mut self,
        segment: &LogSegment,
        bytes: &[u8],
        conn: &mut Conn,
    ) -> Result<bool> {
        let mut events = super::events::SegmentEvents::new(segment, bytes)?;
        while let Some(item) = events.next_item()? {
            match item {
                super::events::Item::Event(event) => self.event(&event)?,
                super::events::Item::End(done) => {
                    if self.transaction_ends(done, conn).await? {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }

    /// Read one event into the transaction being assembled.
    fn event(&mut self, event: &Event) -> Result<()> {
        let header = event.header();
        match header.event_type() {
            Ok(EventType::TABLE_MAP_EVENT) => {
                let map: TableMapEvent<'_> =
                    crate::source::mysql::changes::decoded(|| event.read_event())
                        .map_err(|e| Error::corrupt(format!("a table map: {e}")))?;
                self.tables.insert(map.table_id(), map.into_owned());
            }
            Ok(EventType::QUERY_EVENT) => {
                let query: QueryEvent<'_> =
                    crate::source::mysql::changes::decoded(|| event.read_event())
                        .map_err(|e| Error::corrupt(format!("a query event: {e}")))?;
                self.statement(&query);
            }
            Ok(EventType::XA_PREPARE_LOG_EVENT) if !self.pending.is_empty() => {
                self.refuse("an XA transaction (its rows become visible at a later XA COMMIT)");
            }
            Ok(EventType::PARTIAL_UPDATE_ROWS_EVENT) => {
                if let Some(map) = self.rows_table(event)?
                    && self.is_ours(&map.database_name())
                {
                    self.refuse("a partial JSON update (binlog_row_value_options=PARTIAL_JSON)");
                }
            }
            Ok(
                EventType::WRITE_ROWS_EVENT
                | EventType::UPDATE_ROWS_EVENT
                | EventType::DELETE_ROWS_EVENT
                | EventType::WRITE_ROWS_EVENT_V1
                | EventType::UPDATE_ROWS_EVENT_V1
                | EventType::DELETE_ROWS_EVENT_V1,
            ) => self.rows(event)?,
            _ => {}
        }
        Ok(())
    }

    fn is_ours(&self, database: &str) -> bool {
        if self.plan.fold_case {
            database.eq_ignore_ascii_case(&self.plan.database)
        } else {
            database == self.plan.database
        }
    }

    fn refuse(&mut self, why: &str) {
        self.refused.get_or_insert_with(|| why.to_string());
    }

    fn rows_table(&self, event: &Event) -> Result<Option<TableMapEvent<'static>>> {
        let data = crate::source::mysql::changes::decoded(|| event.read_data())
            .map_err(|e| Error::corrupt(format!("a rows event: {e}")))?;
        let Some(EventData::RowsEvent(rows)) = data else {
            return Ok(None);
        };
        Ok(self.tables.get(&rows.table_id()).cloned())
    }

    /// A statement event: replayed when it is DDL on this database alone.
    fn statement(&mut self, query: &QueryEvent<'_>) {
        let schema = query.schema();
        let text = query.query();
        let rules = query_rules(query);
        let (class, databases) = classify_statement(&schema, &text, rules, self.plan.fold_case);
        let shown: String = text.chars().take(80).collect();
        let databases = match databases {
            Ok(databases) => databases,
            Err(why) => {
                if class != StatementClass::Control {
                    self.refuse(&format!(
                        "a statement whose databases cannot be named ({why})"
                    ));
                }
                return;
            }
        };
        let ours = databases.iter().any(|d| self.is_ours(d));
        if !ours {
            return;
        }
        match class {
            StatementClass::Control => {}
            StatementClass::Xa => {
                self.refuse("an XA transaction (its rows become visible at a later XA COMMIT)")
            }
            StatementClass::Dml => self.refuse(&format!(
                "a statement-format change ({shown}…): set binlog_format=ROW"
            )),
            StatementClass::Definition => self.refuse(&format!(
                "a change of a trigger, view or routine, or a dropped database ({shown}…)"
            )),
            StatementClass::CreateDatabase => {
                self.refuse(&format!("the database being created ({shown}…)"))
            }
            StatementClass::TableDdl if databases.len() > 1 => {
                self.refuse(&format!(
                    "a statement that names other databases too ({shown}…)"
                ));
            }
            StatementClass::TableDdl
                if self
                    .plan
                    .tables
                    .as_ref()
                    .is_some_and(|tables| !names_any(&text, tables)) => {}
            StatementClass::TableDdl
                if self
                    .plan
                    .renamed
                    .iter()
                    .any(|(original, _)| names_any(&text, std::slice::from_ref(original))) =>
            {
                self.refuse(&format!(
                    "DDL on a table restored under another name ({shown}…): restore it under its own name, or with --into"
                ));
            }
            StatementClass::TableDdl => {
                let rules = rules.unwrap_or_default();
                let sql = rename_schema(&text, &self.plan.database, self.staging, rules);
                self.pending.push(Step::Ddl(sql));
            }
        }
    }

    /// A rows event: statements for this database's rows, decided at the transaction's end.
    fn rows(&mut self, event: &Event) -> Result<()> {
        let data = crate::source::mysql::changes::decoded(|| event.read_data())
            .map_err(|e| Error::corrupt(format!("a rows event: {e}")))?;
        let Some(EventData::RowsEvent(rows)) = data else {
            return Ok(());
        };
        let Some(map) = self.tables.get(&rows.table_id()).cloned() else {
            return Err(Error::corrupt("a rows event without its table map"));
        };
        if !self.is_ours(&map.database_name()) {
            return Ok(());
        }
        let table = map.table_name().into_owned();
        if let Some(tables) = &self.plan.tables
            && !tables.iter().any(|t| t.eq_ignore_ascii_case(&table))
        {
            return Ok(());
        }
        let table = self.plan.copy_name(&table);
        let kind = match rows {
            RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => {
                RowKind::Insert
            }
            RowsEventData::UpdateRowsEvent(_) | RowsEventData::UpdateRowsEventV1(_) => {
                RowKind::Update
            }
            RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => {
                RowKind::Delete
            }
            RowsEventData::PartialUpdateRowsEvent(_) => {
                self.refuse("a partial JSON update (binlog_row_value_options=PARTIAL_JSON)");
                return Ok(());
            }
        };
        for row in rows.rows(&map) {
            let (before, after) = crate::source::mysql::changes::decoded(|| row)
                .map_err(|e| Error::corrupt(format!("a row of {table}: {e}")))?;
            self.pending.push(Step::Row(RowChange {
                table: table.clone(),
                kind,
                before,
                after,
                columns: map.columns_count() as usize,
            }));
        }
        Ok(())
    }

    /// A transaction ended: skip it (in the copy, or not this database's), stop (the target),
    /// refuse it, or apply it. True once the target is reached.
    async fn transaction_ends(&mut self, done: LoggedTransaction, conn: &mut Conn) -> Result<bool> {
        let steps = std::mem::take(&mut self.pending);
        let refused = self.refused.take();
        let end = (done.file.clone(), done.end);
        let from = &self.plan.from;
        if !after(&end, &(from.from_file.clone(), from.from)) {
            return Ok(false);
        }
        let event = done
            .gtid
            .clone()
            .unwrap_or_else(|| format!("{}:{}", done.file, done.start));
        if let Some(stop) = &self.plan.target.stop_before
            && (done.gtid.as_deref() == Some(stop.as_str()) || contains_position(&done, stop))
        {
            return Ok(true);
        }
        let time = jiff::Timestamp::from_second(i64::from(done.last_time))
            .map_err(|e| Error::corrupt(format!("an event time: {e}")))?;
        if time > self.plan.target.until {
            return Ok(true);
        }
        if steps.is_empty() && refused.is_none() {
            return Ok(false);
        }
        let refusal = |why: &str| {
            Error::invalid(format!(
                "cannot replay {} exactly past the transaction {event} at {time} ({}:{}): {why}; nothing was swapped in",
                self.plan.database, done.file, done.start
            ))
            .with_hint(format!(
                "the last exact point is just before it: restore with --stop-before {event} (or an earlier --at)"
            ))
        };
        if let Some(why) = refused {
            return Err(refusal(&why));
        }
        let mode = if after(&end, &(from.to_file.clone(), from.to)) {
            Mode::Exact
        } else {
            Mode::Converge
        };
        if mode == Mode::Converge && steps.iter().any(|s| matches!(s, Step::Ddl(_))) {
            return Err(refusal(
                "DDL while the copy was being taken (the copy may or may not hold it)",
            ));
        }
        run(conn, "START TRANSACTION").await?;
        for step in steps {
            match step {
                Step::Ddl(sql) => {
                    run(conn, &sql)
                        .await
                        .map_err(|e| e.context("replaying DDL"))?;
                    self.shapes.clear();
                    self.report.statements_applied += 1;
                }
                Step::Row(change) => {
                    let shape = self.shape(conn, &change.table).await?;
                    let statement = row_statement(self.staging, &change, &shape, mode)
                        .map_err(|why| refusal(&why))?;
                    run(conn, &statement.sql).await.map_err(|e| {
                        refusal(&format!("the copy refused a row of {}: {e}", change.table))
                    })?;
                    if mode == Mode::Exact && statement.must_find_one && rows_matched(conn) != 1 {
                        let _ = run(conn, "ROLLBACK").await;
                        return Err(refusal(&format!(
                            "the log changes a row of {} that the copy does not hold as the log says",
                            change.table
                        )));
                    }
                    self.report.rows_applied += 1;
                }
            }
        }
        run(conn, "COMMIT").await?;
        self.report.transactions_applied += 1;
        self.report.last_applied = Some(format!("{event} ({}:{})", done.file, done.end));
        self.report.last_time = Some(time);
        Ok(false)
    }

    /// The staging table's columns and key, read once (again after DDL).
    async fn shape(&mut self, conn: &mut Conn, table: &str) -> Result<TableShape> {
        if let Some(shape) = self.shapes.get(table) {
            return Ok(shape.clone());
        }
        let shape = table_shape(conn, self.staging, table)
            .await?
            .ok_or_else(|| {
                Error::invalid(format!(
                    "the log changes rows of table {table}, which the copy of {} does not have",
                    self.plan.database
                ))
            })?;
        self.shapes.insert(table.to_string(), shape.clone());
        Ok(shape)
    }
}

/// A table's columns (in order, as the log lists them) and the columns that identify a row:
/// the primary key, else the first unique key of NOT NULL columns, else none. `None` when the
/// table does not exist.
pub(crate) async fn table_shape(
    conn: &mut Conn,
    database: &str,
    table: &str,
) -> Result<Option<TableShape>> {
    let rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_SET_NAME, EXTRA, \
             GENERATION_EXPRESSION, IS_NULLABLE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (database, table),
        )
        .await
        .map_err(|e| {
            crate::source::mysql::mysql_error(e, &format!("reading the columns of {table}"))
        })?;
    if rows.is_empty() {
        return Ok(None);
    }
    let columns: Vec<Column> = rows
        .iter()
        .map(
            |(name, data_type, column_type, charset, extra, generation, _)| Column {
                name: name.clone(),
                data_type: data_type.to_ascii_lowercase(),
                unsigned: column_type.to_ascii_lowercase().contains("unsigned"),
                charset: charset.clone(),
                generated: generation.as_deref().is_some_and(|g| !g.is_empty())
                    || extra.to_ascii_uppercase().contains("GENERATED")
                        && !extra.to_ascii_uppercase().contains("DEFAULT_GENERATED"),
            },
        )
        .collect();
    let indexes: Vec<(String, i64, String)> = conn
        .exec(
            "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY INDEX_NAME = 'PRIMARY' DESC, \
             INDEX_NAME, SEQ_IN_INDEX",
            (database, table),
        )
        .await
        .map_err(|e| {
            crate::source::mysql::mysql_error(e, &format!("reading the keys of {table}"))
        })?;
    let not_null = |column: &str| rows.iter().any(|r| r.0 == column && r.6 == "NO");
    let mut key = Vec::new();
    let mut candidates: Vec<(String, Vec<String>)> = Vec::new();
    for (index, non_unique, column) in indexes {
        if non_unique != 0 {
            continue;
        }
        match candidates.last_mut() {
            Some((name, columns)) if *name == index => columns.push(column),
            _ => candidates.push((index, vec![column])),
        }
    }
    if let Some((_, names)) = candidates
        .iter()
        .find(|(_, names)| names.iter().all(|n| not_null(n)))
    {
        key = names
            .iter()
            .filter_map(|n| columns.iter().position(|c| &c.name == n))
            .collect();
    }
    Ok(Some(TableShape { columns, key }))
}

/// Whether statement `text` names one of `tables` (as a word, case-insensitively): DDL on
/// another table of the database leaves a `--table` restore alone.
fn names_any(text: &str, tables: &[String]) -> bool {
    let words: Vec<String> = text
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    tables
        .iter()
        .any(|t| words.iter().any(|w| *w == t.to_lowercase()))
}

/// Whether `stop` (`file:position`) lies inside `done`.
fn contains_position(done: &LoggedTransaction, stop: &str) -> bool {
    let Some((file, position)) = stop.rsplit_once(':') else {
        return false;
    };
    let Ok(position) = position.parse::<u64>() else {
        return false;
    };
    file == done.file && done.start <= position && position < done.end
}

async fn run(conn: &mut Conn, sql: &str) -> Result<()> {
    conn.query_drop(sql)
        .await
        .map_err(|e| crate::source::mysql::mysql_error(e, "replaying the binary log"))
}

/// `Rows matched: N` of the last UPDATE, or the affected rows of anything else.
fn rows_matched(conn: &Conn) -> u64 {
    let info = conn.info();
    info.split("Rows matched:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| conn.affected_rows())
}

/// A row change as SQL on the staging table.
struct RowStatement {
    sql: String,
    must_find_one: bool,
}

fn row_statement(
    staging: &str,
    change: &RowChange,
    shape: &TableShape,
    mode: Mode,
) -> std::result::Result<RowStatement, String> {
    if change.columns != shape.columns.len() {
        return Err(format!(
            "the log's row of {} has {} columns, the copy's table {}: its definition differs",
            change.table,
            change.columns,
            shape.columns.len()
        ));
    }
    let table = qualified(staging, &change.table);
    let stored: Vec<usize> = (0..shape.columns.len())
        .filter(|&i| !shape.columns[i].generated)
        .collect();
    // The values of `row` for `columns`, each present (a FULL row image) or the reason.
    let values =
        |row: &BinlogRow, columns: &[usize]| -> std::result::Result<Vec<(usize, String)>, String> {
            columns
                .iter()
                .map(|&i| match row.as_ref(i) {
                    Some(value) => literal(value, &shape.columns[i]).map(|l| (i, l)),
                    None => Err(format!(
                        "the row image of {} lacks column {} (binlog_row_image=FULL is needed)",
                        change.table, shape.columns[i].name
                    )),
                })
                .collect()
        };
    let identify = |row: &BinlogRow| -> std::result::Result<String, String> {
        let columns: Vec<usize> = if shape.key.is_empty() {
            stored.clone()
        } else {
            shape.key.clone()
        };
        let values = values(row, &columns)?;
        Ok(values
            .iter()
            .map(|(i, v)| format!("{} <=> {v}", quote_ident(&shape.columns[*i].name)))
            .collect::<Vec<_>>()
            .join(" AND "))
    };
    if mode == Mode::Converge && shape.key.is_empty() {
        return Err(format!(
            "a change of {} (no primary or unique key) while the copy was being taken",
            change.table
        ));
    }
    match change.kind {
        RowKind::Insert => {
            let after = change.after.as_ref().ok_or("an insert without its row")?;
            let present: Vec<usize> = stored
                .iter()
                .copied()
                .filter(|&i| after.as_ref(i).is_some())
                .collect();
            let values = values(after, &present)?;
            let verb = if mode == Mode::Converge {
                "REPLACE"
            } else {
                "INSERT"
            };
            Ok(RowStatement {
                sql: format!(
                    "{verb} INTO {table} ({}) VALUES ({})",
                    values
                        .iter()
                        .map(|(i, _)| quote_ident(&shape.columns[*i].name))
                        .collect::<Vec<_>>()
                        .join(", "),
                    values
                        .iter()
                        .map(|(_, v)| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                must_find_one: false,
            })
        }
        RowKind::Update => {
            let before = change
                .before
                .as_ref()
                .ok_or("an update without its old row")?;
            let after = change
                .after
                .as_ref()
                .ok_or("an update without its new row")?;
            let present: Vec<usize> = stored
                .iter()
                .copied()
                .filter(|&i| after.as_ref(i).is_some())
                .collect();
            let set = values(after, &present)?;
            Ok(RowStatement {
                sql: format!(
                    "UPDATE {table} SET {} WHERE {} LIMIT 1",
                    set.iter()
                        .map(|(i, v)| format!("{} = {v}", quote_ident(&shape.columns[*i].name)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    identify(before)?
                ),
                must_find_one: true,
            })
        }
        RowKind::Delete => {
            let before = change.before.as_ref().ok_or("a delete without its row")?;
            Ok(RowStatement {
                sql: format!("DELETE FROM {table} WHERE {} LIMIT 1", identify(before)?),
                must_find_one: true,
            })
        }
    }
}

/// A logged value as an exact SQL literal for `column` (session: `time_zone` '+00:00').
pub(crate) fn literal(
    value: &BinlogValue<'_>,
    column: &Column,
) -> std::result::Result<String, String> {
    use mysql_async::Value;
    let value = match value {
        BinlogValue::Value(value) => value,
        BinlogValue::Jsonb(json) => {
            let json = serde_json::Value::try_from(json.clone())
                .map_err(|e| format!("a JSON value of {} that cannot be read: {e}", column.name))?;
            return Ok(format!(
                "CAST(_utf8mb4 X'{}' AS JSON)",
                hex::encode(json.to_string())
            ));
        }
        BinlogValue::JsonDiff(_) => {
            return Err("a partial JSON update (binlog_row_value_options=PARTIAL_JSON)".into());
        }
    };
    Ok(match value {
        Value::NULL => "NULL".into(),
        Value::Int(n) if column.unsigned && *n < 0 => {
            let bits = match column.data_type.as_str() {
                "tinyint" => 8,
                "smallint" => 16,
                "mediumint" => 24,
                "int" | "integer" => 32,
                _ => 64,
            };
            let unsigned = (*n as u64) & (u64::MAX >> (64 - bits));
            unsigned.to_string()
        }
        Value::Int(n) => n.to_string(),
        Value::UInt(n) => n.to_string(),
        // Exact: an f32 widens to f64 without loss, and the shortest text of an f64 reads back
        // as the same f64.
        Value::Float(x) => format!("{:e}", f64::from(*x)),
        Value::Double(x) => format!("{x:e}"),
        Value::Date(y, m, d, h, i, s, us) => {
            if column.data_type == "date" {
                format!("'{y:04}-{m:02}-{d:02}'")
            } else {
                format!("'{y:04}-{m:02}-{d:02} {h:02}:{i:02}:{s:02}.{us:06}'")
            }
        }
        Value::Time(negative, days, h, m, s, us) => format!(
            "'{}{}:{m:02}:{s:02}.{us:06}'",
            if *negative { "-" } else { "" },
            u64::from(*days) * 24 + u64::from(*h)
        ),
        Value::Bytes(bytes) => bytes_literal(bytes, column)?,
    })
}

/// Bytes as the binary-log decoder gives them, by the column's type.
fn bytes_literal(bytes: &[u8], column: &Column) -> std::result::Result<String, String> {
    let text = || {
        std::str::from_utf8(bytes)
            .map_err(|_| format!("a value of {} that is not text", column.name))
    };
    let digits = |t: &str| {
        t.bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
    };
    Ok(match column.data_type.as_str() {
        // Seconds since the epoch (and microseconds): a UTC time, as the session reads it.
        "timestamp" => {
            let t = text()?;
            let (seconds, micros) = t.split_once('.').unwrap_or((t, "0"));
            let seconds: i64 = seconds.parse().map_err(|_| format!("a TIMESTAMP {t:?}"))?;
            let micros: i32 = micros.parse().map_err(|_| format!("a TIMESTAMP {t:?}"))?;
            if seconds == 0 && micros == 0 {
                "'0000-00-00 00:00:00'".into()
            } else {
                let at = jiff::Timestamp::new(seconds, micros * 1000)
                    .map_err(|e| format!("a TIMESTAMP {t:?}: {e}"))?;
                format!("'{}'", at.strftime("%Y-%m-%d %H:%M:%S.%6f"))
            }
        }
        "decimal" | "newdecimal" => {
            let t = text()?;
            if !digits(t) {
                return Err(format!("a DECIMAL {t:?}"));
            }
            t.to_string()
        }
        // The decoder adds 1900 to the stored byte; 0 is the year 0000.
        "year" => {
            let t = text()?;
            if !digits(t) {
                return Err(format!("a YEAR {t:?}"));
            }
            if t == "1900" {
                "0".into()
            } else {
                t.to_string()
            }
        }
        // A SET is its bit mask, little-endian; a BIT its bits, big-endian.
        "set" => bytes
            .iter()
            .rev()
            .fold(0u64, |n, b| (n << 8) | u64::from(*b))
            .to_string(),
        "bit" => bytes
            .iter()
            .fold(0u64, |n, b| (n << 8) | u64::from(*b))
            .to_string(),
        _ => match column.charset.as_deref() {
            Some(charset)
                if charset != "binary"
                    && charset
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                format!("_{charset} X'{}'", hex::encode(bytes))
            }
            _ => format!("X'{}'", hex::encode(bytes)),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::Value;

    fn column(data_type: &str, unsigned: bool, charset: Option<&str>) -> Column {
        Column {
            name: "c".into(),
            data_type: data_type.into(),
            unsigned,
            charset: charset.map(str::to_string),
            generated: false,
        }
    }

    #[test]
    fn logged_values_become_exact_literals() {
        let v = |value: Value| BinlogValue::Value(value);
        let cases = [
            (v(Value::Int(-1)), column("int", true, None), "4294967295"),
            (v(Value::Int(-1)), column("tinyint", true, None), "255"),
            (v(Value::Int(-5)), column("int", false, None), "-5"),
            (
                v(Value::Float(1.1)),
                column("float", false, None),
                "1.100000023841858e0",
            ),
            (v(Value::Double(0.1)), column("double", false, None), "1e-1"),
            (
                v(Value::Bytes(b"12.50".to_vec())),
                column("decimal", false, None),
                "12.50",
            ),
            (
                v(Value::Bytes(b"1900".to_vec())),
                column("year", false, None),
                "0",
            ),
            (
                v(Value::Bytes(vec![5, 1])),
                column("set", false, None),
                "261",
            ),
            (
                v(Value::Bytes(vec![1, 0])),
                column("bit", false, None),
                "256",
            ),
            (
                v(Value::Bytes(b"1700000000".to_vec())),
                column("timestamp", false, None),
                "'2023-11-14 22:13:20.000000'",
            ),
            (
                v(Value::Bytes(b"0".to_vec())),
                column("timestamp", false, None),
                "'0000-00-00 00:00:00'",
            ),
            (
                v(Value::Bytes("é'".as_bytes().to_vec())),
                column("varchar", false, Some("utf8mb4")),
                "_utf8mb4 X'c3a927'",
            ),
            (
                v(Value::Bytes(vec![0, 255])),
                column("blob", false, Some("binary")),
                "X'00ff'",
            ),
            (
                v(Value::Date(2026, 11, 24, 16, 54, 30, 5)),
                column("datetime", false, None),
                "'2026-11-24 16:54:30.000005'",
            ),
            (
                v(Value::Date(2026, 11, 24, 0, 0, 0, 0)),
                column("date", false, None),
                "'2026-11-24'",
            ),
            (
                v(Value::Time(true, 1, 2, 3, 4, 0)),
                column("time", false, None),
                "'-26:03:04.000000'",
            ),
            (v(Value::NULL), column("int", false, None), "NULL"),
        ];
        for (value, column, expected) in cases {
            assert_eq!(
                literal(&value, &column).unwrap(),
                expected,
                "{value:?} as {}",
                column.data_type
            );
        }
        // Text that is not a number is never pasted into SQL.
        assert!(
            literal(
                &v(Value::Bytes(b"1;DROP".to_vec())),
                &column("decimal", false, None)
            )
            .is_err()
        );
        assert!(
            bytes_literal(b"x", &column("varchar", false, Some("utf8mb4' OR 1")))
                .unwrap()
                .starts_with("X'")
        );
    }

    #[test]
    fn stop_positions_name_a_transaction() {
        let done = LoggedTransaction {
            bytes: Vec::new(),
            events: 3,
            file: "binlog.000002".into(),
            start: 100,
            end: 400,
            first_time: 0,
            last_time: 0,
            gtid: None,
        };
        assert!(contains_position(&done, "binlog.000002:100"));
        assert!(contains_position(&done, "binlog.000002:399"));
        assert!(!contains_position(&done, "binlog.000002:400"));
        assert!(!contains_position(&done, "binlog.000001:200"));
        assert!(!contains_position(&done, "nonsense"));
    }
}
