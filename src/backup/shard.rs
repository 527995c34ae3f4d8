//! Scale-out: one backup run split over N processes (`backup --shard K/N --run-id R`).
//!
//! The databases are dealt out by size, largest first, each to the shard with the fewest bytes
//! so far, so the shards finish at about the same time. The first shard of a run to start
//! stores that assignment as the run's plan ([`crate::repo::shard_plan`]); the others follow
//! it, so a database is read by exactly one shard even if sizes changed in between. A database
//! created after the plan was stored goes to the shard a hash of its name picks, which every
//! shard computes alike.

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::repo::shard_plan::ShardPlan;
use crate::repo::snapshot::ShardOf;
use crate::source::mysql::catalog::DatabaseInfo;

/// `K/N`: shard K (from 0, as a Kubernetes Indexed Job's `JOB_COMPLETION_INDEX`) of N.
pub fn parse_shard(text: &str) -> Result<(u32, u32)> {
    let usage = || {
        Error::invalid(format!("--shard {text:?} is not K/N"))
            .with_hint("give this process's share as K/N with 0 <= K < N, e.g. --shard 0/3, 1/3, 2/3 on three hosts")
    };
    let (k, n) = text.split_once('/').ok_or_else(usage)?;
    let (k, n): (u32, u32) = (
        k.trim().parse().map_err(|_| usage())?,
        n.trim().parse().map_err(|_| usage())?,
    );
    if n == 0 || n > 1000 {
        return Err(Error::invalid(format!(
            "--shard {text}: the number of shards must be between 1 and 1000"
        )));
    }
    if k >= n {
        return Err(Error::invalid(format!(
            "--shard {text}: shards count from 0, so the last of {n} is {}/{n}",
            n - 1
        )));
    }
    Ok((k, n))
}

/// A run id every shard of the run is given alike: letters, digits and `._:-`, at most 128.
pub fn check_run_id(run_id: &str) -> Result<()> {
    let fine = !run_id.is_empty()
        && run_id.len() <= 128
        && run_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    if fine {
        Ok(())
    } else {
        Err(Error::invalid(format!("--run-id {run_id:?} is not a usable run id"))
            .with_hint("use 1-128 letters, digits, '.', '_', ':' or '-', the same on every shard (e.g. the scheduler's job name or run number)"))
    }
}

/// Deal `databases` out over `count` shards by size, largest first, each to the shard with
/// the fewest bytes so far (ties: the lower shard). Each shard's names come back sorted.
pub fn assign(databases: &[DatabaseInfo], count: u32) -> Vec<Vec<String>> {
    let mut by_size: Vec<&DatabaseInfo> = databases.iter().collect();
    by_size.sort_by(|a, b| {
        b.approx_bytes
            .cmp(&a.approx_bytes)
            .then(a.name.cmp(&b.name))
    });
    let count = count.max(1) as usize;
    let mut shards: Vec<(u64, Vec<String>)> = vec![(0, Vec::new()); count];
    for db in by_size {
        let lightest = (0..count)
            .min_by_key(|&i| (shards[i].0, i))
            .unwrap_or_default();
        shards[lightest].0 += db.approx_bytes.max(1);
        shards[lightest].1.push(db.name.clone());
    }
    shards
        .into_iter()
        .map(|(_, mut names)| {
            names.sort();
            names
        })
        .collect()
}

