//! Reading the binary log as a replica does, one complete transaction at a time, keeping the
//! server's own bytes: what the log archive (`crate::pitr::archive`) stores.
//!
//! A [`LogReader`] registers as a replica (`COM_BINLOG_DUMP`) at a file and position and yields
//! [`LogItem`]s: each transaction whole (its events serialised as a binary-log file holds them,
//! with what it changed and its GTID), each switch to another file with that file's format
//! description, and the end of the log (non-blocking) or a quiet period (blocking). Events are
//! grouped into transactions so that an archive segment never ends inside one: every segment
//! can be replayed and every segment's end is a position a reader can resume from.
//!
//! Where a transaction ends, by event (MySQL 8 and MariaDB; docs/ARCHITECTURE.md, "MySQL 8
//! dialect"): an `XID_EVENT`; a `QUERY_EVENT` of `COMMIT` or `ROLLBACK`; an `XA PREPARE`
//! (MySQL's `XA_PREPARE_LOG_EVENT`, MariaDB's query); any other statement logged outside a
//! transaction (DDL, `XA COMMIT`). A transaction starts with MySQL's `BEGIN` query or with
//! MariaDB's GTID event unless that is flagged standalone (`FL_STANDALONE`, DDL).

use std::time::Duration;

use futures_util::StreamExt;
use mysql_async::binlog::EventType;
use mysql_async::binlog::events::{Event, GtidEvent, QueryEvent, RotateEvent};
use mysql_async::{BinlogStream, BinlogStreamRequest};
use mysql_common::binlog::consts::BinlogVersion;

use super::MysqlTarget;
use super::changes::{Changes, Payload, attribute_event, decoded};
use crate::error::{Error, ErrorKind, Result};

/// The first four bytes of every binary-log file.
pub const BINLOG_MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];

/// MariaDB's GTID event (it begins every transaction there) and its standalone flag.
const MARIADB_GTID_EVENT: u8 = 162;
const MARIADB_FL_STANDALONE: u8 = 1;

/// One complete transaction (or standalone statement) as the server logged it.
#[derive(Debug)]
pub struct LoggedTransaction {
    /// Its events, each as a binary-log file holds it (header, body, checksum).
    pub bytes: Vec<u8>,
    pub events: u32,
    /// The file it is in, where its first event starts and where its last one ends.
    pub file: String,
    pub start: u64,
    pub end: u64,
    /// The earliest and latest event time (seconds since the epoch; the log's resolution).
    pub first_time: u32,
    pub last_time: u32,
    /// `uuid:n` (MySQL) or `domain-server-seq` (MariaDB), when the log has GTIDs.
    pub gtid: Option<String>,
}

/// What a [`LogReader`] yields.
#[derive(Debug)]
pub enum LogItem {
    /// A complete transaction; what it changed was added to the reader's [`Changes`].
    Transaction(LoggedTransaction),
    /// The log continues in another file, which the given format description (its bytes as
    /// the file holds it) describes; the next transaction starts at `position`.
    File {
        file: String,
        position: u64,
        format: Vec<u8>,
    },
    /// Nothing more now: the end of the log (a non-blocking read), or nothing arrived for a
    /// while (a blocking one).
    Idle,
}

/// Reads the binary log from one position on, in transactions.
pub struct LogReader {
    stream: BinlogStream,
    blocking: bool,
    assembler: TransactionAssembler,
}

/// Groups binary-log events into complete transactions, from a server's stream or a file.
pub struct TransactionAssembler {
    /// The file being read and the end of the last complete transaction in it.
    file: String,
    position: u64,
    /// The format description of the current file (as a file holds it), once seen.
    format: Option<Vec<u8>>,
    format_pending: bool,
    /// Reads a compressed transaction's inner events (it learns each format description).
    inner: mysql_common::binlog::EventStreamReader,
    pending: Option<LoggedTransaction>,
    in_transaction: bool,
    /// What the transactions read so far changed (the caller takes it per segment).
    pub changes: Changes,
    gtid: Option<String>,
}

/// How long a blocking read waits for an event before it yields [`LogItem::Idle`].
pub const IDLE_AFTER: Duration = Duration::from_secs(1);

