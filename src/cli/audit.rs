//! `coffer audit`: the audit log of the repository; and [`AuditTrail`], with which the commands
//! that read or change backups record what they do.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use coffer::repo::Repository;
use coffer::repo::audit::{AuditOutcome, AuditRecord};
use coffer::{Error, Result};

use super::{RepoArg, print_json};

#[derive(clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Only operations at or after this time ("2026-11-20", "2026-11-20 14:00", or 7d back).
    #[arg(long)]
    since: Option<String>,
    /// Only operations on this database.
    #[arg(long)]
    db: Option<String>,
    #[arg(long)]
    json: bool,
    /// Check the log instead of listing it: every record's predecessor present (a deleted
    /// record leaves a gap), every full-key mark genuine; exit code 1 on a problem.
    #[arg(long)]
    verify: bool,
}

pub async fn run(args: AuditArgs) -> Result<ExitCode> {
    let repo = args.repo.open().await?;
    if args.verify {
        let report = repo.verify_audit().await?;
        if args.json {
            print_json(&report)?;
        } else {
            for problem in report
                .gaps
                .iter()
                .chain(&report.forged)
                .chain(&report.damaged)
            {
                println!("problem: {problem}");
            }
            println!(
                "{} audit records: {} written with a full key, {} without its mark (a write-only key, or before coffer 0.4); {} gaps, {} forged marks",
                report.records,
                report.full_key,
                report.not_full_key,
                report.gaps.len(),
                report.forged.len()
            );
        }
        return if report.ok() {
            Ok(ExitCode::SUCCESS)
        } else {
            Err(Error::corrupt("the audit log was tampered with").with_hint(
                "records named above were deleted or forged; the log's objects are in audit/ of the storage",
            ))
        };
    }
    let since = args
        .since
        .as_deref()
        .map(|s| coffer::timespec::parse_point_in_time(s, jiff::Timestamp::now()))
        .transpose()?;
    let (records, damaged) = repo.audit_records().await?;
    // One line per operation: its outcome record, or the `started` one if it never finished.
    let mut operations: BTreeMap<String, AuditRecord> = BTreeMap::new();
    for record in records {
        let keep_started = operations
            .get(&record.operation)
            .is_some_and(|r| r.outcome != AuditOutcome::Started);
        if !keep_started {
            operations.insert(record.operation.clone(), record);
        }
    }
    let mut listed: Vec<AuditRecord> = operations
        .into_values()
        .filter(|r| since.is_none_or(|s| r.time >= s))
        .filter(|r| {
            args.db.as_deref().is_none_or(|db| {
                r.database.as_deref() == Some(db) || r.target_database.as_deref() == Some(db)
            })
        })
        .collect();
    listed.sort_by_key(|r| r.time);
    for e in &damaged {
        eprintln!("warning: {e}");
    }
    if args.json {
        print_json(&listed)?;
        return Ok(ExitCode::SUCCESS);
    }
    for r in &listed {
        let outcome = match &r.outcome {
            AuditOutcome::Started => "UNFINISHED".to_string(),
            AuditOutcome::Succeeded => "ok".to_string(),
            AuditOutcome::Failed(e) => format!("FAILED: {e}"),
        };
        let mut what = Vec::new();
        if let Some(db) = &r.database {
            what.push(format!("db {db}"));
        }
        if !r.tables.is_empty() {
            what.push(format!("tables {}", r.tables.join(",")));
        }
        if let Some(w) = &r.where_ {
            what.push(format!("where {w:?}"));
        }
        if let Some(s) = &r.snapshot {
            what.push(format!("snapshot {}", &s[..s.len().min(8)]));
        }
        if let Some(t) = &r.target_database {
            what.push(format!("into {t}"));
        }
        if let Some(server) = &r.server {
            what.push(format!("on {server}"));
        }
        let counts: Vec<String> = r.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{}  {}@{}  {:<8} {}  {}{}{}",
            r.time.strftime("%Y-%m-%d %H:%M:%S"),
            r.user,
            r.host,
            r.command,
            what.join(" "),
            outcome,
            if counts.is_empty() {
                String::new()
            } else {
                format!(" ({})", counts.join(" "))
            },
            r.reason
                .as_deref()
                .map(|reason| format!("  reason: {reason}"))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What an audited operation reports at its end.
#[derive(Debug, Default)]
pub struct Audited {
    pub snapshot: Option<String>,
    pub target_database: Option<String>,
    pub counts: BTreeMap<String, u64>,
    pub definers: Option<String>,
}

/// The `started` record of an operation, written before it touches anything; [`AuditTrail::finish`]
/// writes its outcome.
pub struct AuditTrail {
    repo: Arc<Repository>,
    record: AuditRecord,
    /// The id of the record this trail wrote last: its parts chain to it without listing.
    last_written: std::sync::Mutex<Option<String>>,
}

impl AuditTrail {
    /// Record that `command` starts; `describe` fills in what it is about.
    pub async fn start(
        repo: &Arc<Repository>,
        command: &str,
        reason: Option<String>,
        describe: impl FnOnce(&mut AuditRecord),
    ) -> Result<Self> {
        let mut id = [0u8; 16];
        coffer::crypto::fill_random(&mut id)?;
        let mut record = AuditRecord {
            version: 1,
            operation: hex::encode(id),
            time: jiff::Timestamp::now(),
            user: os_user(),
            host: coffer::hostname(),
            command: command.to_string(),
            arguments: command_line_without_locations(),
            reason,
            snapshot: None,
            database: None,
            tables: Vec::new(),
            where_: None,
            server: None,
            target_database: None,
            outcome: AuditOutcome::Started,
            counts: BTreeMap::new(),
            definers: None,
            previous: None,
            full_key_mark: None,
        };
        describe(&mut record);
        let written = repo.append_audit(&record).await.map_err(|e| {
            e.context(format!(
                "{command} did not start: the audit log could not be written"
            ))
        })?;
        Ok(AuditTrail {
            repo: Arc::clone(repo),
            record,
            last_written: std::sync::Mutex::new(Some(written)),
        })
    }

    /// A record of one part of this operation (a database of an estate restore): its own id,
    /// the operation's command, user and reason, and what `describe` sets (its outcome too).
    /// Chained to the record this trail wrote just before; parts are written one at a time.
    pub async fn part(&self, describe: impl FnOnce(&mut AuditRecord)) -> Result<()> {
        let mut id = [0u8; 16];
        coffer::crypto::fill_random(&mut id)?;
        let mut record = self.record.clone();
        record.operation = hex::encode(id);
        record.time = jiff::Timestamp::now();
        describe(&mut record);
        let previous = self.last_written().clone();
        let written = self.repo.append_audit_after(&record, previous).await?;
        *self.last_written() = Some(written);
        Ok(())
    }

    fn last_written(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.last_written
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Record the outcome; an operation that succeeded but cannot be recorded is an error.
    pub async fn finish<T>(mut self, result: Result<(T, Audited)>) -> Result<T> {
        self.record.time = jiff::Timestamp::now();
        let value = match result {
            Ok((value, audited)) => {
                self.record.outcome = AuditOutcome::Succeeded;
                self.record.snapshot = audited.snapshot.or(self.record.snapshot);
                self.record.target_database =
                    audited.target_database.or(self.record.target_database);
                self.record.counts = audited.counts;
                self.record.definers = audited.definers;
                Ok(value)
            }
            Err(e) => {
                self.record.outcome = AuditOutcome::Failed(e.to_string());
                Err(e)
            }
        };
        let written = self.repo.append_audit(&self.record).await;
        match (value, written) {
            (Ok(value), Ok(_)) => Ok(value),
            (Ok(_), Err(e)) => Err(e.context(format!(
                "{} finished, but its outcome could not be written to the audit log (its start was)",
                self.record.command
            ))),
            (Err(e), Ok(_)) => Err(e),
            (Err(e), Err(audit)) => {
                tracing::warn!("the failure could not be written to the audit log: {audit}");
                Err(e)
            }
        }
    }
}

/// The user coffer runs as: `USER`/`LOGNAME`, else the name of its uid in /etc/passwd, else
/// the uid.
fn os_user() -> String {
    use std::os::unix::fs::MetadataExt;
    if let Ok(user) = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")) {
        return user;
    }
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
        return "unknown".to_string();
    };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                (fields.get(2) == Some(&uid.to_string().as_str())).then(|| fields[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// The command line, with the values of `--repo` and `--mysql` replaced by `…`: a storage URL
/// may carry a SAS token, and both are recorded in their own fields without credentials.
fn command_line_without_locations() -> Vec<String> {
    let mut out = Vec::new();
    let mut hide_next = false;
    for arg in std::env::args().skip(1) {
        if hide_next {
            out.push("…".to_string());
            hide_next = false;
            continue;
        }
        match arg.split_once('=') {
            Some((flag, _)) if flag == "--repo" || flag == "--mysql" => {
                out.push(format!("{flag}=…"))
            }
            _ => {
                hide_next = arg == "--repo" || arg == "--mysql";
                out.push(arg);
            }
        }
    }
    out
}

/// An error for `--reason` text that would not fit a record.
pub fn check_reason(reason: &Option<String>) -> Result<()> {
    match reason {
        Some(r) if r.len() > 4096 => Err(Error::invalid("--reason is longer than 4096 bytes")),
        _ => Ok(()),
    }
}
