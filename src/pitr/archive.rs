//! The binary-log archive: `coffer log sync` (once, up to the current end of the log) and
//! `coffer log follow` (as a replica, until stopped), storing the log in segments.
//!
//! Rules the archive keeps (each with the test that shows it):
//! - **Cut only between transactions**, so a segment replays alone and its end is a position a
//!   reader can resume from ([`crate::source::mysql::binlog`]; `log_archive::the_archive_holds_every_transaction_once`).
//! - **Resume from the newest stored segment of the same server**; nothing is archived twice
//!   and nothing is skipped (`log_archive::a_follower_killed_at_random_points_loses_and_repeats_nothing`).
//! - **A gap is recorded, never papered over**: log purged before it was archived, or a server
//!   with another identity behind the same name (a failover), starts the next segment with a
//!   [`LogGap`] naming the end of the archive before it and why
//!   (`log_archive::purged_log_and_another_server_are_recorded_as_gaps`).
//! - **Write-only keys suffice**: descriptors are metadata (readable with the metadata key), the
//!   segment's bytes are sealed to the repository's public key
//!   (`log_archive::a_write_only_key_archives_the_log`).
//! - **Prune keeps what a follower stores**: each segment is stored under a run marker, and its
//!   descriptor names the run, as a snapshot does (`crate::prune`).
//! - **Memory is bounded** by the segment size plus the largest single transaction, which is
//!   held whole until it ends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::chunker::{RowChunker, gear_table};
use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::repo::ids::BlobId;
use crate::repo::index::Index;
use crate::repo::log_segments::{LogGap, LogSegment};
use crate::repo::pack::BlobKind;
use crate::repo::writer::BlobStore;
use crate::source::mysql::MysqlTarget;
use crate::source::mysql::binlog::{
    BINLOG_MAGIC, LogItem, LogReader, LoggedTransaction, binary_log_files, file_order,
};
use crate::source::mysql::catalog::{self, ServerLog};
use crate::source::mysql::changes::Changes;

/// How segments are cut, and how the follower registers.
#[derive(Debug, Clone)]
pub struct ArchiveOptions {
    /// Cut a segment once it holds this many bytes (at the next transaction's end).
    pub segment_bytes: u64,
    /// Cut a segment once its first transaction is this old (by this host's clock), even when
    /// nothing more arrives: the archive's recovery point.
    pub segment_age: Duration,
    /// The replica id the follower registers with (must differ from every real replica's).
    pub server_id: u32,
    /// How long storing one segment may take before a prune may take it for abandoned.
    pub run_lease: Duration,
    /// While the server writes nothing, store an empty segment this often, so the archive's
    /// recovery point shows it is current.
    pub checkpoint_every: Duration,
}

impl Default for ArchiveOptions {
    fn default() -> Self {
        ArchiveOptions {
            segment_bytes: 16 << 20,
            segment_age: Duration::from_secs(60),
            server_id: 0x0c0f_fe42,
            run_lease: Duration::from_secs(3600),
            checkpoint_every: Duration::from_secs(15 * 60),
        }
    }
}

/// What a sync (or a follower so far) archived.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ArchiveReport {
    pub segments: u64,
    pub transactions: u64,
    pub bytes: u64,
    /// Gaps recorded by this run.
    pub gaps: Vec<LogGap>,
    /// Where the archive ends now.
    pub file: String,
    pub position: u64,
    /// The newest event time archived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_time: Option<jiff::Timestamp>,
}

/// Where the archive of a server continues, and what lies before it.
#[derive(Debug)]
struct Resume {
    stream: String,
    next_seq: u64,
    file: String,
    position: u64,
    gap: Option<LogGap>,
    /// When the segment it continues was stored, and whether it was caught up then.
    head_archived_at: Option<jiff::Timestamp>,
    head_caught_up: bool,
}

