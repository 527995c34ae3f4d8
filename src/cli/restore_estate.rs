//! `coffer restore --all` / `--include GLOB`: many databases of one backup onto one server, from
//! one repository open (`coffer::restore::estate` holds the rules), resumable, audited once for
//! the run and once per database.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use coffer::repo::Repository;
use coffer::restore::estate::{
    DatabaseOutcome, EstateDatabase, EstateJournal, EstateOptions, FileJournal, restore_estate,
};
use coffer::restore::server::drop_leftover_staging;
use coffer::source::mysql::MysqlTarget;
use coffer::{Error, Result};
use mysql_async::prelude::Queryable;

use super::audit::{AuditTrail, Audited};
use super::restore::RestoreArgs;
use super::restore_accounts;
use super::{print_json, progress_bar, spawn_ticker};

pub(super) async fn run(args: &RestoreArgs, target: &MysqlTarget) -> Result<ExitCode> {
    let (repo, _traffic) = args.repo.open_metered().await?;
    let trail = AuditTrail::start(&repo, "restore", args.reason.clone(), |r| {
        r.server = Some(target.describe());
        r.tables = Vec::new();
    })
    .await?;
    let result = if args.accounts_only {
        accounts_only(args, target, &repo).await
    } else {
        estate(args, target, &repo, &trail).await
    };
    trail.finish(result).await
}

/// The databases chosen, and those of the backup that have no copy in it.
struct Chosen {
    chosen: coffer::repo::select::ChosenSnapshot,
    databases: Vec<EstateDatabase>,
    missing: Vec<String>,
    snapshots: HashMap<coffer::repo::ids::SnapshotId, coffer::repo::snapshot::Snapshot>,
}

async fn choose(args: &RestoreArgs, repo: &Repository) -> Result<Chosen> {
    let include = super::backup::compile_globs(&args.include)?;
    let exclude = super::backup::compile_globs(&args.exclude)?;
    let selected = |name: &str| {
        (include.is_empty() || include.iter().any(|p| p.matches(name)))
            && !exclude.iter().any(|p| p.matches(name))
    };
    let moment = match &args.source.snapshot.at {
        Some(at) => Some(coffer::timespec::parse_point_in_time(
            at,
            jiff::Timestamp::now(),
        )?),
        None => None,
    };
    let (chosen, backup) = backup_finished_by(args, repo, moment).await?;
    let mut snapshots = HashMap::new();
    let mut databases = Vec::new();
    for (name, id) in backup.held {
        if !selected(&name) {
            continue;
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = snapshots.entry(id) {
            slot.insert(if id == chosen.id {
                chosen.snapshot.clone()
            } else {
                repo.find_snapshot(&id.to_hex()).await?.1
            });
        }
        let bytes = snapshots
            .get(&id)
            .and_then(|s| s.databases.iter().find(|d| d.name == name))
            .map_or(0, |d| d.bytes);
        let target = format!("{}{name}", args.into_prefix.as_deref().unwrap_or(""));
        databases.push(EstateDatabase {
            source: name,
            target,
            snapshot: id,
            bytes,
            replace_own: false,
            replay: None,
        });
    }
    if let Some(until) = moment {
        plan_replays(repo, &snapshots, &mut databases, until).await?;
    }
    let mut missing: Vec<String> = backup
        .failed
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| selected(name) && !databases.iter().any(|d| &d.source == name))
        .collect();
    missing.sort();
    missing.dedup();
    if databases.is_empty() {
        return Err(Error::not_found(format!(
            "no database of backup {} matches{}",
            chosen.id.short(),
            if args.include.is_empty() {
                String::new()
            } else {
                format!(" --include {}", args.include.join(" "))
            }
        ))
        .with_hint("list the backup's databases with `coffer ls`"));
    }
    Ok(Chosen {
        chosen,
        databases,
        missing,
        snapshots,
    })
}