/// The shard a database the plan does not know (created after it) belongs to.
fn shard_by_name(name: &str, count: u32) -> u32 {
    let hash = blake3::hash(name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    (u64::from_le_bytes(first) % u64::from(count.max(1))) as u32
}

/// The databases of `databases` that are `shard`'s to read under `plan`.
pub fn share_of(
    plan: &ShardPlan,
    shard: &ShardOf,
    databases: Vec<DatabaseInfo>,
) -> Vec<DatabaseInfo> {
    let planned: HashSet<&str> = plan.shards.iter().flatten().map(String::as_str).collect();
    let mine: HashSet<&str> = plan
        .shards
        .get(shard.index as usize)
        .map(|names| names.iter().map(String::as_str).collect())
        .unwrap_or_default();
    databases
        .into_iter()
        .filter(|db| {
            if planned.contains(db.name.as_str()) {
                mine.contains(db.name.as_str())
            } else {
                shard_by_name(&db.name, shard.count) == shard.index
            }
        })
        .collect()
}

/// The plan of `shard`'s run, if a shard of it stored one already. A plan stored longer ago
/// than a run may last (`lease`) belongs to an earlier run that used the same id: following it
/// would file this backup under that run, so it is refused.
pub async fn stored_plan(
    repo: &Repository,
    shard: &ShardOf,
    lease: std::time::Duration,
) -> Result<Option<ShardPlan>> {
    let Some(plan) = repo.load_shard_plan(&shard.run_id).await? else {
        return Ok(None);
    };
    let age = jiff::Timestamp::now().duration_since(plan.created);
    if age.is_positive() && age.unsigned_abs() > lease {
        return Err(Error::invalid(format!(
            "run id {} was first used at {} (longer ago than a run may last): every backup run needs its own --run-id",
            shard.run_id, plan.created
        ))
        .with_hint("derive it from the scheduler's run, e.g. github-${{ github.run_id }} or the Kubernetes Job's name"));
    }
    fits(plan, shard).map(Some)
}

/// Store the plan dealing `databases` out, unless another shard of the run stored one first;
/// returns the plan the run follows.
pub async fn store_plan(
    repo: &Repository,
    shard: &ShardOf,
    databases: &[DatabaseInfo],
) -> Result<ShardPlan> {
    let proposed = ShardPlan {
        version: 1,
        run_id: shard.run_id.clone(),
        created: jiff::Timestamp::now(),
        shards: assign(databases, shard.count),
    };
    fits(repo.store_shard_plan(proposed).await?, shard)
}

/// Refuse a plan made for another number of shards.
fn fits(plan: ShardPlan, shard: &ShardOf) -> Result<ShardPlan> {
    if plan.count() != shard.count as usize {
        return Err(Error::invalid(format!(
            "run {} was planned for {} shards, this process is shard {}/{}",
            shard.run_id,
            plan.count(),
            shard.index,
            shard.count
        ))
        .with_hint(
            "give every shard of a run the same N, or start a new run with another --run-id",
        ));
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(name: &str, bytes: u64) -> DatabaseInfo {
        DatabaseInfo {
            name: name.to_string(),
            charset: String::new(),
            collation: String::new(),
            approx_bytes: bytes,
        }
    }

    #[test]
    fn shards_are_parsed_and_checked() {
        assert_eq!(parse_shard("0/3").unwrap(), (0, 3));
        assert_eq!(parse_shard("2/3").unwrap(), (2, 3));
        for bad in ["3/3", "1", "a/3", "0/0", "-1/3", "1/3/4"] {
            assert!(parse_shard(bad).is_err(), "{bad} was accepted");
        }
        assert!(check_run_id("nightly-2026-11-25T02:00").is_ok());
        for bad in ["", "a b", "x/y", &"r".repeat(129)] {
            assert!(check_run_id(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn sizes_are_balanced_and_every_database_is_dealt_once() {
        let mut databases = vec![db("big", 1000), db("mid", 600), db("mid2", 500)];
        databases.extend((0..90).map(|i| db(&format!("s{i:02}"), 10)));
        let shards = assign(&databases, 3);
        let size = |names: &Vec<String>| -> u64 {
            names
                .iter()
                .map(|n| {
                    databases
                        .iter()
                        .find(|d| &d.name == n)
                        .unwrap()
                        .approx_bytes
                })
                .sum()
        };
        let sizes: Vec<u64> = shards.iter().map(size).collect();
        assert_eq!(sizes.iter().sum::<u64>(), 3000);
        assert!(
            sizes.iter().all(|&s| (900..=1100).contains(&s)),
            "{sizes:?}"
        );
        let mut all: Vec<&String> = shards.iter().flatten().collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), databases.len());
        assert_eq!(
            assign(&databases, 3),
            shards,
            "the same input deals the same way"
        );
    }

    #[test]
    fn databases_the_plan_does_not_know_go_by_name_to_exactly_one_shard() {
        let plan = ShardPlan {
            version: 1,
            run_id: "r".into(),
            created: jiff::Timestamp::UNIX_EPOCH,
            shards: vec![vec!["a".into()], vec!["b".into()], vec![]],
        };
        let live = || {
            vec![
                db("a", 1),
                db("b", 1),
                db("new1", 1),
                db("new2", 1),
                db("new3", 1),
            ]
        };
        let mut seen = Vec::new();
        for index in 0..3 {
            let shard = ShardOf {
                run_id: "r".into(),
                index,
                count: 3,
            };
            seen.extend(share_of(&plan, &shard, live()).into_iter().map(|d| d.name));
        }
        seen.sort();
        assert_eq!(seen, ["a", "b", "new1", "new2", "new3"]);
    }
}
