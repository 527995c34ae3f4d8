//! Accounts, roles and grants: recorded by `backup` (without the server's own accounts),
//! restored by `restore --accounts` / `--accounts-only` exactly (`SHOW GRANTS` and
//! `SHOW CREATE USER` equal, passwords working), compared when they exist, replaced only with
//! `--drop-existing`, renamed with `--into-prefix`, refused up front when the target lacks a
//! plugin, and refused from a snapshot a write-only key wrote unless the operator consents.

mod common;

use common::*;

/// The accounts the tests make: a role with a database grant, a user with column, table,
/// routine, wildcard-database, role and default-role grants and resource limits, and a locked
/// user with an expired password, a TLS requirement and a proxy grant.
const ACCOUNTS: &[&str] = &["'alice'@'%'", "'bob'@'10.0.0.%'", "'monitor'"];

fn make_study_and_accounts(server: &MariaDb) {
    server.sql(
        r"DROP USER IF EXISTS ''@'localhost';
          CREATE DATABASE study_1; USE study_1;
          CREATE TABLE subjects (id INT PRIMARY KEY, code VARCHAR(20), secret INT);
          INSERT INTO subjects VALUES (1, 'S-1', 7), (2, 'S-2', 8);
          CREATE PROCEDURE touch() SELECT 1;
          CREATE DATABASE study_2; CREATE TABLE study_2.t (id INT PRIMARY KEY);
          CREATE ROLE monitor; GRANT SELECT ON study_2.* TO monitor;
          CREATE USER 'alice'@'%' IDENTIFIED BY 'alice-pw' WITH MAX_QUERIES_PER_HOUR 100;
          GRANT SELECT (id, code), UPDATE (code) ON study_1.subjects TO 'alice'@'%';
          GRANT EXECUTE ON PROCEDURE study_1.touch TO 'alice'@'%' WITH GRANT OPTION;
          GRANT INSERT ON `study\_%`.* TO 'alice'@'%';
          GRANT monitor TO 'alice'@'%'; SET DEFAULT ROLE monitor FOR 'alice'@'%';
          ALTER USER 'alice'@'%' PASSWORD EXPIRE INTERVAL 30 DAY;
          CREATE USER 'bob'@'10.0.0.%' IDENTIFIED BY 'bob-pw' REQUIRE SSL ACCOUNT LOCK PASSWORD EXPIRE;
          GRANT monitor TO 'bob'@'10.0.0.%' WITH ADMIN OPTION;
          GRANT PROXY ON 'alice'@'%' TO 'bob'@'10.0.0.%';
          GRANT BINLOG MONITOR, SLAVE MONITOR ON *.* TO 'bob'@'10.0.0.%';",
    );
}

/// `text` with each parenthesised list sorted: MariaDB prints a column grant's columns in the
/// order of its in-memory hash, which need not be the order they were granted in.
fn column_lists_sorted(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('(') {
        let Some(close) = rest[open..].find(')') else {
            break;
        };
        let mut items: Vec<&str> = rest[open + 1..open + close].split(", ").collect();
        items.sort();
        out.push_str(&rest[..=open]);
        out.push_str(&items.join(", "));
        rest = &rest[open + close..];
    }
    out.push_str(rest);
    out
}

/// `SHOW GRANTS` and `SHOW CREATE USER` of the test accounts.
fn accounts_state(server: &MariaDb) -> Vec<String> {
    let mut out = Vec::new();
    for account in ACCOUNTS {
        let grants = server
            .try_sql(&format!("SHOW GRANTS FOR {account}"))
            .unwrap_or_else(|e| e);
        out.push(column_lists_sorted(&grants));
        if !account.ends_with("'monitor'") {
            out.push(
                server
                    .try_sql(&format!("SHOW CREATE USER {account}"))
                    .unwrap_or_else(|e| e),
            );
        }
    }
    out
}

fn drop_accounts(server: &MariaDb) {
    server.sql("DROP USER 'alice'@'%', 'bob'@'10.0.0.%'; DROP ROLE monitor;");
}

/// The outcome of each account in a restore's JSON summary, by name.
fn outcomes(summary: &serde_json::Value) -> Vec<(String, String)> {
    summary["accounts"]
        .as_array()
        .expect("accounts in the summary")
        .iter()
        .map(|a| {
            (
                a["account"].as_str().unwrap_or_default().to_string(),
                a["outcome"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// One account's entry in a restore's JSON summary.
fn reported<'a>(summary: &'a serde_json::Value, account: &str) -> &'a serde_json::Value {
    summary["accounts"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["account"] == account))
        .unwrap_or_else(|| panic!("{account} not reported: {summary:#}"))
}

fn outcome_of<'a>(outcomes: &'a [(String, String)], account: &str) -> &'a str {
    outcomes
        .iter()
        .find(|(a, _)| a == account)
        .map_or("absent", |(_, o)| o.as_str())
}

