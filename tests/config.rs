//! The configuration file (issue 11): a named job supplies what the command line and the
//! environment do not (flags win, then the environment), secrets only by reference (files or
//! environment names), inline secrets and unknown keys refused with the key and its line,
//! `config check` and `config check --connect`.

mod common;

use std::path::Path;
use std::process::Output;

use common::*;

/// `coffer ARGS` with nothing from the environment but what `env` gives: no repository, no
/// passphrase, no configuration path.
fn bare(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = coffer_cmd(args, None, env);
    cmd.env_remove("COFFER_PASSWORD")
        .env_remove("COFFER_REPO")
        .env_remove("COFFER_CONFIG")
        .env_remove("COFFER_JOB");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run coffer")
}

fn failed(out: Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure:\n{}",
        stdout(&out)
    );
    stderr(&out)
}

struct Setup {
    dir: tempfile::TempDir,
    repo: Repo,
}

impl Setup {
    fn new(server: &MariaDb) -> Setup {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("passphrase"), format!("{PASSWORD}\n")).expect("write");
        std::fs::write(dir.path().join("mysql-password"), TEST_USER_PASSWORD).expect("write");
        let setup = Setup {
            dir,
            repo: Repo::new(),
        };
        setup.write(&setup.config_text(server, ""));
        setup
    }

    fn path(&self) -> String {
        self.dir.path().join("coffer.toml").display().to_string()
    }

    fn config_text(&self, server: &MariaDb, extra: &str) -> String {
        let socket = server
            .socket_url()
            .split("socket=")
            .nth(1)
            .expect("socket")
            .to_string();
        format!(
            "# the backups of the test server\n\
             [defaults]\n\
             repo = \"{repo}\"\n\
             password_file = \"{dir}/passphrase\"\n\
             \n\
             [jobs.nightly]\n\
             mysql = \"mysql://{TEST_USER}@localhost/?socket={socket}\"\n\
             mysql_password_file = \"{dir}/mysql-password\"\n\
             include = [\"cfg_*\"]\n\
             exclude = [\"cfg_b\"]\n\
             tag = [\"from-config\"]\n\
             jobs = 2\n\
             {extra}\n\
             metrics_file = \"{dir}/backup.prom\"\n\
             [jobs.nightly.retention]\n\
             keep_last = 1\n",
            repo = self.repo.path().display(),
            dir = self.dir.path().display(),
        )
    }

    fn write(&self, text: &str) {
        std::fs::write(Path::new(&self.path()), text).expect("write config");
    }

    fn snapshots(&self, repo: &Path) -> serde_json::Value {
        let out = bare(
            &["snapshots", "--json"],
            &[
                ("COFFER_REPO", &repo.display().to_string()),
                ("COFFER_PASSWORD", PASSWORD),
            ],
        );
        serde_json::from_str(&ok(out)).expect("json")
    }
}

