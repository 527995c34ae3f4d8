//! `coffer prune` and `forget --prune` (issue 8): space comes back, and nothing a kept snapshot or
//! a backup running at the same time needs is ever deleted.

mod common;

use std::io::Write;
use std::ops::Range;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use coffer::check::{DataCheck, check};
use coffer::crypto::slots::KeyProvider;
use coffer::prune::{PruneOptions, prune};
use coffer::repo::{ChunkerParams, InitOptions, Repository};
use coffer::storage::local::LocalStorage;
use coffer::storage::{ObjectMeta, PutOutcome, Storage};
use common::library::{backup, provider, restore_into};
use common::*;

/// No grace period, and store times a second apart count as ordered (a local disk's mtimes
/// are exact), so tests need not wait.
fn now_prune() -> PruneOptions {
    PruneOptions {
        grace: Duration::ZERO,
        order_slack: Duration::from_secs(1),
        ..PruneOptions::default()
    }
}

/// A repository through the library, with small chunks and packs so tests see many of both.
async fn small_repo(storage: Arc<dyn Storage>) -> Arc<Repository> {
    let provider = provider();
    let provider: &dyn KeyProvider = &provider;
    Arc::new(
        Repository::init(
            storage,
            provider,
            InitOptions {
                chunker: ChunkerParams::with_average(16 << 10).expect("chunker"),
                pack_size: 96 << 10,
            },
        )
        .await
        .expect("init"),
    )
}

/// `check --read-data` finds nothing, and database `db` of `made` restores (as `DB_back`) to
/// the `expected` checksums.
async fn checks_clean_and_restores(
    repo: &Arc<Repository>,
    made: &coffer::backup::BackupReport,
    db: &str,
    expected: &[(String, String)],
) {
    let report = check(repo, DataCheck::All).await.expect("check");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let index = Arc::new(repo.load_index().await.expect("index"));
    let into = format!("{db}_back");
    restore_into(
        repo,
        index,
        (&made.snapshot_id, &made.snapshot),
        MariaDb::shared(),
        db,
        &into,
    )
    .await
    .expect("restore");
    assert_eq!(checksums(MariaDb::shared(), &into), expected);
}

fn pack_files(dir: &std::path::Path) -> usize {
    files_under(&dir.join("data")).len()
}

#[test]
fn forget_prune_frees_space_and_the_oldest_kept_snapshot_restores_exactly() {
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE prune_cli; USE prune_cli; \
         CREATE TABLE t (id INT PRIMARY KEY, v TEXT); \
         INSERT INTO t SELECT seq, REPEAT(SHA2(seq, 256), 4) FROM seq_1_to_4000;",
    );
    let repo = Repo::init(&["--chunk-size", "16KiB", "--pack-size", "1MiB"]);
    let url = server.socket_url();
    let mut sums = Vec::new();
    for day in 1..=5 {
        // Each day rewrites a fifth of the rows, so old chunks become garbage.
        server.sql(&format!(
            "UPDATE prune_cli.t SET v = REPEAT(SHA2(CONCAT(id, '-{day}'), 256), 4) WHERE id % 5 = {};",
            day % 5
        ));
        ok(repo.coffer(&[
            "backup",
            "--mysql",
            &url,
            "--include",
            "prune_cli",
            "--time",
            &format!("2026-11-0{day} 02:00"),
        ]));
        sums.push(checksums(server, "prune_cli"));
    }
    let packs_before = pack_files(repo.path());
    let size_before = repo.size();

    // The default grace period: packs are condemned, nothing is deleted yet.
    let first = ok(repo.coffer(&["forget", "--keep-last", "2", "--prune"]));
    assert!(first.contains("not swept yet"), "{first}");
    assert_eq!(pack_files(repo.path()), packs_before, "{first}");
    assert!(
        repo.path()
            .join("prune")
            .read_dir()
            .expect("prune/")
            .count()
            > 0
    );

    // A dry run says what a sweep would delete and free; the sweep then does exactly that.
    let plan: serde_json::Value = serde_json::from_str(&ok(repo.coffer(&[
        "prune",
        "--grace",
        "0s",
        "--dry-run",
        "--json",
    ])))
    .expect("json");
    assert!(plan["packs_deleted"].as_u64().unwrap_or(0) > 0, "{plan:#}");
    assert_eq!(
        pack_files(repo.path()),
        packs_before,
        "a dry run deleted packs"
    );
    let done: serde_json::Value =
        serde_json::from_str(&ok(repo.coffer(&["prune", "--grace", "0s", "--json"])))
            .expect("json");
    assert_eq!(done["packs_deleted"], plan["packs_deleted"], "{done:#}");
    assert_eq!(done["bytes_freed"], plan["bytes_freed"], "{done:#}");
    assert_eq!(done["not_deleted"].as_array().map(Vec::len), Some(0));
    assert!(pack_files(repo.path()) < packs_before);
    assert!(
        repo.size() < size_before * 3 / 4,
        "{} -> {}",
        size_before,
        repo.size()
    );
    assert_eq!(
        repo.path()
            .join("prune")
            .read_dir()
            .expect("prune/")
            .count(),
        0,
        "swept marks stay"
    );

    let check = ok(repo.coffer(&["check", "--read-data"]));
    assert!(check.contains("no problems"), "{check}");
    let listing: serde_json::Value =
        serde_json::from_str(&ok(repo.coffer(&["snapshots", "--json"]))).expect("json");
    let kept = listing.as_array().expect("list");
    assert_eq!(kept.len(), 2);
    let oldest = kept[0]["id"].as_str().expect("id");
    ok(repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--snapshot",
        oldest,
        "--db",
        "prune_cli",
        "--into",
        "prune_cli_oldest",
    ]));
    assert_eq!(checksums(server, "prune_cli_oldest"), sums[3]);

    // The audit log has the prune.
    let audit = ok(repo.coffer(&["audit", "--json"]));
    assert!(audit.contains("\"prune\""), "{audit}");
}

