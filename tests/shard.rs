//! Scale-out (issue 11): one backup run split over several processes with `backup --shard K/N
//! --run-id R`. Three processes started at once stand in for three hosts or pods: every
//! database is read by exactly one of them, their snapshots are one backup for `snapshots` and
//! `forget`, any database restores from `latest` whichever shard holds it, a missing shard is
//! reported without losing the others, and the next run carries unchanged databases over from
//! all shards of the previous one.

mod common;

use std::collections::BTreeSet;
use std::process::{Output, Stdio};

use common::*;

const DATABASES: usize = 9;

/// Start shard `k`/`n` of `run` over the databases `include` matches.
fn shard(
    repo: &Repo,
    server: &MariaDb,
    include: &str,
    (k, n): (usize, usize),
    run: &str,
) -> std::process::Child {
    let url = server.socket_url();
    let share = format!("{k}/{n}");
    coffer_cmd(
        &[
            "backup",
            "--mysql",
            &url,
            "--include",
            include,
            "-j",
            "2",
            "--shard",
            &share,
            "--run-id",
            run,
        ],
        Some(repo.path()),
        &[],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start coffer")
}

/// Start the given shards of `run` at once and wait for all of them.
fn run_shards(repo: &Repo, server: &MariaDb, shards: &[usize], run: &str) -> Vec<Output> {
    let children: Vec<_> = shards
        .iter()
        .map(|&k| shard(repo, server, "sh_*", (k, 3), run))
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().expect("coffer ran"))
        .collect()
}

fn snapshots(repo: &Repo) -> Vec<serde_json::Value> {
    let listed: serde_json::Value =
        serde_json::from_str(&ok(repo.coffer(&["snapshots", "--json"]))).expect("json");
    listed.as_array().cloned().unwrap_or_default()
}

fn of_run<'a>(all: &'a [serde_json::Value], run: &str) -> Vec<&'a serde_json::Value> {
    all.iter().filter(|s| s["shard"]["run_id"] == run).collect()
}

/// The databases each snapshot of `run` holds, by shard index.
fn databases_by_shard(repo: &Repo, run: &str) -> Vec<(u64, Vec<String>)> {
    let all = snapshots(repo);
    let mut shards: Vec<(u64, Vec<String>)> = of_run(&all, run)
        .into_iter()
        .map(|s| {
            let id = s["id"].as_str().expect("id");
            let listing = ok(repo.coffer(&["ls", id]));
            let names = listing
                .lines()
                .filter(|l| l.starts_with("sh_"))
                .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                .collect();
            (s["shard"]["index"].as_u64().expect("index"), names)
        })
        .collect();
    shards.sort();
    shards
}

