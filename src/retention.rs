//! Which snapshots a retention policy keeps (`coffer forget`), with the rules that keep each.
//!
//! The rules are restic's: `last N`, the newest snapshot of each of the newest N hours, days,
//! ISO weeks, months and years that have one, everything within a duration, the newest snapshot
//! of each hour/day/week/month/year within a duration, and tags. Calendar buckets are UTC.
//! Durations count back from the newest snapshot of the group, never from the clock: a backup
//! schedule that stopped weeks ago must not make `forget` delete the last good backups.
//!
//! This module only decides; deleting snapshot objects is the caller's, and deleting the data
//! they alone referenced is prune's.

use std::collections::BTreeSet;

use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};

use crate::error::{Error, Result};
use crate::timespec::before;

/// A retention policy. Every rule keeps snapshots; a snapshot no rule keeps is removed.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub last: usize,
    pub hourly: usize,
    pub daily: usize,
    pub weekly: usize,
    pub monthly: usize,
    pub yearly: usize,
    pub within: Option<Span>,
    pub within_hourly: Option<Span>,
    pub within_daily: Option<Span>,
    pub within_weekly: Option<Span>,
    pub within_monthly: Option<Span>,
    pub within_yearly: Option<Span>,
    pub tags: Vec<String>,
}

impl Policy {
    /// Whether no rule is given (such a policy would keep nothing).
    pub fn is_empty(&self) -> bool {
        self.last == 0
            && self.hourly == 0
            && self.daily == 0
            && self.weekly == 0
            && self.monthly == 0
            && self.yearly == 0
            && [
                self.within,
                self.within_hourly,
                self.within_daily,
                self.within_weekly,
                self.within_monthly,
                self.within_yearly,
            ]
            .iter()
            .all(Option::is_none)
            && self.tags.is_empty()
    }
}

/// A snapshot as the policy sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: String,
    pub time: Timestamp,
    pub tags: Vec<String>,
}

/// What the policy decided for one snapshot.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Decision {
    pub id: String,
    pub time: Timestamp,
    /// The rules that keep it; empty: it is removed.
    pub reasons: Vec<String>,
}

impl Decision {
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// Calendar buckets, UTC.
#[derive(Debug, Clone, Copy)]
enum Bucket {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Bucket {
    fn name(self) -> &'static str {
        match self {
            Bucket::Hour => "hourly",
            Bucket::Day => "daily",
            Bucket::Week => "weekly",
            Bucket::Month => "monthly",
            Bucket::Year => "yearly",
        }
    }

    /// A value equal for two times exactly when they fall in the same bucket.
    fn of(self, time: Timestamp) -> (i32, i32, i32) {
        let utc = time.to_zoned(TimeZone::UTC);
        let date = utc.date();
        match self {
            Bucket::Hour => (
                i32::from(date.year()),
                date.day_of_year().into(),
                utc.hour().into(),
            ),
            Bucket::Day => (i32::from(date.year()), date.day_of_year().into(), 0),
            Bucket::Week => {
                let week = date.iso_week_date();
                (i32::from(week.year()), week.week().into(), 0)
            }
            Bucket::Month => (i32::from(date.year()), date.month().into(), 0),
            Bucket::Year => (i32::from(date.year()), 0, 0),
        }
    }
}

/// Apply `policy` to one group of snapshots (any order); decisions come newest first.
pub fn decide(policy: &Policy, snapshots: &[Candidate]) -> Result<Vec<Decision>> {
    if policy.is_empty() {
        return Err(
            Error::invalid("no retention rule given: forget would remove every snapshot")
                .with_hint("give rules such as --keep-within 30d --keep-within-monthly 1y"),
        );
    }
    let mut sorted: Vec<&Candidate> = snapshots.iter().collect();
    sorted.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));
    let mut decisions: Vec<Decision> = sorted
        .iter()
        .map(|c| Decision {
            id: c.id.clone(),
            time: c.time,
            reasons: Vec::new(),
        })
        .collect();
    let Some(newest) = sorted.first().map(|c| c.time) else {
        return Ok(decisions);
    };

    for decision in decisions.iter_mut().take(policy.last) {
        decision.reasons.push("last".into());
    }
    let counted = [
        (Bucket::Hour, policy.hourly),
        (Bucket::Day, policy.daily),
        (Bucket::Week, policy.weekly),
        (Bucket::Month, policy.monthly),
        (Bucket::Year, policy.yearly),
    ];
    for (bucket, count) in counted {
        keep_newest_per_bucket(
            &mut decisions,
            bucket,
            count,
            None,
            bucket.name().to_string(),
        );
    }
    if let Some(span) = policy.within {
        let since = before(newest, span)?;
        for decision in decisions.iter_mut().filter(|d| d.time >= since) {
            decision.reasons.push(format!("within {span:#}"));
        }
    }
    let within = [
        (Bucket::Hour, policy.within_hourly),
        (Bucket::Day, policy.within_daily),
        (Bucket::Week, policy.within_weekly),
        (Bucket::Month, policy.within_monthly),
        (Bucket::Year, policy.within_yearly),
    ];
    for (bucket, span) in within {
        if let Some(span) = span {
            let since = before(newest, span)?;
            keep_newest_per_bucket(
                &mut decisions,
                bucket,
                usize::MAX,
                Some(since),
                format!("{} within {span:#}", bucket.name()),
            );
        }
    }
    for (decision, candidate) in decisions.iter_mut().zip(&sorted) {
        for tag in &policy.tags {
            if candidate.tags.contains(tag) {
                decision.reasons.push(format!("tag {tag}"));
            }
        }
    }
    Ok(decisions)
}

