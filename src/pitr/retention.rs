//! Which archived segments `forget --keep-log` removes: only those no moment of the window can
//! need, named rule by rule (each with the test that shows it).
//!
//! - **The window reaches back from a kept snapshot.** Every moment `t` of the last
//!   `keep_log` is restored from the newest kept snapshot finished by `t`; the earliest such
//!   base is the newest kept snapshot finished by the window's start (or, when none is, the
//!   oldest kept one: earlier moments cannot be restored anyway). Segments that end at or
//!   before that snapshot's position in the log (its run's, which is before every copy it
//!   holds) are not needed (`retention::only_segments_before_the_base_go`).
//! - **Per server identity.** Replay follows the stream of the snapshot's server and identity;
//!   a stream no kept snapshot can start from is needed by nothing but is kept while any of it
//!   lies inside the window (`retention::streams_without_a_base_keep_the_window`).
//! - **A stream's newest segment stays.** A follower resumes after it; without it, it would
//!   start again at the server's current position and skip what lies between
//!   (`retention::the_newest_segment_of_a_stream_stays`).
//! - **Unknown means keep.** A base snapshot without a recorded position keeps its stream whole.

use std::collections::BTreeMap;

use crate::repo::log_segments::LogSegment;
use crate::repo::summary::SnapshotSummary;
use crate::source::mysql::binlog::file_order;

/// The segments (indexes into `segments`) that `keep_log` and the kept snapshots no longer
/// need, at `now`.
pub fn expired_segments(
    segments: &[LogSegment],
    kept: &[SnapshotSummary],
    keep_log: jiff::SignedDuration,
    now: jiff::Timestamp,
) -> Vec<usize> {
    let window_start = now.checked_sub(keep_log).unwrap_or(now);
    let mut by_stream: BTreeMap<(&str, &str, &str), Vec<usize>> = BTreeMap::new();
    for (i, s) in segments.iter().enumerate() {
        by_stream
            .entry((s.server.as_str(), s.identity.as_str(), s.stream.as_str()))
            .or_default()
            .push(i);
    }
    let mut expired = Vec::new();
    for ((server, identity, _), mut members) in by_stream {
        members.sort_by_key(|&i| segments[i].seq);
        let Some((_newest, older)) = members.split_last() else {
            continue;
        };
        let bases: Vec<&SnapshotSummary> = kept
            .iter()
            .filter(|s| {
                s.source.server == server && s.source.server_identity.as_deref() == Some(identity)
            })
            .collect();
        let base = bases
            .iter()
            .filter(|s| s.finished <= window_start)
            .max_by_key(|s| s.finished)
            .or_else(|| bases.iter().min_by_key(|s| s.finished));
        match base {
            Some(base) => {
                let Some(position) = &base.source.binlog else {
                    continue;
                };
                for &i in older {
                    let s = &segments[i];
                    let before = match file_order(&s.file, &position.file) {
                        std::cmp::Ordering::Less => true,
                        std::cmp::Ordering::Equal => s.end <= position.position,
                        std::cmp::Ordering::Greater => false,
                    };
                    if before {
                        expired.push(i);
                    }
                }
            }
            None => {
                for &i in older {
                    let s = &segments[i];
                    if s.archived_at < window_start {
                        expired.push(i);
                    }
                }
            }
        }
    }
    expired.sort_unstable();
    expired
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(
        seq: u64,
        file: &str,
        start: u64,
        end: u64,
        stream: &str,
        identity: &str,
    ) -> LogSegment {
        LogSegment {
            version: 1,
            server: "db:3306".into(),
            identity: identity.into(),
            server_version: "8.0".into(),
            stream: stream.into(),
            seq,
            file: file.into(),
            start,
            end,
            first_time: None,
            last_time: None,
            first_gtid: None,
            last_gtid: None,
            transactions: 1,
            events: 1,
            bytes: 1,
            tables: Default::default(),
            whole_databases: Default::default(),
            all: None,
            blobs: Vec::new(),
            run: String::new(),
            gap_before: None,
            archived_at: jiff::Timestamp::from_second(1_000_000 + seq as i64 * 3600).unwrap(),
            caught_up: false,
            slot: String::new(),
            write_only: true,
        }
    }

    fn summary(finished: i64, file: &str, position: u64, identity: &str) -> SnapshotSummary {
        serde_json::from_value(serde_json::json!({
            "version": 1, "snapshot": "00", "time": jiff::Timestamp::from_second(finished - 60).unwrap(),
            "finished": jiff::Timestamp::from_second(finished).unwrap(), "hostname": "h",
            "source": {"server": "db:3306", "server_version": "8.0", "server_identity": identity,
                       "binlog": {"file": file, "position": position}},
            "stats": {"tables": 0, "rows": 0, "bytes_read": 0, "blobs_new": 0, "bytes_stored_new": 0, "duration_secs": 0.0},
            "total_bytes": 0, "databases": []
        }))
        .expect("summary")
    }

    const DAY: i64 = 86_400;

    #[test]
    fn only_segments_before_the_base_go() {
        let now = jiff::Timestamp::from_second(100 * DAY).unwrap();
        let segments: Vec<LogSegment> = (1..=6)
            .map(|n| segment(n, "b.000001", n * 100, n * 100 + 100, "s", "server_uuid:a"))
            .collect();
        // Bases: one finished 10 days ago at 350 (the window's base), one 2 days ago at 550.
        let kept = [
            summary(90 * DAY, "b.000001", 350, "server_uuid:a"),
            summary(98 * DAY, "b.000001", 550, "server_uuid:a"),
        ];
        let expired = expired_segments(
            &segments,
            &kept,
            jiff::SignedDuration::from_hours(7 * 24),
            now,
        );
        // Segments ending at 200 and 300 are before the base at 350; the one ending at 400
        // holds the position and stays.
        assert_eq!(expired, vec![0, 1]);
    }

    #[test]
    fn streams_without_a_base_keep_the_window() {
        let now = jiff::Timestamp::from_second(1_000_000 + 10 * 3600).unwrap();
        let segments: Vec<LogSegment> = (1..=5)
            .map(|n| {
                segment(
                    n,
                    "b.000001",
                    n * 100,
                    n * 100 + 100,
                    "old",
                    "server_uuid:gone",
                )
            })
            .collect();
        let expired = expired_segments(&segments, &[], jiff::SignedDuration::from_hours(7), now);
        // Archived at hours 1..5 after the epoch offset; the window starts at hour 3.
        assert_eq!(expired, vec![0, 1]);
    }

    #[test]
    fn the_newest_segment_of_a_stream_stays() {
        let now = jiff::Timestamp::from_second(100 * DAY).unwrap();
        let segments = vec![
            segment(1, "b.000001", 100, 200, "s", "server_uuid:a"),
            segment(2, "b.000001", 200, 300, "s", "server_uuid:a"),
        ];
        let kept = [summary(90 * DAY, "b.000002", 4, "server_uuid:a")];
        let expired = expired_segments(&segments, &kept, jiff::SignedDuration::from_hours(24), now);
        assert_eq!(expired, vec![0]);
    }
}
