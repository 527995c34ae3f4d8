//! Repositories on Azure Blob (Azurite) and S3 (moto): the whole backup → restore round trip,
//! HTTPS enforcement, the metadata cache, ranged reads for a one-database restore, and a
//! fault-injecting storage wrapper under which backups still succeed and stay consistent.

mod common;

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use coffer::repo::{InitOptions, Repository};
use coffer::storage::{ObjectMeta, PutOutcome, Storage, StorageOptions, open_location};
use coffer::{Error, ErrorKind};
use common::library::*;
use common::*;

/// The coffer binary against a remote repository, with its own cache folder.
struct Remote {
    url: String,
    cache: tempfile::TempDir,
}

impl Remote {
    fn new(url: String) -> Remote {
        Remote {
            url,
            cache: tempfile::tempdir().expect("cache dir"),
        }
    }

    fn coffer(&self, args: &[&str]) -> std::process::Output {
        let cache = self.cache.path().display().to_string();
        let mut env: Vec<(&str, &str)> = CLOUD_ENV.to_vec();
        env.push(("COFFER_REPO", &self.url));
        env.push(("COFFER_CACHE_DIR", &cache));
        coffer_cmd(args, None, &env).output().expect("run coffer")
    }
}

fn round_trip(remote: &Remote, prefix: &str) {
    let server = MariaDb::shared();
    for i in 0..3 {
        server.sql(&format!(
            "CREATE DATABASE {prefix}_{i}; USE {prefix}_{i}; CREATE TABLE t (id INT PRIMARY KEY, v TEXT, d DOUBLE); \
             INSERT INTO t SELECT seq, REPEAT(SHA2(seq, 256), 1 + seq % 5), seq / 3 FROM seq_1_to_3000; \
             CREATE VIEW v AS SELECT COUNT(*) AS n FROM t;"
        ));
    }
    ok(remote.coffer(&["init", "--chunk-size", "16KiB"]));
    let url = server.socket_url();
    let include = format!("{prefix}_*");
    let first = ok(remote.coffer(&["backup", "--mysql", &url, "--include", &include]));
    assert!(first.contains("3 databases"), "{first}");
    let second = ok(remote.coffer(&["backup", "--mysql", &url, "--include", &include]));
    assert!(
        second.contains("0 B stored new"),
        "unchanged data was stored again: {second}"
    );
    let restored = format!("{prefix}_1_restored");
    ok(remote.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--db",
        &format!("{prefix}_1"),
        "--into",
        &restored,
    ]));
    assert_eq!(
        checksums(server, &format!("{prefix}_1")),
        checksums(server, &restored)
    );
    assert_eq!(
        server.sql(&format!("SELECT n FROM {restored}.v")).trim(),
        "3000"
    );
    let check = ok(remote.coffer(&["check", "--read-data"]));
    assert!(check.contains("no problems"), "{check}");
}

/// Three daily backups that each rewrite every chunk, `forget --keep-last 1 --prune`, then the
/// repository checks clean and the kept snapshot restores exactly.
fn forget_and_prune(remote: &Remote, db: &str) {
    let server = MariaDb::shared();
    server.sql(&format!(
        "CREATE DATABASE {db}; USE {db}; CREATE TABLE t (id INT PRIMARY KEY, v TEXT); \
         INSERT INTO t SELECT seq, REPEAT(SHA2(seq, 256), 3) FROM seq_1_to_3000;"
    ));
    ok(remote.coffer(&["init", "--chunk-size", "16KiB", "--pack-size", "1MiB"]));
    let url = server.socket_url();
    for day in 1..=3 {
        server.sql(&format!(
            "UPDATE {db}.t SET v = REPEAT(SHA2(CONCAT(id, '-{day}'), 256), 3) WHERE id % 2 = {};",
            day % 2
        ));
        ok(remote.coffer(&[
            "backup",
            "--mysql",
            &url,
            "--include",
            db,
            "--time",
            &format!("2026-11-0{day} 02:00"),
        ]));
    }
    let expected = checksums(server, db);
    let out: serde_json::Value = serde_json::from_str(&ok(remote.coffer(&[
        "forget",
        "--keep-last",
        "1",
        "--prune",
        "--grace",
        "0s",
        "--json",
    ])))
    .expect("json");
    assert_eq!(out["remove"].as_array().map(Vec::len), Some(2), "{out:#}");
    assert!(
        out["prune"]["packs_deleted"].as_u64().unwrap_or(0) > 0,
        "{out:#}"
    );
    assert!(
        out["prune"]["bytes_freed"].as_u64().unwrap_or(0) > 0,
        "{out:#}"
    );
    assert_eq!(
        out["prune"]["not_deleted"].as_array().map(Vec::len),
        Some(0),
        "{out:#}"
    );
    let check = ok(remote.coffer(&["check", "--read-data"]));
    assert!(check.contains("no problems"), "{check}");
    let into = format!("{db}_back");
    ok(remote.coffer(&["restore", "--mysql", &url, "--db", db, "--into", &into]));
    assert_eq!(checksums(server, &into), expected);
}

