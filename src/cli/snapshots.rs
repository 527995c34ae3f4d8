//! `coffer snapshots`: list the snapshots of a repository.

use std::process::ExitCode;

use indicatif::HumanBytes;

use std::collections::{BTreeMap, BTreeSet};

use coffer::Result;
use coffer::repo::ids::{SnapshotId, short_text};
use coffer::repo::summary::SnapshotSummary;

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
    let repo = args.repo.open_allowing_write_only().await?;
    let snapshots = repo.summaries().await?;
    if args.json {
        let list: Vec<_> = snapshots
            .iter()
            .map(|(id, s)| {
                serde_json::json!({
                    "id": id.to_hex(), "time": s.time, "finished": s.finished, "hostname": s.hostname,
                    "server": s.source.server, "databases": s.databases.len(), "failed": s.failed.len(),
                    "bytes": s.total_bytes, "tags": s.tags, "binlog": s.source.binlog,
                    "time_given": s.time_given, "stats": s.stats,
                    "change_tracking": s.change_tracking, "shard": s.shard,
                    "writer": s.writer, "accounts": s.accounts,
                })
            })
            .collect();
        print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = snapshots
        .iter()
        .map(|(id, s)| {
            vec![
                id.short(),
                // A time given with `backup --time` is marked.
                format!(
                    "{}{}",
                    s.time.strftime("%Y-%m-%d %H:%M:%S"),
                    if s.time_given { "*" } else { "" }
                ),
                s.hostname.clone(),
                s.source.server.clone(),
                s.databases.len().to_string(),
                s.failed.len().to_string(),
                HumanBytes(s.total_bytes).to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        super::table(
            &[
                "ID",
                "TIME (UTC)",
                "HOST",
                "SERVER",
                "DATABASES",
                "FAILED",
                "SIZE"
            ],
            &[false, false, false, false, true, true, true],
            &rows
        )
    );
    println!("{} snapshots", snapshots.len());
    print_sharded_runs(&snapshots);
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

/// One line per sharded run: its shards together are one backup, and a shard missing from it
/// (failed, or still running) is named.
fn print_sharded_runs(snapshots: &[(SnapshotId, SnapshotSummary)]) {
    let mut runs: BTreeMap<&str, (u32, Vec<&SnapshotSummary>)> = BTreeMap::new();
    for (_, s) in snapshots {
        if let Some(shard) = &s.shard {
            let run = runs.entry(shard.run_id.as_str()).or_default();
            run.0 = run.0.max(shard.count);
            run.1.push(s);
        }
    }
    for (run, (count, shards)) in runs {
        let present: BTreeSet<u32> = shards
            .iter()
            .filter_map(|s| s.shard.as_ref().map(|o| o.index))
            .collect();
        let missing: Vec<String> = (0..count)
            .filter(|k| !present.contains(k))
            .map(|k| format!("{k}/{count}"))
            .collect();
        let databases: usize = shards.iter().map(|s| s.databases.len()).sum();
        let failed: usize = shards.iter().map(|s| s.failed.len()).sum();
        let started = shards.iter().map(|s| s.time).min();
        println!(
            "run {run}{}: {} of {count} shards, {databases} databases, {failed} failed{}",
            started.map_or(String::new(), |t| format!(
                " ({})",
                t.strftime("%Y-%m-%d %H:%M:%S")
            )),
            present.len(),
            if missing.is_empty() {
                String::new()
            } else {
                format!("; no snapshot from shard {}", missing.join(", "))
            }
        );
    }
}
