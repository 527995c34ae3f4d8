//! The threat model (docs/FORMAT.md, "Threat model"), attack by attack (issue 18): what someone
//! who can write to the bucket, with no key at all, can try against a host that opens the
//! repository. Each test performs the attack and asserts that it fails safely, with a message
//! that names what happened.

mod common;

use std::io::{Read, Write};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// A local HTTP server that records every request that reaches it (its head, which carries
/// any `Authorization` header) and answers 500: the attacker's endpoint.
struct Recorder {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut head = vec![0u8; 8192];
                let n = stream.read(&mut head).unwrap_or(0);
                seen.lock()
                    .expect("lock")
                    .push(String::from_utf8_lossy(&head[..n]).into_owned());
                let _ = stream.write_all(
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Recorder { port, requests }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

/// Write `slot` (JSON) into the repository's key folder under a random id, as anyone with
/// write access to the bucket can; returns the id.
fn plant_slot(repo: &Repo, slot: &serde_json::Value) -> String {
    let id = format!("{:032x}", rand_u128());
    let path = repo.path().join("keys").join(&id);
    std::fs::write(&path, serde_json::to_vec_pretty(slot).expect("json")).expect("plant slot");
    id
}

fn rand_u128() -> u128 {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("urandom");
    u128::from_le_bytes(bytes)
}

/// `coffer ARGS` on `repo` with no passphrase, with `env`.
fn without_passphrase(repo: &Repo, args: &[&str], env: &[(String, String)]) -> Output {
    let mut cmd = coffer_cmd(args, Some(repo.path()), &[]);
    cmd.env_remove("COFFER_PASSWORD");
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("run coffer")
}

#[test]
fn a_planted_kms_slot_receives_no_token_and_no_signed_request() {
    let repo = Repo::new();
    let evil = Recorder::start();
    let authority = KeyVaultDouble::start();
    // A slot naming the attacker's server as the Key Vault, and one naming it as the AWS KMS
    // endpoint: opening would send the host's Entra ID bearer token (valid for every vault
    // the identity may use) or a SigV4-signed request with its access key id.
    let vault_host = format!("127.0.0.1:{}", evil.port);
    let azure = plant_slot(
        &repo,
        &serde_json::json!({
            "version": 1, "created": "2026-11-30T00:00:00Z", "hostname": "evil",
            "kind": "azure-keyvault", "vault": vault_host, "name": "k", "key_version": "v1",
            "algorithm": "RSA-OAEP-256", "allow_http": true, "wrapped_key": "AAAA"
        }),
    );
    let aws = plant_slot(
        &repo,
        &serde_json::json!({
            "version": 1, "created": "2026-11-30T00:00:00Z", "hostname": "evil",
            "kind": "aws-kms", "key_id": "k", "key_arn": "k", "region": "us-east-1",
            "endpoint": evil.endpoint(), "allow_http": true, "repository": "r",
            "wrapped_key": "AAAA"
        }),
    );
    // The host has Azure credentials (from a real token endpoint) and AWS credentials, and no
    // passphrase in its environment: it tries the KMS slots.
    let mut host: Vec<(String, String)> = authority
        .credentials("admin")
        .into_iter()
        .filter(|(k, _)| k != "COFFER_KMS_TRUST")
        .collect();
    host.push(("AWS_ACCESS_KEY_ID".into(), "AKIAHOSTKEY".into()));
    host.push(("AWS_SECRET_ACCESS_KEY".into(), "host-secret".into()));
    let attacked = without_passphrase(&repo, &["snapshots"], &host);
    let message = stderr(&attacked);
    assert!(!attacked.status.success(), "opened: {message}");
    assert_eq!(
        evil.requests(),
        Vec::<String>::new(),
        "the planted endpoint was called"
    );
    for planted in [&azure, &aws] {
        assert!(
            message.contains(planted.as_str()),
            "slot {planted} not named: {message}"
        );
    }
    assert!(
        message.contains("does not trust") && message.contains(&evil.endpoint()),
        "{message}"
    );
    assert!(
        !message.contains("host-secret"),
        "a secret in the message: {message}"
    );

    // The same host told to trust that endpoint does call it, token and signature included:
    // the recorder would have seen the attack.
    let mut trusting = host.clone();
    trusting.push(("COFFER_KMS_TRUST".into(), evil.endpoint()));
    let _ = without_passphrase(&repo, &["snapshots"], &trusting);
    let seen = evil.requests().join("\n---\n");
    assert!(
        seen.contains("unwrapkey") && seen.to_ascii_lowercase().contains("authorization: bearer"),
        "{seen}"
    );
    assert!(seen.contains("AKIAHOSTKEY"), "{seen}");
}

/// Runs `coffer ARGS` and kills it if it has not ended after `limit`: a planted slot must
/// not make an open run for hours.
fn bounded(repo: &Repo, args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
    let mut child = coffer_cmd(args, Some(repo.path()), env)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run coffer");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("coffer {args:?} still ran after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().expect("output")
}

fn passphrase_slot(memory_kib: u64, iterations: u64) -> serde_json::Value {
    serde_json::json!({
        "version": 1, "created": "2020-01-01T00:00:00Z", "hostname": "evil",
        "kind": "passphrase",
        "kdf": {"algorithm": "argon2id", "memory_kib": memory_kib, "iterations": iterations,
                "parallelism": 1, "salt": "AAAAAAAAAAAAAAAAAAAAAA=="},
        "wrapped_key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    })
}

#[test]
fn planted_passphrase_slots_cannot_stall_or_lock_out_an_open() {
    let repo = Repo::new();
    let state = tempfile::tempdir().expect("state dir");
    let state_dir = state.path().display().to_string();
    let fresh_host = [("COFFER_STATE_DIR", state_dir.as_str())];
    let real = {
        let throwaway = tempfile::tempdir().expect("state dir");
        let dir = throwaway.path().display().to_string();
        let listed: serde_json::Value = serde_json::from_str(&ok(repo.coffer_env(
            &["key", "list", "--json"],
            &[("COFFER_STATE_DIR", dir.as_str())],
        )))
        .expect("json");
        listed[0]["id"].as_str().expect("id").to_string()
    };
    // Fifty slots asking for 4 GiB × 64 passes each: hours of work, 4 GiB at a time.
    for _ in 0..50 {
        plant_slot(&repo, &passphrase_slot(4 << 20, 64));
    }
    let opened = bounded(&repo, &["snapshots"], &fresh_host, Duration::from_secs(120));
    assert!(opened.status.success(), "{}", stderr(&opened));

    // Cheap slots sort before the real one: an open by a host that has never opened this
    // repository stops after its budget of tries and names what it did not try.
    let other_host = tempfile::tempdir().expect("state dir");
    let other_dir = other_host.path().display().to_string();
    let new_host = [("COFFER_STATE_DIR", other_dir.as_str())];
    for _ in 0..20 {
        plant_slot(&repo, &passphrase_slot(8, 1));
    }
    let locked = bounded(&repo, &["snapshots"], &new_host, Duration::from_secs(120));
    let message = stderr(&locked);
    assert!(!locked.status.success(), "{message}");
    assert!(
        message.contains("not tried") && message.contains(&real) && message.contains("--key-slot"),
        "{message}"
    );
    // Naming the slot opens it; the host then tries it first and needs nothing named.
    let named = [
        ("COFFER_STATE_DIR", other_dir.as_str()),
        ("COFFER_KEY_SLOT", real.as_str()),
    ];
    ok(bounded(
        &repo,
        &["snapshots"],
        &named,
        Duration::from_secs(120),
    ));
    ok(bounded(
        &repo,
        &["snapshots"],
        &new_host,
        Duration::from_secs(120),
    ));
    // The host that opened it before the cheap slots were planted tries its slot first too.
    ok(bounded(
        &repo,
        &["snapshots"],
        &fresh_host,
        Duration::from_secs(120),
    ));
}

/// `coffer init` in a new folder; returns the repository and its id.
fn init_printing_id() -> (Repo, String) {
    let repo = Repo {
        dir: tempfile::tempdir().expect("dir"),
    };
    let out = ok(repo.coffer(&["init", "--chunk-size", "16KiB"]));
    let id = out
        .split_whitespace()
        .skip_while(|w| *w != "repository")
        .nth(1)
        .expect("init prints the repository id")
        .to_string();
    (repo, id)
}

#[test]
fn a_host_pinned_to_its_repository_refuses_a_swapped_one() {
    let (ours, our_id) = init_printing_id();
    let (theirs, _) = init_printing_id();
    // The attacker replaces config and key slots with those of a repository whose key they
    // hold (the passphrase is the same only to show that the pin, not the key, refuses it).
    std::fs::remove_dir_all(ours.path().join("keys")).expect("remove keys");
    std::fs::create_dir(ours.path().join("keys")).expect("keys");
    for slot in files_under(&theirs.path().join("keys")) {
        let name = slot.file_name().expect("name");
        std::fs::copy(&slot, ours.path().join("keys").join(name)).expect("copy slot");
    }
    std::fs::copy(theirs.path().join("config"), ours.path().join("config")).expect("copy config");
    let unpinned = ours.coffer(&["snapshots"]);
    assert!(
        unpinned.status.success(),
        "without a pin the swap goes unnoticed: {}",
        stderr(&unpinned)
    );
    let pinned = ours.coffer_env(&["snapshots"], &[("COFFER_REPOSITORY_ID", &our_id)]);
    let message = stderr(&pinned);
    assert!(!pinned.status.success(), "{message}");
    assert!(
        message.contains(&our_id) && message.contains("configured for"),
        "{message}"
    );
}

#[test]
fn repair_refuses_a_planted_oversized_pack_without_reading_it() {
    let repo = Repo::new();
    // 600 MiB, sparse: listed with its size, never read.
    let name = format!("ab{}", "0".repeat(62));
    let dir = repo.path().join("data").join("ab");
    std::fs::create_dir_all(&dir).expect("dir");
    let file = std::fs::File::create(dir.join(&name)).expect("create");
    file.set_len(600 << 20).expect("sparse");
    let out = repo.coffer(&["repair", "index"]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("more than the") && text.contains("not indexed"),
        "{text}"
    );
}

/// A write-only host chooses what a snapshot holds, DEFINERs included: a trigger or routine
/// restored with `DEFINER=root` runs as root on the restore server. From a snapshot no full key
/// is proven to have written, objects run as the restoring account unless the operator says
/// `--keep-definer`; the audit log says which.
#[test]
fn a_definer_from_a_write_only_snapshot_runs_as_the_restoring_account() {
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE td_db; USE td_db; CREATE TABLE t (id INT PRIMARY KEY, n INT); \
         CREATE TABLE log (id INT); \
         CREATE DEFINER=`root`@`localhost` TRIGGER tr AFTER INSERT ON t FOR EACH ROW INSERT INTO log VALUES (NEW.id); \
         CREATE DEFINER=`root`@`localhost` PROCEDURE p() SELECT 1; \
         INSERT INTO t VALUES (1, 1);",
    );
    let repo = Repo::new();
    let url = server.socket_url();
    let _key = backup_with_write_only_key(&repo, &url, &["--include", "td_db"]);
    let listed: serde_json::Value =
        serde_json::from_str(&ok(repo.coffer(&["snapshots", "--json"]))).expect("json");
    assert_eq!(listed[0]["writer"]["write_only"], true, "{listed:#}");

    // The restoring account is another one than the definer.
    let restorer = server.socket_url_as(TEST_USER);
    let as_restorer = [("COFFER_MYSQL_PASSWORD", TEST_USER_PASSWORD)];
    let definers = |db: &str| {
        server.sql(&format!(
            "SELECT GROUP_CONCAT(DEFINER ORDER BY DEFINER) FROM ( \
               SELECT DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{db}' \
               UNION ALL SELECT DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{db}') d"
        ))
    };
    let restored = repo.coffer_env(
        &[
            "restore", "--mysql", &restorer, "--db", "td_db", "--into", "td_wo",
        ],
        &as_restorer,
    );
    assert!(restored.status.success(), "{}", stderr(&restored));
    assert!(
        stderr(&restored).contains("run as the restoring account"),
        "{}",
        stderr(&restored)
    );
    assert_eq!(
        definers("td_wo").trim(),
        format!("{TEST_USER}@%,{TEST_USER}@%")
    );
    // The operator's explicit consent keeps them.
    ok(repo.coffer_env(
        &[
            "restore",
            "--mysql",
            &restorer,
            "--db",
            "td_db",
            "--into",
            "td_keep",
            "--keep-definer",
        ],
        &as_restorer,
    ));
    assert_eq!(definers("td_keep").trim(), "root@localhost,root@localhost");
    // A snapshot a full key wrote keeps them without being asked.
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "td_db"]));
    ok(repo.coffer_env(
        &[
            "restore", "--mysql", &restorer, "--db", "td_db", "--into", "td_full",
        ],
        &as_restorer,
    ));
    assert_eq!(definers("td_full").trim(), "root@localhost,root@localhost");
    // The audit log records the choice of each restore.
    let audit: serde_json::Value =
        serde_json::from_str(&ok(repo.coffer(&["audit", "--json"]))).expect("json");
    let choices: Vec<String> = audit
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["command"] == "restore" && r["outcome"]["status"] == "succeeded")
        .map(|r| r["definers"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(choices.len(), 3, "{audit:#}");
    assert!(
        choices[0].starts_with("replaced by the restoring account"),
        "{choices:?}"
    );
    assert_eq!(choices[1], "kept as stored");
    assert_eq!(choices[2], "kept as stored");
}

/// A write-only host holds the metadata key: it can write index files and prune marks that
/// authenticate. Here it claims a referenced tree lives in another pack and condemns the pack
/// that really holds it; an administrator's prune must keep that pack (its own header says what
/// it holds), and the database restores exactly.
#[tokio::test]
async fn a_forged_index_and_mark_cannot_make_prune_delete_data() {
    use coffer::repo::Repository;
    use coffer::repo::index::{IndexFile, IndexedBlob, IndexedPack};
    use coffer::repo::marks::{Condemned, CondemnedPack, PruneMark};
    use coffer::repo::pack::BlobKind;
    use coffer::storage::local::LocalStorage;

    let server = MariaDb::shared();
    for db in ["fa_one", "fa_two"] {
        server.sql(&format!(
            "CREATE DATABASE {db}; USE {db}; CREATE TABLE t (id INT PRIMARY KEY, v TEXT); \
             INSERT INTO t SELECT seq, SHA2(seq, 256) FROM seq_1_to_500;"
        ));
    }
    let repo = Repo::new();
    let url = server.socket_url();
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "fa_one"]));
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "fa_two"]));
    let expected = checksums(server, "fa_one");

    let storage = Arc::new(LocalStorage::new(repo.path()));
    let admin = Repository::open(storage.clone(), &common::library::provider())
        .await
        .expect("open");
    let (_, snapshot) = admin
        .snapshots()
        .await
        .expect("snapshots")
        .into_iter()
        .find(|(_, s)| s.databases.iter().any(|d| d.name == "fa_one"))
        .expect("fa_one's snapshot");
    let tree = snapshot.databases[0].tree;
    let index = admin.load_index().await.expect("index");
    let real = index.get(&tree).expect("indexed");
    let (other, other_size) = *index
        .packs()
        .find(|(p, _)| *p != real.pack)
        .expect("a second pack");
    let real_size = index
        .packs()
        .find(|(p, _)| *p == real.pack)
        .map(|(_, s)| *s)
        .expect("size");

    let (attacker, _) = write_only_attacker(&repo).await;
    // Every blob of the pack claimed elsewhere: nothing seems to need it any more.
    let claimed: Vec<IndexedBlob> = index
        .entries()
        .filter(|(_, location)| location.pack == real.pack)
        .map(|(id, location)| IndexedBlob {
            id: *id,
            kind: location.kind,
            offset: 0,
            length: location.length,
            raw_length: location.raw_length,
        })
        .collect();
    assert!(
        claimed
            .iter()
            .any(|b| b.id == tree && b.kind == BlobKind::Tree)
    );
    attacker
        .save_index(&IndexFile {
            version: 1,
            packs: vec![IndexedPack {
                id: other,
                size: other_size,
                blobs: claimed,
            }],
        })
        .await
        .expect("forged index");
    attacker
        .save_prune_mark(&PruneMark {
            version: 1,
            created: jiff::Timestamp::now(),
            host: "attacker".into(),
            packs: vec![CondemnedPack {
                id: real.pack,
                size: real_size,
                why: Condemned::Unused,
            }],
        })
        .await
        .expect("forged mark");

    let pruned = repo.coffer(&["prune", "--grace", "0s", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&stdout(&pruned)).expect("json");
    let hex = real.pack.to_hex();
    assert!(
        repo.path().join("data").join(&hex[..2]).join(&hex).exists(),
        "the pack holding fa_one's tree was deleted: {report:#}"
    );
    assert!(
        report["problems"].to_string().contains(&real.pack.short()),
        "{report:#}"
    );
    // The restore passes over the forged location for the real one.
    restore_copy(&repo, server, "latest", "fa_one", "fa_one_back");
    assert_eq!(checksums(server, "fa_one_back"), expected);
}

