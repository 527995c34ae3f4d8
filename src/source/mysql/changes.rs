//! Which databases and tables changed on the server since a binary-log position (issue 10).
//!
//! Reads the binary log over the replication protocol from a position to its current end
//! (non-blocking dump) and attributes each event: row events through the table map that precedes
//! them name their table; statement-format events (`QUERY_EVENT`: DDL, and DML under
//! `binlog_format=STATEMENT/MIXED`) name their default database and every database the
//! statement qualifies a name with. An event that cannot be attributed with certainty — a
//! statement with no default database and no qualified name, `LOAD DATA` events, an incident,
//! an event type this code does not know — makes every database count as changed (`all`).
//!
//! Statement-format DML is widened further: a trigger, a view or a stored function can write
//! a database the statement never names (row-format events name every table they write, so
//! they need nothing more). [`expand_statement_reach`] adds every database the definitions of
//! the named ones mention, transitively; a definition it cannot read, or one changed within
//! the scanned range, makes every database count.

use std::collections::BTreeSet;

use futures_util::StreamExt;
use mysql_async::BinlogStreamRequest;
use mysql_async::binlog::EventType;
use mysql_async::binlog::StatusVarKey;
use mysql_async::binlog::events::{
    QueryEvent, RotateEvent, StatusVarVal, TableMapEvent, TransactionPayloadEvent,
};
use mysql_async::consts::SqlMode;

use crate::sql::QuoteRules;

use super::MysqlTarget;
use crate::error::{Error, ErrorKind, Result};
use crate::repo::snapshot::BinlogPosition;

/// What changed between two binary-log positions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Databases with at least one change attributed to them.
    pub databases: BTreeSet<String>,
    /// Tables changed by row events, as `(database, table)`.
    pub tables: BTreeSet<(String, String)>,
    /// Databases where any table may have changed: named by a statement (DDL, statement-format
    /// DML), or reached through definitions or cascading foreign keys. In the other changed
    /// databases, only the tables row events named changed.
    pub whole_databases: BTreeSet<String>,
    /// Databases named by statement-format DML (`binlog_format=STATEMENT/MIXED`). Such a
    /// statement can also write databases it does not name, through a trigger, a view or a
    /// stored function: the caller widens these with [`expand_statement_reach`].
    pub statement_databases: BTreeSet<String>,
    /// Databases created within the scanned range: every definition they had is in the range.
    pub created_databases: BTreeSet<String>,
    /// What definitions created or changed within the range name (their bodies are in the
    /// log): by database, the databases such a definition in it mentions.
    pub defined_in_range: std::collections::BTreeMap<String, BTreeSet<String>>,
    /// Databases, existing before the range, where a trigger, view or routine was dropped or
    /// replaced (or that were dropped), with the statement: what the old definition reached is
    /// nowhere to be read any more.
    pub replaced_definitions: std::collections::BTreeMap<String, String>,
    /// Why every database must count as changed, if one event could not be attributed.
    pub all: Option<String>,
    /// Names are compared as the server compares them: folded to lowercase under
    /// `lower_case_table_names` 1 or 2 (Azure's default is 1), where a statement may write
    /// `Sales.Orders` for the `sales`.`orders` the server lists.
    pub fold_case: bool,
    /// XA transactions whose `XA START` lies in the scanned range (their rows, logged at
    /// `XA PREPARE`, were attributed), by normalised XID.
    pub xa_started: BTreeSet<String>,
    /// The file and position the scan stopped at (the end of the log when it ran).
    pub end_file: String,
    pub end_position: u64,
}

impl Changes {
    /// An empty scan of a server that compares names case-insensitively (`fold_case`).
    pub fn new(fold_case: bool) -> Self {
        Changes {
            fold_case,
            ..Changes::default()
        }
    }

    /// An empty scan continuing this one (same name comparison; the XA transactions started
    /// in this part are known to the next).
    pub fn continuation(&self) -> Self {
        Changes {
            fold_case: self.fold_case,
            xa_started: self.xa_started.clone(),
            end_file: self.end_file.clone(),
            end_position: self.end_position,
            ..Changes::default()
        }
    }

    /// `name` as the server compares it.
    fn name(&self, name: &str) -> String {
        if self.fold_case {
            name.to_lowercase()
        } else {
            name.to_string()
        }
    }

    /// Whether database `name` may have changed.
    pub fn database_changed(&self, name: &str) -> bool {
        self.all.is_some() || self.databases.contains(&self.name(name))
    }

    /// Whether table `table` of `database` may have changed.
    pub fn table_changed(&self, database: &str, table: &str) -> bool {
        let database = self.name(database);
        self.all.is_some()
            || self.whole_databases.contains(&database)
            || self.tables.contains(&(database, self.name(table)))
    }

    /// Add the changes of the log right after this one's end (`later` starts where this
    /// scan stopped).
    pub fn append(&mut self, later: Changes) {
        self.databases.extend(later.databases);
        self.tables.extend(later.tables);
        self.whole_databases.extend(later.whole_databases);
        self.statement_databases.extend(later.statement_databases);
        for (db, names) in later.defined_in_range {
            self.defined_in_range.entry(db).or_default().extend(names);
        }
        for (db, statement) in later.replaced_definitions {
            // Every definition of a database created in the earlier part is in the range.
            if !self.created_databases.contains(&db) {
                self.replaced_definitions.entry(db).or_insert(statement);
            }
        }
        self.created_databases.extend(later.created_databases);
        self.xa_started.extend(later.xa_started);
        if let Some(why) = later.all {
            self.everything(why);
        }
        self.end_file = later.end_file;
        self.end_position = later.end_position;
    }

    fn everything(&mut self, why: String) {
        self.all.get_or_insert(why);
    }

    fn whole(&mut self, database: String) -> bool {
        let database = self.name(&database);
        self.whole_databases.insert(database.clone());
        self.databases.insert(database)
    }
}

