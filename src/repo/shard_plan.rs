//! Shard plans (`shards/<id>`): which databases each process of one sharded backup run reads.
//!
//! `backup --shard K/N --run-id R` runs on N hosts or pods at once. They must split the
//! databases exactly, none twice and none left out, although they start at different moments
//! and may see different sizes. So one of them decides: the first to find no plan for `R`
//! stores one with a conditional create, and every other reads that one. The plan is named by
//! a hash of `R`, so all of them look in the same place; the storage's create-if-absent makes
//! exactly one proposal win.

use serde::{Deserialize, Serialize};

use super::{MAX_METADATA_LEN, MAX_METADATA_OBJECT, Repository, paths};
use crate::crypto::{Role, pack_body, unpack_body};
use crate::error::{Error, ErrorKind, Result};
use crate::storage::PutOutcome;

/// The stored form of a shard plan (JSON compressed and sealed with the metadata key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPlan {
    pub version: u32,
    /// The run the plan is for (`backup --run-id`).
    pub run_id: String,
    pub created: jiff::Timestamp,
    /// The database names of each shard, shard 0 first; `count` is its length.
    pub shards: Vec<Vec<String>>,
}

impl ShardPlan {
    pub fn count(&self) -> usize {
        self.shards.len()
    }
}

/// Where the plan of `run_id` lives.
fn object_name(run_id: &str) -> String {
    format!(
        "{}{}",
        paths::SHARD_PLANS,
        blake3::hash(run_id.as_bytes()).to_hex()
    )
}

impl Repository {
    /// The plan stored for `run_id`, if one is.
    pub async fn load_shard_plan(&self, run_id: &str) -> Result<Option<ShardPlan>> {
        let name = object_name(run_id);
        let sealed = match self.storage().get(&name, MAX_METADATA_OBJECT).await {
            Ok(sealed) => sealed,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.context(format!("reading the shard plan of run {run_id}"))),
        };
        let json = unpack_body(
            self.keys(),
            Role::ShardPlan,
            &sealed,
            MAX_METADATA_LEN,
            &name,
        )?;
        let plan: ShardPlan = serde_json::from_slice(&json).map_err(|e| {
            Error::corrupt(format!("{name} is not a valid shard plan")).with_source(e)
        })?;
        if plan.run_id != run_id {
            return Err(Error::corrupt(format!(
                "{name} is the shard plan of run {:?}, not of {run_id:?}",
                plan.run_id
            )));
        }
        Ok(Some(plan))
    }

    /// Store `proposed` unless a plan for its run exists; returns the plan every shard of the
    /// run follows (the proposal, or the one another shard stored first).
    pub async fn store_shard_plan(&self, proposed: ShardPlan) -> Result<ShardPlan> {
        let name = object_name(&proposed.run_id);
        let json = serde_json::to_vec(&proposed)
            .map_err(|e| Error::invalid("encoding the shard plan").with_source(e))?;
        let sealed = pack_body(self.keys(), Role::ShardPlan, &json)?;
        match self.storage().put_if_absent(&name, &sealed).await? {
            PutOutcome::Created => Ok(proposed),
            PutOutcome::AlreadyExists => {
                self.load_shard_plan(&proposed.run_id)
                    .await?
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::Storage,
                            format!(
                                "the shard plan of run {} exists and is gone again",
                                proposed.run_id
                            ),
                        )
                        .with_hint(
                            "`forget` removed the run meanwhile: give this run a new --run-id",
                        )
                    })
            }
        }
    }

    /// Delete the plan of `run_id`, once `forget` removed every snapshot of that run (a plan
    /// is only read by the run's own shards, and by a later run reusing the id, which is
    /// refused while the plan exists).
    pub async fn remove_shard_plan(&self, run_id: &str) -> Result<()> {
        match self.storage().delete(&object_name(run_id)).await {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                Err(e.context(format!("removing the shard plan of run {run_id}")))
            }
            _ => Ok(()),
        }
    }
}
