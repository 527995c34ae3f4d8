//! Restoring the accounts, roles and grants a backup recorded (`restore --accounts`,
//! `--accounts-only`).
//!
//! Everything that can refuse does so before anything changes ([`plan`]):
//! - **Only what a full key wrote** is restored without consent: an account is a door into
//!   the server, and a write-only key could have planted one (`--accounts-from-write-only`).
//! - **Authentication plugins** the target does not have are named (MySQL 8.4 ships
//!   `mysql_native_password` disabled; MariaDB has no `caching_sha2_password`).
//! - **Privileges** the target does not know (`SHOW PRIVILEGES`), roles across server kinds (a
//!   MariaDB role has no host, a MySQL role is an account), and roles granted but neither
//!   recorded nor on the target are named.
//! - **Accounts that exist** are compared: the same is left alone, a different one is reported
//!   and replaced only with `--drop-existing` (never the restoring account itself).
//!
//! Then [`apply`] creates roles, then users, then grants (roles' first), then default roles. An
//! account whose statements fail is dropped again if this restore created it, and one it
//! replaced is put back as it was read before ([`put_back`]); each is named, and the others go
//! on (`accounts::accounts_roles_and_grants_round_trip_and_existing_ones_are_compared`). A
//! table or column grant on a table the target does not have is skipped and named. Grants on
//! restored databases follow `--into-prefix` ([`Renaming`]).
//!
//! Statements are built here from the checked structured set
//! ([`crate::repo::accounts::AccountSet::check`]): names quoted, privileges plain words.
//! Server errors are shortened before they are shown: MariaDB quotes the statement near a
//! syntax error, and it may hold a password hash ([`redacted`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::error::{Error, Result};
use crate::repo::accounts::{Account, AccountName, AccountSet, Grant, GrantTarget, ObjectType};
use crate::repo::snapshot::WrittenBy;
use crate::source::mysql::accounts::{account_sql, grantee_sql, read_accounts, role_sql};
use crate::source::mysql::grants::normalised;
use crate::source::mysql::{is_mariadb, mysql_error};
use crate::sql::{quote_ident, quote_str};

/// How to restore accounts.
#[derive(Debug, Clone, Default)]
pub struct AccountsOptions {
    /// Replace an account that exists and differs (`--drop-existing`).
    pub drop_existing: bool,
    /// Restore accounts from a snapshot no full key is proven to have written.
    pub allow_unproven: bool,
    /// Grants on these databases follow their rename.
    pub renaming: Renaming,
}

/// Grants on restored databases follow `--into-prefix`: a database-level grant whose name (a
/// `LIKE` pattern, as granted) matches a restored database gets the prefix, escaped, in front
/// (so `study\_%` becomes `copy\_study\_%` and still matches exactly the copies); a table,
/// column or routine grant on a restored database names the copy.
#[derive(Debug, Clone, Default)]
pub struct Renaming {
    pub prefix: Option<String>,
    /// The databases restored, by their names in the backup.
    pub databases: Vec<String>,
}

impl Renaming {
    fn target(&self, on: &GrantTarget) -> GrantTarget {
        let (Some(prefix), Some(database)) = (&self.prefix, &on.database) else {
            return on.clone();
        };
        let renamed = match &on.object {
            None if self.databases.iter().any(|d| like_matches(database, d)) => {
                Some(format!("{}{database}", like_escaped(prefix)))
            }
            Some(_)
                if self
                    .databases
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(database)) =>
            {
                Some(format!("{prefix}{database}"))
            }
            _ => None,
        };
        GrantTarget {
            database: renamed.or_else(|| on.database.clone()),
            ..on.clone()
        }
    }

    /// `account` with its grants renamed.
    fn account(&self, account: &Account) -> Account {
        let mut renamed = account.clone();
        for grant in &mut renamed.grants {
            match grant {
                Grant::Privileges { on, .. } | Grant::Revoke { on, .. } => *on = self.target(on),
                Grant::Role { .. } | Grant::Proxy { .. } => {}
            }
        }
        renamed.grants.sort();
        renamed
    }
}

