//! Point-in-time recovery of one database (`restore --at`, `--stop-before`) from snapshots and
//! the archived binary log, against a real MariaDB: a random workload of inserts, updates,
//! deletes, DDL and cross-database statements runs on several databases while the follower
//! archives the log; reference copies are recorded at known moments; restoring to each moment
//! gives the reference, table for table (contents and definitions), and the databases not
//! restored stay untouched.

mod common;

use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;

/// A small deterministic generator (xorshift), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Each table's contents (CHECKSUM TABLE) and definition.
fn state(server: &MariaDb, db: &str) -> Vec<(String, String, String)> {
    checksums(server, db)
        .into_iter()
        .map(|(table, sum)| {
            let create = server.sql(&format!("SHOW CREATE TABLE `{db}`.`{table}`"));
            (table, sum, create)
        })
        .collect()
}

const SCHEMA: &str = "
CREATE DATABASE study;
CREATE TABLE study.visits (
  id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(100) CHARACTER SET utf8mb4,
  amount DECIMAL(10,2), seen DATETIME(6), stamp TIMESTAMP(3) NULL, f FLOAT, d DOUBLE,
  e ENUM('x','y','z'), s SET('a','b','c'), b BIT(5), y YEAR, t TIME(3), day DATE,
  big BIGINT UNSIGNED, mid MEDIUMINT UNSIGNED, neg TINYINT, raw VARBINARY(20), doc JSON,
  twice INT AS (v * 2) VIRTUAL);
CREATE TABLE study.forms (site INT, form VARCHAR(20), answer TEXT, PRIMARY KEY (site, form));
CREATE TABLE study.events (a INT, b VARCHAR(10));
CREATE DATABASE other;
CREATE TABLE other.o (id INT PRIMARY KEY, v INT);
INSERT INTO other.o VALUES (0,0),(1,1),(2,2),(3,3),(4,4),(5,5),(6,6),(7,7),(8,8),(9,9);
CREATE DATABASE bystander;
CREATE TABLE bystander.kept (id INT PRIMARY KEY, v TEXT);
INSERT INTO bystander.kept VALUES (1, 'never touched');
";

/// Run `n` random statements on `study` and `other`.
fn workload(server: &MariaDb, rng: &mut Rng, next_id: &mut u64, n: usize) {
    for _ in 0..n {
        let id = rng.below((*next_id).max(1)) + 1;
        let sql = match rng.below(9) {
            0..=2 => {
                *next_id += 1;
                let i = *next_id;
                format!(
                    "INSERT INTO study.visits (id, v, note, amount, seen, stamp, f, d, e, s, b, y, t, day, big, mid, neg, raw, doc) VALUES \
                     ({i}, {v}, 'note {i} é ü \\\\ \\' \"', {a}.{c:02}, '2026-11-{dd:02} 10:{m:02}:00.{us:06}', '2026-11-20 08:00:{ss:02}.250', {f}.25, 1e{x}/3, \
                     '{e}', 'a,{s}', b'{bits:05b}', {year}, '-{h}:01:02.500', '2026-01-{dd:02}', 18446744073709551{r:03}, 16777{r:03}, -{r2}, x'00ff{r:02x}', '{{\"k\": {i}, \"l\": [1, 2.5]}}')",
                    v = rng.below(1000),
                    a = rng.below(100000),
                    c = rng.below(100),
                    dd = rng.below(28) + 1,
                    m = rng.below(60),
                    us = rng.below(1_000_000),
                    ss = rng.below(60),
                    f = rng.below(1000),
                    x = rng.below(10),
                    e = ["x", "y", "z"][rng.below(3) as usize],
                    s = ["b", "c"][rng.below(2) as usize],
                    bits = rng.below(32),
                    year = [0, 1901, 2026, 2155][rng.below(4) as usize],
                    h = rng.below(800),
                    r = rng.below(200),
                    r2 = rng.below(128),
                )
            }
            3 => format!(
                "UPDATE study.visits SET v = v + 1, note = CONCAT(note, '+'), stamp = NULL WHERE id = {id}"
            ),
            4 => format!("DELETE FROM study.visits WHERE id = {id}"),
            5 => format!(
                "INSERT INTO study.forms VALUES ({site}, 'f{form}', REPEAT('answer ', {len})) ON DUPLICATE KEY UPDATE answer = CONCAT(answer, '!')",
                site = rng.below(5),
                form = rng.below(5),
                len = rng.below(50)
            ),
            6 => {
                let a = rng.below(4);
                match rng.below(3) {
                    0 => format!("INSERT INTO study.events VALUES ({a}, 'e{a}'), ({a}, 'e{a}')"),
                    1 => format!("DELETE FROM study.events WHERE a = {a} LIMIT 1"),
                    _ => {
                        format!("UPDATE study.events SET b = CONCAT(b, 'u') WHERE a = {a} LIMIT 1")
                    }
                }
            }
            // One statement across databases: its rows on study replay, other's do not.
            7 => format!(
                "UPDATE study.visits a JOIN other.o b ON b.id = a.id % 10 SET a.v = a.v + 100, b.v = b.v + 1 WHERE a.id <= {id}"
            ),
            _ => format!(
                "BEGIN; INSERT INTO other.o VALUES ({o}, 1) ON DUPLICATE KEY UPDATE v = v + 1; \
                 UPDATE study.forms SET answer = 'in a transaction' WHERE site = {site}; \
                 DELETE FROM study.visits WHERE id = {id2}; COMMIT",
                o = 10 + rng.below(20),
                site = rng.below(5),
                id2 = rng.below(*next_id + 1) + 1
            ),
        };
        server.sql(&sql);
    }
}

