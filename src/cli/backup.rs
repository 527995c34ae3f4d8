//! `coffer backup`: one snapshot of the selected databases of a server.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::ArgMatches;
use indicatif::{HumanBytes, ProgressBar};

use coffer::backup::shard::{check_run_id, parse_shard};
use coffer::backup::{
    BackupObserver, BackupOptions, DatabaseOutcome, LiveCounters, VerifyCarried, run_backup,
};
use coffer::repo::ids::short_text;
use coffer::repo::snapshot::ShardOf;
use coffer::{Error, Result};

use super::audit::{AuditTrail, Audited, check_reason};
use super::{MysqlArg, RepoArg, progress_bar};

#[derive(clap::Args)]
pub struct BackupArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    mysql: MysqlArg,
    /// Only databases matching this glob (repeatable; default: all user databases).
    #[arg(long, value_name = "GLOB")]
    include: Vec<String>,
    /// Leave out databases matching this glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Connections dumping databases at once.
    #[arg(long, short = 'j', default_value_t = 4)]
    jobs: usize,
    /// Label for the snapshot (repeatable).
    #[arg(long)]
    tag: Vec<String>,
    /// Why this backup is taken (kept in the audit log).
    #[arg(long)]
    reason: Option<String>,
    /// Record this time as the snapshot's ("2026-11-20 14:00", UTC unless a zone is given)
    /// instead of the clock's, for importing older data; the snapshot notes that it was given.
    #[arg(long)]
    time: Option<String>,
    /// Read every database, even those the binary log shows unchanged since the previous
    /// snapshot of this server.
    #[arg(long)]
    full: bool,
    /// Read a database again once the data carried over for it is this old (e.g. 7d; `off`
    /// never does).
    #[arg(long, value_name = "DURATION", default_value = "30d")]
    full_every: String,
    /// How many of the databases the binary log shows unchanged to read again anyway and
    /// compare with the copy that would be carried: N databases, P% of them, or both (`2,1%`:
    /// whichever is more; 0 never checks). A difference is stored, named, and exits with code 5.
    #[arg(long, value_name = "N|P%", default_value = "2,1%", value_parser = VerifyCarried::parse)]
    verify_carried: VerifyCarried,
    /// A large database is read by all connections at once, synchronised by a brief
    /// `LOCK TABLES … READ` on its tables: writers to it wait at most this long (plus a few
    /// milliseconds). If the lock is not granted in time (a long transaction), the database is
    /// read on one connection. 0 reads every database on one connection, without the lock.
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    lock_wait: String,
    /// Leave the server's accounts, roles and grants out of the snapshot (they are recorded by
    /// default, except the server's own: README, "Accounts and grants").
    #[arg(long)]
    no_accounts: bool,
    /// A database at least this large (and larger than half a connection's share of the run)
    /// is read by all connections at once, its big tables split into key ranges.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = super::parse_large_size)]
    large_database: u64,
    /// Back up only this process's share K/N of the databases (K from 0 to N-1), so N hosts or
    /// pods back up one server at once; each shard of a run needs the same --run-id.
    #[arg(long, env = "COFFER_SHARD", value_name = "K/N", requires = "run_id")]
    shard: Option<String>,
    /// The name every shard of one sharded run shares (e.g. the scheduler's job name or run
    /// number); their snapshots together are one backup.
    #[arg(long, env = "COFFER_RUN_ID", value_name = "ID", requires = "shard")]
    run_id: Option<String>,
    /// Print one JSON summary on stdout instead of the text lines (the exit code is the same).
    #[arg(long)]
    json: bool,
}

/// `--shard K/N` with `--run-id`, checked.
fn shard_of(shard: Option<&str>, run_id: Option<&str>) -> Result<Option<ShardOf>> {
    let (Some(shard), Some(run_id)) = (shard, run_id) else {
        return Ok(None);
    };
    let (index, count) = parse_shard(shard)?;
    check_run_id(run_id)?;
    Ok(Some(ShardOf {
        run_id: run_id.to_string(),
        index,
        count,
    }))
}

