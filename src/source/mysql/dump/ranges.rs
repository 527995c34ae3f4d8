//! Splitting a table into primary-key ranges that several connections read at once.
//!
//! Only tables whose primary key is all integers are split: their bounds are plain numbers, so
//! the range conditions compare exactly as the server orders the key. A range boundary is a
//! chunk boundary (each range starts a fresh chunker), so boundaries that move between runs
//! would cost deduplication around them. They are therefore taken from the previous
//! snapshot's chunk `first_key`s, each chosen by a hash of that key: the same chunk starts give
//! the same boundaries, run after run (also when rows inside a chunk change), and a boundary
//! lands exactly where a chunk of the previous run started. Only a table with no earlier chunks is split evenly
//! between its smallest and largest leading key; the run after takes its boundaries from that
//! run's chunks, and from then on they stay.

use crate::repo::tree::ChunkRef;
use crate::sql::quote_ident;

/// Rows whose key is at least `from` and below `to` (either open). A bound may be shorter than
/// the key: it then bounds the leading columns only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRange {
    pub from: Option<Vec<i128>>,
    pub to: Option<Vec<i128>>,
}

impl KeyRange {
    pub fn whole() -> Self {
        KeyRange::default()
    }

    /// The WHERE condition selecting this range of `key_columns`, or `None` for the whole table.
    /// Written as nested OR/AND rather than a row comparison, which every server version turns
    /// into an index range.
    pub fn condition(&self, key_columns: &[String]) -> Option<String> {
        let lower = self
            .from
            .as_deref()
            .map(|b| compare(key_columns, b, ">", ">="));
        let upper = self
            .to
            .as_deref()
            .map(|b| compare(key_columns, b, "<", "<"));
        match (lower, upper) {
            (None, None) => None,
            (Some(c), None) | (None, Some(c)) => Some(c),
            (Some(l), Some(u)) => Some(format!("{l} AND {u}")),
        }
    }
}

/// `(k1, k2, …) <op> (v1, v2, …)` lexicographically: strict on every column but the last of
/// the bound, where `last` applies.
fn compare(columns: &[String], bound: &[i128], strict: &str, last: &str) -> String {
    let n = bound.len().min(columns.len());
    let column = |i: usize| quote_ident(&columns[i]);
    let mut condition = format!("{} {last} {}", column(n - 1), bound[n - 1]);
    for i in (0..n - 1).rev() {
        condition = format!(
            "({c} {strict} {v} OR ({c} = {v} AND {condition}))",
            c = column(i),
            v = bound[i]
        );
    }
    condition
}

/// Consecutive ranges covering the whole key space, split at `points` (sorted, distinct).
pub fn ranges_between(points: &[Vec<i128>]) -> Vec<KeyRange> {
    let mut ranges = Vec::with_capacity(points.len() + 1);
    let mut from = None;
    for point in points {
        ranges.push(KeyRange {
            from: from.take(),
            to: Some(point.clone()),
        });
        from = Some(point.clone());
    }
    ranges.push(KeyRange { from, to: None });
    ranges
}

/// Split points for about `wanted` ranges from the previous run's chunks of the table: the
/// `first_key` of every chunk whose key hashes into a 1-in-2^b sample, with b the largest that
/// still gives `wanted` ranges on average. The key, not the chunk's content id, is hashed: a
/// row changing inside a chunk changes its id but rarely where it starts, so the split point
/// stays. `None` when the chunks carry no usable keys (another key, or a first run).
pub fn points_from_chunks(
    chunks: &[ChunkRef],
    key_len: usize,
    wanted: usize,
) -> Option<Vec<Vec<i128>>> {
    if wanted < 2 {
        return Some(Vec::new());
    }
    let keyed: Vec<(u32, Vec<i128>)> = chunks
        .iter()
        .skip(1)
        .filter_map(|c| {
            let literals = c.first_key.as_deref()?;
            let key = parse_key(literals, key_len)?;
            let hash = blake3::hash(literals.join(",").as_bytes());
            let bytes = hash.as_bytes();
            Some((
                u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
                key,
            ))
        })
        .collect();
    if keyed.is_empty() {
        return None;
    }
    // 2^b ≤ candidates / (wanted - 1): on average wanted - 1 points chosen.
    let per_point = (keyed.len() / (wanted - 1)).max(1);
    let bits = usize::BITS - 1 - per_point.leading_zeros();
    let mask = (1u32 << bits.min(31)) - 1;
    let mut points: Vec<Vec<i128>> = keyed
        .into_iter()
        .filter(|(sample, _)| sample & mask == 0)
        .map(|(_, key)| key)
        .collect();
    points.sort();
    points.dedup();
    Some(points)
}

