//! Reading an archived segment back: its events in log order (a compressed transaction's
//! inner events expanded in place), each transaction's end marked, for replay and `log show`.

use std::collections::VecDeque;
use std::io::Cursor;

use mysql_async::binlog::EventType;
use mysql_async::binlog::events::{Event, TransactionPayloadEvent};
use mysql_common::binlog::consts::BinlogVersion;

use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::repo::log_segments::LogSegment;
use crate::source::mysql::binlog::{LoggedTransaction, TransactionAssembler};
use crate::source::mysql::changes::{Changes, check_framing_of, decoded};

/// What a [`SegmentEvents`] yields.
pub enum Item {
    /// One event (never a payload event: its inner events come instead).
    Event(Event),
    /// The transaction whose events came since the last end is complete.
    End(LoggedTransaction),
}

/// The events of one segment's content.
pub struct SegmentEvents<'a> {
    seq: u64,
    file: mysql_common::binlog::BinlogFile<&'a [u8]>,
    assembler: TransactionAssembler,
    inner: mysql_common::binlog::EventStreamReader,
    queue: VecDeque<Item>,
}

impl<'a> SegmentEvents<'a> {
    /// Read `bytes`, the content of `segment` (framing checked first: the decoder trusts the
    /// sizes events claim).
    pub fn new(segment: &LogSegment, bytes: &'a [u8]) -> Result<Self> {
        check_framing_of(bytes, 4)?;
        let file = mysql_common::binlog::BinlogFile::new(BinlogVersion::Version4, bytes)
            .map_err(|e| Error::corrupt(format!("log segment {}: {e}", segment.seq)))?;
        Ok(SegmentEvents {
            seq: segment.seq,
            file,
            assembler: TransactionAssembler::new(&segment.file, segment.start, Changes::new(false)),
            inner: mysql_common::binlog::EventStreamReader::new(BinlogVersion::Version4),
            queue: VecDeque::new(),
        })
    }

    fn corrupt(&self, e: impl std::fmt::Display) -> Error {
        Error::corrupt(format!("log segment {}: {e}", self.seq))
    }

    /// The next item, or `None` at the end of the segment.
    pub fn next_item(&mut self) -> Result<Option<Item>> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Ok(Some(item));
            }
            let next = decoded(|| self.file.next().transpose()).map_err(|e| self.corrupt(e))?;
            let Some(event) = next else {
                return Ok(None);
            };
            let done = self.assembler.take(&event)?;
            match event.header().event_type() {
                Ok(EventType::FORMAT_DESCRIPTION_EVENT) => {
                    // The inner reader learns the format (checksums) from the event itself.
                    let mut raw = Vec::new();
                    event
                        .write(BinlogVersion::Version4, &mut raw)
                        .map_err(|e| self.corrupt(e))?;
                    decoded(|| self.inner.read(raw.as_slice()).map(|_| ()))
                        .map_err(|e| self.corrupt(e))?;
                }
                Ok(EventType::TRANSACTION_PAYLOAD_EVENT) => {
                    let inner = decoded(|| {
                        event
                            .read_event::<TransactionPayloadEvent<'_>>()
                            .map(TransactionPayloadEvent::danger_decompress)
                    })
                    .map_err(|e| self.corrupt(format!("a compressed transaction: {e}")))?;
                    check_framing_of(&inner, 0)?;
                    let mut cursor = Cursor::new(inner);
                    while let Some(inner_event) =
                        decoded(|| self.inner.read_decompressed(&mut cursor))
                            .map_err(|e| self.corrupt(format!("a compressed transaction: {e}")))?
                    {
                        self.queue.push_back(Item::Event(inner_event));
                    }
                }
                _ => self.queue.push_back(Item::Event(event)),
            }
            if let Some(done) = done {
                self.queue.push_back(Item::End(done));
            }
        }
    }
}

/// The segments with transactions that may touch `database` between `since` and `until`
/// (either open), of `server` when one is named, in log order: each stream by number, the
/// streams by their first event (a failover's new stream after the old one).
pub async fn segments_touching(
    repo: &Repository,
    database: &str,
    server: Option<&str>,
    since: Option<jiff::Timestamp>,
    until: Option<jiff::Timestamp>,
) -> Result<Vec<LogSegment>> {
    let mut segments: Vec<LogSegment> = repo
        .log_segments()
        .await?
        .into_iter()
        .filter(|s| server.is_none_or(|server| s.server == server))
        .filter(|s| s.transactions > 0 && s.touches(database))
        .filter(|s| {
            let ends_before = since.is_some_and(|since| s.last_time.is_some_and(|t| t < since));
            let starts_after = until.is_some_and(|until| s.first_time.is_some_and(|t| t > until));
            !ends_before && !starts_after
        })
        .collect();
    let mut stream_start: std::collections::HashMap<String, Option<jiff::Timestamp>> =
        std::collections::HashMap::new();
    for s in &segments {
        let first = stream_start.entry(s.stream.clone()).or_insert(s.first_time);
        if s.first_time.is_some() && (first.is_none() || s.first_time < *first) {
            *first = s.first_time;
        }
    }
    segments.sort_by(|a, b| {
        (stream_start.get(&a.stream), &a.stream, a.seq).cmp(&(
            stream_start.get(&b.stream),
            &b.stream,
            b.seq,
        ))
    });
    Ok(segments)
}
