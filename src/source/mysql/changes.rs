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
use mysql_async::binlog::events::{
    QueryEvent, RotateEvent, TableMapEvent, TransactionPayloadEvent,
};

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
    /// The file and position the scan stopped at (the end of the log when it ran).
    pub end_file: String,
    pub end_position: u64,
}

impl Changes {
    /// Whether database `name` may have changed.
    pub fn database_changed(&self, name: &str) -> bool {
        self.all.is_some() || self.databases.contains(name)
    }

    /// Whether table `table` of `database` may have changed.
    pub fn table_changed(&self, database: &str, table: &str) -> bool {
        self.all.is_some()
            || self.whole_databases.contains(database)
            || self
                .tables
                .contains(&(database.to_string(), table.to_string()))
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
        self.whole_databases.insert(database.clone());
        self.databases.insert(database)
    }
}

/// Scan the binary log of `target` from `from` to its current end. `server_id` must differ from
/// every replica of the server (the dump registers as a replica for its duration).
pub async fn changes_since(
    target: &MysqlTarget,
    from: &BinlogPosition,
    server_id: u32,
) -> Result<Changes> {
    let conn = target.connect().await?;
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
    let mut changes = Changes {
        end_file: from.file.clone(),
        end_position: from.position,
        ..Changes::default()
    };
    while let Some(event) = stream.next().await {
        let event = event.map_err(|e| {
            Error::new(ErrorKind::Storage, "reading a binary-log event").with_source(e)
        })?;
        let header = event.header();
        if header.log_pos() > 0 {
            changes.end_position = u64::from(header.log_pos());
        }
        match event.header().event_type() {
            Ok(EventType::TABLE_MAP_EVENT) => {
                let map: TableMapEvent<'_> = event.read_event().map_err(unreadable)?;
                let database = map.database_name().into_owned();
                changes
                    .tables
                    .insert((database.clone(), map.table_name().into_owned()));
                changes.databases.insert(database);
            }
            Ok(EventType::QUERY_EVENT) => {
                let query: QueryEvent<'_> = event.read_event().map_err(unreadable)?;
                attribute_statement(&query.schema(), &query.query(), &mut changes);
            }
            // The server opens the dump with an artificial rotate (time 0) naming where it
            // starts, sent before the format description, so with its checksum still attached.
            Ok(EventType::ROTATE_EVENT) if header.timestamp() == 0 => {}
            Ok(EventType::ROTATE_EVENT) => {
                let rotate: RotateEvent<'_> = event.read_event().map_err(unreadable)?;
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
            // MySQL's compressed transactions: the stream yields the events inside after it;
            // one that cannot even be decoded would hide them, so it counts as everything.
            // The driver yields the inner events after it, but on a payload it cannot
            // decompress it yields none, silently: such a transaction counts as everything.
            Ok(EventType::TRANSACTION_PAYLOAD_EVENT) => {
                let readable = event
                    .read_event::<TransactionPayloadEvent<'_>>()
                    .is_ok_and(|payload| !payload.danger_decompress().is_empty());
                if !readable {
                    changes.everything("an undecodable compressed transaction".to_string());
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
    }
    // The non-blocking dump ends with EOF; the connection is spent.
    let _ = stream.close().await;
    Ok(changes)
}

/// Event types the driver does not know that carry no row data: MySQL 8.4's tagged GTID (42);
/// MariaDB's ANNOTATE_ROWS (160), BINLOG_CHECKPOINT (161), GTID (162), GTID_LIST (163),
/// START_ENCRYPTION (164). MariaDB's compressed query and rows events (165-171) are not
/// attributed here and count as "everything".
const WITHOUT_DATA: [u8; 6] = [42, 160, 161, 162, 163, 164];

fn unreadable(e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Storage,
        "a binary-log event could not be decoded",
    )
    .with_source(e)
}

/// Attribute a statement-format event: transaction control changes nothing; anything else
/// changes its default database and every database it names as a qualifier (`db.t`,
/// `` `db`.`t` ``); with neither, every database may have changed.
fn attribute_statement(schema: &str, query: &str, changes: &mut Changes) {
    let trimmed = query.trim_start().to_ascii_uppercase();
    // A comment alone changes nothing: MariaDB sends events a replica that did not announce
    // its capabilities cannot handle (GTID, annotate) as `# Dummy event …` statements.
    let only_comment = trimmed.starts_with('#') && !trimmed.contains('\n');
    let control = [
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "XA ",
        "SAVEPOINT",
        "RELEASE SAVEPOINT",
    ]
    .iter()
    .any(|keyword| trimmed.starts_with(keyword));
    if only_comment || control {
        return;
    }
    let qualifiers = qualifiers(query);
    if schema.is_empty() && qualifiers.is_empty() {
        let shown: String = query.chars().take(60).collect();
        changes.everything(format!("a statement with no database ({shown}…)"));
        return;
    }
    let named: BTreeSet<String> = qualifiers
        .into_iter()
        .chain((!schema.is_empty()).then(|| schema.to_string()))
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

/// Read what the definitions of `db` mention, for [`DefinitionReach`].
pub async fn database_reach(
    conn: &mut mysql_async::Conn,
    db: &str,
) -> Result<Option<BTreeSet<String>>> {
    Ok(super::catalog::definition_bodies(conn, db)
        .await?
        .map(|bodies| bodies.iter().flat_map(|b| qualifiers(b)).collect()))
}

/// Widen `changes.databases` with the databases foreign keys cascade into from a changed one,
/// transitively (cascades fire no triggers, so nothing else follows from them).
pub fn expand_cascades(changes: &mut Changes, edges: &[super::catalog::CascadeEdge]) {
    loop {
        let mut grew = false;
        for edge in edges {
            if !changes.databases.contains(&edge.parent_database) {
                continue;
            }
            match &edge.child_database {
                Some(child) => grew |= changes.whole(child.clone()),
                None => {
                    changes.everything(format!(
                        "a foreign key cascading from {} into a database whose name could not be read",
                        edge.parent_database
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

/// Every identifier directly followed by `.` and another identifier, outside string literals
/// and comments: the databases a statement may name. Over-inclusive on purpose (`t.col` yields
/// `t`): a name that is not a database only makes a database count as changed needlessly.
fn qualifiers(query: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let chars: Vec<char> = query.chars().collect();
    let mut i = 0;
    let mut previous: Option<String> = None;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' || c == '"' {
            // Skip a string literal (with doubled or backslash-escaped quotes).
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            previous = None;
        } else if c == '`' {
            let mut name = String::new();
            i += 1;
            while i < chars.len() {
                if chars[i] == '`' {
                    if chars.get(i + 1) == Some(&'`') {
                        name.push('`');
                        i += 2;
                        continue;
                    }
                    break;
                }
                name.push(chars[i]);
                i += 1;
            }
            i += 1;
            previous = Some(name);
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let mut name = String::new();
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                name.push(chars[i]);
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
        } else if c == '-' && chars.get(i + 1) == Some(&'-') || c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            previous = None;
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
            previous = None;
        } else {
            if !c.is_whitespace() {
                previous = None;
            }
            i += 1;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_cascade_into_child_databases() {
        use crate::source::mysql::catalog::CascadeEdge;
        let edge = |parent: &str, child: Option<&str>| CascadeEdge {
            parent_database: parent.into(),
            child_database: child.map(String::from),
        };
        let mut changes = Changes::default();
        changes.databases.insert("a".into());
        expand_cascades(&mut changes, &[edge("b", Some("c")), edge("a", Some("b"))]);
        assert!(changes.database_changed("c"), "transitively: {changes:?}");
        assert!(!changes.database_changed("d"));
        expand_cascades(&mut changes, &[edge("c", None)]);
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
        attribute_statement("a", "INSERT INTO t VALUES (1)", &mut changes);
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
        attribute_statement("secret", "DELETE FROM t", &mut hidden);
        expand_fully(&mut hidden, &reach);
        assert!(hidden.all.is_some(), "an unreadable body reaches anything");

        let mut redefined = Changes::default();
        attribute_statement("a", "UPDATE t SET v = 1", &mut redefined);
        attribute_statement("a", "DROP TRIGGER tr", &mut redefined);
        expand_fully(&mut redefined, &reach);
        assert!(redefined.all.is_some(), "a trigger dropped after it fired");

        let mut elsewhere = Changes::default();
        attribute_statement("a", "UPDATE t SET v = 1", &mut elsewhere);
        attribute_statement("gone", "DROP DATABASE gone", &mut elsewhere);
        expand_fully(&mut elsewhere, &reach);
        assert!(
            elsewhere.all.is_none(),
            "a definition the writes cannot reach"
        );

        // A staging database: created, given a trigger, written, dropped, all in the range.
        let mut staged = Changes::default();
        attribute_statement("st", "CREATE DATABASE st", &mut staged);
        attribute_statement(
            "st",
            "CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW INSERT INTO far.log VALUES (1)",
            &mut staged,
        );
        attribute_statement("st", "INSERT INTO t VALUES (1)", &mut staged);
        attribute_statement("st", "DROP DATABASE st", &mut staged);
        expand_fully(&mut staged, &reach);
        assert!(staged.all.is_none(), "{staged:?}");
        assert!(
            staged.database_changed("far"),
            "reached through a trigger created in the range"
        );

        let mut rows_only = Changes::default();
        attribute_statement("a", "DROP TRIGGER tr", &mut rows_only);
        expand_fully(&mut rows_only, &reach);
        assert!(rows_only.all.is_none(), "DDL alone fires nothing");
    }

    #[test]
    fn statements_are_attributed_to_their_databases() {
        let mut changes = Changes::default();
        attribute_statement("a", "BEGIN", &mut changes);
        attribute_statement("", "COMMIT", &mut changes);
        assert_eq!(changes, Changes::default());
        attribute_statement("a", "INSERT INTO t VALUES (1.5, 'x.y')", &mut changes);
        attribute_statement(
            "",
            "UPDATE `b`.`t` JOIN c.u ON t.id = u.id SET t.v = '-- d.x' /* e.f */",
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
        attribute_statement("a", "ALTER TABLE t ADD COLUMN w INT", &mut changes);
        // The server names the database created or dropped as the event's default database.
        attribute_statement("z", "CREATE DATABASE z", &mut changes);
        attribute_statement(
            "z",
            "CREATE DEFINER=`root`@`%` TRIGGER tr AFTER INSERT ON t FOR EACH ROW INSERT INTO w.log VALUES (1)",
            &mut changes,
        );
        attribute_statement("z", "DROP TRIGGER tr", &mut changes);
        assert!(
            changes.replaced_definitions.is_empty(),
            "created in the range: {changes:?}"
        );
        assert_eq!(
            changes.defined_in_range["z"],
            ["w", "z"].map(String::from).into()
        );
        attribute_statement("b", "CREATE OR REPLACE VIEW v AS SELECT 1", &mut changes);
        attribute_statement("y", "DROP DATABASE IF EXISTS y", &mut changes);
        assert_eq!(
            changes.replaced_definitions.keys().collect::<Vec<_>>(),
            ["b", "y"]
        );
        attribute_statement("", "DROP USER 'u'@'%'", &mut changes);
        assert!(changes.all.is_some(), "an unattributable statement");
        assert!(changes.database_changed("anything"));
    }
}
