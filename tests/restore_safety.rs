//! A restore never destroys what it was not asked to replace (issue 12): `--drop-existing`
//! swaps the live database only once the snapshot is loaded beside it, a failure at any step
//! leaves it as it was, rows too large for the target's max_allowed_packet go in pieces, and
//! statements planted in a repository are refused before anything runs.

mod common;

use std::sync::Arc;

use coffer::repo::Repository;
use coffer::repo::ids::BlobId;
use coffer::repo::pack::BlobKind;
use coffer::repo::tree::{ChunkRef, DatabaseTree, TableTree};
use coffer::repo::writer::BlobStore;
use common::library::*;
use common::*;

/// Tables' checksums, views, triggers, routines and events of `db`: what a restore must leave
/// exactly as it was when it fails.
fn state(server: &MariaDb, db: &str) -> String {
    let objects = server.sql(&format!(
        "SELECT 'table', TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' \
         UNION ALL SELECT 'trigger', TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{db}' \
         UNION ALL SELECT 'routine', ROUTINE_NAME, ROUTINE_DEFINITION FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{db}' \
         UNION ALL SELECT 'event', EVENT_NAME, EVENT_DEFINITION FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '{db}' \
         UNION ALL SELECT 'view', TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '{db}' \
         ORDER BY 1, 2"
    ));
    format!("{objects}{:?}", checksums(server, db))
}

/// Databases and tables a restore made for itself and must not leave behind.
fn leftovers(server: &MariaDb) -> String {
    server.sql(
        "SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA LIKE 'coffer\\_restore\\_%' OR TABLE_NAME LIKE 'coffer\\_old\\_%' \
         UNION ALL SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'coffer\\_restore\\_%'",
    )
}

/// The tests of this file look for what any restore left behind on the shared server, so they
/// run one at a time.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn restore(repo: &Repo, server: &MariaDb, extra: &[&str]) -> std::process::Output {
    let url = server.socket_url();
    let mut args = vec!["restore", "--mysql", &url];
    args.extend_from_slice(extra);
    repo.coffer(&args)
}