/// Scan the binary log of `target` from `from` to its current end, adding to `changes` (a
/// [`Changes::new`], or the [`Changes::continuation`] of the scan that ended at `from`).
/// `server_id` must differ from every replica of the server (the dump registers as a replica
/// for its duration).
pub async fn changes_since(
    target: &MysqlTarget,
    from: &BinlogPosition,
    server_id: u32,
    mut changes: Changes,
) -> Result<Changes> {
    let mut conn = target.connect().await?;
    if super::is_mariadb(&conn) {
        super::binlog::announce_mariadb_replica(&mut conn).await?;
    }
    let request = BinlogStreamRequest::new(server_id)
        .with_filename(from.file.as_bytes())
        .with_pos(from.position)
        .with_non_blocking();
    let mut stream = conn.get_binlog_stream(request).await.map_err(|e| {
        Error::new(
            ErrorKind::Storage,
            format!(
                "reading the binary log of {} from {}:{}",
                target.describe(),
                from.file,
                from.position
            ),
        )
        .with_source(e)
        .with_hint("the user needs REPLICATION SLAVE (MariaDB: also BINLOG MONITOR); a purged binlog file means a full read")
    })?;
    changes.end_file = from.file.clone();
    changes.end_position = from.position;
    loop {
        // The driver decodes each event with the same decoder as `decoded` guards.
        let next =
            futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(stream.next()))
                .await
                .map_err(|_| {
                    Error::corrupt("the server sent a binary-log event the decoder cannot read")
                })?;
        let Some(event) = next else {
            break;
        };
        let event = event.map_err(|e| {
            Error::new(ErrorKind::Storage, "reading a binary-log event").with_source(e)
        })?;
        let header = event.header();
        if header.log_pos() > 0 {
            changes.end_position = u64::from(header.log_pos());
        }
        // The driver yields a compressed transaction's inner events after it.
        attribute_event(&event, Payload::InnerEventsFollow, &mut changes)?;
    }
    // The non-blocking dump ends with EOF; the connection is spent.
    let _ = stream.close().await;
    Ok(changes)
}

/// What to do with a compressed transaction's inner events.
pub(crate) enum Payload<'a> {
    /// The server stream yields them after the payload event (mysql_async expands it).
    InnerEventsFollow,
    /// Expand them here, with the reader of the file the payload came from.
    Expand(&'a mut mysql_common::binlog::EventStreamReader),
}

/// Attribute one binary-log event to what it changed.
pub(crate) fn attribute_event(
    event: &mysql_async::binlog::events::Event,
    payload: Payload<'_>,
    changes: &mut Changes,
) -> Result<()> {
    let header = event.header();
    match event.header().event_type() {
        Ok(EventType::TABLE_MAP_EVENT) => {
            let map: TableMapEvent<'_> = decoded(|| event.read_event()).map_err(unreadable)?;
            changes.table_written(&map.database_name(), &map.table_name());
        }
        Ok(EventType::QUERY_EVENT) => {
            let query: QueryEvent<'_> = decoded(|| event.read_event()).map_err(unreadable)?;
            let mode = query_rules(&query);
            attribute_statement(&query.schema(), &query.query(), mode, changes);
        }
        // The server opens the dump with an artificial rotate (time 0) naming where it
        // starts, sent before the format description, so with its checksum still attached.
        Ok(EventType::ROTATE_EVENT) if header.timestamp() == 0 => {}
        Ok(EventType::ROTATE_EVENT) => {
            let rotate: RotateEvent<'_> = decoded(|| event.read_event()).map_err(unreadable)?;
            changes.end_file = rotate.name().into_owned();
            changes.end_position = rotate.position();
        }
        // Row events are attributed through their table map; the rest carry no data.
        Ok(
            EventType::WRITE_ROWS_EVENT
            | EventType::UPDATE_ROWS_EVENT
            | EventType::DELETE_ROWS_EVENT
            | EventType::WRITE_ROWS_EVENT_V1
            | EventType::UPDATE_ROWS_EVENT_V1
            | EventType::DELETE_ROWS_EVENT_V1
            | EventType::PARTIAL_UPDATE_ROWS_EVENT
            | EventType::FORMAT_DESCRIPTION_EVENT
            | EventType::XID_EVENT
            | EventType::GTID_EVENT
            | EventType::GTID_TAGGED_LOG_EVENT
            | EventType::ANONYMOUS_GTID_EVENT
            | EventType::PREVIOUS_GTIDS_EVENT
            | EventType::HEARTBEAT_EVENT
            | EventType::ROWS_QUERY_EVENT
            | EventType::INTVAR_EVENT
            | EventType::RAND_EVENT
            | EventType::USER_VAR_EVENT
            | EventType::STOP_EVENT
            | EventType::IGNORABLE_EVENT
            | EventType::TRANSACTION_CONTEXT_EVENT
            | EventType::VIEW_CHANGE_EVENT
            | EventType::XA_PREPARE_LOG_EVENT,
        ) => {}
        // MySQL's compressed transactions (binlog_transaction_compression, 8.0.20+): one
        // that cannot be decompressed would hide its events, so it counts as everything.
        // The driver yields the inner events after it, but on a payload it cannot
        // decompress it yields none, silently.
        Ok(EventType::TRANSACTION_PAYLOAD_EVENT) => {
            let inner = decoded(|| {
                event
                    .read_event::<TransactionPayloadEvent<'_>>()
                    .map(TransactionPayloadEvent::danger_decompress)
            })
            .ok()
            .filter(|bytes| !bytes.is_empty());
            match (inner, payload) {
                (None, _) => {
                    changes.everything("an undecodable compressed transaction".to_string())
                }
                (Some(_), Payload::InnerEventsFollow) => {}
                (Some(bytes), Payload::Expand(reader)) => {
                    check_framing(&bytes, 0)?;
                    let mut cursor = std::io::Cursor::new(bytes);
                    while let Some(inner) = decoded(|| reader.read_decompressed(&mut cursor))
                        .map_err(|e| unreadable(e).context("a compressed transaction"))?
                    {
                        attribute_event(&inner, Payload::InnerEventsFollow, changes)?;
                    }
                }
            }
        }
        Ok(other) => changes.everything(format!("a {other:?} in the binary log")),
        Err(_) => {
            let raw = header.event_type_raw();
            if !WITHOUT_DATA.contains(&raw) {
                changes.everything(format!(
                    "binary-log event type {raw} this coffer does not attribute"
                ));
            }
        }
    }
    Ok(())
}

