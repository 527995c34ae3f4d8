//! The deployment files under `deploy/` (issue 11): the systemd units pass `systemd-analyze
//! verify` with no warning (with the binary path pointed at this build) and keep the
//! hardening and credential handling the README promises.

use std::path::Path;
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
                "LoadCredential=repository-passphrase:",
                "COFFER_PASSWORD_FILE=%d/",
                "--job %i",
                "--metrics-file",
            ] {
                assert!(text.contains(needed), "{name} lacks {needed}");
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
    assert_eq!(units.len(), 4, "{units:?}");
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
