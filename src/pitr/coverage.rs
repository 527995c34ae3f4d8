//! What the archived binary log covers: per stream, its segments in order, the times they
//! reach, and every gap (recorded by the follower, or found as a break in the chain of
//! positions). Read from the descriptors only, so a write-only host can report it.

use serde::Serialize;

use crate::repo::log_segments::{LogGap, LogSegment};

/// One stream of one server (one identity behind one name).
#[derive(Debug, Clone, Serialize)]
pub struct StreamCoverage {
    pub server: String,
    pub identity: String,
    pub stream: String,
    pub segments: u64,
    pub transactions: u64,
    pub bytes: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// The earliest and latest event time archived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_time: Option<jiff::Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_time: Option<jiff::Timestamp>,
    /// When the newest segment was stored (the follower's clock): the archive was current then.
    pub newest_archived_at: jiff::Timestamp,
    /// Where the archive ends (the position a follower resumes from).
    pub end_file: String,
    pub end_position: u64,
}

/// A place where the archive does not hold the log.
#[derive(Debug, Clone, Serialize)]
pub struct Gap {
    pub server: String,
    pub stream: String,
    /// The segment after the gap.
    pub before_seq: u64,
    /// The last archived time before it and the first after it (what cannot be reached).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<jiff::Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<jiff::Timestamp>,
    pub reason: String,
}

/// Coverage of every stream in `segments` (any order), and every gap.
pub fn coverage(segments: &[LogSegment]) -> (Vec<StreamCoverage>, Vec<Gap>) {
    let mut sorted: Vec<&LogSegment> = segments.iter().collect();
    sorted.sort_by(|a, b| (&a.stream, a.seq).cmp(&(&b.stream, b.seq)));
    let mut streams: Vec<StreamCoverage> = Vec::new();
    let mut gaps: Vec<Gap> = Vec::new();
    let mut previous: Option<&LogSegment> = None;
    for segment in sorted {
        let same_stream = previous.is_some_and(|p| p.stream == segment.stream);
        if let Some(recorded) = &segment.gap_before {
            gaps.push(recorded_gap(segment, recorded));
        } else if let Some(prev) = previous.filter(|_| same_stream)
            && let Some(why) = chain_break(prev, segment)
        {
            gaps.push(Gap {
                server: segment.server.clone(),
                stream: segment.stream.clone(),
                before_seq: segment.seq,
                from: prev.last_time.or(prev.first_time),
                to: segment.first_time,
                reason: why,
            });
        }
        if !same_stream {
            streams.push(StreamCoverage {
                server: segment.server.clone(),
                identity: segment.identity.clone(),
                stream: segment.stream.clone(),
                segments: 0,
                transactions: 0,
                bytes: 0,
                first_seq: segment.seq,
                last_seq: segment.seq,
                first_time: None,
                last_time: None,
                newest_archived_at: segment.archived_at,
                end_file: segment.file.clone(),
                end_position: segment.end,
            });
        }
        if let Some(stream) = streams.last_mut() {
            stream.segments += 1;
            stream.transactions += segment.transactions;
            stream.bytes += segment.bytes;
            stream.last_seq = segment.seq;
            stream.first_time = min_time(stream.first_time, segment.first_time);
            stream.last_time = max_time(stream.last_time, segment.last_time);
            stream.newest_archived_at = stream.newest_archived_at.max(segment.archived_at);
            stream.end_file = segment.file.clone();
            stream.end_position = segment.end;
        }
        previous = Some(segment);
    }
    (streams, gaps)
}

/// The archive's recovery point for one server: how far it lags and where it has gaps.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryPoint {
    pub server: String,
    /// The newest event time archived (the server's clock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest_event: Option<jiff::Timestamp>,
    /// When the newest segment was stored (the follower's clock): the archive was current then.
    pub newest_stored: jiff::Timestamp,
    /// Seconds from `newest_stored` to the time of the report.
    pub lag_seconds: i64,
    pub gaps: Vec<Gap>,
}

