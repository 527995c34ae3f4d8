//! GTID sets as the servers print them, and whether one contains another: a server whose set
//! no longer holds every transaction an earlier snapshot saw went back in time (restored from a
//! backup, a replica promoted that had not applied everything), whatever its identity says.
//!
//! MySQL: `uuid:1-5:7,uuid2:1-3`, and since 8.4 tagged `uuid:tag:1-5` (`gtid_executed`;
//! manual "GTID Format and Storage"). MariaDB: `domain-server-sequence` per replication
//! domain, comma-separated (`gtid_binlog_pos`, the last transaction logged per domain).

use std::collections::BTreeMap;

/// A parsed GTID set.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GtidSet {
    /// `(source uuid, tag)` to the transaction numbers held, as inclusive intervals.
    Mysql(BTreeMap<(String, String), Vec<(u64, u64)>>),
    /// Replication domain to the last sequence number logged in it.
    Mariadb(BTreeMap<u32, u64>),
}

fn parse(text: &str) -> Option<GtidSet> {
    let parts: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        return None;
    }
    if parts.iter().all(|p| p.contains(':')) {
        let mut sets: BTreeMap<(String, String), Vec<(u64, u64)>> = BTreeMap::new();
        for part in parts {
            let mut fields = part.split(':');
            let uuid = fields.next()?.to_ascii_lowercase();
            let mut tag = String::new();
            for field in fields {
                let interval = match field.split_once('-') {
                    Some((a, b)) => (a.parse().ok(), b.parse().ok()),
                    None => (field.parse().ok(), field.parse().ok()),
                };
                match interval {
                    (Some(a), Some(b)) if a <= b => sets
                        .entry((uuid.clone(), tag.clone()))
                        .or_default()
                        .push((a, b)),
                    // A tag starts the intervals that follow it (8.4).
                    _ if field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                        tag = field.to_ascii_lowercase()
                    }
                    _ => return None,
                }
            }
        }
        return Some(GtidSet::Mysql(sets));
    }
    let mut domains = BTreeMap::new();
    for part in parts {
        let mut fields = part.split('-');
        let (domain, _server, sequence) = (fields.next()?, fields.next()?, fields.next()?);
        if fields.next().is_some() {
            return None;
        }
        let sequence: u64 = sequence.parse().ok()?;
        let entry = domains.entry(domain.parse().ok()?).or_insert(0);
        *entry = (*entry).max(sequence);
    }
    Some(GtidSet::Mariadb(domains))
}

/// Whether the set `now` holds every transaction of `then`: `Some(false)` when the server went
/// back, `None` when either is empty, unreadable or of another server kind (nothing to tell).
pub fn contains(now: &str, then: &str) -> Option<bool> {
    match (parse(now)?, parse(then)?) {
        (GtidSet::Mysql(now), GtidSet::Mysql(then)) => Some(then.iter().all(|(key, intervals)| {
            let held = now.get(key).map(Vec::as_slice).unwrap_or_default();
            intervals.iter().all(|&(a, b)| covered(held, a, b))
        })),
        (GtidSet::Mariadb(now), GtidSet::Mariadb(then)) => Some(
            then.iter()
                .all(|(domain, seq)| now.get(domain).is_some_and(|n| n >= seq)),
        ),
        _ => None,
    }
}

/// Whether `a..=b` lies within the union of `intervals`.
fn covered(intervals: &[(u64, u64)], a: u64, b: u64) -> bool {
    let mut sorted = intervals.to_vec();
    sorted.sort_unstable();
    let mut next = a;
    for (start, end) in sorted {
        if start > next {
            break;
        }
        if end >= next {
            if end >= b {
                return true;
            }
            next = end + 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::contains;

    #[test]
    fn a_set_that_lost_transactions_is_told_apart() {
        let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let other = "55778904-0299-11f1-b1b8-4ef0c4956feb";
        assert_eq!(
            contains(&format!("{uuid}:1-10"), &format!("{uuid}:1-7")),
            Some(true)
        );
        assert_eq!(
            contains(&format!("{uuid}:1-5"), &format!("{uuid}:1-7")),
            Some(false)
        );
        assert_eq!(
            contains(
                &format!("{uuid}:1-3:4-9,{other}:1-2"),
                &format!("{uuid}:1-9,{other}:2")
            ),
            Some(true)
        );
        assert_eq!(
            contains(&format!("{uuid}:1-9"), &format!("{uuid}:1-9,{other}:1")),
            Some(false)
        );
        // MySQL 8.4 tagged GTIDs (binlog_transaction_with_GTID_TAG.000001's previous set).
        assert_eq!(
            contains(
                &format!("{other}:1-13:mytag:1-2"),
                &format!("{other}:1-13:mytag:1-2")
            ),
            Some(true)
        );
        assert_eq!(
            contains(
                &format!("{other}:1-13:mytag:1"),
                &format!("{other}:1-13:mytag:1-2")
            ),
            Some(false)
        );
        // MariaDB: the last sequence per domain.
        assert_eq!(contains("0-1-120,1-2-5", "0-1-100"), Some(true));
        assert_eq!(contains("0-2-90", "0-1-100"), Some(false));
        assert_eq!(contains("0-1-120", "0-1-100,1-2-5"), Some(false));
        // Nothing to tell.
        assert_eq!(contains("", "0-1-100"), None);
        assert_eq!(contains("0-1-100", &format!("{uuid}:1")), None);
        assert_eq!(contains("garbage", "0-1-1"), None);
    }
}
