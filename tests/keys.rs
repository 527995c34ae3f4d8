//! `coffer key` and KMS-wrapped key slots (issue 9): passphrase slots added, changed and
//! removed; a repository with only an AWS KMS slot (moto) backed up and restored with no
//! passphrase anywhere; a KMS that refuses, named with the slot, the key and the cause.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::Output;

use common::*;

fn slots(repo: &Repo, env: &[(&str, &str)]) -> Vec<serde_json::Value> {
    let listed: serde_json::Value =
        serde_json::from_str(&ok(repo.coffer_env(&["key", "list", "--json"], env))).expect("json");
    listed.as_array().expect("list").clone()
}

#[test]
fn passphrase_slots_are_added_changed_and_removed_without_touching_data() {
    let repo = Repo::new();
    let original = slots(&repo, &[]);
    assert_eq!(original.len(), 1);
    assert_eq!(original[0]["kind"], "passphrase");
    assert_eq!(original[0]["opened_this_session"], true);
    let first_id = original[0]["id"].as_str().expect("id").to_string();
    let not_keys = |repo: &Repo| -> Vec<(String, String)> {
        repo.fingerprint()
            .into_iter()
            .filter(|(name, _)| !name.starts_with("keys/") && !name.starts_with("audit/"))
            .collect()
    };
    let data_before = not_keys(&repo);

    ok(repo.coffer_env(
        &["key", "add", "--passphrase", "--reason", "second operator"],
        &[("COFFER_NEW_PASSWORD", "second passphrase")],
    ));
    let second = [("COFFER_PASSWORD", "second passphrase")];
    let listed = slots(&repo, &second);
    assert_eq!(listed.len(), 2);
    let second_id = listed
        .iter()
        .find(|s| s["opened_this_session"] == true)
        .and_then(|s| s["id"].as_str())
        .expect("the new slot opened the repository")
        .to_string();
    assert_ne!(second_id, first_id);

    // passwd replaces the slot that opened the repository.
    ok(repo.coffer_env(
        &["key", "passwd"],
        &[
            ("COFFER_PASSWORD", "second passphrase"),
            ("COFFER_NEW_PASSWORD", "third passphrase"),
        ],
    ));
    let refused = repo.coffer_env(&["snapshots"], &second);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("no key slot"),
        "{}",
        stderr(&refused)
    );
    let third = [("COFFER_PASSWORD", "third passphrase")];
    let listed = slots(&repo, &third);
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|s| s["id"] != second_id.as_str()));

    // The last slot that can open the repository stays.
    let third_id = listed
        .iter()
        .find(|s| s["opened_this_session"] == true)
        .and_then(|s| s["id"].as_str())
        .expect("third")
        .to_string();
    ok(repo.coffer_env(&["key", "remove", &third_id[..8]], &[]));
    let last = repo.coffer(&["key", "remove", &first_id]);
    assert!(!last.status.success());
    assert!(stderr(&last).contains("last one"), "{}", stderr(&last));
    ok(repo.coffer(&["snapshots"]));

    // Nothing but key slots changed, and key slots are private to their owner.
    assert_eq!(not_keys(&repo), data_before);
    for slot in files_under(&repo.path().join("keys")) {
        let mode = std::fs::metadata(&slot).expect("slot").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", slot.display());
    }
    let audit = ok(repo.coffer(&["audit", "--json"]));
    for command in ["key add", "key passwd", "key remove"] {
        assert!(audit.contains(command), "{command} not audited: {audit}");
    }
    assert!(audit.contains("second operator"));
    assert!(
        !audit.contains("second passphrase"),
        "a passphrase reached the audit log"
    );
}

/// `coffer` with AWS credentials for `moto` and no passphrase at all.
/// `trust` is the KMS endpoints this host trusts (`COFFER_KMS_TRUST`): the test doubles are
/// local plain-HTTP servers, which no host trusts unless told to.
fn without_passphrase(
    repo: &Repo,
    trust: &str,
    args: &[&str],
    credentials: (&str, &str),
) -> Output {
    coffer_cmd(args, Some(repo.path()), &[("COFFER_KMS_TRUST", trust)])
        .env_remove("COFFER_PASSWORD")
        .env("AWS_ACCESS_KEY_ID", credentials.0)
        .env("AWS_SECRET_ACCESS_KEY", credentials.1)
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("run coffer")
}