/// Decide where to start reading (rules "resume" and "gap" of the module doc).
async fn resume_point(
    repo: &Repository,
    target: &MysqlTarget,
    server: &str,
    log: &ServerLog,
) -> Result<Resume> {
    let stream = repo.log_stream_id(server, &log.identity);
    let heads = repo.log_heads(server).await?;
    let files = binary_log_files(target).await?;
    let now_at = current_position(target).await?;
    let own = heads.iter().find(|h| h.stream == stream);
    let newest_other = heads
        .iter()
        .filter(|h| h.stream != stream)
        .max_by_key(|h| h.archived_at);
    let gap_after = |head: &LogSegment, file: &str, position: u64, reason: String| LogGap {
        after_stream: Some(head.stream.clone()),
        after_seq: Some(head.seq),
        after_file: Some(head.file.clone()),
        after_position: Some(head.end),
        after_time: head.last_time.or(head.first_time),
        resumed_file: file.to_string(),
        resumed_position: position,
        reason,
    };
    match own {
        Some(head) if files.iter().any(|f| f == &head.file) => Ok(Resume {
            stream,
            next_seq: head.seq + 1,
            file: head.file.clone(),
            position: head.end,
            gap: None,
            head_archived_at: Some(head.archived_at),
            head_caught_up: head.caught_up,
        }),
        Some(head) => {
            // The file the archive ends in is gone: go on from the oldest file still there
            // (every later one is whole), and say what was lost.
            let oldest = files
                .iter()
                .filter(|f| file_order(f, &head.file).is_gt())
                .min_by(|a, b| file_order(a, b))
                .cloned()
                .unwrap_or_else(|| now_at.0.clone());
            // Every binary-log file starts with its 4-byte magic; its first event follows.
            let position = 4;
            let reason = format!(
                "the server purged binary log {} (and any file between it and {oldest}) before it was archived",
                head.file
            );
            Ok(Resume {
                stream,
                next_seq: head.seq + 1,
                gap: Some(gap_after(head, &oldest, position, reason)),
                file: oldest,
                position,
                head_archived_at: Some(head.archived_at),
                head_caught_up: false,
            })
        }
        None => {
            let gap = newest_other.map(|other| {
                gap_after(
                    other,
                    &now_at.0,
                    now_at.1,
                    format!(
                        "{server} is now another server ({}, was {}): a failover or a new server; the log between was not archived",
                        log.identity, other.identity
                    ),
                )
            });
            Ok(Resume {
                stream,
                next_seq: 1,
                file: now_at.0,
                position: now_at.1,
                gap,
                head_archived_at: None,
                head_caught_up: false,
            })
        }
    }
}

/// The server's current file and position.
async fn current_position(target: &MysqlTarget) -> Result<(String, u64)> {
    let mut conn = target.connect().await?;
    let position = catalog::binlog_position(&mut conn).await.map_err(|why| {
        Error::invalid(format!(
            "the binary log of {} cannot be read: {why}",
            target.describe()
        ))
        .with_hint("point-in-time recovery needs log_bin on (MySQL 8's default; on Azure, set binlog_expire_logs_seconds so files outlive a sync interval) and REPLICATION CLIENT (MariaDB: BINLOG MONITOR)")
    })?;
    let _ = conn.disconnect().await;
    Ok((position.file, position.position))
}

/// The segment being filled.
struct OpenSegment {
    bytes: Vec<u8>,
    file: String,
    start: u64,
    end: u64,
    transactions: u64,
    events: u64,
    first_time: Option<u32>,
    last_time: Option<u32>,
    first_gtid: Option<String>,
    last_gtid: Option<String>,
    opened: Instant,
    gap: Option<LogGap>,
}

impl OpenSegment {
    fn new(file: &str, position: u64, format: &[u8], gap: Option<LogGap>) -> Self {
        let mut bytes = Vec::with_capacity(format.len() + 4);
        bytes.extend_from_slice(&BINLOG_MAGIC);
        bytes.extend_from_slice(format);
        OpenSegment {
            bytes,
            file: file.to_string(),
            start: position,
            end: position,
            transactions: 0,
            events: 0,
            first_time: None,
            last_time: None,
            first_gtid: None,
            last_gtid: None,
            opened: Instant::now(),
            gap,
        }
    }

