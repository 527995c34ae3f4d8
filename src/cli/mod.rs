//! The command line: one module per command (its arguments and a function calling the
//! library), and what the commands share: repository and server arguments, secrets from the
//! environment or a prompt, progress bars and JSON output. Only this layer prints.

pub mod audit;
pub mod backup;
pub mod check;
pub mod config;
pub mod doctor;
pub mod dump;
pub mod forget;
pub mod history;
pub mod init;
pub mod key;
pub mod log;
pub mod ls;
pub mod metrics;
pub mod prune;
pub mod repair;
pub mod report;
pub mod restore;
pub mod restore_accounts;
pub mod restore_estate;
pub mod sla;
pub mod snapshots;
pub mod stats;
pub mod verify_restore;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use zeroize::Zeroizing;

use coffer::crypto::keys::PassphraseProvider;
use coffer::crypto::kms::{KmsProvider, KmsTrust};
use coffer::repo::host_state::HostState;
use coffer::repo::ids::SnapshotId;
use coffer::repo::index::Index;
use coffer::repo::select::{ChosenSnapshot, SnapshotSelector};
use coffer::repo::snapshot::Snapshot;
use coffer::repo::{OpenOptions, Repository};
use coffer::restore::{RestoreOptions, RestorePlan};
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
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Configuration file (default /etc/coffer/coffer.toml when it exists), read for --job.
    #[arg(long, global = true, env = "COFFER_CONFIG", value_name = "PATH")]
    pub config: Option<std::path::PathBuf>,
    /// Take the settings of this job of the configuration file where the command line and the
    /// environment give none.
    #[arg(long, global = true, env = "COFFER_JOB", value_name = "NAME")]
    pub job: Option<String>,
    /// Write Prometheus text-format metrics of this run to PATH when it ends (for
    /// node_exporter's textfile collector; one file per job and command).
    #[arg(long, global = true, env = "COFFER_METRICS_FILE", value_name = "PATH")]
    pub metrics_file: Option<std::path::PathBuf>,
    /// Log lines on stderr as text, or as one JSON object per line for log shippers.
    #[arg(long, global = true, env = "COFFER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Check what a server and a repository let coffer do, before relying on them: ✓ / ⚠ / ✗
    /// per line, with the change to make.
    Doctor(doctor::DoctorArgs),
    /// Create a new repository.
    Init(init::InitArgs),
    /// Write the SLA evidence (backups, drills, restores, problems) as one self-contained HTML
    /// page.
    Report(report::ReportArgs),
    /// Back up databases of a server into one new snapshot.
    Backup(backup::BackupArgs),
    /// List snapshots.
    Snapshots(snapshots::SnapshotsArgs),
    /// List the databases of a snapshot, or the tables of one database.
    Ls(ls::LsArgs),
    /// Recreate one database, some of its tables, or only some rows, from a snapshot on a server.
    Restore(restore::RestoreArgs),
    /// Write one database (or some of its tables) of a snapshot as a SQL script for the client.
    Dump(dump::DumpArgs),
    /// Verify that the repository is complete and undamaged.
    Check(check::CheckArgs),
    /// Rebuild what can be rebuilt from the packs (`repair index`).
    Repair(repair::RepairArgs),
    /// Repository size, deduplication, per-database stored size and growth per snapshot.
    Stats(stats::StatsArgs),
    /// Restore drill: restore databases into scratch schemas, prove they equal the snapshot.
    VerifyRestore(verify_restore::VerifyRestoreArgs),
    /// Remove the snapshots a retention policy does not keep (and, with --prune, their data).
    Forget(forget::ForgetArgs),
    /// Delete the data no snapshot references, safely beside backups running elsewhere.
    Prune(prune::PruneArgs),
    /// The key slots that open the repository: list, add (passphrase or KMS), remove, passwd, rotate.
    Key(key::KeyArgs),
    /// How the rows of a table matching a condition looked in each snapshot.
    History(history::HistoryArgs),
    /// The audit log: who backed up, restored, dumped or looked at what, when and why.
    Audit(audit::AuditArgs),
    /// The configuration file: `config check [--connect]`.
    Config(config::ConfigArgs),
    /// Which databases have no backup within the window, which months no snapshot (exit 4).
    Sla(sla::SlaArgs),
    /// The archived binary log, for point-in-time recovery: `log sync`, `log follow`, `log list`.
    Log(log::LogArgs),
}