/// The changes a binary-log file records after position `from` (events ending at or before it
/// are read but not attributed), compressed transactions expanded: what a scan reading the same
/// events from a server attributes. Replays real MySQL 8 logs in tests
/// (tests/mysql8_binlogs.rs), where no MySQL 8 server can run.
pub fn changes_in_binlog_file(bytes: &[u8], from: u64, fold_case: bool) -> Result<Changes> {
    check_framing(bytes, 4)?;
    let mut file = mysql_common::binlog::BinlogFile::new(
        mysql_common::binlog::consts::BinlogVersion::Version4,
        bytes,
    )
    .map_err(|e| unreadable(e).context("a binary-log file header"))?;
    let mut changes = Changes::new(fold_case);
    while let Some(event) = decoded(|| file.next().transpose()).transpose() {
        let event = event.map_err(unreadable)?;
        let end = u64::from(event.header().log_pos());
        if end > 0 && end <= from {
            continue;
        }
        changes.end_position = changes.end_position.max(end);
        attribute_event(&event, Payload::Expand(file.reader_mut()), &mut changes)?;
    }
    Ok(changes)
}

/// Run one call into the binary-log decoder (mysql_common), turning a panic into an error:
/// it indexes past the end of some malformed event bodies instead of failing (found by
/// tests/decoders.rs). An event that cannot be decoded is an error, so what it changed is
/// never silently missed.
pub(crate) fn decoded<T>(decode: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).unwrap_or_else(|_| {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the decoder could not read a malformed event",
        ))
    })
}

/// Check that the events from `start` on each fit what is left and hold at least a header,
/// before the decoder reads them: it allocates what an event's header claims and panics on an
/// event cut short (mysql_common 0.37 `Event::read`), and a file from storage or a damaged log
/// may be either.
fn check_framing(bytes: &[u8], start: usize) -> Result<()> {
    check_framing_of(bytes, start)
}

/// [`check_framing`] for other readers of stored binary logs (`crate::pitr::replay`).
pub(crate) fn check_framing_of(bytes: &[u8], start: usize) -> Result<()> {
    const HEADER: usize = 19;
    let mut at = start;
    while at < bytes.len() {
        let size = bytes
            .get(at + 9..at + 13)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(|b| u32::from_le_bytes(b) as usize);
        match size {
            Some(size)
                if size >= HEADER && at.checked_add(size).is_some_and(|end| end <= bytes.len()) =>
            {
                at += size;
            }
            _ => {
                return Err(Error::corrupt(format!(
                    "the binary-log event at offset {at} is cut short or claims more bytes than there are"
                )));
            }
        }
    }
    Ok(())
}

/// Event types the driver does not know that carry no row data: MySQL 8's HEARTBEAT_V2 (41);
/// MariaDB's ANNOTATE_ROWS (160), BINLOG_CHECKPOINT (161), GTID (162), GTID_LIST (163),
/// START_ENCRYPTION (164). MariaDB's compressed query and rows events (165-171) are not
/// attributed here and count as "everything". (MySQL 8.4's tagged GTID, 42, the driver knows.)
const WITHOUT_DATA: [u8; 6] = [41, 160, 161, 162, 163, 164];

fn unreadable(e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Storage,
        "a binary-log event could not be decoded",
    )
    .with_source(e)
}

/// How the server read a query event's statement, from the `sql_mode` stored with it.
pub(crate) fn query_rules(query: &QueryEvent<'_>) -> Option<QuoteRules> {
    query
        .status_vars()
        .get_status_var(StatusVarKey::SqlMode)
        .and_then(|var| match var.get_value() {
            Ok(StatusVarVal::SqlMode(mode)) => Some(rules_of(mode.get())),
            _ => None,
        })
}

/// What a replay must know of one logged statement (`crate::pitr::replay`).
#[derive(Debug, PartialEq, Eq)]
pub enum StatementClass {
    /// `BEGIN`, `COMMIT`, `ROLLBACK`, savepoints, comments: no change of its own.
    Control,
    /// An XA statement.
    Xa,
    /// Writes rows (statement-format DML, `CREATE TABLE … SELECT`).
    Dml,
    /// Creates, alters or drops a trigger, view or routine, or drops a database.
    Definition,
    CreateDatabase,
    /// DDL on tables and the like.
    TableDdl,
}

/// Classify a logged statement and name the databases it may change (as the server compares
/// names), or why they cannot be named.
pub fn classify_statement(
    schema: &str,
    query: &str,
    rules: Option<QuoteRules>,
    fold_case: bool,
) -> (
    StatementClass,
    std::result::Result<BTreeSet<String>, String>,
) {
    let upper = query.trim_start().to_ascii_uppercase();
    let mut changes = Changes::new(fold_case);
    attribute_statement(schema, query, rules, &mut changes);
    let databases = match changes.all {
        Some(why) => Err(why),
        None => Ok(changes.databases),
    };
    let class = if upper.starts_with("XA ") {
        StatementClass::Xa
    } else if [
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT",
        "RELEASE SAVEPOINT",
    ]
    .iter()
    .any(|k| upper.starts_with(k))
        || (upper.starts_with('#') && !upper.contains('\n'))
    {
        StatementClass::Control
    } else {
        match statement_kind(&upper) {
            StatementKind::Dml => StatementClass::Dml,
            StatementKind::Definition { .. } => StatementClass::Definition,
            StatementKind::CreateDatabase => StatementClass::CreateDatabase,
            StatementKind::OtherDdl => StatementClass::TableDdl,
        }
    };
    (class, databases)
}