    fn add(&mut self, transaction: LoggedTransaction) {
        if self.transactions == 0 {
            self.opened = Instant::now();
        }
        self.bytes.extend_from_slice(&transaction.bytes);
        self.end = transaction.end;
        self.transactions += 1;
        self.events += u64::from(transaction.events);
        self.first_time = Some(
            self.first_time
                .map_or(transaction.first_time, |t| t.min(transaction.first_time)),
        );
        self.last_time = Some(
            self.last_time
                .map_or(transaction.last_time, |t| t.max(transaction.last_time)),
        );
        if let Some(gtid) = transaction.gtid {
            self.first_gtid.get_or_insert_with(|| gtid.clone());
            self.last_gtid = Some(gtid);
        }
    }

    fn is_due(&self, options: &ArchiveOptions) -> bool {
        self.transactions > 0
            && (self.bytes.len() as u64 >= options.segment_bytes
                || self.opened.elapsed() >= options.segment_age)
    }
}

/// Archives one server's log into one repository.
pub struct Archiver {
    repo: Arc<Repository>,
    target: MysqlTarget,
    options: ArchiveOptions,
    server: String,
    log: ServerLog,
    server_version: String,
    /// When this archiver last stored a segment, and whether it had read to the end of the log.
    last_stored: Option<Instant>,
    last_caught_up: bool,
    pub report: ArchiveReport,
}

impl Archiver {
    /// Connect and learn the server's identity.
    pub async fn new(
        repo: Arc<Repository>,
        target: MysqlTarget,
        options: ArchiveOptions,
    ) -> Result<Self> {
        let mut conn = target.connect().await?;
        let log = catalog::server_log(&mut conn).await.map_err(|why| {
            Error::invalid(format!(
                "the binary-log settings of {} cannot be read: {why}",
                target.describe()
            ))
        })?;
        let server_version = catalog::server_version(&mut conn).await?;
        let _ = conn.disconnect().await;
        Ok(Archiver {
            server: target.describe(),
            repo,
            target,
            options,
            log,
            server_version,
            last_stored: None,
            last_caught_up: false,
            report: ArchiveReport::default(),
        })
    }

    /// Archive up to the end of the log as it is now (`coffer log sync`).
    pub async fn sync(&mut self) -> Result<ArchiveReport> {
        self.run(false, &AtomicBool::new(false)).await?;
        Ok(self.report.clone())
    }

    /// Follow the log until `stop` is set or the connection fails (`coffer log follow`
    /// reconnects, and resumes from what was stored). When it returns, every transaction read
    /// whole is stored (within a second of `stop` being set).
    pub async fn follow(&mut self, stop: &AtomicBool) -> Result<()> {
        self.run(true, stop).await
    }

