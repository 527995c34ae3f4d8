//! Backups that carry unchanged databases over from the previous snapshot (issue 10): the binary
//! log decides; carried databases restore exactly, also after the snapshots that read them were
//! forgotten and pruned; `--full` and an unsupported binlog format read everything and say why.
//! Its own test binary, so no other test writes to this server's binary log meanwhile.

mod common;

use common::*;

fn backup(repo: &Repo, server: &MariaDb, extra: &[&str]) -> String {
    let url = server.socket_url();
    let mut args = vec!["backup", "--mysql", &url, "--include", "ct_*"];
    args.extend_from_slice(extra);
    ok(repo.coffer(&args))
}

fn latest_tracking(repo: &Repo) -> serde_json::Value {
    let listed: serde_json::Value =
        serde_json::from_str(&ok(repo.coffer(&["snapshots", "--json"]))).expect("json");
    listed
        .as_array()
        .and_then(|l| l.last())
        .map(|s| s["change_tracking"].clone())
        .expect("a snapshot")
}

#[test]
fn unchanged_databases_are_carried_over_and_restore_exactly() {
    let server = MariaDb::shared();
    for db in ["ct_a", "ct_b", "ct_c"] {
        server.sql(&format!(
            "CREATE DATABASE {db}; USE {db}; CREATE TABLE t (id INT PRIMARY KEY, v TEXT); \
             INSERT INTO t SELECT seq, SHA2(seq, 256) FROM seq_1_to_3000;"
        ));
    }
    let repo = Repo::new();
    let first = backup(&repo, server, &[]);
    assert!(
        first.contains("every database read: no earlier snapshot"),
        "{first}"
    );

    server.sql("UPDATE ct_a.t SET v = 'changed' WHERE id = 7;");
    let second = backup(&repo, server, &[]);
    assert!(
        second.contains("2 databases unchanged since snapshot") && second.contains("1 read"),
        "{second}"
    );
    let listing = ok(repo.coffer(&["ls", "latest"]));
    let line = |db: &str| {
        listing
            .lines()
            .find(|l| l.starts_with(db))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("ct_a").ends_with("read"), "{listing}");
    assert!(line("ct_b").contains("carried over from"), "{listing}");

    // --full reads everything; the next run carries from the snapshot that read them.
    let full = backup(&repo, server, &["--full"]);
    assert!(
        full.contains("every database read: --full was given"),
        "{full}"
    );
    let quiet = backup(&repo, server, &[]);
    assert!(quiet.contains("3 databases unchanged"), "{quiet}");
    assert_eq!(latest_tracking(&repo)["carried"], 3);

    // An unsupported binlog format: every database read, and why.
    server.sql("SET GLOBAL binlog_format = 'STATEMENT';");
    let statement = backup(&repo, server, &[]);
    server.sql("SET GLOBAL binlog_format = 'MIXED';");
    assert!(
        statement.contains("binlog_format is \"STATEMENT\""),
        "{statement}"
    );

    // Carried data outlives the snapshots that read it.
    server.sql("DELETE FROM ct_c.t WHERE id > 2990;");
    backup(&repo, server, &[]);
    ok(repo.coffer(&["forget", "--keep-last", "1", "--prune", "--grace", "0s"]));
    let check = ok(repo.coffer(&["check", "--read-data"]));
    assert!(check.contains("no problems"), "{check}");
    for db in ["ct_a", "ct_b", "ct_c"] {
        let into = format!("{db}_back");
        ok(repo.coffer(&[
            "restore",
            "--mysql",
            &server.socket_url(),
            "--db",
            db,
            "--into",
            &into,
        ]));
        assert_eq!(checksums(server, db), checksums(server, &into), "{db}");
    }
}