impl LogReader {
    /// Start reading `target`'s binary log at `file`:`position` (a transaction boundary: the
    /// end of an archived segment, or the start of a file). `blocking` waits for new events at
    /// the end of the log instead of ending there. `server_id` must differ from every replica's.
    pub async fn open(
        target: &MysqlTarget,
        file: &str,
        position: u64,
        server_id: u32,
        blocking: bool,
        changes: Changes,
    ) -> Result<LogReader> {
        let mut conn = target.connect().await?;
        let mariadb = super::is_mariadb(&conn);
        if mariadb {
            announce_mariadb_replica(&mut conn).await?;
        }
        // A replica that stays connected hears from the server at least this often, so a dead
        // connection is noticed (MySQL and MariaDB read the same user variable, in nanoseconds).
        if blocking {
            use mysql_async::prelude::Queryable;
            conn.query_drop("SET @master_heartbeat_period = 30000000000")
                .await
                .map_err(|e| super::mysql_error(e, "setting the replica heartbeat"))?;
        }
        let mut request = BinlogStreamRequest::new(server_id)
            .with_filename(file.as_bytes())
            .with_pos(position);
        if !blocking {
            request = request.with_non_blocking();
        }
        let stream = conn.get_binlog_stream(request).await.map_err(|e| {
            Error::new(
                ErrorKind::Storage,
                format!("reading the binary log of {} from {file}:{position}", target.describe()),
            )
            .with_source(e)
            .with_hint("the user needs REPLICATION SLAVE (MariaDB: also BINLOG MONITOR); a purged file is a gap the archive records")
        })?;
        Ok(LogReader {
            stream,
            blocking,
            assembler: TransactionAssembler::new(file, position, changes),
        })
    }

    /// What the transactions read so far changed.
    pub fn changes_mut(&mut self) -> &mut Changes {
        &mut self.assembler.changes
    }

    /// The next item. Events of a transaction not complete yet are held (memory: the largest
    /// transaction).
    pub async fn next(&mut self) -> Result<LogItem> {
        loop {
            if let Some(file) = self.assembler.new_file() {
                return Ok(file);
            }
            let next = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(
                tokio::time::timeout(IDLE_AFTER, self.stream.next()),
            ))
            .await
            .map_err(|_| {
                Error::corrupt("the server sent a binary-log event the decoder cannot read")
            })?;
            let event = match next {
                Err(_elapsed) => return Ok(LogItem::Idle),
                Ok(None) => {
                    if self.blocking {
                        return Err(Error::new(
                            ErrorKind::Storage,
                            "the server ended the binary-log connection",
                        )
                        .with_hint(
                            "the follower reconnects and resumes from the last stored segment",
                        ));
                    }
                    return Ok(LogItem::Idle);
                }
                Ok(Some(event)) => event.map_err(|e| {
                    Error::new(ErrorKind::Storage, "reading a binary-log event").with_source(e)
                })?,
            };
            // The driver yields a compressed transaction's inner events after the payload
            // event; the assembler reads them from the payload itself.
            if self.stream.last_from_payload() {
                continue;
            }
            if let Some(done) = self.assembler.take(&event)? {
                return Ok(LogItem::Transaction(done));
            }
        }
    }

    /// Stop reading (the connection is closed).
    pub async fn close(self) {
        let _ = self.stream.close().await;
    }
}

impl TransactionAssembler {
    /// Group the events of `file` from `position` on (a transaction boundary), adding what
    /// they change to `changes`.
    pub fn new(file: &str, position: u64, changes: Changes) -> Self {
        TransactionAssembler {
            file: file.to_string(),
            position,
            format: None,
            format_pending: false,
            inner: mysql_common::binlog::EventStreamReader::new(BinlogVersion::Version4),
            pending: None,
            in_transaction: false,
            changes,
            gtid: None,
        }
    }

    /// The file and the end of the last complete transaction (where a reader resumes).
    pub fn position(&self) -> (&str, u64) {
        (&self.file, self.position)
    }

    /// A file whose format description arrived since the last call.
    fn new_file(&mut self) -> Option<LogItem> {
        if !self.format_pending {
            return None;
        }
        let format = self.format.clone()?;
        self.format_pending = false;
        Some(LogItem::File {
            file: self.file.clone(),
            position: self.position,
            format,
        })
    }

