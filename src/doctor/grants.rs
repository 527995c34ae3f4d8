//! The privileges of the connected account, read from `SHOW GRANTS` (and the grants of the roles
//! it holds), as [`Privileges`]: what it may do on every database (`ON *.*`) and on some.
//!
//! Only privilege names and scopes are kept: MariaDB prints the password hash in the same line
//! (`IDENTIFIED BY PASSWORD '*…'`), which never leaves this module.
//!
//! Forms read (MySQL 8.0/8.4 manual, "SHOW GRANTS Statement"; MariaDB "SHOW GRANTS"):
//! `GRANT SELECT, SHOW VIEW ON *.* TO …`, dynamic privileges comma-separated without spaces
//! (`GRANT BINLOG_ADMIN,SESSION_VARIABLES_ADMIN ON *.* TO …`), `GRANT ALL PRIVILEGES ON …`,
//! column privileges (`GRANT SELECT (`c`) ON `db`.`t` …`, not counted), `GRANT PROXY ON …`,
//! and role grants without `ON` (`GRANT `r`@`%` TO …` on MySQL, `GRANT `r` TO …` on MariaDB).

use std::collections::{BTreeSet, HashSet};

/// Where a privilege holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// `*.*`: every database.
    Global,
    /// `` `db`.* ``.
    Database(String),
}

/// What `SHOW GRANTS` lines grant.
#[derive(Debug, Clone, Default)]
pub struct Privileges {
    /// (privilege in upper case, scope); `ALL` stands for `ALL PRIVILEGES`.
    granted: HashSet<(String, Scope)>,
    /// Roles granted to the account (as `SHOW GRANTS` names them).
    pub roles: BTreeSet<String>,
}

impl Privileges {
    /// Read the lines of `SHOW GRANTS`, adding to what is known.
    pub fn read(&mut self, lines: &[String]) {
        for line in lines {
            self.read_line(line);
        }
    }

    fn read_line(&mut self, line: &str) {
        let Some(rest) = strip_prefix_ignore_case(line.trim(), "GRANT ") else {
            return;
        };
        let Some(to) = find_top_level(rest, " TO ") else {
            return;
        };
        let granted = &rest[..to];
        match find_top_level(granted, " ON ") {
            None => {
                for role in split_top_level(granted) {
                    self.roles.insert(role.trim().to_string());
                }
            }
            Some(on) => {
                let scope = match parse_scope(granted[on + 4..].trim()) {
                    Some(scope) => scope,
                    None => return,
                };
                for privilege in split_top_level(&granted[..on]) {
                    let privilege = privilege.trim();
                    // A column list means the privilege holds for those columns only.
                    if privilege.contains('(') {
                        continue;
                    }
                    let mut name = privilege.to_ascii_uppercase();
                    if name == "ALL PRIVILEGES" {
                        name = "ALL".to_string();
                    }
                    self.granted.insert((name, scope.clone()));
                }
            }
        }
    }

    /// Whether the account holds `privilege` (or one of its other names) on every database.
    pub fn global(&self, names: &[&str]) -> bool {
        names.iter().any(|name| {
            self.granted.contains(&(name.to_string(), Scope::Global))
                || (is_static(name) && self.granted.contains(&("ALL".to_string(), Scope::Global)))
        })
    }

    /// The databases on which the account holds `privilege` without holding it globally.
    pub fn databases_with(&self, names: &[&str]) -> Vec<String> {
        let mut found: Vec<String> = self
            .granted
            .iter()
            .filter(|(p, _)| {
                names.contains(&p.as_str()) || (p == "ALL" && names.iter().any(|n| is_static(n)))
            })
            .filter_map(|(_, scope)| match scope {
                Scope::Database(db) => Some(db.clone()),
                Scope::Global => None,
            })
            .collect();
        found.sort();
        found.dedup();
        found
    }
}

/// Static privileges (`ALL` grants them on both servers); MySQL 8's dynamic privileges
/// (`SESSION_VARIABLES_ADMIN`, `SET_USER_ID`, …) are listed by name in `SHOW GRANTS` even when
/// `ALL` granted them, and MariaDB's `ALL` covers its own (`SUPER`, `SET USER`, `BINLOG MONITOR`).
fn is_static(name: &str) -> bool {
    !name.contains('_')
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    (text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &text[prefix.len()..])
}

