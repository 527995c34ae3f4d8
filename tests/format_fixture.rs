//! A repository written by coffer 0.1 (format version 1) is checked in under
//! `tests/fixtures/repo-v1`; every later build must still read it and restore it exactly. A
//! change to the format that would strand existing backups fails here first.
//!
//! The fixture was made once by `make_format_v1_fixture` (ignored; run it only to make a new
//! fixture for a new format version, never to "fix" this test) from
//! `tests/fixtures/format-v1-source.sql`, with the test passphrase.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repo-v1")
}

fn source_sql() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-v1-source.sql"),
    )
    .expect("fixture source")
}

/// Run `coffer` against a repository at `path`.
fn coffer_at(path: &Path, args: &[&str]) -> std::process::Output {
    coffer_cmd(args, Some(path), &[])
        .output()
        .expect("run coffer")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixture").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
#[ignore = "makes the checked-in fixture; run only for a new format version"]
fn make_format_v1_fixture() {
    let dir = fixture_dir();
    assert!(
        !dir.exists(),
        "{} exists: a fixture is never overwritten",
        dir.display()
    );
    let server = MariaDb::shared();
    server.sql(&source_sql());
    let dir_text = dir.display().to_string();
    ok(coffer_at(
        &dir,
        &["init", "--chunk-size", "16KiB", "--pack-size", "1MiB"],
    ));
    ok(coffer_at(
        &dir,
        &[
            "backup",
            "--mysql",
            &server.socket_url(),
            "--include",
            "fixture_v1",
        ],
    ));
    eprintln!("fixture written to {dir_text}");
}

#[test]
fn format_v1_fixture_reads_and_restores_exactly() {
    let copy = tempfile::tempdir().expect("temp dir");
    copy_dir(&fixture_dir(), copy.path());
    let repo = copy.path();

    let check = ok(coffer_at(repo, &["check", "--read-data"]));
    assert!(check.contains("no problems"), "{check}");
    let listing: serde_json::Value =
        serde_json::from_str(&ok(coffer_at(repo, &["snapshots", "--json"]))).expect("json");
    assert_eq!(listing.as_array().map(Vec::len), Some(1), "{listing}");
    let databases = ok(coffer_at(repo, &["ls", "latest"]));
    assert!(databases.contains("fixture_v1"), "{databases}");

    let server = MariaDb::shared();
    server.sql(&source_sql());
    ok(coffer_at(
        repo,
        &[
            "restore",
            "--mysql",
            &server.socket_url(),
            "--db",
            "fixture_v1",
            "--into",
            "fixture_v1_restored",
        ],
    ));
    assert_eq!(
        checksums(server, "fixture_v1"),
        checksums(server, "fixture_v1_restored")
    );
    let objects = |db: &str| {
        server.sql(&format!(
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' \
             UNION ALL SELECT TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{db}' \
             UNION ALL SELECT ROUTINE_NAME, ROUTINE_DEFINITION FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{db}' \
             ORDER BY 1"
        ))
    };
    assert_eq!(objects("fixture_v1"), objects("fixture_v1_restored"));
    for table in ["patients", "visits", "no_key"] {
        let create = |db: &str| {
            server
                .sql(&format!("SHOW CREATE TABLE `{db}`.`{table}`"))
                .split_once('\t')
                .map(|(_, sql)| sql.to_string())
                .expect("create table")
        };
        assert_eq!(
            create("fixture_v1"),
            create("fixture_v1_restored"),
            "{table}"
        );
    }
}

/// Adding a write-only key to a repository written before coffer 0.3 seals its index files
/// again under the metadata key, so the backup host deduplicates against the old backups; the
/// old snapshot still restores, and so does the new one, with the full key.
#[test]
fn a_write_only_key_on_the_v1_fixture_deduplicates_against_its_backups() {
    let copy = tempfile::tempdir().expect("temp dir");
    copy_dir(&fixture_dir(), copy.path());
    let repo = copy.path();
    let index_before: Vec<_> = files_under(&repo.join("index"));
    let key = copy.path().join("..").join(format!(
        "{}.key",
        repo.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("fixture")
    ));
    let key_text = key.display().to_string();
    ok(coffer_at(
        repo,
        &["key", "add", "--write-only", "--output", &key_text],
    ));
    let index_after: Vec<_> = files_under(&repo.join("index"));
    assert_eq!(index_after.len(), index_before.len());
    assert!(
        index_after.iter().all(|f| !index_before.contains(f)),
        "legacy index files were not sealed again"
    );

    let server = MariaDb::shared();
    server.sql(&source_sql().replace("fixture_v1", "fixture_wo"));
    let backup = coffer_cmd(
        &[
            "backup",
            "--mysql",
            &server.socket_url(),
            "--include",
            "fixture_wo",
        ],
        Some(repo),
        &[("COFFER_KEY_FILE", &key_text)],
    )
    .env_remove("COFFER_PASSWORD")
    .output()
    .expect("run coffer");
    let _ = std::fs::remove_file(&key);
    assert!(backup.status.success(), "{}", stderr(&backup));
    let listing: serde_json::Value =
        serde_json::from_str(&ok(coffer_at(repo, &["snapshots", "--json"]))).expect("json");
    let stored = |i: usize| {
        listing[i]["stats"]["bytes_stored_new"]
            .as_u64()
            .unwrap_or(0)
    };
    assert_eq!(listing.as_array().map(Vec::len), Some(2));
    let check = ok(coffer_at(repo, &["check", "--read-data"]));
    assert!(check.contains("no problems"), "{check}");
    ok(coffer_at(
        repo,
        &[
            "restore",
            "--mysql",
            &server.socket_url(),
            "--db",
            "fixture_wo",
            "--into",
            "fixture_wo_restored",
        ],
    ));
    assert_eq!(
        checksums(server, "fixture_wo"),
        checksums(server, "fixture_wo_restored")
    );
    assert!(
        stored(1) < stored(0),
        "the write-only backup did not deduplicate against the fixture: {listing:#}"
    );
}
