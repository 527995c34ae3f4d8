//! `coffer doctor`: what a server and a repository let coffer do, line by line (✓ / ⚠ / ✗),
//! with what each means and the change to make. Exit code 6 when a line is ✗.

use std::process::ExitCode;

use clap::ArgMatches;

use coffer::Result;
use coffer::crypto::kms::KmsTrust;
use coffer::doctor::repository::{check_repository, probe_retry};
use coffer::doctor::server::{ServerOptions, check_server};
use coffer::doctor::{Section, Status};

use super::{MysqlArg, print_json};

/// Exit code when a check failed (✗).
pub const EXIT_DOCTOR_FAILED: u8 = 6;

#[derive(clap::Args)]
pub struct DoctorArgs {
    /// The server, as backups reach it: mysql://USER@HOST[:PORT]/… (password from
    /// COFFER_MYSQL_PASSWORD or COFFER_MYSQL_PASSWORD_FILE).
    #[arg(long, env = "COFFER_MYSQL_URL", hide_env_values = true)]
    mysql: Option<String>,
    /// The repository location (a path, azure://…, s3://…, gs://…); it need not exist yet.
    #[arg(long, env = "COFFER_REPO")]
    repo: Option<String>,
    /// The KMS endpoints this host sends credentials to (as for every command).
    #[arg(
        long,
        env = "COFFER_KMS_TRUST",
        value_delimiter = ',',
        value_name = "ENDPOINT"
    )]
    kms_trust: Vec<String>,
    /// How often backups run: the binary log must be kept at least twice as long.
    #[arg(long, value_name = "DURATION", default_value = "12h")]
    backup_every: String,
    /// Connections a backup reads over (for the duration estimate).
    #[arg(long, short = 'j', default_value_t = 4)]
    jobs: usize,
    /// Print the checks as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: DoctorArgs, matches: &ArgMatches) -> Result<ExitCode> {
    if args.mysql.is_none() && args.repo.is_none() {
        return Err(coffer::Error::invalid("nothing to check").with_hint(
            "give --mysql URL, --repo LOCATION, or both (or --job NAME from the configuration)",
        ));
    }
    let backup_every =
        coffer::timespec::parse_setting_duration(&args.backup_every, "--backup-every")?;
    let mut sections: Vec<Section> = Vec::new();
    if let Some(url) = &args.mysql {
        let target = MysqlArg { mysql: url.clone() }.target(matches)?;
        let options = ServerOptions {
            backup_every,
            jobs: args.jobs,
            ..ServerOptions::default()
        };
        sections.push(check_server(&target, &options).await);
    }
    if let Some(location) = &args.repo {
        let storage = coffer::storage::open_uncached(location, probe_retry())?;
        let trust = KmsTrust::only(&args.kms_trust)?;
        sections.push(check_repository(location, storage, &trust).await);
    }
    let worst = sections
        .iter()
        .map(Section::worst)
        .max()
        .unwrap_or(Status::Ok);
    if args.json {
        #[derive(serde::Serialize)]
        struct Report<'a> {
            status: Status,
            sections: &'a [Section],
        }
        print_json(&Report {
            status: worst,
            sections: &sections,
        })?;
    } else {
        print_sections(&sections);
    }
    Ok(if worst == Status::Fail {
        ExitCode::from(EXIT_DOCTOR_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_sections(sections: &[Section]) {
    let width = sections
        .iter()
        .flat_map(|s| &s.checks)
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(0);
    let mut counts = [0usize; 3];
    for section in sections {
        println!("{} {}", section.kind, section.target);
        for check in &section.checks {
            counts[check.status as usize] += 1;
            let pad = width - check.name.chars().count();
            println!(
                "  {} {}{}  {}",
                check.status.symbol(),
                check.name,
                " ".repeat(pad),
                check.found
            );
            let indent = " ".repeat(width + 6);
            println!("{indent}{}", check.meaning);
            if let Some(hint) = &check.hint {
                println!("{indent}HINT: {hint}");
            }
        }
        println!();
    }
    println!(
        "{} ✓  {} ⚠  {} ✗{}",
        counts[0],
        counts[1],
        counts[2],
        if counts[2] > 0 {
            " — fix the ✗ lines before relying on this setup"
        } else if counts[1] > 0 {
            " — the ⚠ lines name what is limited"
        } else {
            ""
        }
    );
}