/// `text` with `LIKE`'s wildcards escaped.
fn like_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether `pattern` (a database grant's name: `%`, `_`, `\` escapes) matches `name`, without
/// regard to case (as with `lower_case_table_names=1`, which covers the other settings' exact
/// matches too: a grant that only might match is renamed).
fn like_matches(pattern: &str, name: &str) -> bool {
    fn matches(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('%') => (0..=n.len()).any(|skip| matches(&p[1..], &n[skip..])),
            Some('_') => !n.is_empty() && matches(&p[1..], &n[1..]),
            Some('\\') if p.len() > 1 => {
                !n.is_empty() && p[1].eq_ignore_ascii_case(&n[0]) && matches(&p[2..], &n[1..])
            }
            Some(c) => !n.is_empty() && c.eq_ignore_ascii_case(&n[0]) && matches(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    matches(&p, &n)
}

/// What the restore will do with each recorded account.
#[derive(Debug)]
pub struct AccountsPlan {
    /// To create (and, if it `replaces` one, to drop first), roles first, as they will be
    /// restored (grants renamed).
    pub create: Vec<Planned>,
    /// Exist on the target exactly as recorded.
    pub unchanged: Vec<Account>,
    /// Exist and differ; left alone (no `--drop-existing`): what differs.
    pub differing: Vec<(Account, Vec<String>)>,
    target_is_mariadb: bool,
}

#[derive(Debug)]
pub struct Planned {
    pub account: Account,
    /// The account of the same name on the target, as read there, when it exists and differs
    /// (`--drop-existing`): dropped first, and put back if the replacement fails.
    pub replaces: Option<Account>,
}

/// How one account ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "detail")]
pub enum AccountOutcome {
    Created,
    Replaced,
    Unchanged,
    /// Exists and differs (what), not replaced.
    Differs(Vec<String>),
    Failed(String),
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AccountResult {
    pub account: String,
    pub role: bool,
    #[serde(flatten)]
    pub outcome: AccountOutcome,
    /// Grants not restored because their table is not on the target.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_grants: Vec<String>,
}

/// The accounts `snapshot` recorded, read and checked (untrusted until then).
pub async fn load(
    repo: &crate::repo::Repository,
    index: &crate::repo::index::Index,
    id: &crate::repo::ids::SnapshotId,
    snapshot: &crate::repo::snapshot::Snapshot,
) -> Result<AccountSet> {
    let entry = snapshot.accounts.as_ref().ok_or_else(|| {
        Error::not_found(format!(
            "snapshot {} holds no accounts (taken with --no-accounts, or by a coffer without accounts)",
            id.short()
        ))
        .with_hint("choose a later backup with --snapshot or --at, or restore without --accounts")
    })?;
    let tree = entry.tree.ok_or_else(|| {
        Error::not_found(format!(
            "snapshot {} did not record the accounts: {}",
            id.short(),
            entry.unavailable.as_deref().unwrap_or("no reason recorded")
        ))
        .with_hint(
            "choose another backup, and give the backup account what `coffer doctor` asks for",
        )
    })?;
    let bytes = repo.read_blob(index, &tree).await?;
    AccountSet::decode(&bytes)
}

/// Refuse accounts a write-only key could have written, unless the operator consents.
pub fn check_writer(written_by: &WrittenBy, options: &AccountsOptions) -> Result<()> {
    if written_by.is_full_key() || options.allow_unproven {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "the accounts in this snapshot are not proven to be written by a full key ({}): whoever holds a write-only key could have planted an account or a grant in them",
        written_by.describe()
    ))
    .with_hint("restore accounts from a snapshot a full key wrote, or pass --accounts-from-write-only once you trust the host that wrote it"))
}

/// Whether a server version string is MariaDB's.
fn version_is_mariadb(version: &str) -> bool {
    version.to_ascii_lowercase().contains("mariadb")
}

/// Check everything against the target and decide what to do; an error lists every refusal
/// and nothing has changed.
pub async fn plan(
    conn: &mut Conn,
    set: &AccountSet,
    source_version: &str,
    options: &AccountsOptions,
) -> Result<AccountsPlan> {
    let target_is_mariadb = is_mariadb(conn);
    let source_is_mariadb = version_is_mariadb(source_version);
    let context = |what: &str| format!("reading the target's {what}");
    let plugins: Vec<String> = conn
        .query(
            "SELECT PLUGIN_NAME FROM information_schema.PLUGINS \
             WHERE PLUGIN_TYPE = 'AUTHENTICATION' AND PLUGIN_STATUS = 'ACTIVE'",
        )
        .await
        .map_err(|e| mysql_error(e, &context("authentication plugins")))?;
    let plugins: HashSet<String> = plugins
        .into_iter()
        .map(|p| p.to_ascii_lowercase())
        .collect();
    let privileges: Vec<mysql_async::Row> = conn
        .query("SHOW PRIVILEGES")
        .await
        .map_err(|e| mysql_error(e, &context("privileges")))?;
    let mut known: HashSet<String> = privileges
        .iter()
        .filter_map(|row| row.get::<String, usize>(0))
        .map(|p| p.to_ascii_uppercase())
        .collect();
    known.extend(
        ["ALL", "ALL PRIVILEGES", "USAGE", "GRANT OPTION", "PROXY"]
            .iter()
            .map(|p| p.to_string()),
    );
    if target_is_mariadb {
        // Older names MariaDB still takes (its SHOW PRIVILEGES lists the new ones).
        known.extend(["REPLICATION CLIENT".to_string()]);
    }
    let existing: Vec<(String, String)> = conn
        .query("SELECT User, Host FROM mysql.user")
        .await
        .map_err(|e| mysql_error(e, &context("accounts")))?;
    let existing: BTreeSet<AccountName> = existing
        .into_iter()
        .map(|(user, host)| AccountName { user, host })
        .collect();
    let current: Option<String> = conn
        .query_first("SELECT CURRENT_USER()")
        .await
        .map_err(|e| mysql_error(e, &context("current account")))?;
    let current = current.and_then(|c| {
        c.rsplit_once('@').map(|(user, host)| AccountName {
            user: user.to_string(),
            host: host.to_string(),
        })
    });

    // MySQL stores a partial revoke only with `partial_revokes` on; MariaDB has none.
    let partial_revokes = if target_is_mariadb {
        false
    } else {
        let on: Option<u64> = conn
            .query_first("SELECT @@GLOBAL.partial_revokes")
            .await
            .map_err(|e| mysql_error(e, &context("partial_revokes setting")))?;
        on == Some(1)
    };
    let recorded: BTreeSet<&AccountName> = set.accounts.iter().map(|a| &a.name).collect();
    let mut refusals = Vec::new();
    for account in &set.accounts {
        let name = &account.name;
        if account.role && source_is_mariadb != target_is_mariadb {
            refusals.push(format!(
                "role {name}: roles differ between MariaDB (a role has no host) and MySQL (a role is an account); restore it to a server of the kind it came from"
            ));
        }
        if !account.role && !plugins.contains(&account.plugin.to_ascii_lowercase()) {
            let hint = if account.plugin == "mysql_native_password" && !target_is_mariadb {
                " (MySQL 8.4 ships it disabled: mysql_native_password=ON enables it)"
            } else {
                ""
            };
            refusals.push(format!(
                "{name}: the target has no active authentication plugin {}{hint}",
                account.plugin
            ));
        }
        for grant in &account.grants {
            match grant {
                Grant::Privileges { privileges, .. } | Grant::Revoke { privileges, .. } => {
                    for privilege in privileges {
                        if !known.contains(&privilege.name) {
                            refusals.push(format!(
                                "{name}: the target does not know the privilege {} ({})",
                                privilege.name,
                                if target_is_mariadb {
                                    "MariaDB"
                                } else {
                                    "MySQL"
                                }
                            ));
                        }
                    }
                }
                Grant::Role { role, .. } => {
                    if !recorded.contains(role) && !existing.contains(role) {
                        refusals.push(format!(
                            "{name}: it is granted the role {role}, which is neither in the backup nor on the target"
                        ));
                    }
                }
                Grant::Proxy { .. } => {}
            }
            if matches!(grant, Grant::Revoke { .. }) && !partial_revokes {
                refusals.push(format!(
                    "{name}: it has a partial revoke ({}), which needs partial_revokes=ON on a MySQL target",
                    grant_sql(grant, "")
                ));
            }
        }
    }
    let compared: BTreeSet<AccountName> = set
        .accounts
        .iter()
        .filter(|a| existing.contains(&a.name))
        .map(|a| a.name.clone())
        .collect();
    let on_target = if compared.is_empty() {
        Vec::new()
    } else {
        read_accounts(conn, Some(&compared))
            .await
            .map_err(|e| e.context("reading the target's accounts to compare them"))?
            .set
            .accounts
    };
    let mut plan = AccountsPlan {
        create: Vec::new(),
        unchanged: Vec::new(),
        differing: Vec::new(),
        target_is_mariadb,
    };
    for account in &set.accounts {
        let wanted = options.renaming.account(account);
        let live = on_target.iter().find(|a| a.name == account.name);
        let differences = match live {
            None if existing.contains(&account.name) => {
                if options.drop_existing {
                    refusals.push(format!(
                        "{}: it exists but could not be read, so it could not be put back if its replacement failed",
                        account.name
                    ));
                }
                vec!["it exists but could not be read".to_string()]
            }
            None => {
                plan.create.push(Planned {
                    account: wanted,
                    replaces: None,
                });
                continue;
            }
            Some(live) => differences(&wanted, live),
        };
        if differences.is_empty() {
            plan.unchanged.push(wanted);
        } else if options.drop_existing {
            if current.as_ref() == Some(&account.name) {
                refusals.push(format!(
                    "{}: it is the account this restore connects as; it is not dropped (connect as another to replace it)",
                    account.name
                ));
            }
            // An account that exists but could not be read was refused above: only one read
            // can be put back.
            if let Some(live) = live {
                plan.create.push(Planned {
                    account: wanted,
                    replaces: Some(live.clone()),
                });
            }
        } else {
            plan.differing.push((wanted, differences));
        }
    }
    if !refusals.is_empty() {
        refusals.sort();
        refusals.dedup();
        return Err(Error::invalid(format!(
            "the accounts cannot be restored exactly on {}; nothing was changed:\n  {}",
            if target_is_mariadb { "this MariaDB server" } else { "this MySQL server" },
            refusals.join("\n  ")
        ))
        .with_hint("restore to a server that has what is named, or restore the databases without --accounts"));
    }
    plan.create
        .sort_by_key(|p| (!p.account.role, p.account.name.clone()));
    Ok(plan)
}

/// What differs between the account wanted and the one on the target (no secrets: a different
/// password is "the password").
fn differences(wanted: &Account, live: &Account) -> Vec<String> {
    let mut found = Vec::new();
    let mut differ = |same: bool, what: &str| {
        if !same {
            found.push(what.to_string());
        }
    };
    differ(wanted.role == live.role, "role or user");
    differ(
        wanted.role || wanted.plugin.eq_ignore_ascii_case(&live.plugin),
        "authentication plugin",
    );
    differ(
        wanted.role || wanted.credential_hex == live.credential_hex,
        "the password",
    );
    differ(wanted.tls == live.tls, "TLS requirement");
    differ(wanted.limits == live.limits, "resource limits");
    differ(wanted.locked == live.locked || wanted.role, "account lock");
    differ(
        wanted.password_expired == live.password_expired || wanted.role,
        "password expiry",
    );
    differ(
        wanted.password_lifetime == live.password_lifetime,
        "password lifetime",
    );
    differ(wanted.default_roles == live.default_roles, "default roles");
    let wanted_grants: BTreeSet<String> = wanted
        .grants
        .iter()
        .map(|g| grant_sql(&normalised(g.clone()), ""))
        .collect();
    let live_grants: BTreeSet<String> = live
        .grants
        .iter()
        .map(|g| grant_sql(&normalised(g.clone()), ""))
        .collect();
    for missing in wanted_grants.difference(&live_grants) {
        found.push(format!("lacks {}", missing.trim_end()));
    }
    for extra in live_grants.difference(&wanted_grants) {
        found.push(format!("also has {}", extra.trim_end()));
    }
    found
}

/// Create what the plan says, in order; every recorded account gets a result.
pub async fn apply(conn: &mut Conn, plan: &AccountsPlan) -> Vec<AccountResult> {
    let mariadb = plan.target_is_mariadb;
    let mut results: BTreeMap<AccountName, AccountResult> = BTreeMap::new();
    let result = |account: &Account, outcome| AccountResult {
        account: account.name.to_string(),
        role: account.role,
        outcome,
        skipped_grants: Vec::new(),
    };
    for account in &plan.unchanged {
        results.insert(
            account.name.clone(),
            result(account, AccountOutcome::Unchanged),
        );
    }
    for (account, what) in &plan.differing {
        results.insert(
            account.name.clone(),
            result(account, AccountOutcome::Differs(what.clone())),
        );
    }
    // Every account first, so that grants of roles and proxies find what they name.
    let mut created = Vec::new();
    for planned in &plan.create {
        let account = &planned.account;
        if planned.replaces.is_some()
            && let Err(why) = run_all(conn, &[drop_sql(account, mariadb)]).await
        {
            // Not dropped: the account is as it was.
            results.insert(
                account.name.clone(),
                result(account, AccountOutcome::Failed(why)),
            );
            continue;
        }
        match run_all(conn, &create_sql(account)).await {
            Ok(()) => created.push(planned),
            Err(why) => {
                let why = put_back(conn, planned, why, mariadb).await;
                results.insert(
                    account.name.clone(),
                    result(account, AccountOutcome::Failed(why)),
                );
            }
        }
    }
    for planned in &created {
        let account = &planned.account;
        let mut skipped = Vec::new();
        let mut failure = None;
        for grant in &account.grants {
            if let Grant::Privileges { on, .. } = grant
                && let (Some(database), Some(object)) = (&on.database, &on.object)
                && !object_exists(conn, on.object_type, database, object).await
            {
                skipped.push(grant_sql(grant, "").trim_end().to_string());
                continue;
            }
            if let Err(why) = run_all(conn, &[grant_sql(grant, &grantee_sql(account))]).await {
                failure = Some(why);
                break;
            }
        }
        if failure.is_none()
            && let Some(statement) = default_roles_sql(account, mariadb)
            && let Err(why) = run_all(conn, &[statement]).await
        {
            failure = Some(why);
        }
        let outcome = match failure {
            Some(why) => {
                // Not left half made: the account this restore created goes again (and the one
                // it replaced comes back).
                let _ = run_all(conn, &[drop_sql(account, mariadb)]).await;
                AccountOutcome::Failed(put_back(conn, planned, why, mariadb).await)
            }
            None if planned.replaces.is_some() => AccountOutcome::Replaced,
            None => AccountOutcome::Created,
        };
        results.insert(
            account.name.clone(),
            AccountResult {
                skipped_grants: skipped,
                ..result(account, outcome)
            },
        );
    }
    results.into_values().collect()
}

/// After a replacement failed (`why`) and the new account is gone: create the account it
/// replaced again, as it was read before the restore, and say how that went.
async fn put_back(conn: &mut Conn, planned: &Planned, why: String, mariadb: bool) -> String {
    let Some(previous) = &planned.replaces else {
        return why;
    };
    let mut statements = create_sql(previous);
    statements.extend(
        previous
            .grants
            .iter()
            .map(|grant| grant_sql(grant, &grantee_sql(previous))),
    );
    statements.extend(default_roles_sql(previous, mariadb));
    match run_all(conn, &statements).await {
        Ok(()) => format!("{why}; the account is back as it was before the restore"),
        Err(again) => format!(
            "{why}; putting the account back as it was failed too ({again}): it is missing now, and a backup taken before this restore holds it (`coffer restore --accounts-only --snapshot ID`)"
        ),
    }
}

async fn object_exists(conn: &mut Conn, kind: ObjectType, database: &str, object: &str) -> bool {
    let query = match kind {
        ObjectType::Table => {
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?"
        }
        ObjectType::Function | ObjectType::Procedure => {
            "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? AND ROUTINE_NAME = ?"
        }
    };
    matches!(
        conn.exec_first::<u64, _, _>(query, (database, object)).await,
        Ok(Some(n)) if n > 0
    )
}

async fn run_all(conn: &mut Conn, statements: &[String]) -> std::result::Result<(), String> {
    for statement in statements {
        conn.query_drop(statement.as_str())
            .await
            .map_err(|e| redacted(&e))?;
    }
    Ok(())
}

/// A server error without the statement text it may quote (MariaDB's `near '…'` would show a
/// password hash).
pub fn redacted(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(server) => {
            let message = match server.message.find(" near '") {
                Some(at) => format!("{} (statement text withheld)", &server.message[..at]),
                None => server.message.clone(),
            };
            format!("server error {}: {message}", server.code)
        }
        other => other.to_string(),
    }
}

/// The credential as a literal: a quoted string when it is printable (MariaDB takes nothing
/// else), hex otherwise (MySQL's binary `caching_sha2_password` hashes).
fn credential_literal(hex_text: &str) -> String {
    let bytes = hex::decode(hex_text).unwrap_or_default();
    match std::str::from_utf8(&bytes) {
        Ok(text) if text.chars().all(|c| c.is_ascii_graphic()) => quote_str(text),
        _ => format!("0x{hex_text}"),
    }
}

/// `CREATE USER`/`CREATE ROLE` and what it cannot say in one statement.
pub fn create_sql(account: &Account) -> Vec<String> {
    if account.role {
        return vec![format!("CREATE ROLE {}", grantee_sql(account))];
    }
    let mut sql = format!(
        "CREATE USER {} IDENTIFIED WITH {}",
        account_sql(&account.name),
        quote_str(&account.plugin)
    );
    if !account.credential_hex.is_empty() {
        sql.push_str(" AS ");
        sql.push_str(&credential_literal(&account.credential_hex));
    }
    let tls = &account.tls;
    match tls.kind.as_str() {
        "ANY" => sql.push_str(" REQUIRE SSL"),
        "X509" => sql.push_str(" REQUIRE X509"),
        "SPECIFIED" => {
            let parts: Vec<String> = [
                ("CIPHER", &tls.cipher),
                ("ISSUER", &tls.issuer),
                ("SUBJECT", &tls.subject),
            ]
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(word, value)| format!("{word} {}", quote_str(value)))
            .collect();
            if !parts.is_empty() {
                sql.push_str(" REQUIRE ");
                sql.push_str(&parts.join(" AND "));
            }
        }
        _ => {}
    }
    let limits = &account.limits;
    let with: Vec<String> = [
        ("MAX_QUERIES_PER_HOUR", limits.queries_per_hour),
        ("MAX_UPDATES_PER_HOUR", limits.updates_per_hour),
        ("MAX_CONNECTIONS_PER_HOUR", limits.connections_per_hour),
        ("MAX_USER_CONNECTIONS", limits.user_connections),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(word, n)| format!("{word} {n}"))
    .collect();
    if !with.is_empty() {
        sql.push_str(" WITH ");
        sql.push_str(&with.join(" "));
    }
    match account.password_lifetime {
        Some(0) => sql.push_str(" PASSWORD EXPIRE NEVER"),
        Some(days) => sql.push_str(&format!(" PASSWORD EXPIRE INTERVAL {days} DAY")),
        None => {}
    }
    if account.locked {
        sql.push_str(" ACCOUNT LOCK");
    }
    let mut statements = vec![sql];
    // A lifetime and an expired password cannot both be said in CREATE USER.
    if account.password_expired {
        statements.push(format!(
            "ALTER USER {} PASSWORD EXPIRE",
            account_sql(&account.name)
        ));
    }
    statements
}

