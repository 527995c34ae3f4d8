//! Giving back only the rows a customer lost (issue 7): `restore --where` with each conflict
//! policy, `--to-sql`, the server's own answer for the expression, clear errors before anything
//! is written, and a key-pinned restore that reads a few chunks of a large table.

mod common;

use common::*;

/// The study table: case- and accent-insensitive names, dates, DECIMAL and NULLs.
fn create_study(server: &MariaDb, db: &str, rows: u32) {
    server.sql(&format!(
        "CREATE DATABASE {db}; USE {db}; \
         CREATE TABLE visits (id INT PRIMARY KEY, patient VARCHAR(50) COLLATE utf8mb4_unicode_ci, \
           seen DATE, note VARCHAR(200), amount DECIMAL(10,2), KEY (patient)) DEFAULT CHARSET=utf8mb4; \
         INSERT INTO visits SELECT seq, ELT(1 + seq % 5, 'Müller', 'MULLER', 'muller', 'Meyer', NULL), \
           '2026-01-01' + INTERVAL seq % 90 DAY, IF(seq % 4 = 0, NULL, CONCAT('note ', seq, ' ', SHA2(seq, 256))), \
           (seq % 2000) / 100 FROM seq_1_to_{rows};"
    ));
}

fn coffer_json(repo: &Repo, args: &[&str]) -> serde_json::Value {
    let out = ok(repo.coffer(args));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn the_rows_matched_are_exactly_the_servers_answer() {
    let server = MariaDb::shared();
    create_study(server, "rows_exact", 2000);
    // What the table held at backup time, to ask the server itself.
    server.sql("CREATE DATABASE rows_exact_then; CREATE TABLE rows_exact_then.visits LIKE rows_exact.visits; \
                INSERT INTO rows_exact_then.visits SELECT * FROM rows_exact.visits;");
    let repo = Repo::new();
    let url = server.socket_url();
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "rows_exact"]));
    server.sql("DELETE FROM rows_exact.visits WHERE id % 3 = 0;");

    let dir = tempfile::tempdir().expect("dir");
    for (n, expression) in [
        "patient = 'muller'",
        "seen BETWEEN '2026-02-01' AND '2026-02-10'",
        "note IS NULL",
        "note <> 'x' AND amount > 10.5",
        "amount = 3.10",
        "id IN (5, 17, 1999) OR patient IS NULL AND id < 40",
        "DAYOFWEEK(seen) = 2 AND id < 500 -- a comment",
    ]
    .iter()
    .enumerate()
    {
        let file = dir.path().join(format!("rows{n}.sql"));
        let file_text = file.to_str().expect("path");
        let summary = coffer_json(
            &repo,
            &[
                "restore",
                "--mysql",
                &url,
                "--db",
                "rows_exact",
                "--table",
                "visits",
                "--where",
                expression,
                "--to-sql",
                file_text,
                "--json",
            ],
        );
        let expected_ids = server.sql(&format!(
            "SELECT GROUP_CONCAT(id ORDER BY id) FROM rows_exact_then.visits WHERE {expression}\n"
        ));
        let expected_count = server.sql(&format!(
            "SELECT COUNT(*) FROM rows_exact_then.visits WHERE {expression}\n"
        ));
        assert_eq!(
            summary["matched"].to_string(),
            expected_count.trim(),
            "{expression}: {summary}"
        );
        // The SQL loads with the stock client into a table of that structure, in whatever
        // database the client uses, and holds exactly those rows with exactly their values.
        let check = format!("rows_exact_check{n}");
        server.sql(&format!(
            "CREATE DATABASE {check}; CREATE TABLE {check}.visits LIKE rows_exact_then.visits; \
             CREATE TABLE {check}.expected LIKE rows_exact_then.visits; \
             INSERT INTO {check}.expected SELECT * FROM rows_exact_then.visits WHERE {expression}\n;"
        ));
        let script = std::fs::read(&file).expect("sql file");
        let text = String::from_utf8_lossy(&script);
        assert!(
            text.contains("INSERT INTO `visits` (") || expected_count.trim() == "0",
            "the table is named unqualified: {text}"
        );
        server.load_script(&script, Some(&check)).expect("loads");
        assert_eq!(
            server.sql(&format!(
                "SELECT GROUP_CONCAT(id ORDER BY id) FROM {check}.visits"
            )),
            expected_ids,
            "{expression}"
        );
        let sums = checksums(server, &check);
        assert_eq!(sums[0].1, sums[1].1, "{expression}: values differ");
    }
}

