//! Binary-log segments (`logs/<stream>/<seq>-<hash>`): the descriptors of the archived binary
//! log, what point-in-time recovery replays (docs/FORMAT.md, "Binary-log segments").
//!
//! A segment is a run of complete transactions from one binary-log file of one server, stored
//! as data blobs (a binary-log file's bytes: the magic, the file's format description, the
//! events). Its descriptor, sealed with the metadata key so that a write-only follower can
//! read where it stopped, says which server and file, which positions and times, which GTIDs,
//! which databases and tables the transactions touched, and which blobs hold it. A *stream* is
//! one server identity as one server name (its `host:port`) reached it; its segments are
//! numbered from 1 in log order. A segment may record the gap before it: log that was never
//! archived (purged first, or a failover to another server).

use std::collections::{BTreeMap, BTreeSet};

use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use super::ids::{BlobId, storage_hash};
use super::{MAX_METADATA_LEN, MAX_METADATA_OBJECT, Repository, paths};
use crate::crypto::{Role, pack_body, unpack_body};
use crate::error::{Error, Result};
use crate::storage::PutOutcome;

/// The stored descriptor of one segment (JSON, compressed and sealed with
/// [`Role::LogSegment`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogSegment {
    pub version: u32,
    /// The server as the follower reached it (`host:port` or the socket path; never
    /// credentials).
    pub server: String,
    /// `server_uuid:…` (MySQL) or `server_id:…` (MariaDB), as snapshots record it.
    pub identity: String,
    pub server_version: String,
    /// The stream (32 hex digits) and this segment's number in it (from 1).
    pub stream: String,
    pub seq: u64,
    /// The binary-log file and the positions the segment's transactions span: from where the
    /// first starts to where the last ends (the position a reader resumes from).
    pub file: String,
    pub start: u64,
    pub end: u64,
    /// The earliest and latest event time in it (the log's resolution: seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_time: Option<jiff::Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_time: Option<jiff::Timestamp>,
    /// The first and last GTID, when the log has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_gtid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_gtid: Option<String>,
    pub transactions: u64,
    pub events: u64,
    /// Bytes of the segment as a binary-log file (magic and format description included).
    pub bytes: u64,
    /// Tables written by row events, by database.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tables: BTreeMap<String, BTreeSet<String>>,
    /// Databases any of whose tables a statement may have changed (DDL, statement-format DML).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub whole_databases: BTreeSet<String>,
    /// Why every database counts as touched, if an event could not be attributed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<String>,
    /// The segment's content, in order (data blobs).
    pub blobs: Vec<BlobId>,
    /// The run marker the follower held while storing it (prune keeps its packs until a
    /// descriptor names the run, as a snapshot does).
    pub run: String,
    /// Log that is not in the archive right before this segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap_before: Option<LogGap>,
    /// When the follower stored it (its host's clock).
    pub archived_at: jiff::Timestamp,
    /// Whether the follower had read to the end of the server's log when it stored it: then
    /// everything logged before `archived_at` is archived (up to the segment's end).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub caught_up: bool,
    /// The key slot the follower wrote with, and whether it was write-only.
    pub slot: String,
    pub write_only: bool,
}

/// Binary log that is not in the archive.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogGap {
    /// The end of the archive before the gap: its stream, segment, position and last time
    /// (none when the gap begins before anything was archived).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_stream: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_position: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_time: Option<jiff::Timestamp>,
    /// Where the archive resumed.
    pub resumed_file: String,
    pub resumed_position: u64,
    pub reason: String,
}

impl LogSegment {
    /// Whether a transaction in this segment may have touched `database` (`fold_case`: the
    /// server compares names case-insensitively).
    pub fn touches(&self, database: &str) -> bool {
        self.all.is_some()
            || self.tables.contains_key(database)
            || self.whole_databases.contains(database)
            || self
                .tables
                .keys()
                .chain(&self.whole_databases)
                .any(|name| name.eq_ignore_ascii_case(database))
    }
}

/// A descriptor as listed: its name, stream and number, before it is read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListedSegment {
    pub stream: String,
    pub seq: u64,
    pub name: String,
}

/// Segment numbers are written with this many digits, so names sort in log order.
const SEQ_DIGITS: usize = 16;

/// Descriptors read at once.
const READS_IN_FLIGHT: usize = 16;

/// `logs/<stream>/<seq>-<hash>` parsed; `None` for anything else (ignored, as other
/// folders' stray objects are).
fn parse_name(name: &str) -> Option<ListedSegment> {
    let rest = name.strip_prefix(paths::LOGS)?;
    let (stream, file) = rest.split_once('/')?;
    let (seq, hash) = file.split_once('-')?;
    let valid_stream = stream.len() == 32 && stream.bytes().all(|b| b.is_ascii_hexdigit());
    let valid_hash = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid_stream || !valid_hash || seq.len() != SEQ_DIGITS {
        return None;
    }
    Some(ListedSegment {
        stream: stream.to_string(),
        seq: seq.parse().ok()?,
        name: name.to_string(),
    })
}

