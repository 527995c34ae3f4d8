//! The server half of `coffer doctor`: read-only checks as the account coffer connects with.
//!
//! Which privilege each feature needs follows README "Privileges" (and what the code does:
//! `source::mysql::dump`, `backup::tracking`, `pitr::archive`, `restore::server`). The names
//! differ by server: MariaDB 10.5+ prints `REPLICATION CLIENT` as `BINLOG MONITOR` and allows
//! other definers with `SET USER` or `SUPER`; MySQL 8 uses `SET_USER_ID` (8.0) or
//! `SET_ANY_DEFINER` (8.2+) and `SESSION_VARIABLES_ADMIN` for `sql_require_primary_key`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::grants::Privileges;
use super::{Check, Section, bytes};
use crate::source::mysql::{MysqlTarget, SYSTEM_SCHEMAS, catalog, is_mariadb};
use crate::timespec::display_duration as duration;

/// What the server checks assume and how long the probe may read.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// How often backups run (the binary log must be kept longer than that).
    pub backup_every: Duration,
    /// Connections a backup reads over (`backup --jobs`).
    pub jobs: usize,
    /// The most the read-rate probe reads.
    pub probe_bytes: u64,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            backup_every: Duration::from_secs(12 * 3600),
            jobs: 4,
            probe_bytes: 32 << 20,
        }
    }
}

/// A privilege a feature needs, under each server's names.
struct Needed {
    feature: &'static str,
    /// Any of these names (global) is enough.
    names: &'static [&'static str],
    /// The name to put in a GRANT.
    grant: &'static str,
    /// Missing it is ✗ (backups cannot run) rather than ⚠ (a feature is limited).
    essential: bool,
}

/// What a restore (and `log show/undo --where`) does on the server, and the privilege each
/// step needs.
const RESTORE: &[(&[&str], &str)] = &[
    (&["CREATE"], "restore: staging databases and tables"),
    (&["DROP"], "restore: the swap and the staging clean-up"),
    (&["ALTER"], "restore: foreign keys after the swap"),
    (&["INSERT"], "restore: loading rows"),
    (&["DELETE"], "restore --where and replay: rows"),
    (&["UPDATE"], "restore --where and replay: rows"),
    (&["INDEX"], "restore: tables with their keys"),
    (&["REFERENCES"], "restore: foreign keys"),
    (&["CREATE VIEW"], "restore: views"),
    (&["CREATE ROUTINE"], "restore: procedures and functions"),
    (
        &["ALTER ROUTINE"],
        "restore --drop-existing: replacing routines",
    ),
    (
        &["CREATE TEMPORARY TABLES"],
        "log show --where and log undo --where: the session table the server judges rows in",
    ),
];

fn needed(mariadb: bool) -> Vec<Needed> {
    let mut list = vec![
        Needed {
            feature: "backup: read every table",
            names: &["SELECT"],
            grant: "SELECT",
            essential: true,
        },
        Needed {
            feature: "backup: view definitions",
            names: &["SHOW VIEW"],
            grant: "SHOW VIEW",
            essential: true,
        },
        Needed {
            feature: "backup: trigger definitions",
            names: &["TRIGGER"],
            grant: "TRIGGER",
            essential: true,
        },
        Needed {
            feature: "backup: event definitions",
            names: &["EVENT"],
            grant: "EVENT",
            essential: true,
        },
        Needed {
            feature: "change tracking and restore --at: the backup's place in the binary log",
            names: if mariadb {
                &["BINLOG MONITOR", "REPLICATION CLIENT", "SUPER"]
            } else {
                &["REPLICATION CLIENT"]
            },
            grant: if mariadb {
                "BINLOG MONITOR"
            } else {
                "REPLICATION CLIENT"
            },
            essential: false,
        },
        Needed {
            feature: "change tracking and `coffer log follow/sync`: reading the binary log as a replica",
            names: &["REPLICATION SLAVE", "REPLICATION REPLICA"],
            grant: "REPLICATION SLAVE",
            essential: false,
        },
        Needed {
            feature: "parallel reads inside a large database and the snapshot's brief lock (LOCK TABLES … READ)",
            names: &["LOCK TABLES"],
            grant: "LOCK TABLES",
            essential: false,
        },
    ];
    for (names, what) in RESTORE {
        list.push(Needed {
            feature: what,
            names,
            grant: names[0],
            essential: false,
        });
    }
    list.push(Needed {
        feature: "restore --accounts: creating accounts and roles",
        names: &["CREATE USER"],
        grant: "CREATE USER",
        essential: false,
    });
    list.push(Needed {
        feature: "restore of views, routines, triggers and events with their DEFINER (else --skip-definer)",
        names: if mariadb {
            &["SET USER", "SUPER"]
        } else {
            &["SET_ANY_DEFINER", "SET_USER_ID", "SUPER"]
        },
        grant: if mariadb { "SET USER" } else { "SET_USER_ID" },
        essential: false,
    });
    list
}