/// The figures of a backup for `--metrics-file`.
fn record_metrics(s: &coffer::repo::snapshot::Snapshot) {
    use super::metrics::record;
    let tracking = s.change_tracking.clone().unwrap_or_default();
    for (outcome, count) in [
        ("unchanged", tracking.verified.len()),
        ("changed", tracking.changed_while_carried.len()),
    ] {
        record(
            "coffer_backup_carried_checked",
            "Databases the binary log showed unchanged that the last backup read again to check, by what it found.",
            &[("outcome", outcome)],
            count as f64,
        );
    }
    let carried = s.databases_carried();
    let read = s.databases.len() - carried;
    for (state, count) in [
        ("read", read),
        ("carried", carried),
        ("failed", s.failed.len()),
    ] {
        record(
            "coffer_backup_databases",
            "Databases of the last backup: read, carried over unchanged, or failed.",
            &[("state", state)],
            count as f64,
        );
    }
    record(
        "coffer_backup_bytes_read",
        "Row bytes the last backup read from the server.",
        &[],
        s.stats.bytes_read as f64,
    );
    record(
        "coffer_backup_bytes_stored_new",
        "Bytes (compressed, encrypted) the last backup added to the repository.",
        &[],
        s.stats.bytes_stored_new as f64,
    );
    record(
        "coffer_backup_tables",
        "Tables in the last backup's snapshot.",
        &[],
        s.stats.tables as f64,
    );
    record(
        "coffer_backup_rows",
        "Rows in the last backup's snapshot.",
        &[],
        s.stats.rows as f64,
    );
    record(
        "coffer_backup_snapshot_timestamp_seconds",
        "The time of the last backup's snapshot (Unix time).",
        &[],
        s.time.as_millisecond() as f64 / 1000.0,
    );
}

pub(super) fn compile_globs(globs: &[String]) -> Result<Vec<glob::Pattern>> {
    globs
        .iter()
        .map(|g| {
            glob::Pattern::new(g)
                .map_err(|e| Error::invalid(format!("--include/--exclude pattern {g:?}: {e}")))
        })
        .collect()
}