/// A client session holding `LOCK TABLES … WRITE` until dropped.
struct TableLock(Child);

impl TableLock {
    fn hold(server: &MariaDb, table: &str) -> TableLock {
        let mut child = server
            .client()
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("client");
        let stdin = child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "LOCK TABLES {table} WRITE; SELECT SLEEP(3600);").expect("lock");
        stdin.flush().expect("flush");
        TableLock(child)
    }
}

impl Drop for TableLock {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_that_started_before_the_mark_keeps_what_it_deduplicated() {
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE prune_early; USE prune_early; \
         CREATE TABLE t (id INT PRIMARY KEY, v TEXT); \
         INSERT INTO t SELECT seq, REPEAT(SHA2(seq, 256), 3) FROM seq_1_to_3000;",
    );
    let dir = tempfile::tempdir().expect("dir");
    let repo = small_repo(Arc::new(LocalStorage::new(dir.path()))).await;
    let first = backup(&repo, server, "prune_early").await.expect("backup");
    let expected = checksums(server, "prune_early");
    // Its packs must be older than the next run by more than the slack to be condemned.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Forgotten: nothing references its data any more.
    repo.remove_snapshot(&first.snapshot_id.to_string())
        .await
        .expect("forget");

    // A backup of the same data starts, loads the index, and waits on a table lock.
    let lock = TableLock::hold(server, "prune_early.t");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let running = {
        let repo = repo.clone();
        tokio::spawn(async move { backup(&repo, MariaDb::shared(), "prune_early").await })
    };
    for _ in 0..100 {
        if !repo.list_runs().await.expect("runs").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !running.is_finished(),
        "the backup did not wait on the lock"
    );

    let pruned = prune(&repo, &now_prune()).await.expect("prune");
    assert!(pruned.condemned_unused > 0, "{pruned:?}");
    assert_eq!(pruned.packs_deleted, 0, "{pruned:?}");
    assert!(
        pruned
            .marks_waiting
            .iter()
            .any(|w| w.contains("waiting for runs that started before it")),
        "{pruned:?}"
    );

    drop(lock);
    let late = running.await.expect("join").expect("backup");
    assert_eq!(
        late.snapshot.stats.blobs_new, 0,
        "the running backup should have deduplicated against the condemned data"
    );

