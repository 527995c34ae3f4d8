//! What goes wrong: failing databases, retries, bad input and damaged repositories. Each error
//! must name its cause, and nothing already in the repository may change.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_failing_database_is_recorded_and_the_others_complete() {
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE part_ok; CREATE TABLE part_ok.t (id INT PRIMARY KEY); INSERT INTO part_ok.t VALUES (1), (2); \
         CREATE DATABASE part_bad; CREATE TABLE part_bad.t (id INT PRIMARY KEY); CREATE VIEW part_bad.v AS SELECT id FROM part_bad.t; \
         CREATE USER 'limited'@'localhost' IDENTIFIED BY 'lim-pw'; \
         GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON part_ok.* TO 'limited'@'localhost'; \
         GRANT SELECT ON part_bad.* TO 'limited'@'localhost';",
    );
    let repo = Repo::new();
    let url = server.socket_url_as("limited");
    let out = repo.coffer_env(
        &["backup", "--mysql", &url, "--include", "part_*"],
        &[("COFFER_MYSQL_PASSWORD", "lim-pw")],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "partial backups exit with 3: {}",
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("1 databases FAILED") && err.contains("part_bad"),
        "{err}"
    );
    assert!(err.contains("SHOW VIEW"), "the cause is named: {err}");
    assert!(!err.contains("lim-pw"), "password leaked: {err}");
    assert!(
        stdout(&out).contains("binlog position not recorded"),
        "{}",
        stdout(&out)
    );

    let listing = ok(repo.coffer(&["ls", "latest"]));
    assert!(
        listing.contains("part_ok") && listing.contains("part_bad") && listing.contains("FAILED"),
        "{listing}"
    );
    let missing = repo.coffer(&[
        "restore",
        "--mysql",
        &server.socket_url(),
        "--db",
        "part_bad",
    ]);
    assert!(
        stderr(&missing).contains("failed in snapshot"),
        "{}",
        stderr(&missing)
    );
    ok(repo.coffer(&[
        "restore",
        "--mysql",
        &server.socket_url(),
        "--db",
        "part_ok",
        "--into",
        "part_ok_r",
    ]));
    assert_eq!(server.sql("SELECT COUNT(*) FROM part_ok_r.t").trim(), "2");
    // Restoring the whole backup names the database that has no copy in it (exit code 3).
    let all = repo.coffer(&[
        "restore",
        "--mysql",
        &server.socket_url(),
        "--all",
        "--into-prefix",
        "all_",
        "--json",
    ]);
    assert_eq!(all.status.code(), Some(3), "{}", stderr(&all));
    let summary: serde_json::Value = serde_json::from_slice(&all.stdout).unwrap();
    assert_eq!(summary["restored"], 1, "{summary:#}");
    assert_eq!(summary["missing_from_backup"][0], "part_bad", "{summary:#}");
    assert!(
        stderr(&all).contains("not in this backup"),
        "{}",
        stderr(&all)
    );
}

