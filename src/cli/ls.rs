//! `coffer ls`: the databases of a snapshot, or the tables and objects of one database.

use std::process::ExitCode;

use indicatif::HumanBytes;

use coffer::Result;
use coffer::repo::ids::short_text;
use coffer::restore::{RestoreOptions, RestorePlan};

use coffer::repo::select::ChosenSnapshot;

use super::{RepoArg, SnapshotArgs, print_json};

#[derive(clap::Args)]
pub struct LsArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    choice: SnapshotArgs,
    /// Snapshot id (prefix) or `latest` (the same as --snapshot).
    #[arg(value_name = "SNAPSHOT", conflicts_with_all = ["snapshot", "at"])]
    positional_snapshot: Option<String>,
    /// Database to list the tables of (the same as --db).
    #[arg(value_name = "DATABASE", conflicts_with = "db")]
    positional_database: Option<String>,
    /// Database to list the tables of.
    #[arg(long)]
    db: Option<String>,
    #[arg(long)]
    json: bool,
}

pub async fn run(args: LsArgs) -> Result<ExitCode> {
    let repo = args.repo.open_allowing_write_only().await?;
    let database = args.db.or(args.positional_database);
    let mut choice = args.choice;
    if let Some(snapshot) = args.positional_snapshot {
        choice.snapshot = Some(snapshot);
    }
    let ChosenSnapshot {
        id, snapshot: snap, ..
    } = choice.choose(&repo, database.as_deref()).await?;
    let Some(db) = database else {
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
        if let Some(shard) = &snap.shard {
            println!(
                "shard {}/{} of run {}: the run's other shards hold its other databases (`coffer snapshots`)",
                shard.index, shard.count, shard.run_id
            );
        }
        for db in &snap.databases {
            println!(
                "{:<40} {:>6} tables {:>12} rows {:>10}  {}",
                db.name,
                db.tables,
                db.rows,
                HumanBytes(db.bytes).to_string(),
                match &db.carried_from {
                    Some(from) => format!("carried over from {}", short_text(from)),
                    None if db.tables_carried > 0 => {
                        format!("read, {} unchanged tables carried over", db.tables_carried)
                    }
                    None => "read".to_string(),
                }
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
