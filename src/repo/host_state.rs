//! What this host remembers of each repository it opened, in a small file of its own (not in
//! the storage, which is untrusted): which key slot opened it, so the next open tries that
//! slot first and planted slots cost nothing in the common case; and the newest snapshot it
//! has seen, so that whoever can delete objects cannot roll the repository back unnoticed (a
//! deleted newest snapshot is what rollback looks like: retention always keeps the newest).
//!
//! The folder is `COFFER_STATE_DIR`, else `$XDG_STATE_HOME/coffer`, else
//! `~/.local/state/coffer`; one file per repository location. Losing it costs only the order
//! in which slots are tried. Writing it is best effort: a read-only home must not fail a backup.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Largest state file read (real ones are a few hundred bytes).
const MAX_STATE_FILE: u64 = 64 << 10;

/// This host's record of one repository.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostState {
    /// The id of the repository last opened at this location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_id: Option<String>,
    /// The key slot that opened it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_slot: Option<String>,
    /// The newest snapshot this host has seen in the repository (by the store's time of its
    /// object): it only moves forward, and this host's own `forget` is the one thing that may
    /// remove it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_snapshot: Option<SeenSnapshot>,
    /// Set when that snapshot went missing: the repository went backwards. Every command warns
    /// until an operator accepts it (`coffer check --accept-rollback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<String>,
}

/// A snapshot as a listing shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SeenSnapshot {
    /// The snapshot's object name (`snapshots/<hex>`).
    pub name: String,
    /// The store's time of the object.
    pub stored_at: jiff::Timestamp,
}

impl HostState {
    /// Compare the snapshots listed now with the newest this host saw: if that one is gone,
    /// record the rollback (kept until accepted); then move the mark to the newest listed.
    pub fn observe_snapshots(&mut self, listed: &[crate::storage::ObjectMeta]) {
        if let Some(seen) = &self.newest_snapshot
            && self.rolled_back.is_none()
            && !listed.iter().any(|m| m.name == seen.name)
        {
            self.rolled_back = Some(format!(
                "snapshot {} (stored {}), the newest this host had seen, is gone",
                seen.name.trim_start_matches("snapshots/"),
                seen.stored_at
            ));
        }
        if self.rolled_back.is_some() {
            return;
        }
        let newest = listed
            .iter()
            .filter_map(|m| Some((m.modified?, &m.name)))
            .max();
        if let Some((stored_at, name)) = newest
            && self
                .newest_snapshot
                .as_ref()
                .is_none_or(|seen| stored_at >= seen.stored_at)
        {
            self.newest_snapshot = Some(SeenSnapshot {
                name: name.clone(),
                stored_at,
            });
        }
    }

    /// After this host's own `forget` (which may remove the newest), or an operator's
    /// acceptance of a rollback: the newest listed now is the mark.
    pub fn reset_snapshots(&mut self, listed: &[crate::storage::ObjectMeta]) {
        self.newest_snapshot = None;
        self.rolled_back = None;
        self.observe_snapshots(listed);
    }
}

/// The folder state files live in, if this host has one.
pub(crate) fn state_dir() -> Option<PathBuf> {
    std::env::var_os("COFFER_STATE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_STATE_HOME").map(|d| PathBuf::from(d).join("coffer")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state/coffer")))
}

/// The state file of the repository at `location`.
fn state_file(location: &str) -> Option<PathBuf> {
    let name = blake3::hash(location.as_bytes()).to_hex();
    Some(state_dir()?.join(format!("{}.json", &name[..32])))
}

impl HostState {
    /// What this host recorded for `location` (empty when nothing is, or the file is unreadable).
    pub fn load(location: &str) -> HostState {
        let Some(path) = state_file(location) else {
            return HostState::default();
        };
        let too_large = std::fs::metadata(&path).is_ok_and(|m| m.len() > MAX_STATE_FILE);
        if too_large {
            return HostState::default();
        }
        std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Record this state for `location`; a failure is logged, never fatal.
    pub fn save(&self, location: &str) {
        let Some(path) = state_file(location) else {
            return;
        };
        let result = (|| -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
            let temporary = path.with_extension("json.tmp");
            std::fs::write(&temporary, json)?;
            std::fs::rename(&temporary, &path)
        })();
        if let Err(e) = result {
            tracing::debug!("this host's record of {location} was not saved: {e}");
        }
    }
}