    async fn run(&mut self, blocking: bool, stop: &AtomicBool) -> Result<()> {
        let resume = resume_point(&self.repo, &self.target, &self.server, &self.log).await?;
        if let Some(gap) = &resume.gap {
            tracing::warn!(
                "a gap in the archived binary log of {}: {} (resuming at {}:{})",
                self.server,
                gap.reason,
                gap.resumed_file,
                gap.resumed_position
            );
            self.report.gaps.push(gap.clone());
        }
        let mut reader = LogReader::open(
            &self.target,
            &resume.file,
            resume.position,
            self.options.server_id,
            blocking,
            Changes::new(self.log.fold_case),
        )
        .await?;
        if self.last_stored.is_none() {
            self.last_caught_up = resume.head_caught_up;
        }
        if self.last_stored.is_none()
            && let Some(at) = resume.head_archived_at
        {
            let age = jiff::Timestamp::now().duration_since(at);
            let age = Duration::try_from(age).unwrap_or(Duration::ZERO);
            self.last_stored = Instant::now().checked_sub(age);
        }
        let mut seq = resume.next_seq;
        let mut gap = resume.gap;
        let mut open: Option<OpenSegment> = None;
        self.report.file = resume.file.clone();
        self.report.position = resume.position;
        let result: Result<()> = async {
            loop {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                match reader.next().await? {
                    LogItem::File {
                        file,
                        position,
                        format,
                    } => {
                        if let Some(segment) = open.take() {
                            self.store(&resume.stream, &mut seq, segment, &mut reader, false)
                                .await?;
                        }
                        open = Some(OpenSegment::new(&file, position, &format, gap.take()));
                    }
                    LogItem::Transaction(transaction) => {
                        let Some(segment) = open.as_mut() else {
                            return Err(Error::corrupt(
                                "the server sent a transaction before the format description of its file",
                            ));
                        };
                        segment.add(transaction);
                        if segment.is_due(&self.options)
                            && let Some(segment) = open.take()
                        {
                            let format = format_of(&segment);
                            let (file, position) = (segment.file.clone(), segment.end);
                            self.store(&resume.stream, &mut seq, segment, &mut reader, false)
                                .await?;
                            open = Some(OpenSegment::new(&file, position, &format, None));
                        }
                    }
                    LogItem::Idle => {
                        let due = open.as_ref().is_some_and(|s| s.is_due(&self.options));
                        // An idle server: a segment without transactions now and then says the
                        // archive is current (the recovery point `log list` and `sla` report).
                        let checkpoint = !self.last_caught_up
                            || self
                                .last_stored
                                .is_none_or(|at| at.elapsed() >= self.options.checkpoint_every);
                        if !blocking || due || checkpoint {
                            if let Some(segment) = open.take() {
                                let format = format_of(&segment);
                                let (file, position) = (segment.file.clone(), segment.end);
                                let empty = segment.transactions == 0
                                    && segment.gap.is_none()
                                    && !checkpoint;
                                if !empty {
                                    self.store(&resume.stream, &mut seq, segment, &mut reader, true)
                                        .await?;
                                }
                                open = Some(OpenSegment::new(&file, position, &format, None));
                            }
                            if !blocking {
                                return Ok(());
                            }
                        }
                    }
                }
            }
        }
        .await;
        // Whatever stopped the run, what was read whole is stored.
        if let Some(segment) = open.take()
            && (segment.transactions > 0 || segment.gap.is_some())
        {
            self.store(&resume.stream, &mut seq, segment, &mut reader, false)
                .await?;
        }
        reader.close().await;
        result
    }

