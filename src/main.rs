//! The `coffer` command: a thin shell over the library. Parses arguments, reads secrets from the
//! environment or a prompt, shows progress, prints results, and maps errors to exit codes
//! (1 error, 2 usage, 3 backup finished but some databases failed).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use zeroize::Zeroizing;

use coffer::backup::{BackupObserver, BackupOptions, DatabaseOutcome, LiveCounters, run_backup};
use coffer::crypto::keys::PassphraseProvider;
use coffer::repo::ids::SnapshotId;
use coffer::repo::index::Index;
use coffer::repo::snapshot::Snapshot;
use coffer::repo::{ChunkerParams, InitOptions, Repository};
use coffer::restore::server::{ServerRestoreOptions, restore_to_server};
use coffer::restore::{RestoreOptions, RestorePlan, script::write_script};
use coffer::source::mysql::MysqlTarget;
use coffer::storage::metered::Traffic;
use coffer::storage::{OpenedStorage, StorageOptions};
use coffer::{Error, Result};

#[derive(Parser)]
#[command(
    name = "coffer",
    version,
    about = "Encrypted, deduplicated backups of MySQL servers with thousands of databases"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct RepoArg {
    /// Repository location: a path or file:///path. Passphrase from COFFER_PASSWORD,
    /// COFFER_PASSWORD_FILE or a prompt.
    #[arg(long, env = "COFFER_REPO")]
    repo: String,
    /// Do not keep a local copy of remote index files and snapshots (kept by default in
    /// COFFER_CACHE_DIR, else $XDG_CACHE_HOME/coffer or ~/.cache/coffer; safe to delete).
    #[arg(long, env = "COFFER_NO_CACHE", value_parser = clap::builder::BoolishValueParser::new())]
    no_cache: bool,
}

impl RepoArg {
    fn storage(&self) -> Result<OpenedStorage> {
        let cache_dir = if self.no_cache {
            None
        } else {
            std::env::var_os("COFFER_CACHE_DIR")
                .map(std::path::PathBuf::from)
                .or_else(|| {
                    std::env::var_os("XDG_CACHE_HOME")
                        .map(|d| std::path::PathBuf::from(d).join("coffer"))
                })
                .or_else(|| {
                    std::env::var_os("HOME")
                        .map(|h| std::path::PathBuf::from(h).join(".cache/coffer"))
                })
        };
        coffer::storage::open_location(&self.repo, &StorageOptions { cache_dir })
    }
}

#[derive(clap::Args, Clone)]
struct MysqlArg {
    /// mysql://USER@HOST[:PORT]/[?ssl-ca=PATH&ssl-cert=PATH&ssl-key=PATH&tls-server-name=NAME&socket=PATH].
    /// TLS is required and verified for TCP. Password from COFFER_MYSQL_PASSWORD or
    /// COFFER_MYSQL_PASSWORD_FILE (a password inside the URL is accepted only from COFFER_MYSQL_URL).
    #[arg(long, env = "COFFER_MYSQL_URL")]
    mysql: String,
}

/// Which database of which snapshot, and how to rewrite it (restore and dump).
#[derive(clap::Args, Clone)]
struct DatabaseArgs {
    /// Snapshot id (prefix) or `latest`.
    #[arg(long, default_value = "latest")]
    snapshot: String,
    /// Database to restore.
    #[arg(long)]
    db: String,
    /// Create it under this name instead (schema references in views, routines, triggers and
    /// events are rewritten).
    #[arg(long)]
    into: Option<String>,
    /// Create views, routines, triggers and events without their DEFINER (owned by the
    /// restoring account), for accounts without SUPER/SET_USER_ID.
    #[arg(long)]
    skip_definer: bool,
}

