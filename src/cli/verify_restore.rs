//! `coffer verify-restore`: a restore drill. Restores databases of a snapshot into scratch
//! schemas, proves each equals the snapshot ([`coffer::restore::verify`]), drops the scratch
//! schema, and reports pass or fail with timings; the result goes into the audit log.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use clap::ArgMatches;

use coffer::repo::Repository;
use coffer::repo::ids::{SnapshotId, short_text};
use coffer::repo::snapshot::Snapshot;
use coffer::restore::server::{ServerRestoreOptions, restore_to_server};
use coffer::restore::verify::{TableVerdict, verify_restored};
use coffer::restore::{RestoreOptions, RestorePlan};
use coffer::source::mysql::MysqlTarget;
use coffer::{Error, Result};

use super::audit::{AuditTrail, Audited, check_reason};
use super::{MysqlArg, RepoArg, SnapshotArgs, print_json};

#[derive(clap::Args)]
pub struct VerifyRestoreArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// The server to restore on (into scratch schemas `coffer_verify_<random>`, dropped after).
    #[command(flatten)]
    mysql: MysqlArg,
    #[command(flatten)]
    choice: SnapshotArgs,
    /// Database to drill (repeatable).
    #[arg(long = "db", value_name = "DB", required_unless_present = "sample")]
    databases: Vec<String>,
    /// Drill N databases of the snapshot picked at random.
    #[arg(long, value_name = "N")]
    sample: Option<usize>,
    /// Create objects without their DEFINER (as `restore --skip-definer`).
    #[arg(long)]
    skip_definer: bool,
    #[arg(long, short = 'j', default_value_t = 4)]
    jobs: usize,
    #[arg(long)]
    json: bool,
    /// Why (kept in the audit log).
    #[arg(long)]
    reason: Option<String>,
}

#[derive(serde::Serialize)]
struct Drill {
    database: String,
    /// The snapshot it was restored from (the shards of a run are several snapshots).
    snapshot: String,
    passed: bool,
    restore_seconds: f64,
    verify_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    tables: Vec<TableVerdict>,
}

pub async fn run(args: VerifyRestoreArgs, matches: &ArgMatches) -> Result<ExitCode> {
    let target = args.mysql.target(matches)?;
    check_reason(&args.reason)?;
    let repo = args.repo.open().await?;
    let trail = AuditTrail::start(&repo, "verify-restore", args.reason.clone(), |r| {
        r.database = args.databases.first().cloned();
        r.server = Some(target.describe());
    })
    .await?;
    let result = drill(&args, &repo, &target).await;
    trail.finish(result).await
}

