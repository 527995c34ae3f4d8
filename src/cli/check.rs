//! `coffer check`: verify that the repository is complete and undamaged.

use std::process::ExitCode;

use coffer::check::{CheckReport, DataCheck};
use coffer::{Error, Result};

use super::{RepoArg, print_json};

#[derive(clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Also read and verify every pack (reads the whole repository).
    #[arg(long, conflicts_with = "read_data_subset")]
    read_data: bool,
    /// Read and verify only some packs: a random share (`5%`) or part n of N by pack id
    /// (`2/7`: seven runs, n = 1..7, read every pack once), so that a weekly run covers the
    /// repository over time.
    #[arg(long, value_name = "SHARE|n/N", value_parser = DataCheck::parse_subset)]
    read_data_subset: Option<DataCheck>,
    /// Print one JSON summary on stdout (the exit code is the same).
    #[arg(long)]
    json: bool,
    /// The repository went backwards and an operator knows why (a restore of the storage, a
    /// deliberate deletion): make the snapshots there now this host's mark.
    #[arg(long)]
    accept_rollback: bool,
}

pub async fn run(args: CheckArgs) -> Result<ExitCode> {
    let repo = args.repo.open().await?;
    let data = match (args.read_data, args.read_data_subset) {
        (true, _) => DataCheck::All,
        (false, Some(subset)) => subset,
        (false, None) => DataCheck::None,
    };
    let mut report = coffer::check::check(&repo, data).await?;
    if args.accept_rollback {
        args.repo.reset_snapshot_mark(&repo).await?;
    } else if let Some(why) = RepoArg::rollback(&repo) {
        report.problems.push(format!(
            "the repository went backwards since this host last saw it: {why} (someone with delete rights on the storage, or a restore of it; once you know why, `coffer check --accept-rollback`)"
        ));
    }
    if args.json {
        print_json(&serde_json::json!({
            "ok": report.problems.is_empty(),
            "snapshots": report.snapshots,
            "packs": report.packs,
            "packs_read": report.packs_read,
            "blobs_checked": report.blobs_checked,
            "problems": report.problems,
        }))?;
    } else {
        print_summary(&report, data);
    }
    if report.problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Error::corrupt(format!(
            "the repository has {} problems",
            report.problems.len()
        ))
        .with_hint(
            "snapshots not named above still restore; keep the repository as it is and investigate",
        ))
    }
}

fn print_summary(report: &CheckReport, data: DataCheck) {
    for problem in &report.problems {
        println!("problem: {problem}");
    }
    println!(
        "checked {} snapshots, {} packs{}: {}",
        report.snapshots,
        report.packs,
        if data == DataCheck::None {
            String::new()
        } else {
            format!(
                ", {} packs and {} blobs read",
                report.packs_read, report.blobs_checked
            )
        },
        if report.problems.is_empty() {
            "no problems".to_string()
        } else {
            format!("{} problems", report.problems.len())
        }
    );
}