#[test]
fn each_conflict_policy_does_what_it_says_and_fail_writes_nothing() {
    let server = MariaDb::shared();
    create_study(server, "rows_policy", 500);
    server.sql("CREATE DATABASE rows_policy_then; CREATE TABLE rows_policy_then.visits LIKE rows_policy.visits; \
                INSERT INTO rows_policy_then.visits SELECT * FROM rows_policy.visits;");
    let repo = Repo::new();
    let url = server.socket_url();
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "rows_policy"]));
    let live = || checksums(server, "rows_policy");
    let break_rows = || {
        server.sql("USE rows_policy; DELETE FROM visits WHERE id <= 10; UPDATE visits SET note = 'changed' WHERE id BETWEEN 11 AND 20;")
    };
    break_rows();
    let broken = live();
    let restore = |policy: &str| {
        repo.coffer(&[
            "restore",
            "--mysql",
            &url,
            "--db",
            "rows_policy",
            "--table",
            "visits",
            "--where",
            "id <= 20",
            "--on-conflict",
            policy,
            "--json",
        ])
    };

    // fail: ten keys are taken, so nothing at all is written.
    let failed = restore("fail");
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        stderr(&failed).contains("10 matching rows have keys (id) that"),
        "{}",
        stderr(&failed)
    );
    assert!(stderr(&failed).contains("no row of"), "{}", stderr(&failed));
    assert_eq!(live(), broken);

    // skip: the ten missing rows come back, the ten changed ones stay changed.
    let skipped: serde_json::Value = serde_json::from_str(&ok(restore("skip"))).expect("json");
    assert_eq!(
        (
            &skipped["matched"],
            &skipped["inserted"],
            &skipped["replaced"],
            &skipped["skipped"]
        ),
        (&20.into(), &10.into(), &0.into(), &10.into()),
        "{skipped}"
    );
    assert_eq!(
        server
            .sql("SELECT COUNT(*) FROM rows_policy.visits WHERE note = 'changed'")
            .trim(),
        "10"
    );
    assert_eq!(
        server.sql("SELECT COUNT(*) FROM rows_policy.visits").trim(),
        "500"
    );

    // replace: missing rows inserted, changed rows overwritten; the table is as it was.
    server.sql("DELETE FROM rows_policy.visits WHERE id <= 10;");
    let replaced: serde_json::Value = serde_json::from_str(&ok(restore("replace"))).expect("json");
    assert_eq!(
        (
            &replaced["inserted"],
            &replaced["replaced"],
            &replaced["skipped"]
        ),
        (&10.into(), &10.into(), &0.into()),
        "{replaced}"
    );
    server.sql("CREATE TABLE rows_policy_then.now LIKE rows_policy.visits; INSERT INTO rows_policy_then.now SELECT * FROM rows_policy.visits;");
    let sums = checksums(server, "rows_policy_then");
    assert_eq!(
        sums[0].1, sums[1].1,
        "after replace the table equals the snapshot"
    );

    // fail with no conflicts writes the rows.
    server.sql("DELETE FROM rows_policy.visits WHERE id IN (3, 4);");
    let clean: serde_json::Value = serde_json::from_str(&ok(repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--db",
        "rows_policy",
        "--table",
        "visits",
        "--where",
        "id IN (3, 4)",
        "--json",
    ])))
    .expect("json");
    assert_eq!(clean["inserted"], 2, "{clean}");
}

