//! The deployment files under `deploy/` (issue 11): the systemd units pass `systemd-analyze
//! verify` with no warning (with the binary path pointed at this build), the GitHub Actions
//! workflows pass actionlint (with shellcheck on their scripts), the Kubernetes manifests pass
//! kubernetes-validate against the API schemas, and all keep the hardening and credential
//! handling the README promises.

use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn systemd_units_verify_cleanly_and_stay_hardened() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut units = Vec::new();
    for entry in std::fs::read_dir(&source).expect("deploy/systemd") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_string();
        if !(name.ends_with(".service") || name.ends_with(".timer")) {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read unit");
        if name.ends_with(".service") {
            for needed in [
                "User=coffer",
                "ProtectSystem=strict",
                "NoNewPrivileges=true",
                "--job %i",
            ] {
                assert!(text.contains(needed), "{name} lacks {needed}");
            }
            // The binary-log archive holds a write-only key; the rest a full key.
            let key = if name.starts_with("coffer-log-") {
                ["LoadCredential=write-only-key:", "COFFER_KEY_FILE=%d/"]
            } else {
                [
                    "LoadCredential=repository-passphrase:",
                    "COFFER_PASSWORD_FILE=%d/",
                ]
            };
            for needed in key {
                assert!(text.contains(needed), "{name} lacks {needed}");
            }
            // A run that ends writes its metrics; the follower runs until stopped.
            if text.contains("Type=oneshot") {
                assert!(
                    text.contains("--metrics-file"),
                    "{name} lacks --metrics-file"
                );
            } else {
                assert!(
                    text.contains("Restart=always"),
                    "{name} lacks Restart=always"
                );
            }
            assert!(
                !text.contains("COFFER_PASSWORD="),
                "{name}: secrets only as credentials"
            );
        }
        let local = text.replace("/usr/local/bin/coffer", env!("CARGO_BIN_EXE_coffer"));
        std::fs::write(dir.path().join(&name), local).expect("write unit");
        units.push(name.replace("@.", "@server-01."));
    }
    assert_eq!(units.len(), 7, "{units:?}");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze (scripts/install-deps.sh installs systemd)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

#[test]
fn github_workflows_pass_actionlint_and_keep_secrets_off_command_lines() {
    let files = deploy_files("github-actions", "yml");
    assert!(!files.is_empty(), "no workflow in deploy/github-actions");
    check_quietly(
        Command::new(venv_tool("actionlint"))
            .arg("-shellcheck")
            .arg(venv_tool("shellcheck"))
            .args(files.iter().map(|(path, _)| path)),
    );
    for (path, text) in &files {
        let name = path.display();
        for needed in [
            "- cron: \"0 2,14 * * *\"",
            "workflow_dispatch:",
            "concurrency:",
            "id-token: write",
            "contents: read",
            "azure/login@",
            "--log-format json",
            "--metrics-file",
            "coffer sla --job",
            "COFFER_MYSQL_PASSWORD: ${{ secrets.COFFER_MYSQL_PASSWORD }}",
        ] {
            assert!(text.contains(needed), "{name} lacks {needed}");
        }
        if text.contains("--shard") {
            assert!(
                text.contains("COFFER_RUN_ID: github-${{ github.run_id }}"),
                "{name}: the shards need one run id"
            );
        }
        let commands = run_commands(text);
        assert!(
            commands
                .iter()
                .any(|line| line.contains("coffer backup --job")),
            "{name}: no backup command in {commands:?}"
        );
        for line in commands {
            assert!(
                !line.contains("secrets."),
                "{name}: a secret on a command line (give it in env:): {line}"
            );
        }
    }
}