    // The sweep sees the late snapshot and keeps the packs it uses.
    let swept = prune(&repo, &now_prune()).await.expect("prune");
    assert!(swept.packs_kept > 0, "{swept:?}");
    assert!(swept.marks_waiting.is_empty(), "{swept:?}");
    checks_clean_and_restores(&repo, &late, "prune_early", &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_after_the_mark_stores_condemned_data_again_and_dead_runs_expire() {
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE prune_after; USE prune_after; \
         CREATE TABLE t (id INT PRIMARY KEY, v TEXT); \
         INSERT INTO t SELECT seq, REPEAT(SHA2(seq, 256), 3) FROM seq_1_to_2000;",
    );
    let dir = tempfile::tempdir().expect("dir");
    let repo = small_repo(Arc::new(LocalStorage::new(dir.path()))).await;
    let first = backup(&repo, server, "prune_after").await.expect("backup");
    repo.remove_snapshot(&first.snapshot_id.to_string())
        .await
        .expect("forget");
    // A run that died: its lease is a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let dead = repo
        .begin_run("backup", Duration::from_secs(1))
        .await
        .expect("marker");
    let marked = prune(
        &repo,
        &PruneOptions {
            grace: PruneOptions::default().grace,
            ..now_prune()
        },
    )
    .await
    .expect("prune");
    assert!(marked.mark.is_some(), "{marked:?}");

    let again = backup(&repo, server, "prune_after").await.expect("backup");
    assert!(
        again.snapshot.stats.blobs_new > 0,
        "a backup deduplicated against condemned packs"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let swept = prune(&repo, &now_prune()).await.expect("prune");
    assert!(swept.packs_deleted > 0, "{swept:?}");
    assert!(swept.marks_waiting.is_empty(), "{swept:?}");
    let runs = repo.list_runs().await.expect("runs");
    assert!(
        runs.iter().all(|r| r.id != dead.id),
        "the dead run's marker stayed"
    );
    let report = check(&repo, DataCheck::All).await.expect("check");
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    // A backup past its own lease writes no snapshot.
    let mut options = common::library::options("prune_after");
    options.run_lease = Duration::from_millis(1);
    let late = coffer::backup::run_backup(
        repo.clone(),
        &common::library::socket_target(server),
        &options,
        Arc::new(common::library::Quiet),
        Arc::default(),
    )
    .await;
    let error = match late {
        Ok(_) => panic!("a run past its lease must fail"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("past its lease"), "{error}");
    assert_eq!(repo.snapshots().await.expect("snapshots").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prune_racing_backups_for_many_rounds_loses_nothing() {
    let server = MariaDb::shared();
    for db in ["race_a", "race_b"] {
        server.sql(&format!(
            "CREATE DATABASE {db}; USE {db}; \
             CREATE TABLE t (id INT PRIMARY KEY, v TEXT); \
             INSERT INTO t SELECT seq, REPEAT(SHA2(seq, 256), 2) FROM seq_1_to_1500;"
        ));
    }
    let dir = tempfile::tempdir().expect("dir");
    let repo = small_repo(Arc::new(LocalStorage::new(dir.path()))).await;
    let mut expected = std::collections::HashMap::new();
    let options = PruneOptions {
        repack_unused: 0.2,
        ..now_prune()
    };
    let (mut deleted, mut repacked, mut waited) = (0, 0, 0);
    for round in 0..10 {
        for db in ["race_a", "race_b"] {
            server.sql(&format!(
                "UPDATE {db}.t SET v = REPEAT(SHA2(CONCAT(id, '-{round}'), 256), 2) WHERE id % 4 = {};",
                round % 4
            ));
        }
        let sums = (checksums(server, "race_a"), checksums(server, "race_b"));
        // Packs of earlier rounds are then older than this round's run by more than the slack,
        // so prunes during the run condemn them and their sweeps must wait for it.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let done = Arc::new(AtomicBool::new(false));
        let running = {
            let repo = repo.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let result = backup(&repo, MariaDb::shared(), "race_*").await;
                done.store(true, Ordering::SeqCst);
                result
            })
        };
        // Forget all but the newest three and prune, again and again while the backup runs.
        let mut prunes = 0;
        while !done.load(Ordering::SeqCst) || prunes < 2 {
            let snapshots = repo.snapshots().await.expect("snapshots");
            for (id, _) in snapshots.iter().rev().skip(3) {
                repo.remove_snapshot(&id.to_string()).await.expect("forget");
            }
            let report = prune(&repo, &options).await.expect("prune");
            assert!(report.problems.is_empty(), "{report:?}");
            deleted += report.packs_deleted;
            waited += usize::from(
                report
                    .marks_waiting
                    .iter()
                    .any(|w| w.contains("waiting for runs")),
            );
            repacked += report.repacked;
            prunes += 1;
        }
        let made = running.await.expect("join").expect("backup");
        expected.insert(made.snapshot_id, sums);
    }
    prune(&repo, &options).await.expect("prune");
    assert!(
        deleted > 0 && repacked > 0,
        "deleted {deleted}, repacked {repacked}"
    );
    // Prunes did meet running backups (and waited for them).
    assert!(waited > 0, "no prune overlapped a backup");
    eprintln!("{deleted} packs deleted, {repacked} repacked, {waited} sweeps waited for a backup");
    let report = check(&repo, DataCheck::All).await.expect("check");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let index = Arc::new(repo.load_index().await.expect("index"));
    let snapshots = repo.snapshots().await.expect("snapshots");
    assert!(snapshots.len() >= 3);
    for (n, (id, snapshot)) in snapshots.iter().enumerate() {
        let (a, b) = &expected[id];
        for (db, sums) in [("race_a", a), ("race_b", b)] {
            let into = format!("{db}_back_{n}");
            restore_into(&repo, index.clone(), (id, snapshot), server, db, &into)
                .await
                .expect("restore");
            assert_eq!(&checksums(server, &into), sums, "snapshot {id:?} {db}");
        }
    }
}

/// Local storage whose deletes under `data/` are refused while `refuse` is set, as an
/// immutability policy or a credential without delete rights would.
#[derive(Debug)]
struct Undeletable {
    inner: LocalStorage,
    refuse: AtomicBool,
}

#[async_trait]
impl Storage for Undeletable {
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn put_if_absent(&self, name: &str, data: &[u8]) -> coffer::Result<PutOutcome> {
        self.inner.put_if_absent(name, data).await
    }
    async fn get(&self, name: &str, max_len: u64) -> coffer::Result<Vec<u8>> {
        self.inner.get(name, max_len).await
    }
    async fn get_range(&self, name: &str, range: Range<u64>) -> coffer::Result<Vec<u8>> {
        self.inner.get_range(name, range).await
    }
    async fn list(&self, prefix: &str) -> coffer::Result<Vec<ObjectMeta>> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, name: &str) -> coffer::Result<()> {
        if name.starts_with("data/") && self.refuse.load(Ordering::SeqCst) {
            return Err(coffer::Error::new(
                coffer::ErrorKind::Storage,
                format!("deleting {name}: 409 BlobImmutableDueToPolicy"),
            ));
        }
        self.inner.delete(name).await
    }
    async fn exists(&self, name: &str) -> coffer::Result<bool> {
        self.inner.exists(name).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn objects_the_store_refuses_to_delete_are_skipped_named_and_tried_again() {
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE prune_locked; USE prune_locked; \
         CREATE TABLE t (id INT PRIMARY KEY, v TEXT); \
         INSERT INTO t SELECT seq, REPEAT(SHA2(seq, 256), 3) FROM seq_1_to_2000;",
    );
    let dir = tempfile::tempdir().expect("dir");
    let storage = Arc::new(Undeletable {
        inner: LocalStorage::new(dir.path()),
        refuse: AtomicBool::new(true),
    });
    let repo = small_repo(storage.clone()).await;
    let first = backup(&repo, server, "prune_locked").await.expect("backup");
    server.sql("DELETE FROM prune_locked.t WHERE id > 1000;");
    let kept = backup(&repo, server, "prune_locked").await.expect("backup");
    let expected = checksums(server, "prune_locked");
    repo.remove_snapshot(&first.snapshot_id.to_string())
        .await
        .expect("forget");

    let refused = prune(&repo, &now_prune()).await.expect("prune");
    assert_eq!(refused.packs_deleted, 0, "{refused:?}");
    assert!(!refused.not_deleted.is_empty(), "{refused:?}");
    assert!(
        refused
            .not_deleted
            .iter()
            .all(|n| n.contains("data/") && n.contains("BlobImmutableDueToPolicy")),
        "{refused:?}"
    );
    let report = check(&repo, DataCheck::All).await.expect("check");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(
        repo.list_prune_marks().await.expect("marks").len(),
        1,
        "what could not be deleted stays condemned"
    );

    storage.refuse.store(false, Ordering::SeqCst);
    let retried = prune(&repo, &now_prune()).await.expect("prune");
    assert_eq!(
        retried.packs_deleted,
        refused.not_deleted.len(),
        "{retried:?}"
    );
    assert!(retried.not_deleted.is_empty(), "{retried:?}");
    assert!(repo.list_prune_marks().await.expect("marks").is_empty());
    checks_clean_and_restores(&repo, &kept, "prune_locked", &expected).await;
}
