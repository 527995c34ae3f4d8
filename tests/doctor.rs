//! `coffer doctor` against real components: the tests' MariaDB with the backup account's
//! privileges removed one by one (each removal named by its own line), a server without a
//! binary log, a local folder and an S3 store (moto with IAM) whose credentials may not delete,
//! and a KMS key this host may wrap with but not unwrap.

mod common;

use std::process::Output;

use common::*;
use serde_json::Value;

const DOCTOR_PASSWORD: &str = "doctor-Secret-9f3";

fn doctor(args: &[&str], env: &[(&str, &str)]) -> (Output, Value) {
    let mut all = vec!["doctor", "--json"];
    all.extend_from_slice(args);
    let mut cmd = coffer_cmd(&all, None, env);
    cmd.env_remove("COFFER_REPO");
    let out = cmd.output().expect("run coffer doctor");
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor printed no JSON ({e}): {}", stderr(&out)));
    (out, json)
}

/// The check named `name` in the section of `kind`.
fn check<'a>(report: &'a Value, kind: &str, name: &str) -> &'a Value {
    report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == kind)
        .flat_map(|s| s["checks"].as_array().unwrap())
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} check {name:?} in {report:#}"))
}

#[test]
fn each_missing_privilege_is_named_by_its_own_line() {
    let server = MariaDb::start_with(None, &["--binlog-format=ROW"]);
    server.sql(&format!(
        "CREATE USER doc@localhost IDENTIFIED BY '{DOCTOR_PASSWORD}';
         GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, BINLOG MONITOR, REPLICATION SLAVE, LOCK TABLES,
           CREATE, DROP, ALTER, INSERT, DELETE, UPDATE, INDEX, REFERENCES, CREATE VIEW,
           CREATE ROUTINE, ALTER ROUTINE, CREATE TEMPORARY TABLES, SET USER, CREATE USER
           ON *.* TO doc@localhost;
         CREATE DATABASE study; CREATE TABLE study.t (id INT PRIMARY KEY, v TEXT);
         INSERT INTO study.t VALUES (1, REPEAT('x', 1000)), (2, 'y');"
    ));
    let url = server.socket_url_as("doc");
    let env = [("COFFER_MYSQL_PASSWORD", DOCTOR_PASSWORD)];
    let (out, full) = doctor(&["--mysql", &url], &env);
    assert!(out.status.success(), "{full:#}");
    for name in [
        "privilege SELECT",
        "privilege BINLOG MONITOR",
        "privilege REPLICATION SLAVE",
        "privilege LOCK TABLES",
        "privilege SET USER",
        "privilege SELECT on mysql.*",
        "privilege CREATE USER",
        "log_bin",
        "binlog_format",
        "binary log position",
    ] {
        assert_eq!(
            check(&full, "server", name)["status"],
            "ok",
            "{name}: {full:#}"
        );
    }
    assert!(
        check(&full, "server", "largest databases")["found"]
            .as_str()
            .unwrap()
            .contains("study"),
        "{full:#}"
    );
    assert!(
        check(&full, "server", "backup duration estimate")["found"]
            .as_str()
            .unwrap()
            .contains("study.t"),
        "{full:#}"
    );
    // Neither the password nor its hash (which SHOW GRANTS prints on MariaDB) is shown.
    let hash = server.sql(&format!("SELECT PASSWORD('{DOCTOR_PASSWORD}')"));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(!printed.contains(DOCTOR_PASSWORD) && !printed.contains(hash.trim()));

    // What is not ✓ with every privilege (the test server's own settings, such as
    // require_secure_transport).
    let baseline: Vec<&str> = full["sections"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] != "ok")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        baseline.iter().all(|n| !n.starts_with("privilege")),
        "{baseline:?}"
    );
    // Each privilege removed alone: its line (and only the lines that depend on it) turns.
    for (privilege, line, status, also) in [
        ("SHOW VIEW", "privilege SHOW VIEW", "fail", None),
        ("EVENT", "privilege EVENT", "fail", None),
        (
            "BINLOG MONITOR",
            "privilege BINLOG MONITOR",
            "warn",
            Some("binary log position"),
        ),
        (
            "REPLICATION SLAVE",
            "privilege REPLICATION SLAVE",
            "warn",
            None,
        ),
        ("LOCK TABLES", "privilege LOCK TABLES", "warn", None),
        ("SET USER", "privilege SET USER", "warn", None),
        ("CREATE ROUTINE", "privilege CREATE ROUTINE", "warn", None),
        ("CREATE USER", "privilege CREATE USER", "warn", None),
    ] {
        server.sql(&format!("REVOKE {privilege} ON *.* FROM doc@localhost"));
        let (out, report) = doctor(&["--mysql", &url], &env);
        let found = check(&report, "server", line);
        assert_eq!(found["status"], status, "without {privilege}: {report:#}");
        assert!(
            found["hint"].as_str().unwrap().contains(privilege),
            "the hint names the grant: {found:#}"
        );
        if let Some(other) = also {
            assert_eq!(
                check(&report, "server", other)["status"],
                "warn",
                "{report:#}"
            );
        }
        let failed = status == "fail";
        assert_eq!(
            out.status.code(),
            Some(if failed { 6 } else { 0 }),
            "exit code without {privilege}"
        );
        let others_turned: Vec<&str> = report["sections"][0]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"] != "ok")
            .map(|c| c["name"].as_str().unwrap())
            .filter(|n| *n != line && Some(*n) != also && !baseline.contains(n))
            .collect();
        assert!(
            others_turned.is_empty(),
            "without {privilege}: {others_turned:?}"
        );
        server.sql(&format!("GRANT {privilege} ON *.* TO doc@localhost"));
    }
    // Reading accounts needs SELECT on the mysql schema, whether or not on every database.
    server.sql("REVOKE SELECT ON *.* FROM doc@localhost");
    let (_, report) = doctor(&["--mysql", &url], &env);
    assert_eq!(
        check(&report, "server", "privilege SELECT on mysql.*")["status"],
        "warn"
    );
    server.sql("GRANT SELECT ON mysql.* TO doc@localhost");
    let (_, report) = doctor(&["--mysql", &url], &env);
    assert_eq!(
        check(&report, "server", "privilege SELECT on mysql.*")["status"],
        "ok"
    );
    assert_eq!(
        check(&report, "server", "privilege SELECT")["status"],
        "fail"
    );
}