fn kms_url(moto: &Moto, key: &str) -> String {
    format!(
        "aws-kms://{key}?region=us-east-1&endpoint={}&allow-http=true",
        moto.endpoint()
    )
}

const CREATE_KEY: &str = r#"
import boto3, os
kms = boto3.client("kms", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")
print(kms.create_key(Description="coffer test")["KeyMetadata"]["KeyId"])
"#;

#[test]
fn a_repository_with_only_a_kms_slot_backs_up_and_restores_with_no_passphrase() {
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE kms_db; USE kms_db; CREATE TABLE t (id INT PRIMARY KEY, v TEXT); \
         INSERT INTO t SELECT seq, SHA2(seq, 256) FROM seq_1_to_2000;",
    );
    let moto = Moto::shared();
    let key = moto.boto3(CREATE_KEY);
    let url = kms_url(moto, &key);
    let trust = moto.endpoint();
    let creds = ("testing", "testing");
    // An empty folder: `init --kms` makes the repository, with no passphrase slot at all.
    let repo = Repo {
        dir: tempfile::tempdir().expect("dir"),
    };
    let init = without_passphrase(
        &repo,
        &trust,
        &["init", "--chunk-size", "16KiB", "--kms", &url],
        creds,
    );
    assert!(init.status.success(), "{}", stderr(&init));
    let listed: serde_json::Value = serde_json::from_str(&stdout(&without_passphrase(
        &repo,
        &trust,
        &["key", "list", "--json"],
        creds,
    )))
    .expect("json");
    assert_eq!(listed[0]["kind"], "aws-kms", "{listed:#}");
    assert!(listed[0]["key"].as_str().unwrap_or("").contains(&key));

    let url_mysql = server.socket_url();
    let backup = without_passphrase(
        &repo,
        &trust,
        &["backup", "--mysql", &url_mysql, "--include", "kms_db"],
        creds,
    );
    assert!(backup.status.success(), "{}", stderr(&backup));
    let restore = without_passphrase(
        &repo,
        &trust,
        &[
            "restore",
            "--mysql",
            &url_mysql,
            "--db",
            "kms_db",
            "--into",
            "kms_db_back",
        ],
        creds,
    );
    assert!(restore.status.success(), "{}", stderr(&restore));
    assert_eq!(
        checksums(server, "kms_db"),
        checksums(server, "kms_db_back")
    );

    // Rotation wraps the key again and drops the old slot.
    let old_id = listed[0]["id"].as_str().expect("id").to_string();
    let rotated = without_passphrase(&repo, &trust, &["key", "rotate", &old_id], creds);
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let after: serde_json::Value = serde_json::from_str(&stdout(&without_passphrase(
        &repo,
        &trust,
        &["key", "list", "--json"],
        creds,
    )))
    .expect("json");
    assert_eq!(after.as_array().map(Vec::len), Some(1));
    assert_ne!(after[0]["id"], old_id.as_str());

    // A slot pointed at another key is refused by the KMS, and the error names slot and key.
    let other = moto.boto3(CREATE_KEY);
    let slot_path = files_under(&repo.path().join("keys"))
        .into_iter()
        .next()
        .expect("slot");
    let original = std::fs::read_to_string(&slot_path).expect("slot");
    std::fs::write(&slot_path, original.replace(&key, &other)).expect("tamper");
    let refused = without_passphrase(&repo, &trust, &["snapshots"], creds);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(
        message.contains(&other) && message.contains("aws-kms slot") && message.contains("refused"),
        "{message}"
    );
    std::fs::write(&slot_path, original).expect("untamper");
    let back = without_passphrase(&repo, &trust, &["snapshots"], creds);
    assert!(back.status.success(), "{}", stderr(&back));
}