#[test]
fn forget_and_prune_on_azure_blob() {
    forget_and_prune(
        &Remote::new(Azurite::shared().repo_url("prune")),
        "az_prune",
    );
}

#[test]
fn forget_and_prune_on_s3() {
    forget_and_prune(&Remote::new(Moto::shared().repo_url("prune")), "s3_prune");
}

#[test]
fn azure_blob_round_trip() {
    let remote = Remote::new(Azurite::shared().repo_url("roundtrip"));
    round_trip(&remote, "az_rt");
}

#[test]
fn s3_round_trip_and_metadata_cache() {
    let remote = Remote::new(Moto::shared().repo_url("roundtrip"));
    round_trip(&remote, "s3_rt");
    // Index files and snapshots are cached locally, validated by their hash-names.
    let cached = std::fs::read_dir(remote.cache.path())
        .expect("cache dir")
        .flatten()
        .next()
        .expect("a repository cache")
        .path();
    assert!(
        cached
            .join("index")
            .read_dir()
            .expect("cached index")
            .count()
            > 0
    );
    assert!(
        cached
            .join("snapshots")
            .read_dir()
            .expect("cached snapshots")
            .count()
            == 2
    );
    // Cached objects are private to the user coffer runs as.
    for file in files_under(&cached) {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file)
            .expect("cached")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    // A damaged or deleted cache is harmless.
    for entry in cached
        .join("snapshots")
        .read_dir()
        .expect("cached snapshots")
        .flatten()
    {
        std::fs::write(entry.path(), b"garbage").expect("damage cache");
    }
    std::fs::remove_dir_all(cached.join("index")).expect("drop cached index");
    let list = ok(remote.coffer(&["snapshots"]));
    assert!(list.contains("2 snapshots"), "{list}");
}

