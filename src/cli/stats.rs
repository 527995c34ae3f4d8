//! `coffer stats`: repository size, deduplication, per-database stored size, growth.

use std::process::ExitCode;

use indicatif::HumanBytes;

use coffer::Result;
use coffer::repo::ids::short_text;
use coffer::stats::repository_stats;

use super::{RepoArg, print_json};

#[derive(clap::Args)]
pub struct StatsArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Databases listed (the largest first); all with --json.
    #[arg(long, default_value_t = 20)]
    top: usize,
    #[arg(long)]
    json: bool,
}

pub async fn run(args: StatsArgs) -> Result<ExitCode> {
    let repo = args.repo.open().await?;
    let stats = repository_stats(&repo).await?;
    if args.json {
        print_json(&stats)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} snapshots, {} packs, {} stored ({} referenced by snapshots)",
        stats.snapshots,
        stats.packs,
        HumanBytes(stats.pack_bytes),
        HumanBytes(stats.referenced_bytes)
    );
    println!(
        "{} of row data in all snapshots together: deduplication and compression {:.1}x",
        HumanBytes(stats.logical_bytes),
        stats.dedup_ratio
    );
    println!(
        "{:<40} {:>9} {:>12} {:>12}",
        "DATABASE", "SNAPSHOTS", "UNIQUE", "SHARED"
    );
    for db in stats.databases.iter().take(args.top) {
        println!(
            "{:<40} {:>9} {:>12} {:>12}",
            db.name,
            db.snapshots,
            HumanBytes(db.unique_bytes).to_string(),
            HumanBytes(db.shared_bytes).to_string()
        );
    }
    if stats.databases.len() > args.top {
        println!(
            "… and {} more (--top N, or --json)",
            stats.databases.len() - args.top
        );
    }
    println!("growth per snapshot:");
    for g in &stats.growth {
        println!(
            "  {}  {}  +{}",
            short_text(&g.id),
            g.time.strftime("%Y-%m-%d %H:%M:%S"),
            HumanBytes(g.new_bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}
