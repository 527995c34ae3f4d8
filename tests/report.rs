//! `coffer report --html`: one self-contained page built from a real repository (backups,
//! change tracking, a restore drill, a restore with its reason), opened in headless Chromium
//! from the distribution's packages: the browser parses it into the expected elements with no
//! error, and a screenshot is kept as a test artefact (`target/test-artefacts/report.png`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn chromium() -> PathBuf {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "Chromium is not installed: run scripts/install-deps.sh (Debian package chromium)"
            )
        })
}

/// Chromium headless on `page` with `args`; returns (stdout, stderr).
fn browse(page: &Path, args: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
            &format!("--user-data-dir={}", profile.path().display()),
        ])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_html_report_is_self_contained_and_renders_in_a_browser() {
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE report_a; USE report_a; CREATE TABLE t (id INT PRIMARY KEY, v TEXT);
         INSERT INTO t SELECT seq, REPEAT('a', seq % 50) FROM seq_1_to_2000;
         CREATE DATABASE report_b; CREATE TABLE report_b.t (id INT PRIMARY KEY, v TEXT);
         INSERT INTO report_b.t VALUES (1, 'b');",
    );
    let repo = Repo::new();
    let url = server.socket_url();
    for _ in 0..2 {
        ok(repo.coffer(&["backup", "--mysql", &url, "--include", "report_*"]));
    }
    server.sql("INSERT INTO report_b.t VALUES (2, 'changed')");
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "report_*"]));
    ok(repo.coffer(&["verify-restore", "--mysql", &url, "--db", "report_a"]));
    ok(repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--db",
        "report_b",
        "--into",
        "report_b_back",
        "--reason",
        "TICKET-4711 <site 12>",
    ]));

    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let said = ok(repo.coffer(&["report", "--html", page.to_str().unwrap(), "--since", "30d"]));
    assert!(said.contains("SLA met"), "{said}");
    let html = std::fs::read_to_string(&page).unwrap();

    // Self-contained: no script, stylesheet, image or font from anywhere.
    let without_svg_namespace = html.replace("http://www.w3.org/2000/svg", "");
    for outside in [
        "http://", "https://", "<script", "<link", "<img", "src=", "url(",
    ] {
        assert!(
            !without_svg_namespace.contains(outside),
            "the page refers to {outside}"
        );
    }
    assert!(html.contains("✓ met"), "SLA at a glance");
    assert!(html.contains(&server.socket.display().to_string()));
    assert!(html.contains("verify-restore") || html.contains("Restore drills"));
    // The reason is shown, as text: what the audit log holds cannot become markup.
    assert!(
        html.contains("TICKET-4711 &lt;site 12&gt;"),
        "the restore's reason"
    );
    assert!(!html.contains("<site 12>"));

    // The browser parses the page into the charts and tables, without an error.
    let (dom, log) = browse(&page, &["--dump-dom"]);
    let charts = dom.matches("<svg").count();
    let lines = dom.matches("<polyline").count();
    assert!(charts >= 4, "{charts} charts in the rendered page");
    assert!(lines >= 6, "{lines} chart lines in the rendered page");
    assert!(dom.contains("<circle"), "the charts have points");
    assert!(dom.contains("report_b_back"), "the restore is listed");
    for error in ["Uncaught", "ERROR:CONSOLE", "Failed to load"] {
        assert!(!log.contains(error), "the browser said {error}: {log}");
    }

    // A screenshot, kept as an artefact to look at.
    let artefacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artefacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let shot = artefacts.join("report.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        &page,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,2400",
            "--hide-scrollbars",
        ],
    );
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
}