#[test]
fn a_server_without_a_binary_log_is_named() {
    let server = MariaDb::start_with(None, &["--skip-log-bin"]);
    let (out, report) = doctor(&["--mysql", &server.socket_url()], &[]);
    let log_bin = check(&report, "server", "log_bin");
    assert_eq!(log_bin["status"], "warn", "{report:#}");
    assert!(
        log_bin["meaning"]
            .as_str()
            .unwrap()
            .contains("change tracking")
    );
    assert!(out.status.success());
    // The text form carries the same line with its hint.
    let text = coffer_cmd(&["doctor", "--mysql", &server.socket_url()], None, &[])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&text.stdout);
    assert!(
        printed.contains("⚠ log_bin") && printed.contains("HINT:"),
        "{printed}"
    );
}

#[test]
fn a_local_folder_allows_everything_and_needs_no_repository_yet() {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("new");
    let (out, report) = doctor(&["--repo", location.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{report:#}");
    for name in [
        "reachable",
        "create",
        "read",
        "list",
        "overwrite",
        "delete",
        "clock",
    ] {
        assert_eq!(
            check(&report, "repository", name)["status"],
            "ok",
            "{name}: {report:#}"
        );
    }
    assert!(
        check(&report, "repository", "reachable")["found"]
            .as_str()
            .unwrap()
            .contains("no repository yet")
    );
    // The scratch object is gone.
    let left: Vec<_> = walk(&location);
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.extend(walk(&path));
            } else {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn a_store_that_refuses_deletes_and_a_key_that_refuses_unwrap_are_named() {
    // Seven unauthenticated set-up calls and the bucket's creation, then IAM decides every
    // request.
    let moto = Moto::with_iam(8);
    let (key, users) = moto.kms_key_and_users(&[
        ("admin", &["kms:*", "s3:*"]),
        (
            "backup",
            &[
                "kms:Encrypt",
                "s3:PutObject",
                "s3:GetObject",
                "s3:ListBucket",
            ],
        ),
    ]);
    let [(admin_id, admin_secret), (backup_id, backup_secret)] = users.as_slice() else {
        panic!("two users: {users:?}");
    };
    let repo = moto.repo_url("doctor");
    let trust = moto.endpoint();
    let kms = format!("aws-kms://{key}?region=us-east-1&endpoint={trust}&allow-http=true");
    let as_user = |id: &str, secret: &str| -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), id.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), secret.into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("COFFER_KMS_TRUST".into(), trust.clone()),
        ]
    };
    let admin = as_user(admin_id, admin_secret);
    let admin: Vec<(&str, &str)> = admin
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for args in [
        vec!["init", "--repo", &repo],
        vec!["key", "add", "--repo", &repo, "--kms", &kms],
    ] {
        let out = coffer_cmd(&args, None, &admin).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }

    let (out, report) = doctor(&["--repo", &repo], &admin);
    assert!(out.status.success(), "{report:#}");
    let slots: Vec<&Value> = report["sections"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"].as_str().unwrap().starts_with("key slot"))
        .collect();
    assert_eq!(slots.len(), 2, "{report:#}");
    assert!(slots.iter().all(|c| c["status"] == "ok"), "{report:#}");

    let backup = as_user(backup_id, backup_secret);
    let backup: Vec<(&str, &str)> = backup
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (out, report) = doctor(&["--repo", &repo], &backup);
    assert_eq!(out.status.code(), Some(6), "{report:#}");
    for name in ["create", "read", "list", "overwrite"] {
        assert_eq!(
            check(&report, "repository", name)["status"],
            "ok",
            "{name}: {report:#}"
        );
    }
    let delete = check(&report, "repository", "delete");
    assert_eq!(delete["status"], "warn", "{report:#}");
    assert!(
        delete["meaning"]
            .as_str()
            .unwrap()
            .contains("cannot forget or prune")
    );
    let refused = slots_of(&report)
        .into_iter()
        .find(|c| c["status"] == "fail")
        .unwrap_or_else(|| panic!("no refused slot: {report:#}"));
    let said = format!("{} {}", refused["found"], refused["hint"]);
    assert!(
        said.contains("unwrap refused") && said.contains("kms:Decrypt"),
        "{refused:#}"
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(!printed.contains(backup_secret.as_str()) && !printed.contains(admin_secret.as_str()));
}

fn slots_of(report: &Value) -> Vec<&Value> {
    report["sections"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"].as_str().unwrap().starts_with("key slot"))
        .collect()
}