/// Exit code of a backup that stored a snapshot in which some databases failed.
pub const EXIT_PARTIAL: u8 = 3;

/// Exit code of a backup whose check of carried databases found one the binary log showed
/// unchanged that had changed: the snapshot holds the fresh copy, but change tracking missed a
/// change and the earlier snapshots' copies of it may be stale.
pub const EXIT_CARRIED_CHANGED: u8 = 5;

/// Run the parsed command. `matches` tells where each value came from (command line or
/// environment), which decides whether a password in a URL is acceptable.
pub async fn run(cli: Cli, matches: &ArgMatches) -> Result<ExitCode> {
    match cli.command {
        Command::Doctor(args) => doctor::run(args, matches).await,
        Command::Init(args) => init::run(args).await,
        Command::Report(args) => report::run(args).await,
        Command::Backup(args) => backup::run(args, matches).await,
        Command::Snapshots(args) => snapshots::run(args).await,
        Command::Ls(args) => ls::run(args).await,
        Command::Restore(args) => restore::run(args, matches).await,
        Command::Dump(args) => dump::run(args, matches).await,
        Command::Check(args) => check::run(args).await,
        Command::Repair(args) => repair::run(args).await,
        Command::Stats(args) => stats::run(args).await,
        Command::VerifyRestore(args) => verify_restore::run(args, matches).await,
        Command::Forget(args) => forget::run(args).await,
        Command::Prune(args) => prune::run(args).await,
        Command::Key(args) => key::run(args).await,
        Command::History(args) => history::run(args, matches).await,
        Command::Audit(args) => audit::run(args).await,
        Command::Config(args) => config::run(args, cli.config.as_deref()).await,
        Command::Sla(args) => sla::run(args, matches).await,
        Command::Log(args) => log::run(args, matches).await,
    }
}

/// The commands a write-only key file (`COFFER_KEY_FILE`) may run; every other command opens
/// with [`RepoArg::open`], which refuses it (docs/FORMAT.md lists the same).
pub const WRITE_ONLY_COMMANDS: [&str; 9] = [
    "backup",
    "snapshots",
    "ls",
    "sla",
    "key list",
    "config check",
    "log sync",
    "log follow",
    "log list",
];

#[derive(clap::Args, Clone)]
pub struct RepoArg {
    /// Repository location: a path or file:///path. Passphrase from COFFER_PASSWORD,
    /// COFFER_PASSWORD_FILE or a prompt.
    #[arg(long, env = "COFFER_REPO")]
    pub repo: String,
    /// Do not keep a local copy of remote index files and snapshots (kept by default in
    /// COFFER_CACHE_DIR, else $XDG_CACHE_HOME/coffer or ~/.cache/coffer; safe to delete).
    #[arg(long, env = "COFFER_NO_CACHE", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_cache: bool,
    /// Use the repository only if its id is this one (as `coffer init` printed it): a
    /// repository whose config and key slots were swapped for someone else's is refused.
    #[arg(long, env = "COFFER_REPOSITORY_ID", value_name = "ID")]
    pub repository_id: Option<String>,
    /// The only KMS endpoints this host sends credentials and keys to (comma-separated:
    /// edc.vault.azure.net, https://HOST[:PORT], http://127.0.0.1:PORT). Default: the public
    /// clouds' Key Vault, Managed HSM and AWS KMS endpoints over HTTPS.
    #[arg(
        long,
        env = "COFFER_KMS_TRUST",
        value_delimiter = ',',
        value_name = "ENDPOINT"
    )]
    pub kms_trust: Vec<String>,
    /// Open the repository with this key slot only (an id from `coffer key list`).
    #[arg(long, env = "COFFER_KEY_SLOT", value_name = "ID")]
    pub key_slot: Option<String>,
}

