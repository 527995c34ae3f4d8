//! coffer: encrypted, deduplicated, parallel backups of MySQL servers with thousands of
//! databases, and restores of one database, table or set of rows in seconds.
//!
//! Layers, dependencies pointing down (see docs/ARCHITECTURE.md):
//! - [`backup`], [`restore`], [`check`], [`repair`], [`stats`], [`pitr`] (the archived binary
//!   log): the operations, driven by the CLI; [`retention`] decides what `forget` keeps; [`timespec`] reads times and durations.
//! - [`source`]: MySQL/MariaDB access (dump, catalog, connections).
//! - [`repo`]: the repository format (packs, index, trees, snapshots); [`chunker`].
//! - [`crypto`]: keys and sealing; [`storage`]: backends that move opaque bytes.

pub mod backup;
pub mod check;
pub mod chunker;
pub mod crypto;
pub mod doctor;
pub mod error;
pub mod pitr;
pub mod prune;
pub mod repair;
pub mod repo;
pub mod report;
pub mod restore;
pub mod retention;
pub mod sla;
pub mod source;
pub mod sql;
pub mod stats;
pub mod storage;
pub mod timespec;

pub use error::{Error, ErrorKind, Result};

/// This machine's host name, recorded in snapshots and key slots.
pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}
