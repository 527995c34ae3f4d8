//! The configuration file: named jobs whose settings are a command's defaults.
//!
//! ```toml
//! [defaults]                      # every job starts from these
//! repo = "azblob://edcbackups/mysql-prod/server-01"
//! password_file = "/etc/coffer/passphrase"
//!
//! [jobs.server-01]
//! mysql = "mysql://backupadmin@server-01.mysql.database.azure.com/"
//! mysql_password_file = "/etc/coffer/mysql-password"
//! jobs = 8
//! exclude = ["scratch_*"]
//! tag = ["prod"]
//! keep_within = "30d"             # used by `forget --job server-01`
//! keep_within_monthly = "1y"
//! ```
//!
//! A setting is a command-line flag of the commands (`jobs` is `--jobs`, `keep_within` is
//! `--keep-within`), applied to the command run with `--job NAME` when neither the command line
//! nor the flag's environment variable gives it: flags win, then the environment, then the
//! file. Secrets only by reference (`password_file`, `password_env`, `mysql_password_file`,
//! `mysql_password_env`, `key_file`), never inline: a file holding one is refused. A key no
//! command knows is an error naming the key and its line.
//!
//! The file is `--config PATH`, else `COFFER_CONFIG`, else `/etc/coffer/coffer.toml` when it
//! exists; it is read only when a job is named (`--job`, `COFFER_JOB`) or checked.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::RwLock;

use clap::CommandFactory;
use clap::parser::ValueSource;
use toml::Spanned;

use coffer::{Error, Result};

/// The default location, used when it exists.
pub const DEFAULT_PATH: &str = "/etc/coffer/coffer.toml";

/// Secret references: a setting of the file, the environment variable coffer reads the secret
/// (or its file) from, and whether the setting names a file (else an environment variable).
const SECRET_REFERENCES: [(&str, &str, bool); 5] = [
    ("password_file", "COFFER_PASSWORD_FILE", true),
    ("password_env", "COFFER_PASSWORD", false),
    ("mysql_password_file", "COFFER_MYSQL_PASSWORD_FILE", true),
    ("mysql_password_env", "COFFER_MYSQL_PASSWORD", false),
    ("key_file", "COFFER_KEY_FILE", true),
];

/// Settings that would hold a secret itself: refused, with the reference to use instead.
const INLINE_SECRETS: [(&str, &str); 9] = [
    ("password", "password_file or password_env"),
    ("passphrase", "password_file or password_env"),
    (
        "mysql_password",
        "mysql_password_file or mysql_password_env",
    ),
    ("secret", "a *_file or *_env setting"),
    ("token", "a *_file or *_env setting"),
    (
        "sas_token",
        "AZURE_STORAGE_SAS_TOKEN in the environment, or a managed identity",
    ),
    (
        "access_key",
        "the storage's usual environment variables or instance credentials",
    ),
    (
        "secret_access_key",
        "the storage's usual environment variables or instance credentials",
    ),
    (
        "client_secret",
        "AZURE_CLIENT_SECRET in the environment, or a managed identity",
    ),
];

/// The environment variables a job's secret references stand for, consulted after the real
/// environment (see [`setting_from_env`]).
static CONFIGURED_ENV: RwLock<Option<HashMap<String, OsString>>> = RwLock::new(None);

/// The value of environment variable `name`, or what the job's configuration gives for it.
pub fn setting_from_env(name: &str) -> Option<OsString> {
    std::env::var_os(name).or_else(|| CONFIGURED_ENV.read().ok()?.as_ref()?.get(name).cloned())
}

/// One value of the file with the line it is on.
#[derive(Debug, Clone)]
struct Setting {
    value: toml::Value,
    line: usize,
}

/// A parsed configuration file.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    defaults: BTreeMap<String, Setting>,
    jobs: BTreeMap<String, BTreeMap<String, Setting>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    defaults: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    jobs: BTreeMap<String, BTreeMap<String, Spanned<toml::Value>>>,
}