/// Per server (the newest stream of each, and the gaps of all its streams), at `now`.
pub fn recovery_points(
    streams: &[StreamCoverage],
    gaps: &[Gap],
    now: jiff::Timestamp,
) -> Vec<RecoveryPoint> {
    let mut points: Vec<RecoveryPoint> = Vec::new();
    for stream in streams {
        let point = match points.iter_mut().find(|p| p.server == stream.server) {
            Some(point) => point,
            None => {
                points.push(RecoveryPoint {
                    server: stream.server.clone(),
                    newest_event: None,
                    newest_stored: stream.newest_archived_at,
                    lag_seconds: 0,
                    gaps: gaps
                        .iter()
                        .filter(|g| g.server == stream.server)
                        .cloned()
                        .collect(),
                });
                let last = points.len() - 1;
                &mut points[last]
            }
        };
        point.newest_stored = point.newest_stored.max(stream.newest_archived_at);
        point.newest_event = max_time(point.newest_event, stream.last_time);
    }
    for point in &mut points {
        point.lag_seconds = now.duration_since(point.newest_stored).as_secs().max(0);
    }
    points
}

fn recorded_gap(segment: &LogSegment, recorded: &LogGap) -> Gap {
    Gap {
        server: segment.server.clone(),
        stream: segment.stream.clone(),
        before_seq: segment.seq,
        from: recorded.after_time,
        to: segment.first_time,
        reason: recorded.reason.clone(),
    }
}

/// Why `next` does not continue `prev` (same stream), if it does not: a missing or repeated
/// number, or positions that do not meet (`log list` and replay judge the chain alike).
pub(crate) fn chain_break(prev: &LogSegment, next: &LogSegment) -> Option<String> {
    if next.seq == prev.seq {
        return Some(format!(
            "segment {} is stored twice (two followers of one server?); replay refuses the range",
            next.seq
        ));
    }
    if next.seq != prev.seq + 1 {
        return Some(format!(
            "segments {} to {} are missing (deleted from storage?)",
            prev.seq + 1,
            next.seq - 1
        ));
    }
    let continues = if next.file == prev.file {
        next.start == prev.end
    } else {
        // The next file: whatever followed the previous segment in its file held no
        // transaction, and the new one is read from its start.
        crate::source::mysql::binlog::file_order(&next.file, &prev.file).is_gt() && next.start <= 4
    };
    (!continues).then(|| {
        format!(
            "segment {} starts at {}:{} but segment {} ended at {}:{}",
            next.seq, next.file, next.start, prev.seq, prev.file, prev.end
        )
    })
}

fn min_time(a: Option<jiff::Timestamp>, b: Option<jiff::Timestamp>) -> Option<jiff::Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_time(a: Option<jiff::Timestamp>, b: Option<jiff::Timestamp>) -> Option<jiff::Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(seq: u64, file: &str, start: u64, end: u64) -> LogSegment {
        LogSegment {
            version: 1,
            server: "db:3306".into(),
            identity: "server_id:1".into(),
            server_version: "10.11".into(),
            stream: "0".repeat(32),
            seq,
            file: file.into(),
            start,
            end,
            first_time: jiff::Timestamp::from_second(1_000 + seq as i64).ok(),
            last_time: jiff::Timestamp::from_second(1_000 + seq as i64).ok(),
            first_gtid: None,
            last_gtid: None,
            transactions: 1,
            events: 3,
            bytes: 100,
            tables: Default::default(),
            whole_databases: Default::default(),
            all: None,
            blobs: Vec::new(),
            run: String::new(),
            gap_before: None,
            archived_at: jiff::Timestamp::from_second(2_000 + seq as i64).unwrap(),
            caught_up: false,
            slot: String::new(),
            write_only: true,
        }
    }

    #[test]
    fn a_continuous_chain_has_no_gap() {
        let (streams, gaps) = coverage(&[
            segment(2, "b.000001", 300, 500),
            segment(1, "b.000001", 120, 300),
            segment(3, "b.000002", 4, 900),
        ]);
        assert!(gaps.is_empty(), "{gaps:?}");
        assert_eq!(streams.len(), 1);
        assert_eq!((streams[0].segments, streams[0].end_position), (3, 900));
    }

    #[test]
    fn breaks_in_the_chain_are_gaps() {
        let (_, gaps) = coverage(&[
            segment(1, "b.000001", 120, 300),
            segment(2, "b.000001", 350, 500),
            segment(4, "b.000001", 500, 600),
            segment(4, "b.000001", 500, 600),
        ]);
        let reasons: Vec<&str> = gaps.iter().map(|g| g.reason.as_str()).collect();
        assert_eq!(gaps.len(), 3, "{reasons:?}");
        assert!(reasons[0].contains("starts at b.000001:350"));
        assert!(reasons[1].contains("segments 3 to 3 are missing"));
        assert!(reasons[2].contains("stored twice"));
    }
}
