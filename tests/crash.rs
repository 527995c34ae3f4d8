//! Crash safety: a backup killed at arbitrary points leaves a repository whose snapshots all
//! restore and pass `check`, and the next backup succeeds.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;

#[test]
fn backups_killed_at_random_points_never_damage_the_repository() {
    let server = MariaDb::shared();
    for i in 0..10 {
        server.sql(&format!(
            "CREATE DATABASE crash_{i}; USE crash_{i}; \
             CREATE TABLE t (id INT PRIMARY KEY, payload TEXT); \
             INSERT INTO t SELECT seq, CONCAT(SHA2(seq * {i}, 512), REPEAT('z', seq % 300)) FROM seq_1_to_10000;"
        ));
    }
    // Small packs, so a run writes many packs and index files to be interrupted between.
    let repo = Repo::init(&["--chunk-size", "16KiB", "--pack-size", "1MiB"]);
    let url = server.socket_url();
    let backup = [
        "backup",
        "--mysql",
        &url,
        "--include",
        "crash_*",
        "--jobs",
        "3",
    ];
    ok(repo.coffer(&backup));
    // Killed runs are incremental: time one to know where a kill can land.
    change_every_database(server, 99);
    let started = std::time::Instant::now();
    ok(repo.coffer(&backup));
    let incremental_run = started.elapsed().as_millis() as u64;
    let good = latest_snapshot(&repo);
    let crash_3_at_good = checksums(server, "crash_3");
    // Data changes between runs, so every killed run has new blobs to write.
    let seed = std::env::var("COFFER_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    let mut x = seed;
    // Runs vary in length on a busy machine: a run that ended before its kill does not count,
    // and the window for the next kill shrinks.
    let mut window = (incremental_run * 9 / 10).max(1);
    let mut interrupted = 0;
    for round in 0..12 {
        if interrupted == 6 {
            break;
        }
        change_every_database(server, round);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Anywhere from start-up to the last writes of a run.
        let delay = Duration::from_millis(incremental_run / 20 + x % window);
        let mut child = coffer_cmd(&backup, Some(repo.path()), &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn backup");
        std::thread::sleep(delay);
        if matches!(child.try_wait(), Ok(None)) {
            interrupted += 1;
        } else {
            window = (window * 2 / 3).max(1);
        }
        let _ = child.kill();
        let _ = child.wait();
        let check = repo.coffer(&["check"]);
        assert!(
            check.status.success(),
            "seed {seed} round {round} (killed after {delay:?}): {}{}",
            stdout(&check),
            stderr(&check)
        );
    }
    assert!(
        interrupted >= 4,
        "only {interrupted} of the backups were still running when killed"
    );
    ok(repo.coffer(&["check", "--read-data"]));
    // The snapshot from before the crashes restores, and so does a fresh one.
    ok(repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--snapshot",
        &good,
        "--db",
        "crash_3",
        "--into",
        "crash_3_before",
    ]));
    assert_eq!(checksums(server, "crash_3_before"), crash_3_at_good);
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "crash_*"]));
    ok(repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--db",
        "crash_0",
        "--into",
        "crash_0_after",
    ]));
    assert_eq!(
        checksums(server, "crash_0"),
        checksums(server, "crash_0_after")
    );
    ok(repo.coffer(&["check", "--read-data"]));
}

/// Change a few rows of every database, so every run has new chunks to write.
fn change_every_database(server: &MariaDb, round: u64) {
    for i in 0..10 {
        server.sql(&format!(
            "UPDATE crash_{i}.t SET payload = CONCAT(payload, '{round}') WHERE id % 40 = {}",
            round % 40
        ));
    }
}
