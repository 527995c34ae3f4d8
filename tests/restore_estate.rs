//! `restore --all` / `--include`: many databases of one backup restored from one repository
//! open, each equal to its original (contents and definitions), audited once for the run and
//! once per database; a run killed in the middle goes on when repeated, skipping the databases
//! it completed (untouched) and redoing the one it was loading.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// Each table's contents (CHECKSUM TABLE) and definition, and the database's other objects.
fn state(server: &MariaDb, db: &str) -> Vec<String> {
    let mut out: Vec<String> = checksums(server, db)
        .into_iter()
        .map(|(table, sum)| {
            let create = server.sql(&format!("SHOW CREATE TABLE `{db}`.`{table}`"));
            let create = create
                .split_once('\t')
                .map_or(create.clone(), |(_, c)| c.to_string());
            format!("{table} {sum} {create}")
        })
        .collect();
    out.push(server.sql(&format!(
        "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{db}'"
    )));
    out.push(server.sql(&format!(
        "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{db}'"
    )));
    out
}

fn make_estate(server: &MariaDb, count: usize, rows: usize) -> Vec<String> {
    let mut names = Vec::new();
    for i in 0..count {
        let name = format!("est_{i}");
        let n = rows * (i + 1);
        server.sql(&format!(
            "CREATE DATABASE {name}; USE {name};
             CREATE TABLE subjects (id INT PRIMARY KEY, code VARCHAR(20), note TEXT);
             INSERT INTO subjects SELECT seq, CONCAT('S-', seq), REPEAT(SHA2(seq, 256), 2) FROM seq_1_to_{n};
             CREATE TABLE visits (id INT AUTO_INCREMENT PRIMARY KEY, subject INT, FOREIGN KEY (subject) REFERENCES subjects(id));
             INSERT INTO visits (subject) SELECT 1 + seq % {n} FROM seq_1_to_{n};
             CREATE VIEW per_subject AS SELECT subject, COUNT(*) AS n FROM visits GROUP BY subject;
             CREATE PROCEDURE touch() SELECT 1;
             CREATE TRIGGER visits_bi BEFORE INSERT ON visits FOR EACH ROW SET NEW.subject = NEW.subject;"
        ));
        names.push(name);
    }
    names
}

#[test]
fn every_database_of_a_run_is_restored_equal() {
    let server = MariaDb::start_with(None, &[]);
    let repo = Repo::new();
    let url = server.socket_url();
    let names = make_estate(&server, 5, 300);
    server.sql("CREATE DATABASE other_1; CREATE TABLE other_1.t (id INT PRIMARY KEY)");
    ok(repo.coffer(&["backup", "--mysql", &url]));

    let out = ok(repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--include",
        "est_*",
        "--exclude",
        "est_4",
        "--into-prefix",
        "copy_",
        "--jobs",
        "3",
        "--json",
        "--reason",
        "RUN-1",
    ]));
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["restored"], 4, "{summary:#}");
    assert_eq!(summary["failed"], 0, "{summary:#}");
    for name in &names[..4] {
        assert_eq!(
            state(&server, name),
            state(&server, &format!("copy_{name}")),
            "{name}"
        );
    }
    let listed = server.sql("SHOW DATABASES");
    assert!(
        !listed.contains("copy_est_4") && !listed.contains("copy_other_1"),
        "{listed}"
    );
    assert!(
        !listed.contains("coffer_restore_"),
        "no staging left: {listed}"
    );

    // One record for the run and one per database.
    let audit: serde_json::Value =
        serde_json::from_str(&ok(repo.coffer(&["audit", "--json"]))).unwrap();
    let records = audit["records"]
        .as_array()
        .unwrap_or_else(|| audit.as_array().unwrap());
    let restores: Vec<_> = records
        .iter()
        .filter(|r| r["command"] == "restore" && r["reason"] == "RUN-1")
        .collect();
    let per_database = restores
        .iter()
        .filter(|r| r["database"].is_string())
        .count();
    assert_eq!(per_database, 4, "{restores:#?}");
    // The parts are written one at a time, each naming the one before (a chain, not four
    // records naming the same predecessor), and the log verifies.
    let predecessors: std::collections::BTreeSet<&str> = restores
        .iter()
        .filter(|r| r["database"].is_string())
        .filter_map(|r| r["previous"].as_str())
        .collect();
    assert_eq!(predecessors.len(), 4, "{restores:#?}");
    ok(repo.coffer(&["audit", "--verify"]));
    assert!(
        restores
            .iter()
            .any(|r| r["database"].is_null() && r["counts"]["databases_restored"] == 4),
        "{restores:#?}"
    );

    // --all takes every database of the backup.
    let out = ok(repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--all",
        "--into-prefix",
        "all_",
        "--json",
    ]));
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["restored"], 6, "{summary:#}");
}

