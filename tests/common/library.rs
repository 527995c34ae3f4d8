//! Helpers that drive coffer through its library rather than its binary, for tests that wrap
//! the storage (fault injection, traffic counting) or inspect results directly.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use coffer::backup::{BackupObserver, BackupOptions, DatabaseOutcome, LiveCounters, run_backup};
use coffer::crypto::keys::{KdfCost, PassphraseProvider};
use coffer::repo::Repository;
use coffer::repo::ids::SnapshotId;
use coffer::repo::index::Index;
use coffer::repo::snapshot::Snapshot;
use coffer::restore::server::{ServerRestoreOptions, restore_to_server};
use coffer::restore::{RestoreOptions, RestorePlan};
use coffer::source::mysql::MysqlTarget;

use super::{MariaDb, PASSWORD};

/// Ignores progress.
pub struct Quiet;

impl BackupObserver for Quiet {
    fn planned(&self, _: usize, _: u64) {}
    fn database_done(&self, _: &str, _: &DatabaseOutcome, _: Duration) {}
}

/// The test passphrase with cheap key derivation.
pub fn provider() -> PassphraseProvider {
    PassphraseProvider::new(zeroize::Zeroizing::new(PASSWORD.to_string()))
        .expect("passphrase")
        .with_cost(KdfCost {
            memory_kib: 1024,
            iterations: 1,
        })
}

pub fn socket_target(server: &MariaDb) -> MysqlTarget {
    MysqlTarget::parse(&server.socket_url()).expect("target")
}

/// Backup options selecting the databases that match `include`, three at a time.
pub fn options(include: &str) -> BackupOptions {
    BackupOptions {
        include: vec![glob::Pattern::new(include).expect("glob")],
        jobs: 3,
        ..Default::default()
    }
}

/// Back up the databases matching `include` through the library, without progress output.
pub async fn backup(
    repo: &Arc<Repository>,
    server: &MariaDb,
    include: &str,
) -> coffer::Result<coffer::backup::BackupReport> {
    let counters = Arc::new(LiveCounters::default());
    run_backup(
        repo.clone(),
        &socket_target(server),
        &options(include),
        Arc::new(Quiet),
        counters,
    )
    .await
}

/// Restore `db` of a loaded snapshot as `into` through the library.
pub async fn restore_into(
    repo: &Arc<Repository>,
    index: Arc<Index>,
    (id, snapshot): (&SnapshotId, &Snapshot),
    server: &MariaDb,
    db: &str,
    into: &str,
) -> coffer::Result<()> {
    let options = RestoreOptions {
        into: Some(into.to_string()),
        ..RestoreOptions::default()
    };
    let plan = RestorePlan::load(repo, &index, snapshot, &id.short(), db, &options).await?;
    let opts = ServerRestoreOptions {
        drop_existing: false,
        jobs: 2,
        replay: None,
        staging_tag: None,
    };
    let done = Arc::new(AtomicU64::new(0));
    restore_to_server(
        repo.clone(),
        index,
        Arc::new(plan),
        &socket_target(server),
        &opts,
        done,
    )
    .await?;
    Ok(())
}
