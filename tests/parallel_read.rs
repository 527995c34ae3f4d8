//! One large database read by several connections at once (issue 10): all of them see one
//! state, even while a writer moves money between two of its tables in transactions; big
//! tables split into key ranges restore exactly, and their boundaries stay put between runs so
//! deduplication holds; a lock that cannot be had in time means one connection, not a failure.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use mysql_async::prelude::Queryable;

use common::library::socket_target;
use common::*;

const ACCOUNTS: u64 = 30_000;
const OPENING_BALANCE: u64 = 1_000;

fn create_bank(server: &MariaDb, db: &str) {
    server.sql(&format!(
        "CREATE DATABASE {db}; USE {db}; \
         CREATE TABLE checking (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL, note VARCHAR(250)); \
         CREATE TABLE savings (branch INT, id BIGINT, balance BIGINT NOT NULL, note VARCHAR(250), PRIMARY KEY (branch, id)); \
         CREATE TABLE branches (name VARCHAR(40) PRIMARY KEY, city TEXT); \
         INSERT INTO checking SELECT seq, {OPENING_BALANCE}, REPEAT(SHA2(seq, 256), 3) FROM seq_1_to_{ACCOUNTS}; \
         INSERT INTO savings SELECT seq % 7, seq, {OPENING_BALANCE}, REPEAT(SHA2(seq, 224), 3) FROM seq_1_to_{ACCOUNTS}; \
         INSERT INTO branches VALUES ('north', 'Oslo'), ('south', 'Rome'); \
         ANALYZE TABLE checking, savings, branches;"
    ));
    // The server's table statistics (fresh after ANALYZE) make this a large database on a
    // first backup; InnoDB refreshes them on its own only later.
}

fn total_money(server: &MariaDb, db: &str) -> u64 {
    server
        .sql(&format!(
            "SELECT (SELECT SUM(balance) FROM {db}.checking) + (SELECT SUM(balance) FROM {db}.savings)"
        ))
        .trim()
        .parse()
        .expect("a sum")
}

/// Move money between the two tables in transactions until `stop`; returns how many committed.
fn start_transfers(
    server: &MariaDb,
    db: &str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    let target = socket_target(server);
    let db = db.to_string();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let mut conn = target.connect().await.expect("connect");
            let committed = AtomicU64::new(0);
            let mut n: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                // Spread over the key space, so transfers cross range boundaries.
                let from = n * 7919 % ACCOUNTS + 1;
                let to = n * 104_729 % ACCOUNTS + 1;
                let amount = n % 50 + 1;
                let sql = if n.is_multiple_of(2) {
                    format!(
                        "START TRANSACTION; \
                         UPDATE {db}.checking SET balance = balance - {amount} WHERE id = {from}; \
                         UPDATE {db}.savings SET balance = balance + {amount} WHERE branch = {} AND id = {to}; \
                         COMMIT",
                        to % 7
                    )
                } else {
                    // A new account, paid from savings: rows appear past the last range too.
                    format!(
                        "START TRANSACTION; \
                         UPDATE {db}.savings SET balance = balance - {amount} WHERE branch = {} AND id = {from}; \
                         INSERT INTO {db}.checking VALUES ({}, {amount}, 'opened during the backup'); \
                         COMMIT",
                        from % 7,
                        ACCOUNTS + n
                    )
                };
                // One statement per call: the connection does not take several at once. Like
                // any application, the writer retries a transaction chosen as a deadlock
                // victim, which the brief LOCK TABLES can make it (documented).
                let mut outcome = Ok(());
                for statement in sql.split("; ") {
                    outcome = conn.query_drop(statement).await;
                    if outcome.is_err() {
                        break;
                    }
                }
                match outcome {
                    Ok(()) => {
                        committed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(mysql_async::Error::Server(e)) if e.code == 1213 || e.code == 1205 => {
                        conn.query_drop("ROLLBACK").await.expect("rollback");
                        n -= 1;
                    }
                    Err(e) => panic!("transfer: {e}"),
                }
            }
            committed.load(Ordering::Relaxed)
        })
    })
}

