//! `coffer log`: archive a server's binary log into the repository (`sync` once, `follow` as a
//! service) and say what the archive covers (`list`).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{ArgMatches, Subcommand};

use coffer::pitr::archive::{ArchiveOptions, ArchiveReport, Archiver};
use coffer::pitr::coverage::coverage;
use coffer::pitr::show::ShowRequest;
use coffer::{Error, Result};

use super::{MysqlArg, RepoArg, metrics, print_json};

#[derive(clap::Args)]
pub struct LogArgs {
    #[command(subcommand)]
    command: LogCommand,
}

#[derive(Subcommand)]
enum LogCommand {
    /// Archive the binary log from where the archive ends up to the server's current position,
    /// then stop (for a timer, e.g. every 5 minutes).
    Sync(ArchiveArgs),
    /// Archive the binary log as a replica does, until stopped (SIGTERM/SIGINT), reconnecting
    /// after failures (for a service).
    Follow(ArchiveArgs),
    /// What the archived binary log covers, per server, and every gap in it.
    List(ListArgs),
    /// The archived changes to one database (or some of its tables) in a time range, one
    /// transaction a line, with the event `restore --stop-before` takes.
    Show(ShowArgs),
    /// The inverse of the archived row changes to one database in a time range, newest first,
    /// checked against the live rows, as a script to review and apply.
    Undo(UndoArgs),
}

#[derive(clap::Args)]
struct UndoArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// The live server the script is for (its rows are checked; nothing is written to it).
    #[command(flatten)]
    mysql: MysqlArg,
    #[arg(long)]
    db: String,
    /// Only changes to this table (repeat for several).
    #[arg(long = "table", value_name = "TABLE")]
    tables: Vec<String>,
    /// Only changes to rows for which this SQL condition is true, before or after the change
    /// (the live server judges it, on the live table's columns).
    #[arg(long = "where", value_name = "EXPR")]
    where_: Option<String>,
    /// The first moment whose changes are undone ("2026-11-24 16:55", UTC unless a zone is given).
    #[arg(long, value_name = "TIME")]
    since: String,
    /// The last moment whose changes are undone (default: now).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Only the archive of this server (as `log list` names it).
    #[arg(long)]
    server: Option<String>,
    /// Write the script here (default: stdout).
    #[arg(long, value_name = "FILE")]
    output: Option<std::path::PathBuf>,
    /// Why (a ticket number), kept in the audit log.
    #[arg(long)]
    reason: Option<String>,
}

#[derive(clap::Args)]
struct ShowArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// The database.
    #[arg(long)]
    db: String,
    /// Only changes to this table (repeat for several; DDL is then left out).
    #[arg(long = "table", value_name = "TABLE")]
    tables: Vec<String>,
    /// Only changes to rows for which this SQL condition is true, before or after the change
    /// (DDL is then left out). The server of --mysql judges it, on the live table's columns.
    #[arg(long = "where", value_name = "EXPR", requires = "mysql")]
    where_: Option<String>,
    /// mysql://… of the live server, for --where (nothing is written to it). Password from
    /// COFFER_MYSQL_PASSWORD or COFFER_MYSQL_PASSWORD_FILE.
    #[arg(long, env = "COFFER_MYSQL_URL", hide_env_values = true)]
    mysql: Option<String>,
    /// From this time on ("2026-11-24 16:00", UTC unless a zone is given, or 3h back).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Up to this time.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Only the archive of this server (as `log list` names it).
    #[arg(long)]
    server: Option<String>,
    /// At most this many transactions (the earliest in the range).
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    #[arg(long)]
    json: bool,
    /// Why (a ticket number), kept in the audit log.
    #[arg(long)]
    reason: Option<String>,
}

#[derive(clap::Args)]
struct ArchiveArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    mysql: MysqlArg,
    /// Cut a segment once it holds this much log (at the next transaction's end).
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = super::parse_large_size)]
    segment_size: u64,
    /// Cut a segment once its first transaction is this old, even if nothing more arrives:
    /// the most the archive lags behind the server while the follower runs.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    segment_age: String,
    /// The replica id to register with (must differ from the server's and every replica's).
    #[arg(long, value_name = "ID", default_value_t = 0x0c0f_fe42)]
    server_id: u32,
    /// Machine-readable summary (`sync`).
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ListArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Only this server (`host:port` or socket path, as `snapshots` shows it).
    #[arg(long)]
    server: Option<String>,
    #[arg(long)]
    json: bool,
}

pub async fn run(args: LogArgs, matches: &ArgMatches) -> Result<ExitCode> {
    match args.command {
        LogCommand::Sync(args) => sync(args, matches).await,
        LogCommand::Follow(args) => follow(args, matches).await,
        LogCommand::List(args) => list(args).await,
        LogCommand::Show(args) => show(args, matches).await,
        LogCommand::Undo(args) => undo(args, matches).await,
    }
}

