//! Restoring into another server kind than the backup came from: what the target cannot hold
//! exactly is refused before anything is changed, every object named with its reason.
//!
//! Only MariaDB installs from the package registries here, so the backup's origin is set to a
//! MySQL 8 server on the loaded plan (with a table in MySQL 8's default collation, as such a
//! backup holds it): the check, the refusal and the untouched server are real.

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use coffer::repo::select::SnapshotSelector;
use coffer::repo::{InitOptions, Repository};
use coffer::restore::server::{ServerRestoreOptions, restore_to_server};
use coffer::restore::{RestoreOptions, RestorePlan};
use coffer::storage::{StorageOptions, open_location};
use common::library::*;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_another_kind_cannot_hold_are_named_before_any_change() {
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE xkind; CREATE TABLE xkind.plain (id INT PRIMARY KEY);
         CREATE TABLE xkind.names (id INT PRIMARY KEY, v VARCHAR(10));
         CREATE TABLE xkind.places (id INT PRIMARY KEY, doc JSON);",
    );
    let dir = tempfile::tempdir().unwrap();
    let storage = open_location(dir.path().to_str().unwrap(), &StorageOptions::default())
        .unwrap()
        .storage;
    let repo = Arc::new(
        Repository::init(storage, &provider(), InitOptions::default())
            .await
            .unwrap(),
    );
    backup(&repo, server, "xkind").await.unwrap();
    let chosen = repo
        .select_snapshot(
            &SnapshotSelector::from_args(None, None, jiff::Timestamp::now()).unwrap(),
            Some("xkind"),
        )
        .await
        .unwrap();
    let index = Arc::new(repo.load_index().await.unwrap());
    let mut plan = RestorePlan::load(
        &repo,
        &index,
        &chosen.snapshot,
        &chosen.id.short(),
        "xkind",
        &RestoreOptions {
            into: Some("xkind_copy".into()),
            ..RestoreOptions::default()
        },
    )
    .await
    .unwrap();
    // As a backup of MySQL 8.0 holds it: its default collation, and a functional index.
    plan.source_version = "8.0.36".into();
    for table in &mut plan.tables {
        if table.name == "names" {
            table.create_sql = table.create_sql.replace(
                " DEFAULT CHARSET=",
                " COLLATE=utf8mb4_0900_ai_ci DEFAULT CHARSET=",
            );
        }
        if table.name == "places" {
            table.create_sql = table.create_sql.replace(
                "PRIMARY KEY (`id`)",
                "PRIMARY KEY (`id`),\n  KEY `by_name` ((cast(`doc` as char(20))))",
            );
        }
    }
    let err = restore_to_server(
        Arc::clone(&repo),
        index,
        Arc::new(plan),
        &socket_target(server),
        &ServerRestoreOptions {
            drop_existing: false,
            jobs: 2,
            replay: None,
            staging_tag: None,
        },
        Arc::new(AtomicU64::new(0)),
    )
    .await
    .unwrap_err();
    let said = format!("{err} / {}", err.hint().unwrap_or_default());
    for expected in [
        "table names: the collation utf8mb4_0900_ai_ci",
        "table places: an index on an expression",
        "the backup is of MySQL 8.0.36",
        "nothing was changed",
        "Restoring across server kinds",
    ] {
        assert!(said.contains(expected), "{expected:?} in {said}");
    }
    assert!(!said.contains("table plain"), "{said}");
    let databases = server.sql("SHOW DATABASES");
    assert!(
        !databases.contains("xkind_copy") && !databases.contains("coffer_restore_"),
        "nothing was created: {databases}"
    );
}
