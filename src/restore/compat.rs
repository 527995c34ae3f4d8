//! Restoring into another server kind than the backup came from (MariaDB → MySQL 8, MySQL 8 →
//! MariaDB): done exactly, or refused before anything is changed, naming every object that
//! cannot be and why.
//!
//! The rules read the stored definitions (the `CREATE` statements the source server printed).
//! Each is one line of the compatibility table in the README ("Restoring across server kinds"):
//! - **MariaDB → MySQL**: sequences and system-versioned tables do not exist in MySQL; MariaDB's
//!   own collations (`…_uca1400_…`, `…_nopad_…`), column types (`INET4`, `INET6`, `UUID`) and
//!   table options (`PAGE_COMPRESSED`, `ENCRYPTED=YES`) and engines (Aria, MyISAM's MariaDB
//!   variants, ColumnStore, CONNECT, S3, Spider) are refused. `JSON` columns come back as what
//!   MariaDB stores (`LONGTEXT` with a `json_valid` check): the text is exact.
//! - **MySQL → MariaDB**: MySQL 8's `…_0900_…` collations (MariaDB's nearest, `uca1400`, sorts
//!   by another Unicode version: not exact), spatial columns with an `SRID` attribute, and
//!   functional index parts `((expr))` are refused. `JSON` values come back as the text MySQL
//!   printed (its normal form), into MariaDB's `JSON` (`LONGTEXT`): the values are exact, the
//!   storage is text.
//! - **Same kind**: nothing is checked here (the server refuses what it cannot do, before the
//!   swap, in the staging database).

use mysql_async::Conn;

use super::RestorePlan;
use crate::error::{Error, Result};
use crate::repo::tree::TableKind;
use crate::source::mysql::is_mariadb;

/// A server kind, from its version string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    MariaDb,
    MySql,
}

impl ServerKind {
    /// The kind a `VERSION()` string names (`10.11.6-MariaDB-log`, `8.0.36`, `8.4.3-azure`).
    pub fn of_version(version: &str) -> ServerKind {
        if version.to_ascii_lowercase().contains("mariadb") {
            ServerKind::MariaDb
        } else {
            ServerKind::MySql
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ServerKind::MariaDb => "MariaDB",
            ServerKind::MySql => "MySQL",
        }
    }
}

/// An object that cannot be restored exactly into the target kind, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatible {
    pub object: String,
    pub reason: String,
}

/// What of `plan` (backed up from a `from` server) cannot be restored exactly into a `to`
/// server.
pub fn incompatibilities(
    plan: &RestorePlan,
    from: ServerKind,
    to: ServerKind,
) -> Vec<Incompatible> {
    let mut found = Vec::new();
    if from == to {
        return found;
    }
    for table in &plan.tables {
        let object = format!("table {}", table.name);
        if table.kind == TableKind::Sequence {
            found.push(Incompatible {
                object: format!("sequence {}", table.name),
                reason: format!("{} has no sequences", to.name()),
            });
            continue;
        }
        for reason in definition_problems(&table.create_sql, from, to) {
            found.push(Incompatible {
                object: object.clone(),
                reason,
            });
        }
    }
    for statement in plan.object_statements() {
        if let Some((kind, name)) = &statement.object {
            for reason in collation_problems(&statement.sql, from, to) {
                found.push(Incompatible {
                    object: format!("{} {name}", kind.keyword().to_ascii_lowercase()),
                    reason,
                });
            }
        }
    }
    found
}

/// Refuse, before anything is changed, a plan that the server behind `conn` cannot take
/// exactly, naming every object and why.
pub async fn refuse_incompatible(conn: &mut Conn, plan: &RestorePlan, server: &str) -> Result<()> {
    if plan.source_version.is_empty() {
        return Ok(());
    }
    let from = ServerKind::of_version(&plan.source_version);
    let to = if is_mariadb(conn) {
        ServerKind::MariaDb
    } else {
        ServerKind::MySql
    };
    let problems = incompatibilities(plan, from, to);
    if problems.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> = problems
        .iter()
        .map(|p| format!("{}: {}", p.object, p.reason))
        .collect();
    let (major, minor, patch) = conn.server_version();
    Err(Error::invalid(format!(
        "database {} cannot be restored exactly into {server} ({} {major}.{minor}.{patch}; the backup is of {} {}): {}; nothing was changed",
        plan.source_name,
        to.name(),
        from.name(),
        plan.source_version,
        listed.join("; ")
    ))
    .with_hint(format!(
        "restore into a {} server, or change these objects on the source and back up again (README: \"Restoring across server kinds\")",
        from.name()
    )))
}

/// What a `CREATE TABLE` from a `from` server holds that a `to` server cannot take exactly.
pub fn definition_problems(sql: &str, from: ServerKind, to: ServerKind) -> Vec<String> {
    let mut problems = collation_problems(sql, from, to);
    let upper = sql.to_ascii_uppercase();
    let words = |needle: &str| contains_word(&upper, needle);
    match (from, to) {
        (ServerKind::MariaDb, ServerKind::MySql) => {
            if upper.contains("WITH SYSTEM VERSIONING") {
                problems.push("system-versioned (MySQL keeps no row history)".to_string());
            }
            for kind in ["INET4", "INET6", "UUID"] {
                if words(kind) && column_type_used(&upper, kind) {
                    problems.push(format!(
                        "a column of MariaDB's type {kind}, which MySQL lacks"
                    ));
                }
            }
            for option in ["PAGE_COMPRESSED", "ENCRYPTED`=", "ENCRYPTED="] {
                if upper.contains(option) {
                    problems.push(format!(
                        "the MariaDB table option {}",
                        option.trim_end_matches(['=', '`'])
                    ));
                    break;
                }
            }
            for engine in [
                "ARIA",
                "COLUMNSTORE",
                "CONNECT",
                "S3",
                "SPIDER",
                "SEQUENCE",
                "MROONGA",
            ] {
                if upper.contains(&format!("ENGINE={engine}")) {
                    problems.push(format!("the engine {engine}, which MySQL lacks"));
                }
            }
        }
        (ServerKind::MySql, ServerKind::MariaDb) => {
            if upper.contains(" SRID ") || upper.contains("/*!80003 SRID") {
                problems
                    .push("a spatial column with an SRID attribute (MariaDB has none)".to_string());
            }
            if has_functional_key_part(sql) {
                problems.push(
                    "an index on an expression ((expr)), which MariaDB cannot create".to_string(),
                );
            }
        }
        _ => {}
    }
    problems
}

