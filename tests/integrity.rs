//! The integrity holes of 0.1 (issue 12), each with the failure that must never come back:
//! columns silently left out of a dump, snapshots pointing at blobs that were never stored,
//! repositories that do not open after an interrupted `init` or with a planted key slot, damage
//! that stopped `check`, and secrets shown by `--help`.

mod common;

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use coffer::crypto::MasterSecret;
use coffer::crypto::slots::KeyProvider;
use coffer::repo::{InitOptions, Repository, paths};
use coffer::storage::local::LocalStorage;
use coffer::storage::{ObjectMeta, PutOutcome, Storage};
use coffer::{Error, ErrorKind};
use common::library::*;
use common::*;

#[test]
fn a_table_with_hidden_columns_fails_its_database_instead_of_losing_them() {
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE colgrant; CREATE TABLE colgrant.t (id INT PRIMARY KEY, visible INT, secret INT); \
         INSERT INTO colgrant.t VALUES (1, 2, 3); \
         CREATE USER 'colonly'@'localhost' IDENTIFIED BY 'col-pw'; \
         GRANT SELECT (id, visible) ON colgrant.t TO 'colonly'@'localhost'; \
         GRANT TRIGGER ON colgrant.t TO 'colonly'@'localhost';",
    );
    let repo = Repo::new();
    let url = server.socket_url_as("colonly");
    let out = repo.coffer_env(
        &["backup", "--mysql", &url, "--include", "colgrant"],
        &[("COFFER_MYSQL_PASSWORD", "col-pw")],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("colgrant") && err.contains("does not list column(s) secret"),
        "the hidden column is named: {err}"
    );
    let listing = ok(repo.coffer(&["ls", "latest"]));
    assert!(listing.contains("FAILED"), "{listing}");

    // A table whose columns information_schema does not list at all is not stored empty.
    server.sql(
        "CREATE DATABASE nocols; CREATE TABLE nocols.t (id INT PRIMARY KEY); INSERT INTO nocols.t VALUES (1); \
         GRANT TRIGGER ON nocols.t TO 'colonly'@'localhost';",
    );
    let out = repo.coffer_env(
        &["backup", "--mysql", &url, "--include", "nocols"],
        &[("COFFER_MYSQL_PASSWORD", "col-pw")],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("lists no column"), "{}", stderr(&out));
}

#[test]
fn secret_environment_values_stay_out_of_help() {
    let out = coffer_cmd(&["backup", "--help"], None, &[])
        .env(
            "COFFER_MYSQL_URL",
            "mysql://admin:topsecret-pw@db.example.com/",
        )
        .output()
        .expect("run coffer");
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("COFFER_MYSQL_URL"), "{text}");
    assert!(
        !text.contains("topsecret-pw"),
        "the password was printed: {text}"
    );
}

/// Local storage whose writes fail once with an error of a kind other than `Storage`, for the
/// objects `fails` picks: the faults a backup must survive without a snapshot that refers to
/// lost blobs.
#[derive(Debug)]
struct FailingWrites {
    inner: Arc<dyn Storage>,
    folder: &'static str,
    kind: ErrorKind,
    after: u64,
    writes: AtomicU64,
}

