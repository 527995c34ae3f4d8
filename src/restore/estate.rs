//! Restoring many databases from one repository open (`restore --all`, `--include GLOB`): a
//! whole server, or a set of its studies, onto one target.
//!
//! Rules (each with the test that shows it, in `tests/restore_estate.rs`):
//! - **One open, one index**: the repository is opened, its index loaded and each snapshot
//!   read once for the run; only each database's own trees are read per database
//!   (`every_database_of_a_run_is_restored_equal`).
//! - **Largest first, connections shared**: databases start largest first, `jobs` at a time;
//!   a database larger than its share of the estate gets loaders in proportion, so a large
//!   study is not left to one connection at the end.
//! - **Swapped in only when complete**: each database is a restore as `restore --db` does it
//!   (staging database, then one swap), so a stopped run leaves no half-loaded database under
//!   its target name.
//! - **Resumable**: the caller's [`EstateJournal`] records each database's staging tag before
//!   it starts (and only once its target is known not to exist, or may be replaced) and its
//!   completion after the swap; a repeated run skips the completed ones (which must still
//!   exist), drops the staging databases the stopped run left and redoes the rest, replacing a
//!   target the stopped run created but may not have finished: nothing is loaded twice into a
//!   live database (`a_killed_run_resumes_skipping_what_it_completed`).
//! - **One failure is not the run's**: a database that fails is reported with its error and
//!   the others go on; the run's outcome names every one.
//! - **The same cost per database at any size**: nothing done per database reads the whole
//!   snapshot, rewrites the journal or lists the audit log: who wrote each snapshot is checked
//!   once, the journal is appended to, each database's audit record names the one before it
//!   (`every_database_of_a_run_is_restored_equal`: chained, and `audit --verify` clean). How
//!   it was found, and 5,000 schemas against myloader: bench/README.md (issue 21, third run).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use futures_util::stream::{self, StreamExt};

use super::server::restore_to_server;
use super::staging::{RestoreStats, ServerRestoreOptions, database_exists, new_staging_tag};
use super::{RestoreOptions, RestorePlan};
use crate::error::Result;
use crate::repo::Repository;
use crate::repo::ids::SnapshotId;
use crate::repo::index::Index;
use crate::repo::snapshot::{Snapshot, WrittenBy};
use crate::source::mysql::MysqlTarget;

/// One database of the estate: where it comes from and where it goes.
#[derive(Debug, Clone)]
pub struct EstateDatabase {
    pub source: String,
    pub target: String,
    pub snapshot: SnapshotId,
    /// Row bytes the snapshot recorded (orders the work and shares the connections).
    pub bytes: u64,
    /// Replace the target even without `drop_existing`: a stopped run of this restore created
    /// it and may not have finished it.
    pub replace_own: bool,
    /// `restore --all --at`: the archived binary log replayed onto the copy, to the moment.
    pub replay: Option<Arc<crate::pitr::replay::ReplayPlan>>,
}

/// How the estate is restored.
#[derive(Debug, Clone)]
pub struct EstateOptions {
    /// Connections in all.
    pub jobs: usize,
    /// Replace databases that exist under a target name.
    pub drop_existing: bool,
    pub skip_definer: bool,
    pub keep_definer: bool,
}

/// What happened to one database.
#[derive(Debug, Clone)]
pub enum DatabaseOutcome {
    Restored(RestoreStats),
    /// The error, and whether it was only that the target exists (a repeated run would fail
    /// the same way: nothing to go on with).
    Failed {
        error: String,
        target_exists: bool,
    },
}

/// Where a run records its progress, so that a repeated run can go on.
pub trait EstateJournal: Send + Sync {
    /// Before `database` starts loading into staging database `coffer_restore_<tag>`.
    fn started(&self, database: &str, staging_tag: &str) -> Result<()>;
    /// After `database` was swapped in under its target name.
    fn finished(&self, database: &str) -> Result<()>;
    /// After each database, restored or failed (a failed one is redone by a repeated run):
    /// while the others go on, so that what is recorded per database (the audit log) is
    /// written during the run, not after it.
    fn settled(&self, _database: &EstateDatabase, _outcome: &DatabaseOutcome) {}
}

