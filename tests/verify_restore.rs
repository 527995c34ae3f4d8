//! Restore drills (issue 8): `verify-restore` restores into a scratch schema, proves it equals
//! the snapshot by chunk ids, drops the scratch schema and records the result; a restored copy
//! that differs by one value is caught.

mod common;

use std::sync::Arc;

use coffer::repo::Repository;
use coffer::restore::verify::verify_restored;
use coffer::restore::{RestoreOptions, RestorePlan};
use common::library::*;
use common::*;

const DRILLED: &str = "CREATE DATABASE drilled; USE drilled; \
    CREATE TABLE visits (id INT PRIMARY KEY, note VARCHAR(100) CHARACTER SET utf8mb4, amount DECIMAL(10,3), \
      seen DATETIME(6), doc JSON, raw BLOB); \
    INSERT INTO visits SELECT seq, CONCAT('Müller ', seq), seq / 7, '2026-01-01 00:00:00' + INTERVAL seq SECOND, \
      JSON_OBJECT('n', seq), UNHEX(SHA2(seq, 256)) FROM seq_1_to_5000; \
    CREATE TABLE no_key (a INT, b VARCHAR(10)); INSERT INTO no_key VALUES (2, 'b'), (1, 'a'), (2, 'b'); \
    CREATE VIEW v AS SELECT id FROM visits;";

#[test]
fn a_drill_restores_proves_and_cleans_up() {
    let server = MariaDb::shared();
    server.sql(DRILLED);
    server.sql("CREATE DATABASE drilled_too; CREATE TABLE drilled_too.t (id INT PRIMARY KEY); INSERT INTO drilled_too.t VALUES (1);");
    let repo = Repo::new();
    let url = server.socket_url();
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "drilled*"]));

    let out = ok(repo.coffer(&[
        "verify-restore",
        "--mysql",
        &url,
        "--db",
        "drilled",
        "--json",
        "--reason",
        "quarterly drill",
    ]));
    let drills: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(drills[0]["passed"], true, "{drills:#}");
    let tables = drills[0]["tables"].as_array().expect("tables");
    assert_eq!(tables.len(), 2, "{drills:#}");
    assert!(tables.iter().all(|t| t["equal"] == true), "{drills:#}");
    assert_eq!(
        server.sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'coffer\\_verify\\_%'").trim(),
        "0",
        "the scratch schema is dropped"
    );

    // A random sample of the snapshot's databases.
    let sampled = ok(repo.coffer(&["verify-restore", "--mysql", &url, "--sample", "2"]));
    assert!(
        sampled.contains("2 of 2 databases restored equal"),
        "{sampled}"
    );

    let audit = ok(repo.coffer(&["audit", "--json"]));
    assert!(
        audit.contains("\"command\": \"verify-restore\"") && audit.contains("quarterly drill"),
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_copy_that_differs_by_one_value_fails_the_proof() {
    let server = MariaDb::shared();
    server.sql(&DRILLED.replace("drilled", "drilled_diff"));
    let repo = Repo::new();
    let url = server.socket_url();
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "drilled_diff"]));
    ok(repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--db",
        "drilled_diff",
        "--into",
        "drilled_copy",
    ]));

    let storage =
        coffer::storage::open_location(&repo.path().display().to_string(), &Default::default())
            .expect("storage")
            .storage;
    let opened = Arc::new(Repository::open(storage, &provider()).await.expect("open"));
    let index = opened.load_index().await.expect("index");
    let (id, snapshot) = opened.find_snapshot("latest").await.expect("snapshot");
    let plan = RestorePlan::load(
        &opened,
        &index,
        &snapshot,
        &id.short(),
        "drilled_diff",
        &RestoreOptions::default(),
    )
    .await
    .expect("plan");
    let target = socket_target(server);

    let verdicts = verify_restored(&opened, &index, &plan, &target, "drilled_copy")
        .await
        .expect("verify");
    assert!(verdicts.iter().all(|v| v.equal), "{verdicts:#?}");

    // One decimal digit in one row of 5000, and one row of the keyless table.
    server.sql(
        "UPDATE drilled_copy.visits SET amount = amount + 0.001 WHERE id = 4321; \
                UPDATE drilled_copy.no_key SET b = 'c' WHERE a = 1;",
    );
    let verdicts = verify_restored(&opened, &index, &plan, &target, "drilled_copy")
        .await
        .expect("verify");
    let visits = verdicts
        .iter()
        .find(|v| v.table == "visits")
        .expect("visits");
    assert!(!visits.equal, "{verdicts:#?}");
    assert!(
        visits
            .difference
            .as_deref()
            .unwrap_or("")
            .contains("differs"),
        "{verdicts:#?}"
    );
    let keyless = verdicts
        .iter()
        .find(|v| v.table == "no_key")
        .expect("no_key");
    assert!(!keyless.equal, "{verdicts:#?}");
}
