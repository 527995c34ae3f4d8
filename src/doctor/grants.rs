//! The privileges of the connected account, read from `SHOW GRANTS` (and the grants of the roles
//! it holds), as [`Privileges`]: what it may do on every database (`ON *.*`) and on some.
//!
//! Only privilege names and scopes are kept: MariaDB prints the password hash in the same line
//! (`IDENTIFIED BY PASSWORD '*…'`), which never leaves this module.
//!
//! Lines are read by [`crate::source::mysql::grants`], the reader backups record accounts with
//! (its module doc lists the forms of both servers). Column, table and routine privileges are
//! not counted: doctor asks what the account may do on whole databases.

use std::collections::{BTreeSet, HashSet};

use crate::repo::accounts::{AccountName, Grant, ObjectType};
use crate::source::mysql::accounts::role_sql;
use crate::source::mysql::grants::{self, GrantLine};

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
    /// Read the lines of `SHOW GRANTS`, adding to what is known. Lines are read by
    /// [`crate::source::mysql::grants`] (the reader backups use); one it cannot read is skipped
    /// here: doctor reports what it can see.
    pub fn read(&mut self, lines: &[String]) {
        let account = AccountName {
            user: "the account coffer connects as".into(),
            host: String::new(),
        };
        for line in lines {
            let Ok(GrantLine::Grants(grants)) = grants::parse_line(line, &account) else {
                continue;
            };
            for grant in grants {
                self.read_grant(grant);
            }
        }
    }

    fn read_grant(&mut self, grant: Grant) {
        match grant {
            Grant::Role { role, .. } => {
                self.roles.insert(role_sql(&role));
            }
            Grant::Privileges { privileges, on, .. } => {
                let scope = match (&on.database, &on.object) {
                    (None, None) => Scope::Global,
                    (Some(database), None) if on.object_type == ObjectType::Table => {
                        Scope::Database(database.clone())
                    }
                    // A table or routine grant is not a database-wide one.
                    _ => return,
                };
                for privilege in privileges {
                    // A column list means the privilege holds for those columns only.
                    if !privilege.columns.is_empty() {
                        continue;
                    }
                    let name = match privilege.name.as_str() {
                        "ALL PRIVILEGES" => "ALL".to_string(),
                        other => other.to_string(),
                    };
                    self.granted.insert((name, scope.clone()));
                }
            }
            Grant::Proxy { .. } | Grant::Revoke { .. } => {}
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
            ["'r2'@'localhost'", "'restorer'@'%'"]
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
        assert!(p.roles.contains("'backup_role'"));
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
        // USAGE grants nothing; a revoke takes away, never grants.
        assert!(!p.global(&["USAGE"]));
        assert!(!p.global(&["SELECT"]));
        assert_eq!(p.databases_with(&["SELECT"]), ["we`ird"]);
    }
}
