//! Giving back one table (issue 7): `--table`, `--into`, `--into-table`, `dump --table`, and
//! choosing the snapshot with `--snapshot` / `--at`. Nothing but the tables asked for changes.

mod common;

use common::*;

/// Everything about `db` except the tables in `except`: what a table restore must not touch.
fn others(server: &MariaDb, db: &str, except: &[&str]) -> String {
    let skip = except
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(",");
    let objects = server.sql(&format!(
        "SELECT 'table', TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME NOT IN ({skip}) \
         UNION ALL SELECT 'trigger', TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{db}' AND EVENT_OBJECT_TABLE NOT IN ({skip}) \
         UNION ALL SELECT 'routine', ROUTINE_NAME, ROUTINE_DEFINITION FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{db}' \
         UNION ALL SELECT 'view', TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '{db}' \
         ORDER BY 1, 2"
    ));
    let sums: Vec<_> = checksums(server, db)
        .into_iter()
        .filter(|(t, _)| !except.contains(&t.as_str()))
        .collect();
    format!("{objects}{sums:?}")
}

fn checksum(server: &MariaDb, db: &str, table: &str) -> String {
    checksums(server, db)
        .into_iter()
        .find(|(t, _)| t == table)
        .map(|(_, sum)| sum)
        .unwrap_or_else(|| panic!("no table {db}.{table}"))
}

const STUDY: &str = "CREATE DATABASE tbl_study; USE tbl_study; \
    CREATE TABLE patients (id INT PRIMARY KEY, name VARCHAR(50) COLLATE utf8mb4_unicode_ci NOT NULL) DEFAULT CHARSET=utf8mb4; \
    INSERT INTO patients SELECT seq, CONCAT('patient ', seq) FROM seq_1_to_300; \
    CREATE TABLE visits (id INT PRIMARY KEY, patient_id INT NOT NULL, note VARCHAR(200), seen DATE, \
      KEY (patient_id), CONSTRAINT visits_patient FOREIGN KEY (patient_id) REFERENCES patients (id)) DEFAULT CHARSET=utf8mb4; \
    INSERT INTO visits SELECT seq, 1 + seq % 300, CONCAT('visit ', seq, ' ', SHA2(seq, 256)), '2026-01-01' + INTERVAL seq % 200 DAY FROM seq_1_to_3000; \
    CREATE TABLE audit_log (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(50)); \
    CREATE TRIGGER visits_ai AFTER INSERT ON visits FOR EACH ROW INSERT INTO audit_log (what) VALUES (CONCAT('visit ', NEW.id)); \
    CREATE VIEW visit_counts AS SELECT patient_id, COUNT(*) AS n FROM visits GROUP BY patient_id;";

#[test]
fn one_table_comes_back_beside_the_live_one_or_in_another_database_and_nothing_else_moves() {
    let server = MariaDb::shared();
    server.sql(STUDY);
    let repo = Repo::new();
    let url = server.socket_url();
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "tbl_study"]));
    let visits_then = checksum(server, "tbl_study", "visits");
    let patients_then = checksum(server, "tbl_study", "patients");

    // The customer breaks their data.
    server.sql("USE tbl_study; DELETE FROM visits WHERE id % 7 = 0; UPDATE patients SET name = 'x' WHERE id < 10;");
    let before = others(server, "tbl_study", &["visits_restored"]);

    // Beside the live table: the snapshot's rows, no trigger (the live table keeps its names).
    let out = ok(repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--db",
        "tbl_study",
        "--table",
        "visits",
        "--into-table",
        "visits_restored",
    ]));
    assert!(
        out.contains("table visits (as visits_restored) of tbl_study"),
        "{out}"
    );
    assert_eq!(
        checksum(server, "tbl_study", "visits_restored"),
        visits_then
    );
    assert_eq!(others(server, "tbl_study", &["visits_restored"]), before);
    assert_eq!(
        server.sql("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_TABLE = 'visits_restored'").trim(),
        "0"
    );

    // An existing table is refused before anything is written.
    let refused = repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--db",
        "tbl_study",
        "--table",
        "visits",
    ]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("table visits is already in database tbl_study"),
        "{}",
        stderr(&refused)
    );
    assert!(
        stderr(&refused).contains("--into-table"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(others(server, "tbl_study", &["visits_restored"]), before);

    // Into another database (created): both tables, the trigger, and the foreign key pointing
    // at that database's parent table.
    ok(repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--db",
        "tbl_study",
        "--table",
        "visits",
        "--table",
        "patients",
        "--into",
        "tbl_copy",
    ]));
    assert_eq!(checksum(server, "tbl_copy", "visits"), visits_then);
    assert_eq!(checksum(server, "tbl_copy", "patients"), patients_then);
    assert_eq!(
        server.sql("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'tbl_copy'").trim(),
        "visits_ai"
    );
    assert_eq!(
        server.sql("SELECT CONCAT(UNIQUE_CONSTRAINT_SCHEMA, '.', REFERENCED_TABLE_NAME) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = 'tbl_copy' AND CONSTRAINT_NAME = 'visits_patient'").trim(),
        "tbl_copy.patients"
    );
    // The restored trigger did not fire on the restored rows.
    assert_eq!(
        server.sql("SELECT COUNT(*) FROM tbl_copy.visits").trim(),
        "3000"
    );
    let fk = server.try_sql("INSERT INTO tbl_copy.visits VALUES (99999, 99999, 'x', NULL)");
    assert!(fk.is_err_and(|e| e.contains("foreign key constraint fails")));

    // A table dropped from the live database comes back in place, with its trigger and key.
    server.sql("DROP TABLE tbl_study.visits_restored; DROP TABLE tbl_study.visits;");
    let before = others(server, "tbl_study", &["visits"]);
    ok(repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--db",
        "tbl_study",
        "--table",
        "visits",
    ]));
    assert_eq!(checksum(server, "tbl_study", "visits"), visits_then);
    assert_eq!(others(server, "tbl_study", &["visits"]), before);
    assert_eq!(
        server.sql("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'tbl_study' AND EVENT_OBJECT_TABLE = 'visits'").trim(),
        "1"
    );
    assert_eq!(
        server.sql("SELECT CONCAT(UNIQUE_CONSTRAINT_SCHEMA, '.', REFERENCED_TABLE_NAME) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = 'tbl_study' AND CONSTRAINT_NAME = 'visits_patient'").trim(),
        "tbl_study.patients"
    );

    // A table the snapshot does not hold is named, with what it does hold.
    let missing = repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--db",
        "tbl_study",
        "--table",
        "Visits",
        "--into",
        "tbl_never",
    ]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("table Visits is not in database tbl_study"),
        "{}",
        stderr(&missing)
    );
    assert!(
        stderr(&missing).contains("did you mean visits?"),
        "{}",
        stderr(&missing)
    );
    assert_eq!(
        server
            .sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'tbl_never'")
            .trim(),
        "0"
    );

    // `dump --table` writes the same as SQL; the stock client loads it into any database.
    let dump = repo.coffer(&[
        "dump",
        "--db",
        "tbl_study",
        "--table",
        "visits",
        "--into",
        "tbl_script",
        "--into-table",
        "v2",
    ]);
    let script = dump.stdout.clone();
    ok(dump);
    let text = String::from_utf8_lossy(&script);
    assert!(
        !text.contains("CREATE TABLE `patients`"),
        "only the table asked for is created"
    );
    assert!(
        !text.contains("FOREIGN KEY"),
        "a renamed copy has no foreign keys"
    );
    server.load_script(&script, None).expect("the script loads");
    assert_eq!(checksum(server, "tbl_script", "v2"), visits_then);
}