#[async_trait]
impl Storage for FailingWrites {
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn put_if_absent(&self, name: &str, data: &[u8]) -> coffer::Result<PutOutcome> {
        if name.starts_with(self.folder)
            && self.writes.fetch_add(1, Ordering::Relaxed) == self.after
        {
            return Err(Error::new(
                self.kind,
                format!("injected {:?} fault writing {name}", self.kind),
            ));
        }
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
        self.inner.delete(name).await
    }
    async fn exists(&self, name: &str) -> coffer::Result<bool> {
        self.inner.exists(name).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_pack_of_any_error_kind_ends_the_run_without_a_snapshot() {
    let server = MariaDb::shared();
    let mut sql = String::new();
    for i in 0..6 {
        sql.push_str(&format!(
            "CREATE DATABASE lost_{i}; USE lost_{i}; CREATE TABLE t (id INT PRIMARY KEY, v TEXT); \
             INSERT INTO t SELECT seq, REPEAT(SHA2(seq + {i} * 1000, 256), 40) FROM seq_1_to_300;"
        ));
    }
    server.sql(&sql);
    for (folder, kind) in [
        (paths::DATA, ErrorKind::NotFound),
        (paths::DATA, ErrorKind::InvalidInput),
        (paths::INDEX, ErrorKind::Corrupt),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let local: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
        let init = InitOptions {
            pack_size: 1 << 20,
            chunker: coffer::repo::ChunkerParams::with_average(16 << 10).expect("chunker"),
        };
        Repository::init(local.clone(), &provider(), init)
            .await
            .expect("init");
        let failing = Arc::new(FailingWrites {
            inner: local.clone(),
            folder,
            kind,
            after: 0,
            writes: AtomicU64::new(0),
        });
        let repo = Arc::new(Repository::open(failing, &provider()).await.expect("open"));
        let err = backup(&repo, server, "lost_*")
            .await
            .expect_err("a backup that lost a pack must not succeed");
        assert!(
            err.to_string().contains("no snapshot written"),
            "{folder} {kind:?}: {err}"
        );
        let clean = Arc::new(Repository::open(local, &provider()).await.expect("open"));
        assert!(
            clean.snapshots().await.expect("snapshots").is_empty(),
            "{folder} {kind:?}: a snapshot was written"
        );
        // The repository stays usable: the next backup stores what was lost and checks clean.
        backup(&clean, server, "lost_*").await.expect("backup");
        let report = coffer::check::check(&clean, coffer::check::DataCheck::All)
            .await
            .expect("check");
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}

#[tokio::test]
async fn every_key_slot_is_tried_and_unusable_ones_are_passed_over() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
    // What an `init` that stopped after its key slot leaves: a slot whose master secret no
    // config goes with, opened by the same passphrase. Named to be listed first.
    let orphan = provider()
        .wrap(&MasterSecret::generate().expect("secret"), "orphan")
        .await
        .expect("wrap");
    storage
        .put_if_absent(
            &format!("{}00000000000000000000000000000000", paths::KEYS),
            &serde_json::to_vec(&orphan).expect("json"),
        )
        .await
        .expect("put");
    Repository::init(storage.clone(), &provider(), InitOptions::default())
        .await
        .expect("init after an interrupted init");
    // A planted slot asking for 4 TiB of memory, one of a kind this build does not know, and
    // one that is not a key slot at all.
    let mut greedy = serde_json::to_value(&orphan).expect("json");
    greedy["kdf"]["memory_kib"] = serde_json::json!(u32::MAX);
    let mut foreign = serde_json::to_value(&orphan).expect("json");
    foreign["kind"] = serde_json::json!("quantum_vault");
    for (name, body) in [
        ("01", serde_json::to_vec(&greedy).expect("json")),
        ("02", serde_json::to_vec(&foreign).expect("json")),
        ("03", b"not json".to_vec()),
    ] {
        storage
            .put_if_absent(&format!("{}{name}", paths::KEYS), &body)
            .await
            .expect("put");
    }
    let started = std::time::Instant::now();
    let repo = Repository::open(storage.clone(), &provider())
        .await
        .expect("the repository opens past every unusable slot");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(repo.config().version, coffer::repo::FORMAT_VERSION);
}

#[test]
fn a_damaged_snapshot_or_index_is_named_and_check_goes_on() {
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE damage_a; CREATE TABLE damage_a.t (id INT PRIMARY KEY); INSERT INTO damage_a.t VALUES (1); \
         CREATE DATABASE damage_b; CREATE TABLE damage_b.t (id INT PRIMARY KEY); INSERT INTO damage_b.t VALUES (2);",
    );
    let repo = Repo::new();
    for db in ["damage_a", "damage_b"] {
        ok(repo.coffer(&["backup", "--mysql", &server.socket_url(), "--include", db]));
    }
    let snapshots: Vec<_> = std::fs::read_dir(repo.path().join("snapshots"))
        .expect("snapshots")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(snapshots.len(), 2);
    let damaged = &snapshots[0];
    let mut bytes = std::fs::read(damaged).expect("read");
    bytes[30] ^= 0x01;
    std::fs::write(damaged, &bytes).expect("write");
    let damaged_name = damaged
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .expect("name");

    // The list comes from the snapshot summaries; reading the damaged snapshot names it.
    ok(repo.coffer(&["snapshots"]));
    let listing = repo.coffer(&["ls", &damaged_name]);
    assert!(!listing.status.success());
    assert!(
        stderr(&listing).contains(&damaged_name) && stderr(&listing).contains("coffer check"),
        "{}",
        stderr(&listing)
    );
    let check = repo.coffer(&["check"]);
    assert!(!check.status.success());
    let report = stdout(&check);
    assert!(
        report.contains(&damaged_name) && report.contains("checked 2 snapshots"),
        "check names the damaged snapshot and checks the other: {report}"
    );

    // A damaged index file: check names it and still checks every snapshot.
    let index_file = files_under(&repo.path().join("index"))
        .into_iter()
        .next()
        .expect("an index file");
    let mut bytes = std::fs::read(&index_file).expect("read");
    bytes[30] ^= 0x01;
    std::fs::write(&index_file, &bytes).expect("write");
    let check = repo.coffer(&["check"]);
    let report = stdout(&check);
    assert!(
        report.contains("index file:") && report.contains("checked 2 snapshots"),
        "{report}"
    );

    // An object name coffer never writes is an error, not a crash.
    std::fs::write(repo.path().join("snapshots/odd"), b"x").expect("write");
    for args in [vec!["snapshots"], vec!["ls", "latest"], vec!["check"]] {
        let out = repo.coffer(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
    }
}

/// The local index cache stands in for the index files only for the generation it was made
/// from: a damaged copy is ignored, and a valid copy of an older generation renamed to the
/// current one (an index lacking the newest blobs) is not taken for it.
#[test]
fn the_index_cache_is_used_only_for_its_own_generation() {
    let server = MariaDb::shared();
    server.sql(
        "DROP DATABASE IF EXISTS cache_a; DROP DATABASE IF EXISTS cache_b; \
         CREATE DATABASE cache_a; CREATE TABLE cache_a.t (id INT PRIMARY KEY, v TEXT); \
         USE cache_a; INSERT INTO t SELECT seq, SHA2(seq, 256) FROM seq_1_to_500;",
    );
    let repo = Repo::new();
    let cache = tempfile::tempdir().expect("temp");
    let env = [("COFFER_CACHE_DIR", cache.path().to_str().expect("utf-8"))];
    let url = server.socket_url();
    let run = |args: &[&str]| {
        let out = coffer_cmd(args, Some(repo.path()), &env)
            .output()
            .expect("run coffer");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    };
    let cached = || -> Vec<std::path::PathBuf> {
        files_under(cache.path())
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("index-"))
            })
            .collect()
    };
    run(&["backup", "--mysql", &url, "--include", "cache_a"]);
    run(&[
        "restore", "--mysql", &url, "--db", "cache_a", "--into", "cache_a1",
    ]);
    let first = cached();
    assert_eq!(first.len(), 1, "one cached generation: {first:?}");
    let old_generation = std::fs::read(&first[0]).expect("cached index");

    // Damaged: ignored, and replaced by a good copy.
    std::fs::write(&first[0], b"not an index").expect("damage");
    run(&[
        "restore", "--mysql", &url, "--db", "cache_a", "--into", "cache_a2",
    ]);
    assert_ne!(std::fs::read(&first[0]).expect("cached"), b"not an index");

    // A new backup is a new generation; the older copy, renamed to it, is refused (using it
    // would miss the new database's blobs and fail the restore).
    server.sql(
        "CREATE DATABASE cache_b; CREATE TABLE cache_b.t (id INT PRIMARY KEY, v TEXT); \
         USE cache_b; INSERT INTO t SELECT seq, SHA2(seq + 7, 256) FROM seq_1_to_500;",
    );
    run(&["backup", "--mysql", &url, "--include", "cache_b"]);
    run(&[
        "restore", "--mysql", &url, "--db", "cache_b", "--into", "cache_b1",
    ]);
    let second = cached();
    assert_eq!(
        second.len(),
        1,
        "the older generation is removed: {second:?}"
    );
    assert_ne!(second[0], first[0]);
    std::fs::write(&second[0], &old_generation).expect("replay an old copy");
    run(&[
        "restore", "--mysql", &url, "--db", "cache_b", "--into", "cache_b2",
    ]);
    assert_eq!(checksums(server, "cache_b"), checksums(server, "cache_b2"));
    server.sql(
        "DROP DATABASE cache_a1; DROP DATABASE cache_a2; DROP DATABASE cache_b1; DROP DATABASE cache_b2",
    );
}