impl RepoArg {
    /// This host's cache folder (`COFFER_CACHE_DIR`, else `$XDG_CACHE_HOME/coffer`, else
    /// `~/.cache/coffer`), unless `--no-cache`.
    fn cache_dir(&self) -> Option<std::path::PathBuf> {
        if self.no_cache {
            return None;
        }
        std::env::var_os("COFFER_CACHE_DIR")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                std::env::var_os("XDG_CACHE_HOME")
                    .map(|d| std::path::PathBuf::from(d).join("coffer"))
            })
            .or_else(|| {
                std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache/coffer"))
            })
    }

    pub fn storage(&self) -> Result<OpenedStorage> {
        let cache_dir = self.cache_dir();
        coffer::storage::open_location(&self.repo, &StorageOptions { cache_dir })
    }

    /// Open the repository with a full key (a passphrase, a KMS slot, or a prompt): a
    /// write-only key file is refused, whatever the command would go on to do.
    pub async fn open(&self) -> Result<Arc<Repository>> {
        Ok(self.open_metered().await?.0)
    }

    /// [`RepoArg::open`] with the counters of what was transferred to and from its storage.
    pub async fn open_metered(&self) -> Result<(Arc<Repository>, Arc<Traffic>)> {
        let opened = self.open_allowing_write_only_metered().await?;
        opened.0.require_full_key().map_err(|e| {
            e.with_hint(format!(
                "a write-only key may run only {}; run this with a passphrase or KMS slot (unset COFFER_KEY_FILE)",
                WRITE_ONLY_COMMANDS.join(", ")
            ))
        })?;
        Ok(opened)
    }

    /// Open the repository with whatever key this host has, a write-only key file included:
    /// only for the commands [`WRITE_ONLY_COMMANDS`] lists.
    pub async fn open_allowing_write_only(&self) -> Result<Arc<Repository>> {
        Ok(self.open_allowing_write_only_metered().await?.0)
    }

    async fn open_allowing_write_only_metered(&self) -> Result<(Arc<Repository>, Arc<Traffic>)> {
        metrics::label("repository", metrics::repository_label(&self.repo));
        let opened = self.storage()?;
        let location = opened.storage.location().to_string();
        let mut state = HostState::load(&location);
        let options = OpenOptions {
            expected_id: self.repository_id.clone(),
            preferred_slot: state.last_slot.clone(),
            only_slot: self.key_slot.clone(),
        };
        let mut repo =
            open_with_available_keys(opened.storage, &options, &self.kms_trust()?).await?;
        // The parsed index, local repositories included (their files are read fast, parsing
        // them is what costs).
        // Beside the repository's metadata cache (`storage::cache` names it the same way).
        if let Some(dir) = self.cache_dir() {
            let key = blake3::hash(self.repo.as_bytes()).to_hex();
            repo.set_index_cache(coffer::repo::index_cache::IndexCache::new(
                dir.join(&key.as_str()[..16]).join("parsed-index"),
            ));
        }
        let before = state.clone();
        if state.repository_id.as_deref() != Some(repo.config().id.as_str()) {
            // Another repository at this location (a new one, or the first open): what this
            // host saw of the one before says nothing about this one.
            state.newest_snapshot = None;
            state.rolled_back = None;
        }
        state.repository_id = Some(repo.config().id.clone());
        state.last_slot = Some(repo.opened_slot().to_string());
        match repo.storage().list(coffer::repo::paths::SNAPSHOTS).await {
            Ok(listed) => state.observe_snapshots(&listed),
            Err(e) => tracing::debug!("snapshots not listed for this host's record: {e}"),
        }
        if let Some(why) = &state.rolled_back {
            tracing::error!(
                "the repository went backwards: {why}; someone with delete rights on the storage may have removed snapshots (`coffer check` fails until you run `coffer check --accept-rollback`)"
            );
        }
        if state != before {
            state.save(&location);
        }
        Ok((Arc::new(repo), opened.traffic))
    }

    /// Why this host thinks `repo` went backwards, if it does.
    pub fn rollback(repo: &Repository) -> Option<String> {
        HostState::load(&repo.storage().location()).rolled_back
    }

    /// After this host's own `forget`: the newest snapshot listed now is the mark, unless a
    /// rollback was noticed before (that stays until accepted).
    pub async fn after_own_forget(&self, repo: &Repository) -> Result<()> {
        let location = repo.storage().location().to_string();
        if HostState::load(&location).rolled_back.is_some() {
            return Ok(());
        }
        self.reset_snapshot_mark(repo).await
    }

    /// Make the snapshots listed now this host's mark (when an operator accepts a rollback).
    pub async fn reset_snapshot_mark(&self, repo: &Repository) -> Result<()> {
        let location = repo.storage().location().to_string();
        let mut state = HostState::load(&location);
        let listed = repo.storage().list(coffer::repo::paths::SNAPSHOTS).await?;
        state.reset_snapshots(&listed);
        state.save(&location);
        Ok(())
    }

    /// The KMS endpoints this host trusts (`--kms-trust`).
    pub fn kms_trust(&self) -> Result<KmsTrust> {
        KmsTrust::only(&self.kms_trust)
    }
}

