//! The server's accounts, roles and grants as a backup records them (the `accounts` tree blob a
//! snapshot names): structured data, never SQL text.
//!
//! Why structured: a snapshot may be written by a host holding only a write-only key. Were the
//! grants stored as statements, whoever holds that key could hide any SQL in them and have a
//! restore run it as the restoring account. Here a restore builds every statement itself: names
//! are quoted, privilege names and plugins must be plain words ([`AccountSet::check`]), and
//! nothing read from storage is pasted into SQL unquoted. Whether a write-only key wrote the
//! set at all is decided by the restore (`restore::accounts`), from the snapshot's writer mark.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Every recorded account of one server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSet {
    pub version: u32,
    /// Sorted by (user, host).
    pub accounts: Vec<Account>,
}

/// `user@host`. A MariaDB role has an empty host (it is named without one).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccountName {
    pub user: String,
    pub host: String,
}

impl std::fmt::Display for AccountName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.is_empty() {
            write!(f, "'{}'", self.user)
        } else {
            write!(f, "'{}'@'{}'", self.user, self.host)
        }
    }
}

/// One account or role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub name: AccountName,
    /// Created with `CREATE ROLE` (MariaDB `is_role`; on MySQL a locked account with an
    /// expired, empty password, which is what `CREATE ROLE` makes).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub role: bool,
    /// The authentication plugin (`caching_sha2_password`, `mysql_native_password`, …).
    pub plugin: String,
    /// The stored credential (a password hash), hex: MySQL's `caching_sha2_password` hashes
    /// are binary. Kept so users log in with their passwords after a restore.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credential_hex: String,
    #[serde(default, skip_serializing_if = "Tls::is_none")]
    pub tls: Tls,
    #[serde(default, skip_serializing_if = "Limits::is_none")]
    pub limits: Limits,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub locked: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub password_expired: bool,
    /// Days a password lives (`PASSWORD EXPIRE INTERVAL n DAY`, 0 = `NEVER`); absent: the
    /// server's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_lifetime: Option<u32>,
    /// Roles active at login.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_roles: Vec<AccountName>,
    /// What `SHOW GRANTS FOR` lists, without the bare `USAGE ON *.*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
}

/// `REQUIRE …`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tls {
    /// `mysql.user.ssl_type`: "" (none), `ANY` (SSL), `X509`, `SPECIFIED`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cipher: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuer: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
}

impl Tls {
    pub fn is_none(&self) -> bool {
        self.kind.is_empty()
    }
}

/// `WITH MAX_…` resource limits (0 = none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    #[serde(default)]
    pub queries_per_hour: u64,
    #[serde(default)]
    pub updates_per_hour: u64,
    #[serde(default)]
    pub connections_per_hour: u64,
    #[serde(default)]
    pub user_connections: u64,
}

impl Limits {
    pub fn is_none(&self) -> bool {
        *self == Limits::default()
    }
}

/// One line of `SHOW GRANTS`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Grant {
    /// `GRANT privileges ON target TO … [WITH GRANT OPTION]`.
    Privileges {
        privileges: Vec<Privilege>,
        on: GrantTarget,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        grant_option: bool,
    },
    /// `GRANT role TO … [WITH ADMIN OPTION]`.
    Role {
        role: AccountName,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        admin_option: bool,
    },
    /// `GRANT PROXY ON account TO … [WITH GRANT OPTION]`.
    Proxy {
        of: AccountName,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        grant_option: bool,
    },
    /// A MySQL partial revoke (`REVOKE privileges ON db.* FROM …`, with `partial_revokes`).
    Revoke {
        privileges: Vec<Privilege>,
        on: GrantTarget,
    },
}

/// A privilege, with the columns it is limited to (none: the whole object).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Privilege {
    /// Upper case, words separated by one space (`SELECT`, `CREATE TEMPORARY TABLES`,
    /// `BACKUP_ADMIN`).
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
}

/// What a grant is on: `*.*`, `db.*` (the name may hold `LIKE` wildcards, as granted), `db.t`,
/// or a routine.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GrantTarget {
    #[serde(default, skip_serializing_if = "ObjectType::is_table")]
    pub object_type: ObjectType,
    /// `None`: every database (`*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// `None`: every object of the database (`*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectType {
    #[default]
    Table,
    Function,
    Procedure,
}

impl ObjectType {
    fn is_table(&self) -> bool {
        *self == ObjectType::Table
    }
}

/// What one backup recorded of the accounts (the snapshot's `accounts` field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountsEntry {
    /// The [`AccountSet`] tree blob; absent when the accounts could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<super::ids::BlobId>,
    #[serde(default)]
    pub accounts: u64,
    #[serde(default)]
    pub roles: u64,
    /// Why the accounts are not in the snapshot (the backup account lacks the privilege to
    /// read them, a grant the reader does not know): the databases are, and this is said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

/// Longest name of a user (MySQL 32, MariaDB 80 characters: a margin over both).
const MAX_USER: usize = 128;
/// Longest host (both servers: 255).
const MAX_HOST: usize = 255;
/// Longest stored credential, hex (the longest hash a server stores is ~70 bytes).
const MAX_CREDENTIAL_HEX: usize = 2048;

