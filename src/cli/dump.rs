//! `coffer dump`: one database of a snapshot as a SQL script on stdout; with `--at`, taken to a
//! moment by replaying the archived binary log on a scratch copy (`--mysql`).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use clap::ArgMatches;

use coffer::Result;
use coffer::restore::script::{ScriptRows, write_script};
use coffer::restore::server::ServerRestoreOptions;
use coffer::restore::staged::stage_copy;

use coffer::repo::Repository;

use super::audit::{AuditTrail, Audited, check_reason};
use super::{DatabaseArgs, LoadedPlan, MysqlArg, RepoArg};

#[derive(clap::Args)]
pub struct DumpArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    source: DatabaseArgs,
    /// With --at and an archived binary log: the server on which the snapshot's copy is taken to
    /// the moment, in a private staging database dropped afterwards (nothing else is touched).
    /// mysql://… as for restore; password from COFFER_MYSQL_PASSWORD(_FILE).
    #[arg(long, env = "COFFER_MYSQL_URL", hide_env_values = true)]
    mysql: Option<String>,
    /// With the archived binary log: stop just before this transaction (a GTID or
    /// `file:position`, as `coffer log show` prints them).
    #[arg(long, value_name = "EVENT")]
    stop_before: Option<String>,
    /// Connections loading the scratch copy (--at).
    #[arg(long, short = 'j', default_value_t = 4)]
    jobs: usize,
    /// Why this dump is taken (kept in the audit log).
    #[arg(long)]
    reason: Option<String>,
}

pub async fn run(args: DumpArgs, matches: &ArgMatches) -> Result<ExitCode> {
    args.source.require_db("dump")?;
    check_reason(&args.reason)?;
    let repo = Arc::new(args.repo.open().await?);
    let trail = AuditTrail::start(&repo, "dump", args.reason.clone(), |r| {
        r.database = Some(args.source.db().to_string());
        r.tables = args.source.tables.clone();
    })
    .await?;
    let result = dump(&args, &repo, matches).await;
    trail.finish(result).await
}

async fn dump(
    args: &DumpArgs,
    repo: &Arc<Repository>,
    matches: &ArgMatches,
) -> Result<(ExitCode, Audited)> {
    let moment = super::restore::point_in_time(&args.source, args.stop_before.as_deref())?;
    let source = match &moment {
        Some(target) => super::restore::copy_before(&args.source, repo, target.until).await?,
        None => args.source.clone(),
    };
    let loaded = source.load_plan(repo).await?;
    let replay = match moment {
        Some(target) => super::restore::replay_plan(&args.source, repo, &loaded, target).await?,
        None => None,
    };
    let LoadedPlan {
        id,
        snapshot,
        index,
        plan,
    } = loaded;
    let definers = plan.definers().describe();
    let mut header = vec![
        format!(
            "coffer {} dump of database {}",
            env!("CARGO_PKG_VERSION"),
            args.source.db()
        ),
        format!(
            "snapshot {} taken {} from {} ({})",
            id.short(),
            snapshot.time,
            snapshot.source.server,
            snapshot.source.server_version
        ),
    ];
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut replayed_transactions, mut replayed_rows) = (0, 0);
    let rows: u64 = match replay {
        None => {
            let rows = ScriptRows::Snapshot {
                repo,
                index: &index,
            };
            write_script(rows, &plan, &header, &mut out).await?;
            plan.tables
                .iter()
                .flat_map(|t| &t.chunks)
                .map(|c| c.rows)
                .sum()
        }
        Some(replay) => {
            let url = args.mysql.clone().ok_or_else(|| {
                coffer::Error::invalid(
                    "dump --at replays the archived binary log onto a scratch copy of the snapshot, on a server",
                )
                .with_hint("give --mysql URL (a private staging database coffer_restore_… is made there and dropped), or dump the snapshot as it was with --snapshot")
            })?;
            let target = MysqlArg { mysql: url }.target(matches)?;
            let options = ServerRestoreOptions {
                drop_existing: false,
                jobs: args.jobs,
                replay: Some(Arc::clone(&replay)),
                staging_tag: None,
            };
            let plan = Arc::new(plan);
            let mut staged = stage_copy(
                Arc::clone(repo),
                Arc::new(index),
                Arc::clone(&plan),
                &target,
                &options,
                Arc::new(AtomicU64::new(0)),
            )
            .await?;
            let report = staged.stats.replay.clone().unwrap_or_default();
            let written = if report.statements_applied > 0 {
                Err(coffer::Error::invalid(format!(
                    "the archived log changes the definition of {}'s tables between the snapshot and the moment: a script of the snapshot's definitions would not hold its rows",
                    args.source.db()
                ))
                .with_hint("restore the database to the moment with `restore --at … --into NAME` and dump that copy"))
            } else {
                header.push(format!(
                    "taken to {} by replaying the archived binary log: {} transaction(s), {} row(s){}",
                    replay.target.until,
                    report.transactions_applied,
                    report.rows_applied,
                    report
                        .last_applied
                        .as_deref()
                        .map(|last| format!(", the last {last}"))
                        .unwrap_or_default()
                ));
                let (conn, database) = staged.session();
                write_script(
                    ScriptRows::Staged { conn, database },
                    &plan,
                    &header,
                    &mut out,
                )
                .await
            };
            // The snapshot's rows loaded; the replayed row changes are counted apart.
            let rows = staged.stats.rows;
            replayed_transactions = report.transactions_applied;
            replayed_rows = report.rows_applied;
            staged.discard().await;
            written?;
            eprintln!(
                "replayed the archived binary log onto snapshot {}'s copy: {} transaction(s), {} row(s)",
                id.short(),
                report.transactions_applied,
                report.rows_applied
            );
            rows
        }
    };
    let audited = Audited {
        definers: Some(definers),
        snapshot: Some(id.to_string()),
        target_database: None,
        counts: [
            ("rows".to_string(), rows),
            ("replayed_transactions".to_string(), replayed_transactions),
            ("replayed_row_changes".to_string(), replayed_rows),
        ]
        .into(),
    };
    Ok((ExitCode::SUCCESS, audited))
}