/// Split points for `wanted` ranges of equal width over the leading key column's `min..=max`.
pub fn points_between(min: i128, max: i128, wanted: usize) -> Vec<Vec<i128>> {
    if wanted < 2 || max <= min {
        return Vec::new();
    }
    let width = (max - min) / wanted as i128;
    if width == 0 {
        return Vec::new();
    }
    (1..wanted as i128).map(|i| vec![min + width * i]).collect()
}

fn parse_key(literals: &[String], key_len: usize) -> Option<Vec<i128>> {
    if literals.len() != key_len {
        return None;
    }
    literals.iter().map(|l| l.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::ids::BlobId;

    fn columns(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn conditions_bound_the_key_lexicographically() {
        let key = columns(&["a", "b"]);
        assert_eq!(KeyRange::whole().condition(&key), None);
        let range = KeyRange {
            from: Some(vec![3, 7]),
            to: Some(vec![9]),
        };
        assert_eq!(
            range.condition(&key).as_deref(),
            Some("(`a` > 3 OR (`a` = 3 AND `b` >= 7)) AND `a` < 9")
        );
        let upper = KeyRange {
            from: None,
            to: Some(vec![-2, 0]),
        };
        assert_eq!(
            upper.condition(&key).as_deref(),
            Some("(`a` < -2 OR (`a` = -2 AND `b` < 0))")
        );
    }

    #[test]
    fn ranges_cover_everything_once() {
        let ranges = ranges_between(&[vec![10], vec![20]]);
        assert_eq!(ranges.len(), 3);
        assert_eq!(ranges[0].from, None);
        assert_eq!(ranges[0].to, Some(vec![10]));
        assert_eq!(ranges[1].from, Some(vec![10]));
        assert_eq!(ranges[2].to, None);
        assert_eq!(ranges_between(&[]), vec![KeyRange::whole()]);
        assert_eq!(
            points_between(1, 100, 4),
            vec![vec![25], vec![49], vec![73]]
        );
        assert!(points_between(5, 5, 4).is_empty());
    }

    #[test]
    fn points_from_chunks_are_stable_and_about_as_many_as_wanted() {
        let chunk = |i: u32| {
            let mut id = [0u8; 32];
            // A spread of content ids, as keyed hashes give.
            let h = i.wrapping_mul(2_654_435_761);
            id[..4].copy_from_slice(&h.to_le_bytes());
            ChunkRef {
                id: BlobId(id),
                rows: 100,
                first_key: Some(vec![(i * 100).to_string()]),
            }
        };
        let chunks: Vec<ChunkRef> = (0..4096).map(chunk).collect();
        let points = points_from_chunks(&chunks, 1, 16).expect("keys");
        assert!((4..=64).contains(&points.len()), "{}", points.len());
        // Every point is where a chunk started, and a slightly different table (one chunk
        // more at the end) keeps every one of them.
        assert!(points.iter().all(|p| p[0] % 100 == 0));
        let grown: Vec<ChunkRef> = (0..4100).map(chunk).collect();
        let again = points_from_chunks(&grown, 1, 16).expect("keys");
        assert!(points.iter().all(|p| again.contains(p)));
        // Rows changed inside every chunk (new content ids, same starts): the same points.
        let changed: Vec<ChunkRef> = chunks
            .iter()
            .map(|c| ChunkRef {
                id: BlobId([7; 32]),
                ..c.clone()
            })
            .collect();
        assert_eq!(points_from_chunks(&changed, 1, 16).expect("keys"), points);
        // Keys of another shape are not used.
        assert_eq!(points_from_chunks(&chunks, 2, 16), None);
    }
}