#[test]
fn the_snapshot_is_chosen_by_time_and_the_choice_is_printed() {
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE tbl_at; CREATE TABLE tbl_at.t (id INT PRIMARY KEY); INSERT INTO tbl_at.t VALUES (1);",
    );
    let repo = Repo::new();
    let url = server.socket_url();
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "tbl_at"]));
    let first = latest_snapshot(&repo);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let between = jiff::Timestamp::now();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    server.sql("INSERT INTO tbl_at.t VALUES (2);");
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "tbl_at"]));
    let second = latest_snapshot(&repo);
    assert_ne!(first, second);

    // A time between the two backups picks the first, and says so.
    let at = between.strftime("%Y-%m-%d %H:%M:%S").to_string();
    let out = repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--db",
        "tbl_at",
        "--table",
        "t",
        "--into",
        "tbl_at_then",
        "--at",
        &at,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("using snapshot {}", &first[..8])),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("the newest holding database tbl_at at or before"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        server
            .sql("SELECT GROUP_CONCAT(id) FROM tbl_at_then.t")
            .trim(),
        "1"
    );

    // The same instant written in another zone.
    let berlin = between
        .in_tz("Europe/Berlin")
        .expect("zone")
        .strftime("%Y-%m-%d %H:%M:%S Europe/Berlin")
        .to_string();
    let listing = repo.coffer(&["ls", "--at", &berlin, "--db", "tbl_at"]);
    assert!(
        stderr(&listing).contains(&format!("using snapshot {}", &first[..8])),
        "{}",
        stderr(&listing)
    );

    // A duration back from now reaches the second; one before any backup is refused.
    let dump = repo.coffer(&["dump", "--db", "tbl_at", "--at", "0s"]);
    assert!(!dump.status.success(), "a zero duration is refused");
    let an_hour_ago = repo.coffer(&["dump", "--db", "tbl_at", "--at", "1h"]);
    assert!(
        stderr(&an_hour_ago).contains("was taken at or before"),
        "{}",
        stderr(&an_hour_ago)
    );
    let early = repo.coffer(&["ls", "--at", "2020-01-01", "--db", "tbl_at"]);
    assert_eq!(early.status.code(), Some(1));
    assert!(
        stderr(&early).contains(
            "no snapshot holding database tbl_at was taken at or before 2020-01-01T00:00:00Z"
        ),
        "{}",
        stderr(&early)
    );
    assert!(
        stderr(&early).contains("the oldest snapshot holding database tbl_at was taken"),
        "{}",
        stderr(&early)
    );

    // A database missing from the newest snapshot is taken from the one before, and said.
    server.sql("CREATE DATABASE tbl_at_other; CREATE TABLE tbl_at_other.t (id INT PRIMARY KEY);");
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "tbl_at_other"]));
    let listing = repo.coffer(&["ls", "--db", "tbl_at"]);
    assert!(listing.status.success(), "{}", stderr(&listing));
    assert!(
        stderr(&listing).contains(&format!("using snapshot {}", &second[..8])),
        "{}",
        stderr(&listing)
    );
    assert!(
        stderr(&listing).contains("does not hold it"),
        "{}",
        stderr(&listing)
    );
}