/// Check the server `target` as coffer's account.
pub async fn check_server(target: &MysqlTarget, options: &ServerOptions) -> Section {
    let mut section = Section {
        kind: "server",
        target: target.describe(),
        checks: Vec::new(),
    };
    let azure = target.socket.is_none() && target.host.ends_with(".mysql.database.azure.com");
    let mut conn = match target.connect().await {
        Ok(conn) => conn,
        Err(e) => {
            section.checks.push(Check::fail(
                "connection",
                e.to_string(),
                "nothing can run against this server",
                e.hint()
                    .unwrap_or("check the URL, the account and its password")
                    .to_string(),
            ));
            return section;
        }
    };
    let mariadb = is_mariadb(&conn);
    let version = catalog::server_version(&mut conn).await.unwrap_or_default();
    section.checks.push(Check::ok(
        "server",
        format!(
            "{} {version}{}",
            if mariadb { "MariaDB" } else { "MySQL" },
            if azure {
                " (Azure Database for MySQL)"
            } else {
                ""
            }
        ),
        "the kind and version backups record",
    ));
    section.checks.push(tls(&mut conn, target).await);
    let variables = variables(&mut conn).await;
    let privileges = privileges(&mut conn, mariadb).await;
    match &privileges {
        Ok(privileges) => section
            .checks
            .extend(privilege_checks(privileges, mariadb, azure, &variables)),
        Err(e) => section.checks.push(Check::warn(
            "privileges",
            format!("SHOW GRANTS failed: {e}"),
            "the account's privileges could not be read; each feature will say what it lacks when it runs",
            "run SHOW GRANTS as this account to see why",
        )),
    }
    section
        .checks
        .extend(binary_log(&mut conn, &variables, mariadb, azure, options).await);
    section.checks.extend(settings(&variables, mariadb, azure));
    section.checks.extend(sizes(&mut conn, options).await);
    let _ = conn.disconnect().await;
    section
}