/// The backup to restore: the one `--snapshot`/`--at` names; with `--at`, the newest whose
/// every shard had finished by the moment (a run still going then may have read a database
/// after it, and a replay cannot go back).
async fn backup_finished_by(
    args: &RestoreArgs,
    repo: &Repository,
    moment: Option<jiff::Timestamp>,
) -> Result<(
    coffer::repo::select::ChosenSnapshot,
    coffer::repo::select::BackupDatabases,
)> {
    let mut chosen = args.source.snapshot.choose(repo, None).await?;
    loop {
        let backup = repo.databases_of_backup(&chosen).await?;
        let Some(until) = moment else {
            return Ok((chosen, backup));
        };
        let mut finished = chosen.snapshot.finished;
        let mut earliest_start = chosen.snapshot.time;
        if chosen.snapshot.shard.is_some() {
            let run = chosen.snapshot.backup_key(&chosen.id);
            for (id, summary) in repo.summaries().await? {
                if summary.backup_key(&id) == run {
                    finished = finished.max(summary.finished);
                    earliest_start = earliest_start.min(summary.time);
                }
            }
        }
        if finished <= until {
            return Ok((chosen, backup));
        }
        eprintln!(
            "note: backup {} was still running at {until}: taking an earlier one and replaying from it",
            chosen.id.short()
        );
        let before = earliest_start
            .checked_sub(jiff::SignedDuration::from_nanos(1))
            .map_err(|e| Error::invalid(format!("--at: {e}")))?;
        chosen = repo
            .select_snapshot(&coffer::repo::select::SnapshotSelector::At(before), None)
            .await
            .map_err(|e| e.context(format!("no backup had finished by {until}")))?;
    }
}

/// With `--at`: each database's replay of the archived binary log, planned before anything
/// changes (a database whose log cannot take it to the moment refuses the run, naming it).
async fn plan_replays(
    repo: &Repository,
    snapshots: &HashMap<coffer::repo::ids::SnapshotId, coffer::repo::snapshot::Snapshot>,
    databases: &mut [EstateDatabase],
    until: jiff::Timestamp,
) -> Result<()> {
    use coffer::pitr::replay::{ReplayTarget, plan_from, stream_segments};
    // The segments of each server, read once for every database.
    let mut streams: HashMap<String, Option<Vec<coffer::repo::log_segments::LogSegment>>> =
        HashMap::new();
    let mut refused = Vec::new();
    let mut replayed = 0usize;
    for database in databases.iter_mut() {
        let Some(snapshot) = snapshots.get(&database.snapshot) else {
            continue;
        };
        let key = format!(
            "{}\0{}",
            snapshot.source.server,
            snapshot
                .source
                .server_identity
                .as_deref()
                .unwrap_or_default()
        );
        if !streams.contains_key(&key) {
            // One listing: no segment of the server's stream is no archive.
            let segments = stream_segments(repo, snapshot).await?;
            let segments = if !segments.is_empty() {
                Some(segments)
            } else {
                eprintln!(
                    "note: no archived binary log of {}: its databases are taken as backup {} holds them ({}), not at {until}",
                    snapshot.source.server,
                    database.snapshot.short(),
                    snapshot.time
                );
                None
            };
            streams.insert(key.clone(), segments);
        }
        let Some(Some(segments)) = streams.get(&key) else {
            continue;
        };
        let Some(entry) = snapshot
            .databases
            .iter()
            .find(|d| d.name == database.source)
        else {
            continue;
        };
        let target = ReplayTarget {
            until,
            stop_before: None,
        };
        match plan_from(segments, snapshot, entry, target) {
            Ok(plan) => {
                replayed += 1;
                database.replay = Some(Arc::new(plan));
            }
            Err(e) => refused.push(format!("{}: {e}", database.source)),
        }
    }
    if !refused.is_empty() {
        refused.sort();
        return Err(Error::invalid(format!(
            "{} database(s) cannot be taken to {until} from the archived binary log; nothing was changed:\n  {}",
            refused.len(),
            refused.join("\n  ")
        ))
        .with_hint("choose a moment the archive covers (`coffer log list`), leave those out with --exclude, or restore the backups as they are with --snapshot"));
    }
    if replayed > 0 {
        eprintln!("replaying the archived binary log onto {replayed} database(s), each to {until}");
    }
    Ok(())
}

/// The run's key: the same restore (what, from which snapshots, to where) repeated finds its
/// journal.
fn run_key(args: &RestoreArgs, target: &MysqlTarget, databases: &[EstateDatabase]) -> String {
    let mut hasher = blake3::Hasher::new();
    for part in [
        args.repo.repo.as_str(),
        &target.describe(),
        args.into_prefix.as_deref().unwrap_or(""),
    ] {
        hasher.update(part.as_bytes());
        hasher.update(&[0]);
    }
    let mut parts: Vec<String> = databases
        .iter()
        // Another moment is another restore, even from the same backup (a relative `--at`
        // repeated later names another moment, so it starts afresh).
        .map(|d| {
            let until = d.replay.as_ref().map(|r| r.target.until.to_string());
            format!(
                "{}\0{}\0{}\0{}",
                d.source,
                d.target,
                d.snapshot.to_hex(),
                until.unwrap_or_default()
            )
        })
        .collect();
    parts.sort();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update(&[0]);
    }
    hasher.finalize().to_hex()[..32].to_string()
}