impl ConfigFile {
    /// Read and validate `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::invalid(format!(
                "cannot read the configuration file {}",
                path.display()
            ))
            .with_source(e)
        })?;
        Self::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<Self> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| format!(" line {}", line_of(text, s.start)))
                .unwrap_or_default();
            Error::invalid(format!(
                "{}{at}: {}",
                path.display(),
                e.message().trim_end()
            ))
            .with_hint("the file holds [defaults] and [jobs.NAME] tables of settings")
        })?;
        let known = known_settings();
        let table = |entries: BTreeMap<String, Spanned<toml::Value>>, within: &str| {
            let mut settings = BTreeMap::new();
            for (key, spanned) in entries {
                let line = line_of(text, spanned.span().start);
                let value = spanned.into_inner();
                check_setting(path, within, &key, &value, line, &known)?;
                // A table (`[jobs.x.retention]`) groups settings: its keys are settings too.
                if let toml::Value::Table(inner) = value {
                    for (inner_key, inner_value) in inner {
                        check_setting(path, within, &inner_key, &inner_value, line, &known)?;
                        settings.insert(
                            inner_key,
                            Setting {
                                value: inner_value,
                                line,
                            },
                        );
                    }
                } else {
                    settings.insert(key, Setting { value, line });
                }
            }
            Ok::<_, Error>(settings)
        };
        let defaults = table(raw.defaults, "[defaults]")?;
        let mut jobs = BTreeMap::new();
        for (name, entries) in raw.jobs {
            let settings = table(entries, &format!("[jobs.{name}]"))?;
            jobs.insert(name, settings);
        }
        Ok(ConfigFile {
            path: path.to_path_buf(),
            defaults,
            jobs,
        })
    }

    /// The settings of job `name`: the defaults, overridden by the job's own.
    fn job(&self, name: &str) -> Result<BTreeMap<String, Setting>> {
        let own = self.jobs.get(name).ok_or_else(|| {
            Error::invalid(format!("{} has no job named {name:?}", self.path.display())).with_hint(
                format!(
                    "jobs there: {}",
                    self.jobs.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        let mut settings = self.defaults.clone();
        settings.extend(own.clone());
        Ok(settings)
    }
}

/// 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.get(..at)
        .map_or(0, |before| before.matches('\n').count())
        + 1
}

/// Every setting a job may hold: the long flags of every command (in snake case) and the
/// secret references.
fn known_settings() -> BTreeSet<String> {
    let mut known: BTreeSet<String> = SECRET_REFERENCES
        .iter()
        .map(|(key, _, _)| key.to_string())
        .collect();
    fn walk(command: &clap::Command, known: &mut BTreeSet<String>) {
        for arg in command.get_arguments() {
            if let Some(long) = arg.get_long()
                && !matches!(long, "config" | "job" | "help" | "version")
            {
                known.insert(long.replace('-', "_"));
            }
        }
        for sub in command.get_subcommands() {
            walk(sub, known);
        }
    }
    walk(&super::Cli::command(), &mut known);
    known
}

fn check_setting(
    path: &Path,
    within: &str,
    key: &str,
    value: &toml::Value,
    line: usize,
    known: &BTreeSet<String>,
) -> Result<()> {
    let place = format!("{} line {line}, {within}", path.display());
    if let Some((_, instead)) = INLINE_SECRETS.iter().find(|(k, _)| *k == key) {
        return Err(Error::invalid(format!(
            "{place}: `{key}` would hold a secret in the file; secrets are given by reference only"
        ))
        .with_hint(format!("use {instead}")));
    }
    if let toml::Value::Table(_) = value {
        return Ok(());
    }
    if !known.contains(key) {
        return Err(Error::invalid(format!("{place}: unknown setting `{key}`"))
            .with_hint("a setting is a command-line flag in snake case (jobs, include, keep_within …) or a secret reference (password_file, mysql_password_file, key_file …)"));
    }
    let texts: Vec<&str> = match value {
        toml::Value::String(s) => vec![s.as_str()],
        toml::Value::Array(items) => items.iter().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    };
    for text in texts {
        if let Some(why) = embedded_secret(text) {
            return Err(Error::invalid(format!("{place}: `{key}` {why}"))
                .with_hint("give secrets by reference: mysql_password_file, password_file, or the storage's environment variables"));
        }
    }
    Ok(())
}

/// Why a value looks like it carries a secret: a password in a URL, or a signed query.
fn embedded_secret(text: &str) -> Option<&'static str> {
    let url = url::Url::parse(text).ok()?;
    if url.password().is_some() {
        return Some("holds a password inside its URL");
    }
    let secret_query = url.query_pairs().any(|(k, _)| {
        matches!(
            k.to_ascii_lowercase().as_str(),
            "sig" | "password" | "secret" | "token" | "access_key" | "secret_access_key" | "sas"
        )
    });
    secret_query.then_some("holds a credential in its URL query")
}

/// Where the configuration file is: `--config` in `args`, `COFFER_CONFIG`, or the default
/// path when it exists.
fn locate(args: &[OsString]) -> Option<PathBuf> {
    flag_value(args, "--config")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("COFFER_CONFIG").map(PathBuf::from))
        .or_else(|| {
            let default = PathBuf::from(DEFAULT_PATH);
            default.exists().then_some(default)
        })
}

