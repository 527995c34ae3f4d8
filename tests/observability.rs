//! Observability (issue 11): `--metrics-file` writes Prometheus text format that `promtool
//! check metrics` accepts, with the backup's figures labelled by command, repository and
//! server, and a failed run says so and keeps the time of the last success; `--log-format json`
//! writes one JSON object per log line; `backup --json` prints one summary.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (scripts/install-deps.sh installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool refused:\n{text}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sample(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} with {label} in:\n{text}"))
}

#[test]
fn a_backup_writes_metrics_promtool_accepts() {
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE met_a; CREATE TABLE met_a.t (id INT PRIMARY KEY); INSERT INTO met_a.t VALUES (1); \
         CREATE DATABASE met_b; CREATE TABLE met_b.t (id INT PRIMARY KEY); INSERT INTO met_b.t VALUES (2);",
    );
    let repo = Repo::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("coffer-backup.prom");
    let file_arg = file.display().to_string();
    let url = server.socket_url();
    ok(repo.coffer(&[
        "backup",
        "--mysql",
        &url,
        "--include",
        "met_*",
        "--metrics-file",
        &file_arg,
    ]));
    let text = std::fs::read_to_string(&file).expect("metrics file");
    promtool_check(&text);
    assert_eq!(
        sample(&text, "coffer_backup_databases", "state=\"read\""),
        2.0
    );
    assert_eq!(
        sample(&text, "coffer_backup_databases", "state=\"failed\""),
        0.0
    );
    assert_eq!(
        sample(&text, "coffer_last_run_success", "command=\"backup\""),
        1.0
    );
    assert!(sample(&text, "coffer_backup_bytes_read", "server=") > 0.0);
    assert!(
        text.contains(&format!("repository=\"{}\"", repo.path().display())),
        "{text}"
    );
    let succeeded = sample(&text, "coffer_last_success_timestamp_seconds", "backup");

    // A run that fails: it says so, and the last success stays what it was.
    let out = repo.coffer(&[
        "backup",
        "--mysql",
        &url,
        "--include",
        "nothing_matches_*",
        "--metrics-file",
        &file_arg,
    ]);
    assert!(!out.status.success());
    let text = std::fs::read_to_string(&file).expect("metrics file");
    promtool_check(&text);
    assert_eq!(sample(&text, "coffer_last_run_success", "backup"), 0.0);
    assert_eq!(
        sample(&text, "coffer_last_success_timestamp_seconds", "backup"),
        succeeded
    );
    assert!(sample(&text, "coffer_last_run_timestamp_seconds", "backup") >= succeeded);
}

#[test]
fn json_logs_are_one_object_per_line() {
    let server = MariaDb::shared();
    server.sql("CREATE DATABASE log_a; CREATE TABLE log_a.t (id INT PRIMARY KEY);");
    let repo = Repo::new();
    let out = repo.coffer_env(
        &[
            "backup",
            "--mysql",
            &server.socket_url(),
            "--include",
            "log_a",
            "--log-format",
            "json",
        ],
        &[("COFFER_LOG", "info")],
    );
    let log = stderr(&out);
    ok(out);
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "some log lines at info level");
    for line in lines {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            parsed["level"].is_string() && parsed["fields"].is_object(),
            "{line}"
        );
    }
}

#[test]
fn a_backup_prints_one_json_summary() {
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE sum_a; CREATE TABLE sum_a.t (id INT PRIMARY KEY); INSERT INTO sum_a.t VALUES (1), (2);",
    );
    let repo = Repo::new();
    let out = ok(repo.coffer(&[
        "backup",
        "--mysql",
        &server.socket_url(),
        "--include",
        "sum_a",
        "--json",
    ]));
    let summary: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(summary["databases"], 1, "{summary}");
    assert_eq!(summary["databases_read"], 1, "{summary}");
    assert_eq!(summary["stats"]["rows"], 2, "{summary}");
    assert_eq!(
        summary["failed"].as_array().map(Vec::len),
        Some(0),
        "{summary}"
    );
    assert_eq!(summary["snapshot"], latest_snapshot(&repo), "{summary}");

    // check --json: one document too, read data included.
    let out = ok(repo.coffer(&["check", "--read-data", "--json"]));
    let checked: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(checked["ok"], true, "{checked}");
    assert_eq!(checked["snapshots"], 1, "{checked}");
    assert_eq!(checked["packs_read"], checked["packs"], "{checked}");
    assert!(checked["blobs_checked"].as_u64() > Some(0), "{checked}");
    assert_eq!(checked["problems"], serde_json::json!([]), "{checked}");
}
