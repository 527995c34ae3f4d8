//! Reading a server's accounts, roles and grants into an [`AccountSet`] (what a backup records
//! and what a restore compares against).
//!
//! Attributes come from `mysql.user` (and on MariaDB `mysql.global_priv`, which holds what the
//! `mysql.user` view leaves out: `account_locked`, `password_lifetime`); grants from
//! `SHOW GRANTS FOR` ([`super::grants`]); MySQL's default roles from `mysql.default_roles`.
//! The backup account needs `SELECT` on those tables; without it the accounts are not recorded
//! and the snapshot says why.
//!
//! The server's own accounts are never read: see [`is_system_account`].

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::{grants, is_mariadb, mysql_error};
use crate::error::{Error, Result};
use crate::repo::accounts::{Account, AccountName, AccountSet, Limits, Tls};
use crate::sql::quote_str;

/// Users that belong to the server or its provider, never recorded nor restored (any host):
/// the target has its own, with its own passwords, and a copy could lock out its operator.
/// - MySQL: `root`, `mysql.sys`, `mysql.session`, `mysql.infoschema` (created by the server;
///   MySQL Shell's dump leaves out the same three `mysql.*` accounts);
/// - MariaDB: `root`, `mariadb.sys`, the `PUBLIC` pseudo-role, Debian's `debian-sys-maint`;
/// - Azure Database for MySQL: `azure_superuser`;
/// - Amazon RDS: `rdsadmin`, `rdsrepladmin`, `rdsgrprepladmin`, `rds_superuser_role`;
/// - Google Cloud SQL: its `cloudsql…` accounts and roles.
///
/// Anonymous accounts (an empty user name) are left out too: they are left over from a default
/// install and let anyone log in.
pub const SYSTEM_ACCOUNTS: &[&str] = &[
    "root",
    "mysql.sys",
    "mysql.session",
    "mysql.infoschema",
    "mariadb.sys",
    "PUBLIC",
    "debian-sys-maint",
    "azure_superuser",
    "rdsadmin",
    "rdsrepladmin",
    "rdsgrprepladmin",
    "rds_superuser_role",
];

/// Whether `user` is the server's or its provider's own ([`SYSTEM_ACCOUNTS`], Cloud SQL's
/// `cloudsql…` names, anonymous accounts).
pub fn is_system_account(user: &str) -> bool {
    user.is_empty() || SYSTEM_ACCOUNTS.contains(&user) || user.starts_with("cloudsql")
}

/// One row of the account query, in the order both servers' queries select.
type Row = mysql_async::Row;

