//! `coffer forget` and `backup --time` (issue 8, policy part): the SLA policy on backups with
//! given times, dry run and JSON, what is removed, what still restores, and the refusals.

mod common;

use common::*;

#[test]
fn forget_keeps_what_the_policy_promises_and_the_rest_still_restores() {
    let server = MariaDb::shared();
    server.sql("CREATE DATABASE forget_db; CREATE TABLE forget_db.t (id INT PRIMARY KEY);");
    let repo = Repo::new();
    let url = server.socket_url();
    let times = [
        "2026-01-05 02:00",
        "2026-01-20 02:00",
        "2026-02-10 02:00",
        "2026-03-01 02:00",
        "2026-03-20 02:00",
        "2026-03-25 14:00",
    ];
    let mut sums = Vec::new();
    for (i, time) in times.iter().enumerate() {
        server.sql(&format!("INSERT INTO forget_db.t VALUES ({i});"));
        ok(repo.coffer(&[
            "backup",
            "--mysql",
            &url,
            "--include",
            "forget_db",
            "--time",
            time,
        ]));
        sums.push(checksums(server, "forget_db"));
    }
    let listing: serde_json::Value =
        serde_json::from_str(&ok(repo.coffer(&["snapshots", "--json"]))).expect("json");
    let snapshots = listing.as_array().expect("list");
    assert_eq!(snapshots.len(), 6);
    assert_eq!(snapshots[0]["time"], "2026-01-05T02:00:00Z");
    assert_eq!(snapshots[0]["time_given"], true, "{:#}", snapshots[0]);
    let id_at = |i: usize| snapshots[i]["id"].as_str().expect("id").to_string();

    let sla = [
        "forget",
        "--keep-within",
        "30d",
        "--keep-within-monthly",
        "1y",
    ];
    let mut dry = sla.to_vec();
    dry.extend(["--dry-run", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&ok(repo.coffer(&dry))).expect("json");
    let keep: Vec<(String, Vec<String>)> = plan["keep"]
        .as_array()
        .expect("keep")
        .iter()
        .map(|k| {
            (
                k["time"].as_str().unwrap_or("").to_string(),
                k["reasons"]
                    .as_array()
                    .expect("reasons")
                    .iter()
                    .map(|r| r.as_str().unwrap_or("").to_string())
                    .collect(),
            )
        })
        .collect();
    let keep_times: Vec<&str> = keep.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        keep_times,
        [
            "2026-03-25T14:00:00Z",
            "2026-03-20T02:00:00Z",
            "2026-03-01T02:00:00Z",
            "2026-02-10T02:00:00Z",
            "2026-01-20T02:00:00Z"
        ]
    );
    assert_eq!(keep[0].1, ["within 30d", "monthly within 1y"]);
    assert_eq!(keep[4].1, ["monthly within 1y"]);
    assert_eq!(plan["remove"][0]["id"], id_at(0).as_str());
    assert_eq!(plan["remove"].as_array().map(Vec::len), Some(1));
    assert_eq!(latest_count(&repo), 6, "a dry run removes nothing");

    let out = ok(repo.coffer(&sla));
    assert!(out.contains("remove"), "{out}");
    assert_eq!(latest_count(&repo), 5);
    ok(repo.coffer(&["check"]));
    let audit = ok(repo.coffer(&["audit", "--json"]));
    assert!(
        audit.contains("\"command\": \"forget\"") && audit.contains("\"snapshots_removed\": 1"),
        "{audit}"
    );

    // The oldest kept snapshot restores exactly as it was backed up.
    ok(repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--db",
        "forget_db",
        "--snapshot",
        &id_at(1),
        "--into",
        "forget_db_then",
    ]));
    assert_eq!(
        checksums(server, "forget_db_then")[0].1,
        sums[1][0].1,
        "the snapshot of 2026-01-20 restores its own rows"
    );
    // The removed one is gone.
    let gone = repo.coffer(&["ls", "--snapshot", &id_at(0)]);
    assert_eq!(gone.status.code(), Some(1));

    // A policy that would remove a whole group is refused unless asked for; no rule at all too.
    let all = repo.coffer(&["forget", "--keep-tag", "nope"]);
    assert_eq!(all.status.code(), Some(1));
    assert!(
        stderr(&all).contains("removes every snapshot"),
        "{}",
        stderr(&all)
    );
    assert_eq!(latest_count(&repo), 5);
    ok(repo.coffer(&[
        "forget",
        "--keep-tag",
        "nope",
        "--allow-remove-all",
        "--dry-run",
    ]));
    let none = repo.coffer(&["forget"]);
    assert!(
        stderr(&none).contains("no retention rule"),
        "{}",
        stderr(&none)
    );
    let bad = repo.coffer(&["forget", "--keep-within", "soon"]);
    assert!(
        stderr(&bad).contains("is not a duration"),
        "{}",
        stderr(&bad)
    );

    // A forget that stopped between a snapshot and its summary left the summary behind: the
    // next forget removes it with the summaries of what it removes itself.
    let count = |folder: &str| std::fs::read_dir(repo.path().join(folder)).map_or(0, |d| d.count());
    assert_eq!(count("summaries"), 5);
    std::fs::remove_file(repo.path().join("snapshots").join(id_at(1))).expect("snapshot file");
    assert_eq!(latest_count(&repo), 4);
    ok(repo.coffer(&["forget", "--keep-last", "3"]));
    assert_eq!(latest_count(&repo), 3);
    assert_eq!(count("summaries"), 3, "summaries of missing snapshots stay");
}

fn latest_count(repo: &Repo) -> usize {
    let listing: serde_json::Value =
        serde_json::from_str(&ok(repo.coffer(&["snapshots", "--json"]))).expect("json");
    listing.as_array().map_or(0, Vec::len)
}
