//! `coffer dump`: one database of a snapshot as a SQL script on stdout.

use std::process::ExitCode;

use coffer::Result;
use coffer::restore::script::write_script;

use super::{DatabaseArgs, LoadedPlan, RepoArg};

#[derive(clap::Args)]
pub struct DumpArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    source: DatabaseArgs,
}

pub async fn run(args: DumpArgs) -> Result<ExitCode> {
    let repo = args.repo.open().await?;
    let LoadedPlan {
        id,
        snapshot,
        index,
        plan,
    } = args.source.load_plan(&repo).await?;
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
    write_script(&repo, &index, &plan, &header, &mut out).await?;
    Ok(ExitCode::SUCCESS)
}