fn follower(repo: &Repo, server: &MariaDb) -> Child {
    coffer_cmd(
        &[
            "log",
            "follow",
            "--mysql",
            &server.socket_url(),
            "--segment-age",
            "1s",
            "--segment-size",
            "64KiB",
        ],
        Some(repo.path()),
        &[],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("start the follower")
}

fn restore_at(repo: &Repo, server: &MariaDb, into: &str, extra: &[&str]) -> String {
    let url = server.socket_url();
    let mut args = vec!["restore", "--mysql", &url, "--db", "study", "--into", into];
    args.extend_from_slice(extra);
    ok(repo.coffer(&args))
}

#[test]
fn restore_at_moments_equals_the_reference() {
    let server = MariaDb::start_with(None, &["--binlog-format=ROW"]);
    let repo = Repo::new();
    let url = server.socket_url();
    server.sql(SCHEMA);
    // An empty table for `--where` to restore rows into (made before the archive starts: a
    // statement naming study and another database is one replay refuses).
    server.sql("CREATE DATABASE rows_a; CREATE TABLE rows_a.visits LIKE study.visits");
    let mut child = follower(&repo, &server);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut next_id = 0;
    workload(&server, &mut rng, &mut next_id, 30);
    ok(repo.coffer(&["backup", "--mysql", &url]));
    // Every change below is logged in a later second than the snapshot finished in.
    moment();
    let bystander = state(&server, "bystander");

    // Between snapshots: rows, then DDL and more rows.
    workload(&server, &mut rng, &mut next_id, 60);
    let at_a = moment();
    let reference_a = state(&server, "study");
    let matching = "SELECT id, v, note FROM {}.visits WHERE v >= 500 ORDER BY id";
    let rows_a = server.sql(&matching.replace("{}", "study"));
    server.sql("ALTER TABLE study.visits ADD COLUMN extra INT NOT NULL DEFAULT 7 AFTER v");
    server.sql("CREATE TABLE study.added (id INT PRIMARY KEY, w TEXT)");
    server.sql("INSERT INTO study.added VALUES (1, 'made after the first snapshot')");
    workload(&server, &mut rng, &mut next_id, 60);
    let at_b = moment();
    let reference_b = state(&server, "study");

    // Across a snapshot: from the second one on.
    ok(repo.coffer(&["backup", "--mysql", &url]));
    moment();
    workload(&server, &mut rng, &mut next_id, 40);
    let before_damage = state(&server, "study");
    let gtid = server.sql("SELECT @@gtid_binlog_pos").trim().to_string();
    let (domain_server, seq) = gtid.rsplit_once('-').unwrap();
    let damage = format!("{domain_server}-{}", seq.parse::<u64>().unwrap() + 1);
    server.sql("DELETE FROM study.visits WHERE id % 3 = 0");
    workload(&server, &mut rng, &mut next_id, 30);
    let at_c = moment();
    let reference_c = state(&server, "study");

    // The follower stores what it read when stopped; a sync makes sure all is archived.
    std::thread::sleep(Duration::from_secs(2));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    ok(repo.coffer(&["log", "sync", "--mysql", &url]));

    // The support engineer finds the damage, and the event to stop before.
    let shown: serde_json::Value = serde_json::from_str(&ok(
        repo.coffer(&["log", "show", "--db", "study", "--since", &at_b, "--json"])
    ))
    .unwrap();
    let listed = shown.as_array().unwrap();
    let found = listed.iter().find(|t| t["event"] == damage.as_str());
    let found = found.unwrap_or_else(|| panic!("{damage} not in {shown:#}"));
    assert!(
        found["tables"]["visits"]["deleted"].as_u64().unwrap() > 0,
        "{found:#}"
    );
    assert!(
        listed
            .iter()
            .all(|t| !t["tables"].as_object().unwrap().is_empty()
                || !t["statements"].as_array().unwrap().is_empty())
    );

    for (into, at, reference) in [
        ("at_a", &at_a, &reference_a),
        ("at_b", &at_b, &reference_b),
        ("at_c", &at_c, &reference_c),
    ] {
        let out = restore_at(&repo, &server, into, &["--at", at]);
        assert!(out.contains("replayed the archived binary log"), "{out}");
        assert!(
            &state(&server, into) == reference,
            "{into} (--at {at}) differs from the reference:\n{out}"
        );
    }
    // One table at a moment, beside the live one: the same rows as the reference's table.
    let out = restore_at(
        &repo,
        &server,
        "table_at_b",
        &["--at", &at_b, "--table", "visits"],
    );
    assert!(out.contains("replayed the archived binary log"), "{out}");
    let table_b = state(&server, "table_at_b");
    assert_eq!(table_b.len(), 1, "only the table comes back: {table_b:?}");
    assert!(
        reference_b.iter().any(|r| r == &table_b[0]),
        "visits at {at_b} differs"
    );

    // Rows by a condition at a moment: rows moved into and out of it after the snapshot.
    let out = restore_at(
        &repo,
        &server,
        "rows_a",
        &["--at", &at_a, "--table", "visits", "--where", "v >= 500"],
    );
    assert!(out.contains("inserted"), "{out}");
    assert_eq!(server.sql(&matching.replace("{}", "rows_a")), rows_a);
    let script = repo.dir.path().join("rows_a.sql");
    let out = restore_at(
        &repo,
        &server,
        "rows_a",
        &[
            "--at",
            &at_a,
            "--table",
            "visits",
            "--where",
            "v >= 500",
            "--to-sql",
            script.to_str().unwrap(),
        ],
    );
    let expected = rows_a.lines().filter(|l| !l.is_empty()).count();
    assert!(
        out.contains(&format!("wrote {expected} matching rows")),
        "{out}"
    );
    // A table under another name at a moment, and the DDL such a copy cannot take.
    restore_at(
        &repo,
        &server,
        "renamed_a",
        &[
            "--at",
            &at_a,
            "--table",
            "visits",
            "--into-table",
            "visits_then",
        ],
    );
    let renamed = state(&server, "renamed_a");
    let original = reference_a.iter().find(|r| r.0 == "visits").unwrap();
    assert_eq!(renamed[0].1, original.1, "visits_then at {at_a} differs");
    let said = repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--db",
        "study",
        "--into",
        "renamed_b",
        "--at",
        &at_b,
        "--table",
        "visits",
        "--into-table",
        "visits_then",
    ]);
    assert!(
        !said.status.success() && stderr(&said).contains("restored under another name"),
        "{}",
        stderr(&said)
    );

    // A script of the database at a moment, made on a scratch copy; and refused where the
    // tables' definitions changed on the way (the script carries the snapshot's).
    let dump = |at: &str, into: &str| {
        repo.coffer(&[
            "dump", "--mysql", &url, "--db", "study", "--into", into, "--at", at,
        ])
    };
    let script = ok(dump(&at_a, "dumped_a"));
    assert!(script.contains("by replaying the archived binary log"));
    server.load_script(script.as_bytes(), None).unwrap();
    assert!(
        state(&server, "dumped_a") == reference_a,
        "dump --at {at_a}"
    );
    let said = dump(&at_b, "dumped_b");
    assert!(
        !said.status.success() && stderr(&said).contains("changes the definition"),
        "{}",
        stderr(&said)
    );
    assert!(
        !server.sql("SHOW DATABASES").contains("coffer_restore_"),
        "the scratch copies are dropped"
    );

    // Just before the damaging statement, from its GTID.
    let out = restore_at(
        &repo,
        &server,
        "before",
        &["--at", &at_c, "--stop-before", &damage],
    );
    assert!(
        state(&server, "before") == before_damage,
        "--stop-before {damage}:\n{out}"
    );

    // In place: the live database goes back to the moment; nothing else moves.
    let other = state(&server, "other");
    ok(repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--db",
        "study",
        "--at",
        &at_b,
        "--drop-existing",
    ]));
    assert!(state(&server, "study") == reference_b);
    assert!(state(&server, "other") == other, "other changed");
    assert!(
        state(&server, "bystander") == bystander,
        "bystander changed"
    );
}

