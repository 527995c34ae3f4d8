//! `coffer ls`: the databases of a snapshot, or the tables and objects of one database.

use std::process::ExitCode;

use indicatif::HumanBytes;

use coffer::Result;
use coffer::restore::{RestoreOptions, RestorePlan};

use super::{RepoArg, print_json};

#[derive(clap::Args)]
pub struct LsArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Snapshot id (prefix) or `latest`.
    snapshot: String,
    /// Database to list the tables of.
    database: Option<String>,
    #[arg(long)]
    json: bool,
}

pub async fn run(args: LsArgs) -> Result<ExitCode> {
    let repo = args.repo.open().await?;
    let (id, snap) = repo.find_snapshot(&args.snapshot).await?;
    let Some(db) = args.database else {
        if args.json {
            print_json(&snap.databases)?;
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "snapshot {} of {} at {}",
            id.short(),
            snap.source.server,
            snap.time
        );
        for db in &snap.databases {
            println!(
                "{:<40} {:>6} tables {:>12} rows {:>10}",
                db.name,
                db.tables,
                db.rows,
                HumanBytes(db.bytes).to_string()
            );
        }
        for failed in &snap.failed {
            println!("{:<40} FAILED: {}", failed.name, failed.error);
        }
        return Ok(ExitCode::SUCCESS);
    };
    let index = repo.load_index().await?;
    let plan = RestorePlan::load(
        &repo,
        &index,
        &snap,
        &id.short(),
        &db,
        &RestoreOptions::default(),
    )
    .await?;
    if args.json {
        print_json(&plan.database)?;
        return Ok(ExitCode::SUCCESS);
    }
    for table in &plan.database.tables {
        println!(
            "table     {:<40} {:>12} rows {:>10}",
            table.name,
            table.rows,
            HumanBytes(table.bytes).to_string()
        );
    }
    for o in plan.database.objects() {
        println!("{:<9} {}", o.kind.keyword().to_lowercase(), o.name);
    }
    for w in &plan.database.warnings {
        println!("warning: {w}");
    }
    Ok(ExitCode::SUCCESS)
}
