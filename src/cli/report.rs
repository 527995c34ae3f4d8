//! `coffer report --html FILE`: the SLA evidence as one self-contained page (see
//! `coffer::report`).

use std::process::ExitCode;

use coffer::sla::SlaPolicy;
use coffer::{Error, Result};

use super::RepoArg;

#[derive(clap::Args)]
pub struct ReportArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Write the report as one self-contained HTML page (no script, no external asset) to
    /// FILE.
    #[arg(long, value_name = "FILE")]
    html: std::path::PathBuf,
    /// The period shown: from this long ago (or this time) until now.
    #[arg(long, value_name = "TIME", default_value = "1y")]
    since: String,
    /// Every database needs a backup at most this old (as `coffer sla --within`).
    #[arg(long, value_name = "DURATION", default_value = "12h")]
    within: String,
    /// Each of the last N months needs a kept snapshot (as `coffer sla --monthly`; 0: not
    /// shown).
    #[arg(long, value_name = "N", default_value_t = 12)]
    monthly: u32,
}

pub async fn run(args: ReportArgs) -> Result<ExitCode> {
    let now = jiff::Timestamp::now();
    let since = coffer::timespec::parse_point_in_time(&args.since, now)?;
    let within = coffer::timespec::parse_setting_duration(&args.within, "--within")?;
    let policy = SlaPolicy {
        within: jiff::SignedDuration::try_from(within)
            .map_err(|e| Error::invalid(format!("--within {}: {e}", args.within)))?,
        monthly: args.monthly,
    };
    let repo = args.repo.open_allowing_write_only().await?;
    let summaries = repo.summaries().await?;
    // The audit log needs a full key; a write-only host's report has no restores in it.
    let audit = match repo.audit_records().await {
        Ok((records, _damaged)) => records,
        Err(e) => {
            eprintln!(
                "note: the audit log is not readable here ({e}): the report shows no drills or restores"
            );
            Vec::new()
        }
    };
    let sla = coffer::sla::report(&summaries, None, &policy, now, &|_| true);
    let page = coffer::report::html(&coffer::report::ReportInput {
        repository: &args.repo.repo,
        generated: now,
        since,
        summaries: &summaries,
        audit: &audit,
        sla: &sla,
    });
    std::fs::write(&args.html, page.as_bytes()).map_err(|e| {
        Error::invalid(format!("writing {}", args.html.display()))
            .with_source(e)
            .with_hint("give a path in a folder this user may write")
    })?;
    println!(
        "wrote {} ({} KiB): {} snapshot(s) since {}, {} server(s), SLA {}",
        args.html.display(),
        page.len() / 1024,
        summaries.iter().filter(|(_, s)| s.time >= since).count(),
        since.strftime("%Y-%m-%d"),
        sla.servers.len(),
        if sla.met { "met" } else { "missed" }
    );
    Ok(ExitCode::SUCCESS)
}