#[test]
fn plain_http_endpoints_need_an_explicit_opt_in() {
    let url = Moto::shared()
        .repo_url("plainhttp")
        .replace("&allow-http=true", "");
    let out = Remote::new(url).coffer(&["init"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("plain HTTP") && stderr(&out).contains("allow-http=true"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn credentials_in_the_repository_url_are_refused() {
    let out = Remote::new("s3://key:secret@bucket/prefix".into()).coffer(&["init"]);
    assert!(
        stderr(&out).contains("must not contain credentials") && !stderr(&out).contains("secret@"),
        "{}",
        stderr(&out)
    );
}

fn set_cloud_env() {
    for (k, v) in CLOUD_ENV {
        // SAFETY: set before any thread of this test reads the environment; every test sets the
        // same values.
        unsafe { std::env::set_var(k, v) };
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_one_database_reads_only_its_bytes() {
    set_cloud_env();
    let server = MariaDb::shared();
    let mut sql = String::new();
    for i in 0..200 {
        sql.push_str(&format!(
            "CREATE DATABASE many_{i:03}; USE many_{i:03}; CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(200)); \
             INSERT INTO t SELECT seq, CONCAT(SHA2(seq + {i} * 100000, 512)) FROM seq_1_to_150;"
        ));
    }
    server.sql(&sql);
    let url = Moto::shared().repo_url("manydbs");
    let opened = open_location(&url, &StorageOptions::default()).expect("storage");
    let repo = Arc::new(
        Repository::init(opened.storage.clone(), &provider(), InitOptions::default())
            .await
            .expect("init"),
    );
    let report = backup(&repo, server, "many_*").await.expect("backup");
    assert_eq!(report.snapshot.databases.len(), 200);
    let stored: u64 = opened
        .storage
        .list("")
        .await
        .expect("list")
        .iter()
        .map(|m| m.size)
        .sum();

    // A fresh process's view: open, load the index and the snapshot, restore one database.
    let opened = open_location(&url, &StorageOptions::default()).expect("storage");
    let repo = Arc::new(
        Repository::open(opened.storage.clone(), &provider())
            .await
            .expect("open"),
    );
    let before_restore = opened.traffic.bytes_read.load(Ordering::Relaxed);
    let (id, snapshot) = repo.find_snapshot("latest").await.expect("snapshot");
    let index = Arc::new(repo.load_index().await.expect("index"));
    let metadata = opened.traffic.bytes_read.load(Ordering::Relaxed) - before_restore;
    restore_into(
        &repo,
        index,
        (&id, &snapshot),
        server,
        "many_123",
        "many_123_r",
    )
    .await
    .expect("restore");
    let total_read = opened.traffic.bytes_read.load(Ordering::Relaxed) - before_restore;
    let database_bytes = total_read - metadata;
    eprintln!(
        "one-database restore from a repository of 200 databases ({stored} bytes stored): \
         {database_bytes} bytes of that database's trees and chunks + {metadata} bytes of index and snapshot"
    );
    assert_eq!(
        checksums(server, "many_123"),
        checksums(server, "many_123_r")
    );
    // One database is 1/200 of the data: reading whole packs would read far more.
    assert!(
        database_bytes * 100 < stored,
        "read {database_bytes} of {stored} bytes for one database"
    );
}

/// Storage that fails, times out, loses responses and cuts bodies at random, deterministically
/// for a seed. Sits below the retry layer, where real network faults appear.
#[derive(Debug)]
struct FaultyStorage {
    inner: Arc<dyn Storage>,
    state: AtomicU64,
    injected: AtomicU64,
}

enum Fault {
    None,
    FailBefore,
    TimeOut,
    LoseResponse,
    CutBody,
}

impl FaultyStorage {
    fn roll(&self) -> Fault {
        let mut x = self.state.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state.store(x, Ordering::Relaxed);
        let fault = match x % 20 {
            0 | 1 => Fault::FailBefore,
            2 => Fault::TimeOut,
            3 => Fault::LoseResponse,
            4 | 5 => Fault::CutBody,
            _ => Fault::None,
        };
        if !matches!(fault, Fault::None) {
            self.injected.fetch_add(1, Ordering::Relaxed);
        }
        fault
    }
}

fn injected(what: &str) -> Error {
    Error::new(ErrorKind::Storage, format!("injected fault: {what}")).transient(true)
}

#[async_trait]
impl Storage for FaultyStorage {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn put_if_absent(&self, name: &str, data: &[u8]) -> coffer::Result<PutOutcome> {
        match self.roll() {
            Fault::FailBefore | Fault::CutBody => {
                Err(injected("connection reset before the upload completed"))
            }
            Fault::TimeOut => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Err(injected("timeout"))
            }
            Fault::LoseResponse => {
                self.inner.put_if_absent(name, data).await?;
                Err(injected("response lost after the write"))
            }
            Fault::None => self.inner.put_if_absent(name, data).await,
        }
    }

    async fn get(&self, name: &str, max_len: u64) -> coffer::Result<Vec<u8>> {
        match self.roll() {
            Fault::None | Fault::LoseResponse => self.inner.get(name, max_len).await,
            _ => Err(injected("connection reset while reading")),
        }
    }

    async fn get_range(&self, name: &str, range: Range<u64>) -> coffer::Result<Vec<u8>> {
        match self.roll() {
            Fault::CutBody => {
                let mut bytes = self.inner.get_range(name, range).await?;
                bytes.truncate(bytes.len() / 2);
                Ok(bytes)
            }
            Fault::FailBefore | Fault::TimeOut => Err(injected("connection reset while reading")),
            _ => self.inner.get_range(name, range).await,
        }
    }

    async fn list(&self, prefix: &str) -> coffer::Result<Vec<ObjectMeta>> {
        match self.roll() {
            Fault::FailBefore => Err(injected("listing failed")),
            _ => self.inner.list(prefix).await,
        }
    }

    async fn delete(&self, name: &str) -> coffer::Result<()> {
        self.inner.delete(name).await
    }

    async fn exists(&self, name: &str) -> coffer::Result<bool> {
        match self.roll() {
            Fault::FailBefore => Err(injected("head failed")),
            _ => self.inner.exists(name).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_survive_injected_storage_faults_and_stay_consistent() {
    set_cloud_env();
    let server = MariaDb::shared();
    for i in 0..4 {
        server.sql(&format!(
            "CREATE DATABASE faulty_{i}; USE faulty_{i}; CREATE TABLE t (id INT PRIMARY KEY, v TEXT); \
             INSERT INTO t SELECT seq, REPEAT(SHA2(seq * {}, 256), 3) FROM seq_1_to_6000;",
            i + 1
        ));
    }
    for (name, url) in [
        ("azure", Azurite::shared().repo_url("faults")),
        ("s3", Moto::shared().repo_url("faults")),
    ] {
        let clean = open_location(&url, &StorageOptions::default())
            .expect("storage")
            .storage;
        let faulty = Arc::new(FaultyStorage {
            inner: clean.clone(),
            state: AtomicU64::new(0x9e37_79b9_7f4a_7c15),
            injected: AtomicU64::new(0),
        });
        let retrying: Arc<dyn Storage> = Arc::new(coffer::storage::retry::RetryingStorage::new(
            faulty.clone(),
            coffer::storage::retry::RetryPolicy {
                attempts: 8,
                base_delay: Duration::from_millis(1),
                ..Default::default()
            },
        ));
        let init = InitOptions {
            pack_size: 1 << 20,
            chunker: coffer::repo::ChunkerParams::with_average(16 << 10).expect("chunker"),
        };
        let repo = Arc::new(
            Repository::init(retrying.clone(), &provider(), init)
                .await
                .expect("init under faults"),
        );
        for round in 0..3 {
            server.sql(&format!(
                "UPDATE faulty_{round}.t SET v = CONCAT(v, '{name}') WHERE id % 10 = 0"
            ));
            let report = backup(&repo, server, "faulty_*")
                .await
                .unwrap_or_else(|e| panic!("{name} backup {round} under faults: {e}"));
            assert!(
                report.snapshot.failed.is_empty(),
                "{name}: databases failed: {:?}",
                report.snapshot.failed
            );
        }
        let faults = faulty.injected.load(Ordering::Relaxed);
        eprintln!("{name}: {faults} faults injected over 3 backups");
        assert!(
            faults >= 8,
            "{name}: only {faults} faults injected, too few to mean anything"
        );
        // Verified without faults: every snapshot complete, every blob intact.
        let checked = Repository::open(clean, &provider()).await.expect("open");
        let report = coffer::check::check(&checked, coffer::check::DataCheck::All)
            .await
            .expect("check");
        assert!(report.problems.is_empty(), "{name}: {:?}", report.problems);
        assert_eq!(report.snapshots, 3);
        // And a restore through the faulty storage still succeeds.
        let (id, snapshot) = repo.find_snapshot("latest").await.expect("snapshot");
        let index = Arc::new(repo.load_index().await.expect("index"));
        let target_name = format!("faulty_2_{name}");
        restore_into(
            &repo,
            index,
            (&id, &snapshot),
            server,
            "faulty_2",
            &target_name,
        )
        .await
        .expect("restore under faults");
        assert_eq!(
            checksums(server, "faulty_2"),
            checksums(server, &target_name)
        );
    }
}
