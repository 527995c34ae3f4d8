//! `SHOW GRANTS` lines read into [`Grant`]s, for MySQL 8.0/8.4 and MariaDB.
//!
//! Forms read (docs/ARCHITECTURE.md, "MySQL 8 dialect", names the evidence):
//! - `GRANT SELECT, INSERT ON `db`.* TO `u`@`%` [WITH GRANT OPTION]`, dynamic privileges
//!   comma-separated without spaces (`GRANT BACKUP_ADMIN,XA_RECOVER_ADMIN ON *.* TO …`);
//! - column privileges `GRANT SELECT (`a`, `b`), UPDATE (`a`) ON `db`.`t` TO …`;
//! - routines `GRANT EXECUTE ON PROCEDURE `db`.`p` TO …` (and `FUNCTION`);
//! - roles `GRANT `r`@`%` TO `u`@`%` [WITH ADMIN OPTION]` (MySQL), `GRANT `r` TO …` (MariaDB);
//! - `GRANT PROXY ON `a`@`h` TO …` (also with `'…'` quotes);
//! - MySQL partial revokes `REVOKE INSERT ON `db`.* FROM …`;
//! - MariaDB's `SET DEFAULT ROLE `r` FOR …`, and the account options MariaDB appends to a
//!   grant (`IDENTIFIED BY PASSWORD '*…'`, `REQUIRE SSL`, `WITH MAX_QUERIES_PER_HOUR 10`),
//!   which are skipped: they come from `mysql.user`.
//!
//! A line holds a password hash on MariaDB, so no error here quotes a line: they name the
//! account and the token position only.

use crate::error::{Error, Result};
use crate::repo::accounts::{AccountName, Grant, GrantTarget, ObjectType, Privilege};

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A bare word, upper-cased.
    Word(String),
    /// A quoted name or string, unescaped.
    Quoted(String),
    Punct(char),
}

fn tokenize(line: &str) -> Option<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '`' | '\'' | '"' => {
                chars.next();
                let mut text = String::new();
                loop {
                    match chars.next()? {
                        q if q == c => {
                            if chars.peek() == Some(&c) {
                                chars.next();
                                text.push(c);
                            } else {
                                break;
                            }
                        }
                        // Backslash escapes hold inside string quotes, not backticks.
                        '\\' if c != '`' => text.push(match chars.next()? {
                            'n' => '\n',
                            'r' => '\r',
                            't' => '\t',
                            '0' => '\0',
                            'Z' => '\u{1a}',
                            other => other,
                        }),
                        other => text.push(other),
                    }
                }
                tokens.push(Token::Quoted(text));
            }
            ',' | '(' | ')' | '.' | '@' | '*' => {
                chars.next();
                tokens.push(Token::Punct(c));
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '$' => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '$' {
                        word.push(c.to_ascii_uppercase());
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Word(word));
            }
            _ => return None,
        }
    }
    Some(tokens)
}