pub async fn run(args: BackupArgs, matches: &ArgMatches) -> Result<ExitCode> {
    let target = args.mysql.target(matches)?;
    let options = BackupOptions {
        include: compile_globs(&args.include)?,
        exclude: compile_globs(&args.exclude)?,
        jobs: args.jobs,
        tags: args.tag,
        time: args
            .time
            .as_deref()
            .map(|t| coffer::timespec::parse_point_in_time(t, jiff::Timestamp::now()))
            .transpose()?,
        full: args.full,
        full_every: Some(args.full_every.as_str())
            .filter(|d| !d.eq_ignore_ascii_case("off"))
            .map(|d| {
                let now = jiff::Timestamp::now();
                coffer::timespec::parse_duration(d)
                    .and_then(|span| coffer::timespec::before(now, span))
                    .map(|since| now.duration_since(since))
            })
            .transpose()?,
        lock_wait: coffer::timespec::parse_setting_duration(&args.lock_wait, "--lock-wait")?,
        large_database_bytes: args.large_database,
        shard: shard_of(args.shard.as_deref(), args.run_id.as_deref())?,
        verify_carried: args.verify_carried,
        accounts: !args.no_accounts,
        ..Default::default()
    };
    if let Some(shard) = &options.shard {
        // Each shard's host writes its own metrics file; the label keeps their series apart
        // when one collector gathers them.
        super::metrics::label("shard", format!("{}/{}", shard.index, shard.count));
    }
    check_reason(&args.reason)?;
    let repo = args.repo.open_allowing_write_only().await?;
    let trail = AuditTrail::start(&repo, "backup", args.reason.clone(), |r| {
        r.server = Some(target.describe());
    })
    .await?;

    let counters = Arc::new(LiveCounters::default());
    let bar = progress_bar(
        0,
        "{spinner} {pos}/{len} databases [{bar:30}] {msg} {elapsed_precise} (ETA {eta})",
    );
    let observer = Arc::new(BackupProgress { bar: bar.clone() });
    let ticker = {
        let (bar, counters) = (bar.clone(), Arc::clone(&counters));
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            loop {
                let read = counters.bytes_read.load(Ordering::Relaxed);
                let rate = read as f64 / started.elapsed().as_secs_f64().max(0.001);
                bar.set_message(format!(
                    "{} read, {}/s",
                    HumanBytes(read),
                    HumanBytes(rate as u64)
                ));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let result = run_backup(Arc::clone(&repo), &target, &options, observer, counters).await;
    ticker.abort();
    bar.finish_and_clear();
    let report = trail
        .finish(result.map(|report| {
            let s = &report.snapshot;
            let audited = Audited {
                definers: None,
                snapshot: Some(report.snapshot_id.to_string()),
                target_database: None,
                counts: [
                    ("databases".to_string(), s.databases.len() as u64),
                    ("databases_failed".to_string(), s.failed.len() as u64),
                    ("tables".to_string(), s.stats.tables),
                    ("rows".to_string(), s.stats.rows),
                ]
                .into(),
            };
            (report, audited)
        }))
        .await?;
    let s = &report.snapshot;
    record_metrics(s);
    let tracking = s.change_tracking.clone().unwrap_or_default();
    let code = if !tracking.changed_while_carried.is_empty() {
        ExitCode::from(super::EXIT_CARRIED_CHANGED)
    } else if s.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_PARTIAL)
    };
    if args.json {
        let carried = s.databases_carried();
        super::print_json(&serde_json::json!({
            "snapshot": report.snapshot_id.to_hex(),
            "time": s.time,
            "server": s.source.server,
            "databases": s.databases.len(),
            "databases_read": s.databases.len() - carried,
            "databases_carried": carried,
            "tables_carried": s.tables_carried(),
            "carried_verified": tracking.verified.len(),
            "carried_changed": tracking.changed_while_carried,
            "failed": s.failed,
            "stats": s.stats,
            "change_tracking": s.change_tracking,
            "shard": s.shard,
        }))?;
        return Ok(code);
    }
    println!(
        "snapshot {} saved: {} databases, {} tables, {} rows, {} read, {} stored new ({} new blobs), {:.1}s",
        report.snapshot_id.short(),
        s.databases.len(),
        s.stats.tables,
        s.stats.rows,
        HumanBytes(s.stats.bytes_read),
        HumanBytes(s.stats.bytes_stored_new),
        s.stats.blobs_new,
        s.stats.duration_secs
    );
    if let Some(shard) = &s.shard {
        println!(
            "shard {}/{} of run {}: the run's other shards hold the other databases",
            shard.index, shard.count, shard.run_id
        );
    }
    if let Some(why) = &s.source.binlog_unavailable {
        println!("binlog position not recorded: {why}");
    }
    match &s.accounts {
        Some(accounts) if accounts.tree.is_some() => println!(
            "{} accounts and {} roles recorded with their grants",
            accounts.accounts, accounts.roles
        ),
        Some(accounts) => println!(
            "accounts NOT recorded: {}",
            accounts.unavailable.as_deref().unwrap_or("unknown reason")
        ),
        None => {}
    }
    if let Some(tracking) = &s.change_tracking {
        match (&tracking.full_read_because, &tracking.from_snapshot) {
            (Some(why), _) => println!("every database read: {why}"),
            (None, Some(from)) => println!(
                "{} databases unchanged since snapshot {} carried over, {} read",
                tracking.carried,
                short_text(from),
                s.databases.len() - tracking.carried
            ),
            (None, None) => {}
        }
        let tables_carried = s.tables_carried();
        if tables_carried > 0 {
            println!("{tables_carried} unchanged tables of the databases read carried over");
        }
        if !tracking.verified.is_empty() {
            // At 25,000 databases 1 % is 250 names: the first few, the rest counted.
            let shown: Vec<&str> = tracking
                .verified
                .iter()
                .take(8)
                .map(String::as_str)
                .collect();
            let more = tracking.verified.len() - shown.len();
            println!(
                "{} databases the binary log showed unchanged read again to check: unchanged ({}{})",
                tracking.verified.len(),
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            );
        }
    }
    for change in &tracking.changed_while_carried {
        eprintln!(
            "CHANGED WHILE THE BINARY LOG SHOWED NOTHING: database {}{} (log read {}); the copy carried from snapshot {} was stale, the fresh copy is stored",
            change.database,
            if change.tables.is_empty() {
                String::new()
            } else {
                format!(", tables {}", change.tables.join(", "))
            },
            change.binlog_range,
            short_text(&change.carried_from)
        );
    }
    if !tracking.changed_while_carried.is_empty() {
        eprintln!(
            "hint: a change reached the database without the binary log (sql_log_bin=0, a non-transactional table, a path change tracking does not know); run `coffer backup --full` and tell the coffer maintainers what wrote it"
        );
    }
    if s.failed.is_empty() {
        return Ok(code);
    }
    eprintln!(
        "{} databases FAILED and are not in this snapshot:",
        s.failed.len()
    );
    for f in &s.failed {
        eprintln!("  {}: {} ({} attempts)", f.name, f.error, f.attempts);
    }
    Ok(code)
}

/// Progress of a backup: a bar on a terminal, a log line per database otherwise.
struct BackupProgress {
    bar: ProgressBar,
}

impl BackupObserver for BackupProgress {
    fn planned(&self, databases: usize, approx_bytes: u64) {
        self.bar.set_length(databases as u64);
        tracing::info!(databases, approx_size = %HumanBytes(approx_bytes), "backup started");
    }

    fn database_done(&self, name: &str, outcome: &DatabaseOutcome, elapsed: Duration) {
        self.bar.inc(1);
        let line = match outcome {
            DatabaseOutcome::Done(d) => {
                format!(
                    "{name}: {} tables, {} rows, {} in {:.1}s",
                    d.tables,
                    d.rows,
                    HumanBytes(d.bytes),
                    elapsed.as_secs_f64()
                )
            }
            DatabaseOutcome::Failed { error, attempts } => {
                format!("{name}: FAILED after {attempts} attempts: {error}")
            }
        };
        if self.bar.is_hidden() {
            match outcome {
                DatabaseOutcome::Done(_) => tracing::info!("{line}"),
                DatabaseOutcome::Failed { .. } => tracing::error!("{line}"),
            }
        } else {
            self.bar.println(line);
        }
    }
}
