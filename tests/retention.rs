//! The SLA over 400 days (issue 8): twice-daily backups with missed and extra runs, `forget
//! --keep-within 30d --keep-within-monthly 1y` after every day, and on every day exactly the
//! snapshots the SLA promises are kept.

use std::collections::{BTreeMap, BTreeSet};

use coffer::retention::{Candidate, Policy, decide};
use coffer::timespec::{before, parse_duration};
use jiff::Timestamp;
use jiff::tz::TimeZone;

fn month_of(time: Timestamp) -> (i16, i8) {
    let date = time.to_zoned(TimeZone::UTC).date();
    (date.year(), date.month())
}

#[test]
fn four_hundred_days_of_twice_daily_backups_keep_exactly_what_the_sla_promises() {
    let policy = Policy {
        within: Some(parse_duration("30d").expect("span")),
        within_monthly: Some(parse_duration("1y").expect("span")),
        ..Policy::default()
    };
    let start: Timestamp = "2025-01-01T00:00:00Z".parse().expect("start");
    let mut taken: Vec<Timestamp> = Vec::new();
    let mut kept: BTreeSet<Timestamp> = BTreeSet::new();
    for day in 0..400i64 {
        let midnight = start
            .to_zoned(TimeZone::UTC)
            .checked_add(jiff::Span::new().days(day))
            .expect("day")
            .timestamp();
        let mut runs = vec![2, 14];
        if day % 17 == 3 {
            runs.retain(|&h| h != 2); // a missed morning run
        }
        if day % 29 == 5 {
            runs.clear(); // a day without any backup
        }
        if day % 23 == 7 {
            runs.push(20); // an extra run by hand
        }
        for hour in runs {
            let time = midnight
                .checked_add(jiff::Span::new().hours(hour))
                .expect("time");
            taken.push(time);
            kept.insert(time);
        }

        let candidates: Vec<Candidate> = kept
            .iter()
            .map(|t| Candidate {
                id: t.to_string(),
                time: *t,
                tags: Vec::new(),
            })
            .collect();
        let decisions = decide(&policy, &candidates).expect("policy");
        kept = decisions
            .iter()
            .filter(|d| d.keep())
            .map(|d| d.time)
            .collect();

        let Some(&newest) = taken.last() else {
            continue;
        };
        let thirty_days = before(newest, parse_duration("30d").expect("span")).expect("since");
        let one_year = before(newest, parse_duration("1y").expect("span")).expect("since");
        // Promised: every backup of the last 30 days.
        for t in taken.iter().filter(|t| **t >= thirty_days) {
            assert!(
                kept.contains(t),
                "day {day}: {t} (within 30 days) was removed"
            );
        }
        // Promised: the newest backup of every month of the last year.
        let mut newest_of_month: BTreeMap<(i16, i8), Timestamp> = BTreeMap::new();
        for t in taken.iter().filter(|t| **t >= one_year) {
            newest_of_month.insert(month_of(*t), *t);
        }
        for (month, t) in &newest_of_month {
            assert!(
                kept.contains(t),
                "day {day}: the newest of {month:?}, {t}, was removed"
            );
        }
        // And nothing more.
        for t in &kept {
            let monthly = newest_of_month.get(&month_of(*t)) == Some(t);
            assert!(
                *t >= thirty_days || monthly,
                "day {day}: {t} is kept though no rule promises it"
            );
        }
    }
    // A year and a month in: 30 days of backups plus one per month for the rest of the year.
    assert!((60..=75).contains(&kept.len()), "{}", kept.len());
}
