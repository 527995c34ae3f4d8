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
use crate::repo::snapshot::Snapshot;
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
    /// After `database` failed (it is redone by a repeated run).
    fn failed(&self, _database: &str) {}
}

/// Restore `databases` onto `target`; returns each one's outcome, in the order they finished.
#[allow(clippy::too_many_arguments)]
pub async fn restore_estate(
    repo: Arc<Repository>,
    index: Arc<Index>,
    snapshots: &std::collections::HashMap<SnapshotId, Snapshot>,
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
                    Err(e) => {
                        journal.failed(&database.source);
                        DatabaseOutcome::Failed {
                            target_exists: e.kind() == crate::error::ErrorKind::AlreadyExists,
                            error: match e.hint() {
                                Some(hint) => format!("{e} (hint: {hint})"),
                                None => e.to_string(),
                            },
                        }
                    }
                };
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
    snapshots: &std::collections::HashMap<SnapshotId, Snapshot>,
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
    let plan = RestorePlan::load(
        &repo,
        &index,
        snapshot,
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

/// Largest journal file read (25,000 database names and tags are about 1.5 MB).
const MAX_JOURNAL: u64 = 64 << 20;

/// What a run has done so far, as its journal file holds it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct JournalState {
    /// When the run first started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<jiff::Timestamp>,
    /// Databases swapped in under their target names.
    pub done: std::collections::BTreeSet<String>,
    /// Databases started and not finished: the staging tag each was loading into.
    pub in_progress: std::collections::BTreeMap<String, String>,
}

/// A run's journal in this host's state folder (`COFFER_STATE_DIR`, else
/// `$XDG_STATE_HOME/coffer`, else `~/.local/state/coffer`), named by the run's key: the same
/// restore repeated finds it.
pub struct FileJournal {
    path: std::path::PathBuf,
    state: std::sync::Mutex<JournalState>,
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
        let path = dir.join(format!("{key}.json"));
        let state = match std::fs::metadata(&path) {
            Err(_) => JournalState {
                started: Some(jiff::Timestamp::now()),
                ..JournalState::default()
            },
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
                serde_json::from_slice(&bytes).map_err(|e| {
                    Error::invalid(format!("the restore journal {} is damaged", path.display()))
                        .with_source(e)
                        .with_hint("delete it to start the restore from the beginning")
                })?
            }
        };
        Ok(FileJournal {
            path,
            state: std::sync::Mutex::new(state),
        })
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

    fn update(&self, change: impl FnOnce(&mut JournalState)) -> Result<()> {
        use crate::error::Error;
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        change(&mut state);
        let json = serde_json::to_vec(&*state)
            .map_err(|e| Error::invalid("encoding the restore journal").with_source(e))?;
        let temporary = self.path.with_extension("json.tmp");
        std::fs::write(&temporary, json)
            .and_then(|()| std::fs::rename(&temporary, &self.path))
            .map_err(|e| {
                Error::invalid(format!(
                    "writing the restore journal {}",
                    self.path.display()
                ))
                .with_source(e)
            })
    }
}

impl EstateJournal for FileJournal {
    fn started(&self, database: &str, staging_tag: &str) -> Result<()> {
        self.update(|s| {
            s.in_progress
                .insert(database.to_string(), staging_tag.to_string());
        })
    }

    fn finished(&self, database: &str) -> Result<()> {
        self.update(|s| {
            s.in_progress.remove(database);
            s.done.insert(database.to_string());
        })
    }
}