/// Open a repository with what this host has: a write-only key file (`COFFER_KEY_FILE`) if one
/// is given; the passphrase from the environment if one is set; otherwise the repository's KMS
/// slots whose endpoints `trust` allows, with this host's credentials (so a VM or pod with a
/// managed identity needs no secret at all), then a passphrase prompt on a terminal.
async fn open_with_available_keys(
    storage: Arc<dyn coffer::storage::Storage>,
    options: &OpenOptions,
    trust: &KmsTrust,
) -> Result<Repository> {
    if let Some(path) = config::setting_from_env("COFFER_KEY_FILE") {
        let file = read_secret_file(&path, "COFFER_KEY_FILE")?;
        return Repository::open_write_only(storage, &file, options).await;
    }
    if let Some(passphrase) = passphrase_from_env()? {
        let provider = PassphraseProvider::new(passphrase)?;
        return Repository::open_with(storage, &provider, options).await;
    }
    let mut kms_refusal = None;
    if coffer::repo::keyslots::has_kms_slots(storage.as_ref()).await? {
        let provider = KmsProvider::ambient(trust.clone());
        match Repository::open_with(Arc::clone(&storage), &provider, options).await {
            Ok(repo) => return Ok(repo),
            Err(e) if e.kind() == coffer::ErrorKind::WrongPassword => kms_refusal = Some(e),
            Err(e) => return Err(e),
        }
    }
    if !std::io::stdin().is_terminal() {
        return Err(kms_refusal.unwrap_or_else(|| {
            Error::invalid("no repository passphrase given").with_hint(
                "set COFFER_PASSWORD or COFFER_PASSWORD_FILE (there is no terminal to ask on)",
            )
        }));
    }
    if let Some(refusal) = kms_refusal {
        eprintln!("{refusal}");
    }
    let provider = PassphraseProvider::new(prompt_passphrase("repository passphrase: ", false)?)?;
    Repository::open_with(storage, &provider, options).await
}