    /// Add one event (not one of a compressed transaction's inner events); a transaction it
    /// completes is returned.
    pub fn take(&mut self, event: &Event) -> Result<Option<LoggedTransaction>> {
        let header = event.header();
        let raw_type = header.event_type_raw();
        // What it changed; a compressed transaction's inner events are read from its payload.
        attribute_event(event, Payload::Expand(&mut self.inner), &mut self.changes)?;
        match header.event_type() {
            Ok(EventType::ROTATE_EVENT) => {
                let rotate: RotateEvent<'_> = decoded(|| event.read_event())
                    .map_err(|e| Error::corrupt(format!("an unreadable rotate event: {e}")))?;
                // The artificial rotate (time 0) that opens a dump names the file asked for,
                // with its checksum still attached (it comes before the format description
                // that says there is one); a real one ends a file, and the artificial one after
                // it names the next. Either way the next events are that file's.
                let opening = header.timestamp() == 0
                    && self.format.is_none()
                    && rotate.name_raw().starts_with(self.file.as_bytes());
                if !opening && rotate.name_raw() != self.file.as_bytes() {
                    self.file = rotate.name().into_owned();
                    self.position = rotate.position();
                    self.format = None;
                }
                return Ok(None);
            }
            Ok(EventType::FORMAT_DESCRIPTION_EVENT) => {
                let mut bytes = Vec::with_capacity(header.event_size() as usize);
                event
                    .write(BinlogVersion::Version4, &mut bytes)
                    .map_err(|e| {
                        Error::corrupt(format!("re-encoding a format description: {e}"))
                    })?;
                if self.format.as_deref() != Some(bytes.as_slice()) {
                    // The payload reader learns the format (checksums) from the event itself.
                    decoded(|| self.inner.read(bytes.as_slice()).map(|_| ())).map_err(|e| {
                        Error::corrupt(format!("an unreadable format description: {e}"))
                    })?;
                    self.format = Some(bytes);
                    self.format_pending = true;
                }
                return Ok(None);
            }
            // Carry no data: the server's heartbeats, the previous-GTIDs list of a file's
            // start, MariaDB's binlog checkpoints and GTID lists.
            Ok(
                EventType::HEARTBEAT_EVENT
                | EventType::PREVIOUS_GTIDS_EVENT
                | EventType::STOP_EVENT,
            ) => {
                return Ok(None);
            }
            Err(_) if matches!(raw_type, 41 | 161 | 163) => return Ok(None),
            _ => {}
        }
        let end_of_transaction = self.ends_transaction(event)?;
        let pending = self.pending.get_or_insert_with(|| LoggedTransaction {
            bytes: Vec::new(),
            events: 0,
            file: self.file.clone(),
            start: self.position,
            end: self.position,
            first_time: header.timestamp(),
            last_time: header.timestamp(),
            gtid: None,
        });
        event
            .write(BinlogVersion::Version4, &mut pending.bytes)
            .map_err(|e| Error::corrupt(format!("re-encoding a binary-log event: {e}")))?;
        pending.events += 1;
        pending.first_time = pending.first_time.min(header.timestamp());
        pending.last_time = pending.last_time.max(header.timestamp());
        if header.log_pos() > 0 {
            pending.end = u64::from(header.log_pos());
        }
        if let Some(gtid) = self.gtid.take() {
            pending.gtid = Some(gtid);
        }
        if !end_of_transaction {
            return Ok(None);
        }
        let mut done = self.pending.take();
        if let Some(done) = &mut done {
            self.position = done.end;
        }
        Ok(done)
    }