/// A write-only host writes snapshots and summaries that authenticate. A snapshot dated a month
/// ahead would be "latest" and make `forget --keep-last 1` remove the real newest one; a summary
/// misdating a real snapshot would make it look old. Retention, `latest` and listings decide on
/// what the snapshots themselves say, and leave out a snapshot claiming to be from the future.
#[tokio::test]
async fn forged_snapshots_and_summaries_cannot_steer_forget() {
    use coffer::crypto::{Role, pack_body};
    use coffer::repo::ids::storage_hash;
    use coffer::repo::summary::SnapshotSummary;
    use coffer::storage::Storage;

    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE fs_db; USE fs_db; CREATE TABLE t (id INT PRIMARY KEY, v TEXT); \
         INSERT INTO t SELECT seq, SHA2(seq, 256) FROM seq_1_to_300;",
    );
    let repo = Repo::new();
    let url = server.socket_url();
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "fs_db"]));
    server.sql("UPDATE fs_db.t SET v = 'newest' WHERE id = 1;");
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "fs_db", "--full"]));
    let newest = latest_snapshot(&repo);
    let expected = checksums(server, "fs_db");

    let (attacker, storage) = write_only_attacker(&repo).await;
    let snapshots = attacker.snapshots().await.expect("snapshots");
    let (newest_id, newest_snapshot) = snapshots.last().cloned().expect("a snapshot");
    assert!(newest.starts_with(&newest_id.short()));
    // A copy of the oldest snapshot dated a month ahead.
    let mut future = snapshots[0].1.clone();
    future.time = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 30);
    future.finished = future.time;
    attacker
        .save_snapshot(&future)
        .await
        .expect("forged snapshot");
    // A summary of the real newest snapshot dated six years back.
    let mut misdated = SnapshotSummary::of(&newest_id, &newest_snapshot);
    misdated.time = "2020-01-01T00:00:00Z".parse().expect("time");
    misdated.finished = misdated.time;
    let json = serde_json::to_vec(&misdated).expect("json");
    let sealed = pack_body(attacker.keys(), Role::Summary, &json).expect("seal");
    storage
        .put_if_absent(
            &format!("summaries/{}", hex::encode(storage_hash(&sealed))),
            &sealed,
        )
        .await
        .expect("forged summary");
    // Two summaries now name the newest snapshot: the honest one goes, as an attacker with
    // delete rights would make it.
    for file in files_under(&repo.path().join("summaries")) {
        let bytes = std::fs::read(&file).expect("summary");
        if bytes != sealed {
            let opened =
                coffer::crypto::unpack_body(attacker.keys(), Role::Summary, &bytes, 1 << 20, &"s")
                    .expect("open");
            let summary: SnapshotSummary = serde_json::from_slice(&opened).expect("summary");
            if summary.snapshot == newest_id.to_hex() {
                std::fs::remove_file(&file).expect("remove");
            }
        }
    }

    let forgot = repo.coffer(&["forget", "--keep-last", "1"]);
    assert!(forgot.status.success(), "{}", stderr(&forgot));
    let left: serde_json::Value =
        serde_json::from_str(&ok(repo.coffer(&["snapshots", "--json"]))).expect("json");
    let ids: Vec<&str> = left
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids, [newest_id.to_hex().as_str()], "{left:#}");
    restore_copy(&repo, server, "latest", "fs_db", "fs_db_back");
    assert_eq!(checksums(server, "fs_db_back"), expected);
    let check = repo.coffer(&["check"]);
    assert!(
        stdout(&check).contains("claims the time") || stderr(&check).contains("claims the time"),
        "{}{}",
        stdout(&check),
        stderr(&check)
    );
}

