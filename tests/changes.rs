//! Change detection from the binary log (issue 10, first part): after a recorded position, row
//! events, statement-format DML and DDL are attributed to their databases; an untouched
//! database is not reported, and an unattributable statement makes everything count.

mod common;

use coffer::source::mysql::catalog::binlog_position;
use coffer::source::mysql::changes::{Changes, changes_since};
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

    let changes = changes_since(&target, &from, 4_242_001, Changes::default())
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
    let quiet = changes_since(&target, &since_end, 4_242_002, Changes::default())
        .await
        .expect("scan");
    assert!(
        quiet.databases.is_empty() && quiet.all.is_none(),
        "{quiet:?}"
    );
    server.sql("CREATE USER 'ch_someone'@'%' IDENTIFIED BY 'x';");
    let after_user = changes_since(&target, &since_end, 4_242_003, Changes::default())
        .await
        .expect("scan");
    assert!(after_user.all.is_some(), "{after_user:?}");
    assert!(after_user.database_changed("ch_c"));
}

/// Cascading foreign keys are read inside a database too: InnoDB on MySQL 8 logs nothing of
/// the child rows a cascade changes, so the child table must count as changed with its parent.
#[tokio::test]
async fn cascading_foreign_keys_inside_a_database_are_listed() {
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE fk_in; USE fk_in; \
         CREATE TABLE sites (id INT PRIMARY KEY); \
         CREATE TABLE visits (id INT PRIMARY KEY, site INT, \
           FOREIGN KEY (site) REFERENCES sites (id) ON DELETE CASCADE); \
         CREATE TABLE notes (id INT PRIMARY KEY, site INT, \
           FOREIGN KEY (site) REFERENCES sites (id));",
    );
    let target = socket_target(server);
    let mut conn = target.connect().await.expect("connect");
    let edges = coffer::source::mysql::catalog::cascading_foreign_keys(&mut conn)
        .await
        .expect("foreign keys");
    let within: Vec<_> = edges
        .iter()
        .filter(|e| e.child_database.as_deref() == Some("fk_in"))
        .collect();
    assert_eq!(within.len(), 1, "only the cascading key: {edges:?}");
    assert_eq!(
        within[0].parent,
        Some(("fk_in".to_string(), "sites".to_string()))
    );
    assert_eq!(within[0].child_table.as_deref(), Some("visits"));
}
