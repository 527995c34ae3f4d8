//! The audit log: who backed up, restored, dumped or looked at what, when and why.
//!
//! Each record is its own encrypted object `audit/<hash>`, written once with put-if-absent and
//! never rewritten, so the log only grows and a host that may create objects but not delete
//! them (a backup host's credentials) can add to it but not erase it. An operation writes a
//! `started` record before it touches anything and a second record with its outcome, sharing
//! an operation id; a process killed in between still leaves the first.

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
    /// Append one record to the audit log.
    pub async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        let json = serde_json::to_vec(record)
            .map_err(|e| Error::invalid("encoding the audit record").with_source(e))?;
        if json.len() > MAX_AUDIT_RECORD {
            return Err(Error::invalid("the audit record is too large")
                .with_hint("shorten --reason or --where"));
        }
        self.save_json(paths::AUDIT, Role::Audit, record).await?;
        Ok(())
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