impl Repository {
    /// The stream id of `server` as `identity` (keyed, so names reveal neither).
    pub fn log_stream_id(&self, server: &str, identity: &str) -> String {
        let mut message = b"coffer log stream\0".to_vec();
        message.extend_from_slice(server.as_bytes());
        message.push(0);
        message.extend_from_slice(identity.as_bytes());
        hex::encode(&self.keys().content_id(&message)[..16])
    }

    /// Store `segment`, marked with the slot that writes it. Its name holds its stream and
    /// number, so a second segment with the same number (two followers of one server) is
    /// stored beside it and both are reported by [`Repository::log_segments`].
    pub async fn save_log_segment(&self, segment: &LogSegment) -> Result<String> {
        let mut segment = segment.clone();
        segment.slot = self.opened_slot().to_string();
        segment.write_only = self.is_write_only();
        let json = serde_json::to_vec(&segment)
            .map_err(|e| Error::invalid("encoding a log segment").with_source(e))?;
        let sealed = pack_body(self.keys(), Role::LogSegment, &json)?;
        let name = format!(
            "{}{}/{:0width$}-{}",
            paths::LOGS,
            segment.stream,
            segment.seq,
            hex::encode(storage_hash(&sealed)),
            width = SEQ_DIGITS
        );
        match self.storage().put_if_absent(&name, &sealed).await? {
            PutOutcome::Created | PutOutcome::AlreadyExists => Ok(name),
        }
    }

    /// Every segment descriptor's name, in stream and log order.
    pub async fn list_log_segments(&self) -> Result<Vec<ListedSegment>> {
        let mut listed: Vec<ListedSegment> = self
            .storage()
            .list(paths::LOGS)
            .await?
            .into_iter()
            .filter_map(|meta| parse_name(&meta.name))
            .collect();
        listed.sort();
        Ok(listed)
    }

    /// Read one descriptor, checked against its name (hash, stream and number).
    pub async fn read_log_segment(&self, listed: &ListedSegment) -> Result<LogSegment> {
        let name = &listed.name;
        let sealed = self.storage().get(name, MAX_METADATA_OBJECT).await?;
        let hash = name.rsplit('-').next().unwrap_or_default();
        if hex::encode(storage_hash(&sealed)) != hash.to_ascii_lowercase() {
            return Err(
                Error::corrupt(format!("{name} does not match its name (damaged object)"))
                    .with_hint("run `coffer check`"),
            );
        }
        let json = unpack_body(
            self.keys(),
            Role::LogSegment,
            &sealed,
            MAX_METADATA_LEN,
            name,
        )?;
        let segment: LogSegment = serde_json::from_slice(&json).map_err(|e| {
            Error::corrupt(format!("{name} is not a valid log segment")).with_source(e)
        })?;
        if segment.stream != listed.stream || segment.seq != listed.seq {
            return Err(Error::corrupt(format!(
                "{name} describes segment {} of stream {}, not the one its name gives",
                segment.seq, segment.stream
            )));
        }
        Ok(segment)
    }

    /// Read the descriptors `listed` names, sixteen at a time, in the order given.
    pub async fn read_log_segments(&self, listed: &[ListedSegment]) -> Result<Vec<LogSegment>> {
        let results: Vec<Result<LogSegment>> = stream::iter(listed)
            .map(|l| self.read_log_segment(l))
            .buffered(READS_IN_FLIGHT)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Every segment descriptor, in stream and log order.
    pub async fn log_segments(&self) -> Result<Vec<LogSegment>> {
        let listed = self.list_log_segments().await?;
        self.read_log_segments(&listed).await
    }

    /// The newest segment of every stream of `server` (the head a follower resumes after):
    /// one descriptor read per stream.
    pub async fn log_heads(&self, server: &str) -> Result<Vec<LogSegment>> {
        let listed = self.list_log_segments().await?;
        let mut heads: BTreeMap<&str, &ListedSegment> = BTreeMap::new();
        for l in &listed {
            heads.insert(&l.stream, l);
        }
        let heads: Vec<ListedSegment> = heads.into_values().cloned().collect();
        let mut out = Vec::new();
        for segment in self.read_log_segments(&heads).await? {
            if segment.server == server {
                out.push(segment);
            }
        }
        Ok(out)
    }

    /// Remove a segment descriptor (its data stays for prune to judge).
    pub async fn remove_log_segment(&self, name: &str) -> Result<()> {
        self.require_full_key()?;
        if parse_name(name).is_none() {
            return Err(Error::invalid(format!(
                "{name:?} is not a log segment's name"
            )));
        }
        self.storage().delete(name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_parsed_strictly() {
        let hash = "a".repeat(64);
        let stream = "0123456789abcdef0123456789abcdef";
        let good = format!("logs/{stream}/{:016}-{hash}", 42);
        let parsed = parse_name(&good).unwrap();
        assert_eq!((parsed.stream.as_str(), parsed.seq), (stream, 42));
        for bad in [
            format!("logs/{stream}/{:015}-{hash}", 42),
            format!("logs/{stream}/{:016}-{}", 42, "a".repeat(63)),
            format!("logs/abc/{:016}-{hash}", 42),
            format!("snapshots/{stream}/{:016}-{hash}", 42),
            format!("logs/{stream}/{:016}", 42),
        ] {
            assert!(parse_name(&bad).is_none(), "{bad}");
        }
    }
}