/// The byte offset of `needle` (ASCII, matched case-insensitively) outside quotes, backticks
/// and parentheses.
fn find_top_level(text: &str, needle: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0i32;
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'`' | b'\'' | b'"' => quote = Some(b),
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ if depth == 0
                    && text.is_char_boundary(i)
                    && text.len() >= i + needle.len()
                    && text.is_char_boundary(i + needle.len())
                    && text[i..i + needle.len()].eq_ignore_ascii_case(needle) =>
                {
                    return Some(i);
                }
                _ => {}
            },
        }
        i += 1;
    }
    None
}

/// `a, b (c, d), e` split at top-level commas.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(comma) = find_top_level(rest, ",") {
        parts.push(&rest[..comma]);
        rest = &rest[comma + 1..];
    }
    parts.push(rest);
    parts
}

/// `*.*` or `` `db`.* `` (a table scope is not a database-wide grant: `None`).
fn parse_scope(scope: &str) -> Option<Scope> {
    if scope == "*.*" {
        return Some(Scope::Global);
    }
    let database = scope.strip_suffix(".*")?;
    let name = match database.strip_prefix('`').and_then(|d| d.strip_suffix('`')) {
        Some(quoted) => quoted.replace("``", "`"),
        None => database.to_string(),
    };
    Some(Scope::Database(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(lines: &[&str]) -> Privileges {
        let mut privileges = Privileges::default();
        privileges.read(&lines.iter().map(|l| l.to_string()).collect::<Vec<_>>());
        privileges
    }

    #[test]
    fn mysql8_lines_static_dynamic_roles_and_columns() {
        // As the MySQL 8.0 manual's SHOW GRANTS examples print them.
        let p = read(&[
            "GRANT SELECT, RELOAD, PROCESS, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT, SHOW VIEW, EVENT, TRIGGER ON *.* TO `coffer`@`%`",
            "GRANT BACKUP_ADMIN,SESSION_VARIABLES_ADMIN ON *.* TO `coffer`@`%`",
            "GRANT INSERT, UPDATE ON `study_1`.* TO `coffer`@`%`",
            "GRANT SELECT (`c1`), INSERT (`c2`) ON `db`.`t` TO `coffer`@`%`",
            "GRANT `restorer`@`%`,`r2`@`localhost` TO `coffer`@`%`",
        ]);
        assert!(p.global(&["REPLICATION SLAVE"]));
        assert!(p.global(&["SESSION_VARIABLES_ADMIN"]));
        assert!(!p.global(&["LOCK TABLES"]));
        assert!(!p.global(&["INSERT"]));
        assert_eq!(p.databases_with(&["INSERT"]), ["study_1"]);
        assert_eq!(
            p.roles.iter().cloned().collect::<Vec<_>>(),
            ["`r2`@`localhost`", "`restorer`@`%`"]
        );
    }

    #[test]
    fn mariadb_all_privileges_and_the_password_hash_is_not_kept() {
        let p = read(&[
            "GRANT ALL PRIVILEGES ON *.* TO `coffer`@`%` IDENTIFIED BY PASSWORD '*94BDCEBE19083CE2A1F959FD02F964C7AF4CFC29' WITH GRANT OPTION",
            "GRANT `backup_role` TO `coffer`@`%`",
        ]);
        assert!(p.global(&["SUPER"]));
        assert!(p.global(&["LOCK TABLES"]));
        assert!(p.global(&["BINLOG MONITOR", "REPLICATION CLIENT"]));
        // MySQL's dynamic privileges are not implied by ALL in SHOW GRANTS' reading.
        assert!(!p.global(&["SET_USER_ID"]));
        assert!(format!("{p:?}").find("94BDCE").is_none());
        assert!(p.roles.contains("`backup_role`"));
    }

    #[test]
    fn odd_lines_are_skipped_not_misread() {
        let p = read(&[
            "GRANT PROXY ON ``@`` TO `root`@`localhost` WITH GRANT OPTION",
            "GRANT USAGE ON *.* TO `x`@`%`",
            "REVOKE SELECT ON *.* FROM `x`@`%`",
            "GRANT SELECT ON `we``ird`.* TO `x`@`%`",
            "",
        ]);
        assert!(!p.global(&["PROXY"]));
        assert!(p.global(&["USAGE"]));
        assert_eq!(p.databases_with(&["SELECT"]), ["we`ird"]);
    }
}
