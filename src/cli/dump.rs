//! `coffer dump`: one database of a snapshot as a SQL script on stdout.

use std::process::ExitCode;

use coffer::Result;
use coffer::restore::script::write_script;

use coffer::repo::Repository;

use super::audit::{AuditTrail, Audited, check_reason};
use super::{DatabaseArgs, LoadedPlan, RepoArg};

#[derive(clap::Args)]
pub struct DumpArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    source: DatabaseArgs,
    /// Why this dump is taken (kept in the audit log).
    #[arg(long)]
    reason: Option<String>,
}

pub async fn run(args: DumpArgs) -> Result<ExitCode> {
    check_reason(&args.reason)?;
    let repo = args.repo.open().await?;
    let trail = AuditTrail::start(&repo, "dump", args.reason.clone(), |r| {
        r.database = Some(args.source.db.clone());
        r.tables = args.source.tables.clone();
    })
    .await?;
    let result = dump(&args, &repo).await;
    trail.finish(result).await
}

async fn dump(args: &DumpArgs, repo: &Repository) -> Result<(ExitCode, Audited)> {
    let LoadedPlan {
        id,
        snapshot,
        index,
        plan,
    } = args.source.load_plan(repo).await?;
    let header = vec![
        format!(
            "coffer {} dump of database {}",
            env!("CARGO_PKG_VERSION"),
            args.source.db
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
    write_script(repo, &index, &plan, &header, &mut out).await?;
    let audited = Audited {
        definers: Some(plan.definers().describe()),
        snapshot: Some(id.to_string()),
        target_database: None,
        counts: [
            ("tables".to_string(), plan.tables.len() as u64),
            (
                "rows".to_string(),
                plan.tables
                    .iter()
                    .flat_map(|t| &t.chunks)
                    .map(|c| c.rows)
                    .sum(),
            ),
        ]
        .into(),
    };
    Ok((ExitCode::SUCCESS, audited))
}
