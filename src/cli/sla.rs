//! `coffer sla`: which databases have no backup within the window, which months no snapshot.

use std::process::ExitCode;

use clap::ArgMatches;

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
    if args.json {
        print_json(&report)?;
    } else {
        print_report(&report, &args.within);
    }
    Ok(if report.met {
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

fn hours(duration: jiff::SignedDuration) -> String {
    let hours = duration.as_secs() / 3600;
    if hours >= 48 {
        format!("{}d {}h", hours / 24, hours % 24)
    } else {
        format!("{hours}h")
    }
}