#[test]
fn drop_existing_replaces_the_live_database_only_once_everything_loaded() {
    let _serial = one_at_a_time();
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE swap_live; USE swap_live; \
         CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(20)); \
         CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, FOREIGN KEY (parent_id) REFERENCES parent (id)); \
         INSERT INTO parent VALUES (1, 'one'), (2, 'two'); INSERT INTO child VALUES (10, 1), (20, 2); \
         CREATE VIEW v AS SELECT p.name, c.id FROM parent p JOIN child c ON c.parent_id = p.id; \
         CREATE TRIGGER child_bi BEFORE INSERT ON child FOR EACH ROW SET NEW.id = NEW.id + 0; \
         CREATE PROCEDURE count_children() SELECT COUNT(*) FROM child;",
    );
    let repo = Repo::new();
    ok(repo.coffer(&[
        "backup",
        "--mysql",
        &server.socket_url(),
        "--include",
        "swap_live",
    ]));
    let snapshot_state = state(server, "swap_live");

    // The customer breaks their data: rows changed, a table and a view added, the trigger gone.
    server.sql(
        "USE swap_live; UPDATE parent SET name = 'broken'; DELETE FROM child WHERE id = 20; \
         CREATE TABLE scratch (x INT); CREATE VIEW v2 AS SELECT 1 AS one; DROP TRIGGER child_bi; \
         CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DO DELETE FROM scratch;",
    );
    assert_ne!(state(server, "swap_live"), snapshot_state);

    let out = restore(&repo, server, &["--db", "swap_live", "--drop-existing"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(state(server, "swap_live"), snapshot_state);
    assert_eq!(
        leftovers(server),
        "",
        "the restore left its own objects behind"
    );
    // The foreign key moved with its tables and still holds.
    assert!(
        server
            .try_sql("INSERT INTO swap_live.child VALUES (30, 99)")
            .is_err(),
        "the foreign key no longer holds after the swap"
    );
    assert_eq!(
        server.sql("CALL swap_live.count_children()").trim(),
        "2",
        "the procedure works on the swapped-in tables"
    );
}

#[test]
fn a_restore_that_fails_while_staging_leaves_the_live_database_as_it_was() {
    let _serial = one_at_a_time();
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE stage_other; CREATE TABLE stage_other.t (id INT PRIMARY KEY); \
         CREATE DATABASE stage_live; USE stage_live; CREATE TABLE t (id INT PRIMARY KEY, v INT); \
         INSERT INTO t VALUES (1, 1), (2, 2); \
         CREATE VIEW cross_db AS SELECT id FROM stage_other.t;",
    );
    let repo = Repo::new();
    ok(repo.coffer(&[
        "backup",
        "--mysql",
        &server.socket_url(),
        "--include",
        "stage_live",
    ]));
    // The view's other database is gone now, and the live data moved on.
    server.sql(
        "DROP DATABASE stage_other; UPDATE stage_live.t SET v = 42; DROP VIEW stage_live.cross_db;",
    );
    let live = state(server, "stage_live");

    let out = restore(&repo, server, &["--db", "stage_live", "--drop-existing"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("cross_db") && err.contains("stage_live was not touched"),
        "the failing view is named and the live database said untouched: {err}"
    );
    assert_eq!(
        state(server, "stage_live"),
        live,
        "the live database changed"
    );
    assert_eq!(leftovers(server), "");

    // A missing pack is found before the server is touched at all.
    for pack in files_under(&repo.path().join("data")) {
        std::fs::remove_file(pack).expect("remove pack");
    }
    let out = restore(&repo, server, &["--db", "stage_live", "--drop-existing"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("missing from storage"),
        "{}",
        stderr(&out)
    );
    assert_eq!(state(server, "stage_live"), live);
}

#[test]
fn a_swap_that_fails_is_rolled_back() {
    let _serial = one_at_a_time();
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE roll_live; USE roll_live; CREATE TABLE t (id INT PRIMARY KEY, v INT); \
         INSERT INTO t VALUES (1, 1); CREATE TABLE audit (id INT); \
         CREATE TRIGGER t_ai AFTER INSERT ON t FOR EACH ROW INSERT INTO audit VALUES (NEW.id); \
         CREATE VIEW v AS SELECT id FROM t; \
         CREATE EVENT cleanup ON SCHEDULE EVERY 1 DAY DO DELETE FROM audit;",
    );
    let repo = Repo::new();
    ok(repo.coffer(&[
        "backup",
        "--mysql",
        &server.socket_url(),
        "--include",
        "roll_live",
    ]));
    server.sql(
        "USE roll_live; DROP EVENT cleanup; UPDATE t SET v = 7; CREATE TABLE extra (x INT); INSERT INTO extra VALUES (5); \
         SET GLOBAL log_bin_trust_function_creators = 1; \
         CREATE USER 'restorer'@'localhost' IDENTIFIED BY 'restorer-pw'; \
         GRANT ALL ON roll_live.* TO 'restorer'@'localhost'; \
         GRANT ALL ON `coffer\\_restore\\_%`.* TO 'restorer'@'localhost'; \
         GRANT SET USER ON *.* TO 'restorer'@'localhost'; \
         REVOKE EVENT ON roll_live.* FROM 'restorer'@'localhost';",
    );
    let live = state(server, "roll_live");
    // The restoring account may do everything in the staging database, but may not create the
    // snapshot's event in the live one: the swap fails after the tables moved.
    let url = server.socket_url_as("restorer");
    let out = repo.coffer_env(
        &[
            "restore",
            "--mysql",
            &url,
            "--db",
            "roll_live",
            "--drop-existing",
            "--skip-definer",
        ],
        &[("COFFER_MYSQL_PASSWORD", "restorer-pw")],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("rolled back"), "{err}");
    assert_eq!(
        state(server, "roll_live"),
        live,
        "the rollback did not restore the live database"
    );
    assert_eq!(leftovers(server), "");
    // The trigger is attached to the live table again and works.
    server.sql("INSERT INTO roll_live.t VALUES (2, 2)");
    assert_eq!(
        server.sql("SELECT COUNT(*) FROM roll_live.audit").trim(),
        "1"
    );
}

#[test]
fn rows_larger_than_the_targets_max_allowed_packet_go_in_pieces() {
    let _serial = one_at_a_time();
    let source = MariaDb::shared();
    source.sql(
        "CREATE DATABASE big_rows; USE big_rows; \
         CREATE TABLE t (id INT PRIMARY KEY, blob_value LONGBLOB, text_value LONGTEXT, json_value JSON, small INT); \
         INSERT INTO t VALUES (1, RANDOM_BYTES(1024), 'small', '{}', 1); \
         INSERT INTO t SELECT 2, REPEAT(UNHEX('00FF27'), 200000), REPEAT('é\\'x', 100000), \
           CONCAT('{\"k\": \"', REPEAT('v', 400000), '\"}'), 2; \
         CREATE TABLE too_big (id INT PRIMARY KEY, b LONGBLOB); \
         INSERT INTO too_big VALUES (1, REPEAT('z', 2 * 1024 * 1024));",
    );
    let repo = Repo::new();
    ok(repo.coffer(&[
        "backup",
        "--mysql",
        &source.socket_url(),
        "--include",
        "big_rows",
    ]));

    // A target whose max_allowed_packet (1 MiB) is below the row's 1.4 MB of hex.
    let target = MariaDb::start(None);
    target.sql("SET GLOBAL max_allowed_packet = 1048576");
    let out = restore(&repo, &target, &["--db", "big_rows"]);
    assert!(
        !out.status.success(),
        "a 2 MiB value cannot fit a 1 MiB max_allowed_packet"
    );
    let err = stderr(&out);
    assert!(
        err.contains("too_big") && err.contains("max_allowed_packet") && err.contains("raise"),
        "the table and the setting to change are named: {err}"
    );
    assert_eq!(leftovers(&target), "");
    assert_eq!(target.sql("SHOW DATABASES LIKE 'big_rows'"), "");

    // With the oversized table gone from the comparison: once the limit allows each value,
    // pieces carry every row exactly.
    target.sql("SET GLOBAL max_allowed_packet = 4194304");
    let out = restore(&repo, &target, &["--db", "big_rows"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        checksums(source, "big_rows"),
        checksums(&target, "big_rows")
    );
}

/// A change to a database's trees, its tables' trees and the data chunks given to its first
/// table.
type Forgery = Box<dyn FnOnce(&mut DatabaseTree, &mut Vec<TableTree>, &mut Vec<Vec<u8>>)>;

/// Write a new snapshot whose trees `forge` changed, with the repository key, as someone who
/// can write to the repository could.
async fn forge_snapshot(
    repo: &Arc<Repository>,
    from_snapshot: &str,
    db: &str,
    forge: impl FnOnce(&mut DatabaseTree, &mut Vec<TableTree>, &mut Vec<Vec<u8>>),
) {
    let (_, mut snapshot) = repo.find_snapshot(from_snapshot).await.expect("snapshot");
    let index = repo.load_index().await.expect("index");
    let entry = snapshot
        .databases
        .iter_mut()
        .find(|d| d.name == db)
        .expect("database in snapshot");
    let mut database: DatabaseTree = repo.read_tree(&index, &entry.tree).await.expect("tree");
    let mut tables = Vec::new();
    for table in &database.tables {
        tables.push(
            repo.read_tree::<TableTree>(&index, &table.tree)
                .await
                .expect("table"),
        );
    }
    let mut chunks = Vec::new();
    forge(&mut database, &mut tables, &mut chunks);
    let store = BlobStore::new(repo.clone(), &index, 1);
    let mut sink = store.sink();
    let mut chunk_ids: Vec<BlobId> = Vec::new();
    for chunk in chunks {
        chunk_ids.push(sink.add(BlobKind::Data, chunk).await.expect("chunk"));
    }
    if let Some(id) = chunk_ids.first() {
        tables[0].chunks = vec![ChunkRef {
            id: *id,
            rows: 1,
            first_key: None,
        }];
    }
    for (table, reference) in tables.iter().zip(database.tables.iter_mut()) {
        let json = serde_json::to_vec(table).expect("json");
        reference.tree = sink.add(BlobKind::Tree, json).await.expect("tree");
    }
    entry.tree = sink
        .add(BlobKind::Tree, serde_json::to_vec(&database).expect("json"))
        .await
        .expect("tree");
    sink.finish().await.expect("finish");
    store.finish_run().await.expect("index");
    snapshot.time = jiff::Timestamp::now();
    repo.save_snapshot(&snapshot).await.expect("snapshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_planted_in_the_repository_are_refused() {
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE victim; CREATE TABLE victim.keep (id INT PRIMARY KEY); INSERT INTO victim.keep VALUES (1); \
         CREATE DATABASE forged; USE forged; CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1); \
         CREATE TRIGGER t_bi BEFORE INSERT ON t FOR EACH ROW SET NEW.id = NEW.id;",
    );
    let repo = Repo::new();
    ok(repo.coffer(&[
        "backup",
        "--mysql",
        &server.socket_url(),
        "--include",
        "forged",
    ]));
    let storage =
        coffer::storage::open_location(&repo.path().display().to_string(), &Default::default())
            .expect("storage")
            .storage;
    let opened = Arc::new(Repository::open(storage, &provider()).await.expect("open"));
    let victim = state(server, "victim");
    let original = latest_snapshot(&repo);

    let forgeries: Vec<(&str, Forgery)> = vec![
        (
            "more than one statement",
            Box::new(|_, tables, _| {
                tables[0].create_sql.push_str("; DROP DATABASE victim");
            }),
        ),
        (
            "in database \"victim\"",
            Box::new(|db, _, _| {
                db.triggers[0].create_sql = "CREATE TRIGGER t_bi BEFORE INSERT ON victim.keep FOR EACH ROW DELETE FROM victim.keep".into();
            }),
        ),
        (
            "not a name",
            Box::new(|db, _, _| {
                db.charset = "utf8mb4; DROP DATABASE victim; --".into();
            }),
        ),
        (
            "is damaged",
            Box::new(|_, _, chunks| {
                chunks.push(b"(1);DROP DATABASE victim;(1)\n".to_vec());
            }),
        ),
    ];
    for (expected, forge) in forgeries {
        forge_snapshot(&opened, &original, "forged", forge).await;
        for command in [
            vec![
                "restore",
                "--mysql",
                &server.socket_url(),
                "--db",
                "forged",
                "--into",
                "forged_r",
            ],
            vec!["dump", "--db", "forged"],
        ] {
            let out = repo.coffer(&command);
            assert!(!out.status.success(), "{expected}: {command:?} succeeded");
            assert!(
                stderr(&out).contains(expected),
                "{command:?}: expected {expected:?} in {}",
                stderr(&out)
            );
        }
        assert_eq!(
            state(server, "victim"),
            victim,
            "{expected}: the victim changed"
        );
        assert_eq!(server.sql("SHOW DATABASES LIKE 'forged\\_r'"), "");
    }
}

#[tokio::test]
async fn the_server_refuses_a_second_statement_in_one_query() {
    use mysql_async::prelude::Queryable;
    let server = MariaDb::shared();
    server.sql("CREATE DATABASE multi; CREATE TABLE multi.keep (id INT);");
    let mut conn = socket_target(server).connect().await.expect("connect");
    let result = conn
        .query_drop("CREATE TABLE multi.planted (id INT); DROP TABLE multi.keep")
        .await;
    assert!(result.is_err(), "two statements in one query were run");
    assert_eq!(
        server.sql("SHOW TABLES FROM multi"),
        "keep\n",
        "neither statement may have run"
    );
}

/// Connections loading one table at once can deadlock on its secondary indexes (CI saw it on
/// MariaDB 10.11); the loser's transaction is rolled back and run again as a whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_that_loses_a_lock_conflict_is_run_again() {
    use mysql_async::prelude::Queryable;
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE lock_conflict; CREATE TABLE lock_conflict.t (id INT PRIMARY KEY, v INT); \
         INSERT INTO lock_conflict.t VALUES (1, 0);",
    );
    let target = socket_target(server);
    let mut holder = target.connect().await.expect("connect");
    let mut loser = target.connect().await.expect("connect");
    loser
        .query_drop("SET SESSION innodb_lock_wait_timeout = 1")
        .await
        .expect("timeout");
    holder.query_drop("START TRANSACTION").await.expect("begin");
    holder
        .query_drop("SELECT * FROM lock_conflict.t WHERE id = 1 FOR UPDATE")
        .await
        .expect("lock");

    // Without a retry the statement fails with the server's lock wait timeout.
    let plain = loser
        .query_drop("UPDATE lock_conflict.t SET v = 1 WHERE id = 1")
        .await;
    assert!(
        matches!(&plain, Err(mysql_async::Error::Server(e)) if e.code == 1205),
        "{plain:?}"
    );

    let release = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        holder.query_drop("COMMIT").await.expect("commit");
        holder
    });
    coffer::source::mysql::transaction_retrying_lock_conflicts(
        &mut loser,
        &[
            "INSERT INTO lock_conflict.t VALUES (2, 2)",
            "UPDATE lock_conflict.t SET v = 2 WHERE id = 1",
        ],
        || "updating".to_string(),
    )
    .await
    .expect("the retried statement succeeds once the lock is released");
    drop(release.await.expect("holder"));
    // The whole transaction ran once: the insert before the conflicting update was rolled
    // back with it and not repeated.
    assert_eq!(
        server
            .sql("SELECT GROUP_CONCAT(v ORDER BY id) FROM lock_conflict.t")
            .trim(),
        "2,2"
    );
}