/// Collations one kind has and the other lacks (or has under a name that sorts differently).
fn collation_problems(sql: &str, from: ServerKind, to: ServerKind) -> Vec<String> {
    let lower = sql.to_ascii_lowercase();
    let mut found: Vec<String> = Vec::new();
    let marks: &[&str] = match (from, to) {
        (ServerKind::MySql, ServerKind::MariaDb) => &["_0900_"],
        (ServerKind::MariaDb, ServerKind::MySql) => &["_uca1400_", "_nopad_"],
        _ => &[],
    };
    for mark in marks {
        let mut rest = lower.as_str();
        while let Some(at) = rest.find(mark) {
            let start = rest[..at]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            let end = at
                + rest[at..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len() - at);
            let name = rest[start..end].to_string();
            if !found.iter().any(|f| f.contains(&name)) {
                found.push(format!(
                    "the collation {name}, which {} {}",
                    to.name(),
                    if *mark == "_0900_" {
                        "does not sort the same way (its uca1400 collations follow another Unicode version)"
                    } else {
                        "lacks"
                    }
                ));
            }
            rest = &rest[end..];
        }
    }
    found
}

fn contains_word(upper: &str, word: &str) -> bool {
    upper
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| w == word)
}

/// Whether `kind` appears as a column's type: after a quoted column name.
fn column_type_used(upper: &str, kind: &str) -> bool {
    upper.contains(&format!("` {kind}")) || upper.contains(&format!("` {kind}("))
}

/// `KEY name ((expr))` or `INDEX … ((`: MySQL 8's functional key parts.
fn has_functional_key_part(sql: &str) -> bool {
    sql.lines().any(|line| {
        let line = line.trim_start().to_ascii_uppercase();
        (line.starts_with("KEY ")
            || line.starts_with("UNIQUE KEY ")
            || line.starts_with("INDEX ")
            || line.starts_with("UNIQUE INDEX "))
            && line.contains("((")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARIADB_TABLE: &str = "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `ip` INET6 DEFAULT NULL,\n  `name` varchar(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_uca1400_ai_ci DEFAULT NULL,\n  `doc` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL CHECK (json_valid(`doc`)),\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_uca1400_ai_ci PAGE_COMPRESSED=1 WITH SYSTEM VERSIONING";
    // As MySQL 8.0 prints such a table (SHOW CREATE TABLE).
    const MYSQL_TABLE: &str = "CREATE TABLE `t` (\n  `id` int NOT NULL,\n  `g` point NOT NULL /*!80003 SRID 4326 */,\n  `doc` json DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  KEY `lower_name` ((lower(`doc` ->> _utf8mb4'$.name')))\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci";

    #[test]
    fn mariadb_only_features_are_each_named_for_mysql() {
        let problems = definition_problems(MARIADB_TABLE, ServerKind::MariaDb, ServerKind::MySql);
        let all = problems.join("\n");
        assert!(all.contains("utf8mb4_uca1400_ai_ci"), "{all}");
        assert!(all.contains("system-versioned"), "{all}");
        assert!(all.contains("INET6"), "{all}");
        assert!(all.contains("PAGE_COMPRESSED"), "{all}");
        assert!(!all.contains("json"), "JSON kept as its text: {all}");
        assert_eq!(
            problems.iter().filter(|p| p.contains("uca1400")).count(),
            1,
            "one line per collation: {all}"
        );
    }

    #[test]
    fn mysql8_only_features_are_each_named_for_mariadb() {
        let problems = definition_problems(MYSQL_TABLE, ServerKind::MySql, ServerKind::MariaDb);
        let all = problems.join("\n");
        assert!(all.contains("utf8mb4_0900_ai_ci"), "{all}");
        assert!(all.contains("SRID"), "{all}");
        assert!(all.contains("expression"), "{all}");
        assert!(!all.contains("json"), "{all}");
    }

    #[test]
    fn the_same_kind_and_plain_tables_pass() {
        assert!(
            definition_problems(MARIADB_TABLE, ServerKind::MariaDb, ServerKind::MariaDb).is_empty()
        );
        let plain = "CREATE TABLE `t` (\n  `id` int NOT NULL,\n  `v` varchar(10) COLLATE utf8mb4_unicode_ci,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
        assert!(definition_problems(plain, ServerKind::MariaDb, ServerKind::MySql).is_empty());
        assert!(definition_problems(plain, ServerKind::MySql, ServerKind::MariaDb).is_empty());
        assert_eq!(
            ServerKind::of_version("10.11.6-MariaDB-log"),
            ServerKind::MariaDb
        );
        assert_eq!(ServerKind::of_version("8.0.36-azure"), ServerKind::MySql);
    }
}