/// How the server read an event's statement: the two bits of its stored `sql_mode` that move
/// names and strings (0x4 `ANSI_QUOTES`, 0x100000 `NO_BACKSLASH_ESCAPES`: the same bits in MySQL 8,
/// `sql/system_variables.h`, and MariaDB; docs/ARCHITECTURE.md, "MySQL 8 dialect").
fn rules_of(mode: SqlMode) -> QuoteRules {
    QuoteRules {
        ansi_quotes: mode.contains(SqlMode::MODE_ANSI_QUOTES),
        no_backslash_escapes: mode.contains(SqlMode::MODE_NO_BACKSLASH_ESCAPES),
    }
}

/// The rules to read a statement with: its own, or, when none is known (an event that does not
/// store it, a definition's body), with and without `ANSI_QUOTES` (what either reading names
/// counts). Backslashes read the same both ways: a body made under NO_BACKSLASH_ESCAPES that
/// ends a string with one is unreadable, so it counts as reaching anything.
fn candidate_rules(rules: Option<QuoteRules>) -> Vec<QuoteRules> {
    match rules {
        Some(rules) => vec![rules],
        None => vec![
            QuoteRules::default(),
            QuoteRules {
                ansi_quotes: true,
                no_backslash_escapes: false,
            },
        ],
    }
}

impl Changes {
    /// A row event's table (named by its table map) was written.
    pub(crate) fn table_written(&mut self, database: &str, table: &str) {
        self.mark_table(database, table);
    }

    /// Count table `table` of `database` as changed; whether it was not already.
    fn mark_table(&mut self, database: &str, table: &str) -> bool {
        if self.table_changed(database, table) {
            return false;
        }
        let (database, table) = (self.name(database), self.name(table));
        self.databases.insert(database.clone());
        self.tables.insert((database, table))
    }

    /// An `XA …` statement. Rows of an XA transaction are logged at its `XA PREPARE`, inside
    /// `XA START … XA END`; the `XA COMMIT` that makes them visible may come much later, as a
    /// statement naming nothing (docs/ARCHITECTURE.md, "Change tracking"). A commit whose start
    /// is not in the scanned range had its rows logged before it: they cannot be attributed,
    /// so every database counts as changed. `XA COMMIT … ONE PHASE` has its rows with it.
    fn xa_statement(&mut self, upper: &str, query: &str) {
        let mut words = upper.split_whitespace().skip(1);
        let verb = words.next().unwrap_or_default();
        let rest: Vec<&str> = words.collect();
        let xid = normalized_xid(&rest);
        match verb {
            "START" | "BEGIN" => {
                self.xa_started.insert(xid);
            }
            "COMMIT"
                if !upper.trim_end().ends_with("ONE PHASE") && !self.xa_started.contains(&xid) =>
            {
                let shown: String = query.chars().take(80).collect();
                self.everything(format!(
                    "an XA transaction prepared before the scanned range was committed in it ({shown}): its rows were logged at its XA PREPARE"
                ));
            }
            // END, PREPARE, ROLLBACK, RECOVER, ONE PHASE commits: nothing beyond what the
            // events between START and PREPARE already named.
            _ => {}
        }
    }
}

/// An XID as the log writes it (`X'…',X'…',1`, or as typed), without the options that may
/// follow it, spaces and case: the same transaction's START and COMMIT give the same text.
fn normalized_xid(words: &[&str]) -> String {
    let options = [
        "ONE", "PHASE", "JOIN", "RESUME", "SUSPEND", "FOR", "MIGRATE",
    ];
    let end = words
        .iter()
        .position(|w| options.contains(w))
        .unwrap_or(words.len());
    words[..end].concat()
}

/// Attribute a statement-format event: transaction control changes nothing; anything else
/// changes its default database and every database it names as a qualifier (`db.t`,
/// `` `db`.`t` ``, `"db"."t"` under `ANSI_QUOTES`, inside executable comments too), read in
/// the statement's own `sql_mode` (`None`: not stored, read both ways); with neither, or text
/// that cannot be read with certainty, every database may have changed.
fn attribute_statement(schema: &str, query: &str, mode: Option<QuoteRules>, changes: &mut Changes) {
    let trimmed = query.trim_start().to_ascii_uppercase();
    // A comment alone changes nothing: MariaDB sends events a replica that did not announce
    // its capabilities cannot handle (GTID, annotate) as `# Dummy event …` statements.
    let only_comment = trimmed.starts_with('#') && !trimmed.contains('\n');
    if trimmed.starts_with("XA ") {
        changes.xa_statement(&trimmed, query);
        return;
    }
    let control = [
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT",
        "RELEASE SAVEPOINT",
    ]
    .iter()
    .any(|keyword| trimmed.starts_with(keyword));
    if only_comment || control {
        return;
    }
    let mut qualifiers = BTreeSet::new();
    for mode in candidate_rules(mode) {
        match qualifiers_in(query, mode) {
            Ok(found) => qualifiers.extend(found),
            Err(why) => {
                let shown: String = query.chars().take(60).collect();
                changes.everything(format!("a statement with {why} ({shown}…)"));
                return;
            }
        }
    }
    if schema.is_empty() && qualifiers.is_empty() {
        let shown: String = query.chars().take(60).collect();
        changes.everything(format!("a statement with no database ({shown}…)"));
        return;
    }
    let named: BTreeSet<String> = qualifiers
        .into_iter()
        .chain((!schema.is_empty()).then(|| schema.to_string()))
        .map(|name| changes.name(&name))
        .collect();
    match statement_kind(&trimmed) {
        StatementKind::Dml => changes.statement_databases.extend(named.iter().cloned()),
        StatementKind::Definition { replaces } => {
            for db in &named {
                changes
                    .defined_in_range
                    .entry(db.clone())
                    .or_default()
                    .extend(named.iter().cloned());
            }
            if replaces {
                let shown: String = query.chars().take(60).collect();
                for db in named.difference(&changes.created_databases) {
                    changes
                        .replaced_definitions
                        .entry(db.clone())
                        .or_insert_with(|| shown.clone());
                }
            }
        }
        StatementKind::CreateDatabase => {
            changes.created_databases.extend(named.iter().cloned());
        }
        StatementKind::OtherDdl => {}
    }
    for db in named {
        changes.whole(db);
    }
}

