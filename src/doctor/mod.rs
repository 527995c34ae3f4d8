//! `coffer doctor`: what a server and a repository let coffer do, found out before the night it
//! matters. Each finding is a [`Check`]: ✓ (fine), ⚠ (a feature is limited, and which) or ✗
//! (something coffer needs is missing), with what was seen, what it means for coffer and the
//! exact change to make.
//!
//! [`server`] connects as the backup account and reads, never writes: version, TLS, the
//! account's privileges mapped to the features that need them ([`grants`] reads `SHOW GRANTS`),
//! binary-log settings, sizes, and a short, bounded read-rate probe. [`repository`] tries each
//! storage operation on a scratch object of its own (cleaned up), compares the store's clock with
//! the host's, and wraps and unwraps a test value with every KMS slot.

pub mod grants;
pub mod repository;
pub mod server;

use serde::Serialize;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub fn symbol(self) -> &'static str {
        match self {
            Status::Ok => "✓",
            Status::Warn => "⚠",
            Status::Fail => "✗",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was looked at ("privilege REPLICATION SLAVE", "delete", "binlog_format").
    pub name: String,
    pub status: Status,
    /// What was found.
    pub found: String,
    /// What it means for coffer (the feature it enables or limits).
    pub meaning: String,
    /// The change to make, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Check {
    pub fn ok(
        name: impl Into<String>,
        found: impl Into<String>,
        meaning: impl Into<String>,
    ) -> Self {
        Check {
            name: name.into(),
            status: Status::Ok,
            found: found.into(),
            meaning: meaning.into(),
            hint: None,
        }
    }

    pub fn warn(
        name: impl Into<String>,
        found: impl Into<String>,
        meaning: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Check {
            status: Status::Warn,
            hint: Some(hint.into()),
            ..Check::ok(name, found, meaning)
        }
    }

    pub fn fail(
        name: impl Into<String>,
        found: impl Into<String>,
        meaning: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Check {
            status: Status::Fail,
            hint: Some(hint.into()),
            ..Check::ok(name, found, meaning)
        }
    }
}

/// The checks of one server or repository.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    /// "server" or "repository".
    pub kind: &'static str,
    /// The server (`host:port` or socket) or the repository's location.
    pub target: String,
    pub checks: Vec<Check>,
}

impl Section {
    /// The worst status of its checks.
    pub fn worst(&self) -> Status {
        self.checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Ok)
    }
}

/// Human-readable byte counts for the findings.
pub(crate) fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}