/// Whether `name` may be pasted into a statement as a privilege name: upper-case words of
/// letters, digits and `_`, separated by single spaces (nothing that could end the word list).
pub fn is_privilege_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.split(' ').all(|word| {
            !word.is_empty()
                && word.starts_with(|c: char| c.is_ascii_uppercase())
                && word
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
}

/// Whether `plugin` is a plain plugin name (it is quoted when used, and must name a plugin).
pub fn is_plugin_name(plugin: &str) -> bool {
    !plugin.is_empty()
        && plugin.len() <= 64
        && plugin
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl AccountSet {
    /// Refuse a set no backup could have recorded: untrusted bytes (read from storage) are
    /// checked before any statement is built from them. Names are quoted wherever they are
    /// used; this bounds them and keeps privilege names and plugins to plain words.
    pub fn check(&self) -> Result<()> {
        let bad = |what: String| {
            Err(
                Error::corrupt(format!("the recorded accounts are not valid: {what}"))
                    .with_hint("run `coffer check`; restore accounts from another snapshot"),
            )
        };
        for account in &self.accounts {
            let name = &account.name;
            if name.user.len() > MAX_USER || name.host.len() > MAX_HOST {
                return bad(format!(
                    "an account name is longer than a server allows ({} bytes)",
                    name.user.len() + name.host.len()
                ));
            }
            // A role has no plugin on MariaDB.
            let no_plugin_role = account.role && account.plugin.is_empty();
            if !no_plugin_role && !is_plugin_name(&account.plugin) {
                return bad(format!(
                    "{name} has an authentication plugin that is not a plain name"
                ));
            }
            if account.credential_hex.len() > MAX_CREDENTIAL_HEX
                || hex::decode(&account.credential_hex).is_err()
            {
                return bad(format!("{name} has a credential that is not bounded hex"));
            }
            if !matches!(account.tls.kind.as_str(), "" | "ANY" | "X509" | "SPECIFIED") {
                return bad(format!("{name} has an unknown TLS requirement"));
            }
            for grant in &account.grants {
                if let Grant::Privileges { privileges, .. } | Grant::Revoke { privileges, .. } =
                    grant
                {
                    if privileges.is_empty() {
                        return bad(format!("{name} has a grant of no privilege"));
                    }
                    if let Some(p) = privileges.iter().find(|p| !is_privilege_name(&p.name)) {
                        return bad(format!(
                            "{name} has a privilege that is not a plain name ({} bytes)",
                            p.name.len()
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Decode and [`AccountSet::check`] a stored set.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let set: AccountSet = serde_json::from_slice(bytes).map_err(|e| {
            Error::corrupt("the recorded accounts are not valid JSON").with_source(e)
        })?;
        set.check()?;
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privilege_names_are_plain_words() {
        for good in [
            "SELECT",
            "CREATE TEMPORARY TABLES",
            "BACKUP_ADMIN",
            "READ_ONLY ADMIN",
        ] {
            assert!(is_privilege_name(good), "{good}");
        }
        for bad in [
            "",
            "select",
            "SELECT ON *.* TO x; DROP DATABASE y; --",
            "SELECT  INSERT",
            "SELECT,INSERT",
            "SELECT (`a`)",
            " SELECT",
        ] {
            assert!(!is_privilege_name(bad), "{bad}");
        }
    }

    fn account() -> Account {
        Account {
            name: AccountName {
                user: "alice".into(),
                host: "%".into(),
            },
            role: false,
            plugin: "mysql_native_password".into(),
            credential_hex: hex::encode("*2B602296A79E0A8784ACC5C88D92E46588CCA3C3"),
            tls: Tls::default(),
            limits: Limits::default(),
            locked: false,
            password_expired: false,
            password_lifetime: None,
            default_roles: vec![],
            grants: vec![Grant::Privileges {
                privileges: vec![Privilege {
                    name: "SELECT".into(),
                    columns: vec![],
                }],
                on: GrantTarget {
                    object_type: ObjectType::Table,
                    database: Some("study_1".into()),
                    object: None,
                },
                grant_option: false,
            }],
        }
    }

    #[test]
    fn a_set_hiding_sql_in_a_privilege_or_plugin_is_refused() {
        let good = AccountSet {
            version: 1,
            accounts: vec![account()],
        };
        let bytes = serde_json::to_vec(&good).unwrap();
        assert_eq!(AccountSet::decode(&bytes).unwrap(), good);

        let mut planted = good.clone();
        if let Grant::Privileges { privileges, .. } = &mut planted.accounts[0].grants[0] {
            privileges[0].name = "ALL ON *.* TO 'x'@'%'; CREATE USER y".into();
        }
        let err = AccountSet::decode(&serde_json::to_vec(&planted).unwrap()).unwrap_err();
        assert!(err.to_string().contains("not a plain name"), "{err}");

        let mut planted = good.clone();
        planted.accounts[0].plugin = "x' AS 'y'; DROP USER root --".into();
        assert!(AccountSet::decode(&serde_json::to_vec(&planted).unwrap()).is_err());

        let mut planted = good;
        planted.accounts[0].credential_hex = "zz".into();
        assert!(AccountSet::decode(&serde_json::to_vec(&planted).unwrap()).is_err());
    }
}