/// The value of `--flag VALUE` or `--flag=VALUE` in `args`.
fn flag_value(args: &[OsString], flag: &str) -> Option<OsString> {
    let prefix = format!("{flag}=");
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy();
        if text == flag {
            return iter.next().cloned();
        }
        if let Some(value) = text.strip_prefix(&prefix) {
            return Some(value.into());
        }
        if text == "--" {
            break;
        }
    }
    None
}

/// The command line with the settings of the job named by `--job` (or `COFFER_JOB`) added
/// where neither the command line nor the environment gives them; the job's secret references
/// become what [`setting_from_env`] falls back to. Without a job, `args` as they are.
pub fn apply_job(args: Vec<OsString>) -> Result<Vec<OsString>> {
    let Some(job_name) = flag_value(&args, "--job").or_else(|| std::env::var_os("COFFER_JOB"))
    else {
        return Ok(args);
    };
    let job_name = job_name.to_string_lossy().into_owned();
    super::metrics::label("job", job_name.clone());
    let path = locate(&args).ok_or_else(|| {
        Error::invalid(format!(
            "--job {job_name} names a job, but there is no configuration file"
        ))
        .with_hint(format!(
            "give --config PATH or COFFER_CONFIG, or create {DEFAULT_PATH}"
        ))
    })?;
    let config = ConfigFile::load(&path)?;
    let settings = config.job(&job_name)?;
    use_secret_references(&path, &settings)?;

    // Which command runs, and which of its flags the command line or environment already give.
    // A command line clap cannot read even leniently (`--help`, `--version`) is left to it.
    let Ok(probe) = super::Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(&args)
    else {
        return Ok(args);
    };
    let root = super::Cli::command();
    let mut command = root.clone();
    let mut matches = &probe;
    while let Some((name, sub)) = matches.subcommand() {
        let Some(found) = command.find_subcommand(name).cloned() else {
            break;
        };
        command = found;
        matches = sub;
    }
    // The command's own flags, and the global ones (`--metrics-file`, `--log-format`).
    let flags = command
        .get_arguments()
        .map(|arg| (arg, matches))
        .chain(root.get_arguments().map(|arg| (arg, &probe)));
    let mut added: Vec<OsString> = Vec::new();
    let mut seen = BTreeSet::new();
    for (arg, source) in flags {
        let Some(long) = arg.get_long() else {
            continue;
        };
        if matches!(long, "config" | "job") || !seen.insert(long) {
            continue;
        }
        let Some(setting) = settings.get(&long.replace('-', "_")) else {
            continue;
        };
        let given = matches!(
            source.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) || arg
            .get_env()
            .is_some_and(|env| std::env::var_os(env).is_some());
        if given {
            continue;
        }
        let flag = format!("--{long}");
        let values: Vec<&toml::Value> = match &setting.value {
            toml::Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        for value in values {
            match value {
                toml::Value::Boolean(true) => added.push(flag.clone().into()),
                toml::Value::Boolean(false) => {}
                toml::Value::String(s) => {
                    added.push(flag.clone().into());
                    added.push(s.into());
                }
                toml::Value::Integer(n) => {
                    added.push(flag.clone().into());
                    added.push(n.to_string().into());
                }
                toml::Value::Float(x) => {
                    added.push(flag.clone().into());
                    added.push(x.to_string().into());
                }
                _ => {
                    return Err(Error::invalid(format!(
                        "{} line {}: `{}` must be a string, number, boolean or a list of them",
                        path.display(),
                        setting.line,
                        long.replace('-', "_")
                    )));
                }
            }
        }
    }
    // Before a `--` (after which everything is positional), else at the end.
    let mut args = args;
    let at = args.iter().position(|a| a == "--").unwrap_or(args.len());
    args.splice(at..at, added);
    Ok(args)
}

/// Make the job's secret references what [`setting_from_env`] falls back to.
fn use_secret_references(path: &Path, settings: &BTreeMap<String, Setting>) -> Result<()> {
    let mut configured_env = HashMap::new();
    for (key, env, is_file) in SECRET_REFERENCES {
        let Some(setting) = settings.get(key) else {
            continue;
        };
        let Some(text) = setting.value.as_str() else {
            return Err(Error::invalid(format!(
                "{} line {}: `{key}` must be a string",
                path.display(),
                setting.line
            )));
        };
        let value = if is_file {
            Some(OsString::from(text))
        } else {
            // `password_env = "VAR"`: the secret is in VAR.
            std::env::var_os(text)
        };
        if let Some(value) = value {
            configured_env.insert(env.to_string(), value);
        }
    }
    if let Ok(mut slot) = CONFIGURED_ENV.write() {
        *slot = Some(configured_env);
    }
    Ok(())
}

/// `coffer config check`: validate a configuration file, and with `--connect` that each job's
/// server and repository answer.
#[derive(clap::Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    action: ConfigAction,
}