impl DatabaseArgs {
    fn options(&self) -> RestoreOptions {
        RestoreOptions {
            into: self.into.clone(),
            skip_definer: self.skip_definer,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Create a new repository.
    Init {
        #[command(flatten)]
        repo: RepoArg,
        /// Average chunk size of table data (power of two, e.g. 1MiB; default 1MiB). Fixed for
        /// the life of the repository.
        #[arg(long, value_parser = parse_size)]
        chunk_size: Option<u32>,
        /// Target size of pack objects (1MiB to 256MiB; default 16MiB). Larger packs mean fewer
        /// objects; restores read by byte range either way.
        #[arg(long, value_parser = parse_size)]
        pack_size: Option<u32>,
    },
    /// Back up databases of a server into one new snapshot.
    Backup {
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
    },
    /// List snapshots.
    Snapshots {
        #[command(flatten)]
        repo: RepoArg,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// List the databases of a snapshot, or the tables of one database.
    Ls {
        #[command(flatten)]
        repo: RepoArg,
        /// Snapshot id (prefix) or `latest`.
        snapshot: String,
        /// Database to list the tables of.
        database: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Recreate one database from a snapshot on a server.
    Restore {
        #[command(flatten)]
        repo: RepoArg,
        #[command(flatten)]
        mysql: MysqlArg,
        #[command(flatten)]
        source: DatabaseArgs,
        /// Drop the target database first if it exists (otherwise restore refuses).
        #[arg(long)]
        drop_existing: bool,
        /// Connections loading rows at once.
        #[arg(long, short = 'j', default_value_t = 4)]
        jobs: usize,
    },
    /// Write one database of a snapshot as a SQL script for the mysql/mariadb client.
    Dump {
        #[command(flatten)]
        repo: RepoArg,
        #[command(flatten)]
        source: DatabaseArgs,
    },
    /// Verify that the repository is complete and undamaged.
    Check {
        #[command(flatten)]
        repo: RepoArg,
        /// Also read and verify every pack (reads the whole repository).
        #[arg(long)]
        read_data: bool,
    },
}

fn parse_size(s: &str) -> std::result::Result<u32, String> {
    let lower = s.trim().to_ascii_lowercase();
    let (digits, factor) = if let Some(d) = lower
        .strip_suffix("mib")
        .or_else(|| lower.strip_suffix('m'))
    {
        (d, 1 << 20)
    } else if let Some(d) = lower
        .strip_suffix("kib")
        .or_else(|| lower.strip_suffix('k'))
    {
        (d, 1 << 10)
    } else {
        (lower.as_str(), 1)
    };
    digits
        .trim()
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| format!("{s:?} is not a size such as 1MiB or 256KiB"))
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, &matches)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("COFFER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,coffer=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// The repository passphrase: COFFER_PASSWORD, COFFER_PASSWORD_FILE, or a terminal prompt.
fn passphrase(confirm: bool) -> Result<Zeroizing<String>> {
    if let Ok(p) = std::env::var("COFFER_PASSWORD") {
        return Ok(Zeroizing::new(p));
    }
    if let Some(path) = std::env::var_os("COFFER_PASSWORD_FILE") {
        return read_secret_file(&path, "COFFER_PASSWORD_FILE");
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::invalid("no repository passphrase given").with_hint(
            "set COFFER_PASSWORD or COFFER_PASSWORD_FILE (there is no terminal to ask on)",
        ));
    }
    let first = Zeroizing::new(
        rpassword::prompt_password("repository passphrase: ")
            .map_err(|e| Error::invalid("reading the passphrase").with_source(e))?,
    );
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password("repeat passphrase: ")
                .map_err(|e| Error::invalid("reading the passphrase").with_source(e))?,
        );
        if *again != *first {
            return Err(Error::invalid("the passphrases do not match"));
        }
    }
    Ok(first)
}

fn read_secret_file(path: &std::ffi::OsStr, var: &str) -> Result<Zeroizing<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::invalid(format!(
            "reading {var} ({})",
            std::path::Path::new(path).display()
        ))
        .with_source(e)
    })?;
    Ok(Zeroizing::new(
        text.trim_end_matches(['\n', '\r']).to_string(),
    ))
}

async fn open_repo(repo: &RepoArg) -> Result<Arc<Repository>> {
    Ok(open_repo_metered(repo).await?.0)
}

/// The repository and the counters of what was transferred to and from its storage.
async fn open_repo_metered(repo: &RepoArg) -> Result<(Arc<Repository>, Arc<Traffic>)> {
    let opened = repo.storage()?;
    let provider = PassphraseProvider::new(passphrase(false)?)?;
    Ok((
        Arc::new(Repository::open(opened.storage, &provider).await?),
        opened.traffic,
    ))
}

/// The MySQL target, refusing a password typed on the command line.
fn mysql_target(arg: &MysqlArg, matches: &ArgMatches) -> Result<MysqlTarget> {
    let mut target = MysqlTarget::parse(&arg.mysql)?;
    let from_command_line = matches
        .subcommand()
        .and_then(|(_, sub)| sub.value_source("mysql"))
        .is_some_and(|source| source == ValueSource::CommandLine);
    if target.has_password() && from_command_line {
        return Err(Error::invalid("the --mysql URL contains a password, which other users can see in the process list")
            .with_hint("remove it from the URL and set COFFER_MYSQL_PASSWORD or COFFER_MYSQL_PASSWORD_FILE (or pass the whole URL in COFFER_MYSQL_URL)"));
    }
    if let Ok(p) = std::env::var("COFFER_MYSQL_PASSWORD") {
        target.set_password(Zeroizing::new(p));
    } else if let Some(path) = std::env::var_os("COFFER_MYSQL_PASSWORD_FILE") {
        target.set_password(read_secret_file(&path, "COFFER_MYSQL_PASSWORD_FILE")?);
    }
    Ok(target)
}

