//! `coffer restore`: recreate one database, or some of its tables, from a snapshot on a server.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::ArgMatches;
use indicatif::HumanBytes;

use coffer::Result;
use coffer::pitr::replay::{ReplayPlan, ReplayTarget};
use coffer::repo::select::SnapshotSelector;
use coffer::restore::RestoreScope;
use coffer::restore::matching::{OnConflict, RowsDestination, RowsRequest, restore_rows};
use coffer::restore::server::{ServerRestoreOptions, restore_to_server};

use coffer::repo::Repository;
use coffer::source::mysql::MysqlTarget;
use coffer::storage::metered::Traffic;

use super::audit::{AuditTrail, Audited, check_reason};
use super::{DatabaseArgs, LoadedPlan, MysqlArg, RepoArg, print_json, progress_bar, spawn_ticker};

#[derive(clap::Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub(super) repo: RepoArg,
    #[command(flatten)]
    pub(super) mysql: MysqlArg,
    #[command(flatten)]
    pub(super) source: DatabaseArgs,
    /// Replace the target database, or with --table the target tables, if they exist
    /// (otherwise restore refuses). The snapshot is loaded beside them first; the live ones are
    /// swapped only once everything loaded.
    #[arg(long, conflicts_with = "where_")]
    pub(super) drop_existing: bool,
    /// Connections loading rows at once.
    #[arg(long, short = 'j', default_value_t = 4)]
    pub(super) jobs: usize,
    /// Only the rows of the one --table for which this SQL condition is true, as the server
    /// evaluates it on the table as it was (collations, dates, NULL and functions included).
    #[arg(long = "where", value_name = "EXPR", requires = "tables")]
    where_: Option<String>,
    /// With --where: what to do with a matching row whose key the live table already holds.
    #[arg(long, value_enum, default_value_t = ConflictArg::Fail, requires = "where_")]
    on_conflict: ConflictArg,
    /// With --where: write the matching rows as INSERT statements to this file (`-` for stdout)
    /// instead of into the live table. The table is named unqualified unless --into is given.
    #[arg(long, value_name = "FILE", requires = "where_")]
    to_sql: Option<std::path::PathBuf>,
    /// With the archived binary log (`coffer log`): stop just before this transaction (a GTID
    /// or `file:position`, as `coffer log list` and the refusal messages print them) instead of
    /// at --at's moment (or now).
    #[arg(long, value_name = "EVENT")]
    stop_before: Option<String>,
    /// Print the outcome as JSON on stdout.
    #[arg(long)]
    pub(super) json: bool,
    /// Why this restore is done (a ticket number), kept in the audit log.
    #[arg(long)]
    pub(super) reason: Option<String>,
    /// Restore every database of the chosen backup (every shard of a sharded run), from one
    /// repository open, largest first, each swapped in when complete.
    #[arg(long, conflicts_with_all = ["db", "tables", "where_", "into", "stop_before"])]
    pub(super) all: bool,
    /// Restore the databases of the chosen backup matching this glob (repeat for several), as
    /// --all does.
    #[arg(long, value_name = "GLOB", conflicts_with_all = ["db", "tables", "where_", "into", "stop_before"])]
    pub(super) include: Vec<String>,
    /// With --all or --include: leave out the databases matching this glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub(super) exclude: Vec<String>,
    /// With --all or --include: restore each database as PREFIX followed by its name.
    #[arg(long, value_name = "PREFIX")]
    pub(super) into_prefix: Option<String>,
    /// With --all or --include: insist on going on from a stopped run of the same restore (a
    /// repeated command goes on by itself; this refuses to start afresh).
    #[arg(long)]
    pub(super) resume: bool,
    /// With --all or --include: also restore the accounts, roles and grants the backup recorded
    /// (after the databases; grants follow --into-prefix). Accounts that exist are compared and
    /// reported; --drop-existing replaces those that differ.
    #[arg(long)]
    pub(super) accounts: bool,
    /// Restore only the accounts, roles and grants of the chosen backup, no database.
    #[arg(long, conflicts_with_all = ["db", "tables", "where_", "into", "stop_before", "all", "include", "accounts"])]
    pub(super) accounts_only: bool,
    /// Restore accounts even from a snapshot no full key is proven to have written (a host with
    /// a write-only key could have planted an account or a grant).
    #[arg(long)]
    pub(super) accounts_from_write_only: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ConflictArg {
    /// Overwrite the live row with the snapshot's.
    Replace,
    /// Keep the live row.
    Skip,
    /// Write nothing if any matching row's key is taken.
    Fail,
}

impl From<ConflictArg> for OnConflict {
    fn from(arg: ConflictArg) -> Self {
        match arg {
            ConflictArg::Replace => OnConflict::Replace,
            ConflictArg::Skip => OnConflict::Skip,
            ConflictArg::Fail => OnConflict::Fail,
        }
    }
}

