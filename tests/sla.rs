//! The SLA report (issue 11): a database with no backup in the window, a database created
//! since the last backup, and a month without a snapshot are each reported, with exit code 4;
//! a repository that meets the SLA exits 0. The report and the snapshot list read snapshot
//! summaries; a repository written before summaries existed gets them from its next backup.

mod common;

use common::*;
use jiff::{Span, Zoned, tz::TimeZone};

fn ago(span: Span) -> Zoned {
    Zoned::now()
        .with_time_zone(TimeZone::UTC)
        .checked_sub(span)
        .expect("in range")
}

fn backup_at(repo: &Repo, server: &MariaDb, include: &str, at: Option<&Zoned>) {
    let url = server.socket_url();
    let time = at.map(|z| z.strftime("%Y-%m-%d %H:%M:%S").to_string());
    let mut args = vec!["backup", "--mysql", &url, "--include", include];
    if let Some(time) = &time {
        args.extend(["--time", time]);
    }
    ok(repo.coffer(&args));
}

fn summaries(repo: &Repo) -> usize {
    std::fs::read_dir(repo.path().join("summaries"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn missing_databases_new_databases_and_missed_months_are_reported() {
    let server = MariaDb::shared();
    for db in ["sla_a", "sla_b"] {
        server.sql(&format!(
            "CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT PRIMARY KEY); INSERT INTO {db}.t VALUES (1);"
        ));
    }
    let repo = Repo::new();
    // Three months ago and one month ago; nothing two months ago.
    let three_months = ago(Span::new().months(3));
    let two_months = ago(Span::new().months(2));
    backup_at(&repo, server, "sla_*", Some(&three_months));
    backup_at(&repo, server, "sla_*", Some(&ago(Span::new().months(1))));
    // Both two days ago; today only sla_a.
    backup_at(&repo, server, "sla_*", Some(&ago(Span::new().days(2))));
    backup_at(&repo, server, "sla_a", None);
    assert_eq!(summaries(&repo), 4, "one summary per snapshot");
    // A study created since.
    server.sql("CREATE DATABASE sla_new");

    let url = server.socket_url();
    let args = [
        "sla",
        "--within",
        "12h",
        "--monthly",
        "4",
        "--mysql",
        &url,
        "--include",
        "sla_*",
    ];
    let out = repo.coffer(&args);
    let said = stdout(&out);
    assert_eq!(out.status.code(), Some(4), "{said}{}", stderr(&out));
    let missed_month = two_months.strftime("%Y-%m").to_string();
    assert!(
        said.contains("3 databases, as on the server now): 1 backed up within 12h, 2 missing"),
        "{said}"
    );
    assert!(said.contains("MISSING sla_b: last backup"), "{said}");
    assert!(said.contains("MISSING sla_new: never backed up"), "{said}");
    assert!(
        said.contains(&format!("months without a snapshot: {missed_month}")),
        "{said}"
    );
    assert!(!said.contains("MISSING sla_a"), "{said}");

    // For Prometheus: the same figures in the metrics file.
    let metrics = repo.path().join("sla.prom");
    let metrics_arg = metrics.to_string_lossy().into_owned();
    let mut with_metrics = args.to_vec();
    with_metrics.extend(["--metrics-file", &metrics_arg]);
    assert_eq!(repo.coffer(&with_metrics).status.code(), Some(4));
    let written = std::fs::read_to_string(&metrics).expect("metrics file");
    let missing_line = written
        .lines()
        .find(|l| l.starts_with("coffer_sla_databases_missing{"))
        .expect("coffer_sla_databases_missing");
    assert!(missing_line.ends_with(" 2"), "{written}");
    assert!(written.contains("coffer_last_run_success{"), "{written}");

    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = repo.coffer(&json_args);
    assert_eq!(out.status.code(), Some(4));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(report["met"], false);
    let server_report = &report["servers"][0];
    let missing: Vec<(&str, bool)> = server_report["missing"]
        .as_array()
        .expect("missing")
        .iter()
        .map(|m| {
            (
                m["database"].as_str().unwrap_or(""),
                m["last_backup"].is_null(),
            )
        })
        .collect();
    assert_eq!(missing, [("sla_b", false), ("sla_new", true)]);
    assert_eq!(
        server_report["months_missing"],
        serde_json::json!([missed_month])
    );

    // Without the server, the newest backup's databases are expected: only the month is missing.
    let out = repo.coffer(&["sla", "--within", "12h", "--monthly", "4"]);
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("1 backed up within 12h, 0 missing"),
        "{}",
        stdout(&out)
    );

    // Everything backed up now, months not asked: met, exit 0.
    backup_at(&repo, server, "sla_*", None);
    let out = repo.coffer(&[
        "sla",
        "--within",
        "12h",
        "--mysql",
        &url,
        "--include",
        "sla_*",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("SLA met"), "{}", stdout(&out));
    for db in ["sla_a", "sla_b", "sla_new"] {
        server.sql(&format!("DROP DATABASE {db}"));
    }
}

#[test]
fn snapshots_without_summaries_are_summarised_and_the_next_backup_stores_them() {
    let server = MariaDb::shared();
    server.sql("CREATE DATABASE sum_a; CREATE TABLE sum_a.t (id INT PRIMARY KEY);");
    let repo = Repo::new();
    backup_at(&repo, server, "sum_a", None);
    backup_at(&repo, server, "sum_a", None);
    let listed = ok(repo.coffer(&["snapshots"]));
    // As a repository from before summaries: none stored.
    std::fs::remove_dir_all(repo.path().join("summaries")).expect("remove summaries");
    let out = repo.coffer_env(&["snapshots"], &[("COFFER_NO_CACHE", "1")]);
    assert_eq!(
        ok(out),
        listed,
        "the list is the same made from the snapshots"
    );
    backup_at(&repo, server, "sum_a", None);
    assert_eq!(
        summaries(&repo),
        3,
        "the backup stored the two missing summaries and its own"
    );
    // A damaged summary is only derived data: the snapshot is read instead.
    let damaged = std::fs::read_dir(repo.path().join("summaries"))
        .expect("summaries")
        .next()
        .expect("one")
        .expect("entry")
        .path();
    std::fs::remove_file(&damaged).expect("remove");
    std::fs::write(&damaged, b"not a summary").expect("damage");
    let out = repo.coffer_env(&["snapshots"], &[("COFFER_NO_CACHE", "1")]);
    assert!(ok(out).contains("3 snapshots"));
    // check names it; without it the repository checks clean.
    let out = repo.coffer_env(&["check"], &[("COFFER_NO_CACHE", "1")]);
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("problem: summary"),
        "{}",
        stdout(&out)
    );
    std::fs::remove_file(&damaged).expect("remove");
    ok(repo.coffer(&["check"]));
    server.sql("DROP DATABASE sum_a");
}
