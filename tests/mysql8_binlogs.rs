//! MySQL 8 evidence where no MySQL 8 server can run (issue 19): binary logs written by real
//! MySQL servers (tests/fixtures/mysql8-binlogs, with where they come from) replayed through
//! the same attribution a backup's log scan uses. Beside each assertion: what the file holds,
//! read event by event with a decoder of the v4 format (offsets are the events' positions).

use std::collections::BTreeSet;

use coffer::source::mysql::changes::{Changes, changes_in_binlog_file};

fn replay(name: &str, from: u64) -> Changes {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mysql8-binlogs")
        .join(name);
    let bytes = std::fs::read(&path).expect("fixture");
    changes_in_binlog_file(&bytes, from, false).expect("replay")
}

fn pairs(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|(d, t)| (d.to_string(), t.to_string()))
        .collect()
}

#[test]
fn a_compressed_transaction_is_attributed_to_the_table_inside_it() {
    // 8.0.32, binlog_transaction_compression=ON: @274 TRANSACTION_PAYLOAD (zstd, 124 bytes,
    // 179 uncompressed) holding BEGIN (db test), TABLE_MAP test.tb1, WRITE_ROWS_V2, XID.
    let changes = replay("transaction_compression.000001", 0);
    assert!(changes.all.is_none(), "{changes:?}");
    assert_eq!(changes.tables, pairs(&[("test", "tb1")]));
    assert_eq!(changes.databases, ["test".to_string()].into());
}

#[test]
fn a_tagged_gtid_is_not_a_reason_to_read_everything() {
    // @245 GTID_TAGGED (type 42, MySQL 8.4's UUID:tag:N), then BEGIN, TABLE_MAP test.orders,
    // WRITE_ROWS_V2, XID.
    let changes = replay("binlog_transaction_with_GTID_TAG.000001", 0);
    assert!(changes.all.is_none(), "{changes:?}");
    assert_eq!(changes.tables, pairs(&[("test", "orders")]));
}

#[test]
fn partial_json_updates_name_their_table() {
    // 8.0.22. From 845 on (after ALTER USER at 235 and CREATE TABLE at 570): five transactions
    // of row events on mysql.t, the last (@3750) a PARTIAL_UPDATE_ROWS (type 39).
    let rows = replay("json.binlog.000001", 845);
    assert!(rows.all.is_none(), "{rows:?}");
    assert_eq!(rows.tables, pairs(&[("mysql", "t")]));
    // Only the partial update (its transaction starts at 3527).
    let partial = replay("json.binlog.000001", 3527);
    assert_eq!(partial.tables, pairs(&[("mysql", "t")]), "{partial:?}");
    // CREATE TABLE (db mysql) is DDL: the whole database.
    let ddl = replay("json.binlog.000001", 491);
    assert!(
        ddl.all.is_none() && ddl.whole_databases.contains("mysql"),
        "{ddl:?}"
    );
    // From the start: `ALTER USER` with no default database names none: everything.
    let whole = replay("json.binlog.000001", 0);
    assert!(
        whole
            .all
            .as_deref()
            .is_some_and(|why| why.contains("ALTER USER")),
        "{whole:?}"
    );
}

#[test]
fn statements_under_ansi_quotes_are_read_in_their_own_mode() {
    // 5.7.22: CREATE SCHEMA db1, CREATE TABLE t1, then a procedure, function, trigger and
    // event for each of 12 sql_modes, 24 statements with ANSI_QUOTES (0x4) in their stored
    // sql_mode (`CREATE DEFINER="root"@"localhost" PROCEDURE "p_DB2"() SELECT 1`), all with
    // default database db1 and no qualified name.
    let changes = replay("bug27213339-bin.000001", 0);
    assert!(changes.all.is_none(), "{changes:?}");
    assert_eq!(changes.databases, ["db1".to_string()].into());
    assert!(changes.created_databases.contains("db1"));
}