fn drop_sql(account: &Account, mariadb: bool) -> String {
    if account.role && mariadb {
        format!("DROP ROLE {}", grantee_sql(account))
    } else {
        format!("DROP USER {}", account_sql(&account.name))
    }
}

fn target_sql(on: &GrantTarget) -> String {
    let kind = match on.object_type {
        ObjectType::Table => "",
        ObjectType::Function => "FUNCTION ",
        ObjectType::Procedure => "PROCEDURE ",
    };
    let part = |name: &Option<String>| name.as_deref().map_or("*".to_string(), quote_ident);
    format!("{kind}{}.{}", part(&on.database), part(&on.object))
}

fn privileges_sql(privileges: &[crate::repo::accounts::Privilege]) -> String {
    privileges
        .iter()
        .map(|p| {
            if p.columns.is_empty() {
                p.name.clone()
            } else {
                let columns: Vec<String> = p.columns.iter().map(|c| quote_ident(c)).collect();
                format!("{} ({})", p.name, columns.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The statement granting `grant` to `grantee` (SQL); with an empty `grantee`, the grant's
/// description (for messages and comparison).
pub fn grant_sql(grant: &Grant, grantee: &str) -> String {
    let to = |word: &str| {
        if grantee.is_empty() {
            String::new()
        } else {
            format!(" {word} {grantee}")
        }
    };
    match grant {
        Grant::Privileges {
            privileges,
            on,
            grant_option,
        } => format!(
            "GRANT {} ON {}{}{}",
            privileges_sql(privileges),
            target_sql(on),
            to("TO"),
            if *grant_option {
                " WITH GRANT OPTION"
            } else {
                ""
            }
        ),
        Grant::Revoke { privileges, on } => format!(
            "REVOKE {} ON {}{}",
            privileges_sql(privileges),
            target_sql(on),
            to("FROM")
        ),
        Grant::Role { role, admin_option } => format!(
            "GRANT {}{}{}",
            role_sql(role),
            to("TO"),
            if *admin_option {
                " WITH ADMIN OPTION"
            } else {
                ""
            }
        ),
        Grant::Proxy { of, grant_option } => format!(
            "GRANT PROXY ON {}{}{}",
            account_sql(of),
            to("TO"),
            if *grant_option {
                " WITH GRANT OPTION"
            } else {
                ""
            }
        ),
    }
}

/// Default roles: MariaDB has one (`SET DEFAULT ROLE r FOR a`), MySQL several
/// (`ALTER USER a DEFAULT ROLE r1, r2`).
fn default_roles_sql(account: &Account, mariadb: bool) -> Option<String> {
    if account.default_roles.is_empty() {
        return None;
    }
    let roles: Vec<String> = account.default_roles.iter().map(role_sql).collect();
    Some(if mariadb {
        format!(
            "SET DEFAULT ROLE {} FOR {}",
            roles.first().cloned().unwrap_or_default(),
            grantee_sql(account)
        )
    } else {
        format!(
            "ALTER USER {} DEFAULT ROLE {}",
            account_sql(&account.name),
            roles.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::accounts::{Limits, Privilege, Tls};

    fn name(user: &str, host: &str) -> AccountName {
        AccountName {
            user: user.into(),
            host: host.into(),
        }
    }

    fn user() -> Account {
        Account {
            name: name("ali'ce", "%"),
            role: false,
            plugin: "caching_sha2_password".into(),
            credential_hex: "24410030".into(),
            tls: Tls {
                kind: "SPECIFIED".into(),
                cipher: String::new(),
                issuer: "/C=FI".into(),
                subject: "/CN=x".into(),
            },
            limits: Limits {
                queries_per_hour: 10,
                ..Default::default()
            },
            locked: true,
            password_expired: true,
            password_lifetime: Some(30),
            default_roles: vec![name("r1", "%")],
            grants: vec![],
        }
    }

    #[test]
    fn statements_quote_every_name_and_keep_binary_hashes_as_hex() {
        assert_eq!(
            create_sql(&user()),
            vec![
                "CREATE USER 'ali\\'ce'@'%' IDENTIFIED WITH 'caching_sha2_password' AS 0x24410030 REQUIRE ISSUER '/C=FI' AND SUBJECT '/CN=x' WITH MAX_QUERIES_PER_HOUR 10 PASSWORD EXPIRE INTERVAL 30 DAY ACCOUNT LOCK".to_string(),
                "ALTER USER 'ali\\'ce'@'%' PASSWORD EXPIRE".to_string(),
            ]
        );
        let mut native = user();
        native.credential_hex = hex::encode("*2B602296A79E0A8784ACC5C88D92E46588CCA3C3");
        assert!(create_sql(&native)[0].contains("AS '*2B602296A79E0A8784ACC5C88D92E46588CCA3C3'"));
        assert_eq!(
            default_roles_sql(&user(), false).unwrap(),
            "ALTER USER 'ali\\'ce'@'%' DEFAULT ROLE 'r1'@'%'"
        );
        let grant = Grant::Privileges {
            privileges: vec![
                Privilege {
                    name: "SELECT".into(),
                    columns: vec!["a`b".into()],
                },
                Privilege {
                    name: "UPDATE".into(),
                    columns: vec![],
                },
            ],
            on: GrantTarget {
                object_type: ObjectType::Table,
                database: Some("db".into()),
                object: Some("t".into()),
            },
            grant_option: true,
        };
        assert_eq!(
            grant_sql(&grant, "'u'@'%'"),
            "GRANT SELECT (`a``b`), UPDATE ON `db`.`t` TO 'u'@'%' WITH GRANT OPTION"
        );
        let role = Account {
            role: true,
            ..user()
        };
        assert_eq!(create_sql(&role), vec!["CREATE ROLE 'ali\\'ce'@'%'"]);
    }

    #[test]
    fn grants_follow_a_prefix_only_onto_restored_databases() {
        let renaming = Renaming {
            prefix: Some("copy_".into()),
            databases: vec!["study_1".into(), "Study_2".into()],
        };
        let on = |database: &str, object: Option<&str>| GrantTarget {
            object_type: ObjectType::Table,
            database: Some(database.into()),
            object: object.map(str::to_string),
        };
        assert_eq!(
            renaming.target(&on(r"study\_%", None)).database.unwrap(),
            r"copy\_study\_%"
        );
        assert_eq!(
            renaming.target(&on("study_1", Some("t"))).database.unwrap(),
            "copy_study_1"
        );
        assert_eq!(
            renaming.target(&on("study_2", Some("t"))).database.unwrap(),
            "copy_study_2"
        );
        assert_eq!(
            renaming.target(&on("other", None)).database.unwrap(),
            "other"
        );
        let everything = GrantTarget {
            object_type: ObjectType::Table,
            database: None,
            object: None,
        };
        assert_eq!(renaming.target(&everything), everything);
        assert!(like_matches(r"study\_%", "STUDY_9"));
        assert!(!like_matches(r"study\_%", "studyX9"));
        assert!(like_matches("study_1", "studyX1"));
    }

    #[test]
    fn errors_do_not_quote_statements() {
        let e = mysql_async::Error::Server(mysql_async::ServerError {
            code: 1064,
            message: "You have an error in your SQL syntax; check the manual near 'AS '*2B60229' at line 1".into(),
            state: "42000".into(),
        });
        let shown = redacted(&e);
        assert!(!shown.contains("2B60"), "{shown}");
        assert!(shown.contains("1064"), "{shown}");
    }
}
