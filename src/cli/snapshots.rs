//! `coffer snapshots`: list the snapshots of a repository.

use std::process::ExitCode;

use indicatif::HumanBytes;

use coffer::Result;
use coffer::repo::ids::short_text;

use super::{RepoArg, print_json};

#[derive(clap::Args)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: SnapshotsArgs) -> Result<ExitCode> {
    let repo = args.repo.open().await?;
    let snapshots = repo.snapshots().await?;
    if args.json {
        let list: Vec<_> = snapshots
            .iter()
            .map(|(id, s)| {
                serde_json::json!({
                    "id": id.to_hex(), "time": s.time, "finished": s.finished, "hostname": s.hostname,
                    "server": s.source.server, "databases": s.databases.len(), "failed": s.failed.len(),
                    "bytes": s.total_bytes(), "tags": s.tags, "binlog": s.source.binlog,
                    "time_given": s.time_given, "stats": s.stats,
                    "change_tracking": s.change_tracking,
                })
            })
            .collect();
        print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<10} {:<20} {:<16} {:<22} {:>9} {:>7} {:>10}",
        "ID", "TIME (UTC)", "HOST", "SERVER", "DATABASES", "FAILED", "SIZE"
    );
    for (id, s) in &snapshots {
        println!(
            "{:<10} {:<20} {:<16} {:<22} {:>9} {:>7} {:>10}",
            id.short(),
            // A time given with `backup --time` is marked.
            format!(
                "{}{}",
                s.time.strftime("%Y-%m-%d %H:%M:%S"),
                if s.time_given { "*" } else { "" }
            ),
            s.hostname,
            s.source.server,
            s.databases.len(),
            s.failed.len(),
            HumanBytes(s.total_bytes()).to_string()
        );
    }
    println!("{} snapshots", snapshots.len());
    let carried: usize = snapshots
        .iter()
        .filter_map(|(_, s)| s.change_tracking.as_ref())
        .map(|t| t.carried)
        .sum();
    if carried > 0 {
        for (id, s) in &snapshots {
            if let Some(t) = s.change_tracking.as_ref().filter(|t| t.carried > 0) {
                println!(
                    "{}: {} of {} databases carried over unchanged (binary log since {})",
                    id.short(),
                    t.carried,
                    s.databases.len(),
                    t.from_snapshot.as_deref().map_or("", short_text)
                );
            }
        }
    }
    if snapshots.iter().any(|(_, s)| s.time_given) {
        println!("* time given with `backup --time`, not read from the clock");
    }
    Ok(ExitCode::SUCCESS)
}
