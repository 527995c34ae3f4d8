//! `coffer check`: verify that the repository is complete and undamaged.

use std::process::ExitCode;

use coffer::check::DataCheck;
use coffer::{Error, Result};

use super::RepoArg;

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
}

pub async fn run(args: CheckArgs) -> Result<ExitCode> {
    let repo = args.repo.open().await?;
    let data = match (args.read_data, args.read_data_subset) {
        (true, _) => DataCheck::All,
        (false, Some(subset)) => subset,
        (false, None) => DataCheck::None,
    };
    let report = coffer::check::check(&repo, data).await?;
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