impl ArchiveArgs {
    fn options(&self) -> Result<ArchiveOptions> {
        let segment_age =
            coffer::timespec::parse_setting_duration(&self.segment_age, "--segment-age")?;
        if segment_age.is_zero() || self.segment_size == 0 {
            return Err(
                Error::invalid("a segment needs a size and an age above zero")
                    .with_hint("e.g. --segment-size 16MiB --segment-age 60s"),
            );
        }
        Ok(ArchiveOptions {
            segment_bytes: self.segment_size,
            segment_age,
            server_id: self.server_id,
            ..ArchiveOptions::default()
        })
    }
}

async fn sync(args: ArchiveArgs, matches: &ArgMatches) -> Result<ExitCode> {
    let options = args.options()?;
    let target = args.mysql.target(matches)?;
    // A follower host never reads history: a write-only key is enough.
    let repo = args.repo.open_allowing_write_only().await?;
    let mut archiver = Archiver::new(repo, target, options).await?;
    let report = archiver.sync().await?;
    record_metrics(&report);
    if args.json {
        print_json(&report)?;
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

async fn follow(args: ArchiveArgs, matches: &ArgMatches) -> Result<ExitCode> {
    let options = args.options()?;
    let target = args.mysql.target(matches)?;
    let repo = args.repo.open_allowing_write_only().await?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            wait_for_termination().await;
            tracing::info!("stopping: storing what was read whole, then exiting");
            stop.store(true, Ordering::Relaxed);
        });
    }
    let mut backoff = Duration::from_secs(1);
    while !stop.load(Ordering::Relaxed) {
        let attempt = async {
            let mut archiver =
                Archiver::new(Arc::clone(&repo), target.clone(), options.clone()).await?;
            let result = archiver.follow(&stop).await;
            Ok::<_, Error>((archiver.report, result))
        }
        .await;
        match attempt {
            Ok((report, Ok(()))) => {
                record_metrics(&report);
            }
            Ok((report, Err(e))) => {
                record_metrics(&report);
                if report.segments > 0 {
                    backoff = Duration::from_secs(1);
                }
                tracing::warn!(
                    "the binary-log follower stopped: {e}; retrying in {}s",
                    backoff.as_secs()
                );
            }
            Err(e) => {
                tracing::warn!(
                    "the binary-log follower cannot start: {e}; retrying in {}s",
                    backoff.as_secs()
                );
            }
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let deadline = tokio::time::Instant::now() + backoff;
        while tokio::time::Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM (a service manager stopping the follower) or SIGINT.
async fn wait_for_termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn record_metrics(report: &ArchiveReport) {
    metrics::record(
        "coffer_log_segments_stored",
        "Binary-log segments this run stored.",
        &[],
        report.segments as f64,
    );
    metrics::record(
        "coffer_log_bytes_stored",
        "Bytes of binary log this run archived.",
        &[],
        report.bytes as f64,
    );
    metrics::record(
        "coffer_log_gaps_recorded",
        "Gaps in the archived binary log this run recorded.",
        &[],
        report.gaps.len() as f64,
    );
    if let Some(last) = report.last_time {
        metrics::record(
            "coffer_log_archived_until_seconds",
            "Time of the newest binary-log event archived (Unix seconds).",
            &[],
            last.as_second() as f64,
        );
    }
}

fn print_report(report: &ArchiveReport) {
    println!(
        "archived {} transaction(s) in {} segment(s), {} bytes; the archive ends at {}:{}",
        report.transactions, report.segments, report.bytes, report.file, report.position
    );
    for gap in &report.gaps {
        println!(
            "GAP recorded before {}:{}: {}",
            gap.resumed_file, gap.resumed_position, gap.reason
        );
    }
}

async fn list(args: ListArgs) -> Result<ExitCode> {
    let repo = args.repo.open_allowing_write_only().await?;
    let mut segments = repo.log_segments().await?;
    if let Some(server) = &args.server {
        segments.retain(|s| &s.server == server);
    }
    let (streams, gaps) = coverage(&segments);
    if args.json {
        print_json(&serde_json::json!({ "streams": streams, "gaps": gaps }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if streams.is_empty() {
        println!("no binary log is archived (run `coffer log sync` or `coffer log follow`)");
        return Ok(ExitCode::SUCCESS);
    }
    let now = jiff::Timestamp::now();
    for s in &streams {
        let time = |t: Option<jiff::Timestamp>| {
            t.map_or_else(
                || "-".to_string(),
                |t| t.strftime("%Y-%m-%d %H:%M:%S").to_string(),
            )
        };
        let age = now.duration_since(s.newest_archived_at).as_secs().max(0);
        println!(
            "{} ({}): {} segment(s) {}..{}, {} transaction(s), {} bytes; events {} .. {}; ends at {}:{}; newest segment stored {}s ago",
            s.server,
            s.identity,
            s.segments,
            s.first_seq,
            s.last_seq,
            s.transactions,
            s.bytes,
            time(s.first_time),
            time(s.last_time),
            s.end_file,
            s.end_position,
            age
        );
    }
    for gap in &gaps {
        println!(
            "GAP {} before segment {}: {}",
            gap.server, gap.before_seq, gap.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(args: ShowArgs, matches: &ArgMatches) -> Result<ExitCode> {
    super::audit::check_reason(&args.reason)?;
    let now = jiff::Timestamp::now();
    let time = |text: &Option<String>| {
        text.as_deref()
            .map(|t| coffer::timespec::parse_point_in_time(t, now))
            .transpose()
    };
    let request = ShowRequest {
        database: args.db.clone(),
        tables: args.tables.clone(),
        since: time(&args.since)?,
        until: time(&args.until)?,
        server: args.server.clone(),
        limit: args.limit.max(1),
        filter: args.where_.clone(),
    };
    // The live server only judges --where.
    let target = match (&args.where_, &args.mysql) {
        (Some(_), Some(url)) => Some(MysqlArg { mysql: url.clone() }.target(matches)?),
        _ => None,
    };
    let repo = args.repo.open().await?;
    let trail = super::audit::AuditTrail::start(&repo, "log show", args.reason.clone(), |r| {
        r.database = Some(args.db.clone());
        r.tables = args.tables.clone();
        r.where_ = args.where_.clone();
    })
    .await?;
    let result = async {
        let index = repo.load_index().await?;
        let mut conn = match &target {
            Some(target) => Some(target.connect().await?),
            None => None,
        };
        let shown = coffer::pitr::show::show(&repo, &index, &request, conn.as_mut()).await?;
        if let Some(conn) = conn {
            let _ = conn.disconnect().await;
        }
        if args.json {
            print_json(&shown)?;
        } else if shown.is_empty() {
            println!("no archived change to {} in that range", args.db);
        }
        if !args.json {
            for t in &shown {
                let rows: Vec<String> = t
                    .tables
                    .iter()
                    .map(|(table, c)| {
                        format!("{table}: +{} ~{} -{}", c.inserted, c.updated, c.deleted)
                    })
                    .collect();
                println!(
                    "{}  {}  {}",
                    t.time.strftime("%Y-%m-%d %H:%M:%S"),
                    t.event,
                    rows.join(", ")
                );
                for statement in &t.statements {
                    let shown: String = statement.chars().take(200).collect();
                    println!("    {shown}");
                }
            }
        }
        Ok((
            ExitCode::SUCCESS,
            super::audit::Audited {
                snapshot: None,
                target_database: None,
                counts: [("transactions".to_string(), shown.len() as u64)].into(),
                definers: None,
            },
        ))
    }
    .await;
    trail.finish(result).await
}

async fn undo(args: UndoArgs, matches: &ArgMatches) -> Result<ExitCode> {
    super::audit::check_reason(&args.reason)?;
    let now = jiff::Timestamp::now();
    let request = coffer::pitr::undo::UndoRequest {
        database: args.db.clone(),
        tables: args.tables.clone(),
        since: coffer::timespec::parse_point_in_time(&args.since, now)?,
        until: match &args.until {
            Some(t) => coffer::timespec::parse_point_in_time(t, now)?,
            None => now,
        },
        server: args.server.clone(),
        filter: args.where_.clone(),
    };
    let target = args.mysql.target(matches)?;
    let repo = args.repo.open().await?;
    let trail = super::audit::AuditTrail::start(&repo, "log undo", args.reason.clone(), |r| {
        r.database = Some(args.db.clone());
        r.tables = args.tables.clone();
        r.where_ = args.where_.clone();
        r.server = Some(target.describe());
    })
    .await?;
    let result = async {
        let index = repo.load_index().await?;
        let mut conn = target.connect().await?;
        let script = coffer::pitr::undo::undo(&repo, &index, &request, &mut conn).await?;
        match &args.output {
            Some(path) => std::fs::write(path, &script.sql).map_err(|e| {
                Error::invalid(format!("writing {}", path.display())).with_source(e)
            })?,
            None => print!("{}", script.sql),
        }
        eprintln!(
            "{} statement(s) undo the changes to {} from {} to {}; {} row(s) changed since are named and left alone",
            script.statements,
            args.db,
            request.since,
            request.until,
            script.conflicts.len()
        );
        Ok((
            ExitCode::SUCCESS,
            super::audit::Audited {
                snapshot: None,
                target_database: None,
                counts: [
                    ("statements".to_string(), script.statements),
                    ("conflicts".to_string(), script.conflicts.len() as u64),
                ]
                .into(),
                definers: None,
            },
        ))
    }
    .await;
    trail.finish(result).await
}