/// Restore `databases` onto `target`; returns each one's outcome, in the order they finished.
#[allow(clippy::too_many_arguments)]
pub async fn restore_estate(
    repo: Arc<Repository>,
    index: Arc<Index>,
    snapshots: &HashMap<SnapshotId, Snapshot>,
    mut databases: Vec<EstateDatabase>,
    target: &MysqlTarget,
    options: &EstateOptions,
    journal: &dyn EstateJournal,
    chunks_done: Arc<AtomicU64>,
) -> Vec<(EstateDatabase, DatabaseOutcome)> {
    databases.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.source.cmp(&b.source)));
    let jobs = options.jobs.max(1);
    let total: u64 = databases.iter().map(|d| d.bytes).sum::<u64>().max(1);
    let share = (total / jobs as u64).max(1);
    // Who wrote each snapshot, checked once for the run (the check reads the whole snapshot).
    let written_by: HashMap<SnapshotId, WrittenBy> = snapshots
        .iter()
        .map(|(id, snapshot)| (*id, repo.written_by(snapshot)))
        .collect();
    let written_by = &written_by;
    stream::iter(databases)
        .map(|database| {
            let (repo, index, chunks_done) = (
                Arc::clone(&repo),
                Arc::clone(&index),
                Arc::clone(&chunks_done),
            );
            // A database over its share of the estate gets loaders in proportion.
            let loaders = (database.bytes.div_ceil(share) as usize).clamp(1, jobs);
            async move {
                let outcome = match restore_one(
                    repo,
                    index,
                    snapshots,
                    written_by,
                    &database,
                    target,
                    options,
                    loaders,
                    journal,
                    chunks_done,
                )
                .await
                {
                    Ok(stats) => DatabaseOutcome::Restored(stats),
                    Err(e) => DatabaseOutcome::Failed {
                        target_exists: e.kind() == crate::error::ErrorKind::AlreadyExists,
                        error: match e.hint() {
                            Some(hint) => format!("{e} (hint: {hint})"),
                            None => e.to_string(),
                        },
                    },
                };
                journal.settled(&database, &outcome);
                (database, outcome)
            }
        })
        .buffer_unordered(jobs)
        .collect()
        .await
}

#[allow(clippy::too_many_arguments)]
async fn restore_one(
    repo: Arc<Repository>,
    index: Arc<Index>,
    snapshots: &HashMap<SnapshotId, Snapshot>,
    written_by: &HashMap<SnapshotId, WrittenBy>,
    database: &EstateDatabase,
    target: &MysqlTarget,
    options: &EstateOptions,
    loaders: usize,
    journal: &dyn EstateJournal,
    chunks_done: Arc<AtomicU64>,
) -> Result<RestoreStats> {
    let snapshot = snapshots.get(&database.snapshot).ok_or_else(|| {
        crate::error::Error::not_found(format!(
            "snapshot {} of database {} was not loaded",
            database.snapshot.short(),
            database.source
        ))
    })?;
    let unproven = WrittenBy::NotProven {
        slot: None,
        why: "not checked",
    };
    let plan = RestorePlan::load_written_by(
        &repo,
        &index,
        snapshot,
        written_by.get(&database.snapshot).unwrap_or(&unproven),
        &database.snapshot.short(),
        &database.source,
        &RestoreOptions {
            into: (database.target != database.source).then(|| database.target.clone()),
            skip_definer: options.skip_definer,
            keep_definer: options.keep_definer,
        },
    )
    .await?;
    let replace = options.drop_existing || database.replace_own;
    if !replace && target_exists(target, &database.target).await? {
        // Refused before the journal records it: a resumed run must never take this database
        // for one it created.
        return Err(crate::error::Error::new(
            crate::error::ErrorKind::AlreadyExists,
            format!("database {} already exists on {}", database.target, target.describe()),
        )
        .with_hint("restore under other names with --into-prefix PREFIX, or replace them with --drop-existing"));
    }
    let tag = new_staging_tag()?;
    journal.started(&database.source, &tag)?;
    let stats = restore_to_server(
        repo,
        index,
        Arc::new(plan),
        target,
        &ServerRestoreOptions {
            drop_existing: replace,
            jobs: loaders,
            replay: database.replay.clone(),
            staging_tag: Some(tag),
        },
        chunks_done,
    )
    .await?;
    journal.finished(&database.source)?;
    Ok(stats)
}

async fn target_exists(target: &MysqlTarget, name: &str) -> Result<bool> {
    let mut conn = target.connect().await?;
    let exists = database_exists(&mut conn, name).await;
    let _ = conn.disconnect().await;
    exists
}