async fn drill(
    args: &VerifyRestoreArgs,
    repo: &Arc<Repository>,
    target: &MysqlTarget,
) -> Result<(ExitCode, Audited)> {
    let named = args.databases.first().map(String::as_str);
    let chosen = args.choice.choose(repo, named).await?;
    let id = chosen.id;
    let mut pool = match args.sample {
        Some(_) => repo.databases_of_backup(&chosen).await?.held,
        None => Vec::new(),
    };
    // Each database with the snapshot it is drilled from: the one a restore of it would use.
    let mut databases: Vec<(String, SnapshotId)> = Vec::new();
    let mut snapshots: HashMap<SnapshotId, Snapshot> =
        HashMap::from([(chosen.id, chosen.snapshot)]);
    for (i, database) in args.databases.iter().enumerate() {
        let from = if i == 0 {
            chosen.id
        } else {
            let other = args.choice.choose(repo, Some(database)).await?;
            snapshots.entry(other.id).or_insert(other.snapshot);
            other.id
        };
        databases.push((database.clone(), from));
    }
    if let Some(n) = args.sample {
        // A random sample without repetition: a partial Fisher-Yates shuffle.
        for i in 0..n.min(pool.len()) {
            let mut r = [0u8; 8];
            coffer::crypto::fill_random(&mut r)?;
            let j = i + (u64::from_le_bytes(r) % (pool.len() - i) as u64) as usize;
            pool.swap(i, j);
            databases.push(pool[i].clone());
        }
    }
    if databases.is_empty() {
        return Err(
            Error::invalid("no database to drill").with_hint("give --db NAME or --sample N")
        );
    }
    let index = Arc::new(repo.load_index().await?);
    let mut drills = Vec::with_capacity(databases.len());
    for (database, from) in &databases {
        // Other shards' snapshots of a sampled run are read when first drilled.
        let snapshot = match snapshots.entry(*from) {
            Entry::Occupied(loaded) => loaded.into_mut(),
            Entry::Vacant(slot) => slot.insert(repo.find_snapshot(&from.to_hex()).await?.1),
        };
        let mut tag = [0u8; 6];
        coffer::crypto::fill_random(&mut tag)?;
        let scratch = format!("coffer_verify_{}", hex::encode(tag));
        let outcome = drill_one(
            args,
            repo,
            &index,
            snapshot,
            &from.short(),
            database,
            &scratch,
            target,
        )
        .await;
        // The scratch schema goes whatever happened.
        let mut conn = target.connect().await?;
        if let Err(e) = mysql_async::prelude::Queryable::query_drop(
            &mut conn,
            format!(
                "DROP DATABASE IF EXISTS {}",
                coffer::sql::quote_ident(&scratch)
            ),
        )
        .await
        {
            eprintln!("warning: could not drop the scratch schema {scratch}; drop it by hand: {e}");
        }
        drills.push(match outcome {
            Ok(drill) => drill,
            Err(e) => Drill {
                database: database.clone(),
                snapshot: from.to_string(),
                passed: false,
                restore_seconds: 0.0,
                verify_seconds: 0.0,
                error: Some(e.to_string()),
                tables: Vec::new(),
            },
        });
    }
    let passed = drills.iter().filter(|d| d.passed).count();
    if args.json {
        print_json(&drills)?;
    } else {
        for d in &drills {
            println!(
                "{:<6} {} (snapshot {})  restore {:.1}s, verify {:.1}s{}",
                if d.passed { "PASS" } else { "FAIL" },
                d.database,
                short_text(&d.snapshot),
                d.restore_seconds,
                d.verify_seconds,
                d.error
                    .as_deref()
                    .map(|e| format!("  {e}"))
                    .unwrap_or_default()
            );
            for t in d.tables.iter().filter(|t| !t.equal) {
                println!(
                    "       table {}: {} ({} rows expected, {} found)",
                    t.table,
                    t.difference.as_deref().unwrap_or("row counts differ"),
                    t.rows_expected,
                    t.rows_found
                );
            }
        }
        println!(
            "{passed} of {} databases restored equal to their snapshot",
            drills.len()
        );
    }
    let audited = Audited {
        definers: None,
        snapshot: Some(id.to_string()),
        target_database: None,
        counts: [
            ("databases_passed".to_string(), passed as u64),
            (
                "databases_failed".to_string(),
                (drills.len() - passed) as u64,
            ),
        ]
        .into(),
    };
    if passed == drills.len() {
        Ok((ExitCode::SUCCESS, audited))
    } else {
        Err(Error::new(
            coffer::ErrorKind::Corrupt,
            format!(
                "{} of {} databases did not restore equal to the snapshot: {}",
                drills.len() - passed,
                drills.len(),
                drills
                    .iter()
                    .filter(|d| !d.passed)
                    .map(|d| d.database.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .with_hint("run `coffer check --read-data`; the details are above"))
    }
}

#[allow(clippy::too_many_arguments)]
async fn drill_one(
    args: &VerifyRestoreArgs,
    repo: &Arc<Repository>,
    index: &Arc<coffer::repo::index::Index>,
    snapshot: &coffer::repo::snapshot::Snapshot,
    label: &str,
    database: &str,
    scratch: &str,
    target: &MysqlTarget,
) -> Result<Drill> {
    let plan = Arc::new(
        RestorePlan::load(
            repo,
            index,
            snapshot,
            label,
            database,
            &RestoreOptions {
                into: Some(scratch.to_string()),
                skip_definer: args.skip_definer,
                keep_definer: false,
            },
        )
        .await?,
    );
    let started = Instant::now();
    restore_to_server(
        Arc::clone(repo),
        Arc::clone(index),
        Arc::clone(&plan),
        target,
        &ServerRestoreOptions {
            drop_existing: false,
            jobs: args.jobs,
            replay: None,
            staging_tag: None,
        },
        Arc::new(AtomicU64::new(0)),
    )
    .await?;
    let restore_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let tables = verify_restored(repo, index, &plan, target, scratch).await?;
    Ok(Drill {
        database: database.to_string(),
        snapshot: label.to_string(),
        passed: tables.iter().all(|t| t.equal),
        restore_seconds,
        verify_seconds: started.elapsed().as_secs_f64(),
        error: None,
        tables,
    })
}