/// What one `SHOW GRANTS` line says.
#[derive(Debug, Clone, PartialEq)]
pub enum GrantLine {
    /// One grant, or (MySQL lists several roles in one line) several.
    Grants(Vec<Grant>),
    /// `GRANT USAGE ON …`: nothing beyond the account's existence.
    Usage,
    /// MariaDB's `SET DEFAULT ROLE r FOR …` (`None`: `NONE`).
    DefaultRole(Option<AccountName>),
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<&Token> {
        let token = self.tokens.get(self.at);
        self.at += 1;
        token
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w == word)
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let found = self.is_word(word);
        if found {
            self.at += 1;
        }
        found
    }

    fn eat_punct(&mut self, punct: char) -> bool {
        let found = matches!(self.peek(), Some(Token::Punct(p)) if *p == punct);
        if found {
            self.at += 1;
        }
        found
    }

    fn expect_word(&mut self, word: &str) -> std::result::Result<(), String> {
        if self.eat_word(word) {
            Ok(())
        } else {
            Err(format!("expected {word} at token {}", self.at + 1))
        }
    }

    fn name(&mut self) -> std::result::Result<String, String> {
        let at = self.at + 1;
        match self.next() {
            Some(Token::Quoted(text)) => Ok(text.clone()),
            _ => Err(format!("expected a quoted name at token {at}")),
        }
    }

    /// `'user'@'host'`, or a MariaDB role `'role'`.
    fn account(&mut self) -> std::result::Result<AccountName, String> {
        let user = self.name()?;
        let host = if self.eat_punct('@') {
            self.name()?
        } else {
            String::new()
        };
        Ok(AccountName { user, host })
    }

    /// `*` or a quoted name.
    fn name_or_star(&mut self) -> std::result::Result<Option<String>, String> {
        if self.eat_punct('*') {
            Ok(None)
        } else {
            self.name().map(Some)
        }
    }

    /// `priv [(`c`, …)], …` up to `ON`.
    fn privileges(&mut self) -> std::result::Result<Vec<Privilege>, String> {
        let mut privileges = Vec::new();
        loop {
            let mut words = Vec::new();
            while let Some(Token::Word(w)) = self.peek() {
                if w == "ON" {
                    break;
                }
                words.push(w.clone());
                self.at += 1;
            }
            if words.is_empty() {
                return Err(format!("expected a privilege at token {}", self.at + 1));
            }
            let mut columns = Vec::new();
            if self.eat_punct('(') {
                loop {
                    columns.push(self.name()?);
                    if self.eat_punct(')') {
                        break;
                    }
                    if !self.eat_punct(',') {
                        return Err(format!("expected , or ) at token {}", self.at + 1));
                    }
                }
            }
            privileges.push(Privilege {
                name: words.join(" "),
                columns,
            });
            if !self.eat_punct(',') {
                return Ok(privileges);
            }
        }
    }

    /// `[FUNCTION|PROCEDURE|TABLE] db.object`.
    fn target(&mut self) -> std::result::Result<GrantTarget, String> {
        let object_type = if self.eat_word("FUNCTION") {
            ObjectType::Function
        } else if self.eat_word("PROCEDURE") {
            ObjectType::Procedure
        } else {
            self.eat_word("TABLE");
            ObjectType::Table
        };
        let database = self.name_or_star()?;
        if !self.eat_punct('.') {
            return Err(format!("expected . at token {}", self.at + 1));
        }
        let object = self.name_or_star()?;
        if database.is_none() && object.is_some() {
            return Err("a grant on an object of every database".into());
        }
        Ok(GrantTarget {
            object_type,
            database,
            object,
        })
    }

    /// Whether the rest of the line holds `WITH <word> OPTION` (other account options MariaDB
    /// appends are skipped).
    fn rest_has_option(&self, word: &str) -> bool {
        self.tokens[self.at.min(self.tokens.len())..]
            .windows(3)
            .any(|w| {
                w[0] == Token::Word("WITH".into())
                    && w[1] == Token::Word(word.into())
                    && w[2] == Token::Word("OPTION".into())
            })
    }

    fn line(&mut self) -> std::result::Result<GrantLine, String> {
        if self.eat_word("SET") {
            self.expect_word("DEFAULT")?;
            self.expect_word("ROLE")?;
            let role = if self.eat_word("NONE") {
                None
            } else {
                Some(self.account()?)
            };
            self.expect_word("FOR")?;
            self.account()?;
            return Ok(GrantLine::DefaultRole(role));
        }
        if self.eat_word("REVOKE") {
            let privileges = self.privileges()?;
            self.expect_word("ON")?;
            let on = self.target()?;
            self.expect_word("FROM")?;
            self.account()?;
            return Ok(GrantLine::Grants(vec![Grant::Revoke { privileges, on }]));
        }
        self.expect_word("GRANT")?;
        if matches!(self.peek(), Some(Token::Quoted(_))) {
            let mut roles = vec![self.account()?];
            while self.eat_punct(',') {
                roles.push(self.account()?);
            }
            self.expect_word("TO")?;
            self.account()?;
            let admin_option = self.rest_has_option("ADMIN");
            // MySQL lists several roles in one line: one grant each, with the same option.
            return Ok(GrantLine::Grants(
                roles
                    .into_iter()
                    .map(|role| Grant::Role { role, admin_option })
                    .collect(),
            ));
        }
        if self.is_word("PROXY")
            && matches!(self.tokens.get(self.at + 1), Some(Token::Word(w)) if w == "ON")
        {
            self.at += 2;
            let of = self.account()?;
            self.expect_word("TO")?;
            self.account()?;
            return Ok(GrantLine::Grants(vec![Grant::Proxy {
                of,
                grant_option: self.rest_has_option("GRANT"),
            }]));
        }
        let privileges = self.privileges()?;
        self.expect_word("ON")?;
        let on = self.target()?;
        self.expect_word("TO")?;
        self.account()?;
        let grant_option = self.rest_has_option("GRANT");
        // `USAGE` alone grants nothing, unless it carries the grant option.
        if !grant_option
            && privileges.len() == 1
            && privileges[0].name == "USAGE"
            && privileges[0].columns.is_empty()
        {
            return Ok(GrantLine::Usage);
        }
        Ok(GrantLine::Grants(vec![Grant::Privileges {
            privileges,
            on,
            grant_option,
        }]))
    }
}

