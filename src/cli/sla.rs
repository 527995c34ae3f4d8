//! `coffer sla`: which databases have no backup within the window, which months no snapshot.

use std::process::ExitCode;

use clap::ArgMatches;

use coffer::pitr::coverage::{RecoveryPoint, recovery_points};
use coffer::sla::{LiveServer, SlaPolicy, SlaReport, report};
use coffer::source::mysql::catalog;
use coffer::{Error, Result};

use super::{MysqlArg, RepoArg, print_json};

/// Exit code when the report finds a database or a month missing.
pub const EXIT_SLA_MISSED: u8 = 4;

#[derive(clap::Args)]
pub struct SlaArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Every database needs a backup at most this old (e.g. 12h).
    #[arg(long, value_name = "DURATION", default_value = "12h")]
    within: String,
    /// Each of the last N months, the current one included, needs a kept snapshot (0: not
    /// checked). Months before the server's first snapshot are not counted.
    #[arg(long, value_name = "N", default_value_t = 0)]
    monthly: u32,
    /// Compare with the databases on this server now, so a database never backed up shows up
    /// (same form and password variables as `backup --mysql`). Without it, the databases of the
    /// newest backup are expected.
    #[arg(long, env = "COFFER_MYSQL_URL", hide_env_values = true)]
    mysql: Option<String>,
    /// Only databases matching this glob, as the backup selects them (repeatable).
    #[arg(long, value_name = "GLOB")]
    include: Vec<String>,
    /// Leave out databases matching this glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// The archived binary log (`coffer log`) must be at most this far behind (e.g. 15m) and
    /// without a gap inside `--within`: point-in-time recovery's promise. Without it, the
    /// archive's recovery point is reported when there is one, but not judged.
    #[arg(long, value_name = "DURATION")]
    log_within: Option<String>,
    /// Machine-readable output (the exit code is the same).
    #[arg(long)]
    json: bool,
}

pub async fn run(args: SlaArgs, matches: &ArgMatches) -> Result<ExitCode> {
    let within = coffer::timespec::parse_setting_duration(&args.within, "--within")?;
    if within.is_zero() {
        return Err(Error::invalid("--within 0 leaves no time for a backup")
            .with_hint("give the window backups must fall in, e.g. --within 12h"));
    }
    let policy = SlaPolicy {
        within: jiff::SignedDuration::try_from(within)
            .map_err(|e| Error::invalid(format!("--within {}: {e}", args.within)))?,
        monthly: args.monthly,
    };
    let include = super::backup::compile_globs(&args.include)?;
    let exclude = super::backup::compile_globs(&args.exclude)?;
    let selected = |name: &str| {
        (include.is_empty() || include.iter().any(|p| p.matches(name)))
            && !exclude.iter().any(|p| p.matches(name))
    };
    let live = match &args.mysql {
        Some(url) => {
            let target = MysqlArg { mysql: url.clone() }.target(matches)?;
            let mut conn = target.connect().await?;
            let databases = catalog::list_databases(&mut conn)
                .await?
                .into_iter()
                .map(|d| d.name)
                .collect();
            Some(LiveServer {
                server: target.describe(),
                databases,
            })
        }
        None => None,
    };
    let repo = args.repo.open_allowing_write_only().await?;
    let summaries = repo.summaries().await?;
    let report = report(
        &summaries,
        live.as_ref(),
        &policy,
        jiff::Timestamp::now(),
        &selected,
    );
    record_metrics(&report);
    let log_within = args
        .log_within
        .as_deref()
        .map(|d| coffer::timespec::parse_setting_duration(d, "--log-within"))
        .transpose()?;
    let segments = repo.log_segments().await?;
    let (streams, gaps) = coffer::pitr::coverage::coverage(&segments);
    let points = recovery_points(&streams, &gaps, report.checked_at);
    let log_problems = log_problems(&points, log_within, within, report.checked_at);
    record_log_metrics(&points);
    if args.json {
        let mut value = serde_json::to_value(&report)
            .map_err(|e| Error::invalid("encoding the JSON output").with_source(e))?;
        if let Some(object) = value.as_object_mut() {
            object.insert("log".into(), serde_json::json!(points));
            object.insert("log_problems".into(), serde_json::json!(log_problems));
            if !log_problems.is_empty() {
                object.insert("met".into(), serde_json::Value::Bool(false));
            }
        }
        print_json(&value)?;
    } else {
        print_report(&report, &args.within);
        print_log(&points, &log_problems);
    }
    Ok(if report.met && log_problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_SLA_MISSED)
    })
}

