//! `coffer history`: how the rows of a table matching a condition looked in each snapshot.

use std::process::ExitCode;
use std::sync::Arc;

use clap::ArgMatches;

use coffer::Result;
use coffer::repo::Repository;
use coffer::repo::ids::short_text;
use coffer::restore::history::{RowStatus, SnapshotRows, table_history};
use coffer::source::mysql::MysqlTarget;
use coffer::timespec::parse_point_in_time;

use super::audit::{AuditTrail, Audited, check_reason};
use super::{MysqlArg, RepoArg, SnapshotArgs, print_json};

#[derive(clap::Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// The server that evaluates the condition (nothing is written to it but a staging
    /// database, dropped at the end).
    #[command(flatten)]
    mysql: MysqlArg,
    #[arg(long)]
    db: String,
    #[arg(long)]
    table: String,
    /// The SQL condition selecting the rows, as for `restore --where`.
    #[arg(long = "where", value_name = "EXPR")]
    where_: String,
    /// Only snapshots taken at or after this time (or duration back from now).
    #[arg(long)]
    since: Option<String>,
    /// Only snapshots taken at or before this time (or duration back from now).
    #[arg(long, conflicts_with_all = ["snapshot", "at"])]
    until: Option<String>,
    /// Up to this snapshot (--snapshot ID) or the newest taken at or before --at TIME: the
    /// history as it looked then.
    #[command(flatten)]
    up_to: SnapshotArgs,
    #[arg(long)]
    json: bool,
    /// Why (kept in the audit log).
    #[arg(long)]
    reason: Option<String>,
}

pub async fn run(args: HistoryArgs, matches: &ArgMatches) -> Result<ExitCode> {
    let target = args.mysql.target(matches)?;
    check_reason(&args.reason)?;
    let repo = args.repo.open().await?;
    let trail = AuditTrail::start(&repo, "history", args.reason.clone(), |r| {
        r.database = Some(args.db.clone());
        r.tables = vec![args.table.clone()];
        r.where_ = Some(args.where_.clone());
        r.server = Some(target.describe());
    })
    .await?;
    let result = history(&args, &repo, &target).await;
    trail.finish(result).await
}

async fn history(
    args: &HistoryArgs,
    repo: &Arc<Repository>,
    target: &MysqlTarget,
) -> Result<(ExitCode, Audited)> {
    let now = jiff::Timestamp::now();
    let since = args
        .since
        .as_deref()
        .map(|s| parse_point_in_time(s, now))
        .transpose()?;
    let mut until = args
        .until
        .as_deref()
        .map(|s| parse_point_in_time(s, now))
        .transpose()?;
    if args.up_to.snapshot.is_some() || args.up_to.at.is_some() {
        until = Some(args.up_to.choose(repo, Some(&args.db)).await?.snapshot.time);
    }
    let snapshots: Vec<_> = repo
        .snapshots()
        .await?
        .into_iter()
        .filter(|(_, s)| since.is_none_or(|t| s.time >= t) && until.is_none_or(|t| s.time <= t))
        .collect();
    let index = repo.load_index().await?;
    let (history, stats) = table_history(
        repo,
        &index,
        &snapshots,
        target,
        &args.db,
        &args.table,
        &args.where_,
    )
    .await?;
    let audited = Audited {
        definers: None,
        snapshot: None,
        target_database: None,
        counts: [
            ("snapshots".to_string(), stats.snapshots as u64),
            (
                "chunks_evaluated".to_string(),
                stats.chunks_evaluated as u64,
            ),
        ]
        .into(),
    };
    if args.json {
        #[derive(serde::Serialize)]
        struct Output<'a> {
            snapshots: &'a [SnapshotRows],
            stats: &'a coffer::restore::history::HistoryStats,
        }
        print_json(&Output {
            snapshots: &history,
            stats: &stats,
        })?;
        return Ok((ExitCode::SUCCESS, audited));
    }
    for snapshot in &history {
        let shown: Vec<_> = snapshot
            .rows
            .iter()
            .filter(|r| r.status != RowStatus::Removed)
            .collect();
        println!(
            "snapshot {}  {}  {}",
            short_text(&snapshot.snapshot),
            snapshot.time.strftime("%Y-%m-%d %H:%M:%S UTC"),
            if snapshot.table_present {
                format!("{} matching rows", shown.len())
            } else {
                format!("table {} absent", args.table)
            }
        );
        for row in &snapshot.rows {
            let mark = match row.status {
                RowStatus::Present | RowStatus::Unchanged => "  ",
                RowStatus::Added => "+ ",
                RowStatus::Changed => "~ ",
                RowStatus::Removed => "- ",
            };
            let key: Vec<String> = row.key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let note = match row.status {
                RowStatus::Added => " (added)".to_string(),
                RowStatus::Removed => " (removed, or no longer matching)".to_string(),
                RowStatus::Changed => format!(" (changed: {})", row.changed_columns.join(", ")),
                _ => String::new(),
            };
            let values: Vec<String> = row.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!(
                "  {mark}{}{note}\n      {}",
                key.join(" "),
                values.join(" ")
            );
        }
    }
    eprintln!(
        "{} snapshots, {} chunk references, {} distinct chunks read{}",
        stats.snapshots,
        stats.chunk_references,
        stats.chunks_evaluated,
        if stats.pinned {
            ""
        } else {
            " (the condition does not pin the key: whole table versions were read)"
        }
    );
    Ok((ExitCode::SUCCESS, audited))
}
