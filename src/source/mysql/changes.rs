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
//! Not wired into `backup` yet: this is the detection half of change tracking, tested on its
//! own; carrying unchanged databases into a snapshot follows (see docs/ARCHITECTURE.md).

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

    fn everything(&mut self, why: String) {
        self.all.get_or_insert(why);
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
    if !schema.is_empty() {
        changes.databases.insert(schema.to_string());
    }
    changes.databases.extend(qualifiers);
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
        attribute_statement("", "DROP USER 'u'@'%'", &mut changes);
        assert!(changes.all.is_some(), "an unattributable statement");
        assert!(changes.database_changed("anything"));
    }
}
