//! Run markers (`runs/<id>`): how a prune learns which writers may still rely on an index they
//! loaded earlier.
//!
//! A backup writes its marker *before* it loads the index and names the run in its snapshot.
//! Until a snapshot names the run, or the run's lease has run out by the store's clock, a prune
//! keeps every pack it condemned after the marker was written (docs/FORMAT.md, "Prune"). The
//! writer holds itself to the same lease by its own clock: a run that outlived it refuses to
//! write a snapshot, because a prune may have declared it abandoned and deleted what it
//! deduplicated against.

use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::ids::short_text;
use super::{MAX_SMALL_OBJECT, Repository, paths};
use crate::crypto::{Role, pack_body, unpack_body};
use crate::error::{Error, ErrorKind, Result};
use crate::storage::{ObjectMeta, PutOutcome};

/// How long a backup may run before a prune may take it for abandoned: twice the 12-hour window
/// a backup must fit in, short enough that a host that died mid-run holds sweeps back for at
/// most a day.
pub const DEFAULT_RUN_LEASE: Duration = Duration::from_secs(24 * 3600);

/// Part of the lease a run keeps in reserve: it stops referring to deduplicated blobs this long
/// before its lease ends, covering the time between its check and its snapshot being stored.
const LEASE_RESERVE_SHARE: u32 = 10;

/// The stored marker (JSON, compressed and sealed with [`Role::RunMarker`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunMarker {
    pub version: u32,
    pub id: String,
    /// `backup` or `prune`.
    pub command: String,
    pub host: String,
    pub pid: u32,
    /// The host's clock at the start; informational only (prune uses the store's clock).
    pub started: jiff::Timestamp,
    pub lease_secs: u64,
}

/// A run this process holds a marker for.
#[derive(Debug)]
pub struct ActiveRun {
    pub id: String,
    name: String,
    /// Taken before the marker was written, so elapsed time is never underestimated.
    started_mono: Instant,
    started_wall: SystemTime,
    lease: Duration,
}

/// A marker found in the repository, with the store's time for it.
#[derive(Debug)]
pub struct ListedRun {
    pub id: String,
    pub name: String,
    pub modified: Option<jiff::Timestamp>,
    /// The marker's content; an error when it could not be read or authenticated.
    pub marker: std::result::Result<RunMarker, String>,
}

impl ListedRun {
    /// The run's lease; an unreadable marker gets the default one.
    pub fn lease(&self) -> Duration {
        self.marker
            .as_ref()
            .map_or(DEFAULT_RUN_LEASE, |m| Duration::from_secs(m.lease_secs))
    }

    /// Who wrote the marker, for messages.
    pub fn describe(&self) -> String {
        match &self.marker {
            Ok(m) => format!(
                "{} run {} on {} (pid {})",
                m.command,
                short_text(&m.id),
                m.host,
                m.pid
            ),
            Err(e) => format!("run {} (marker unreadable: {e})", short_text(&self.id)),
        }
    }
}

/// `48h`, `3h 12m 5s`.
pub(crate) fn friendly(duration: Duration) -> String {
    let whole = Duration::from_secs(duration.as_secs());
    jiff::SignedDuration::try_from(whole)
        .map(|d| format!("{d:#}"))
        .unwrap_or_else(|_| format!("{}s", whole.as_secs()))
}

impl ActiveRun {
    /// Fail unless the run is still inside its lease by this host's clock (the longer of the
    /// monotonic and the wall-clock reading, so neither a suspended host nor a clock step
    /// makes the run look younger than it is).
    pub fn check_lease(&self) -> Result<()> {
        let mono = self.started_mono.elapsed();
        let wall = SystemTime::now()
            .duration_since(self.started_wall)
            .unwrap_or(Duration::ZERO);
        let elapsed = mono.max(wall);
        let usable = self.lease - self.lease / LEASE_RESERVE_SHARE;
        if elapsed >= usable {
            return Err(Error::new(
                ErrorKind::Storage,
                format!(
                    "this run took {}, past its lease of {} (less a reserve of a tenth): a prune may \
                     have taken it for abandoned and removed data it deduplicated against",
                    friendly(elapsed),
                    friendly(self.lease)
                ),
            )
            .with_hint("run the backup again; the data this run stored is left for prune"));
        }
        Ok(())
    }

    /// The marker's object name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Repository {
    /// Remove the marker of a run that is over (its snapshot is stored, or it will write
    /// none). Best effort: a host without delete rights leaves it, and a later `forget` or
    /// prune removes it once a snapshot names the run or its lease has ended.
    pub async fn end_run(&self, run: ActiveRun) {
        self.remove_run_marker(&run.id).await;
    }

    /// Remove the marker of run `id` if it is there (best effort, as [`Repository::end_run`]).
    pub async fn remove_run_marker(&self, id: &str) {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return;
        }
        let name = format!("{}{id}", paths::RUNS);
        if let Err(e) = self.storage().delete(&name).await {
            tracing::debug!(marker = %name, "run marker left for prune: {e}");
        }
    }
}

impl Repository {
    /// Write a marker for a run of `command` that will finish within `lease`.
    pub async fn begin_run(&self, command: &str, lease: Duration) -> Result<ActiveRun> {
        let started_mono = Instant::now();
        let started_wall = SystemTime::now();
        let mut raw = [0u8; 16];
        crate::crypto::fill_random(&mut raw)?;
        let id = hex::encode(raw);
        let marker = RunMarker {
            version: 1,
            id: id.clone(),
            command: command.to_string(),
            host: crate::hostname(),
            pid: std::process::id(),
            started: jiff::Timestamp::now(),
            lease_secs: lease.as_secs(),
        };
        let json = serde_json::to_vec(&marker)
            .map_err(|e| Error::invalid("encoding run marker").with_source(e))?;
        let sealed = pack_body(self.keys(), Role::RunMarker, &json)?;
        let name = format!("{}{id}", paths::RUNS);
        if self.storage().put_if_absent(&name, &sealed).await? == PutOutcome::AlreadyExists {
            return Err(Error::invalid(format!("run marker {name} exists already")));
        }
        Ok(ActiveRun {
            id,
            name,
            started_mono,
            started_wall,
            lease,
        })
    }

    /// Every run marker, with the store's time for it.
    pub async fn list_runs(&self) -> Result<Vec<ListedRun>> {
        let mut out = Vec::new();
        for meta in self.storage().list(paths::RUNS).await? {
            let ObjectMeta { name, modified, .. } = meta;
            let id = name.trim_start_matches(paths::RUNS).to_string();
            let marker = match self.read_run_marker(&name).await {
                Ok(m) => Ok(m),
                // Removed since the listing: the run is over.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) if e.kind() == ErrorKind::Storage => return Err(e),
                Err(e) => Err(e.to_string()),
            };
            out.push(ListedRun {
                id,
                name,
                modified,
                marker,
            });
        }
        Ok(out)
    }

    async fn read_run_marker(&self, name: &str) -> Result<RunMarker> {
        let sealed = self.storage().get(name, MAX_SMALL_OBJECT).await?;
        let json = unpack_body(self.keys(), Role::RunMarker, &sealed, 1 << 16, &name)?;
        serde_json::from_slice(&json)
            .map_err(|e| Error::corrupt(format!("{name} is not a valid run marker")).with_source(e))
    }
}