/// Table and row restores stage in the same private database and leave nothing behind,
/// whether they succeed or fail; a failure after the move takes the moved tables out again.
#[test]
fn table_and_row_restores_leave_nothing_behind() {
    let _serial = one_at_a_time();
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE scoped; USE scoped; CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10)); \
         INSERT INTO t VALUES (1, 'a'), (2, 'b'); \
         CREATE TABLE u (id INT PRIMARY KEY); \
         CREATE TRIGGER u_bi BEFORE INSERT ON u FOR EACH ROW SET NEW.id = NEW.id;",
    );
    let repo = Repo::new();
    ok(repo.coffer(&[
        "backup",
        "--mysql",
        &server.socket_url(),
        "--include",
        "scoped",
    ]));
    server.sql("DELETE FROM scoped.t WHERE id = 1;");
    ok(restore(
        &repo,
        server,
        &["--db", "scoped", "--table", "t", "--into", "scoped_copy"],
    ));
    ok(restore(
        &repo,
        server,
        &["--db", "scoped", "--table", "t", "--where", "id = 1"],
    ));
    let bad = restore(
        &repo,
        server,
        &["--db", "scoped", "--table", "t", "--where", "nope = 1"],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(leftovers(server), "");

    // A trigger name already taken in the target database fails the restore after the move:
    // the table moved in is taken out again and the database is as it was.
    server.sql("CREATE DATABASE scoped_taken; CREATE TABLE scoped_taken.other (id INT); \
                CREATE TRIGGER scoped_taken.u_bi BEFORE INSERT ON scoped_taken.other FOR EACH ROW SET NEW.id = NEW.id;");
    let before = state(server, "scoped_taken");
    let taken = restore(
        &repo,
        server,
        &["--db", "scoped", "--table", "u", "--into", "scoped_taken"],
    );
    assert_eq!(taken.status.code(), Some(1), "{}", stderr(&taken));
    assert!(
        stderr(&taken).contains("is as it was"),
        "{}",
        stderr(&taken)
    );
    assert_eq!(state(server, "scoped_taken"), before);
    assert_eq!(leftovers(server), "");
}