/// Largest journal file read (25,000 databases started and finished are about 3 MB).
const MAX_JOURNAL: u64 = 64 << 20;

/// What a run has done so far, as its journal file holds it.
#[derive(Debug, Clone, Default)]
pub struct JournalState {
    /// When the run first started.
    pub started: Option<jiff::Timestamp>,
    /// Databases swapped in under their target names.
    pub done: std::collections::BTreeSet<String>,
    /// Databases started and not finished: the staging tag each was loading into.
    pub in_progress: std::collections::BTreeMap<String, String>,
}

/// One line of a journal file: the file is appended to, one line per step, so that a step
/// costs one short write however many databases the run has (rewriting the whole state at
/// each step made a 25,000-database run quadratic).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum JournalLine {
    /// The first line: when the run started.
    Run { started: jiff::Timestamp },
    /// A database starts loading into staging database `coffer_restore_<tag>`.
    Started { database: String, tag: String },
    /// A database was swapped in under its target name.
    Finished { database: String },
}

impl JournalState {
    fn apply(&mut self, line: JournalLine) {
        match line {
            JournalLine::Run { started } => self.started = Some(started),
            JournalLine::Started { database, tag } => {
                self.in_progress.insert(database, tag);
            }
            JournalLine::Finished { database } => {
                self.in_progress.remove(&database);
                self.done.insert(database);
            }
        }
    }

    /// The state a journal file's lines describe. A step counts only once its whole line,
    /// newline included, is in the file: a last line without one (the process was killed
    /// while appending it) is ignored, and the step it recorded is redone. Any other line
    /// that does not parse means the file is not a journal.
    fn read(bytes: &[u8]) -> std::result::Result<JournalState, serde_json::Error> {
        let mut state = JournalState::default();
        let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
        for line in bytes[..whole]
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
        {
            state.apply(serde_json::from_slice::<JournalLine>(line)?);
        }
        Ok(state)
    }
}

/// A run's journal in this host's state folder (`COFFER_STATE_DIR`, else
/// `$XDG_STATE_HOME/coffer`, else `~/.local/state/coffer`), named by the run's key: the same
/// restore repeated finds it.
pub struct FileJournal {
    path: std::path::PathBuf,
    state: std::sync::Mutex<JournalState>,
    file: std::sync::Mutex<std::fs::File>,
}

impl FileJournal {
    /// The journal of the run `key` (a hash of what the run restores where), with what an
    /// earlier, stopped run of it recorded.
    pub fn open(key: &str) -> Result<FileJournal> {
        use crate::error::Error;
        let dir = crate::repo::host_state::state_dir()
            .ok_or_else(|| {
                Error::invalid("this host has no state folder to keep the restore's progress in")
                    .with_hint("set COFFER_STATE_DIR to a folder this user may write")
            })?
            .join("restore-runs");
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::invalid(format!("creating {}", dir.display()))
                .with_source(e)
                .with_hint("set COFFER_STATE_DIR to a folder this user may write")
        })?;
        let path = dir.join(format!("{key}.jsonl"));
        let state = match std::fs::metadata(&path) {
            Err(_) => None,
            Ok(meta) if meta.len() > MAX_JOURNAL => {
                return Err(Error::invalid(format!(
                    "the restore journal {} is larger than any coffer writes",
                    path.display()
                ))
                .with_hint("delete it to start the restore from the beginning"));
            }
            Ok(_) => {
                let bytes = std::fs::read(&path).map_err(|e| {
                    Error::invalid(format!("reading {}", path.display())).with_source(e)
                })?;
                let state = JournalState::read(&bytes).map_err(|e| {
                    Error::invalid(format!("the restore journal {} is damaged", path.display()))
                        .with_source(e)
                        .with_hint("delete it to start the restore from the beginning")
                })?;
                // A line cut short by a kill is dropped, so the next one starts on its own.
                let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
                if whole < bytes.len() {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_len(whole as u64))
                        .map_err(|e| {
                            Error::invalid(format!("repairing {}", path.display())).with_source(e)
                        })?;
                }
                Some(state)
            }
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| {
                Error::invalid(format!("opening the restore journal {}", path.display()))
                    .with_source(e)
                    .with_hint("set COFFER_STATE_DIR to a folder this user may write")
            })?;
        let journal = FileJournal {
            path,
            state: std::sync::Mutex::new(state.clone().unwrap_or_default()),
            file: std::sync::Mutex::new(file),
        };
        match state {
            Some(state) if state.started.is_some() => {}
            // A new run (or one whose first line was cut short).
            _ => journal.append(JournalLine::Run {
                started: jiff::Timestamp::now(),
            })?,
        }
        Ok(journal)
    }

    /// What the journal holds now.
    pub fn state(&self) -> JournalState {
        self.state
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Forget the run (it completed).
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }

    /// Record one step: appended to the file (one write of one whole line), then applied.
    fn append(&self, line: JournalLine) -> Result<()> {
        use std::io::Write;
        let mut bytes = serde_json::to_vec(&line).map_err(|e| {
            crate::error::Error::invalid("encoding the restore journal").with_source(e)
        })?;
        bytes.push(b'\n');
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        file.write_all(&bytes).map_err(|e| {
            crate::error::Error::invalid(format!(
                "writing the restore journal {}",
                self.path.display()
            ))
            .with_source(e)
        })?;
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .apply(line);
        Ok(())
    }
}

