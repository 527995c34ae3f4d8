//! Point-in-time recovery: the archived binary log (`coffer log`), what it holds, and (next)
//! replaying it onto a restored database.
//!
//! [`archive`] stores the log in segments (`crate::repo::log_segments` owns their format);
//! [`coverage`] says which moments the archive can reach and where it has gaps.

pub mod archive;
pub mod coverage;