#[test]
fn a_database_whose_connection_is_killed_is_retried() {
    let server = MariaDb::shared();
    server.sql("CREATE DATABASE retry_db; CREATE TABLE retry_db.t (id INT PRIMARY KEY); INSERT INTO retry_db.t VALUES (1);");
    // Another session holds a write lock, so the dump blocks on it and can be killed there.
    let mut locker = Command::new("mariadb")
        .args([
            "--no-defaults",
            &format!("--socket={}", server.socket.display()),
            "-uroot",
            "-e",
            "LOCK TABLES retry_db.t WRITE; SELECT SLEEP(60);",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("locker");
    let repo = Repo::new();
    let backup = common::coffer_cmd(
        &[
            "backup",
            "--mysql",
            &server.socket_url(),
            "--include",
            "retry_db",
        ],
        Some(repo.path()),
        &[],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("backup");
    let deadline = Instant::now() + Duration::from_secs(30);
    let blocked = loop {
        let id = server.sql(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE STATE LIKE 'Waiting for table metadata lock' LIMIT 1",
        );
        if !id.trim().is_empty() {
            break id.trim().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the backup never blocked on the lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    server.sql(&format!("KILL {blocked}"));
    let _ = locker.kill();
    let _ = locker.wait();
    let lock_owner =
        server.sql("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP%'");
    for id in lock_owner.lines() {
        let _ = server.try_sql(&format!("KILL {id}"));
    }
    let out = backup.wait_with_output().expect("backup output");
    assert!(
        out.status.success(),
        "the retry should succeed: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("retrying database"),
        "{}",
        stderr(&out)
    );
    assert!(ok(repo.coffer(&["ls", "latest"])).contains("retry_db"));
}

#[test]
fn bad_input_gets_a_clear_error_and_leaves_the_repository_untouched() {
    let server = MariaDb::shared();
    server.sql("CREATE DATABASE errs; CREATE TABLE errs.t (id INT PRIMARY KEY, v TEXT); INSERT INTO errs.t VALUES (1, REPEAT('x', 5000));");
    let repo = Repo::new();
    ok(repo.coffer(&[
        "backup",
        "--mysql",
        &server.socket_url(),
        "--include",
        "errs",
    ]));
    let before = repo.fingerprint();

    let wrong = repo.coffer_env(&["snapshots"], &[("COFFER_PASSWORD", "not the passphrase")]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        stderr(&wrong).contains("no key slot") && stderr(&wrong).contains("COFFER_PASSWORD"),
        "{}",
        stderr(&wrong)
    );

    let missing = repo.coffer(&["restore", "--mysql", &server.socket_url(), "--db", "nope"]);
    assert!(
        stderr(&missing).contains("database nope is not in any snapshot")
            && stderr(&missing).contains("coffer ls"),
        "{}",
        stderr(&missing)
    );

    let unreachable = repo.coffer(&["backup", "--mysql", "mysql://coffer@127.0.0.1:1/"]);
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(
        stderr(&unreachable).contains("connecting to MySQL at 127.0.0.1:1"),
        "{}",
        stderr(&unreachable)
    );

    let leaked = repo.coffer(&["backup", "--mysql", "mysql://coffer:hunter2@127.0.0.1/"]);
    assert!(
        stderr(&leaked).contains("process list") && !stderr(&leaked).contains("hunter2"),
        "{}",
        stderr(&leaked)
    );

    let none = repo.coffer(&[
        "backup",
        "--mysql",
        &server.socket_url(),
        "--include",
        "no_such_db*",
    ]);
    assert!(
        stderr(&none).contains("no database on") && stderr(&none).contains("matches"),
        "{}",
        stderr(&none)
    );

    let no_repo = coffer_cmd(&["snapshots", "--repo", "/nonexistent/coffer"], None, &[])
        .output()
        .expect("run");
    assert!(
        stderr(&no_repo).contains("no coffer repository at")
            && stderr(&no_repo).contains("coffer init"),
        "{}",
        stderr(&no_repo)
    );

    // Failed commands only add audit records of their attempt; nothing else changes.
    let after: Vec<_> = repo
        .fingerprint()
        .into_iter()
        .filter(|(path, _)| !path.starts_with("audit/") || before.iter().any(|(p, _)| p == path))
        .collect();
    assert_eq!(before, after, "failed commands changed the repository");
}

#[test]
fn a_corrupted_object_is_detected_and_named() {
    let server = MariaDb::shared();
    server.sql("CREATE DATABASE corrupt_me; CREATE TABLE corrupt_me.t (id INT PRIMARY KEY, v TEXT); INSERT INTO corrupt_me.t VALUES (1, REPEAT('y', 3000));");
    let repo = Repo::new();
    ok(repo.coffer(&[
        "backup",
        "--mysql",
        &server.socket_url(),
        "--include",
        "corrupt_me",
    ]));
    ok(repo.coffer(&["check", "--read-data"]));
    // The largest pack holds the table (a smaller one the recorded accounts).
    let pack = files_under(&repo.path().join("data"))
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a pack");
    let mut bytes = std::fs::read(&pack).expect("read pack");
    bytes[40] ^= 0x55;
    std::fs::write(&pack, &bytes).expect("write pack");

    let restore = repo.coffer(&[
        "restore",
        "--mysql",
        &server.socket_url(),
        "--db",
        "corrupt_me",
        "--into",
        "corrupt_me_r",
    ]);
    assert!(!restore.status.success());
    assert!(
        stderr(&restore).contains("failed authentication")
            && stderr(&restore).contains("coffer check"),
        "{}",
        stderr(&restore)
    );
    let check = repo.coffer(&["check", "--read-data"]);
    assert!(!check.status.success());
    assert!(
        stdout(&check).contains("problem:") && stdout(&check).contains("does not match its name"),
        "{}",
        stdout(&check)
    );
}

/// `check --read-data-subset n/N` reads every pack exactly once over N runs, so a damaged pack
/// is found by the run whose part holds it; a share reads some; nonsense is refused.
#[test]
fn read_data_subsets_cover_the_repository_and_find_damage() {
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE subset_db; USE subset_db; CREATE TABLE subset_db.t (id INT PRIMARY KEY, v VARCHAR(200)); \
         INSERT INTO subset_db.t SELECT seq, SHA2(seq, 512) FROM seq_1_to_80000;",
    );
    let repo = Repo::init(&["--chunk-size", "16KiB", "--pack-size", "1MiB"]);
    ok(repo.coffer(&[
        "backup",
        "--mysql",
        &server.socket_url(),
        "--include",
        "subset_db",
    ]));
    let packs = files_under(&repo.path().join("data")).len();
    assert!(packs >= 3, "{packs} packs");
    // "checked 1 snapshots, 5 packs, 2 packs and 40 blobs read: no problems"
    let packs_read = |out: &str| -> usize {
        out.split(" packs and ")
            .next()
            .and_then(|before| before.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no pack count in {out}"))
    };
    let mut total = 0;
    for n in 1..=3 {
        let part = format!("{n}/3");
        total += packs_read(&ok(repo.coffer(&["check", "--read-data-subset", &part])));
    }
    assert_eq!(total, packs, "three parts read every pack once");
    let share = packs_read(&ok(repo.coffer(&["check", "--read-data-subset", "100%"])));
    assert_eq!(share, packs);

    // Damage one of the table's packs (the largest; a small one holds the recorded accounts,
    // which every part reads as metadata): exactly one of the three parts finds it.
    let pack = files_under(&repo.path().join("data"))
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("pack");
    let mut bytes = std::fs::read(&pack).expect("read");
    bytes[40] ^= 0x55;
    std::fs::write(&pack, &bytes).expect("write");
    let failing: Vec<bool> = (1..=3)
        .map(|n| {
            !repo
                .coffer(&["check", "--read-data-subset", &format!("{n}/3")])
                .status
                .success()
        })
        .collect();
    assert_eq!(failing.iter().filter(|f| **f).count(), 1, "{failing:?}");

    for bad in ["0/3", "4/3", "150%", "half"] {
        let out = repo.coffer(&["check", "--read-data-subset", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
    }
}

/// Lost index files are rebuilt from the pack headers: afterwards the repository checks clean
/// and restores exactly; a second repair finds nothing to do.
#[test]
fn repair_index_rebuilds_lost_index_files_from_the_packs() {
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE reindex_db; USE reindex_db; CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(200)); \
         INSERT INTO t SELECT seq, SHA2(seq, 512) FROM seq_1_to_5000;",
    );
    let repo = Repo::new();
    let url = server.socket_url();
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "reindex_db"]));
    for index_file in files_under(&repo.path().join("index")) {
        std::fs::remove_file(index_file).expect("remove");
    }
    let broken = repo.coffer(&["check"]);
    assert!(!broken.status.success());
    assert!(
        stdout(&broken).contains("not in the index"),
        "{}",
        stdout(&broken)
    );

    let repaired: serde_json::Value =
        serde_json::from_str(&ok(repo.coffer(&["repair", "index", "--json"]))).expect("json");
    assert!(
        repaired["packs_indexed"].as_u64().expect("packs") >= 1,
        "{repaired}"
    );
    assert_eq!(repaired["packs_indexed"], repaired["unindexed_packs"]);
    ok(repo.coffer(&["check", "--read-data"]));
    ok(repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--db",
        "reindex_db",
        "--into",
        "reindex_back",
    ]));
    assert_eq!(
        checksums(server, "reindex_back")[0].1,
        checksums(server, "reindex_db")[0].1
    );
    let again: serde_json::Value =
        serde_json::from_str(&ok(repo.coffer(&["repair", "index", "--json"]))).expect("json");
    assert_eq!(again["unindexed_packs"], 0, "{again}");
}

