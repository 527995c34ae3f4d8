//! `--metrics-file PATH`: Prometheus text-format metrics written when a command ends, for
//! node_exporter's textfile collector (give each job and command its own file, e.g.
//! `…/textfile_collector/coffer-backup-server-01.prom`).
//!
//! Every run writes when it ended, whether it succeeded, how long it took, and keeps the time
//! of the last success from the file it replaces, so an alert can fire on "no successful
//! backup for 12 h". Commands add their own figures with [`record`]; the repository, server,
//! job and shard become labels of every sample. The file is replaced atomically (written aside,
//! renamed).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Mutex;

use coffer::{Error, Result};

struct Sample {
    name: &'static str,
    help: &'static str,
    labels: Vec<(&'static str, String)>,
    value: f64,
}

static SAMPLES: Mutex<Vec<Sample>> = Mutex::new(Vec::new());
static LABELS: Mutex<BTreeMap<&'static str, String>> = Mutex::new(BTreeMap::new());

/// A label of every sample of this run (`repository`, `server`, `job`, `shard`).
pub fn label(name: &'static str, value: impl Into<String>) {
    if let Ok(mut labels) = LABELS.lock() {
        labels.insert(name, value.into());
    }
}

/// The repository as a label: its location without credentials or query.
pub fn repository_label(location: &str) -> String {
    match url::Url::parse(location) {
        Ok(mut url) if url.scheme().len() > 1 => {
            let _ = url.set_password(None);
            let _ = url.set_username("");
            url.set_query(None);
            url.to_string()
        }
        _ => location.to_string(),
    }
}

/// A figure of this run: `name` (a gauge) with `help`, and labels beyond the common ones.
pub fn record(name: &'static str, help: &'static str, labels: &[(&'static str, &str)], value: f64) {
    if let Ok(mut samples) = SAMPLES.lock() {
        samples.push(Sample {
            name,
            help,
            labels: labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            value,
        });
    }
}

/// Write the metrics of `command`, which ran `seconds` and succeeded or not, to `path`.
pub fn write(path: &Path, command: &str, seconds: f64, success: bool) -> Result<()> {
    let now = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
    let last_success = if success {
        Some(now)
    } else {
        previous_value(path, "coffer_last_success_timestamp_seconds")
    };
    record(
        "coffer_last_run_timestamp_seconds",
        "When the command last ended (Unix time).",
        &[],
        now,
    );
    record(
        "coffer_last_run_success",
        "1 if the command's last run succeeded completely, else 0.",
        &[],
        if success { 1.0 } else { 0.0 },
    );
    if let Some(at) = last_success {
        record(
            "coffer_last_success_timestamp_seconds",
            "When the command last succeeded completely (Unix time).",
            &[],
            at,
        );
    }
    record(
        "coffer_run_duration_seconds",
        "How long the command's last run took.",
        &[],
        seconds,
    );
    let mut common: Vec<(&'static str, String)> = LABELS
        .lock()
        .map(|l| l.iter().map(|(k, v)| (*k, v.clone())).collect())
        .unwrap_or_default();
    common.insert(0, ("command", command.to_string()));
    let samples = SAMPLES
        .lock()
        .map(|mut s| std::mem::take(&mut *s))
        .unwrap_or_default();
    let text = render(&samples, &common);
    let aside = path.with_extension(format!("prom.{}.tmp", std::process::id()));
    let written = std::fs::write(&aside, text).and_then(|()| std::fs::rename(&aside, path));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&aside);
        Error::invalid(format!("writing the metrics file {}", path.display()))
            .with_source(e)
            .with_hint("the folder must exist and be writable (node_exporter's textfile directory)")
    })
}

/// The exposition format: samples of one name together, after their HELP and TYPE lines.
fn render(samples: &[Sample], common: &[(&'static str, String)]) -> String {
    let mut by_name: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
    for sample in samples {
        by_name.entry(sample.name).or_default().push(sample);
    }
    let mut out = String::new();
    for (name, group) in by_name {
        let help = group.first().map_or("", |s| s.help);
        let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(out, "# TYPE {name} gauge");
        for sample in group {
            let labels: Vec<String> = common
                .iter()
                .chain(&sample.labels)
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            let _ = writeln!(out, "{name}{{{}}} {}", labels.join(","), sample.value);
        }
    }
    out
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// The value of the first sample of `name` in the file at `path`, if any.
fn previous_value(path: &Path, name: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_grouped_and_labels_escaped() {
        let samples = vec![
            Sample {
                name: "coffer_backup_databases",
                help: "Databases by state.",
                labels: vec![("state", "ok".into())],
                value: 2.0,
            },
            Sample {
                name: "coffer_backup_databases",
                help: "Databases by state.",
                labels: vec![("state", "failed".into())],
                value: 0.0,
            },
        ];
        let text = render(&samples, &[("server", "db \"1\"\\x".into())]);
        assert_eq!(
            text.matches("# TYPE coffer_backup_databases gauge").count(),
            1
        );
        assert!(
            text.contains(r#"coffer_backup_databases{server="db \"1\"\\x",state="ok"} 2"#),
            "{text}"
        );
        assert_eq!(
            repository_label("s3://bucket/p?endpoint=x&secret=y"),
            "s3://bucket/p"
        );
        assert_eq!(repository_label("/srv/repo"), "/srv/repo");
    }
}