#[test]
fn accounts_roles_and_grants_round_trip_and_existing_ones_are_compared() {
    let server = MariaDb::start_with(None, &[]);
    make_study_and_accounts(&server);
    let before = accounts_state(&server);
    let hashes =
        server.sql("SELECT authentication_string FROM mysql.user WHERE User IN ('alice', 'bob')");
    let repo = Repo::new();
    let url = server.socket_url();
    let backup = ok(repo.coffer(&["backup", "--mysql", &url]));
    assert!(backup.contains("accounts and 1 roles recorded"), "{backup}");

    drop_accounts(&server);
    server.sql("DROP DATABASE study_1; DROP DATABASE study_2");
    let out = repo.coffer(&["restore", "--mysql", &url, "--all", "--accounts", "--json"]);
    let text = stdout(&out) + &stderr(&out);
    assert!(out.status.success(), "{text}");
    for hash in hashes.lines() {
        assert!(
            !text.contains(hash.trim()),
            "a password hash was printed: {text}"
        );
    }
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let found = outcomes(&summary);
    for account in ["'alice'@'%'", "'bob'@'10.0.0.%'", "'monitor'"] {
        assert_eq!(outcome_of(&found, account), "created", "{summary:#}");
    }
    // The server's own accounts are neither recorded nor restored; the harness's own user is.
    for (account, _) in &found {
        assert!(
            !["'root'", "'mariadb.sys'", "'PUBLIC'"]
                .iter()
                .any(|system| account.starts_with(system)),
            "{account} was recorded"
        );
    }
    assert_eq!(
        outcome_of(&found, "'coffer'@'%'"),
        "unchanged",
        "{summary:#}"
    );
    assert_eq!(accounts_state(&server), before);
    // The password hash was kept: alice logs in with her password and uses her grants.
    let alice = std::process::Command::new("mariadb")
        .args([
            "--no-defaults",
            "--protocol=TCP",
            "-h127.0.0.1",
            &format!("-P{}", server.port),
            "-ualice",
            "-palice-pw",
            "-N",
            "-e",
            "SELECT CURRENT_USER(), code FROM study_1.subjects ORDER BY id LIMIT 1",
        ])
        .output()
        .expect("mariadb client");
    assert_eq!(
        String::from_utf8_lossy(&alice.stdout).trim(),
        "alice@%\tS-1",
        "{}",
        String::from_utf8_lossy(&alice.stderr)
    );

    // Repeated: every account is there and the same.
    let again: serde_json::Value = serde_json::from_str(&ok(repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--accounts-only",
        "--json",
    ])))
    .expect("json");
    assert!(
        outcomes(&again).iter().all(|(_, o)| o == "unchanged"),
        "{again:#}"
    );

    // One that differs is reported and left alone; --drop-existing replaces it.
    server.sql("GRANT DELETE ON study_1.* TO 'alice'@'%'");
    let changed = accounts_state(&server);
    let out = repo.coffer(&["restore", "--mysql", &url, "--accounts-only", "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let alice = reported(&report, "'alice'@'%'");
    assert_eq!(alice["outcome"], "differs", "{report:#}");
    assert!(
        alice["detail"]
            .to_string()
            .contains("also has GRANT DELETE ON `study_1`.*"),
        "{report:#}"
    );
    assert_eq!(
        accounts_state(&server),
        changed,
        "a differing account was changed"
    );
    let replaced: serde_json::Value = serde_json::from_str(&ok(repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--accounts-only",
        "--drop-existing",
        "--json",
    ])))
    .expect("json");
    assert_eq!(outcome_of(&outcomes(&replaced), "'alice'@'%'"), "replaced");
    assert_eq!(
        outcome_of(&outcomes(&replaced), "'bob'@'10.0.0.%'"),
        "unchanged"
    );
    assert_eq!(accounts_state(&server), before);

    // A replacement that fails half way puts the account back as it was. The restoring account
    // here is the harness's (ALL PRIVILEGES, but not the role's admin): bob's replacement fails
    // at granting him the role.
    server.sql(
        "REVOKE monitor FROM 'bob'@'10.0.0.%'; REVOKE PROXY ON 'alice'@'%' FROM 'bob'@'10.0.0.%'; \
         REVOKE BINLOG MONITOR, SLAVE MONITOR ON *.* FROM 'bob'@'10.0.0.%';",
    );
    let bob_state =
        || server.sql("SHOW GRANTS FOR 'bob'@'10.0.0.%'; SHOW CREATE USER 'bob'@'10.0.0.%'");
    let bob_before = bob_state();
    let as_harness = server.socket_url_as(TEST_USER);
    let out = repo.coffer_env(
        &[
            "restore",
            "--mysql",
            &as_harness,
            "--accounts-only",
            "--drop-existing",
            "--json",
        ],
        &[("COFFER_MYSQL_PASSWORD", TEST_USER_PASSWORD)],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let bob = reported(&report, "'bob'@'10.0.0.%'");
    assert_eq!(bob["outcome"], "failed", "{report:#}");
    assert!(
        bob["detail"]
            .to_string()
            .contains("back as it was before the restore"),
        "{report:#}"
    );
    assert_eq!(bob_state(), bob_before, "bob is as he was");

    // Rule "a snapshot's accounts are kept with it": after forget and prune, the kept
    // snapshot's accounts are checked and restore.
    server.sql("REVOKE SELECT ON study_2.* FROM monitor");
    ok(repo.coffer(&["backup", "--mysql", &url]));
    ok(repo.coffer(&["forget", "--keep-last", "1", "--prune"]));
    ok(repo.coffer(&["check", "--read-data"]));
    drop_accounts(&server);
    ok(repo.coffer(&["restore", "--mysql", &url, "--accounts-only"]));
    assert_eq!(
        server.sql("SHOW GRANTS FOR monitor").trim(),
        "GRANT USAGE ON *.* TO `monitor`"
    );
}

