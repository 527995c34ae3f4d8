//! `coffer prune`: delete what no snapshot references, beside running backups (also run by
//! `forget --prune`).

use std::process::ExitCode;
use std::sync::Arc;

use indicatif::HumanBytes;

use coffer::prune::{PruneOptions, PruneReport, prune};
use coffer::repo::Repository;
use coffer::{Error, Result};

use super::audit::{AuditTrail, Audited, check_reason};
use super::{EXIT_PARTIAL, RepoArg, print_json};

#[derive(clap::Args)]
pub struct PruneArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    pub flags: PruneFlags,
    /// Show what would be condemned and deleted, and the bytes freed, changing nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
    /// Why (kept in the audit log).
    #[arg(long)]
    reason: Option<String>,
}

/// Settings shared by `prune` and `forget --prune`.
#[derive(clap::Args, Clone)]
pub struct PruneFlags {
    /// Delete condemned packs only once their mark is this old by the store's clock, so that
    /// restores which loaded the index before it finish undisturbed (0s when nothing reads).
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub grace: String,
    /// Repack a pack once this share of its bytes is unused (its used blobs are copied, one
    /// database's together); 100% repacks only packs that are entirely unused.
    #[arg(long, value_name = "PERCENT", default_value = "50%")]
    pub repack_unused: String,
}

impl PruneFlags {
    pub fn options(&self, dry_run: bool) -> Result<PruneOptions> {
        let grace = coffer::timespec::parse_setting_duration(&self.grace, "--grace")?;
        let text = self.repack_unused.trim();
        let share = match text.strip_suffix('%') {
            Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
            None => text.parse::<f64>(),
        }
        .ok()
        .filter(|s| *s > 0.0 && *s <= 1.0)
        .ok_or_else(|| {
            Error::invalid(format!(
                "--repack-unused {text:?} is not a share between 0 and 100%"
            ))
            .with_hint("e.g. --repack-unused 50%")
        })?;
        Ok(PruneOptions {
            grace,
            repack_unused: share,
            dry_run,
            ..PruneOptions::default()
        })
    }
}

pub async fn run(args: PruneArgs) -> Result<ExitCode> {
    check_reason(&args.reason)?;
    let options = args.flags.options(args.dry_run)?;
    let repo = args.repo.open().await?;
    let report = run_prune(&repo, &options, args.reason.clone()).await?;
    if args.json {
        print_json(&report)?;
    } else {
        print_report(&report);
    }
    Ok(exit_code(&report))
}

/// Prune `repo`, recorded in the audit log unless it is a dry run.
pub async fn run_prune(
    repo: &Arc<Repository>,
    options: &PruneOptions,
    reason: Option<String>,
) -> Result<PruneReport> {
    if options.dry_run {
        return prune(repo, options).await;
    }
    let trail = AuditTrail::start(repo, "prune", reason, |_| {}).await?;
    let result = prune(repo, options).await.map(|report| {
        let audited = Audited {
            definers: None,
            snapshot: None,
            target_database: None,
            counts: [
                ("packs_condemned".to_string(), condemned(&report) as u64),
                ("packs_deleted".to_string(), report.packs_deleted as u64),
                ("bytes_freed".to_string(), report.bytes_freed),
                (
                    "objects_not_deleted".to_string(),
                    report.not_deleted.len() as u64,
                ),
            ]
            .into(),
        };
        (report, audited)
    });
    trail.finish(result).await
}

fn condemned(report: &PruneReport) -> usize {
    report.condemned_unused + report.repacked + report.condemned_unindexed
}

/// Success, or [`EXIT_PARTIAL`] when the store refused some deletions or damage was met.
pub fn exit_code(report: &PruneReport) -> ExitCode {
    if report.not_deleted.is_empty() && report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PARTIAL)
    }
}

pub fn print_report(report: &PruneReport) {
    let would = if report.dry_run { "would be " } else { "" };
    println!(
        "{} snapshots reference {} blobs; {} packs, {} stored",
        report.snapshots,
        report.referenced_blobs,
        report.packs,
        HumanBytes(report.pack_bytes)
    );
    println!(
        "mark: {} unused packs ({}), {} packs repacked ({} of {} copied), {} leftover packs ({}) {}condemned{}",
        report.condemned_unused,
        HumanBytes(report.condemned_unused_bytes),
        report.repacked,
        HumanBytes(report.copied_bytes),
        HumanBytes(report.repacked_bytes),
        report.condemned_unindexed,
        HumanBytes(report.condemned_unindexed_bytes),
        would,
        report
            .mark
            .as_deref()
            .map(|m| format!(" in {m}"))
            .unwrap_or_default()
    );
    println!(
        "sweep: {} marks, {} packs {}deleted, {} {}freed, {} condemned packs kept (a snapshot uses them), {} index files replaced",
        report.marks_swept,
        report.packs_deleted,
        would,
        HumanBytes(report.bytes_freed),
        would,
        report.packs_kept,
        report.index_files_replaced
    );
    for why in &report.marks_waiting {
        println!("not swept yet: {why}");
    }
    for problem in &report.problems {
        eprintln!("problem: {problem}");
    }
    if !report.not_deleted.is_empty() {
        eprintln!(
            "{} objects were not deleted (an immutability policy, object lock or missing delete right?); they stay condemned and a later prune tries again:",
            report.not_deleted.len()
        );
        for object in &report.not_deleted {
            eprintln!("  {object}");
        }
    }
}
