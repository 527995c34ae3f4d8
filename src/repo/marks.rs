//! Prune marks (`prune/<hash>`): packs a prune condemned, kept until a later sweep proves that
//! nothing needs them any more.
//!
//! A mark is the first of prune's two phases; nothing is deleted when it is written. While a
//! mark exists, index loading prefers any other copy of a blob over one in a condemned pack and
//! backups do not deduplicate against blobs found only in condemned packs (docs/FORMAT.md,
//! "Prune").

use serde::{Deserialize, Serialize};

use super::ids::PackId;
use super::{Repository, name_hash, paths};
use crate::crypto::Role;
use crate::error::{Error, ErrorKind, Result};

/// The stored form of a mark (JSON, compressed and sealed with [`Role::PruneMark`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PruneMark {
    pub version: u32,
    /// The host's clock when the mark was made; informational only.
    pub created: jiff::Timestamp,
    pub host: String,
    pub packs: Vec<CondemnedPack>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CondemnedPack {
    pub id: PackId,
    pub size: u64,
    pub why: Condemned,
}

/// Why a pack was condemned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condemned {
    /// No snapshot referenced any of its blobs.
    Unused,
    /// Mostly unused; its used blobs were copied to new packs first.
    Repacked,
    /// Stored but named by no index file, and older than every unfinished run (left by a run
    /// that died before writing its index).
    Unindexed,
}

/// A mark found in the repository, with the store's time for it.
#[derive(Debug, Clone)]
pub struct ListedMark {
    pub name: String,
    pub modified: Option<jiff::Timestamp>,
    pub mark: PruneMark,
}

impl Repository {
    /// Store a mark; returns its object name.
    pub async fn save_prune_mark(&self, mark: &PruneMark) -> Result<String> {
        let id = self
            .save_json(paths::PRUNE_MARKS, Role::PruneMark, mark)
            .await?;
        Ok(format!("{}{}", paths::PRUNE_MARKS, hex::encode(id)))
    }

    /// Every mark. A mark that cannot be read is an error: without it, a backup could
    /// deduplicate against a pack a sweep is about to delete.
    pub async fn list_prune_marks(&self) -> Result<Vec<ListedMark>> {
        let (marks, mut damaged) = self.list_prune_marks_reporting().await?;
        match damaged.pop() {
            Some(e) => Err(e.with_hint(
                "a prune mark is damaged: run `coffer check`; backups and prunes stop until it is readable or removed",
            )),
            None => Ok(marks),
        }
    }

    /// Every readable mark, and the damaged ones as errors (for `check`).
    pub async fn list_prune_marks_reporting(&self) -> Result<(Vec<ListedMark>, Vec<Error>)> {
        let mut marks = Vec::new();
        let mut damaged = Vec::new();
        for meta in self.storage().list(paths::PRUNE_MARKS).await? {
            let loaded = match name_hash(&meta.name) {
                Ok(_) => {
                    self.load_json::<PruneMark>(&meta.name, Role::PruneMark)
                        .await
                }
                Err(e) => Err(e),
            };
            match loaded {
                Ok(mark) => marks.push(ListedMark {
                    name: meta.name,
                    modified: meta.modified,
                    mark,
                }),
                // Swept since the listing.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) if e.kind() == ErrorKind::Storage => return Err(e),
                Err(e) => damaged.push(e.context("prune mark")),
            }
        }
        Ok((marks, damaged))
    }
}