#[test]
fn grants_follow_into_prefix_onto_another_server() {
    let source = MariaDb::start_with(None, &[]);
    make_study_and_accounts(&source);
    let repo = Repo::new();
    ok(repo.coffer(&["backup", "--mysql", &source.socket_url()]));

    let target = MariaDb::start_with(None, &[]);
    let url = target.socket_url();
    ok(repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--include",
        "study_1",
        "--into-prefix",
        "copy_",
        "--accounts",
    ]));
    let alice = column_lists_sorted(&target.sql("SHOW GRANTS FOR 'alice'@'%'"));
    assert!(
        alice.contains("GRANT SELECT (`code`, `id`), UPDATE (`code`) ON `copy_study_1`.`subjects`"),
        "{alice}"
    );
    assert!(
        alice.contains("GRANT EXECUTE ON PROCEDURE `copy_study_1`.`touch`"),
        "{alice}"
    );
    // The wildcard grant matched a restored database: the prefix goes in front, escaped.
    assert!(
        alice.contains(r"GRANT INSERT ON `copy\\_study\\_%`.*"),
        "{alice}"
    );
    // study_2 was not restored: the role's grant on it keeps its name.
    let monitor = target.sql("SHOW GRANTS FOR monitor");
    assert!(monitor.contains("ON `study_2`.*"), "{monitor}");
}

#[test]
fn a_plugin_the_target_lacks_is_named_before_anything_changes() {
    let source = MariaDb::start_with(None, &[]);
    source.sql(
        "INSTALL SONAME 'auth_ed25519'; \
         CREATE DATABASE study_9; CREATE TABLE study_9.t (id INT PRIMARY KEY); \
         CREATE USER 'eve'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('eve-pw'); \
         GRANT SELECT ON study_9.* TO 'eve'@'%';",
    );
    let repo = Repo::new();
    ok(repo.coffer(&["backup", "--mysql", &source.socket_url()]));

    let target = MariaDb::start_with(None, &[]);
    let out = repo.coffer(&[
        "restore",
        "--mysql",
        &target.socket_url(),
        "--all",
        "--accounts",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("'eve'@'%': the target has no active authentication plugin ed25519"),
        "{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(
        target
            .sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'study_9'")
            .trim(),
        "0",
        "a database was restored before the refusal"
    );
    assert_eq!(
        target
            .sql("SELECT COUNT(*) FROM mysql.user WHERE User = 'eve'")
            .trim(),
        "0"
    );
}

/// The attack: a host holding only a write-only key backs up a server on which an account the
/// attacker knows the password of holds every privilege. Restoring "everything" would hand the
/// attacker the restore server. Accounts from a snapshot no full key is proven to have written
/// are refused unless the operator consents.
#[test]
fn accounts_a_write_only_key_wrote_are_refused_without_consent() {
    let server = MariaDb::start_with(None, &[]);
    server.sql(
        "CREATE DATABASE study_5; CREATE TABLE study_5.t (id INT PRIMARY KEY); \
         CREATE USER 'mallory'@'%' IDENTIFIED BY 'known-to-the-attacker'; \
         GRANT ALL ON *.* TO 'mallory'@'%' WITH GRANT OPTION;",
    );
    let repo = Repo::new();
    let url = server.socket_url();
    let _key = backup_with_write_only_key(&repo, &url, &[]);
    server.sql("DROP USER 'mallory'@'%'");

    let out = repo.coffer(&["restore", "--mysql", &url, "--all", "--accounts"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("not proven to be written by a full key"),
        "{err}"
    );
    assert!(err.contains("--accounts-from-write-only"), "{err}");
    assert_eq!(
        server
            .sql("SELECT COUNT(*) FROM mysql.user WHERE User = 'mallory'")
            .trim(),
        "0"
    );
    // With consent (after review), they are restored.
    ok(repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--accounts-only",
        "--accounts-from-write-only",
    ]));
    assert_eq!(
        server
            .sql("SELECT COUNT(*) FROM mysql.user WHERE User = 'mallory'")
            .trim(),
        "1"
    );
}