#[derive(clap::Subcommand)]
enum ConfigAction {
    /// Read the file and say what is wrong with it (exit code 1), or list its jobs.
    Check {
        /// Also connect: each job's MySQL server answers and its repository opens.
        #[arg(long)]
        connect: bool,
    },
}

pub async fn run(args: ConfigArgs, config_flag: Option<&Path>) -> Result<ExitCode> {
    let ConfigAction::Check { connect } = args.action;
    let path = config_flag
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("COFFER_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
    let config = ConfigFile::load(&path)?;
    println!(
        "{}: {} job(s), no problems found",
        path.display(),
        config.jobs.len()
    );
    let mut failed = false;
    for name in config.jobs.keys() {
        let settings = config.job(name)?;
        let shown = |key: &str| {
            settings
                .get(key)
                .and_then(|s| s.value.as_str().map(str::to_string))
                .unwrap_or_else(|| "-".into())
        };
        println!(
            "  {name}: server {} → repository {}",
            shown("mysql"),
            shown("repo")
        );
        if !connect {
            continue;
        }
        match check_connections(&path, &settings).await {
            Ok(()) => println!("    server and repository answer"),
            Err(e) => {
                failed = true;
                println!("    {e}");
                if let Some(hint) = e.hint() {
                    println!("    hint: {hint}");
                }
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Connect to the job's server and open its repository, with the job's secret references.
async fn check_connections(path: &Path, settings: &BTreeMap<String, Setting>) -> Result<()> {
    use_secret_references(path, settings)?;
    if let Some(url) = settings.get("mysql").and_then(|s| s.value.as_str()) {
        let mut target = coffer::source::mysql::MysqlTarget::parse(url)?;
        super::set_mysql_password(&mut target)?;
        let conn = target.connect().await?;
        drop(conn);
    }
    if let Some(repo) = settings.get("repo").and_then(|s| s.value.as_str()) {
        let text = |key: &str| {
            settings
                .get(key)
                .and_then(|s| s.value.as_str())
                .map(str::to_string)
        };
        let kms_trust = match settings.get("kms_trust").map(|s| &s.value) {
            Some(toml::Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(toml::Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        };
        let arg = super::RepoArg {
            repo: repo.to_string(),
            no_cache: true,
            repository_id: text("repository_id"),
            kms_trust,
            key_slot: text("key_slot"),
        };
        arg.open_allowing_write_only().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfigFile> {
        ConfigFile::parse(Path::new("coffer.toml"), text)
    }

    #[test]
    fn jobs_inherit_defaults_and_override_them() {
        let config = parse(
            "[defaults]\nrepo = \"/srv/repo\"\njobs = 4\n\n[jobs.a]\njobs = 8\ntag = [\"x\", \"y\"]\n\n[jobs.a.retention]\nkeep_within = \"30d\"\n",
        )
        .expect("valid");
        let a = config.job("a").expect("job a");
        assert_eq!(a["jobs"].value.as_integer(), Some(8));
        assert_eq!(a["repo"].value.as_str(), Some("/srv/repo"));
        assert_eq!(a["keep_within"].value.as_str(), Some("30d"));
        assert!(config.job("b").is_err());
    }

    #[test]
    fn unknown_keys_and_inline_secrets_are_named_with_their_line() {
        let unknown = parse("[jobs.a]\njobs = 2\njbos = 3\n").expect_err("unknown");
        assert!(unknown.to_string().contains("line 3"), "{unknown}");
        assert!(unknown.to_string().contains("`jbos`"), "{unknown}");
        let inline = parse("[defaults]\n\npassword = \"hunter2\"\n").expect_err("inline");
        assert!(inline.to_string().contains("line 3"), "{inline}");
        assert!(!inline.to_string().contains("hunter2"), "{inline}");
        let in_url = parse("[jobs.a]\nmysql = \"mysql://u:pw@db/\"\n").expect_err("url");
        assert!(
            in_url.to_string().contains("password inside its URL"),
            "{in_url}"
        );
        assert!(!in_url.to_string().contains("pw@"), "{in_url}");
        let sas = parse("[jobs.a]\nrepo = \"https://a.blob.core.windows.net/c?sv=1&sig=abc\"\n")
            .expect_err("sas");
        assert!(sas.to_string().contains("credential"), "{sas}");
        let top = parse("[job.a]\njobs = 1\n").expect_err("unknown table");
        assert!(top.to_string().contains("line 1"), "{top}");
    }
}