fn text(row: &Row, at: usize) -> String {
    match row.as_ref(at) {
        Some(mysql_async::Value::Bytes(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        Some(mysql_async::Value::Int(n)) => n.to_string(),
        Some(mysql_async::Value::UInt(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn number(row: &Row, at: usize) -> u64 {
    text(row, at).trim().parse::<u64>().unwrap_or(0)
}

fn yes(row: &Row, at: usize) -> bool {
    matches!(text(row, at).as_str(), "Y" | "true" | "1")
}

/// The columns both queries start with: user, host, plugin, credential (hex), TLS (4), limits
/// (4), password_expired.
const COMMON_COLUMNS: &str = "User, Host, plugin, HEX(authentication_string), ssl_type, \
     CONVERT(ssl_cipher USING utf8mb4), CONVERT(x509_issuer USING utf8mb4), \
     CONVERT(x509_subject USING utf8mb4), max_questions, max_updates, max_connections, \
     max_user_connections, password_expired";

fn common(row: &Row) -> Account {
    Account {
        name: AccountName {
            user: text(row, 0),
            host: text(row, 1),
        },
        role: false,
        plugin: text(row, 2),
        credential_hex: text(row, 3).to_ascii_lowercase(),
        tls: Tls {
            kind: text(row, 4).to_ascii_uppercase(),
            cipher: text(row, 5),
            issuer: text(row, 6),
            subject: text(row, 7),
        },
        limits: Limits {
            queries_per_hour: number(row, 8),
            updates_per_hour: number(row, 9),
            connections_per_hour: number(row, 10),
            user_connections: number(row, 11),
        },
        locked: false,
        password_expired: yes(row, 12),
        password_lifetime: None,
        default_roles: Vec::new(),
        grants: Vec::new(),
    }
}

/// A lifetime as stored (`NULL`, or MariaDB's -1: the server's default).
fn lifetime(row: &Row, at: usize) -> Option<u32> {
    text(row, at)
        .trim()
        .parse::<i64>()
        .ok()
        .and_then(|days| u32::try_from(days).ok())
}

/// What reading the accounts found: the set, and what it could not keep exactly.
#[derive(Debug, Default)]
pub struct ReadAccounts {
    pub set: AccountSet,
    /// Accounts recorded with less than the server holds (named, for the backup's log).
    pub warnings: Vec<String>,
}

/// Every account of the server except its own ([`is_system_account`]), with its grants; with
/// `only`, just those of its accounts.
pub async fn read_accounts(
    conn: &mut Conn,
    only: Option<&std::collections::BTreeSet<AccountName>>,
) -> Result<ReadAccounts> {
    let failed = |e| {
        mysql_error(e, "reading the server's accounts").with_hint(
            "grant the backup account SELECT on mysql.* (the accounts are read from mysql.user and SHOW GRANTS)",
        )
    };
    let mut warnings = Vec::new();
    let mut accounts: Vec<Account> = Vec::new();
    if is_mariadb(conn) {
        let rows: Vec<Row> = conn
            .query(format!(
                "SELECT {COMMON_COLUMNS}, is_role, default_role, \
                 (SELECT JSON_VALUE(g.Priv, '$.account_locked') FROM mysql.global_priv g \
                   WHERE g.User = u.User AND g.Host = u.Host), \
                 (SELECT JSON_VALUE(g.Priv, '$.password_lifetime') FROM mysql.global_priv g \
                   WHERE g.User = u.User AND g.Host = u.Host), \
                 (SELECT JSON_EXISTS(g.Priv, '$.auth_or') FROM mysql.global_priv g \
                   WHERE g.User = u.User AND g.Host = u.Host) \
                 FROM mysql.user u"
            ))
            .await
            .map_err(failed)?;
        for row in &rows {
            let mut account = common(row);
            account.role = yes(row, 13);
            let default_role = text(row, 14);
            if !default_role.is_empty() {
                account.default_roles.push(AccountName {
                    user: default_role,
                    host: String::new(),
                });
            }
            account.locked = yes(row, 15);
            account.password_lifetime = lifetime(row, 16);
            if yes(row, 17) {
                warnings.push(format!(
                    "{} authenticates in several ways (IDENTIFIED VIA … OR …): only the first ({}) is recorded",
                    account.name, account.plugin
                ));
            }
            accounts.push(account);
        }
    } else {
        let rows: Vec<Row> = conn
            .query(format!(
                "SELECT {COMMON_COLUMNS}, account_locked, password_lifetime FROM mysql.user"
            ))
            .await
            .map_err(failed)?;
        for row in &rows {
            let mut account = common(row);
            account.locked = yes(row, 13);
            account.password_lifetime = lifetime(row, 14);
            // `CREATE ROLE` makes a locked account with an expired, empty password: that is
            // what a role is on MySQL (a user made so is created the same way either way).
            account.role =
                account.locked && account.password_expired && account.credential_hex.is_empty();
            accounts.push(account);
        }
        let defaults: Vec<(String, String, String, String)> = conn
            .query(
                "SELECT USER, HOST, DEFAULT_ROLE_USER, DEFAULT_ROLE_HOST FROM mysql.default_roles",
            )
            .await
            .map_err(failed)?;
        for (user, host, role_user, role_host) in defaults {
            if let Some(account) = accounts
                .iter_mut()
                .find(|a| a.name.user == user && a.name.host == host)
            {
                account.default_roles.push(AccountName {
                    user: role_user,
                    host: role_host,
                });
            }
        }
    }
    accounts.retain(|a| {
        !is_system_account(&a.name.user) && only.is_none_or(|only| only.contains(&a.name))
    });
    for account in &mut accounts {
        let lines: Vec<String> = conn
            .query(format!("SHOW GRANTS FOR {}", grantee_sql(account)))
            .await
            .map_err(|e| {
                mysql_error(e, &format!("reading the grants of {}", account.name)).with_hint(
                    "grant the backup account SELECT on mysql.* (SHOW GRANTS FOR another account needs it)",
                )
            })?;
        let (grants, default_role) = grants::parse_lines(&lines, &account.name)?;
        account.grants = grants;
        if let Some(role) = default_role
            && !account.default_roles.contains(&role)
        {
            account.default_roles.push(role);
        }
        account.default_roles.sort();
    }
    accounts.sort_by(|a, b| a.name.cmp(&b.name));
    let set = AccountSet {
        version: 1,
        accounts,
    };
    set.check()
        .map_err(|e| Error::invalid(format!("the server's accounts: {e}")))?;
    Ok(ReadAccounts { set, warnings })
}

/// `'user'@'host'` as SQL: quoted strings, whatever they hold.
pub fn account_sql(name: &AccountName) -> String {
    format!("{}@{}", quote_str(&name.user), quote_str(&name.host))
}

/// A role as SQL: a MariaDB role (no host) is named alone, `'role'`.
pub fn role_sql(name: &AccountName) -> String {
    if name.host.is_empty() {
        quote_str(&name.user)
    } else {
        account_sql(name)
    }
}

/// How statements name `account`: a MariaDB role alone, anything else `'user'@'host'`.
pub fn grantee_sql(account: &Account) -> String {
    if account.role {
        role_sql(&account.name)
    } else {
        account_sql(&account.name)
    }
}