#[test]
fn a_bad_expression_column_or_table_is_named_before_anything_is_written() {
    let server = MariaDb::shared();
    create_study(server, "rows_bad", 200);
    let repo = Repo::new();
    let url = server.socket_url();
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "rows_bad"]));
    server.sql("DELETE FROM rows_bad.visits WHERE id < 50;");
    let before = checksums(server, "rows_bad");
    for (expression, table, expected) in [
        ("id = = 3", "visits", "is refused by the server"),
        ("nosuch = 1", "visits", "Unknown column 'nosuch'"),
        (
            "nosuch = 1",
            "visits",
            "over the columns of visits: id, patient, seen, note, amount",
        ),
        ("id = 1", "gone", "table gone is not in database rows_bad"),
        ("   ", "visits", "the --where expression is empty"),
    ] {
        let out = repo.coffer(&[
            "restore", "--mysql", &url, "--db", "rows_bad", "--table", table, "--where", expression,
        ]);
        assert_eq!(out.status.code(), Some(1), "{expression}");
        assert!(
            stderr(&out).contains(expected),
            "{expression}: {}",
            stderr(&out)
        );
        assert_eq!(checksums(server, "rows_bad"), before, "{expression}");
    }
}

#[test]
fn a_few_rows_pinned_by_key_read_a_few_chunks_of_a_large_table() {
    let server = MariaDb::shared();
    // Large enough that two chunks of any size the chunker may cut (up to 64 KiB each) and
    // the metadata stay under a twentieth of the repository: chunk sizes depend on the
    // repository's random chunker key.
    create_study(server, "rows_pinned", 60000);
    let repo = Repo::new();
    let url = server.socket_url();
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "rows_pinned"]));
    let stored = repo.size();
    server.sql("DELETE FROM rows_pinned.visits WHERE id IN (7, 25000);");

    let pinned = coffer_json(
        &repo,
        &[
            "restore",
            "--mysql",
            &url,
            "--db",
            "rows_pinned",
            "--table",
            "visits",
            "--where",
            "id IN (7, 25000)",
            "--on-conflict",
            "skip",
            "--json",
        ],
    );
    assert_eq!(pinned["inserted"], 2, "{pinned}");
    assert_eq!(pinned["pinned"], true, "{pinned}");
    let total = pinned["chunks_total"].as_u64().expect("total");
    let read = pinned["chunks_read"].as_u64().expect("read");
    assert!(total > 100 && read <= 4, "{pinned}");
    let bytes = pinned["bytes_read_from_storage"].as_u64().expect("bytes");
    assert!(
        bytes * 20 < stored,
        "{bytes} bytes read of {stored} stored: {pinned}"
    );

    // More snapshots do not make it read more than their small metadata: the chunks are the
    // same ones, read by byte range.
    for n in 0..3 {
        server.sql(&format!(
            "UPDATE rows_pinned.visits SET note = 'n{n}' WHERE id = 100;"
        ));
        ok(repo.coffer(&["backup", "--mysql", &url, "--include", "rows_pinned"]));
    }
    server.sql("DELETE FROM rows_pinned.visits WHERE id IN (7, 25000);");
    let again = coffer_json(
        &repo,
        &[
            "restore",
            "--mysql",
            &url,
            "--db",
            "rows_pinned",
            "--table",
            "visits",
            "--where",
            "id IN (7, 25000)",
            "--on-conflict",
            "skip",
            "--json",
        ],
    );
    assert_eq!(again["inserted"], 2, "{again}");
    let bytes_again = again["bytes_read_from_storage"].as_u64().expect("bytes");
    assert!(
        bytes_again < bytes + (256 << 10),
        "{bytes_again} bytes with four snapshots, {bytes} with one: {again}"
    );

    // As SQL for another database: the table is named qualified with it.
    let sql = ok(repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--db",
        "rows_pinned",
        "--table",
        "visits",
        "--where",
        "id = 7",
        "--to-sql",
        "-",
        "--into",
        "elsewhere",
    ]));
    assert!(sql.contains("INSERT INTO `elsewhere`.`visits` ("), "{sql}");

    // An expression that does not pin the key reads the table, and says so.
    let out = repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--db",
        "rows_pinned",
        "--table",
        "visits",
        "--where",
        "patient IS NULL",
        "--on-conflict",
        "skip",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("reading all"), "{}", stderr(&out));
}