/// Read one `SHOW GRANTS` line of `account`. The error names the account, never the line (it
/// may hold a password hash).
pub fn parse_line(line: &str, account: &AccountName) -> Result<GrantLine> {
    let unreadable = |why: String| {
        Error::invalid(format!(
            "a SHOW GRANTS line of {account} is in a form coffer does not read ({why})"
        ))
        .with_hint("report it with the line's form (not its password hash); the databases are backed up, the accounts are not")
    };
    let tokens = tokenize(line).ok_or_else(|| unreadable("unbalanced quotes".into()))?;
    let mut parser = Parser {
        tokens: &tokens,
        at: 0,
    };
    parser.line().map_err(unreadable)
}

/// `SHOW GRANTS`' lines of `account` as its grants (in a stable order, each as printed: a
/// column list keeps the server's order, which it prints again after a restore), with
/// MariaDB's default role.
pub fn parse_lines(
    lines: &[String],
    account: &AccountName,
) -> Result<(Vec<Grant>, Option<AccountName>)> {
    let mut grants = Vec::new();
    let mut default_role = None;
    for line in lines {
        match parse_line(line, account)? {
            GrantLine::Grants(some) => grants.extend(some),
            GrantLine::Usage => {}
            GrantLine::DefaultRole(role) => default_role = role,
        }
    }
    grants.sort();
    Ok((grants, default_role))
}