async fn run(cli: Cli, matches: &ArgMatches) -> Result<ExitCode> {
    match cli.command {
        Command::Init {
            repo,
            chunk_size,
            pack_size,
        } => {
            let storage = repo.storage()?.storage;
            let provider = PassphraseProvider::new(passphrase(true)?)?;
            let chunker = match chunk_size {
                Some(size) => ChunkerParams::with_average(size)?,
                None => ChunkerParams::default(),
            };
            let mut options = InitOptions {
                chunker,
                ..Default::default()
            };
            if let Some(size) = pack_size {
                if !(1 << 20..=256 << 20).contains(&size) {
                    return Err(Error::invalid(format!(
                        "--pack-size {size} is outside 1MiB..256MiB"
                    )));
                }
                options.pack_size = size;
            }
            let repo = Repository::init(storage, &provider, options).await?;
            println!(
                "created repository {} at {}",
                repo.config().id,
                repo.storage().location()
            );
            println!("keep the passphrase safe: without it the backups cannot be read");
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup {
            repo,
            mysql,
            include,
            exclude,
            jobs,
            tag,
        } => {
            let target = mysql_target(&mysql, matches)?;
            let compile = |globs: Vec<String>| -> Result<Vec<glob::Pattern>> {
                globs
                    .iter()
                    .map(|g| {
                        glob::Pattern::new(g).map_err(|e| {
                            Error::invalid(format!("--include/--exclude pattern {g:?}: {e}"))
                        })
                    })
                    .collect()
            };
            let options = BackupOptions {
                include: compile(include)?,
                exclude: compile(exclude)?,
                jobs,
                tags: tag,
                ..Default::default()
            };
            let repo = open_repo(&repo).await?;
            backup(repo, &target, &options).await
        }
        Command::Snapshots { repo, json } => {
            let repo = open_repo(&repo).await?;
            let snapshots = repo.snapshots().await?;
            if json {
                let list: Vec<_> = snapshots
                    .iter()
                    .map(|(id, s)| {
                        serde_json::json!({
                            "id": id.to_hex(), "time": s.time, "finished": s.finished, "hostname": s.hostname,
                            "server": s.source.server, "databases": s.databases.len(), "failed": s.failed.len(),
                            "bytes": s.total_bytes(), "tags": s.tags, "binlog": s.source.binlog,
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).unwrap_or_default()
                );
            } else {
                println!(
                    "{:<10} {:<20} {:<16} {:<22} {:>9} {:>7} {:>10}",
                    "ID", "TIME (UTC)", "HOST", "SERVER", "DATABASES", "FAILED", "SIZE"
                );
                for (id, s) in &snapshots {
                    println!(
                        "{:<10} {:<20} {:<16} {:<22} {:>9} {:>7} {:>10}",
                        id.short(),
                        s.time.strftime("%Y-%m-%d %H:%M:%S").to_string(),
                        s.hostname,
                        s.source.server,
                        s.databases.len(),
                        s.failed.len(),
                        HumanBytes(s.total_bytes()).to_string()
                    );
                }
                println!("{} snapshots", snapshots.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ls {
            repo,
            snapshot,
            database,
            json,
        } => {
            let repo = open_repo(&repo).await?;
            let (id, snap) = repo.find_snapshot(&snapshot).await?;
            match database {
                None => {
                    if json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&snap.databases).unwrap_or_default()
                        );
                    } else {
                        println!(
                            "snapshot {} of {} at {}",
                            id.short(),
                            snap.source.server,
                            snap.time
                        );
                        for db in &snap.databases {
                            println!(
                                "{:<40} {:>6} tables {:>12} rows {:>10}",
                                db.name,
                                db.tables,
                                db.rows,
                                HumanBytes(db.bytes).to_string()
                            );
                        }
                        for failed in &snap.failed {
                            println!("{:<40} FAILED: {}", failed.name, failed.error);
                        }
                    }
                }
                Some(db) => {
                    let index = repo.load_index().await?;
                    let plan = RestorePlan::load(
                        &repo,
                        &index,
                        &snap,
                        &id.short(),
                        &db,
                        &RestoreOptions::default(),
                    )
                    .await?;
                    if json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&plan.database).unwrap_or_default()
                        );
                    } else {
                        for table in &plan.database.tables {
                            println!(
                                "table     {:<40} {:>12} rows {:>10}",
                                table.name,
                                table.rows,
                                HumanBytes(table.bytes).to_string()
                            );
                        }
                        for o in plan
                            .database
                            .views
                            .iter()
                            .chain(&plan.database.routines)
                            .chain(&plan.database.triggers)
                            .chain(&plan.database.events)
                        {
                            println!("{:<9} {}", o.kind.keyword().to_lowercase(), o.name);
                        }
                        for w in &plan.database.warnings {
                            println!("warning: {w}");
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore {
            repo,
            mysql,
            source,
            drop_existing,
            jobs,
        } => {
            let target = mysql_target(&mysql, matches)?;
            let (repo, traffic) = open_repo_metered(&repo).await?;
            let loaded = load_plan(&repo, &source).await?;
            let (id, index, plan) = (loaded.id, Arc::new(loaded.index), Arc::new(loaded.plan));
            let db = &source.db;
            let total = plan.data_items().len() as u64;
            let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let bar = progress_bar(
                total,
                "{spinner} restoring [{bar:30}] {pos}/{len} chunks {elapsed_precise}",
            );
            let ticker = spawn_ticker(bar.clone(), Arc::clone(&done));
            let started = std::time::Instant::now();
            let result = restore_to_server(
                Arc::clone(&repo),
                index,
                Arc::clone(&plan),
                &target,
                &ServerRestoreOptions {
                    drop_existing,
                    jobs,
                },
                done,
            )
            .await;
            ticker.abort();
            bar.finish_and_clear();
            let stats = result?;
            println!(
                "restored {} from snapshot {} into {} on {}: {} tables, {} rows, {} objects, {} of row data, {} read from storage in {} requests, {:.1}s",
                db,
                id.short(),
                plan.target_name,
                target.describe(),
                stats.tables,
                stats.rows,
                stats.objects,
                HumanBytes(stats.bytes_fetched),
                HumanBytes(traffic.bytes_read.load(Ordering::Relaxed)),
                traffic.requests.load(Ordering::Relaxed),
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Dump { repo, source } => {
            let repo = open_repo(&repo).await?;
            let LoadedPlan {
                id,
                snapshot: snap,
                index,
                plan,
            } = load_plan(&repo, &source).await?;
            let db = &source.db;
            let header = vec![
                format!("coffer {} dump of database {db}", env!("CARGO_PKG_VERSION")),
                format!(
                    "snapshot {} taken {} from {} ({})",
                    id.short(),
                    snap.time,
                    snap.source.server,
                    snap.source.server_version
                ),
            ];
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            write_script(&repo, &index, &plan, &header, &mut out).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { repo, read_data } => {
            let repo = open_repo(&repo).await?;
            let report = coffer::check::check(&repo, read_data).await?;
            for problem in &report.problems {
                println!("problem: {problem}");
            }
            println!(
                "checked {} snapshots, {} packs{}: {}",
                report.snapshots,
                report.packs,
                if read_data {
                    format!(", {} blobs read", report.blobs_checked)
                } else {
                    String::new()
                },
                if report.problems.is_empty() {
                    "no problems".to_string()
                } else {
                    format!("{} problems", report.problems.len())
                }
            );
            if report.problems.is_empty() {
                Ok(ExitCode::SUCCESS)
            } else {
                Err(Error::corrupt(format!("the repository has {} problems", report.problems.len()))
                    .with_hint("snapshots not named above still restore; keep the repository as it is and investigate"))
            }
        }
    }
}

/// A snapshot's database, loaded for restore or dump.
struct LoadedPlan {
    id: SnapshotId,
    snapshot: Snapshot,
    index: Index,
    plan: RestorePlan,
}

async fn load_plan(repo: &Repository, source: &DatabaseArgs) -> Result<LoadedPlan> {
    let (id, snapshot) = repo.find_snapshot(&source.snapshot).await?;
    let index = repo.load_index().await?;
    let plan = RestorePlan::load(
        repo,
        &index,
        &snapshot,
        &id.short(),
        &source.db,
        &source.options(),
    )
    .await?;
    Ok(LoadedPlan {
        id,
        snapshot,
        index,
        plan,
    })
}

fn progress_bar(len: u64, template: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn spawn_ticker(
    bar: ProgressBar,
    counter: Arc<std::sync::atomic::AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            bar.set_position(counter.load(Ordering::Relaxed));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
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

async fn backup(
    repo: Arc<Repository>,
    target: &MysqlTarget,
    options: &BackupOptions,
) -> Result<ExitCode> {
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
    let result = run_backup(repo, target, options, observer, counters).await;
    ticker.abort();
    bar.finish_and_clear();
    let report = result?;
    let s = &report.snapshot;
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
    if let Some(why) = &s.source.binlog_unavailable {
        println!("binlog position not recorded: {why}");
    }
    if s.failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "{} databases FAILED and are not in this snapshot:",
        s.failed.len()
    );
    for f in &s.failed {
        eprintln!("  {}: {} ({} attempts)", f.name, f.error, f.attempts);
    }
    Ok(ExitCode::from(3))
}