impl EstateJournal for FileJournal {
    fn started(&self, database: &str, staging_tag: &str) -> Result<()> {
        self.append(JournalLine::Started {
            database: database.to_string(),
            tag: staging_tag.to_string(),
        })
    }

    fn finished(&self, database: &str) -> Result<()> {
        self.append(JournalLine::Finished {
            database: database.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(parts: &[&str]) -> Vec<u8> {
        parts
            .iter()
            .flat_map(|p| format!("{p}\n").into_bytes())
            .collect()
    }

    #[test]
    fn a_journal_replays_its_steps() {
        let bytes = lines(&[
            r#"{"run":{"started":"2026-12-03T10:00:00Z"}}"#,
            r#"{"started":{"database":"a","tag":"t1"}}"#,
            r#"{"started":{"database":"b","tag":"t2"}}"#,
            r#"{"finished":{"database":"a"}}"#,
        ]);
        let state = JournalState::read(&bytes).unwrap();
        assert!(state.started.is_some());
        assert_eq!(state.done.iter().collect::<Vec<_>>(), ["a"]);
        assert_eq!(
            state.in_progress.iter().collect::<Vec<_>>(),
            [(&"b".to_string(), &"t2".to_string())]
        );
    }

    /// A process killed while appending leaves a cut last line: the step it recorded is
    /// taken as not done (the database is redone), never as done.
    #[test]
    fn a_cut_last_line_is_a_step_not_taken() {
        let mut bytes = lines(&[
            r#"{"run":{"started":"2026-12-03T10:00:00Z"}}"#,
            r#"{"started":{"database":"a","tag":"t1"}}"#,
        ]);
        bytes.extend_from_slice(br#"{"finished":{"datab"#);
        let state = JournalState::read(&bytes).unwrap();
        assert!(state.done.is_empty());
        assert!(state.in_progress.contains_key("a"));
        // The same cut in the middle is damage, not a kill.
        let mut middle = lines(&[r#"{"run":{"started":"2026-12-03T10:00:00Z"}}"#]);
        middle.extend_from_slice(b"{\"finished\":{\"datab\n");
        middle.extend(lines(&[r#"{"finished":{"database":"a"}}"#]));
        assert!(JournalState::read(&middle).is_err());
    }

    /// A journal cut at every byte (a kill at any point) reads, and holds as done only the
    /// databases whose whole line, newline included, was written.
    #[test]
    fn a_journal_cut_anywhere_claims_no_unwritten_step() {
        let bytes = lines(&[
            r#"{"run":{"started":"2026-12-03T10:00:00Z"}}"#,
            r#"{"started":{"database":"a","tag":"t1"}}"#,
            r#"{"finished":{"database":"a"}}"#,
            r#"{"started":{"database":"b","tag":"t2"}}"#,
            r#"{"finished":{"database":"b"}}"#,
        ]);
        for cut in 0..=bytes.len() {
            let state = JournalState::read(&bytes[..cut]).unwrap();
            let whole_lines = bytes[..cut].iter().filter(|b| **b == b'\n').count();
            assert_eq!(
                state.done.len(),
                [0, 0, 0, 1, 1, 2][whole_lines],
                "cut at {cut}"
            );
        }
    }

    proptest::proptest! {
        /// Any bytes are read or refused, never a panic.
        #[test]
        fn any_bytes_are_read_or_refused(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = JournalState::read(&bytes);
        }
    }
}
