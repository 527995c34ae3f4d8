//! `coffer history` (issue 7): the matching rows in every snapshot, and what was added,
//! changed or removed between snapshots, reading each distinct chunk once.

mod common;

use common::*;

fn statuses(snapshot: &serde_json::Value) -> Vec<(String, String, String)> {
    snapshot["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["key"]["id"].as_str().unwrap_or("").to_string(),
                r["status"].as_str().unwrap_or("").to_string(),
                r["changed_columns"]
                    .as_array()
                    .map(|c| {
                        c.iter()
                            .map(|v| v.as_str().unwrap_or(""))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn history_shows_each_snapshots_rows_and_what_changed_between_them() {
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE hist; USE hist; \
         CREATE TABLE visits (id INT PRIMARY KEY, note VARCHAR(100) COLLATE utf8mb4_unicode_ci, amount DECIMAL(8,2)) DEFAULT CHARSET=utf8mb4; \
         INSERT INTO visits SELECT seq, CONCAT('note ', seq, ' ', SHA2(seq, 256)), seq / 100 FROM seq_1_to_20000;",
    );
    let repo = Repo::new();
    let url = server.socket_url();
    let backup = || ok(repo.coffer(&["backup", "--mysql", &url, "--include", "hist"]));
    backup();
    server.sql(
        "USE hist; UPDATE visits SET note = 'Müller called' WHERE id = 5; DELETE FROM visits WHERE id = 6; \
         INSERT INTO visits VALUES (20001, 'new', 1.50);",
    );
    backup();
    server.sql("UPDATE hist.visits SET amount = 99.99 WHERE id = 7;");
    backup();
    backup(); // nothing changed: the same chunks

    let out = ok(repo.coffer(&[
        "history",
        "--mysql",
        &url,
        "--db",
        "hist",
        "--table",
        "visits",
        "--where",
        "id IN (5, 6, 7, 20001)",
        "--json",
        "--reason",
        "ticket 99",
    ]));
    let parsed: serde_json::Value = serde_json::from_str(&out).expect("json");
    let snapshots = parsed["snapshots"].as_array().expect("snapshots");
    assert_eq!(snapshots.len(), 4, "{parsed:#}");
    let s = |i: usize| statuses(&snapshots[i]);
    let row = |id: &str, status: &str, changed: &str| {
        (id.to_string(), status.to_string(), changed.to_string())
    };
    assert_eq!(
        s(0),
        [
            row("5", "present", ""),
            row("6", "present", ""),
            row("7", "present", "")
        ]
    );
    assert_eq!(
        s(1),
        [
            row("5", "changed", "note"),
            row("7", "unchanged", ""),
            row("20001", "added", ""),
            row("6", "removed", "")
        ]
    );
    assert_eq!(
        s(2),
        [
            row("5", "unchanged", ""),
            row("7", "changed", "amount"),
            row("20001", "unchanged", "")
        ]
    );
    assert_eq!(
        s(3),
        [
            row("5", "unchanged", ""),
            row("7", "unchanged", ""),
            row("20001", "unchanged", "")
        ]
    );
    // Values are the exact literals stored.
    let five = &snapshots[1]["rows"][0]["values"];
    assert_eq!(five["note"], "'Müller called'", "{five}");
    assert_eq!(snapshots[2]["rows"][1]["values"]["amount"], "99.99");

    // Each distinct chunk was evaluated once, though four snapshots refer to them.
    let stats = &parsed["stats"];
    assert_eq!(stats["pinned"], true, "{stats}");
    let references = stats["chunk_references"].as_u64().expect("refs");
    let evaluated = stats["chunks_evaluated"].as_u64().expect("evaluated");
    assert!(
        references >= 8 && evaluated * 2 <= references + 2,
        "{stats}"
    );

    // The condition is the server's: a case- and accent-insensitive match.
    let out = ok(repo.coffer(&[
        "history",
        "--mysql",
        &url,
        "--db",
        "hist",
        "--table",
        "visits",
        "--where",
        "note LIKE 'muller%'",
        "--json",
    ]));
    let parsed: serde_json::Value = serde_json::from_str(&out).expect("json");
    let snapshots = parsed["snapshots"].as_array().expect("snapshots");
    assert_eq!(
        statuses(&snapshots[0]),
        Vec::<(String, String, String)>::new()
    );
    assert_eq!(statuses(&snapshots[1]), [row("5", "added", "")]);
    assert_eq!(parsed["stats"]["pinned"], false);

    // --since leaves out older snapshots; the human listing marks changes.
    let listing = ok(repo.coffer(&[
        "history", "--mysql", &url, "--db", "hist", "--table", "visits", "--where", "id = 7",
    ]));
    assert!(listing.contains("~ id=7 (changed: amount)"), "{listing}");
    let future = repo.coffer(&[
        "history",
        "--mysql",
        &url,
        "--db",
        "hist",
        "--table",
        "visits",
        "--where",
        "id = 7",
        "--since",
        "2999-01-01",
    ]);
    assert_eq!(future.status.code(), Some(1));
    assert!(
        stderr(&future).contains("no snapshot holds database hist"),
        "{}",
        stderr(&future)
    );

    // --at / --snapshot: the history as it looked at that snapshot.
    let third = statuses_count(&repo, &url, &["--snapshot", &snapshot_id(&repo, 2)]);
    assert_eq!(third, 3, "up to and including the third snapshot");

    // Bad input is named.
    let bad = repo.coffer(&[
        "history", "--mysql", &url, "--db", "hist", "--table", "visits", "--where", "nope = 1",
    ]);
    assert!(
        stderr(&bad).contains("Unknown column 'nope'"),
        "{}",
        stderr(&bad)
    );
    let missing = repo.coffer(&[
        "history", "--mysql", &url, "--db", "hist", "--table", "gone", "--where", "id = 1",
    ]);
    assert!(
        stderr(&missing).contains("table gone is in no snapshot of database hist"),
        "{}",
        stderr(&missing)
    );

    // Recorded in the audit log with its reason.
    let audit = ok(repo.coffer(&["audit", "--json"]));
    assert!(
        audit.contains("\"command\": \"history\"") && audit.contains("ticket 99"),
        "{audit}"
    );
}

fn snapshot_id(repo: &Repo, i: usize) -> String {
    let listing: serde_json::Value =
        serde_json::from_str(&ok(repo.coffer(&["snapshots", "--json"]))).expect("json");
    listing[i]["id"].as_str().expect("id").to_string()
}

/// How many snapshots `history` shows with `extra` arguments.
fn statuses_count(repo: &Repo, url: &str, extra: &[&str]) -> usize {
    let mut args = vec![
        "history", "--mysql", url, "--db", "hist", "--table", "visits", "--where", "id = 7",
        "--json",
    ];
    args.extend_from_slice(extra);
    let parsed: serde_json::Value = serde_json::from_str(&ok(repo.coffer(&args))).expect("json");
    parsed["snapshots"].as_array().map_or(0, Vec::len)
}