/// Privileges in name order and columns sorted: the same grants compare equal however a
/// server orders them (for comparing, not for restoring).
pub fn normalised(grant: Grant) -> Grant {
    let sort = |mut privileges: Vec<Privilege>| {
        for p in &mut privileges {
            p.columns.sort();
        }
        privileges.sort();
        privileges
    };
    match grant {
        Grant::Privileges {
            privileges,
            on,
            grant_option,
        } => Grant::Privileges {
            privileges: sort(privileges),
            on,
            grant_option,
        },
        Grant::Revoke { privileges, on } => Grant::Revoke {
            privileges: sort(privileges),
            on,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> AccountName {
        AccountName {
            user: "alice".into(),
            host: "%".into(),
        }
    }

    fn privileges(names: &[&str]) -> Vec<Privilege> {
        names
            .iter()
            .map(|n| Privilege {
                name: n.to_string(),
                columns: vec![],
            })
            .collect()
    }

    fn on(database: Option<&str>, object: Option<&str>) -> GrantTarget {
        GrantTarget {
            object_type: ObjectType::Table,
            database: database.map(str::to_string),
            object: object.map(str::to_string),
        }
    }

    fn grants(line: &str) -> Vec<Grant> {
        match parse_line(line, &alice()).unwrap() {
            GrantLine::Grants(g) => g.into_iter().map(normalised).collect(),
            other => panic!("{line}: {other:?}"),
        }
    }

    fn grant(line: &str) -> Grant {
        let mut found = grants(line);
        assert_eq!(found.len(), 1, "{line}");
        found.remove(0)
    }

    /// Lines as MySQL 8.0/8.4 print them (mysql-test `roles_basic`, `grant_dynamic`,
    /// `partial_revokes` results; see docs/ARCHITECTURE.md).
    #[test]
    fn mysql_8_forms() {
        assert_eq!(
            grant("GRANT SELECT, INSERT ON `db1`.* TO `u1`@`%` WITH GRANT OPTION"),
            Grant::Privileges {
                privileges: privileges(&["INSERT", "SELECT"]),
                on: on(Some("db1"), None),
                grant_option: true,
            }
        );
        assert_eq!(
            grant("GRANT BACKUP_ADMIN,XA_RECOVER_ADMIN ON *.* TO `u1`@`localhost`"),
            Grant::Privileges {
                privileges: privileges(&["BACKUP_ADMIN", "XA_RECOVER_ADMIN"]),
                on: on(None, None),
                grant_option: false,
            }
        );
        let role = |user: &str| Grant::Role {
            role: AccountName {
                user: user.into(),
                host: "%".into(),
            },
            admin_option: false,
        };
        assert_eq!(
            grants("GRANT `r1`@`%`,`r2`@`%` TO `u1`@`%`"),
            vec![role("r1"), role("r2")]
        );
        assert_eq!(
            grant("GRANT `r1`@`%` TO `u1`@`%` WITH ADMIN OPTION"),
            Grant::Role {
                role: AccountName {
                    user: "r1".into(),
                    host: "%".into()
                },
                admin_option: true
            }
        );
        assert_eq!(
            grant("REVOKE INSERT, UPDATE ON `mysql`.* FROM `u1`@`%`"),
            Grant::Revoke {
                privileges: privileges(&["INSERT", "UPDATE"]),
                on: on(Some("mysql"), None),
            }
        );
        assert_eq!(
            grant("GRANT PROXY ON ``@`` TO `root`@`localhost` WITH GRANT OPTION"),
            Grant::Proxy {
                of: AccountName {
                    user: String::new(),
                    host: String::new()
                },
                grant_option: true
            }
        );
        assert_eq!(
            grant("GRANT EXECUTE, ALTER ROUTINE ON FUNCTION `db`.`f` TO `u1`@`%`"),
            Grant::Privileges {
                privileges: privileges(&["ALTER ROUTINE", "EXECUTE"]),
                on: GrantTarget {
                    object_type: ObjectType::Function,
                    database: Some("db".into()),
                    object: Some("f".into()),
                },
                grant_option: false,
            }
        );
        assert_eq!(
            parse_line("GRANT USAGE ON *.* TO `u1`@`%`", &alice()).unwrap(),
            GrantLine::Usage
        );
    }

    /// Lines copied from MySQL 8 mysql-test results (mysql/mysql-server: `r/grant_dynamic.result`,
    /// `r/roles.result`, `suite/auth_sec/r/atomic_global_db_proxy_grants.result` in both its
    /// quoting forms, `suite/auth_sec/r/partial_revokes_add_remove.result`).
    #[test]
    fn mysql_8_test_suite_lines() {
        assert_eq!(
            grant("GRANT USAGE ON *.* TO `u2`@`localhost` WITH GRANT OPTION"),
            Grant::Privileges {
                privileges: privileges(&["USAGE"]),
                on: on(None, None),
                grant_option: true,
            }
        );
        assert_eq!(
            grant(
                "GRANT BINLOG_ADMIN,ROLE_ADMIN,SYSTEM_VARIABLES_ADMIN ON *.* TO `u2`@`localhost`"
            ),
            Grant::Privileges {
                privileges: privileges(&["BINLOG_ADMIN", "ROLE_ADMIN", "SYSTEM_VARIABLES_ADMIN"]),
                on: on(None, None),
                grant_option: false,
            }
        );
        assert_eq!(
            grant(
                "GRANT INSERT (`c1`), UPDATE (`c1`, `c3`) ON `test`.`t_external` TO `joe`@`localhost`"
            ),
            Grant::Privileges {
                privileges: vec![
                    Privilege {
                        name: "INSERT".into(),
                        columns: vec!["c1".into()]
                    },
                    Privilege {
                        name: "UPDATE".into(),
                        columns: vec!["c1".into(), "c3".into()]
                    },
                ],
                on: on(Some("test"), Some("t_external")),
                grant_option: false,
            }
        );
        let admin = |user: &str| Grant::Role {
            role: AccountName {
                user: user.into(),
                host: "%".into(),
            },
            admin_option: true,
        };
        assert_eq!(
            grants(
                "GRANT `consultants`@`%`,`wp_administrators`@`%` TO `joe`@`localhost` WITH ADMIN OPTION"
            ),
            vec![admin("consultants"), admin("wp_administrators")]
        );
        let proxied = Grant::Proxy {
            of: AccountName {
                user: "proxied".into(),
                host: "%".into(),
            },
            grant_option: false,
        };
        assert_eq!(
            grant("GRANT PROXY ON 'proxied'@'%' TO 'userX'@'%'"),
            proxied
        );
        assert_eq!(
            grant("GRANT PROXY ON `proxied`@`%` TO `userX`@`%`"),
            proxied
        );
        assert_eq!(
            grant("REVOKE INSERT, UPDATE ON `mysql`.* FROM `foo`@`%`"),
            Grant::Revoke {
                privileges: privileges(&["INSERT", "UPDATE"]),
                on: on(Some("mysql"), None),
            }
        );
    }

    #[test]
    fn mariadb_forms() {
        assert_eq!(
            grant("GRANT SELECT (`id`, `a`), UPDATE (`a`) ON `study_1`.`t` TO `alice`@`%`"),
            Grant::Privileges {
                privileges: vec![
                    Privilege {
                        name: "SELECT".into(),
                        columns: vec!["a".into(), "id".into()]
                    },
                    Privilege {
                        name: "UPDATE".into(),
                        columns: vec!["a".into()]
                    },
                ],
                on: on(Some("study_1"), Some("t")),
                grant_option: false,
            }
        );
        assert_eq!(
            grant("GRANT `monitor` TO `bob`@`10.0.0.%` WITH ADMIN OPTION"),
            Grant::Role {
                role: AccountName {
                    user: "monitor".into(),
                    host: String::new()
                },
                admin_option: true
            }
        );
        // The hash and options MariaDB appends are skipped, WITH GRANT OPTION is not.
        assert_eq!(
            grant(
                "GRANT BINLOG MONITOR, SLAVE MONITOR ON *.* TO `bob`@`10.0.0.%` IDENTIFIED BY PASSWORD '*B69027D44F6E5EDC07F1AEAD1477967B16F28227' REQUIRE SSL WITH GRANT OPTION MAX_QUERIES_PER_HOUR 10"
            ),
            Grant::Privileges {
                privileges: privileges(&["BINLOG MONITOR", "SLAVE MONITOR"]),
                on: on(None, None),
                grant_option: true,
            }
        );
        assert_eq!(
            grant(r"GRANT INSERT ON `study\_%`.* TO `alice`@`%`"),
            Grant::Privileges {
                privileges: privileges(&["INSERT"]),
                on: on(Some(r"study\_%"), None),
                grant_option: false,
            }
        );
        assert_eq!(
            parse_line("SET DEFAULT ROLE `monitor` FOR `alice`@`%`", &alice()).unwrap(),
            GrantLine::DefaultRole(Some(AccountName {
                user: "monitor".into(),
                host: String::new()
            }))
        );
        assert_eq!(
            grant("GRANT SELECT ON `we``ird`.* TO 'alice'@'%'"),
            Grant::Privileges {
                privileges: privileges(&["SELECT"]),
                on: on(Some("we`ird"), None),
                grant_option: false,
            }
        );
    }

    #[test]
    fn an_unreadable_line_names_the_account_not_the_hash() {
        for line in [
            "GRANT USAGE ON *.* TO `alice`@`%` IDENTIFIED BY PASSWORD '*2B60",
            "GRANT FROB ON TO `alice`@`%` IDENTIFIED BY PASSWORD '*2B602296'",
            "GRANT SELECT ON `a`.`b`.`c` TO x",
            "",
        ] {
            let err = parse_line(line, &alice()).unwrap_err().to_string();
            assert!(err.contains("'alice'@'%'"), "{err}");
            assert!(!err.contains("2B60"), "{err}");
        }
    }
}
