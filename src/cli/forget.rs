//! `coffer forget`: remove the snapshots a retention policy does not keep. The data only they
//! referenced stays in the repository until a prune removes it (`--prune` runs one after).

use std::collections::BTreeMap;
use std::process::ExitCode;

use coffer::repo::ids::{SnapshotId, short_text};
use coffer::repo::summary::SnapshotSummary;
use coffer::retention::{Candidate, Decision, Policy, decide};
use coffer::timespec::parse_duration;
use coffer::{Error, Result};

use super::audit::{AuditTrail, Audited, check_reason};
use super::prune::{exit_code, print_report, run_prune};
use super::{RepoArg, print_json};

#[derive(clap::Args)]
pub struct ForgetArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Keep the newest N snapshots.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_last: usize,
    /// Keep the newest snapshot of each of the newest N hours that have one (UTC).
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_hourly: usize,
    /// … of each of the newest N days.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_daily: usize,
    /// … of each of the newest N ISO weeks.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_weekly: usize,
    /// … of each of the newest N months.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_monthly: usize,
    /// … of each of the newest N years.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_yearly: usize,
    /// Keep every snapshot taken within this duration (30d, 12h, 1y) before the newest of the
    /// group (not before now: a stopped schedule never makes forget remove the last backups).
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<String>,
    /// Keep the newest snapshot of each hour within this duration before the newest.
    #[arg(long, value_name = "DURATION")]
    keep_within_hourly: Option<String>,
    /// … of each day within this duration.
    #[arg(long, value_name = "DURATION")]
    keep_within_daily: Option<String>,
    /// … of each ISO week within this duration.
    #[arg(long, value_name = "DURATION")]
    keep_within_weekly: Option<String>,
    /// … of each calendar month within this duration (UTC).
    #[arg(long, value_name = "DURATION")]
    keep_within_monthly: Option<String>,
    /// … of each year within this duration.
    #[arg(long, value_name = "DURATION")]
    keep_within_yearly: Option<String>,
    /// Keep snapshots with this tag (repeatable).
    #[arg(long, value_name = "TAG")]
    keep_tag: Vec<String>,
    /// Apply the policy per group of snapshots: a comma-separated list of `server`, `host`,
    /// `tags`, or an empty string for one group.
    #[arg(long, default_value = "server")]
    group_by: String,
    /// Show what would stay and go, and why, without removing anything.
    #[arg(long)]
    dry_run: bool,
    /// Allow the policy to remove every snapshot of a group (refused otherwise).
    #[arg(long)]
    allow_remove_all: bool,
    /// Keep the archived binary log (`coffer log`) needed to restore any moment of this
    /// duration back from now with `restore --at`, and remove older segments (their data goes
    /// with the next prune); `off` keeps it all.
    #[arg(long, value_name = "DURATION", default_value = "7d")]
    keep_log: String,
    /// Then prune: delete the data no remaining snapshot references (see `coffer prune`).
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    prune_flags: super::prune::PruneFlags,
    #[arg(long)]
    json: bool,
    /// Why (kept in the audit log).
    #[arg(long)]
    reason: Option<String>,
}

impl ForgetArgs {
    fn policy(&self) -> Result<Policy> {
        let span = |s: &Option<String>| s.as_deref().map(parse_duration).transpose();
        Ok(Policy {
            last: self.keep_last,
            hourly: self.keep_hourly,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
            yearly: self.keep_yearly,
            within: span(&self.keep_within)?,
            within_hourly: span(&self.keep_within_hourly)?,
            within_daily: span(&self.keep_within_daily)?,
            within_weekly: span(&self.keep_within_weekly)?,
            within_monthly: span(&self.keep_within_monthly)?,
            within_yearly: span(&self.keep_within_yearly)?,
            tags: self.keep_tag.clone(),
        })
    }

    /// The group a snapshot belongs to.
    fn group_of(&self, snapshot: &SnapshotSummary) -> Result<String> {
        let mut parts = Vec::new();
        for field in self
            .group_by
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            parts.push(match field {
                "server" => format!("server={}", snapshot.source.server),
                "host" => format!("host={}", snapshot.hostname),
                "tags" => format!("tags={}", snapshot.tags.join(",")),
                other => {
                    return Err(Error::invalid(format!("--group-by {other:?} is not a field"))
                        .with_hint("group by server, host and/or tags, comma-separated, or \"\" for one group"));
                }
            });
        }
        Ok(parts.join(" "))
    }
}

#[derive(serde::Serialize)]
struct Removed {
    id: String,
    time: jiff::Timestamp,
    /// The snapshot's run marker, removed with it (a prune would otherwise wait for the run).
    #[serde(skip)]
    run: Option<String>,
    /// The sharded run the snapshot belongs to: its shard plan goes with the run's last snapshot.
    #[serde(skip)]
    shard_run: Option<String>,
}

