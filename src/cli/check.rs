//! `coffer check`: verify that the repository is complete and undamaged.

use std::process::ExitCode;

use coffer::{Error, Result};

use super::RepoArg;

#[derive(clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Also read and verify every pack (reads the whole repository).
    #[arg(long)]
    read_data: bool,
}

pub async fn run(args: CheckArgs) -> Result<ExitCode> {
    let repo = args.repo.open().await?;
    let report = coffer::check::check(&repo, args.read_data).await?;
    for problem in &report.problems {
        println!("problem: {problem}");
    }
    println!(
        "checked {} snapshots, {} packs{}: {}",
        report.snapshots,
        report.packs,
        if args.read_data {
            format!(", {} blobs read", report.blobs_checked)
        } else {
            String::new()
        },
        if report.problems.is_empty() {
            "no problems".to_string()
        } else {
            format!("{} problems", report.problems.len())
        }
    );
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