#[test]
fn a_host_without_decrypt_permission_is_told_which_slot_key_and_permission() {
    // Seven unauthenticated set-up calls, then IAM decides every request.
    let moto = Moto::with_iam(7);
    let (key, users) = moto.kms_key_and_users(&[
        ("admin", &["kms:Encrypt", "kms:Decrypt"]),
        ("writer", &["kms:Encrypt"]),
    ]);
    let key = key.as_str();
    let [(admin_id, admin_secret), (writer_id, writer_secret)] = users.as_slice() else {
        panic!("two users: {users:?}");
    };
    let (admin_id, admin_secret) = (admin_id.as_str(), admin_secret.as_str());
    let (writer_id, writer_secret) = (writer_id.as_str(), writer_secret.as_str());
    let repo = Repo::new();
    let url = kms_url(&moto, key);
    let trust = moto.endpoint();
    let added = coffer_cmd(
        &["key", "add", "--kms", &url],
        Some(repo.path()),
        &[("COFFER_KMS_TRUST", &trust)],
    )
    .env("AWS_ACCESS_KEY_ID", admin_id)
    .env("AWS_SECRET_ACCESS_KEY", admin_secret)
    .output()
    .expect("run coffer");
    assert!(added.status.success(), "{}", stderr(&added));
    let opened = without_passphrase(&repo, &trust, &["snapshots"], (admin_id, admin_secret));
    assert!(opened.status.success(), "{}", stderr(&opened));

    let refused = without_passphrase(&repo, &trust, &["snapshots"], (writer_id, writer_secret));
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(
        message.contains("aws-kms slot")
            && message.contains(key)
            && message.contains("AccessDenied")
            && message.contains("kms:Decrypt"),
        "{message}"
    );
    assert!(
        !message.contains(writer_secret),
        "a secret reached the error"
    );
}

/// A stand-in for AWS KMS that answers every request as the KMS JSON API documents a
/// disabled key (moto does not model key states in Decrypt).
fn disabled_kms() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let reply = r#"{"__type":"DisabledException","message":"arn:aws:kms:us-east-1:123456789012:key/k is disabled."}"#;
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    format!("http://127.0.0.1:{port}")
}

#[test]
fn a_disabled_key_gets_a_clear_error() {
    let moto = Moto::shared();
    let key = moto.boto3(CREATE_KEY);
    let repo = Repo::new();
    let disabled = disabled_kms();
    let trust = format!("{},{disabled}", moto.endpoint());
    let creds = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("COFFER_KMS_TRUST", &trust),
    ];
    ok(repo.coffer_env(&["key", "add", "--kms", &kms_url(moto, &key)], &creds));
    // The same slot, now answered by a KMS whose key is disabled.
    let slot_path = files_under(&repo.path().join("keys"))
        .into_iter()
        .find(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .contains("aws-kms")
        })
        .expect("kms slot");
    let slot = std::fs::read_to_string(&slot_path).expect("slot");
    std::fs::write(&slot_path, slot.replace(&moto.endpoint(), &disabled)).expect("edit");
    let refused = without_passphrase(&repo, &trust, &["snapshots"], ("testing", "testing"));
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(
        message.contains("DisabledException")
            && message.contains("enable it")
            && message.contains(&key),
        "{message}"
    );
}