#[derive(Debug, PartialEq, Eq)]
enum StatementKind {
    /// Writes rows, and may fire triggers or call functions that write elsewhere.
    Dml,
    /// Creates, or (`replaces`) alters, replaces or drops, what a DML statement can reach
    /// other databases through: a trigger, view, routine, or a whole database being dropped.
    Definition {
        replaces: bool,
    },
    CreateDatabase,
    /// DDL on tables, users and the like: writes only what it names, fires nothing.
    OtherDdl,
}

/// Classify an upper-cased statement. Over-inclusive where unsure: anything not recognised as
/// DDL counts as DML, and a DDL naming one of the reaching object kinds among its leading
/// words counts as a definition.
fn statement_kind(upper: &str) -> StatementKind {
    let words: Vec<&str> = upper
        .split(|c: char| c.is_whitespace() || c == '(' || c == '`')
        .filter(|w| !w.is_empty())
        .take(12)
        .collect();
    let first = words.first().copied().unwrap_or_default();
    if !matches!(
        first,
        "CREATE" | "ALTER" | "DROP" | "RENAME" | "TRUNCATE" | "GRANT" | "REVOKE"
    ) {
        return StatementKind::Dml;
    }
    let database = words.iter().any(|w| *w == "DATABASE" || *w == "SCHEMA");
    let reaching = ["VIEW", "TRIGGER", "FUNCTION", "PROCEDURE", "PACKAGE"];
    if (first == "DROP" && database) || words.iter().any(|w| reaching.contains(w)) {
        StatementKind::Definition {
            replaces: first != "CREATE" || words.contains(&"REPLACE"),
        }
    } else if first == "CREATE" && database {
        StatementKind::CreateDatabase
    } else if upper.contains("SELECT") {
        // CREATE TABLE … SELECT can call stored functions like any DML.
        StatementKind::Dml
    } else {
        StatementKind::OtherDdl
    }
}

/// What the definitions in each database mention: the databases its triggers, views and
/// routines name as qualifiers, or `None` when one of them could not be read (no privilege to
/// see its body), so it may reach anything.
pub type DefinitionReach = std::collections::HashMap<String, Option<BTreeSet<String>>>;

/// Read what the definitions of `db` mention, for [`DefinitionReach`] (`None`: one cannot be
/// read, or read with certainty).
pub async fn database_reach(
    conn: &mut mysql_async::Conn,
    db: &str,
) -> Result<Option<BTreeSet<String>>> {
    Ok(super::catalog::definition_bodies(conn, db)
        .await?
        .and_then(|bodies| {
            bodies.iter().try_fold(BTreeSet::new(), |mut all, body| {
                all.extend(definition_qualifiers(body)?);
                Some(all)
            })
        }))
}

/// Widen `changes` with the tables foreign keys cascade into from a changed table, inside a
/// database or across databases, transitively (cascades fire no triggers, so nothing else
/// follows from them). An edge whose parent cannot be named fires on any change; a child whose
/// table cannot be named makes its whole database count, and one whose database cannot be
/// named, every database.
pub fn expand_cascades(changes: &mut Changes, edges: &[super::catalog::CascadeEdge]) {
    loop {
        let mut grew = false;
        for edge in edges {
            let fires = match &edge.parent {
                Some((database, table)) => changes.table_changed(database, table),
                None => !changes.databases.is_empty(),
            };
            if !fires {
                continue;
            }
            match (&edge.child_database, &edge.child_table) {
                (Some(database), Some(table)) => grew |= changes.mark_table(database, table),
                (Some(database), None) => grew |= changes.whole(database.clone()),
                (None, _) => {
                    let parent = edge
                        .parent
                        .as_ref()
                        .map(|(db, t)| format!("{db}.{t}"))
                        .unwrap_or_else(|| "a table".to_string());
                    changes.everything(format!(
                        "a foreign key cascading from {parent} into a database whose name could not be read"
                    ));
                    return;
                }
            }
        }
        if !grew {
            return;
        }
    }
}

/// Widen `changes.databases` with every database statement-format DML may have written through
/// definitions (transitively: a trigger calling a function in a third database). Makes every
/// database count when a database so reached had a definition that existed before the range
/// replaced or dropped in it (what it reached cannot be read any more), or holds one this
/// account cannot read. Definitions created in the range are in the log and count too.
///
/// Returns the databases whose definitions the widening needs and `reach` lacks, leaving
/// `changes` as it was: read those ([`database_reach`]) and call again. Only the databases
/// actually reached are read, as listing the triggers of a whole server opens every table.
#[must_use]
pub fn expand_statement_reach(changes: &mut Changes, reach: &DefinitionReach) -> Vec<String> {
    if changes.statement_databases.is_empty() {
        return Vec::new();
    }
    let mut missing = Vec::new();
    let mut queue: Vec<String> = changes.statement_databases.iter().cloned().collect();
    let mut seen: BTreeSet<String> = queue.iter().cloned().collect();
    while let Some(db) = queue.pop() {
        if let Some(statement) = changes.replaced_definitions.get(&db) {
            changes.everything(format!(
                "statement-format writes reaching {db}, where a definition was replaced or dropped since ({statement}…)"
            ));
            return Vec::new();
        }
        let in_range = changes
            .defined_in_range
            .get(&db)
            .cloned()
            .unwrap_or_default();
        for name in in_range {
            if seen.insert(name.clone()) {
                queue.push(name);
            }
        }
        // A database created in the range had nothing before it; what it has now was either
        // created in the range (above) or is read now.
        match reach.get(&db) {
            None => missing.push(db),
            Some(None) => {
                changes.everything(format!(
                    "statement-format writes to {db}, whose triggers, views or routines this account cannot read"
                ));
                return Vec::new();
            }
            Some(Some(names)) => {
                for name in names {
                    if seen.insert(name.clone()) {
                        queue.push(name.clone());
                    }
                }
            }
        }
    }
    if missing.is_empty() {
        for db in seen {
            changes.whole(db);
        }
    }
    missing
}