#[test]
fn replay_refuses_what_it_cannot_do_exactly() {
    let server = MariaDb::start_with(None, &["--binlog-format=ROW"]);
    let repo = Repo::new();
    let url = server.socket_url();
    server.sql(SCHEMA);
    ok(repo.coffer(&["log", "sync", "--mysql", &url]));
    ok(repo.coffer(&["backup", "--mysql", &url]));
    // The changes below are logged in a later second than the snapshot's.
    moment();
    server.sql("INSERT INTO study.forms VALUES (1, 'a', 'kept')");
    // A statement logged as a statement (DDL naming two databases) cannot be confined.
    server.sql("RENAME TABLE study.events TO other.events_moved");
    server.sql("INSERT INTO study.forms VALUES (2, 'b', 'after')");
    let at = moment();
    ok(repo.coffer(&["log", "sync", "--mysql", &url]));
    let out = repo.coffer(&[
        "restore", "--mysql", &url, "--db", "study", "--into", "refused", "--at", &at,
    ]);
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(
        said.contains("names other databases too") && said.contains("--stop-before"),
        "{said}"
    );
    assert!(
        server
            .sql("SHOW DATABASES LIKE 'refused'")
            .trim()
            .is_empty(),
        "nothing is created"
    );

    // The last exact point it names restores.
    let event = said
        .split("--stop-before ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let out = restore_at(
        &repo,
        &server,
        "exact",
        &["--at", &at, "--stop-before", event],
    );
    assert!(out.contains("1 transaction(s)"), "{out}");
    assert_eq!(server.sql("SELECT answer FROM exact.forms").trim(), "kept");

    // A gap in the archive is never replayed across.
    server.sql("FLUSH BINARY LOGS");
    server.sql("INSERT INTO study.forms VALUES (3, 'c', 'lost')");
    server.sql("FLUSH BINARY LOGS");
    let current = server.sql("SHOW MASTER STATUS");
    let current = current.split_whitespace().next().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        server.sql(&format!("PURGE BINARY LOGS TO '{current}'"));
        if server.sql("SHOW BINARY LOGS").lines().count() == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(200));
    }
    server.sql("INSERT INTO study.forms VALUES (4, 'd', 'after the gap')");
    let later = moment();
    ok(repo.coffer(&["log", "sync", "--mysql", &url]));
    let out = repo.coffer(&[
        "restore", "--mysql", &url, "--db", "study", "--into", "gap", "--at", &later,
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("gap"), "{}", stderr(&out));
}

