//! `coffer restore`: recreate one database, or some of its tables, from a snapshot on a server.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::ArgMatches;
use indicatif::HumanBytes;

use coffer::Result;
use coffer::restore::RestoreScope;
use coffer::restore::server::{ServerRestoreOptions, restore_to_server};
use coffer::restore::tables::restore_tables;

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
    if args.drop_existing && !args.source.tables.is_empty() {
        return Err(coffer::Error::invalid(
            "--drop-existing with --table: replacing a live table is not supported yet",
        )
        .with_hint(
            "restore it beside the live one with --into-table NEW (or into another database with --into) and swap by hand; \
             or put back only rows with --where",
        ));
    }
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
    let result = match plan.scope {
        RestoreScope::Database => {
            restore_to_server(
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
            .await
        }
        RestoreScope::Tables { .. } => {
            restore_tables(
                Arc::clone(&repo),
                index,
                Arc::clone(&plan),
                &target,
                args.jobs,
                done,
            )
            .await
        }
    };
    ticker.abort();
    bar.finish_and_clear();
    let stats = result?;
    let what = match plan.scope {
        RestoreScope::Database => args.source.db.clone(),
        RestoreScope::Tables { .. } => format!(
            "{} {} of {}",
            if plan.tables.len() == 1 {
                "table"
            } else {
                "tables"
            },
            plan.tables
                .iter()
                .zip(&plan.table_targets)
                .map(|(t, name)| if &t.name == name {
                    name.clone()
                } else {
                    format!("{} (as {name})", t.name)
                })
                .collect::<Vec<_>>()
                .join(", "),
            args.source.db
        ),
    };
    println!(
        "restored {what} from snapshot {} into {}{} on {}: {} tables, {} rows, {} objects, {} of row data, {} read from storage in {} requests, {:.1}s",
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
    if plan.scope == (RestoreScope::Tables { renamed: true }) {
        println!(
            "the renamed copy has no triggers or foreign keys: their names belong to the original table"
        );
    }
    Ok(ExitCode::SUCCESS)
}