#[test]
fn kubernetes_manifests_validate_and_stay_hardened() {
    let files = deploy_files("kubernetes", "yaml");
    // 1.29 is the first release with backoffLimitPerIndex on by default; 1.37 the newest the
    // pinned kubernetes-validate knows. --strict refuses fields the API does not have.
    check_quietly(
        Command::new(venv_tool("kubernetes-validate"))
            .args(["--strict", "--quiet", "--kubernetes-version", "1.29.0"])
            .args(["--kubernetes-version", "1.37.0"])
            .args(files.iter().map(|(path, _)| path)),
    );
    let mut cron_jobs = 0;
    let mut indexed = 0;
    for (path, text) in &files {
        let name = path.display();
        if text.contains("kind: CronJob") {
            cron_jobs += 1;
            for needed in [
                "timeZone: \"Etc/UTC\"",
                "concurrencyPolicy: Forbid",
                "startingDeadlineSeconds:",
                "activeDeadlineSeconds:",
                "azure.workload.identity/use: \"true\"",
                "serviceAccountName: coffer",
                "runAsNonRoot: true",
                "readOnlyRootFilesystem: true",
                "allowPrivilegeEscalation: false",
                "drop: [ALL]",
                "type: RuntimeDefault",
                "mountPath: /var/cache/coffer",
                "mountPath: /tmp",
                "emptyDir:",
            ] {
                assert!(text.contains(needed), "{name} lacks {needed}");
            }
        }
        // The follower: one pod at a time, however it is replaced.
        if text.contains("kind: Deployment") {
            for needed in [
                "replicas: 1",
                "type: Recreate",
                "terminationGracePeriodSeconds:",
                "runAsNonRoot: true",
                "readOnlyRootFilesystem: true",
                "allowPrivilegeEscalation: false",
                "drop: [ALL]",
                "name: COFFER_KEY_FILE",
            ] {
                assert!(text.contains(needed), "{name} lacks {needed}");
            }
        }
        // The Indexed Job: N shards, N pods, each shard retried alone.
        let index = "\"$(JOB_COMPLETION_INDEX)/";
        if let Some(at) = text.find(index) {
            indexed += 1;
            let shards: String = text[at + index.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            assert!(
                !shards.is_empty(),
                "{name}: --shard $(JOB_COMPLETION_INDEX)/N"
            );
            for needed in [
                "completionMode: Indexed".to_string(),
                format!("completions: {shards}"),
                format!("parallelism: {shards}"),
                "backoffLimitPerIndex:".to_string(),
                "restartPolicy: Never".to_string(),
                // Every pod of the Job shares one run id: one plan, one backup.
                "name: COFFER_RUN_ID".to_string(),
                "metadata.labels['batch.kubernetes.io/job-name']".to_string(),
            ] {
                assert!(text.contains(&needed), "{name} lacks {needed}");
            }
        }
        // Secrets live in the cluster (a Secret made by hand, workload identity), never here.
        for literal in [
            "kind: Secret",
            "stringData:",
            "name: COFFER_PASSWORD\n",
            "name: COFFER_MYSQL_PASSWORD\n",
            "password = ",
        ] {
            assert!(
                !text.contains(literal),
                "{name}: a literal secret ({literal:?})"
            );
        }
    }
    assert!(
        cron_jobs >= 3 && indexed == 1,
        "{cron_jobs} CronJobs, {indexed} Indexed"
    );
    let all: String = files.iter().map(|(_, text)| text.as_str()).collect();
    assert!(
        all.contains("azure.workload.identity/client-id:"),
        "no workload identity"
    );
    assert!(
        all.contains("COFFER_MYSQL_PASSWORD_FILE"),
        "no MySQL password file"
    );
}

/// A checker that scripts/install-deps.sh installs into .test-tools/venv.
fn venv_tool(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".test-tools/venv/bin")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/install-deps.sh",
        path.display()
    );
    path
}

/// The files of deploy/`dir` ending in `.ext`, in name order, with their text.
fn deploy_files(dir: &str, ext: &str) -> Vec<(PathBuf, String)> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(dir);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&source)
        .expect(dir)
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == ext))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read deploy file");
            (path, text)
        })
        .collect()
}

/// Runs a checker, which must succeed and print nothing.
fn check_quietly(command: &mut Command) {
    let out = command.output().expect("run the checker");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "{command:?}: {said}"
    );
}

/// The command lines of a workflow's `run:` steps, inline or block (`|`, `>`) scalars: a block
/// is every line after `run:` indented more than the line that holds it.
fn run_commands(workflow: &str) -> Vec<&str> {
    let mut commands = Vec::new();
    let mut block_indent = None;
    for line in workflow.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(key_indent) = block_indent {
            if line.trim().is_empty() || indent > key_indent {
                commands.push(line.trim());
                continue;
            }
            block_indent = None;
        }
        let key = line.trim_start().trim_start_matches("- ");
        if let Some(value) = key.strip_prefix("run:").map(str::trim) {
            if value.starts_with('|') || value.starts_with('>') {
                block_indent = Some(indent);
            } else {
                commands.push(value);
            }
        }
    }
    commands
}