#[derive(clap::Args, Clone)]
pub struct MysqlArg {
    /// mysql://USER@HOST[:PORT]/[?ssl-ca=PATH&ssl-cert=PATH&ssl-key=PATH&tls-server-name=NAME&socket=PATH].
    /// TLS is required and verified for TCP. Password from COFFER_MYSQL_PASSWORD or
    /// COFFER_MYSQL_PASSWORD_FILE (a password inside the URL is accepted only from COFFER_MYSQL_URL).
    // The value of COFFER_MYSQL_URL may hold a password: never print it in --help.
    #[arg(long, env = "COFFER_MYSQL_URL", hide_env_values = true)]
    pub mysql: String,
}

impl MysqlArg {
    /// The MySQL target, refusing a password typed on the command line.
    pub fn target(&self, matches: &ArgMatches) -> Result<MysqlTarget> {
        let mut target = MysqlTarget::parse(&self.mysql)?;
        // The innermost subcommand's arguments (`coffer log sync --mysql …` is two deep).
        let mut command = matches;
        while let Some((_, inner)) = command.subcommand() {
            command = inner;
        }
        let from_command_line = command.ids().any(|id| id == "mysql")
            && command.value_source("mysql") == Some(ValueSource::CommandLine);
        if target.has_password() && from_command_line {
            return Err(Error::invalid("the --mysql URL contains a password, which other users can see in the process list")
                .with_hint("remove it from the URL and set COFFER_MYSQL_PASSWORD or COFFER_MYSQL_PASSWORD_FILE (or pass the whole URL in COFFER_MYSQL_URL)"));
        }
        set_mysql_password(&mut target)?;
        metrics::label("server", target.describe());
        Ok(target)
    }
}

/// The server password from COFFER_MYSQL_PASSWORD or COFFER_MYSQL_PASSWORD_FILE (or what the
/// job's configuration refers to), if one is given.
pub fn set_mysql_password(target: &mut MysqlTarget) -> Result<()> {
    if let Some(password) = secret_from_env("COFFER_MYSQL_PASSWORD")? {
        target.set_password(password);
    }
    Ok(())
}

/// Which snapshot to read: `--snapshot` or `--at` (restore, dump, ls, history).
#[derive(clap::Args, Clone, Default)]
pub struct SnapshotArgs {
    /// Snapshot id (prefix) or `latest` (the default: the newest holding the database).
    #[arg(long, conflicts_with = "at")]
    pub snapshot: Option<String>,
    /// The newest snapshot taken at or before this time: "2026-11-20 14:00" (UTC unless a zone
    /// is given: "+01:00", "Europe/Berlin"), a date (its 00:00), or a duration back from now
    /// (3d, 12h).
    #[arg(long)]
    pub at: Option<String>,
}

impl SnapshotArgs {
    /// Choose the snapshot, among those holding `database` when one is named, and say on
    /// stderr which one it is and why.
    pub async fn choose(
        &self,
        repo: &Repository,
        database: Option<&str>,
    ) -> Result<ChosenSnapshot> {
        let selector = SnapshotSelector::from_args(
            self.snapshot.as_deref(),
            self.at.as_deref(),
            jiff::Timestamp::now(),
        )?;
        let chosen = repo.select_snapshot(&selector, database).await?;
        eprintln!("using {}", chosen.reason);
        Ok(chosen)
    }
}

/// Which database (and tables) of which snapshot, and how to rewrite it (restore and dump).
#[derive(clap::Args, Clone)]
pub struct DatabaseArgs {
    #[command(flatten)]
    pub snapshot: SnapshotArgs,
    /// Database to restore (one; `restore --all` or `--include` for many).
    #[arg(long)]
    pub db: Option<String>,
    /// Only these tables, with their rows and triggers (repeat for several); other tables of
    /// the database are not touched.
    #[arg(long = "table", value_name = "TABLE")]
    pub tables: Vec<String>,
    /// Create the database (or the tables) in this database instead (schema references in
    /// views, routines, triggers and events are rewritten).
    #[arg(long)]
    pub into: Option<String>,
    /// Create the one --table under this name (a copy beside the live table: without the
    /// triggers, whose names the live table keeps).
    #[arg(long, requires = "tables")]
    pub into_table: Option<String>,
    /// Create views, routines, triggers and events without their DEFINER (owned by the
    /// restoring account), for accounts without SUPER/SET_USER_ID.
    #[arg(long, conflicts_with = "keep_definer")]
    pub skip_definer: bool,
    /// Keep the DEFINER of views, routines, triggers and events even from a snapshot no full
    /// key is proven to have written (by default those run as the restoring account: a
    /// write-only key could have chosen any definer).
    #[arg(long)]
    pub keep_definer: bool,
}