fn with_env(repo: &Repo, args: &[&str], env: &[(String, String)], passphrase: bool) -> Output {
    let mut cmd = coffer_cmd(args, Some(repo.path()), &[]);
    if !passphrase {
        cmd.env_remove("COFFER_PASSWORD");
    }
    for var in [
        "AZURE_CLIENT_SECRET",
        "AZURE_FEDERATED_TOKEN_FILE",
        "IDENTITY_ENDPOINT",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("run coffer")
}

#[test]
fn azure_key_vault_slots_wrap_unwrap_rotate_and_refuse_clearly() {
    let vault = KeyVaultDouble::start();
    let admin = vault.credentials("admin");
    let repo = Repo::new();
    let added = with_env(
        &repo,
        &["key", "add", "--kms", &vault.key_url("coffer")],
        &admin,
        true,
    );
    assert!(added.status.success(), "{}", stderr(&added));
    let opened = with_env(&repo, &["key", "list", "--json"], &admin, false);
    assert!(opened.status.success(), "{}", stderr(&opened));
    let listed: serde_json::Value = serde_json::from_str(&stdout(&opened)).expect("json");
    let slot = listed
        .as_array()
        .expect("list")
        .iter()
        .find(|s| s["kind"] == "azure-keyvault")
        .expect("a Key Vault slot")
        .clone();
    assert_eq!(slot["opened_this_session"], true, "{listed:#}");
    let first_key = slot["key"].as_str().expect("key").to_string();

    // Rotation wraps under the key's newest version.
    vault.control("coffer", "rotate");
    let id = slot["id"].as_str().expect("id");
    let rotated = with_env(&repo, &["key", "rotate", id], &admin, false);
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let listed: serde_json::Value = serde_json::from_str(&stdout(&with_env(
        &repo,
        &["key", "list", "--json"],
        &admin,
        false,
    )))
    .expect("json");
    let rotated_key = listed
        .as_array()
        .expect("list")
        .iter()
        .find(|s| s["kind"] == "azure-keyvault")
        .and_then(|s| s["key"].as_str())
        .expect("rotated slot")
        .to_string();
    assert_ne!(
        rotated_key, first_key,
        "the slot still names the old key version"
    );

    // A host whose identity may only wrap, a wrong client secret, a disabled key.
    let writer = vault.credentials("writer");
    let refused = with_env(&repo, &["snapshots"], &writer, false);
    let message = stderr(&refused);
    assert!(!refused.status.success());
    assert!(
        message.contains("azure-keyvault slot")
            && message.contains("ForbiddenByRbac")
            && message.contains("Key Vault Crypto Service Encryption User"),
        "{message}"
    );
    let mut wrong = admin.clone();
    wrong[3].1 = "not-the-secret".into();
    let refused = with_env(&repo, &["snapshots"], &wrong, false);
    let message = stderr(&refused);
    assert!(
        message.contains("refused a token") && !message.contains("not-the-secret"),
        "{message}"
    );
    vault.control("coffer", "disable");
    let refused = with_env(&repo, &["snapshots"], &admin, false);
    let message = stderr(&refused);
    assert!(
        message.contains("disabled") && message.contains("KeyDisabled"),
        "{message}"
    );
    vault.control("coffer", "enable");
    let back = with_env(&repo, &["snapshots"], &admin, false);
    assert!(back.status.success(), "{}", stderr(&back));
}

#[test]
fn a_write_only_key_backs_up_deduplicating_but_reads_nothing() {
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE wo_db; USE wo_db; CREATE TABLE t (id INT PRIMARY KEY, v TEXT); \
         INSERT INTO t SELECT seq, REPEAT(SHA2(seq, 256), 2) FROM seq_1_to_4000;",
    );
    let url = server.socket_url();
    let repo = Repo::new();
    // A full-key backup first, written the way coffer 0.2 wrote index files too.
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "wo_db"]));
    let key_file = repo.path().join("..").join(format!(
        "{}-backup-host.key",
        repo.path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("repo")
    ));
    let _cleanup = TempFile(key_file.clone());
    let key = key_file.display().to_string();
    ok(repo.coffer(&["key", "add", "--write-only", "--output", &key]));
    let mode = std::fs::metadata(&key_file)
        .expect("key file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let again = repo.coffer(&["key", "add", "--write-only", "--output", &key]);
    assert!(
        !again.status.success(),
        "an existing key file was overwritten"
    );
    let listed = slots(&repo, &[]);
    assert!(
        listed
            .iter()
            .any(|s| s["kind"] == "write-only" && s["may"] == "write-only")
    );

    let write_only = |args: &[&str]| {
        coffer_cmd(args, Some(repo.path()), &[("COFFER_KEY_FILE", &key)])
            .env_remove("COFFER_PASSWORD")
            .output()
            .expect("run coffer")
    };
    server.sql("UPDATE wo_db.t SET v = 'changed' WHERE id <= 10;");
    let expected = checksums(server, "wo_db");
    let backup = write_only(&["backup", "--mysql", &url, "--include", "wo_db"]);
    assert!(backup.status.success(), "{}", stderr(&backup));
    let listed: serde_json::Value =
        serde_json::from_str(&ok(repo.coffer(&["snapshots", "--json"]))).expect("json");
    let stored = |i: usize| {
        listed[i]["stats"]["bytes_stored_new"]
            .as_u64()
            .unwrap_or(u64::MAX)
    };
    assert!(
        stored(1) * 4 < stored(0),
        "the write-only backup did not deduplicate: {} vs {} bytes: {listed:#}",
        stored(1),
        stored(0)
    );

    // Nothing private opens with the write-only key, not even what it just wrote.
    for args in [
        vec![
            "restore",
            "--mysql",
            &url,
            "--db",
            "wo_db",
            "--into",
            "wo_db_never",
        ],
        vec!["dump", "--db", "wo_db"],
        vec!["ls", "latest", "wo_db"],
        vec![
            "history", "--mysql", &url, "--db", "wo_db", "--table", "t", "--where", "id = 1",
        ],
        vec!["audit"],
    ] {
        let refused = write_only(&args);
        assert!(
            !refused.status.success(),
            "{args:?} worked with a write-only key"
        );
        assert!(
            stderr(&refused).contains("write-only key"),
            "{args:?}: {}",
            stderr(&refused)
        );
    }
    let removed = write_only(&["key", "add", "--passphrase"]);
    assert!(!removed.status.success());

    // A stolen backup host must not destroy the history it writes to, nor change keys: every
    // command but those docs/FORMAT.md lists for write-only keys is refused before it acts.
    let snapshots_before = ok(repo.coffer(&["snapshots", "--json"]));
    let full_slot = slots(&repo, &[])
        .iter()
        .find(|s| s["kind"] == "passphrase")
        .and_then(|s| s["id"].as_str())
        .expect("a passphrase slot")
        .to_string();
    for args in [
        vec!["forget", "--keep-last", "1"],
        vec!["forget", "--keep-last", "1", "--prune"],
        vec!["prune"],
        vec!["prune", "--dry-run"],
        vec!["check"],
        vec!["check", "--read-data"],
        vec!["repair", "index"],
        vec!["stats"],
        vec!["verify-restore", "--mysql", &url, "--db", "wo_db"],
        vec!["key", "remove", &full_slot],
        vec!["key", "passwd"],
        vec!["key", "rotate", &full_slot],
        vec!["key", "add", "--write-only", "--output", "/dev/null"],
    ] {
        let refused = write_only(&args);
        assert!(
            !refused.status.success(),
            "{args:?} worked with a write-only key"
        );
        assert!(
            stderr(&refused).contains("needs a full key"),
            "{args:?}: {}",
            stderr(&refused)
        );
    }
    assert_eq!(
        ok(repo.coffer(&["snapshots", "--json"])),
        snapshots_before,
        "a refused command changed the snapshots"
    );
    assert!(
        slots(&repo, &[])
            .iter()
            .any(|s| s["id"].as_str() == Some(full_slot.as_str())),
        "a refused command removed a key slot"
    );
    // What a write-only host may run: the backups it writes and what the metadata key shows.
    for args in [
        vec!["snapshots"],
        vec!["ls"],
        vec!["sla", "--within", "1d"],
        vec!["key", "list"],
    ] {
        let allowed = write_only(&args);
        assert!(allowed.status.success(), "{args:?}: {}", stderr(&allowed));
    }

    // The write-only host's audit records are readable with the full key only.
    let audit: serde_json::Value =
        serde_json::from_str(&ok(repo.coffer(&["audit", "--json"]))).expect("json");
    let backups = audit
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["command"] == "backup" && r["outcome"]["status"] == "succeeded")
        .count();
    assert_eq!(
        backups, 2,
        "both backups, one by the write-only host: {audit:#}"
    );
    // A full key restores the write-only host's snapshot exactly and checks everything.
    ok(repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--db",
        "wo_db",
        "--into",
        "wo_db_back",
    ]));
    assert_eq!(checksums(server, "wo_db_back"), expected);
    let check = ok(repo.coffer(&["check", "--read-data"]));
    assert!(check.contains("no problems"), "{check}");
}

/// Removes a file when dropped.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