#[test]
fn an_account_change_counts_as_every_database() {
    // 8.0.26: @235 ALTER USER 'root'@'localhost' …, db '' (no database to attribute to).
    let changes = replay("binlog-invisible-columns.000001", 0);
    assert!(changes.all.is_some(), "{changes:?}");
}

/// The binary-log archive's grouping (`coffer log`) over real MySQL 8 logs: every event that
/// belongs to a transaction is kept, byte for byte and in order, and each group ends where a
/// MySQL 8 transaction ends (XID, COMMIT, a DDL statement, a compressed transaction).
fn transactions_of(
    name: &str,
) -> (
    Vec<coffer::source::mysql::binlog::LoggedTransaction>,
    Vec<u8>,
) {
    use coffer::source::mysql::binlog::TransactionAssembler;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mysql8-binlogs")
        .join(name);
    let bytes = std::fs::read(&path).expect("fixture");
    let file = mysql_common::binlog::BinlogFile::new(
        mysql_common::binlog::consts::BinlogVersion::Version4,
        bytes.as_slice(),
    )
    .expect("binlog file");
    let mut assembler = TransactionAssembler::new(name, 4, Changes::new(false));
    let mut groups = Vec::new();
    // The events of the file that belong to transactions, as the file holds them.
    let mut kept = Vec::new();
    for event in file {
        let event = event.expect("event");
        let kind = event.header().event_type_raw();
        if ![4, 15, 35, 27, 41].contains(&kind) {
            event
                .write(
                    mysql_common::binlog::consts::BinlogVersion::Version4,
                    &mut kept,
                )
                .expect("write");
        }
        if let Some(done) = assembler.take(&event).expect("take") {
            groups.push(done);
        }
    }
    (groups, kept)
}

#[test]
fn the_archive_groups_mysql8_logs_into_whole_transactions() {
    for (name, expected) in [
        // One transaction compressed: ANONYMOUS_GTID + TRANSACTION_PAYLOAD (ends @431).
        ("transaction_compression.000001", 1),
        // GTID_TAGGED, BEGIN, TABLE_MAP, WRITE_ROWS, XID (ends @541).
        ("binlog_transaction_with_GTID_TAG.000001", 1),
        // ALTER USER, CREATE TABLE (each ANONYMOUS_GTID + QUERY), then six row transactions
        // ending in XID, the last (@3527) a partial JSON update.
        ("json.binlog.000001", 8),
    ] {
        let (groups, kept) = transactions_of(name);
        let joined: Vec<u8> = groups.iter().flat_map(|g| g.bytes.clone()).collect();
        assert_eq!(
            joined, kept,
            "{name}: every transaction event, in order, byte for byte"
        );
        assert_eq!(groups.len(), expected, "{name}: transactions");
        for group in &groups {
            // Each group ends where the next begins: positions chain.
            assert!(group.end > group.start, "{name}: {group:?}");
            let last_kind = last_event_kind(&group.bytes);
            assert!(
                matches!(last_kind, 2 | 16 | 38 | 40),
                "{name}: a transaction ending in event type {last_kind}"
            );
        }
        for pair in groups.windows(2) {
            assert_eq!(pair[0].end, pair[1].start, "{name}: transactions chain");
        }
    }
    // The tagged GTID is read as MySQL 8.4 prints it.
    let (groups, _) = transactions_of("binlog_transaction_with_GTID_TAG.000001");
    assert!(
        groups.iter().any(|g| g
            .gtid
            .as_deref()
            .is_some_and(|gtid| gtid.matches(':').count() == 2)),
        "{:?}",
        groups.iter().map(|g| g.gtid.clone()).collect::<Vec<_>>()
    );
}

/// The type of the last event in `bytes` (events as a file holds them).
fn last_event_kind(bytes: &[u8]) -> u8 {
    let mut at = 0;
    let mut kind = 0;
    while at + 19 <= bytes.len() {
        kind = bytes[at + 4];
        at += u32::from_le_bytes(bytes[at + 9..at + 13].try_into().unwrap()) as usize;
    }
    kind
}