/// `--table T --drop-existing` replaces a live parent and a live child table: rows, triggers
/// and foreign keys as in the snapshot, the other tables' foreign keys still pointing at the
/// (new) parent and enforced, nothing left behind.
#[test]
fn drop_existing_replaces_live_tables_and_keeps_the_references_to_them() {
    let _serial = one_at_a_time();
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE repl; USE repl; \
         CREATE TABLE patients (id INT PRIMARY KEY, name VARCHAR(20)); \
         INSERT INTO patients SELECT seq, CONCAT('p', seq) FROM seq_1_to_50; \
         CREATE TABLE visits (id INT PRIMARY KEY, patient_id INT NOT NULL, KEY (patient_id), \
           CONSTRAINT visits_patient FOREIGN KEY (patient_id) REFERENCES patients (id)); \
         INSERT INTO visits SELECT seq, 1 + seq % 50 FROM seq_1_to_200; \
         CREATE TABLE log (n INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(20)); \
         CREATE TRIGGER visits_ai AFTER INSERT ON visits FOR EACH ROW INSERT INTO log (what) VALUES ('visit');",
    );
    let repo = Repo::new();
    ok(repo.coffer(&[
        "backup",
        "--mysql",
        &server.socket_url(),
        "--include",
        "repl",
    ]));
    let then = checksums(server, "repl");
    server.sql(
        "USE repl; DELETE FROM visits WHERE id > 100; UPDATE patients SET name = 'broken'; \
         DROP TRIGGER visits_ai; CREATE TRIGGER visits_bi BEFORE INSERT ON visits FOR EACH ROW SET NEW.id = NEW.id;",
    );
    let log_before = checksums(server, "repl")
        .into_iter()
        .find(|(t, _)| t == "log")
        .expect("log");

    let refused = restore(&repo, server, &["--db", "repl", "--table", "patients"]);
    assert!(
        stderr(&refused).contains("--drop-existing"),
        "{}",
        stderr(&refused)
    );

    // The parent: the child's foreign key follows to the restored table and is enforced.
    let out = ok(restore(
        &repo,
        server,
        &["--db", "repl", "--table", "patients", "--drop-existing"],
    ));
    assert!(out.contains("replacing the existing tables"), "{out}");
    let sums = checksums(server, "repl");
    assert_eq!(
        sums.iter().find(|(t, _)| t == "patients"),
        then.iter().find(|(t, _)| t == "patients")
    );
    assert_eq!(
        server.sql("SELECT REFERENCED_TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = 'repl'").trim(),
        "patients"
    );
    let orphan = server.try_sql("INSERT INTO repl.visits VALUES (9999, 9999)");
    assert!(orphan.is_err_and(|e| e.contains("foreign key constraint fails")));
    assert_eq!(leftovers(server), "");

    // The child: its rows, its foreign key and its trigger as in the snapshot, the live
    // trigger gone; the other tables untouched.
    ok(restore(
        &repo,
        server,
        &["--db", "repl", "--table", "visits", "--drop-existing"],
    ));
    let sums = checksums(server, "repl");
    assert_eq!(
        sums.iter().find(|(t, _)| t == "visits"),
        then.iter().find(|(t, _)| t == "visits")
    );
    assert_eq!(sums.iter().find(|(t, _)| t == "log"), Some(&log_before));
    assert_eq!(
        server.sql("SELECT GROUP_CONCAT(TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'repl'").trim(),
        "visits_ai"
    );
    assert_eq!(
        server.sql("SELECT CONCAT(TABLE_NAME, '>', REFERENCED_TABLE_NAME) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = 'repl'").trim(),
        "visits>patients"
    );
    assert_eq!(leftovers(server), "");
}