    /// Store one segment: its bytes as data blobs under a run marker, then its descriptor.
    async fn store(
        &mut self,
        stream: &str,
        seq: &mut u64,
        segment: OpenSegment,
        reader: &mut LogReader,
        caught_up: bool,
    ) -> Result<()> {
        let next = reader.changes_mut().continuation();
        let changes = std::mem::replace(reader.changes_mut(), next);
        let run = self.repo.begin_run("log", self.options.run_lease).await?;
        // A segment without a transaction records a gap or that the archive was current; its
        // bytes (magic and format description) say nothing.
        let stored_bytes: &[u8] = if segment.transactions == 0 {
            &[]
        } else {
            &segment.bytes
        };
        let blobs = store_bytes(&self.repo, stored_bytes).await;
        let blobs = match blobs {
            Ok(blobs) => blobs,
            Err(e) => {
                self.repo.end_run(run).await;
                return Err(e);
            }
        };
        run.check_lease()?;
        let mut tables: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        for (database, table) in &changes.tables {
            tables
                .entry(database.clone())
                .or_default()
                .insert(table.clone());
        }
        let time = |t: Option<u32>| t.and_then(|t| jiff::Timestamp::from_second(i64::from(t)).ok());
        let descriptor = LogSegment {
            version: 1,
            server: self.server.clone(),
            identity: self.log.identity.clone(),
            server_version: self.server_version.clone(),
            stream: stream.to_string(),
            seq: *seq,
            file: segment.file.clone(),
            start: segment.start,
            end: segment.end,
            first_time: time(segment.first_time),
            last_time: time(segment.last_time),
            first_gtid: segment.first_gtid.clone(),
            last_gtid: segment.last_gtid.clone(),
            transactions: segment.transactions,
            events: segment.events,
            bytes: stored_bytes.len() as u64,
            tables,
            whole_databases: changes.whole_databases.clone(),
            all: changes.all.clone(),
            blobs,
            run: run.id.clone(),
            gap_before: segment.gap.clone(),
            archived_at: jiff::Timestamp::now(),
            caught_up,
            slot: String::new(),
            write_only: false,
        };
        let saved = self.repo.save_log_segment(&descriptor).await;
        self.repo.end_run(run).await;
        saved?;
        tracing::info!(
            seq = *seq,
            transactions = segment.transactions,
            bytes = segment.bytes.len(),
            "archived {}:{}..{}",
            segment.file,
            segment.start,
            segment.end
        );
        *seq += 1;
        self.report.segments += 1;
        self.report.transactions += segment.transactions;
        self.report.bytes += stored_bytes.len() as u64;
        self.last_stored = Some(Instant::now());
        self.last_caught_up = caught_up;
        self.report.file = segment.file;
        self.report.position = segment.end;
        if descriptor.last_time.is_some() {
            self.report.last_time = descriptor.last_time;
        }
        Ok(())
    }
}

/// The format description a segment opened with (after the magic).
fn format_of(segment: &OpenSegment) -> Vec<u8> {
    let size = segment
        .bytes
        .get(4 + 9..4 + 13)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, |b| u32::from_le_bytes(b) as usize);
    segment.bytes.get(4..4 + size).unwrap_or_default().to_vec()
}

/// Store `bytes` as data blobs cut at content-defined points (deduplicated within the segment
/// and against nothing older: a follower runs for weeks, longer than any index it could load
/// may be trusted to describe what a prune keeps).
async fn store_bytes(repo: &Arc<Repository>, bytes: &[u8]) -> Result<Vec<BlobId>> {
    let store = BlobStore::new(Arc::clone(repo), &Index::default(), 2);
    let mut sink = store.sink();
    let mut chunker = RowChunker::new(gear_table(repo.keys().chunker_key()), repo.config().chunker);
    let mut blobs = Vec::new();
    // Cut points depend on content; pieces of 64 KiB are the "rows" (a chunk ends after one).
    for piece in bytes.chunks(64 << 10) {
        if let Some(chunk) = chunker.push_row(piece) {
            blobs.push(sink.add(BlobKind::Data, chunk.data).await?);
        }
    }
    if let Some(chunk) = chunker.finish() {
        blobs.push(sink.add(BlobKind::Data, chunk.data).await?);
    }
    sink.finish().await?;
    store.finish_run().await?;
    Ok(blobs)
}

/// Read a segment's bytes back (a binary-log file: magic, format description, events),
/// checked against the size its descriptor gives.
pub async fn segment_bytes(
    repo: &Repository,
    index: &Index,
    segment: &LogSegment,
) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(usize::try_from(segment.bytes.min(64 << 20)).unwrap_or(0));
    for blob in &segment.blobs {
        bytes.extend_from_slice(&repo.read_blob(index, blob).await?);
        if bytes.len() as u64 > segment.bytes {
            break;
        }
    }
    if bytes.len() as u64 != segment.bytes
        || (!bytes.is_empty() && !bytes.starts_with(&BINLOG_MAGIC))
    {
        return Err(Error::corrupt(format!(
            "log segment {} of {} holds {} bytes, its descriptor says {}",
            segment.seq,
            segment.server,
            bytes.len(),
            segment.bytes
        ))
        .with_hint("run `coffer check`"));
    }
    Ok(bytes)
}