#[test]
fn a_killed_run_resumes_skipping_what_it_completed() {
    let server = MariaDb::start_with(None, &[]);
    let repo = Repo::new();
    let url = server.socket_url();
    let names = make_estate(&server, 6, 4000);
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "est_*"]));
    let args = [
        "restore",
        "--mysql",
        &url,
        "--all",
        "--into-prefix",
        "back_",
        "--jobs",
        "1",
    ];

    // Kill the run once two databases are complete (one at a time, largest first).
    let mut child = coffer_cmd(&args, Some(repo.path()), &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let done = server.sql("SHOW DATABASES LIKE 'back\\_%'").lines().count();
        if done >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the restore made no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the restore ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    let existing: Vec<String> = server
        .sql("SHOW DATABASES LIKE 'back\\_%'")
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        existing.len() < names.len(),
        "killed too late: {existing:?}"
    );
    let created = |db: &str| {
        server.sql(&format!(
            "SELECT GROUP_CONCAT(CREATE_TIME, TABLE_NAME ORDER BY TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}'"
        ))
    };
    let before: Vec<String> = existing.iter().map(|db| created(db)).collect();
    // CREATE_TIME has whole seconds: a database loaded again must show a later one.
    std::thread::sleep(Duration::from_millis(1100));

    // The same command again goes on.
    let out = repo.coffer(&args);
    let said = stderr(&out);
    assert!(out.status.success(), "{said}");
    let skipped: usize = said
        .split(" database(s) complete and skipped")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume line: {said}"));
    assert!(skipped >= 1, "{said}");
    for name in &names {
        assert_eq!(
            state(&server, name),
            state(&server, &format!("back_{name}")),
            "{name}"
        );
    }
    let after: Vec<String> = existing.iter().map(|db| created(db)).collect();
    let untouched = before.iter().zip(&after).filter(|(b, a)| b == a).count();
    assert_eq!(
        untouched, skipped,
        "exactly the complete databases are left alone: {said}"
    );
    assert!(
        !server.sql("SHOW DATABASES").contains("coffer_restore_"),
        "the stopped run's staging copy is gone"
    );
}

/// `restore --all --at`: every database is its backup's copy taken to the moment by the
/// archived binary log (each reading only the log segments that touched it), and one the log
/// cannot take there refuses the run before anything changes.
#[test]
fn an_estate_at_a_moment_replays_each_database_to_it() {
    let server = MariaDb::start_with(None, &["--binlog-format=ROW"]);
    let repo = Repo::new();
    let url = server.socket_url();
    let names = make_estate(&server, 3, 50);
    ok(repo.coffer(&["log", "sync", "--mysql", &url]));
    ok(repo.coffer(&["backup", "--mysql", &url]));
    moment();
    // After the backup: changes to two of the three studies, then the moment, then damage.
    // Each sync stores what it read as its own segment.
    server.sql("INSERT INTO est_0.subjects VALUES (1000, 'late', 'after the backup')");
    ok(repo.coffer(&["log", "sync", "--mysql", &url]));
    server.sql(
        "UPDATE est_1.subjects SET code = 'changed' WHERE id <= 10;
         DELETE FROM est_1.visits WHERE id > 40;",
    );
    ok(repo.coffer(&["log", "sync", "--mysql", &url]));
    let at = moment();
    let reference: Vec<Vec<String>> = names.iter().map(|n| state(&server, n)).collect();
    server.sql("DELETE FROM est_0.visits; UPDATE est_2.subjects SET note = NULL;");
    ok(repo.coffer(&["log", "sync", "--mysql", &url]));

    let out = ok(repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--all",
        "--at",
        &at,
        "--into-prefix",
        "then_",
        "--json",
    ]));
    let summary: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(summary["restored"], 3, "{summary:#}");
    for (name, expected) in names.iter().zip(&reference) {
        assert_eq!(
            &state(&server, &format!("then_{name}")),
            expected,
            "{name} at {at}"
        );
    }
    let replayed = |db: &str| {
        summary["databases"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["database"] == db))
            .map(|d| d["replayed_transactions"].clone())
            .unwrap_or_default()
    };
    assert_eq!(replayed("est_0"), 1, "{summary:#}");
    assert_eq!(replayed("est_1"), 2, "{summary:#}");
    assert_eq!(replayed("est_2"), 0, "{summary:#}");
    // Each database read only the segments that touched it: est_0 the first and the damage's,
    // est_1 the second, est_2 only the damage's.
    let segments = |db: &str| {
        summary["databases"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["database"] == db))
            .map(|d| d["log_segments_read"].clone())
            .unwrap_or_default()
    };
    assert_eq!(segments("est_1"), 1, "{summary:#}");
    assert!(segments("est_2").as_u64() <= Some(1), "{summary:#}");

    // A moment the archive does not reach: refused, nothing created.
    let later = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(1))
        .expect("time")
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string();
    let out = repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--all",
        "--at",
        &later,
        "--into-prefix",
        "late_",
    ]);
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(
        said.contains("nothing was changed") && said.contains("est_1"),
        "{said}"
    );
    assert!(!server.sql("SHOW DATABASES").contains("late_"), "{said}");
}