pub async fn run(args: RestoreArgs, matches: &ArgMatches) -> Result<ExitCode> {
    let target = args.mysql.target(matches)?;
    check_reason(&args.reason)?;
    if args.all || !args.include.is_empty() || args.accounts_only {
        return super::restore_estate::run(&args, &target).await;
    }
    if args.accounts {
        return Err(coffer::Error::invalid("--accounts goes with --all or --include")
            .with_hint("restore the accounts with the databases (--all --accounts), or alone with --accounts-only"));
    }
    args.source.require_db("restore")?;
    if !args.exclude.is_empty() || args.into_prefix.is_some() || args.resume {
        return Err(coffer::Error::invalid(
            "--exclude, --into-prefix and --resume go with --all or --include",
        )
        .with_hint("restore many databases with --all or --include GLOB, or one with --db NAME"));
    }
    let (repo, traffic) = args.repo.open_metered().await?;
    let trail = AuditTrail::start(&repo, "restore", args.reason.clone(), |r| {
        r.database = Some(args.source.db().to_string());
        r.tables = args.source.tables.clone();
        r.where_ = args.where_.clone();
        r.server = Some(target.describe());
        if args.to_sql.is_none() {
            r.target_database = Some(
                args.source
                    .into
                    .clone()
                    .unwrap_or(args.source.db().to_string()),
            );
        }
    })
    .await?;
    let result = restore(&args, &target, &repo, &traffic).await;
    trail.finish(result).await
}

