//! The audit log (issue 7): every backup, restore and dump leaves records of who, when, what,
//! why and how it ended, in new encrypted objects that are never rewritten.

mod common;

use common::*;

fn audit(repo: &Repo, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["audit", "--json"];
    all.extend_from_slice(args);
    let out = ok(repo.coffer(&all));
    serde_json::from_str::<Vec<serde_json::Value>>(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn every_backup_restore_and_dump_is_recorded_with_who_what_and_why() {
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE audited; USE audited; CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10)); \
         INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');",
    );
    let repo = Repo::new();
    let url = server.socket_url();
    ok(repo.coffer(&[
        "backup",
        "--mysql",
        &url,
        "--include",
        "audited",
        "--reason",
        "nightly",
    ]));
    let after_backup = files_under(&repo.path().join("audit"));
    assert_eq!(after_backup.len(), 2, "a started and a finished record");
    let first_bytes: Vec<Vec<u8>> = after_backup
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect();

    server.sql("DELETE FROM audited.t WHERE id = 2;");
    ok(repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--db",
        "audited",
        "--table",
        "t",
        "--where",
        "id = 2",
        "--reason",
        "ticket 4711",
    ]));
    ok(repo.coffer(&["dump", "--db", "audited", "--table", "t"]));
    let failed = repo.coffer(&[
        "restore", "--mysql", &url, "--db", "audited", "--table", "nope",
    ]);
    assert_eq!(failed.status.code(), Some(1));

    let records = audit(&repo, &[]);
    let commands: Vec<&str> = records
        .iter()
        .map(|r| r["command"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        commands,
        ["backup", "restore", "dump", "restore"],
        "{records:#?}"
    );
    let user = std::env::var("USER").unwrap_or_default();
    for r in &records {
        assert!(!r["host"].as_str().unwrap_or("").is_empty(), "{r}");
        if !user.is_empty() {
            assert_eq!(r["user"], user.as_str(), "{r}");
        }
        // Locations may carry credentials: never recorded in the command line.
        let arguments = r["arguments"].to_string();
        assert!(!arguments.contains("socket="), "{arguments}");
    }
    assert_eq!(records[0]["reason"], "nightly");
    assert_eq!(records[0]["outcome"]["status"], "succeeded");
    assert_eq!(records[0]["counts"]["databases"], 1);

    let restore = &records[1];
    assert_eq!(restore["reason"], "ticket 4711");
    assert_eq!(restore["database"], "audited");
    assert_eq!(restore["tables"][0], "t");
    assert_eq!(restore["where"], "id = 2");
    assert_eq!(restore["target_database"], "audited");
    assert!(
        restore["server"]
            .as_str()
            .unwrap_or("")
            .contains("mysql.sock"),
        "{restore}"
    );
    assert_eq!(restore["counts"]["inserted"], 1, "{restore}");
    assert_eq!(restore["snapshot"], records[0]["snapshot"]);
    assert_eq!(records[2]["counts"]["rows"], 3, "{:#}", records[2]);

    let failure = &records[3];
    assert_eq!(failure["outcome"]["status"], "failed");
    assert!(
        failure["outcome"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("table nope is not in database audited"),
        "{failure}"
    );

    // Filters, and a human listing.
    assert_eq!(audit(&repo, &["--db", "other"]).len(), 0);
    assert_eq!(
        audit(&repo, &["--db", "audited"]).len(),
        3,
        "the backup names no database"
    );
    assert_eq!(audit(&repo, &["--since", "1h"]).len(), 4);
    assert_eq!(audit(&repo, &["--since", "2999-01-01"]).len(), 0);
    let listing = ok(repo.coffer(&["audit"]));
    assert!(listing.contains("reason: ticket 4711"), "{listing}");
    assert!(listing.contains("FAILED"), "{listing}");

    // Records are only ever added: the first ones are byte for byte as written.
    let now = files_under(&repo.path().join("audit"));
    assert_eq!(now.len(), 8);
    for (path, bytes) in after_backup.iter().zip(&first_bytes) {
        assert_eq!(&std::fs::read(path).expect("still there"), bytes);
    }
    // And they are encrypted: nothing of the reason is readable in storage.
    for path in &now {
        let bytes = std::fs::read(path).expect("read");
        assert!(
            !bytes.windows(4).any(|w| w == b"4711"),
            "{}",
            path.display()
        );
    }
}