impl DatabaseArgs {
    /// The database `--db` names ("" until [`DatabaseArgs::require_db`] has checked it).
    pub fn db(&self) -> &str {
        self.db.as_deref().unwrap_or_default()
    }

    /// Refuse a command on one database without `--db`.
    pub fn require_db(&self, command: &str) -> Result<()> {
        match self.db.as_deref() {
            Some(db) if !db.is_empty() => Ok(()),
            _ => Err(Error::invalid(format!("{command} needs the database: --db NAME"))
                .with_hint("list the databases of a snapshot with `coffer ls`; `coffer restore --all` or `--include GLOB` restores many")),
        }
    }

    fn options(&self) -> RestoreOptions {
        RestoreOptions {
            into: self.into.clone(),
            skip_definer: self.skip_definer,
            keep_definer: self.keep_definer,
        }
    }

    /// Choose the snapshot and load the database's plan from it, narrowed to `--table`s.
    pub async fn load_plan(&self, repo: &Repository) -> Result<LoadedPlan> {
        let ChosenSnapshot { id, snapshot, .. } =
            self.snapshot.choose(repo, Some(self.db())).await?;
        let index = repo.load_index().await?;
        let mut plan = RestorePlan::load(
            repo,
            &index,
            &snapshot,
            &id.short(),
            self.db(),
            &self.options(),
        )
        .await?;
        if !self.tables.is_empty() {
            plan.select_tables(&self.tables, self.into_table.as_deref())?;
        }
        if let coffer::restore::Definers::Replaced(why) = plan.definers() {
            eprintln!(
                "note: views, routines, triggers and events run as the restoring account: {why}"
            );
        }
        Ok(LoadedPlan {
            id,
            snapshot,
            index,
            plan,
        })
    }
}

/// A snapshot's database, loaded for restore or dump.
pub struct LoadedPlan {
    pub id: SnapshotId,
    pub snapshot: Snapshot,
    pub index: Index,
    pub plan: RestorePlan,
}

/// The repository passphrase: COFFER_PASSWORD, COFFER_PASSWORD_FILE, or a terminal prompt.
pub fn passphrase(confirm: bool) -> Result<Zeroizing<String>> {
    if let Some(passphrase) = passphrase_from_env()? {
        return Ok(passphrase);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::invalid("no repository passphrase given").with_hint(
            "set COFFER_PASSWORD or COFFER_PASSWORD_FILE (there is no terminal to ask on)",
        ));
    }
    prompt_passphrase("repository passphrase: ", confirm)
}

/// COFFER_PASSWORD or COFFER_PASSWORD_FILE, if either is set.
fn passphrase_from_env() -> Result<Option<Zeroizing<String>>> {
    secret_from_env("COFFER_PASSWORD")
}

/// `VAR`, or the content of the file `VAR_FILE`, if either is set (in the environment, or by
/// the job's configuration).
fn secret_from_env(var: &str) -> Result<Option<Zeroizing<String>>> {
    if let Some(value) = config::setting_from_env(var) {
        let value = value
            .into_string()
            .map_err(|_| Error::invalid(format!("{var} is not valid UTF-8")))?;
        return Ok(Some(Zeroizing::new(value)));
    }
    let file_var = format!("{var}_FILE");
    match config::setting_from_env(&file_var) {
        Some(path) => read_secret_file(&path, &file_var).map(Some),
        None => Ok(None),
    }
}