/// Keep the newest snapshot of each of the newest `count` buckets (among those at or after
/// `since`, when given). `decisions` are newest first.
fn keep_newest_per_bucket(
    decisions: &mut [Decision],
    bucket: Bucket,
    count: usize,
    since: Option<Timestamp>,
    reason: String,
) {
    if count == 0 {
        return;
    }
    let mut seen = BTreeSet::new();
    for decision in decisions.iter_mut() {
        if since.is_some_and(|s| decision.time < s) {
            break;
        }
        if seen.insert(bucket.of(decision.time)) {
            decision.reasons.push(reason.clone());
            if seen.len() >= count {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timespec::parse_duration;

    fn at(text: &str) -> Timestamp {
        text.parse().expect(text)
    }

    fn candidates(times: &[&str]) -> Vec<Candidate> {
        times
            .iter()
            .enumerate()
            .map(|(i, t)| Candidate {
                id: format!("{i:02}"),
                time: at(t),
                tags: Vec::new(),
            })
            .collect()
    }

    fn kept(policy: &Policy, snapshots: &[Candidate]) -> Vec<String> {
        let mut ids: Vec<String> = decide(policy, snapshots)
            .expect("policy")
            .into_iter()
            .filter(Decision::keep)
            .map(|d| d.id)
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn counted_buckets_keep_the_newest_of_each_of_the_newest_buckets() {
        let snapshots = candidates(&[
            "2026-01-01T02:00:00Z",
            "2026-01-01T14:00:00Z",
            "2026-01-02T02:00:00Z",
            "2026-01-02T14:00:00Z",
            "2026-02-10T02:00:00Z",
            "2026-03-01T02:00:00Z",
        ]);
        let daily = Policy {
            daily: 3,
            ..Policy::default()
        };
        assert_eq!(kept(&daily, &snapshots), ["03", "04", "05"]);
        let monthly = Policy {
            monthly: 12,
            ..Policy::default()
        };
        assert_eq!(kept(&monthly, &snapshots), ["03", "04", "05"]);
        let last = Policy {
            last: 2,
            ..Policy::default()
        };
        assert_eq!(kept(&last, &snapshots), ["04", "05"]);
    }

    #[test]
    fn durations_count_back_from_the_newest_snapshot_not_the_clock() {
        // The schedule stopped in 2020: a 30-day window still keeps the last month of backups.
        let snapshots = candidates(&[
            "2020-01-01T00:00:00Z",
            "2020-05-01T00:00:00Z",
            "2020-05-20T00:00:00Z",
            "2020-05-31T00:00:00Z",
        ]);
        let policy = Policy {
            within: Some(parse_duration("30d").expect("span")),
            ..Policy::default()
        };
        assert_eq!(kept(&policy, &snapshots), ["01", "02", "03"]);
        let reasons = decide(&policy, &snapshots).expect("policy");
        assert_eq!(reasons[0].reasons, ["within 30d"]);
    }

    #[test]
    fn within_monthly_keeps_the_newest_of_each_month_of_the_last_year() {
        let snapshots = candidates(&[
            "2025-01-15T00:00:00Z", // more than a year before the newest
            "2025-06-01T00:00:00Z",
            "2025-06-30T12:00:00Z",
            "2025-07-31T23:59:59Z",
            "2026-03-01T00:00:00Z",
        ]);
        let policy = Policy {
            within_monthly: Some(parse_duration("1y").expect("span")),
            ..Policy::default()
        };
        assert_eq!(kept(&policy, &snapshots), ["02", "03", "04"]);
    }

    #[test]
    fn tags_keep_and_an_empty_policy_is_refused() {
        let mut snapshots = candidates(&["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]);
        snapshots[0].tags = vec!["audit".into()];
        let policy = Policy {
            tags: vec!["audit".into()],
            ..Policy::default()
        };
        assert_eq!(kept(&policy, &snapshots), ["00"]);
        assert!(decide(&Policy::default(), &snapshots).is_err());
    }
}