    /// Whether `event` ends the transaction it belongs to (module doc), keeping track of
    /// whether one is open.
    fn ends_transaction(&mut self, event: &Event) -> Result<bool> {
        let header = event.header();
        Ok(match header.event_type() {
            // A compressed transaction holds a whole transaction, its commit included.
            Ok(
                EventType::XID_EVENT
                | EventType::XA_PREPARE_LOG_EVENT
                | EventType::TRANSACTION_PAYLOAD_EVENT,
            ) => {
                self.in_transaction = false;
                true
            }
            Ok(EventType::GTID_EVENT | EventType::GTID_TAGGED_LOG_EVENT) => {
                if let Ok(gtid) = decoded(|| event.read_event::<GtidEvent>()) {
                    self.gtid = Some(match gtid.tag() {
                        Some(tag) => format!("{}:{tag}:{}", uuid_text(&gtid.sid()), gtid.gno()),
                        None => format!("{}:{}", uuid_text(&gtid.sid()), gtid.gno()),
                    });
                }
                false
            }
            Ok(EventType::QUERY_EVENT) => {
                let query: QueryEvent<'_> = decoded(|| event.read_event())
                    .map_err(|e| Error::corrupt(format!("an unreadable query event: {e}")))?;
                let text = query.query();
                let words: Vec<String> = text
                    .split_whitespace()
                    .take(2)
                    .map(|w| w.trim_end_matches(';').to_ascii_uppercase())
                    .collect();
                let first = words.first().map(String::as_str).unwrap_or("");
                let second = words.get(1).map(String::as_str).unwrap_or("");
                match (first, second) {
                    ("BEGIN", _) | ("XA", "START" | "BEGIN") => {
                        self.in_transaction = true;
                        false
                    }
                    ("COMMIT" | "ROLLBACK", _) | ("XA", "PREPARE") => {
                        self.in_transaction = false;
                        true
                    }
                    _ => !self.in_transaction,
                }
            }
            Err(_) if header.event_type_raw() == MARIADB_GTID_EVENT => {
                let data = event.data();
                if let (Some(seq), Some(domain), Some(flags)) = (
                    data.get(0..8).and_then(|b| <[u8; 8]>::try_from(b).ok()),
                    data.get(8..12).and_then(|b| <[u8; 4]>::try_from(b).ok()),
                    data.get(12),
                ) {
                    self.gtid = Some(format!(
                        "{}-{}-{}",
                        u32::from_le_bytes(domain),
                        header.server_id(),
                        u64::from_le_bytes(seq)
                    ));
                    // A GTID not flagged standalone opens a transaction (MariaDB writes no BEGIN).
                    self.in_transaction = flags & MARIADB_FL_STANDALONE == 0;
                }
                false
            }
            _ => false,
        })
    }
}

/// Tell a MariaDB server this replica reads its GTID events (`@mariadb_slave_capability` 4,
/// `MARIA_SLAVE_CAPABILITY_GTID`): otherwise it rewrites each into a `BEGIN` query for old
/// replicas, so the archive would not hold the log as the server's files do, and it refuses
/// to rewrite the GTID of an XA transaction at all ("Failed to replace GTID event with
/// backwards-compatible event").
pub(crate) async fn announce_mariadb_replica(conn: &mut mysql_async::Conn) -> Result<()> {
    use mysql_async::prelude::Queryable;
    conn.query_drop("SET @mariadb_slave_capability = 4")
        .await
        .map_err(|e| super::mysql_error(e, "announcing the replica's capabilities"))
}

/// A server UUID as MySQL prints it.
fn uuid_text(sid: &[u8; 16]) -> String {
    let hex = hex::encode(sid);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The binary-log files the server has now, oldest first (`SHOW BINARY LOGS`).
pub async fn binary_log_files(target: &MysqlTarget) -> Result<Vec<String>> {
    use mysql_async::prelude::Queryable;
    let mut conn = target.connect().await?;
    let rows: Vec<mysql_async::Row> = conn
        .query("SHOW BINARY LOGS")
        .await
        .map_err(|e| super::mysql_error(e, "listing the binary-log files"))?;
    let _ = conn.disconnect().await;
    Ok(rows
        .into_iter()
        .filter_map(|row| row.get_opt::<String, usize>(0).and_then(|r| r.ok()))
        .collect())
}

/// Order two binary-log file names of one server (`binlog.000012` < `binlog.000103`: the
/// numeric suffix, which outgrows its zero padding past 999999).
pub fn file_order(a: &str, b: &str) -> std::cmp::Ordering {
    let number = |name: &str| {
        name.rsplit('.')
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    number(a).cmp(&number(b)).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_order_by_their_number() {
        use std::cmp::Ordering::*;
        assert_eq!(file_order("binlog.000012", "binlog.000103"), Less);
        assert_eq!(file_order("binlog.999999", "binlog.1000000"), Less);
        assert_eq!(file_order("binlog.000003", "binlog.000003"), Equal);
    }

    #[test]
    fn uuids_print_as_mysql_prints_them() {
        let sid = [
            0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42,
            0x95, 0x62,
        ];
        assert_eq!(uuid_text(&sid), "3e11fa47-71ca-11e1-9e33-c80aa9429562");
    }
}