/// A new passphrase (for `key add --passphrase`, `key passwd`): COFFER_NEW_PASSWORD,
/// COFFER_NEW_PASSWORD_FILE, or a prompt asked twice.
pub fn new_passphrase() -> Result<Zeroizing<String>> {
    if let Some(passphrase) = secret_from_env("COFFER_NEW_PASSWORD")? {
        return Ok(passphrase);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::invalid("no new passphrase given").with_hint(
            "set COFFER_NEW_PASSWORD or COFFER_NEW_PASSWORD_FILE (there is no terminal to ask on)",
        ));
    }
    prompt_passphrase("new passphrase: ", true)
}

fn prompt_passphrase(prompt: &str, confirm: bool) -> Result<Zeroizing<String>> {
    let first = Zeroizing::new(
        rpassword::prompt_password(prompt)
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

/// Print `value` as pretty JSON on stdout. A value that cannot be encoded is an error, never
/// an empty output with exit code 0.
pub fn print_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::invalid("encoding the JSON output").with_source(e))?;
    println!("{text}");
    Ok(())
}

/// A progress bar on a terminal; hidden otherwise.
pub fn progress_bar(len: u64, template: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Move `bar` to `counter` five times a second until aborted.
pub fn spawn_ticker(bar: ProgressBar, counter: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            bar.set_position(counter.load(Ordering::Relaxed));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// Rows as a table whose columns are as wide as their widest value (a socket path as the
/// server, say), two spaces apart; `right` aligns numbers. Every line ends with a newline.
pub fn table(headers: &[&str], right: &[bool], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, cell) in cells.enumerate() {
            let width = widths.get(i).copied().unwrap_or(0);
            let pad = " ".repeat(width.saturating_sub(cell.chars().count()));
            if i > 0 {
                out.push_str("  ");
            }
            if right.get(i).copied().unwrap_or(false) {
                out.push_str(&pad);
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&pad);
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(&mut headers.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// A size such as `1MiB`, `256KiB` or `4096`.
pub fn parse_size(s: &str) -> std::result::Result<u32, String> {
    parse_large_size(s).and_then(|n| {
        u32::try_from(n).map_err(|_| format!("{s:?} is larger than 4 GiB, the most allowed here"))
    })
}

/// A size such as `64MiB`, `2GiB`, `256KiB` or `4096`.
pub fn parse_large_size(s: &str) -> std::result::Result<u64, String> {
    let lower = s.trim().to_ascii_lowercase();
    let (digits, factor) = if let Some(d) = lower
        .strip_suffix("gib")
        .or_else(|| lower.strip_suffix('g'))
    {
        (d, 1 << 30)
    } else if let Some(d) = lower
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
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| format!("{s:?} is not a size such as 1MiB or 256KiB"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_columns_fit_their_widest_value() {
        let rows = vec![
            vec![
                "a1".to_string(),
                "/tmp/coffer-demo-very-long/mysql.sock".to_string(),
                "3".to_string(),
            ],
            vec!["b2".to_string(), "db:3306".to_string(), "12345".to_string()],
        ];
        let text = super::table(&["ID", "SERVER", "SIZE"], &[false, false, true], &rows);
        let lines: Vec<&str> = text.lines().collect();
        // Every column starts at the same place on every line.
        let at = |line: &str, what: &str| line.find(what).unwrap();
        assert_eq!(at(lines[1], "/tmp"), at(lines[2], "db:3306"));
        assert_eq!(at(lines[0], "SERVER"), at(lines[2], "db:3306"));
        assert_eq!(lines[1].len(), lines[2].len(), "{text}");
        assert!(
            lines[1].ends_with("    3") && lines[2].ends_with("12345"),
            "{text}"
        );
    }
}