/// The databases a stored definition's body may name, read both ways (the mode it was created
/// in is not known here): `None` when it cannot be read with certainty, so it may reach anything.
fn definition_qualifiers(body: &str) -> Option<BTreeSet<String>> {
    let mut found = BTreeSet::new();
    for mode in candidate_rules(None) {
        found.extend(qualifiers_in(body, mode).ok()?);
    }
    Some(found)
}

/// Every identifier followed by `.` and another identifier, outside string literals and
/// comments (but inside executable comments `/*!…*/`, `/*M!…*/`, which the server runs): the
/// databases a statement may name. Over-inclusive on purpose (`t.col` yields `t`): a name that
/// is not a database only makes a database count as changed needlessly. Text that cannot be
/// read with certainty (an unclosed string, quote or comment) is an error saying which.
fn qualifiers_in(
    query: &str,
    mode: QuoteRules,
) -> std::result::Result<BTreeSet<String>, &'static str> {
    let chars: Vec<char> = query.chars().collect();
    let mut found = BTreeSet::new();
    let mut i = 0;
    // The identifier just read, while only spaces and comments follow it.
    let mut previous: Option<String> = None;
    let mut executable_comments = 0usize;
    let at = |i: usize| chars.get(i).copied();
    while let Some(c) = at(i) {
        if c == '`' || (c == '"' && !mode.is_string_quote(b'"')) {
            let mut name = String::new();
            i += 1;
            loop {
                match at(i) {
                    None => return Err("an identifier quote that is not closed"),
                    Some(q) if q == c && at(i + 1) == Some(c) => {
                        name.push(c);
                        i += 2;
                    }
                    Some(q) if q == c => break,
                    Some(other) => {
                        name.push(other);
                        i += 1;
                    }
                }
            }
            i += 1;
            previous = Some(name);
        } else if c == '\'' || c == '"' {
            i += 1;
            loop {
                match at(i) {
                    None => return Err("a string that is not closed"),
                    Some('\\') if mode.backslash_escapes(c as u8) => i += 2,
                    Some(q) if q == c && at(i + 1) == Some(c) => i += 2,
                    Some(q) if q == c => break,
                    Some(_) => i += 1,
                }
            }
            i += 1;
            previous = None;
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let mut name = String::new();
            while let Some(n) = at(i).filter(|n| n.is_alphanumeric() || *n == '_' || *n == '$') {
                name.push(n);
                i += 1;
            }
            previous = Some(name);
        } else if c == '.' {
            if let Some(name) = previous.take()
                && !name.chars().all(|c| c.is_ascii_digit())
            {
                found.insert(name);
            }
            i += 1;
        } else if c == '#'
            || (c == '-'
                && at(i + 1) == Some('-')
                && at(i + 2).is_none_or(|n| n.is_whitespace() || n.is_control()))
        {
            // A comment to the end of the line; the name before it may still be qualified.
            while at(i).is_some_and(|n| n != '\n') {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == Some('*') {
            let executable =
                at(i + 2) == Some('!') || (at(i + 2) == Some('M') && at(i + 3) == Some('!'));
            if executable {
                // `/*!50001 …*/`: the text is code for the server; the version is not a name.
                i += if at(i + 2) == Some('M') { 4 } else { 3 };
                let mut digits = 0;
                while digits < 6 && at(i).is_some_and(|d| d.is_ascii_digit()) {
                    i += 1;
                    digits += 1;
                }
                executable_comments += 1;
            } else {
                i += 2;
                loop {
                    match at(i) {
                        None => return Err("a comment that is not closed"),
                        Some('*') if at(i + 1) == Some('/') => break,
                        Some(_) => i += 1,
                    }
                }
                i += 2;
            }
        } else if c == '*' && at(i + 1) == Some('/') && executable_comments > 0 {
            executable_comments -= 1;
            i += 2;
        } else {
            if !c.is_whitespace() {
                previous = None;
            }
            i += 1;
        }
    }
    if executable_comments > 0 {
        return Err("an executable comment that is not closed");
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_cascade_into_child_tables() {
        use crate::source::mysql::catalog::CascadeEdge;
        let edge = |parent: (&str, &str), child: (Option<&str>, Option<&str>)| CascadeEdge {
            parent: Some((parent.0.into(), parent.1.into())),
            child_database: child.0.map(String::from),
            child_table: child.1.map(String::from),
        };
        let mut changes = Changes::default();
        changes.table_written("a", "visits");
        let edges = [
            // Inside one database: sites -> visits -> answers; only what a change reaches.
            edge(("a", "answers"), (Some("a"), Some("audit"))),
            edge(("a", "visits"), (Some("a"), Some("answers"))),
            edge(("a", "sites"), (Some("a"), Some("visits"))),
            // Across databases.
            edge(("a", "answers"), (Some("b"), Some("copies"))),
            edge(("c", "t"), (Some("d"), Some("t"))),
        ];
        expand_cascades(&mut changes, &edges);
        for (db, table) in [
            ("a", "visits"),
            ("a", "answers"),
            ("a", "audit"),
            ("b", "copies"),
        ] {
            assert!(
                changes.table_changed(db, table),
                "{db}.{table}: {changes:?}"
            );
        }
        assert!(
            !changes.table_changed("a", "sites"),
            "a parent is not changed by its child"
        );
        assert!(!changes.table_changed("b", "other"));
        assert!(!changes.database_changed("d"));
        // A child table that cannot be named: its whole database.
        expand_cascades(&mut changes, &[edge(("b", "copies"), (Some("e"), None))]);
        assert!(changes.table_changed("e", "anything"));
        expand_cascades(&mut changes, &[edge(("e", "x"), (None, None))]);
        assert!(
            changes.all.is_some(),
            "an undecodable child may be anything"
        );
    }

    /// Widen `changes`, treating every database `reach` lacks as one without definitions.
    fn expand_fully(changes: &mut Changes, reach: &DefinitionReach) {
        let mut reach = reach.clone();
        loop {
            let missing = expand_statement_reach(changes, &reach);
            if missing.is_empty() {
                return;
            }
            for db in missing {
                reach.insert(db, Some(BTreeSet::new()));
            }
        }
    }

    #[test]
    fn statement_writes_reach_through_definitions() {
        let reach: DefinitionReach = [
            ("a".to_string(), Some(["b".to_string()].into())),
            ("b".to_string(), Some(["c".to_string()].into())),
            ("secret".to_string(), None),
        ]
        .into();
        let mut changes = Changes::default();
        attribute_statement("a", "INSERT INTO t VALUES (1)", None, &mut changes);
        assert_eq!(expand_statement_reach(&mut changes, &reach), ["c"]);
        assert!(
            !changes.database_changed("b"),
            "nothing widened while a definition is missing"
        );
        expand_fully(&mut changes, &reach);
        assert!(changes.all.is_none());
        for db in ["a", "b", "c"] {
            assert!(changes.database_changed(db), "{db}: {changes:?}");
        }
        assert!(!changes.database_changed("d"));

        let mut hidden = Changes::default();
        attribute_statement("secret", "DELETE FROM t", None, &mut hidden);
        expand_fully(&mut hidden, &reach);
        assert!(hidden.all.is_some(), "an unreadable body reaches anything");

        let mut redefined = Changes::default();
        attribute_statement("a", "UPDATE t SET v = 1", None, &mut redefined);
        attribute_statement("a", "DROP TRIGGER tr", None, &mut redefined);
        expand_fully(&mut redefined, &reach);
        assert!(redefined.all.is_some(), "a trigger dropped after it fired");

        let mut elsewhere = Changes::default();
        attribute_statement("a", "UPDATE t SET v = 1", None, &mut elsewhere);
        attribute_statement("gone", "DROP DATABASE gone", None, &mut elsewhere);
        expand_fully(&mut elsewhere, &reach);
        assert!(
            elsewhere.all.is_none(),
            "a definition the writes cannot reach"
        );

        // A staging database: created, given a trigger, written, dropped, all in the range.
        let mut staged = Changes::default();
        attribute_statement("st", "CREATE DATABASE st", None, &mut staged);
        attribute_statement(
            "st",
            "CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW INSERT INTO far.log VALUES (1)",
            None,
            &mut staged,
        );
        attribute_statement("st", "INSERT INTO t VALUES (1)", None, &mut staged);
        attribute_statement("st", "DROP DATABASE st", None, &mut staged);
        expand_fully(&mut staged, &reach);
        assert!(staged.all.is_none(), "{staged:?}");
        assert!(
            staged.database_changed("far"),
            "reached through a trigger created in the range"
        );

        let mut rows_only = Changes::default();
        attribute_statement("a", "DROP TRIGGER tr", None, &mut rows_only);
        expand_fully(&mut rows_only, &reach);
        assert!(rows_only.all.is_none(), "DDL alone fires nothing");
    }

    const ANSI: Option<QuoteRules> = Some(QuoteRules {
        ansi_quotes: true,
        no_backslash_escapes: false,
    });
    const NO_BACKSLASH: Option<QuoteRules> = Some(QuoteRules {
        ansi_quotes: false,
        no_backslash_escapes: true,
    });
    const PLAIN: Option<QuoteRules> = Some(QuoteRules {
        ansi_quotes: false,
        no_backslash_escapes: false,
    });

    fn named(schema: &str, query: &str, mode: Option<QuoteRules>) -> Changes {
        let mut changes = Changes::default();
        attribute_statement(schema, query, mode, &mut changes);
        changes
    }

    #[test]
    fn names_hidden_from_a_plain_reading_are_found() {
        // Executable comments are code to the server (mysqldump writes views this way).
        let view = named(
            "a",
            "/*!50001 CREATE ALGORITHM=UNDEFINED */ /*!50013 DEFINER=`u`@`%` */ /*!50001 VIEW v AS SELECT * FROM other.t */",
            PLAIN,
        );
        assert!(view.database_changed("other"), "{view:?}");
        let mariadb = named(
            "a",
            "UPDATE t /*M!100100 JOIN far.u USING (id) */ SET v = 1",
            PLAIN,
        );
        assert!(mariadb.database_changed("far"), "{mariadb:?}");
        let glued = named("", "DELETE FROM /*!80000other.t*/ x.y", PLAIN);
        assert!(glued.database_changed("other"), "{glued:?}");
        // ANSI_QUOTES: double quotes are names.
        let ansi = named("", r#"UPDATE "Db"."t" SET v = 1"#, ANSI);
        assert!(
            ansi.database_changed("Db") && ansi.all.is_none(),
            "{ansi:?}"
        );
        let plain = named("a", r#"UPDATE t SET v = "b.c""#, PLAIN);
        assert!(!plain.database_changed("b"), "a string: {plain:?}");
        // NO_BACKSLASH_ESCAPES: a backslash ends nothing, so the string closes before `hidden`.
        let raw = named(
            "a",
            r"UPDATE t SET v = 'x\' WHERE id IN (SELECT id FROM hidden.t)",
            NO_BACKSLASH,
        );
        assert!(raw.database_changed("hidden"), "{raw:?}");
        // Read with backslash escapes, the same text never closes its string: every database.
        let escaped = named(
            "a",
            r"UPDATE t SET v = 'x\' WHERE id IN (SELECT id FROM hidden.t)",
            PLAIN,
        );
        assert!(escaped.all.is_some(), "{escaped:?}");
        // A name before a comment, and `--` that is not a comment (no space after it).
        let split = named("", "UPDATE d /* gap */ . t SET v = v--1", PLAIN);
        assert!(
            split.database_changed("d") && split.all.is_none(),
            "{split:?}"
        );
        for unreadable in [
            "UPDATE `d.t SET v = 1",
            "UPDATE t SET v = 'x",
            "UPDATE t /* x",
            "UPDATE /*!50001 d.t SET v = 1",
        ] {
            let changes = named("a", unreadable, PLAIN);
            assert!(changes.all.is_some(), "{unreadable}: {changes:?}");
        }
    }

    #[test]
    fn names_compare_as_the_server_compares_them() {
        let mut folded = Changes::new(true);
        attribute_statement("", "TRUNCATE TABLE Sales.Orders", PLAIN, &mut folded);
        folded.table_written("Study_7", "Visits");
        assert!(folded.database_changed("sales") && folded.database_changed("SALES"));
        assert!(folded.table_changed("study_7", "visits"));
        assert!(folded.table_changed("sales", "anything"));
        let mut exact = Changes::new(false);
        attribute_statement("", "TRUNCATE TABLE Sales.Orders", PLAIN, &mut exact);
        assert!(exact.database_changed("Sales") && !exact.database_changed("sales"));
    }

    #[test]
    fn an_xa_commit_whose_prepare_was_not_scanned_counts_as_everything() {
        // Prepared (rows logged) before the range, committed in it: the commit names nothing.
        let late = named("", "XA COMMIT X'7831',X'',1", PLAIN);
        assert!(late.all.is_some(), "{late:?}");
        // Started and prepared in the range: its rows were attributed there.
        let mut whole = Changes::default();
        attribute_statement("d", "XA START X'7832',X'',1", PLAIN, &mut whole);
        whole.table_written("d", "t");
        attribute_statement("d", "XA END X'7832',X'',1", PLAIN, &mut whole);
        attribute_statement("d", "XA PREPARE X'7832',X'',1", PLAIN, &mut whole);
        let mut later = whole.continuation();
        attribute_statement("", "XA COMMIT X'7832',X'',1", PLAIN, &mut later);
        assert!(
            later.all.is_none(),
            "the start is known to the continuation: {later:?}"
        );
        whole.append(later);
        assert!(
            whole.all.is_none() && whole.database_changed("d"),
            "{whole:?}"
        );
        assert!(!whole.database_changed("e"));
        let one_phase = named("", "XA COMMIT X'7833',X'',1 ONE PHASE", PLAIN);
        assert!(one_phase.all.is_none(), "{one_phase:?}");
        let rollback = named("", "XA ROLLBACK X'7834',X'',1", PLAIN);
        assert!(rollback.all.is_none(), "{rollback:?}");
    }

    #[test]
    fn statements_are_attributed_to_their_databases() {
        let mut changes = Changes::default();
        attribute_statement("a", "BEGIN", None, &mut changes);
        attribute_statement("", "COMMIT", None, &mut changes);
        assert_eq!(changes, Changes::default());
        attribute_statement("a", "INSERT INTO t VALUES (1.5, 'x.y')", None, &mut changes);
        attribute_statement(
            "",
            "UPDATE `b`.`t` JOIN c.u ON t.id = u.id SET t.v = '-- d.x' /* e.f */",
            None,
            &mut changes,
        );
        assert!(changes.all.is_none());
        for db in ["a", "b", "c"] {
            assert!(changes.database_changed(db), "{db}: {changes:?}");
        }
        for not in ["x", "d", "e"] {
            assert!(!changes.databases.contains(not), "{not}: {changes:?}");
        }
        assert_eq!(
            changes.statement_databases,
            ["a", "b", "c", "t", "u"].map(String::from).into()
        );
        attribute_statement("a", "ALTER TABLE t ADD COLUMN w INT", None, &mut changes);
        // The server names the database created or dropped as the event's default database.
        attribute_statement("z", "CREATE DATABASE z", None, &mut changes);
        attribute_statement(
            "z",
            "CREATE DEFINER=`root`@`%` TRIGGER tr AFTER INSERT ON t FOR EACH ROW INSERT INTO w.log VALUES (1)",
            None,
            &mut changes,
        );
        attribute_statement("z", "DROP TRIGGER tr", None, &mut changes);
        assert!(
            changes.replaced_definitions.is_empty(),
            "created in the range: {changes:?}"
        );
        assert_eq!(
            changes.defined_in_range["z"],
            ["w", "z"].map(String::from).into()
        );
        attribute_statement(
            "b",
            "CREATE OR REPLACE VIEW v AS SELECT 1",
            None,
            &mut changes,
        );
        attribute_statement("y", "DROP DATABASE IF EXISTS y", None, &mut changes);
        assert_eq!(
            changes.replaced_definitions.keys().collect::<Vec<_>>(),
            ["b", "y"]
        );
        attribute_statement("", "DROP USER 'u'@'%'", None, &mut changes);
        assert!(changes.all.is_some(), "an unattributable statement");
        assert!(changes.database_changed("anything"));
    }
}