/// The global variables the checks read (absent ones are left out: older servers lack some).
async fn variables(conn: &mut Conn) -> HashMap<String, String> {
    let names = [
        "log_bin",
        "binlog_format",
        "binlog_row_image",
        "binlog_expire_logs_seconds",
        "expire_logs_days",
        "gtid_mode",
        "lower_case_table_names",
        "max_allowed_packet",
        "require_secure_transport",
        "sql_require_primary_key",
    ];
    let list = names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let rows: Vec<(String, String)> = conn
        .query(format!(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ({list})"
        ))
        .await
        .unwrap_or_default();
    rows.into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

async fn tls(conn: &mut Conn, target: &MysqlTarget) -> Check {
    if target.socket.is_some() {
        return Check::ok(
            "transport",
            "local socket: no network, so no TLS is needed",
            "credentials and data never leave the host",
        );
    }
    let status: Vec<(String, String)> = conn
        .query("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')")
        .await
        .unwrap_or_default();
    let get = |name: &str| {
        status
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let verified_as = target
        .tls_server_name
        .clone()
        .unwrap_or_else(|| target.host.clone());
    Check::ok(
        "transport",
        format!(
            "{} ({}), certificate chain and host name {verified_as} verified",
            get("Ssl_version"),
            get("Ssl_cipher")
        ),
        "encrypted in transit to the server coffer meant to reach (coffer connects no other way over TCP)",
    )
}

/// The account's privileges, with those of its roles.
async fn privileges(conn: &mut Conn, mariadb: bool) -> crate::error::Result<Privileges> {
    let mut privileges = Privileges::default();
    let lines: Vec<String> = conn
        .query("SHOW GRANTS")
        .await
        .map_err(|e| crate::source::mysql::mysql_error(e, "SHOW GRANTS"))?;
    privileges.read(&lines);
    let roles: Vec<String> = privileges.roles.iter().cloned().collect();
    if !roles.is_empty() {
        if mariadb {
            for role in &roles {
                if let Ok(lines) = conn
                    .query::<String, _>(format!("SHOW GRANTS FOR {role}"))
                    .await
                {
                    privileges.read(&lines);
                }
            }
        } else if let Ok(lines) = conn
            .query::<String, _>(format!(
                "SHOW GRANTS FOR CURRENT_USER() USING {}",
                roles.join(", ")
            ))
            .await
        {
            privileges.read(&lines);
        }
    }
    Ok(privileges)
}

fn privilege_checks(
    privileges: &Privileges,
    mariadb: bool,
    azure: bool,
    variables: &HashMap<String, String>,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let grant = |what: &str| {
        if azure {
            format!(
                "as the server admin: GRANT {what} ON *.* TO 'coffer'@'%' (Azure's admin holds it and may grant it)"
            )
        } else {
            format!("GRANT {what} ON *.* TO 'coffer'@'%' (the account coffer connects as)")
        }
    };
    let through_roles = if privileges.roles.is_empty() {
        String::new()
    } else {
        format!(
            " (with roles {}; they count only when active: SET DEFAULT ROLE)",
            privileges
                .roles
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    for need in needed(mariadb) {
        let name = format!("privilege {}", need.grant);
        if privileges.global(need.names) {
            checks.push(Check::ok(
                name,
                format!("granted on every database{through_roles}"),
                need.feature,
            ));
            continue;
        }
        let some = privileges.databases_with(need.names);
        let found = if some.is_empty() {
            format!("not granted{through_roles}")
        } else {
            format!(
                "granted only on {} database(s) ({}{}){through_roles}",
                some.len(),
                some.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
                if some.len() > 3 { ", …" } else { "" }
            )
        };
        let meaning = format!("needed for {}", need.feature);
        checks.push(if need.essential {
            Check::fail(name, found, meaning, grant(need.grant))
        } else {
            Check::warn(name, found, meaning, grant(need.grant))
        });
    }
    // Accounts are read from the `mysql` schema (`source::mysql::accounts`).
    let reads_accounts = privileges.global(&["SELECT"])
        || privileges
            .databases_with(&["SELECT"])
            .iter()
            .any(|db| db == "mysql");
    checks.push(if reads_accounts {
        Check::ok(
            "privilege SELECT on mysql.*",
            format!("granted{through_roles}"),
            "backups record the accounts, roles and grants",
        )
    } else {
        Check::warn(
            "privilege SELECT on mysql.*",
            format!("not granted{through_roles}"),
            "backups leave the accounts, roles and grants out (and say so)",
            if azure {
                "as the server admin: GRANT SELECT ON mysql.* TO 'coffer'@'%'".to_string()
            } else {
                "GRANT SELECT ON mysql.* TO 'coffer'@'%' (the account coffer connects as)"
                    .to_string()
            },
        )
    });
    let require_key = variables
        .get("sql_require_primary_key")
        .is_some_and(|v| v == "ON" || v == "1");
    if !mariadb && require_key {
        let can_turn_off =
            privileges.global(&["SESSION_VARIABLES_ADMIN", "SYSTEM_VARIABLES_ADMIN", "SUPER"]);
        checks.push(if can_turn_off {
            Check::ok(
                "privilege SESSION_VARIABLES_ADMIN",
                "granted; sql_require_primary_key is ON",
                "restore turns sql_require_primary_key off for its session, so tables without a primary key restore",
            )
        } else {
            Check::warn(
                "privilege SESSION_VARIABLES_ADMIN",
                "not granted, and sql_require_primary_key is ON",
                "a table without a primary key cannot be restored into this server (error 3750)",
                grant("SESSION_VARIABLES_ADMIN"),
            )
        });
    }
    checks
}

/// Retention of the binary log in seconds (0: never purged automatically, except on Azure).
fn retention_seconds(variables: &HashMap<String, String>) -> Option<u64> {
    let seconds = variables
        .get("binlog_expire_logs_seconds")
        .and_then(|v| v.parse::<u64>().ok());
    let days = variables
        .get("expire_logs_days")
        .and_then(|v| v.parse::<f64>().ok())
        .map(|d| (d * 86400.0) as u64);
    match (seconds, days) {
        (Some(s), _) if s > 0 => Some(s),
        (_, Some(d)) if d > 0 => Some(d),
        (Some(_), _) | (_, Some(_)) => Some(0),
        (None, None) => None,
    }
}

async fn binary_log(
    conn: &mut Conn,
    variables: &HashMap<String, String>,
    mariadb: bool,
    azure: bool,
    options: &ServerOptions,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let setting = |name: &str, value: &str| {
        if azure {
            format!("set the server parameter {name} to {value} (Azure portal: Server parameters)")
        } else if mariadb {
            format!(
                "SET GLOBAL {name} = {value}, and {name} = {value} under [mariadbd] in the server's configuration"
            )
        } else {
            format!("SET PERSIST {name} = {value}")
        }
    };
    let log_bin = variables
        .get("log_bin")
        .is_some_and(|v| v == "ON" || v == "1");
    if !log_bin {
        checks.push(Check::warn(
            "log_bin",
            "OFF: the server keeps no binary log",
            "every backup reads every database (no change tracking), and nothing can be restored to a moment between backups",
            if azure {
                "Azure keeps a binary log on every server; check the server parameter log_bin".to_string()
            } else if mariadb {
                "start the server with log_bin (and binlog_format=ROW) in its configuration".to_string()
            } else {
                "start the server without --skip-log-bin / --disable-log-bin (MySQL 8 logs by default)".to_string()
            },
        ));
        return checks;
    }
    checks.push(Check::ok(
        "log_bin",
        "ON",
        "change tracking and point-in-time recovery can read the binary log",
    ));
    match catalog::binlog_position(conn).await {
        Ok(position) => checks.push(Check::ok(
            "binary log position",
            format!("readable ({}:{})", position.file, position.position),
            "backups record where each copy sits in the log",
        )),
        Err(why) => checks.push(Check::warn(
            "binary log position",
            format!("not readable: {why}"),
            "change tracking is off (every backup reads everything) and backups cannot be replayed from",
            if mariadb {
                "GRANT BINLOG MONITOR ON *.* TO 'coffer'@'%'"
            } else {
                "GRANT REPLICATION CLIENT ON *.* TO 'coffer'@'%'"
            },
        )),
    }
    let format = variables
        .get("binlog_format")
        .cloned()
        .unwrap_or_default()
        .to_ascii_uppercase();
    checks.push(match format.as_str() {
        "ROW" => Check::ok(
            "binlog_format",
            "ROW",
            "every change is logged as the rows it changed: change tracking and replay are exact",
        ),
        "MIXED" => Check::warn(
            "binlog_format",
            "MIXED",
            "change tracking works; restore --at refuses a range holding a change logged as a statement",
            setting("binlog_format", "ROW"),
        ),
        other => Check::warn(
            "binlog_format",
            if other.is_empty() { "unknown" } else { other }.to_string(),
            "statements are logged, not rows: restore --at and log undo cannot replay them",
            setting("binlog_format", "ROW"),
        ),
    });
    let image = variables
        .get("binlog_row_image")
        .cloned()
        .unwrap_or_default()
        .to_ascii_uppercase();
    checks.push(if image == "FULL" || image.is_empty() {
        Check::ok(
            "binlog_row_image",
            if image.is_empty() {
                "FULL (default)"
            } else {
                "FULL"
            },
            "row changes carry every column: replay and undo work on every table",
        )
    } else {
        Check::warn(
            "binlog_row_image",
            image.clone(),
            "replay refuses changes to tables without a primary key, and log undo needs whole rows",
            setting("binlog_row_image", "FULL"),
        )
    });
    let every = options.backup_every.as_secs();
    let wanted = every * 2;
    checks.push(match retention_seconds(variables) {
        Some(0) if azure => Check::warn(
            "binary log retention",
            "binlog_expire_logs_seconds = 0: on Azure the log is purged as soon as it is no longer in use",
            "change tracking needs the log back to the previous backup; without it every backup reads everything",
            setting("binlog_expire_logs_seconds", &wanted.to_string()),
        ),
        Some(0) | None => Check::ok(
            "binary log retention",
            "never purged automatically",
            "change tracking can always reach the previous backup (watch the server's disk)",
        ),
        Some(kept) if kept >= wanted => Check::ok(
            "binary log retention",
            format!("{} against backups every {}", duration(kept as f64), duration(every as f64)),
            "the log reaches back past the previous backup",
        ),
        Some(kept) => Check::warn(
            "binary log retention",
            format!("{} against backups every {}", duration(kept as f64), duration(every as f64)),
            "a backup whose predecessor's position was purged reads every database; `coffer log sync` must run more often than the retention",
            setting("binlog_expire_logs_seconds", &wanted.to_string()),
        ),
    });
    if mariadb {
        checks.push(Check::ok(
            "GTID",
            "MariaDB GTIDs (always on)",
            "archived transactions are named by GTID for --stop-before",
        ));
    } else {
        let mode = variables.get("gtid_mode").cloned().unwrap_or_default();
        checks.push(if mode.eq_ignore_ascii_case("ON") {
            Check::ok(
                "gtid_mode",
                "ON",
                "archived transactions are named by GTID for --stop-before",
            )
        } else {
            Check::ok(
                "gtid_mode",
                if mode.is_empty() { "unknown".to_string() } else { mode },
                "archived transactions are named by file:position for --stop-before (GTIDs are not needed)",
            )
        });
    }
    checks
}

fn settings(variables: &HashMap<String, String>, mariadb: bool, azure: bool) -> Vec<Check> {
    let mut checks = Vec::new();
    if let Some(value) = variables.get("lower_case_table_names") {
        checks.push(Check::ok(
            "lower_case_table_names",
            value.clone(),
            if value == "0" {
                "names keep their case; a restore into a server with 1 folds them"
            } else {
                "names are stored in lower case (Azure's setting); restores into a server with 0 keep them lower case"
            },
        ));
    }
    if let Some(packet) = variables
        .get("max_allowed_packet")
        .and_then(|v| v.parse::<u64>().ok())
    {
        checks.push(if packet >= 16 << 20 {
            Check::ok(
                "max_allowed_packet",
                bytes(packet),
                "restores send statements of at most half of it; larger rows are sent in pieces",
            )
        } else {
            Check::warn(
                "max_allowed_packet",
                bytes(packet),
                "a single value larger than it cannot be restored into this server",
                if azure {
                    "set the server parameter max_allowed_packet to 67108864 or more"
                } else if mariadb {
                    "SET GLOBAL max_allowed_packet = 67108864, and the same under [mariadbd] in the server's configuration"
                } else {
                    "SET PERSIST max_allowed_packet = 67108864"
                },
            )
        });
    }
    match variables.get("require_secure_transport").map(String::as_str) {
        Some("ON") | Some("1") => checks.push(Check::ok(
            "require_secure_transport",
            "ON",
            "the server refuses unencrypted connections from every client",
        )),
        Some(value) => checks.push(Check::warn(
            "require_secure_transport",
            value.to_string(),
            "coffer always uses verified TLS over TCP, but other clients may connect unencrypted",
            if azure {
                "set the server parameter require_secure_transport to ON"
            } else if mariadb {
                "SET GLOBAL require_secure_transport = ON, and the same under [mariadbd] in the server's configuration"
            } else {
                "SET PERSIST require_secure_transport = ON"
            },
        )),
        None => {}
    }
    checks
}

/// The largest databases and tables, and an estimate of a backup's duration from a short read.
async fn sizes(conn: &mut Conn, options: &ServerOptions) -> Vec<Check> {
    let mut checks = Vec::new();
    let system = SYSTEM_SCHEMAS
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let databases: Vec<(String, u64, u64)> = match conn
        .query(format!(
            "SELECT TABLE_SCHEMA, CAST(SUM(DATA_LENGTH) AS UNSIGNED), COUNT(*) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA NOT IN ({system}) AND TABLE_TYPE = 'BASE TABLE' GROUP BY TABLE_SCHEMA \
             ORDER BY 2 DESC"
        ))
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            checks.push(Check::warn(
                "sizes",
                format!("information_schema.TABLES is not readable: {e}"),
                "no estimate of a backup's duration",
                "GRANT SELECT ON *.* TO 'coffer'@'%'",
            ));
            return checks;
        }
    };
    let total: u64 = databases.iter().map(|d| d.1).sum();
    let tables: u64 = databases.iter().map(|d| d.2).sum();
    checks.push(Check::ok(
        "largest databases",
        format!(
            "{} databases, {tables} tables, {} in all; largest: {}",
            databases.len(),
            bytes(total),
            databases
                .iter()
                .take(5)
                .map(|(name, size, _)| format!("{name} ({})", bytes(*size)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "backups read the largest first; a database over a connection's share is read by every connection at once",
    ));
    let largest: Vec<(String, String, u64, u64)> = conn
        .query(format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, CAST(DATA_LENGTH AS UNSIGNED), CAST(AVG_ROW_LENGTH AS UNSIGNED) \
             FROM information_schema.TABLES WHERE TABLE_SCHEMA NOT IN ({system}) AND TABLE_TYPE = 'BASE TABLE' \
             ORDER BY DATA_LENGTH DESC LIMIT 5"
        ))
        .await
        .unwrap_or_default();
    if !largest.is_empty() {
        checks.push(Check::ok(
            "largest tables",
            largest
                .iter()
                .map(|(db, table, size, _)| format!("{db}.{table} ({})", bytes(*size)))
                .collect::<Vec<_>>()
                .join(", "),
            "the tables that set how long one database takes",
        ));
    }
    if let Some((db, table, _, average)) = largest.first() {
        checks.push(estimate(conn, db, table, *average, total, options).await);
    }
    checks
}

/// Read at most `options.probe_bytes` of the largest table and scale the rate to the estate.
async fn estimate(
    conn: &mut Conn,
    db: &str,
    table: &str,
    average_row: u64,
    total: u64,
    options: &ServerOptions,
) -> Check {
    let rows = (options.probe_bytes / average_row.max(1)).clamp(100, 10_000_000);
    let started = Instant::now();
    let mut read = 0u64;
    let sql = format!(
        "SELECT * FROM {} LIMIT {rows}",
        crate::sql::qualified(db, table)
    );
    let result = async {
        let mut result = conn.query_iter(sql).await?;
        result
            .for_each(|row: mysql_async::Row| {
                for column in 0..row.len() {
                    read += match row.as_ref(column) {
                        Some(mysql_async::Value::Bytes(b)) => b.len() as u64,
                        _ => 8,
                    };
                }
            })
            .await
    }
    .await;
    let seconds = started.elapsed().as_secs_f64().max(0.001);
    if let Err(e) = result {
        return Check::warn(
            "backup duration estimate",
            format!("the read probe of {db}.{table} failed: {e}"),
            "no estimate",
            "GRANT SELECT ON *.* TO 'coffer'@'%'",
        );
    }
    let rate = read as f64 / seconds;
    let connections = options.jobs.max(1) as f64;
    let full = if rate > 0.0 {
        total as f64 / (rate * connections)
    } else {
        0.0
    };
    Check::ok(
        "backup duration estimate",
        format!(
            "one connection read {} of {db}.{table} at {}/s; a full backup of {} over {} connections: about {} (if connections scale); an incremental one reads only the databases changed since",
            bytes(read),
            bytes(rate as u64),
            bytes(total),
            options.jobs,
            duration(full)
        ),
        "an estimate from table statistics and a short read: the snapshots' own timings (`coffer stats`) are the measure",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_reads_seconds_then_days_and_zero_as_never() {
        let vars = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            retention_seconds(&vars(&[("binlog_expire_logs_seconds", "2592000")])),
            Some(2_592_000)
        );
        assert_eq!(
            retention_seconds(&vars(&[
                ("binlog_expire_logs_seconds", "0"),
                ("expire_logs_days", "1.5")
            ])),
            Some(129_600)
        );
        assert_eq!(
            retention_seconds(&vars(&[("binlog_expire_logs_seconds", "0")])),
            Some(0)
        );
        assert_eq!(retention_seconds(&vars(&[])), None);
    }
}