#[test]
fn three_processes_make_one_backup_that_restores_any_database() {
    let server = MariaDb::shared();
    // Skewed sizes: one study much larger than the rest (the first shard plans from the
    // server's table statistics, hence ANALYZE).
    for i in 0..DATABASES {
        let rows = if i == 0 { 20_000 } else { 400 * (i + 1) };
        server.sql(&format!(
            "CREATE DATABASE sh_{i}; USE sh_{i}; CREATE TABLE t (id INT PRIMARY KEY, v TEXT); \
             INSERT INTO t SELECT seq, SHA2(seq, 256) FROM seq_1_to_{rows}; ANALYZE TABLE t;"
        ));
    }
    // An account, recorded by shard 0 only and restored with the run.
    server.sql(
        "CREATE USER IF NOT EXISTS 'shard_auditor'@'%' IDENTIFIED BY 'x'; \
         GRANT PROCESS ON *.* TO 'shard_auditor'@'%';",
    );
    let repo = Repo::new();

    for out in run_shards(&repo, server, &[0, 1, 2], "nightly-1") {
        let said = ok(out);
        assert!(said.contains("of run nightly-1"), "{said}");
    }
    let listed: serde_json::Value =
        serde_json::from_str(&ok(repo.coffer(&["snapshots", "--json"]))).expect("json");
    let recorded: Vec<u64> = listed
        .as_array()
        .expect("snapshots")
        .iter()
        .filter(|s| s["accounts"].is_object())
        .filter_map(|s| s["shard"]["index"].as_u64())
        .collect();
    assert_eq!(recorded, vec![0], "{listed:#}");
    let shards = databases_by_shard(&repo, "nightly-1");
    assert_eq!(
        shards.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        [0, 1, 2],
        "one snapshot per shard"
    );
    let mut all: Vec<&String> = shards.iter().flat_map(|(_, names)| names).collect();
    let count = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), count, "a database was read twice: {shards:?}");
    assert_eq!(all.len(), DATABASES, "a database was left out: {shards:?}");
    // Balanced by size: the large study's shard takes nothing else of size.
    let big = shards
        .iter()
        .find(|(_, names)| names.contains(&"sh_0".to_string()))
        .expect("sh_0 backed up");
    assert!(
        big.1.len() <= 2,
        "the large study's shard got more: {shards:?}"
    );

    // Any database restores from `latest`, whichever shard holds it.
    for i in [0, 4, 8] {
        let db = format!("sh_{i}");
        restore_copy(&repo, server, "latest", &db, &format!("{db}_back"));
        assert_eq!(
            checksums(server, &db),
            checksums(server, &format!("{db}_back"))
        );
        server.sql(&format!("DROP DATABASE {db}_back"));
    }
    let listing = ok(repo.coffer(&["snapshots"]));
    assert!(
        listing.contains("run nightly-1") && listing.contains("3 of 3 shards, 9 databases"),
        "{listing}"
    );
    // A restore drill samples the whole run, not one shard's snapshot; named databases are
    // each drilled from the shard holding them.
    let url = server.socket_url();
    let drill = ok(repo.coffer(&["verify-restore", "--mysql", &url, "--sample", "9"]));
    assert!(drill.contains("9 of 9 databases restored equal"), "{drill}");
    let named = ok(repo.coffer(&[
        "verify-restore",
        "--mysql",
        &url,
        "--db",
        &shards[0].1[0],
        "--db",
        &shards[2].1[0],
    ]));
    assert!(named.contains("2 of 2 databases restored equal"), "{named}");
    // A whole-run restore takes every shard's databases.
    let out = ok(repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--all",
        "--into-prefix",
        "run_",
        "--accounts",
        "--json",
    ]));
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["restored"], DATABASES as u64, "{summary:#}");
    let auditor = summary["accounts"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["account"] == "'shard_auditor'@'%'"))
        .expect("the run's accounts, from shard 0");
    assert_eq!(auditor["outcome"], "unchanged", "{summary:#}");
    for i in 0..DATABASES {
        let db = format!("sh_{i}");
        assert_eq!(
            checksums(server, &db),
            checksums(server, &format!("run_{db}"))
        );
        server.sql(&format!("DROP DATABASE run_{db}"));
    }

    // The next run: one study changes, and shard 1 never reports (its host is down).
    server.sql("UPDATE sh_3.t SET v = 'changed' WHERE id = 1");
    for out in run_shards(&repo, server, &[0, 2], "nightly-2") {
        ok(out);
    }
    let listing = ok(repo.coffer(&["snapshots"]));
    assert!(
        listing.contains("run nightly-2") && listing.contains("no snapshot from shard 1/3"),
        "{listing}"
    );
    // The shards of the second run carried unchanged studies over from all of the first run's
    // (or, a few per shard, read them again to check them: the safety net).
    let all = snapshots(&repo);
    let carried: u64 = of_run(&all, "nightly-2")
        .iter()
        .map(|s| {
            let tracking = &s["change_tracking"];
            let checked = tracking["verified"].as_array().map_or(0, Vec::len) as u64;
            tracking["carried"].as_u64().unwrap_or(0) + checked
        })
        .sum();
    let second = databases_by_shard(&repo, "nightly-2");
    let read_again: usize = second.iter().map(|(_, names)| names.len()).sum();
    assert!(
        carried > 0 && carried as usize >= read_again - 2,
        "carried {carried} of {read_again}: {all:?}"
    );
    // Every study restores from `latest`: the changed one from the new run, shard 1's from
    // the first run.
    let held_by_missing_shard: BTreeSet<String> = shards[1].1.iter().cloned().collect();
    for i in 0..DATABASES {
        let db = format!("sh_{i}");
        restore_copy(&repo, server, "latest", &db, &format!("{db}_back"));
        assert_eq!(
            checksums(server, &db),
            checksums(server, &format!("{db}_back")),
            "{db} (held by the missing shard: {})",
            held_by_missing_shard.contains(&db)
        );
        server.sql(&format!("DROP DATABASE {db}_back"));
    }

    // forget keeps or removes a run as a whole.
    let plan = ok(repo.coffer(&["forget", "--keep-last", "1", "--dry-run"]));
    assert!(
        plan.contains("keep   run nightly-2 (2 shards)")
            && plan.contains("remove run nightly-1 (3 shards)")
            && plan.contains("1 backups kept, 3 snapshots would be removed"),
        "{plan}"
    );
    let plans = || std::fs::read_dir(repo.path().join("shards")).map_or(0, |d| d.count());
    assert_eq!(plans(), 2, "one plan per run");
    ok(repo.coffer(&["forget", "--keep-last", "1"]));
    assert_eq!(plans(), 1, "the forgotten run's plan is removed with it");

    // A shard told another number of shards than its run was planned for stops.
    let out = shard(&repo, server, "sh_*", (0, 4), "nightly-2")
        .wait_with_output()
        .expect("coffer ran");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("run nightly-2 was planned for 3 shards"),
        "{}",
        stderr(&out)
    );
    let out = repo.coffer(&["backup", "--mysql", &url, "--shard", "3/3", "--run-id", "x"]);
    assert!(
        stderr(&out).contains("shards count from 0"),
        "{}",
        stderr(&out)
    );
    let out = repo.coffer(&["backup", "--mysql", &url, "--shard", "0/3"]);
    assert!(
        !out.status.success() && stderr(&out).contains("--run-id"),
        "{}",
        stderr(&out)
    );
}

/// A run id an earlier run already used (a scheduler that passes a fixed id) would file this
/// backup under that run: refused, naming the fix.
#[test]
fn a_run_id_an_earlier_run_used_is_refused() {
    use coffer::repo::Repository;
    use coffer::repo::shard_plan::ShardPlan;
    use coffer::storage::local::LocalStorage;

    let server = MariaDb::shared();
    server.sql("CREATE DATABASE IF NOT EXISTS reused_run_db; USE reused_run_db; CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY)");
    let repo = Repo::new();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let storage = std::sync::Arc::new(LocalStorage::new(repo.path()));
        let opened = Repository::open(storage, &common::library::provider())
            .await
            .expect("open");
        opened
            .store_shard_plan(ShardPlan {
                version: 1,
                run_id: "nightly".into(),
                created: jiff::Timestamp::now() - jiff::SignedDuration::from_hours(36),
                shards: vec![vec!["reused_run_db".into()], vec![]],
            })
            .await
            .expect("plan stored");
    });
    let out = shard(&repo, server, "reused_run_db", (0, 2), "nightly")
        .wait_with_output()
        .expect("coffer ran");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("every backup run needs its own --run-id"),
        "{}",
        stderr(&out)
    );
}