/// The second after `moment` (the first second a later statement can be logged in).
fn second_after(moment: &str) -> String {
    let at: jiff::civil::DateTime = moment.parse().unwrap();
    (at + jiff::SignedDuration::from_secs(1))
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

#[test]
fn undo_reverses_a_range_and_names_rows_changed_since() {
    let server = MariaDb::start_with(None, &["--binlog-format=ROW"]);
    let repo = Repo::new();
    let url = server.socket_url();
    server.sql(
        "CREATE DATABASE study; CREATE TABLE study.t (id INT PRIMARY KEY, v VARCHAR(20), n DECIMAL(6,2));
         INSERT INTO study.t VALUES (1,'one',1.5),(2,'two',2.5),(3,'three',3.5),(4,'four',4.5);
         CREATE DATABASE other; CREATE TABLE other.o (id INT PRIMARY KEY); INSERT INTO other.o VALUES (1);",
    );
    ok(repo.coffer(&["log", "sync", "--mysql", &url]));
    let since = second_after(&moment());
    // The damage: two updates of one row, an update, a delete, an insert; and another database.
    server.sql("UPDATE study.t SET v = 'broken' WHERE id <= 2");
    server.sql("DELETE FROM study.t WHERE id = 3; INSERT INTO study.t VALUES (9, 'nine', 9.5)");
    server.sql("UPDATE study.t SET v = 'broken again' WHERE id = 1; DELETE FROM other.o");
    let until = moment();
    // A user corrects row 2 by hand afterwards: the undo must not overwrite that.
    server.sql("UPDATE study.t SET n = 20.25 WHERE id = 2");
    ok(repo.coffer(&["log", "sync", "--mysql", &url]));

    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("undo.sql");
    let out = repo.coffer(&[
        "log",
        "undo",
        "--mysql",
        &url,
        "--db",
        "study",
        "--since",
        &since,
        "--until",
        &until,
        "--output",
        script.to_str().unwrap(),
    ]);
    let said = stderr(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("1 row(s) changed since"), "{said}");
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(text.contains("NOT UNDONE: t row (2)"), "{text}");
    assert!(
        !text.contains("other"),
        "only the database asked for: {text}"
    );

    // --where narrows both to the rows it matches, before or after the change, as the server
    // judges it: row 1 changed in two transactions (the first changed row 2 too).
    let range = ["--db", "study", "--since", &since, "--until", &until];
    let mut show = vec![
        "log", "show", "--mysql", &url, "--where", "id = 1", "--json",
    ];
    show.extend_from_slice(&range);
    let shown: serde_json::Value = serde_json::from_str(&ok(repo.coffer(&show))).unwrap();
    let counts: Vec<_> = shown
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tables"]["t"]["updated"].as_u64())
        .collect();
    assert_eq!(counts, [Some(1), Some(1)], "{shown:#}");
    let mut typo = vec!["log", "show", "--mysql", &url, "--where", "nosuch = 1"];
    typo.extend_from_slice(&range);
    let said = stderr(&repo.coffer(&typo));
    assert!(said.contains("refused by the server"), "{said}");
    let only_three = dir.path().join("undo-3.sql");
    let mut undo = vec![
        "log", "undo", "--mysql", &url, "--where", "id = 3", "--output",
    ];
    undo.push(only_three.to_str().unwrap());
    undo.extend_from_slice(&range);
    ok(repo.coffer(&undo));
    let narrowed = std::fs::read_to_string(&only_three).unwrap();
    assert!(
        narrowed.matches("-- undo ").count() == 1
            && narrowed.contains("-- undo t row (3)")
            && narrowed.contains("INSERT INTO"),
        "only the delete of row 3 is undone: {narrowed}"
    );

    server.load_script(text.as_bytes(), None).unwrap();
    let rows = server.sql("SELECT id, v, n FROM study.t ORDER BY id");
    assert_eq!(
        rows, "1\tone\t1.50\n2\tbroken\t20.25\n3\tthree\t3.50\n4\tfour\t4.50\n",
        "{text}"
    );
    assert_eq!(
        server.sql("SELECT COUNT(*) FROM other.o").trim(),
        "0",
        "other is not touched"
    );
    // The undo is audited.
    let audit = ok(repo.coffer(&["audit", "--json"]));
    assert!(audit.contains("log undo"), "{audit}");
}

#[test]
fn undo_keeps_timestamps_on_a_server_outside_utc() {
    // The server's zone is not UTC: the script's TIMESTAMP literals (UTC, as the log holds
    // them) must be read and applied in UTC, or every undone value moves by five hours.
    let server = MariaDb::start_with(None, &["--binlog-format=ROW", "--default-time-zone=+05:00"]);
    let repo = Repo::new();
    let url = server.socket_url();
    server.sql(
        "CREATE DATABASE study; CREATE TABLE study.t (id INT PRIMARY KEY, at TIMESTAMP(3) NULL);
         INSERT INTO study.t VALUES (1, '2026-11-24 10:00:00.250'), (2, '2026-11-24 11:00:00');",
    );
    let original = server.sql("SELECT id, at FROM study.t ORDER BY id");
    ok(repo.coffer(&["log", "sync", "--mysql", &url]));
    let since = second_after(&moment());
    server.sql("UPDATE study.t SET at = '2030-01-01 00:00:00' WHERE id = 1; DELETE FROM study.t WHERE id = 2");
    let until = moment();
    ok(repo.coffer(&["log", "sync", "--mysql", &url]));
    let out = repo.coffer(&[
        "log", "undo", "--mysql", &url, "--db", "study", "--since", &since, "--until", &until,
    ]);
    let said = stderr(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("0 row(s) changed since"),
        "no false conflict: {said}"
    );
    server.load_script(&out.stdout, None).unwrap();
    assert_eq!(
        server.sql("SELECT id, at FROM study.t ORDER BY id"),
        original
    );
}