/// Whoever can delete objects can remove the newest snapshots (or put back an older copy of the
/// repository): the host remembers the newest snapshot it saw, outside the storage, and every
/// command says so when it is gone; `check` fails until an operator accepts it.
#[test]
fn a_rolled_back_repository_is_noticed() {
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE rb_db; USE rb_db; CREATE TABLE t (id INT PRIMARY KEY); \
         INSERT INTO t VALUES (1);",
    );
    let repo = Repo::new();
    let url = server.socket_url();
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "rb_db"]));
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "rb_db", "--full"]));
    let newest = latest_snapshot(&repo);
    ok(repo.coffer(&["check"]));
    // The attacker deletes the newest snapshot.
    let object = files_under(&repo.path().join("snapshots"))
        .into_iter()
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&newest))
        })
        .expect("the newest snapshot's object");
    std::fs::remove_file(object).expect("delete");
    let listed = repo.coffer(&["snapshots"]);
    assert!(listed.status.success());
    assert!(
        stderr(&listed).contains("went backwards") && stderr(&listed).contains(&newest),
        "{}",
        stderr(&listed)
    );
    // A later backup does not hide it.
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "rb_db"]));
    let checked = repo.coffer(&["check"]);
    assert!(!checked.status.success());
    assert!(
        stdout(&checked).contains("went backwards"),
        "{}",
        stdout(&checked)
    );
    ok(repo.coffer(&["check", "--accept-rollback"]));
    ok(repo.coffer(&["check"]));
    // This host's own forget removing snapshots is no rollback.
    ok(repo.coffer(&["forget", "--keep-last", "1"]));
    ok(repo.coffer(&["check"]));
}