pub async fn run(args: ForgetArgs) -> Result<ExitCode> {
    check_reason(&args.reason)?;
    let policy = args.policy()?;
    let repo = args.repo.open().await?;
    let snapshots = repo.summaries().await?;
    // The shards of one run are one backup: kept or removed together, aged by the first.
    let mut backups: BTreeMap<String, Vec<(SnapshotId, SnapshotSummary)>> = BTreeMap::new();
    for (id, snapshot) in snapshots {
        backups
            .entry(snapshot.backup_key(&id))
            .or_default()
            .push((id, snapshot));
    }
    // Backups by retention group, each by its key in `backups`.
    let mut groups: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for (key, members) in &backups {
        let Some((_, first)) = members.first() else {
            continue;
        };
        groups.entry(args.group_of(first)?).or_default().push(key);
    }
    let mut decided: Vec<(String, Vec<Decision>)> = Vec::new();
    for (group, keys) in &groups {
        let candidates: Vec<Candidate> = keys
            .iter()
            .filter_map(|&key| {
                let shards = backups.get(key)?;
                let time = shards.iter().map(|(_, s)| s.time).min()?;
                Some(Candidate {
                    id: key.clone(),
                    time,
                    tags: shards
                        .first()
                        .map(|(_, s)| s.tags.clone())
                        .unwrap_or_default(),
                })
            })
            .collect();
        let decisions = decide(&policy, &candidates)?;
        if !args.allow_remove_all && !decisions.iter().any(Decision::keep) {
            return Err(Error::invalid(format!(
                "the policy removes every snapshot of group {group:?}; nothing was removed"
            ))
            .with_hint("check the rules, or give --allow-remove-all if that is really meant"));
        }
        decided.push((group.clone(), decisions));
    }

    let keep: Vec<&Decision> = decided
        .iter()
        .flat_map(|(_, d)| d)
        .filter(|d| d.keep())
        .collect();
    let remove: Vec<Removed> = decided
        .iter()
        .flat_map(|(_, d)| d)
        .filter(|d| !d.keep())
        .flat_map(|d| backups.get(&d.id).map(Vec::as_slice).unwrap_or_default())
        .map(|(id, s)| Removed {
            id: id.to_string(),
            time: s.time,
            run: s.run.clone(),
            shard_run: s.shard.as_ref().map(|shard| shard.run_id.clone()),
        })
        .collect();
    if !args.json {
        for (group, decisions) in &decided {
            println!("group {}", if group.is_empty() { "(all)" } else { group });
            for d in decisions {
                let shards = backups.get(&d.id).map_or(0, Vec::len);
                println!(
                    "  {:<6} {}  {}  {}",
                    if d.keep() { "keep" } else { "remove" },
                    match d.id.strip_prefix("run:") {
                        Some(run) => format!("run {run} ({shards} shards)"),
                        None => short_text(&d.id).to_string(),
                    },
                    d.time.strftime("%Y-%m-%d %H:%M:%S"),
                    d.reasons.join(", ")
                );
            }
        }
        println!(
            "{} backups kept, {} snapshots {}",
            keep.len(),
            remove.len(),
            if args.dry_run {
                "would be removed (dry run)"
            } else {
                "to remove"
            }
        );
    }
    let prune_options = args
        .prune
        .then(|| args.prune_flags.options(args.dry_run))
        .transpose()?;
    let mut code = ExitCode::SUCCESS;
    if !args.dry_run && !remove.is_empty() {
        let trail = AuditTrail::start(&repo, "forget", args.reason.clone(), |_| {}).await?;
        let result = forget(&repo, &remove, keep.len()).await;
        // This host removed snapshots itself: its mark of the newest moves with them (a
        // rollback it had noticed before stays noticed).
        if let Err(e) = args.repo.after_own_forget(&repo).await {
            tracing::warn!("this host's record of the newest snapshot was not updated: {e}");
        }
        code = trail.finish(result).await?;
    }
    let log_removed = forget_log(&args, &repo, &snapshots_kept(&backups, &keep)).await?;
    let pruned = match &prune_options {
        Some(options) => Some(run_prune(&repo, options, args.reason.clone()).await?),
        None => None,
    };
    if args.json {
        #[derive(serde::Serialize)]
        struct Plan<'a> {
            keep: &'a [&'a Decision],
            remove: &'a [Removed],
            log_segments_removed: usize,
            #[serde(skip_serializing_if = "Option::is_none")]
            prune: Option<&'a coffer::prune::PruneReport>,
        }
        print_json(&Plan {
            keep: &keep,
            remove: &remove,
            log_segments_removed: log_removed,
            prune: pruned.as_ref(),
        })?;
    } else if let Some(report) = &pruned {
        print_report(report);
    }
    match &pruned {
        Some(report) if code == ExitCode::SUCCESS => Ok(exit_code(report)),
        _ => Ok(code),
    }
}

