//! `coffer restore`: recreate one database from a snapshot on a server.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::ArgMatches;
use indicatif::HumanBytes;

use coffer::Result;
use coffer::restore::server::{ServerRestoreOptions, restore_to_server};

use super::{DatabaseArgs, MysqlArg, RepoArg, progress_bar, spawn_ticker};

#[derive(clap::Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    mysql: MysqlArg,
    #[command(flatten)]
    source: DatabaseArgs,
    /// Replace the target database if it exists (otherwise restore refuses). The snapshot is
    /// loaded beside it first; the live database is swapped only once everything loaded.
    #[arg(long)]
    drop_existing: bool,
    /// Connections loading rows at once.
    #[arg(long, short = 'j', default_value_t = 4)]
    jobs: usize,
}

pub async fn run(args: RestoreArgs, matches: &ArgMatches) -> Result<ExitCode> {
    let target = args.mysql.target(matches)?;
    let (repo, traffic) = args.repo.open_metered().await?;
    let loaded = args.source.load_plan(&repo).await?;
    let (id, index, plan) = (loaded.id, Arc::new(loaded.index), Arc::new(loaded.plan));
    let total = plan.data_items().len() as u64;
    let done = Arc::new(AtomicU64::new(0));
    let bar = progress_bar(
        total,
        "{spinner} restoring [{bar:30}] {pos}/{len} chunks {elapsed_precise}",
    );
    let ticker = spawn_ticker(bar.clone(), Arc::clone(&done));
    let started = std::time::Instant::now();
    let result = restore_to_server(
        Arc::clone(&repo),
        index,
        Arc::clone(&plan),
        &target,
        &ServerRestoreOptions {
            drop_existing: args.drop_existing,
            jobs: args.jobs,
        },
        done,
    )
    .await;
    ticker.abort();
    bar.finish_and_clear();
    let stats = result?;
    println!(
        "restored {} from snapshot {} into {}{} on {}: {} tables, {} rows, {} objects, {} of row data, {} read from storage in {} requests, {:.1}s",
        args.source.db,
        id.short(),
        plan.target_name,
        if stats.replaced {
            " (replacing the existing database)"
        } else {
            ""
        },
        target.describe(),
        stats.tables,
        stats.rows,
        stats.objects,
        HumanBytes(stats.bytes_fetched),
        HumanBytes(traffic.bytes_read.load(Ordering::Relaxed)),
        traffic.requests.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