/// Audit records are separate objects: someone with delete rights removes one unseen, and a
/// write-only key writes records that authenticate. Records are chained, and a full key's are
/// marked: `audit --verify` names a deleted record (a gap) and a record falsely claiming to be a
/// full key's.
#[tokio::test]
async fn deleted_and_forged_audit_records_are_named() {
    use coffer::crypto::{Role, pack_body};
    use coffer::repo::audit::{AuditOutcome, AuditRecord};
    use coffer::repo::ids::storage_hash;
    use coffer::storage::Storage;

    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE au_db; USE au_db; CREATE TABLE t (id INT PRIMARY KEY); \
         INSERT INTO t VALUES (1);",
    );
    let repo = Repo::new();
    let url = server.socket_url();
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "au_db"]));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    ok(repo.coffer(&["dump", "--db", "au_db"]));
    let verified = ok(repo.coffer(&["audit", "--verify"]));
    assert!(
        verified.contains("4 audit records: 4 written with a full key"),
        "{verified}"
    );

    // A record written with a write-only key has no mark, and says so; one claiming a mark it
    // cannot have is forged.
    let (attacker, storage) = write_only_attacker(&repo).await;
    let forged = AuditRecord {
        version: 1,
        operation: "00".repeat(16),
        time: jiff::Timestamp::now(),
        user: "dba".into(),
        host: "admin-host".into(),
        command: "restore".into(),
        arguments: vec!["restore".into()],
        reason: Some("routine".into()),
        snapshot: None,
        database: Some("au_db".into()),
        tables: Vec::new(),
        where_: None,
        server: None,
        target_database: None,
        outcome: AuditOutcome::Succeeded,
        counts: Default::default(),
        definers: None,
        previous: None,
        full_key_mark: Some("ab".repeat(32)),
    };
    let sealed = pack_body(
        attacker.keys(),
        Role::Audit,
        &serde_json::to_vec(&forged).expect("json"),
    )
    .expect("seal");
    storage
        .put_if_absent(
            &format!("audit/{}", hex::encode(storage_hash(&sealed))),
            &sealed,
        )
        .await
        .expect("forged record");
    let out = repo.coffer(&["audit", "--verify"]);
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("does not verify") && stdout(&out).contains("dba@admin-host"),
        "{}",
        stdout(&out)
    );

    // The first record deleted: the record after it names it.
    let mut records: Vec<(std::time::SystemTime, std::path::PathBuf)> =
        files_under(&repo.path().join("audit"))
            .into_iter()
            .map(|p| {
                (
                    std::fs::metadata(&p)
                        .and_then(|m| m.modified())
                        .expect("time"),
                    p,
                )
            })
            .collect();
    records.sort();
    std::fs::remove_file(&records[0].1).expect("delete");
    let out = repo.coffer(&["audit", "--verify"]);
    assert!(!out.status.success());
    assert!(stdout(&out).contains("which is gone"), "{}", stdout(&out));
}