fn snapshot_stats(repo: &Repo) -> serde_json::Value {
    latest_snapshot_json(repo)["stats"].clone()
}

#[test]
fn connections_reading_one_database_see_one_state_under_writes() {
    let server = MariaDb::shared();
    create_bank(server, "bank");
    let expected_total = total_money(server, "bank");
    assert_eq!(expected_total, 2 * ACCOUNTS * OPENING_BALANCE);
    let repo = Repo::new();
    let url = server.socket_url();
    let backup = |extra: &[&str]| {
        let mut args = vec![
            "backup",
            "--mysql",
            &url,
            "--include",
            "bank",
            "--jobs",
            "4",
            "--large-database",
            "1MiB",
        ];
        args.extend_from_slice(extra);
        ok(repo.coffer(&args))
    };

    let stop = Arc::new(AtomicBool::new(false));
    let writer = start_transfers(server, "bank", Arc::clone(&stop));
    std::thread::sleep(std::time::Duration::from_millis(300));
    backup(&[]);
    stop.store(true, Ordering::Relaxed);
    let transfers = writer.join().expect("writer");
    assert!(transfers > 0, "the writer ran during the backup");
    let stats = snapshot_stats(&repo);
    assert!(
        stats["longest_lock_ms"].is_u64(),
        "read by several connections: {stats}"
    );

    // Every connection saw the same state: no transfer is half in the copy.
    restore_copy(&repo, server, "latest", "bank", "bank_copy");
    assert_eq!(total_money(server, "bank_copy"), expected_total);
    assert_eq!(total_money(server, "bank"), expected_total);
    let unique = server.sql("SELECT COUNT(*) = COUNT(DISTINCT id) FROM bank_copy.checking");
    assert_eq!(unique.trim(), "1", "no row read twice by two ranges");

    // Quiet now: a second run splits where the first run's chunks started, and restores exactly.
    backup(&["--full"]);
    restore_copy(&repo, server, "latest", "bank", "bank_copy");
    assert_eq!(checksums(server, "bank"), checksums(server, "bank_copy"));

    // One row changes: the boundaries stay put, so almost every chunk is deduplicated.
    server.sql("UPDATE bank.checking SET note = 'changed' WHERE id = 12345;");
    backup(&["--full"]);
    let stats = snapshot_stats(&repo);
    let new_blobs = stats["blobs_new"].as_u64().expect("blobs_new");
    assert!(
        new_blobs <= 6,
        "one changed row stored {new_blobs} new blobs: {stats}"
    );
    restore_copy(&repo, server, "latest", "bank", "bank_copy");
    assert_eq!(checksums(server, "bank"), checksums(server, "bank_copy"));
}

#[test]
fn a_lock_not_granted_in_time_means_one_connection() {
    let server = MariaDb::shared();
    create_bank(server, "bank_busy");
    let target = socket_target(server);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // An open transaction that wrote to a table: LOCK TABLES … READ waits for it.
    let mut holder = runtime.block_on(async {
        let mut conn = target.connect().await.expect("connect");
        conn.query_drop("START TRANSACTION").await.expect("begin");
        conn.query_drop("UPDATE bank_busy.checking SET balance = balance WHERE id = 1")
            .await
            .expect("write in the open transaction");
        conn
    });
    let repo = Repo::new();
    let out = repo.coffer(&[
        "backup",
        "--mysql",
        &server.socket_url(),
        "--include",
        "bank_busy",
        "--jobs",
        "3",
        "--large-database",
        "1MiB",
        "--lock-wait",
        "1s",
    ]);
    let log = stderr(&out);
    ok(out);
    runtime.block_on(async {
        holder.query_drop("ROLLBACK").await.expect("rollback");
    });
    assert!(log.contains("one connection"), "{log}");
    let stats = snapshot_stats(&repo);
    assert!(stats["longest_lock_ms"].is_null(), "{stats}");
    restore_copy(&repo, server, "latest", "bank_busy", "bank_busy_copy");
    assert_eq!(
        checksums(server, "bank_busy"),
        checksums(server, "bank_busy_copy")
    );
}
