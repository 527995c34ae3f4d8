//! Change detection from the binary log (issue 10, first part): after a recorded position, row
//! events, statement-format DML and DDL are attributed to their databases; an untouched
//! database is not reported, and an unattributable statement makes everything count.

mod common;

use coffer::source::mysql::catalog::binlog_position;
use coffer::source::mysql::changes::changes_since;
use common::library::socket_target;
use common::*;

#[tokio::test]
async fn the_binary_log_names_exactly_the_databases_that_changed() {
    let server = MariaDb::shared();
    for db in ["ch_a", "ch_b", "ch_c", "ch_d"] {
        server.sql(&format!(
            "CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT PRIMARY KEY, v TEXT); \
             INSERT INTO {db}.t VALUES (1, 'one');"
        ));
    }
    let target = socket_target(server);
    let mut conn = target.connect().await.expect("connect");
    let from = binlog_position(&mut conn).await.expect("binlog on");
    drop(conn);

    // Statement format with a qualified name, row format, DDL; ch_c is left alone.
    server.sql("SET SESSION binlog_format = 'STATEMENT'; INSERT INTO ch_a.t VALUES (2, 'two');");
    server.sql("SET SESSION binlog_format = 'ROW'; UPDATE ch_b.t SET v = 'uno' WHERE id = 1;");
    server.sql("USE ch_d; ALTER TABLE t ADD COLUMN w INT;");

    let changes = changes_since(&target, &from, 4_242_001)
        .await
        .expect("scan");
    assert!(changes.all.is_none(), "{changes:?}");
    for db in ["ch_a", "ch_b", "ch_d"] {
        assert!(changes.database_changed(db), "{db} not seen: {changes:?}");
    }
    assert!(!changes.database_changed("ch_c"), "{changes:?}");
    assert!(
        changes
            .tables
            .contains(&("ch_b".to_string(), "t".to_string())),
        "{changes:?}"
    );
    assert!(changes.end_position > from.position || changes.end_file != from.file);

    // From the end of that scan, nothing changed; then one unattributable statement.
    let since_end = coffer::repo::snapshot::BinlogPosition {
        file: changes.end_file.clone(),
        position: changes.end_position,
        gtid_set: String::new(),
    };
    let quiet = changes_since(&target, &since_end, 4_242_002)
        .await
        .expect("scan");
    assert!(
        quiet.databases.is_empty() && quiet.all.is_none(),
        "{quiet:?}"
    );
    server.sql("CREATE USER 'ch_someone'@'%' IDENTIFIED BY 'x';");
    let after_user = changes_since(&target, &since_end, 4_242_003)
        .await
        .expect("scan");
    assert!(after_user.all.is_some(), "{after_user:?}");
    assert!(after_user.database_changed("ch_c"));
}