/// Another process of the same user reads `/proc/<pid>/environ` (or attaches with ptrace) to
/// take the secrets coffer was started with. coffer makes itself non-dumpable, which the
/// kernel answers by refusing both to anyone but root. Root can always read them, so as root
/// both processes run as `nobody`.
#[test]
fn another_process_of_the_same_user_cannot_read_the_environment() {
    let root = unsafe_free_uid() == 0;
    let as_user = |program: &str| -> std::process::Command {
        if root {
            let mut cmd = std::process::Command::new("setpriv");
            cmd.args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                program,
            ]);
            cmd
        } else {
            std::process::Command::new(program)
        }
    };
    let repo = Repo::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // A server that accepts and never answers: coffer waits in its handshake.
    let reached = Arc::new(Mutex::new(false));
    let seen = Arc::clone(&reached);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            *seen.lock().expect("lock") = true;
            held.push(stream);
        }
    });
    let state = repo.path().join("host-state");
    let url = format!("mysql://backup@127.0.0.1:{port}/");
    let secret = "mysql-secret-4242";
    // A copy of the binary `nobody` can reach, wherever the checkout is.
    let binary = repo.path().join("coffer");
    std::fs::copy(env!("CARGO_BIN_EXE_coffer"), &binary).expect("copy coffer");
    let _ = std::process::Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(repo.path())
        .status();
    let mut coffer = as_user(&binary.display().to_string());
    coffer
        .args(["backup", "--mysql", &url])
        .env("COFFER_REPO", repo.path())
        .env("COFFER_PASSWORD", common::PASSWORD)
        .env("COFFER_MYSQL_PASSWORD", secret)
        .env("COFFER_STATE_DIR", &state)
        .env("COFFER_NO_CACHE", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = coffer.spawn().expect("coffer");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !*reached.lock().expect("lock") {
        assert!(Instant::now() < deadline, "coffer never connected");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The process holding the secret is coffer itself (under setpriv, its exec'd child).
    let pid = child.id();
    let read_environ = |pid: u32| {
        as_user("cat")
            .arg(format!("/proc/{pid}/environ"))
            .output()
            .expect("cat")
    };
    let stolen = read_environ(pid);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        !String::from_utf8_lossy(&stolen.stdout).contains(secret),
        "another process of the same user read coffer's environment"
    );
    assert!(!stolen.status.success());
    // The same read of an ordinary process of that user works: the test can see the attack.
    let mut plain = as_user("sleep")
        .arg("5")
        .env("SOME_SECRET", secret)
        .spawn()
        .expect("sleep");
    std::thread::sleep(Duration::from_millis(200));
    let read = read_environ(plain.id());
    let _ = plain.kill();
    let _ = plain.wait();
    assert!(String::from_utf8_lossy(&read.stdout).contains(secret));
}

/// The uid this test runs as (from /proc, without unsafe code).
fn unsafe_free_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next())
                .and_then(|uid| uid.parse().ok())
        })
        .unwrap_or(0)
}

/// A write-only key made for `repo` (as `coffer key add --write-only` makes it), opened as a
/// stolen backup host would, with the storage it writes to.
async fn write_only_attacker(
    repo: &Repo,
) -> (
    coffer::repo::Repository,
    Arc<coffer::storage::local::LocalStorage>,
) {
    let dir = tempfile::tempdir().expect("temp");
    let key = dir.path().join("backup-host.key").display().to_string();
    ok(repo.coffer(&["key", "add", "--write-only", "--output", &key]));
    let storage = Arc::new(coffer::storage::local::LocalStorage::new(repo.path()));
    let attacker = coffer::repo::Repository::open_write_only(
        storage.clone(),
        &std::fs::read_to_string(&key).expect("key file"),
        &coffer::repo::OpenOptions::default(),
    )
    .await
    .expect("write-only open");
    (attacker, storage)
}