/// The report's figures for `--metrics-file`, per server (label `sla_server`: `server` is
/// the common label of the server `--mysql` names, when given).
fn record_metrics(report: &SlaReport) {
    use super::metrics::record;
    for server in &report.servers {
        let labels = [("sla_server", server.server.as_str())];
        record(
            "coffer_sla_databases_missing",
            "Databases with no backup within the SLA window.",
            &labels,
            server.missing.len() as f64,
        );
        record(
            "coffer_sla_databases_expected",
            "Databases the SLA report expected a backup of.",
            &labels,
            server.expected as f64,
        );
        record(
            "coffer_sla_months_missing",
            "Months of the checked range without a snapshot.",
            &labels,
            server.months_missing.len() as f64,
        );
    }
}

fn print_report(report: &SlaReport, within: &str) {
    let now = report.checked_at;
    println!(
        "SLA at {}: every database backed up within {within}{}",
        now.strftime("%Y-%m-%d %H:%M UTC"),
        if report.monthly > 0 {
            format!(", a snapshot in each of the last {} months", report.monthly)
        } else {
            String::new()
        }
    );
    if report.servers.is_empty() {
        println!("no snapshots and no server to compare with");
    }
    for server in &report.servers {
        println!(
            "server {} ({} databases, as {}): {} backed up within {within}, {} missing",
            server.server,
            server.expected,
            match server.expected_from {
                "server" => "on the server now",
                _ => "in the newest backup",
            },
            server.backed_up,
            server.missing.len()
        );
        for missing in &server.missing {
            match (missing.last_backup, &missing.snapshot) {
                (Some(time), Some(id)) => println!(
                    "  MISSING {}: last backup {} (snapshot {id}), {} ago",
                    missing.database,
                    time.strftime("%Y-%m-%d %H:%M:%S UTC"),
                    hours(now.duration_since(time))
                ),
                _ => println!("  MISSING {}: never backed up", missing.database),
            }
        }
        if !server.months_missing.is_empty() {
            println!(
                "  months without a snapshot: {}",
                server.months_missing.join(", ")
            );
        }
    }
    if report.met {
        println!("SLA met");
    } else {
        println!(
            "SLA NOT MET: {} databases, {} months missing",
            report.missing_databases(),
            report.missing_months()
        );
    }
}

/// What breaks the archive's promise (`--log-within`): a lag past it, a gap inside the SLA
/// window. Nothing is judged without `--log-within`.
fn log_problems(
    points: &[RecoveryPoint],
    log_within: Option<std::time::Duration>,
    within: std::time::Duration,
    now: jiff::Timestamp,
) -> Vec<String> {
    let Some(log_within) = log_within else {
        return Vec::new();
    };
    let window_start = jiff::SignedDuration::try_from(within)
        .ok()
        .and_then(|w| now.checked_sub(w).ok());
    let mut problems = Vec::new();
    for point in points {
        if point.lag_seconds > log_within.as_secs() as i64 {
            problems.push(format!(
                "{}: the archived binary log was last current {}s ago (allowed: {}s)",
                point.server,
                point.lag_seconds,
                log_within.as_secs()
            ));
        }
        for gap in &point.gaps {
            let recent = match (gap.to.or(gap.from), window_start) {
                (Some(at), Some(start)) => at >= start,
                _ => true,
            };
            if recent {
                problems.push(format!(
                    "{}: a gap in the archived binary log: {}",
                    point.server, gap.reason
                ));
            }
        }
    }
    problems
}

fn record_log_metrics(points: &[RecoveryPoint]) {
    use super::metrics::record;
    for point in points {
        let labels = [("sla_server", point.server.as_str())];
        record(
            "coffer_log_archive_lag_seconds",
            "Seconds since the archived binary log was last current (its newest segment was stored).",
            &labels,
            point.lag_seconds as f64,
        );
        record(
            "coffer_log_archive_gaps",
            "Gaps in the archived binary log (recorded, or breaks in its chain).",
            &labels,
            point.gaps.len() as f64,
        );
    }
}

fn print_log(points: &[RecoveryPoint], problems: &[String]) {
    for point in points {
        println!(
            "binary-log archive of {}: current {}s ago{}; {} gap(s)",
            point.server,
            point.lag_seconds,
            point
                .newest_event
                .map(|t| format!(", newest event {}", t.strftime("%Y-%m-%d %H:%M:%S UTC")))
                .unwrap_or_default(),
            point.gaps.len()
        );
        for gap in &point.gaps {
            println!("  GAP: {}", gap.reason);
        }
    }
    for problem in problems {
        println!("LOG ARCHIVE NOT MET: {problem}");
    }
}

fn hours(duration: jiff::SignedDuration) -> String {
    let hours = duration.as_secs() / 3600;
    if hours >= 48 {
        format!("{}d {}h", hours / 24, hours % 24)
    } else {
        format!("{hours}h")
    }
}
