//! Points in time and durations as people type them on the command line: `--at "2026-11-20
//! 14:00"`, `--at 3d`, `--since 2026-11-01`, and later retention windows (`30d`, `1y`).
//!
//! A time without a zone is UTC, because the backup hosts and the servers they read may sit in
//! different zones and a support ticket quoting "14:00" must mean the same instant everywhere;
//! a zone can be given as an offset (`+01:00`), `Z`, a bracketed or trailing IANA name.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, Zoned};

use crate::error::{Error, Result};

/// A length of time: `30d`, `12h`, `2w`, `1y`, `6mo`, `1d 12h` (jiff's friendly format, or
/// ISO 8601 `P30D`). Calendar units count in UTC.
pub fn parse_duration(text: &str) -> Result<Span> {
    let trimmed = text.trim();
    let span: Span = trimmed.parse().map_err(|e| {
        Error::invalid(format!("{text:?} is not a duration ({e})"))
            .with_hint("write it like 30d, 12h, 2w, 6mo or 1y")
    })?;
    if span.is_negative() || span.is_zero() {
        return Err(Error::invalid(format!(
            "the duration {text:?} is not positive"
        )));
    }
    Ok(span)
}

/// A length of time for a setting given as `flag` (`--grace 1h`, `--lock-wait 2s`), where
/// `0` (with or without a unit) means none.
pub fn parse_setting_duration(text: &str, flag: &str) -> Result<std::time::Duration> {
    if text.trim().trim_end_matches(|c: char| c.is_alphabetic()) == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let span = parse_duration(text).map_err(|e| e.context(flag.to_string()))?;
    let now = Timestamp::now();
    let since = before(now, span)?;
    std::time::Duration::try_from(now.duration_since(since))
        .map_err(|_| Error::invalid(format!("{flag} {text} is out of range")))
}

/// `now` minus `span`, calendar units (days, months, years) counted in UTC.
pub fn before(now: Timestamp, span: Span) -> Result<Timestamp> {
    now.to_zoned(TimeZone::UTC)
        .checked_sub(span)
        .map(|z| z.timestamp())
        .map_err(|e| Error::invalid(format!("{span} before {now} is out of range ({e})")))
}

/// A point in time: an absolute time (`2026-11-20 14:00`, `2026-11-20T14:00:00+01:00`,
/// `2026-11-20 14:00 Europe/Berlin`, `2026-11-20`, meaning its 00:00) or a duration before
/// `now` (`3d`).
pub fn parse_point_in_time(text: &str, now: Timestamp) -> Result<Timestamp> {
    let trimmed = text.trim();
    if let Ok(span) = parse_duration(trimmed) {
        return before(now, span);
    }
    absolute(trimmed).ok_or_else(|| {
        Error::invalid(format!("{text:?} is neither a time nor a duration")).with_hint(
            "give a time such as \"2026-11-20 14:00\" (UTC), \"2026-11-20 14:00+01:00\" or \
                 \"2026-11-20 14:00 Europe/Berlin\", or a duration before now such as 3d or 12h",
        )
    })
}

fn absolute(text: &str) -> Option<Timestamp> {
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Some(ts);
    }
    if let Ok(zoned) = text.parse::<Zoned>() {
        return Some(zoned.timestamp());
    }
    if let Some((civil, zone)) = text.rsplit_once(' ')
        && let Some(local) = civil_time(civil)
        && let Ok(tz) = TimeZone::get(zone)
    {
        return local.to_zoned(tz).ok().map(|z| z.timestamp());
    }
    civil_time(text).and_then(|local| local.to_zoned(TimeZone::UTC).ok().map(|z| z.timestamp()))
}

fn civil_time(text: &str) -> Option<DateTime> {
    if let Ok(dt) = text.parse::<DateTime>() {
        return Some(dt);
    }
    text.parse::<Date>()
        .ok()
        .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
}

/// A length of time for people to read: `45s`, `3m 20s`, `1h 05m`.
pub fn display_duration(seconds: f64) -> String {
    let whole = seconds.round() as u64;
    match (whole / 3600, whole % 3600 / 60, whole % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s:02}s"),
        (h, m, _) => format!("{h}h {m:02}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_hours_minutes_and_seconds() {
        assert_eq!(display_duration(45.0), "45s");
        assert_eq!(display_duration(200.0), "3m 20s");
        assert_eq!(display_duration(3900.0), "1h 05m");
        assert_eq!(display_duration(5400.0), "1h 30m");
    }

    fn now() -> Timestamp {
        "2026-11-25T10:00:00Z".parse().expect("now")
    }

    fn at(text: &str) -> String {
        parse_point_in_time(text, now()).expect(text).to_string()
    }

    #[test]
    fn times_without_a_zone_are_utc_and_zones_are_honoured() {
        assert_eq!(at("2026-11-20 14:00"), "2026-11-20T14:00:00Z");
        assert_eq!(at("2026-11-20T14:00:30"), "2026-11-20T14:00:30Z");
        assert_eq!(at("2026-11-20"), "2026-11-20T00:00:00Z");
        assert_eq!(at("2026-11-20 14:00+01:00"), "2026-11-20T13:00:00Z");
        assert_eq!(at("2026-11-20T14:00Z"), "2026-11-20T14:00:00Z");
        assert_eq!(at("2026-11-20 14:00 Europe/Berlin"), "2026-11-20T13:00:00Z");
        assert_eq!(
            at("2026-11-20T14:00[Europe/Berlin]"),
            "2026-11-20T13:00:00Z"
        );
    }

    #[test]
    fn durations_count_back_from_now() {
        assert_eq!(at("3d"), "2026-11-22T10:00:00Z");
        assert_eq!(at("12h"), "2026-11-24T22:00:00Z");
        assert_eq!(at("1y"), "2025-11-25T10:00:00Z");
        assert_eq!(at("1d 6h"), "2026-11-24T04:00:00Z");
    }

    #[test]
    fn nonsense_is_refused_with_a_hint() {
        for bad in ["yesterday", "2026-13-01", "", "-3d", "0d", "14:00"] {
            let err = parse_point_in_time(bad, now()).expect_err(bad);
            assert!(err.to_string().contains("is n"), "{bad}: {err}");
        }
    }
}