async fn restore(
    args: &RestoreArgs,
    target: &MysqlTarget,
    repo: &Arc<Repository>,
    traffic: &Traffic,
) -> Result<(ExitCode, Audited)> {
    let moment = point_in_time(&args.source, args.stop_before.as_deref())?;
    let source = match &moment {
        Some(target) => copy_before(&args.source, repo, target.until).await?,
        None => args.source.clone(),
    };
    let loaded = source.load_plan(repo).await?;
    let replay = match moment {
        Some(target) => replay_plan(&args.source, repo, &loaded, target).await?,
        None => None,
    };
    if let Some(expression) = &args.where_ {
        return run_rows(args, expression, loaded, replay, target, repo, traffic).await;
    }
    let (id, index, plan) = (loaded.id, Arc::new(loaded.index), Arc::new(loaded.plan));
    let total = plan.data_items().len() as u64;
    let done = Arc::new(AtomicU64::new(0));
    let bar = progress_bar(
        total,
        "{spinner} restoring [{bar:30}] {pos}/{len} chunks {elapsed_precise}",
    );
    let ticker = spawn_ticker(bar.clone(), Arc::clone(&done));
    let started = std::time::Instant::now();
    let options = ServerRestoreOptions {
        drop_existing: args.drop_existing,
        jobs: args.jobs,
        replay,
        staging_tag: None,
    };
    let result = restore_to_server(
        Arc::clone(repo),
        index,
        Arc::clone(&plan),
        target,
        &options,
        done,
    )
    .await;
    ticker.abort();
    bar.finish_and_clear();
    let stats = result?;
    let what = match plan.scope {
        RestoreScope::Database => args.source.db().to_string(),
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
            args.source.db()
        ),
    };
    println!(
        "restored {what} from snapshot {} into {}{} on {}: {} tables, {} rows, {} objects, {} of row data, {} read from storage in {} requests, {:.1}s",
        id.short(),
        plan.target_name,
        match (stats.replaced, plan.scope) {
            (false, _) => "",
            (true, RestoreScope::Database) => " (replacing the existing database)",
            (true, RestoreScope::Tables { .. }) => " (replacing the existing tables)",
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
    if let Some(replay) = &stats.replay {
        println!("{}", replayed_line(replay));
    }
    if plan.scope == (RestoreScope::Tables { renamed: true }) {
        println!(
            "the renamed copy has no triggers or foreign keys: their names belong to the original table"
        );
    }
    let audited = Audited {
        definers: Some(plan.definers().describe()),
        snapshot: Some(id.to_string()),
        target_database: Some(plan.target_name.clone()),
        counts: [
            ("tables".to_string(), stats.tables),
            ("rows".to_string(), stats.rows),
            ("objects".to_string(), stats.objects),
            (
                "replayed_transactions".to_string(),
                stats.replay.as_ref().map_or(0, |r| r.transactions_applied),
            ),
        ]
        .into(),
    };
    Ok((ExitCode::SUCCESS, audited))
}

/// What a replay applied, in a line.
fn replayed_line(replay: &coffer::pitr::replay::ReplayReport) -> String {
    format!(
        "replayed the archived binary log onto it: {} transaction(s), {} row(s), {} statement(s){}",
        replay.transactions_applied,
        replay.rows_applied,
        replay.statements_applied,
        match (&replay.last_applied, replay.last_time) {
            (Some(last), Some(time)) => format!("; the last, {last}, at {time}"),
            _ => String::new(),
        }
    )
}

/// The moment asked for (`--at`, or now with only `--stop-before`), when one is.
pub(super) fn point_in_time(
    source: &DatabaseArgs,
    stop_before: Option<&str>,
) -> Result<Option<ReplayTarget>> {
    let now = jiff::Timestamp::now();
    let until = match (&source.snapshot.at, stop_before) {
        (Some(at), _) => coffer::timespec::parse_point_in_time(at, now)?,
        (None, Some(_)) => now,
        (None, None) => return Ok(None),
    };
    if source.snapshot.snapshot.is_some() {
        return Err(coffer::Error::invalid(
            "--stop-before replays from the snapshot --at chooses; it cannot be combined with --snapshot",
        ));
    }
    Ok(Some(ReplayTarget {
        until,
        stop_before: stop_before.map(str::to_string),
    }))
}

/// The newest snapshot whose run had finished by `until`, holding the database: its copy is
/// from before the moment (a run still going at `until` may have read the database after it).
pub(super) async fn copy_before(
    source: &DatabaseArgs,
    repo: &Repository,
    until: jiff::Timestamp,
) -> Result<DatabaseArgs> {
    let mut at = until;
    for attempt in 0..1000 {
        let chosen = repo
            .select_snapshot(&SnapshotSelector::At(at), Some(source.db()))
            .await?;
        if chosen.snapshot.finished <= until {
            if attempt == 0 {
                // --at chooses it as it always has (and says why).
                return Ok(source.clone());
            }
            eprintln!(
                "note: the backups after snapshot {} were still running at {until}: their copies may be later than that",
                chosen.id.short()
            );
            let mut source = source.clone();
            source.snapshot.at = None;
            source.snapshot.snapshot = Some(chosen.id.to_string());
            return Ok(source);
        }
        at = chosen
            .snapshot
            .time
            .checked_sub(jiff::SignedDuration::from_nanos(1))
            .map_err(|e| coffer::Error::invalid(format!("--at: {e}")))?;
    }
    Err(coffer::Error::invalid(format!(
        "no snapshot holding {} finished before {until}",
        source.db()
    )))
}

/// What to replay onto the copy: `None` when the archive holds nothing of the snapshot's
/// server (the snapshot is restored as it is, and the output says so).
pub(super) async fn replay_plan(
    source: &DatabaseArgs,
    repo: &Repository,
    loaded: &super::LoadedPlan,
    target: ReplayTarget,
) -> Result<Option<Arc<ReplayPlan>>> {
    if !coffer::pitr::replay::archive_exists(repo, &loaded.snapshot).await? {
        if target.stop_before.is_some() {
            return Err(coffer::Error::invalid(format!(
                "--stop-before needs the archived binary log of {}, and the repository has none",
                loaded.snapshot.source.server
            ))
            .with_hint("archive it with `coffer log follow` or `coffer log sync`"));
        }
        eprintln!(
            "note: no archived binary log of {}: taking snapshot {} ({}) as it was, not {}",
            loaded.snapshot.source.server,
            loaded.id.short(),
            loaded.snapshot.time,
            target.until
        );
        return Ok(None);
    }
    let entry = loaded
        .snapshot
        .databases
        .iter()
        .find(|d| d.name == source.db())
        .ok_or_else(|| {
            coffer::Error::invalid(format!(
                "database {} is not in snapshot {}",
                source.db(),
                loaded.id.short()
            ))
        })?;
    let mut plan = coffer::pitr::replay::plan(repo, &loaded.snapshot, entry, target).await?;
    if !source.tables.is_empty() {
        plan.tables = Some(loaded.plan.tables.iter().map(|t| t.name.clone()).collect());
        plan.renamed = loaded
            .plan
            .tables
            .iter()
            .zip(&loaded.plan.table_targets)
            .filter(|(table, copy)| table.name != **copy)
            .map(|(table, copy)| (table.name.clone(), copy.clone()))
            .collect();
    }
    eprintln!(
        "replaying the archived binary log of {} onto snapshot {}'s copy of {}: from {}:{} to {}{} ({} segment(s))",
        plan.server,
        loaded.id.short(),
        plan.database,
        plan.from.from_file,
        plan.from.from,
        plan.target.until,
        plan.target
            .stop_before
            .as_deref()
            .map(|e| format!(", stopping before {e}"))
            .unwrap_or_default(),
        plan.segments.len()
    );
    Ok(Some(Arc::new(plan)))
}

/// `--where`: the matching rows into the live table, or as SQL.
async fn run_rows(
    args: &RestoreArgs,
    expression: &str,
    loaded: LoadedPlan,
    replay: Option<Arc<ReplayPlan>>,
    target: &MysqlTarget,
    repo: &Arc<Repository>,
    traffic: &Traffic,
) -> Result<(ExitCode, Audited)> {
    let LoadedPlan {
        id, index, plan, ..
    } = loaded;
    let started = std::time::Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let mut file_out;
    let mut stdout_out;
    let destination = match &args.to_sql {
        None => RowsDestination::LiveTable(args.on_conflict.into()),
        Some(path) => {
            let out: &mut dyn std::io::Write = if path.as_os_str() == "-" {
                stdout_out = std::io::BufWriter::new(std::io::stdout().lock());
                &mut stdout_out
            } else {
                file_out = std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| {
                    coffer::Error::invalid(format!("creating {}", path.display())).with_source(e)
                })?);
                &mut file_out
            };
            RowsDestination::Sql {
                out,
                database: args.source.into.clone(),
            }
        }
    };
    let to_sql = args.to_sql.is_some();
    let sql_on_stdout = args.to_sql.as_ref().is_some_and(|p| p.as_os_str() == "-");
    let outcome = restore_rows(
        Arc::clone(repo),
        Arc::new(index),
        &plan,
        target,
        RowsRequest {
            expression,
            destination,
            jobs: args.jobs,
            replay,
        },
        done,
    )
    .await?;
    let bytes_read = traffic.bytes_read.load(Ordering::Relaxed);
    if args.json {
        #[derive(serde::Serialize)]
        struct Summary<'a> {
            snapshot: String,
            database: &'a str,
            table: &'a str,
            target_database: &'a str,
            target_table: &'a str,
            #[serde(rename = "where")]
            expression: &'a str,
            #[serde(flatten)]
            outcome: &'a coffer::restore::matching::RowsOutcome,
            bytes_read_from_storage: u64,
            seconds: f64,
        }
        let summary = Summary {
            snapshot: id.to_string(),
            database: args.source.db(),
            table: &plan.tables[0].name,
            target_database: &plan.target_name,
            target_table: &plan.table_targets[0],
            expression,
            outcome: &outcome,
            bytes_read_from_storage: bytes_read,
            seconds: started.elapsed().as_secs_f64(),
        };
        if sql_on_stdout {
            // stdout holds the SQL; the summary goes to stderr.
            let text = serde_json::to_string_pretty(&summary)
                .map_err(|e| coffer::Error::invalid("encoding the JSON output").with_source(e))?;
            eprintln!("{text}");
        } else {
            print_json(&summary)?;
        }
        return Ok((
            ExitCode::SUCCESS,
            rows_audited(&id, &plan, &outcome, to_sql),
        ));
    }
    eprintln!("{}", outcome.chunk_choice);
    if let Some(replay) = &outcome.replay {
        eprintln!("{}", replayed_line(replay));
    }
    let summary = if to_sql {
        format!(
            "wrote {} matching rows of {}.{} from snapshot {} as SQL",
            outcome.matched,
            args.source.db(),
            plan.tables[0].name,
            id.short()
        )
    } else {
        format!(
            "restored rows of {}.{} from snapshot {} into {}.{} on {}: {} matched, {} inserted, {} replaced, {} skipped",
            args.source.db(),
            plan.tables[0].name,
            id.short(),
            plan.target_name,
            plan.table_targets[0],
            target.describe(),
            outcome.matched,
            outcome.inserted,
            outcome.replaced,
            outcome.skipped
        )
    };
    let line = format!(
        "{summary}; {} read from storage, {:.1}s",
        HumanBytes(bytes_read),
        started.elapsed().as_secs_f64()
    );
    if sql_on_stdout {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
    Ok((
        ExitCode::SUCCESS,
        rows_audited(&id, &plan, &outcome, to_sql),
    ))
}

fn rows_audited(
    id: &coffer::repo::ids::SnapshotId,
    plan: &coffer::restore::RestorePlan,
    outcome: &coffer::restore::matching::RowsOutcome,
    to_sql: bool,
) -> Audited {
    Audited {
        definers: None,
        snapshot: Some(id.to_string()),
        target_database: (!to_sql).then(|| plan.target_name.clone()),
        counts: [
            ("matched".to_string(), outcome.matched),
            ("inserted".to_string(), outcome.inserted),
            ("replaced".to_string(), outcome.replaced),
            ("skipped".to_string(), outcome.skipped),
            (
                "replayed_transactions".to_string(),
                outcome
                    .replay
                    .as_ref()
                    .map_or(0, |r| r.transactions_applied),
            ),
        ]
        .into(),
    }
}
