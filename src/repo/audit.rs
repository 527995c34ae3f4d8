//! The audit log: who backed up, restored, dumped or looked at what, when and why.
//!
//! Each record is its own encrypted object `audit/<hash>`, written once with put-if-absent and
//! never rewritten, so the log only grows and a host that may create objects but not delete
//! them (a backup host's credentials) can add to it but not erase it. An operation writes a
//! `started` record before it touches anything and a second record with its outcome, sharing
//! an operation id; a process killed in between still leaves the first.
//!
//! Records are chained (since coffer 0.4): each names the record the storage showed newest when
//! it was written (`previous`; the parts of one operation, such as the databases of an estate
//! restore, name the record the operation wrote just before them, without listing again), so a
//! record deleted from the middle leaves a record naming one that is gone; and a record written
//! with a full key carries that key's mark, so it is told apart from one a write-only key wrote
//! ([`Repository::verify_audit`]).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Repository, paths};
use crate::crypto::Role;
use crate::error::{Error, Result};

/// One audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub version: u32,
    /// Random id shared by the `started` record of an operation and the one with its outcome.
    pub operation: String,
    pub time: Timestamp,
    /// The operating-system user coffer ran as, and the host.
    pub user: String,
    pub host: String,
    /// `backup`, `restore`, `dump`, `history`, `forget`, `prune`, `verify-restore`.
    pub command: String,
    /// The command line with the values of `--repo` and `--mysql` left out (they may carry
    /// credentials); secrets never reach the command line.
    pub arguments: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub where_: Option<String>,
    /// The server read or written (`host:port` or socket; never credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_database: Option<String>,
    pub outcome: AuditOutcome,
    /// Counts the operation reports (rows matched/inserted/replaced/skipped, tables, databases).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub counts: std::collections::BTreeMap<String, u64>,
    /// Whose account restored views, routines, triggers and events run as (restore, dump):
    /// kept as stored, or replaced by the restoring account and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definers: Option<String>,
    /// The record (its object's hex id) the storage listed newest when this one was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// A full key's mark over the record without it (see the snapshot writer mark).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_key_mark: Option<String>,
}

impl AuditRecord {
    /// The bytes a full key's mark covers: the record without its mark, keys sorted.
    pub fn marked_bytes(&self) -> Vec<u8> {
        let mut unmarked = self.clone();
        unmarked.full_key_mark = None;
        super::snapshot::canonical_json(&unmarked)
    }
}

/// What `audit --verify` found.
#[derive(Debug, Default, Serialize)]
pub struct AuditVerification {
    pub records: usize,
    /// Records written with a full key, their mark verified.
    pub full_key: usize,
    /// Records without a full key's mark: written by a write-only key, or before coffer 0.4.
    pub not_full_key: usize,
    /// Records naming a predecessor that is gone (deleted from the log).
    pub gaps: Vec<String>,
    /// Records whose full-key mark does not verify (forged, or altered by someone holding the
    /// metadata key only).
    pub forged: Vec<String>,
    /// Records that cannot be read.
    pub damaged: Vec<String>,
}

impl AuditVerification {
    pub fn ok(&self) -> bool {
        self.gaps.is_empty() && self.forged.is_empty() && self.damaged.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "error")]
pub enum AuditOutcome {
    Started,
    Succeeded,
    /// With the error message (no secrets: errors never carry them).
    Failed(String),
}

/// Largest audit record read back (a record is a few KiB).
const MAX_AUDIT_RECORD: usize = 1 << 20;

impl Repository {
    /// Append one record to the audit log, chained to the newest record listed and marked
    /// with a full key's mark when this is one; returns the record's hex id.
    pub async fn append_audit(&self, record: &AuditRecord) -> Result<String> {
        let newest = self
            .storage
            .list(paths::AUDIT)
            .await?
            .into_iter()
            .max_by(|a, b| {
                a.modified
                    .cmp(&b.modified)
                    .then_with(|| a.name.cmp(&b.name))
            })
            .map(|newest| newest.name.trim_start_matches(paths::AUDIT).to_string());
        self.append_audit_after(record, newest).await
    }

    /// Append one record chained to `previous` (a record this process just wrote) without
    /// listing the log: the parts of one operation, thousands in an estate restore, would
    /// otherwise list a growing folder once each. Returns the record's hex id.
    pub async fn append_audit_after(
        &self,
        record: &AuditRecord,
        previous: Option<String>,
    ) -> Result<String> {
        let mut record = record.clone();
        record.previous = previous;
        record.full_key_mark = self.keys.writer_mark(&record.marked_bytes());
        let json = serde_json::to_vec(&record)
            .map_err(|e| Error::invalid("encoding the audit record").with_source(e))?;
        if json.len() > MAX_AUDIT_RECORD {
            return Err(Error::invalid("the audit record is too large")
                .with_hint("shorten --reason or --where"));
        }
        let id = self.save_json(paths::AUDIT, Role::Audit, &record).await?;
        Ok(hex::encode(id))
    }

    /// Check the audit log's chain and marks: every named predecessor present, every full-key
    /// mark verified (see [`AuditVerification`]). The newest records can still be deleted
    /// without a trace in the chain: the next record written names the newest one left.
    pub async fn verify_audit(&self) -> Result<AuditVerification> {
        let (loaded, damaged) = self
            .load_folder::<AuditRecord>(paths::AUDIT, Role::Audit)
            .await?;
        let present: std::collections::HashSet<String> =
            loaded.iter().map(|(hash, _)| hex::encode(hash)).collect();
        let mut report = AuditVerification {
            records: loaded.len(),
            damaged: damaged.iter().map(|e| e.to_string()).collect(),
            ..AuditVerification::default()
        };
        let describe =
            |r: &AuditRecord| format!("{} {} by {}@{}", r.time, r.command, r.user, r.host);
        for (hash, record) in &loaded {
            if let Some(previous) = &record.previous
                && !present.contains(previous)
            {
                report.gaps.push(format!(
                    "record {} ({}) follows record {}, which is gone: records were deleted from the log",
                    crate::repo::ids::short_text(&hex::encode(hash)),
                    describe(record),
                    crate::repo::ids::short_text(previous)
                ));
            }
            match &record.full_key_mark {
                None => report.not_full_key += 1,
                Some(mark) => {
                    if self.keys.verify_writer_mark(&record.marked_bytes(), mark) {
                        report.full_key += 1;
                    } else {
                        report.forged.push(format!(
                            "record {} ({}) carries a full key's mark that does not verify: it was not written by a full key",
                            crate::repo::ids::short_text(&hex::encode(hash)),
                            describe(record)
                        ));
                    }
                }
            }
        }
        Ok(report)
    }

    /// Every intact audit record, oldest first, and the damaged ones as errors.
    pub async fn audit_records(&self) -> Result<(Vec<AuditRecord>, Vec<Error>)> {
        let (loaded, damaged) = self
            .load_folder::<AuditRecord>(paths::AUDIT, Role::Audit)
            .await?;
        let mut records: Vec<AuditRecord> = loaded.into_iter().map(|(_, r)| r).collect();
        records.sort_by(|a, b| {
            a.time
                .cmp(&b.time)
                .then_with(|| a.operation.cmp(&b.operation))
                .then_with(|| {
                    (a.outcome != AuditOutcome::Started).cmp(&(b.outcome != AuditOutcome::Started))
                })
        });
        Ok((records, damaged))
    }
}