/// The databases that exist on the target, of those named.
async fn existing(target: &MysqlTarget, names: &[&str]) -> Result<Vec<String>> {
    let mut conn = target.connect().await?;
    let all: Vec<String> = conn
        .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
        .await
        .map_err(|e| coffer::source::mysql::mysql_error(e, "listing the target's databases"))?;
    let _ = conn.disconnect().await;
    Ok(all
        .into_iter()
        .filter(|d| names.contains(&d.as_str()))
        .collect())
}

#[derive(serde::Serialize)]
struct DatabaseSummary {
    database: String,
    target: String,
    snapshot: String,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    tables: u64,
    rows: u64,
    /// Transactions replayed from the archived binary log (`--at`).
    #[serde(skip_serializing_if = "Option::is_none")]
    replayed_transactions: Option<u64>,
    /// Archived log segments read for it (only those that touched it).
    #[serde(skip_serializing_if = "Option::is_none")]
    log_segments_read: Option<usize>,
}

async fn estate(
    args: &RestoreArgs,
    target: &MysqlTarget,
    repo: &Arc<Repository>,
    trail: &AuditTrail,
) -> Result<(ExitCode, Audited)> {
    let started = std::time::Instant::now();
    let Chosen {
        chosen,
        databases,
        missing,
        snapshots,
    } = choose(args, repo).await?;
    let index = Arc::new(repo.load_index().await?);
    // Checked before any database is touched: a refusal changes nothing.
    let accounts = if args.accounts {
        let restored = databases.iter().map(|d| d.source.clone()).collect();
        Some(restore_accounts::prepare(args, target, repo, &index, &chosen, restored).await?)
    } else {
        None
    };
    let journal = FileJournal::open(&run_key(args, target, &databases))?;
    let before = journal.state();
    let resuming = !before.done.is_empty() || !before.in_progress.is_empty();
    if args.resume && !resuming {
        return Err(Error::invalid(
            "--resume: no stopped run of this restore is recorded on this host",
        )
        .with_hint("run it without --resume to start it"));
    }
    // What a stopped run left: staging databases dropped, complete databases skipped (if they
    // are still there).
    for (database, tag) in &before.in_progress {
        drop_leftover_staging(target, tag).await?;
        eprintln!("dropped the staging copy of {database} a stopped run left");
    }
    let recorded: Vec<&str> = databases
        .iter()
        .filter(|d| before.done.contains(&d.source) || before.in_progress.contains_key(&d.source))
        .map(|d| d.target.as_str())
        .collect();
    let still_there = existing(target, &recorded).await?;
    let (skipped, mut todo): (Vec<EstateDatabase>, Vec<EstateDatabase>) = databases
        .into_iter()
        .partition(|d| before.done.contains(&d.source) && still_there.contains(&d.target));
    // A target the stopped run created while swapping it in may be incomplete: it is replaced.
    for database in &mut todo {
        if before.in_progress.contains_key(&database.source)
            && still_there.contains(&database.target)
        {
            eprintln!(
                "redoing {}: the stopped run was swapping it in as {}, which is replaced",
                database.source, database.target
            );
            database.replace_own = true;
        }
    }
    if resuming {
        eprintln!(
            "going on with the restore started {}: {} database(s) complete and skipped, {} to restore",
            before
                .started
                .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_default(),
            skipped.len(),
            todo.len()
        );
    }
    for name in &missing {
        eprintln!(
            "not in this backup (it failed there, so there is no copy): {name}; restore it from an earlier snapshot with --db {name} --snapshot ID"
        );
    }
    let total_chunks: u64 = todo.len() as u64;
    let finished = Arc::new(AtomicU64::new(0));
    let bar = progress_bar(
        total_chunks,
        "{spinner} restoring [{bar:30}] {pos}/{len} databases {elapsed_precise} eta {eta}",
    );
    let ticker = spawn_ticker(bar.clone(), Arc::clone(&finished));
    // Each database's audit record is written as it settles, one at a time (each names the
    // one before), while the others load: thousands of small writes after the run would add
    // their latency to it.
    let (settled, mut to_record) = tokio::sync::mpsc::unbounded_channel();
    let counting = CountingJournal {
        inner: &journal,
        finished: Arc::clone(&finished),
        settled,
    };
    let options = EstateOptions {
        jobs: args.jobs,
        drop_existing: args.drop_existing,
        skip_definer: args.source.skip_definer,
        keep_definer: args.source.keep_definer,
    };
    let restoring = async move {
        // `counting` (the channel's only sender) is dropped when this ends, closing it.
        restore_estate(
            Arc::clone(repo),
            index,
            &snapshots,
            todo,
            target,
            &options,
            &counting,
            Arc::new(AtomicU64::new(0)),
        )
        .await
    };
    let recording = async {
        let mut first_error = None;
        while let Some((database, outcome)) = to_record.recv().await {
            if first_error.is_none()
                && let Err(e) = record_database(trail, &database, &outcome).await
            {
                first_error = Some(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    };
    let (outcomes, recorded) = tokio::join!(restoring, recording);
    ticker.abort();
    bar.finish_and_clear();
    recorded.map_err(|e| {
        e.context(format!(
            "{} database(s) were restored or tried, but not all of their audit records could be written",
            outcomes.len()
        ))
    })?;

    let mut summaries = Vec::new();
    let (mut restored, mut failed, mut rows) = (0u64, 0u64, 0u64);
    // Failures a repeated run may get past (not just a target that exists).
    let mut can_go_on = 0u64;
    for (database, outcome) in &outcomes {
        let replay = match outcome {
            DatabaseOutcome::Restored(stats) => stats.replay.as_ref(),
            DatabaseOutcome::Failed { .. } => None,
        };
        let replayed = replay.map(|r| r.transactions_applied);
        let (label, error, tables, database_rows) = match outcome {
            DatabaseOutcome::Restored(stats) => {
                restored += 1;
                rows += stats.rows;
                ("restored", None, stats.tables, stats.rows)
            }
            DatabaseOutcome::Failed {
                error,
                target_exists,
            } => {
                failed += 1;
                if !target_exists {
                    can_go_on += 1;
                }
                ("failed", Some(error.clone()), 0, 0)
            }
        };
        if !args.json {
            match &error {
                None => println!(
                    "restored {} into {}: {tables} tables, {database_rows} rows{}",
                    database.source,
                    database.target,
                    replayed
                        .map(|n| format!(", {n} transaction(s) replayed from the log"))
                        .unwrap_or_default()
                ),
                Some(why) => println!("FAILED {} into {}: {why}", database.source, database.target),
            }
        }
        summaries.push(DatabaseSummary {
            database: database.source.clone(),
            target: database.target.clone(),
            snapshot: database.snapshot.to_hex(),
            outcome: label,
            error,
            tables,
            rows: database_rows,
            replayed_transactions: replayed,
            log_segments_read: replay.map(|r| r.segments_read),
        });
    }
    for database in &skipped {
        summaries.push(DatabaseSummary {
            database: database.source.clone(),
            target: database.target.clone(),
            snapshot: database.snapshot.to_hex(),
            outcome: "already_restored",
            error: None,
            tables: 0,
            rows: 0,
            replayed_transactions: None,
            log_segments_read: None,
        });
    }
    let accounts = match &accounts {
        Some(prepared) => Some(restore_accounts::finish(prepared, target, args.json).await?),
        None => None,
    };
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        #[derive(serde::Serialize)]
        struct Summary<'a> {
            restored: u64,
            failed: u64,
            skipped_complete: usize,
            missing_from_backup: &'a [String],
            rows: u64,
            seconds: f64,
            databases: &'a [DatabaseSummary],
            #[serde(skip_serializing_if = "Option::is_none")]
            accounts: Option<&'a [coffer::restore::accounts::AccountResult]>,
        }
        print_json(&Summary {
            restored,
            failed,
            skipped_complete: skipped.len(),
            missing_from_backup: &missing,
            rows,
            seconds,
            databases: &summaries,
            accounts: accounts.as_ref().map(|a| a.results.as_slice()),
        })?;
    } else {
        println!(
            "{restored} database(s) restored, {failed} failed, {} already complete, {} missing from the backup, on {} in {seconds:.1}s",
            skipped.len(),
            missing.len(),
            target.describe()
        );
    }
    if failed == 0 {
        journal.remove();
    } else if can_go_on > 0 {
        eprintln!(
            "repeat the same command to go on: the {restored} restored now and the {} complete before are skipped",
            skipped.len()
        );
    }
    let mut audited = Audited {
        definers: None,
        snapshot: None,
        target_database: args.into_prefix.clone().map(|p| format!("{p}*")),
        counts: [
            ("databases_restored".to_string(), restored),
            ("databases_failed".to_string(), failed),
            (
                "databases_skipped_complete".to_string(),
                skipped.len() as u64,
            ),
            ("databases_missing".to_string(), missing.len() as u64),
            ("rows".to_string(), rows),
        ]
        .into(),
    };
    let accounts_incomplete = accounts.as_ref().is_some_and(|a| a.incomplete);
    if let Some(accounts) = accounts {
        audited.counts.extend(accounts.counts);
    }
    let code = if failed > 0 || !missing.is_empty() || accounts_incomplete {
        ExitCode::from(super::EXIT_PARTIAL)
    } else {
        ExitCode::SUCCESS
    };
    Ok((code, audited))
}

/// `--accounts-only`: the accounts of the chosen backup, no database.
async fn accounts_only(
    args: &RestoreArgs,
    target: &MysqlTarget,
    repo: &Arc<Repository>,
) -> Result<(ExitCode, Audited)> {
    let chosen = args.source.snapshot.choose(repo, None).await?;
    // Grants follow --into-prefix onto every database of the backup.
    let restored = repo
        .databases_of_backup(&chosen)
        .await?
        .held
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let index = repo.load_index().await?;
    let prepared = restore_accounts::prepare(args, target, repo, &index, &chosen, restored).await?;
    let done = restore_accounts::finish(&prepared, target, args.json).await?;
    if args.json {
        #[derive(serde::Serialize)]
        struct Summary<'a> {
            snapshot: &'a str,
            accounts: &'a [coffer::restore::accounts::AccountResult],
        }
        print_json(&Summary {
            snapshot: &prepared.snapshot,
            accounts: &done.results,
        })?;
    }
    let code = if done.incomplete {
        ExitCode::from(super::EXIT_PARTIAL)
    } else {
        ExitCode::SUCCESS
    };
    Ok((
        code,
        Audited {
            definers: None,
            snapshot: Some(prepared.snapshot.clone()),
            target_database: None,
            counts: done.counts,
        },
    ))
}

