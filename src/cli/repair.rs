//! `coffer repair index`: index the packs no intact index file lists, from their own headers.

use std::process::ExitCode;

use coffer::repair::repair_index;
use coffer::repo::ids::short_text;
use coffer::{Error, Result};

use super::{RepoArg, print_json};

#[derive(clap::Args)]
pub struct RepairArgs {
    #[command(subcommand)]
    what: RepairWhat,
}

#[derive(clap::Subcommand)]
enum RepairWhat {
    /// Rebuild lost or damaged index files from the pack headers (adds a new index file;
    /// deletes nothing).
    Index {
        #[command(flatten)]
        repo: RepoArg,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: RepairArgs) -> Result<ExitCode> {
    let RepairWhat::Index { repo, json } = args.what;
    let repo = repo.open().await?;
    let report = repair_index(&repo).await?;
    if json {
        print_json(&report)?;
    } else {
        for problem in &report.unreadable {
            println!("not indexed: {problem}");
        }
        println!(
            "{} packs were not indexed; {} indexed again ({} blobs){}",
            report.unindexed_packs,
            report.packs_indexed,
            report.blobs_indexed,
            report
                .index_file
                .as_deref()
                .map(|id| format!(" in index file {}", short_text(id)))
                .unwrap_or_default()
        );
    }
    if report.unreadable.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Error::corrupt(format!(
            "{} packs could not be read back and stay unindexed",
            report.unreadable.len()
        ))
        .with_hint("their blobs are lost; `coffer check` names the snapshots that need them"))
    }
}