/// The databases of a snapshot listed by `snapshots --json`, from `ls ID --json`.
fn databases(repo: &Path, snapshot: &serde_json::Value) -> Vec<String> {
    let id = snapshot["id"].as_str().expect("id");
    let out = bare(
        &["ls", id, "--json"],
        &[
            ("COFFER_REPO", &repo.display().to_string()),
            ("COFFER_PASSWORD", PASSWORD),
        ],
    );
    let listed: serde_json::Value = serde_json::from_str(&ok(out)).expect("json");
    listed
        .as_array()
        .map(|d| {
            d.iter()
                .filter_map(|e| e["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_job_supplies_what_flags_and_environment_do_not() {
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE cfg_a; CREATE TABLE cfg_a.t (id INT PRIMARY KEY); INSERT INTO cfg_a.t VALUES (1); \
         CREATE DATABASE cfg_b; CREATE TABLE cfg_b.t (id INT PRIMARY KEY); INSERT INTO cfg_b.t VALUES (2);",
    );
    let setup = Setup::new(server);
    let config = setup.path();

    // Everything from the file: server, password by reference, repository, key, selection, tags.
    ok(bare(
        &["--config", &config, "backup", "--job", "nightly"],
        &[],
    ));
    let listed = setup.snapshots(setup.repo.path());
    let first = &listed[0];
    assert_eq!(databases(setup.repo.path(), first), ["cfg_a"]);
    assert_eq!(first["tags"][0], "from-config");
    // A global flag from the file too.
    let metrics = std::fs::read_to_string(setup.dir.path().join("backup.prom")).expect("metrics");
    assert!(metrics.contains("job=\"nightly\""), "{metrics}");

    // Flags win over the file (also for lists: the file's exclude is not added to the flag's).
    ok(bare(
        &[
            "--config",
            &config,
            "backup",
            "--job",
            "nightly",
            "--include",
            "cfg_b",
            "--exclude",
            "none",
        ],
        &[],
    ));
    let listed = setup.snapshots(setup.repo.path());
    assert_eq!(databases(setup.repo.path(), &listed[1]), ["cfg_b"]);

    // The environment wins over the file: another repository, the job found through COFFER_CONFIG.
    let other = Repo::new();
    ok(bare(
        &["backup"],
        &[
            ("COFFER_CONFIG", &config),
            ("COFFER_JOB", "nightly"),
            ("COFFER_REPO", &other.path().display().to_string()),
        ],
    ));
    assert_eq!(
        setup.snapshots(other.path()).as_array().map(Vec::len),
        Some(1)
    );

    // Another command takes its own settings from the same job: forget's retention.
    ok(bare(
        &["--config", &config, "forget", "--job", "nightly"],
        &[],
    ));
    assert_eq!(
        setup.snapshots(setup.repo.path()).as_array().map(Vec::len),
        Some(1)
    );

    let checked = ok(bare(
        &["--config", &config, "config", "check", "--connect"],
        &[],
    ));
    assert!(checked.contains("nightly"), "{checked}");
    assert!(
        checked.contains("server and repository answer"),
        "{checked}"
    );

    // The doctor checks the job's server (with its password file) and repository.
    let out = bare(
        &["--config", &config, "doctor", "--job", "nightly", "--json"],
        &[],
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", stderr(&out)));
    let kinds: Vec<&str> = report["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .map(|s| s["kind"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["server", "repository"], "{report:#}");
    assert_eq!(
        report["sections"][0]["checks"][0]["status"], "ok",
        "{report:#}"
    );
    assert_eq!(
        report["sections"][1]["checks"][0]["status"], "ok",
        "{report:#}"
    );
}

#[test]
fn inline_secrets_and_unknown_keys_are_refused_by_line() {
    let server = MariaDb::shared();
    let setup = Setup::new(server);
    let config = setup.path();

    setup.write(&setup.config_text(server, "password = \"hunter2-inline\""));
    let err = failed(bare(
        &["--config", &config, "backup", "--job", "nightly"],
        &[],
    ));
    assert!(
        err.contains("line 13") && err.contains("`password`"),
        "{err}"
    );
    assert!(err.contains("password_file"), "names the fix: {err}");
    assert!(
        !err.contains("hunter2-inline"),
        "never echoes the secret: {err}"
    );
    let err = failed(bare(&["--config", &config, "config", "check"], &[]));
    assert!(err.contains("line 13"), "{err}");

    setup.write(&setup.config_text(server, "jbos = 3"));
    let err = failed(bare(
        &["--config", &config, "backup", "--job", "nightly"],
        &[],
    ));
    assert!(
        err.contains("line 13") && err.contains("unknown setting `jbos`"),
        "{err}"
    );

    let with_password = setup
        .config_text(server, "")
        .replace("mysql://coffer@", "mysql://coffer:pw-inline@");
    setup.write(&with_password);
    let err = failed(bare(
        &["--config", &config, "backup", "--job", "nightly"],
        &[],
    ));
    assert!(err.contains("password inside its URL"), "{err}");
    assert!(!err.contains("pw-inline"), "{err}");

    setup.write(&setup.config_text(server, ""));
    let err = failed(bare(
        &["--config", &config, "backup", "--job", "weekly"],
        &[],
    ));
    assert!(
        err.contains("no job named \"weekly\"") && err.contains("nightly"),
        "{err}"
    );
}