/// The audit record of one database of the run.
async fn record_database(
    trail: &AuditTrail,
    database: &EstateDatabase,
    outcome: &DatabaseOutcome,
) -> Result<()> {
    let (error, tables, rows) = match outcome {
        DatabaseOutcome::Restored(stats) => (None, stats.tables, stats.rows),
        DatabaseOutcome::Failed { error, .. } => (Some(error.clone()), 0, 0),
    };
    trail
        .part(|r| {
            r.database = Some(database.source.clone());
            r.target_database = Some(database.target.clone());
            r.snapshot = Some(database.snapshot.to_hex());
            r.outcome = match error {
                None => coffer::repo::audit::AuditOutcome::Succeeded,
                Some(why) => coffer::repo::audit::AuditOutcome::Failed(why),
            };
            r.counts = [("tables".to_string(), tables), ("rows".to_string(), rows)].into();
        })
        .await
}

/// The journal, counting the databases done (restored or failed) for the progress display
/// and handing each one's outcome to the audit writer.
struct CountingJournal<'a> {
    inner: &'a FileJournal,
    finished: Arc<AtomicU64>,
    settled: tokio::sync::mpsc::UnboundedSender<(EstateDatabase, DatabaseOutcome)>,
}

impl EstateJournal for CountingJournal<'_> {
    fn started(&self, database: &str, staging_tag: &str) -> Result<()> {
        self.inner.started(database, staging_tag)
    }

    fn finished(&self, database: &str) -> Result<()> {
        self.inner.finished(database)
    }

    fn settled(&self, database: &EstateDatabase, outcome: &DatabaseOutcome) {
        self.finished.fetch_add(1, Ordering::Relaxed);
        // The writer drains the channel to the end (after an error too, which the run
        // reports), so a send fails only if the run is being torn down.
        let _ = self.settled.send((database.clone(), outcome.clone()));
    }
}
