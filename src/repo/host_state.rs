//! What this host remembers of each repository it opened, in a small file of its own (not in
//! the storage, which is untrusted): which key slot opened it, so the next open tries that
//! slot first and planted slots cost nothing in the common case.
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
}

/// The folder state files live in, if this host has one.
fn state_dir() -> Option<PathBuf> {
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