/// One flipped byte in any kind of object is found by `check --read-data` and the object named:
/// a pack (data or tree blob), an index file, a snapshot, a prune mark.
#[test]
fn a_flipped_byte_in_every_object_kind_is_found_and_named() {
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE flip_db; USE flip_db; CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(200)); \
         INSERT INTO t SELECT seq, SHA2(seq, 512) FROM seq_1_to_3000;",
    );
    let repo = Repo::new();
    for _ in 0..2 {
        ok(repo.coffer(&[
            "backup",
            "--mysql",
            &server.socket_url(),
            "--include",
            "flip_db",
        ]));
        server.sql("UPDATE flip_db.t SET v = SHA2(v, 256) WHERE id % 2 = 0;");
    }
    // A prune within its grace period leaves a mark.
    ok(repo.coffer(&["forget", "--keep-last", "1", "--prune"]));
    for (folder, expected) in [
        ("data", "does not match its name"),
        ("index", "index file"),
        ("snapshots", "snapshot"),
        ("prune", "prune mark"),
    ] {
        let victim = files_under(&repo.path().join(folder))
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no object in {folder}"));
        let original = std::fs::read(&victim).expect("read");
        let mut flipped = original.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 0x01;
        std::fs::write(&victim, &flipped).expect("write");
        let check = repo.coffer(&["check", "--read-data"]);
        assert_eq!(check.status.code(), Some(1), "{folder}: {}", stdout(&check));
        let name = victim.file_name().and_then(|n| n.to_str()).expect("name");
        let report = stdout(&check);
        assert!(
            report.contains(expected) && report.contains(&name[..8]),
            "{folder}: the damaged object {name} is not named: {report}"
        );
        std::fs::write(&victim, &original).expect("restore the object");
        ok(repo.coffer(&["check", "--read-data"]));
    }
}