/// The summaries of the snapshots the policy keeps.
fn snapshots_kept(
    backups: &BTreeMap<String, Vec<(SnapshotId, SnapshotSummary)>>,
    keep: &[&Decision],
) -> Vec<SnapshotSummary> {
    keep.iter()
        .flat_map(|d| backups.get(&d.id).map(Vec::as_slice).unwrap_or_default())
        .map(|(_, s)| s.clone())
        .collect()
}

/// `--keep-log`: remove the archived segments no moment of the window needs
/// (`coffer::pitr::retention`); returns how many went (or would go, in a dry run).
async fn forget_log(
    args: &ForgetArgs,
    repo: &coffer::repo::Repository,
    kept: &[SnapshotSummary],
) -> Result<usize> {
    if args.keep_log.trim().eq_ignore_ascii_case("off") {
        return Ok(0);
    }
    let window = coffer::timespec::parse_setting_duration(&args.keep_log, "--keep-log")?;
    let window = jiff::SignedDuration::try_from(window)
        .map_err(|e| Error::invalid(format!("--keep-log {}: {e}", args.keep_log)))?;
    let listed = repo.list_log_segments().await?;
    if listed.is_empty() {
        return Ok(0);
    }
    let segments = repo.read_log_segments(&listed).await?;
    let expired =
        coffer::pitr::retention::expired_segments(&segments, kept, window, jiff::Timestamp::now());
    if args.dry_run {
        eprintln!(
            "{} archived binary-log segment(s) would be removed (older than --keep-log {} needs)",
            expired.len(),
            args.keep_log
        );
        return Ok(expired.len());
    }
    let mut removed = 0;
    for i in expired {
        match repo.remove_log_segment(&listed[i].name).await {
            Ok(()) => removed += 1,
            Err(e) => eprintln!("log segment {} was not removed: {e}", listed[i].name),
        }
    }
    if removed > 0 {
        eprintln!(
            "{removed} archived binary-log segment(s) removed (older than --keep-log {} needs); their data stays until a prune removes it",
            args.keep_log
        );
    }
    Ok(removed)
}

async fn forget(
    repo: &coffer::repo::Repository,
    remove: &[Removed],
    kept: usize,
) -> Result<(ExitCode, Audited)> {
    let mut removed = 0u64;
    let mut refused = Vec::new();
    for r in remove {
        match repo.remove_snapshot(&r.id).await {
            Ok(()) => {
                removed += 1;
                if let Some(run) = &r.run {
                    repo.remove_run_marker(run).await;
                }
            }
            Err(e) => {
                eprintln!("snapshot {} was not removed: {e}", short_text(&r.id));
                refused.push(r.id.clone());
            }
        }
    }
    let gone: std::collections::HashSet<String> = remove
        .iter()
        .filter(|r| !refused.contains(&r.id))
        .map(|r| r.id.clone())
        .collect();
    // A run is removed as a whole; one whose snapshots did not all go keeps its plan.
    let runs_left: std::collections::BTreeSet<&str> = remove
        .iter()
        .filter(|r| refused.contains(&r.id))
        .filter_map(|r| r.shard_run.as_deref())
        .collect();
    let runs_gone: std::collections::BTreeSet<&str> = remove
        .iter()
        .filter_map(|r| r.shard_run.as_deref())
        .filter(|run| !runs_left.contains(run))
        .collect();
    for run in runs_gone {
        if let Err(e) = repo.remove_shard_plan(run).await {
            eprintln!("{e} (it only takes a little space)");
        }
    }
    if let Err(e) = repo.remove_summaries_of(&gone).await {
        // Only derived data: a summary whose snapshot is gone is ignored.
        eprintln!("the summaries of the removed snapshots were not all removed: {e}");
    }
    eprintln!("{removed} snapshots removed; their data stays until a prune removes it");
    let audited = Audited {
        definers: None,
        snapshot: None,
        target_database: None,
        counts: [
            ("snapshots_kept".to_string(), kept as u64),
            ("snapshots_removed".to_string(), removed),
            ("snapshots_not_removed".to_string(), refused.len() as u64),
        ]
        .into(),
    };
    if refused.is_empty() {
        Ok((ExitCode::SUCCESS, audited))
    } else {
        Err(Error::new(
            coffer::ErrorKind::Storage,
            format!("{} snapshots could not be removed", refused.len()),
        )
        .with_hint("the storage may protect them (immutability policy, object lock) or the credentials may lack delete rights"))
    }
}
