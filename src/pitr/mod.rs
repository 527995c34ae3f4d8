//! Point-in-time recovery: the archived binary log (`coffer log`), what it holds, and replaying
//! it onto a restored database (`restore --at`).
//!
//! [`archive`] stores the log in segments (`crate::repo::log_segments` owns their format);
//! [`coverage`] says which moments the archive can reach and where it has gaps; [`replay`]
//! applies it to one database's staging copy.

pub mod archive;
pub mod coverage;
pub mod events;
pub mod replay;
pub mod retention;
pub(crate) mod row_filter;
pub mod show;
pub mod undo;