/// A replacement that fails after the swap (a trigger name taken by another table) is undone
/// step by step: the live tables, their triggers, their foreign keys and the foreign keys that
/// reference them are as they were.
#[test]
fn a_table_replacement_that_fails_after_the_swap_is_undone() {
    let _serial = one_at_a_time();
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE repl_fail; USE repl_fail; \
         CREATE TABLE patients (id INT PRIMARY KEY); INSERT INTO patients VALUES (1), (2); \
         CREATE TABLE visits (id INT PRIMARY KEY, patient_id INT, KEY (patient_id), \
           CONSTRAINT v_p FOREIGN KEY (patient_id) REFERENCES patients (id)); \
         INSERT INTO visits VALUES (1, 1), (2, 2); \
         CREATE TABLE notes (id INT PRIMARY KEY, patient_id INT, KEY (patient_id), \
           CONSTRAINT n_p FOREIGN KEY (patient_id) REFERENCES patients (id)); \
         CREATE TRIGGER patients_bi BEFORE INSERT ON patients FOR EACH ROW SET NEW.id = NEW.id;",
    );
    let repo = Repo::new();
    ok(repo.coffer(&[
        "backup",
        "--mysql",
        &server.socket_url(),
        "--include",
        "repl_fail",
    ]));
    // Live: the patients trigger is now another table's, so the snapshot's cannot be created.
    server.sql(
        "USE repl_fail; DROP TRIGGER patients_bi; INSERT INTO patients VALUES (3); \
         CREATE TRIGGER patients_bi BEFORE INSERT ON notes FOR EACH ROW SET NEW.id = NEW.id; \
         CREATE TRIGGER patients_au AFTER UPDATE ON patients FOR EACH ROW SET @x = 1;",
    );
    let before = state(server, "repl_fail");
    let references = || {
        server.sql(
            "SELECT CONCAT(TABLE_NAME, '>', REFERENCED_TABLE_NAME) FROM information_schema.REFERENTIAL_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = 'repl_fail' ORDER BY 1",
        )
    };
    let references_before = references();
    let failed = restore(
        &repo,
        server,
        &[
            "--db",
            "repl_fail",
            "--table",
            "patients",
            "--drop-existing",
        ],
    );
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    assert!(
        stderr(&failed).contains("is as it was"),
        "{}",
        stderr(&failed)
    );
    assert!(
        stderr(&failed).contains("creating trigger `patients_bi`"),
        "{}",
        stderr(&failed)
    );
    assert_eq!(state(server, "repl_fail"), before);
    assert_eq!(references(), references_before);
    let orphan = server.try_sql("INSERT INTO repl_fail.visits VALUES (9, 9)");
    assert!(orphan.is_err_and(|e| e.contains("foreign key constraint fails")));
    assert_eq!(leftovers(server), "");
}
