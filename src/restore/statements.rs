//! Checks on the `CREATE` statements a restore runs: each must be the single statement of the
//! kind and name its tree claims, creating its object in the database being restored.
//!
//! The statements come from the repository, which anyone holding the repository key (every
//! backup host) can write, and a restore runs them with the rights of an administrator on a
//! connection whose driver always enables multi-statements. So a stored statement is never run
//! on trust: a planted `CREATE TABLE t (…); DROP DATABASE live` or a trigger on another
//! database's table is refused before anything is sent. The same checks protect `coffer dump`
//! scripts, where a `;;` or a client command (`\!`) inside a statement would escape it.
//!
//! Stored programs (routines, triggers, events) contain `;` inside their bodies; they are
//! checked with a block matcher over the tokens (`BEGIN … END`, `IF … END IF`, `CASE … END
//! [CASE]`, `LOOP`, `WHILE`, `REPEAT`, `FOR`). It is deliberately strict: whatever it cannot
//! place is refused, with the object named, rather than run.

use crate::repo::tree::ObjectKind;
use crate::sql::QuoteRules;

/// What a stored statement must create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateKind {
    Table,
    Sequence,
    Object(ObjectKind),
}

impl CreateKind {
    fn keyword(self) -> &'static str {
        match self {
            CreateKind::Table => "TABLE",
            CreateKind::Sequence => "SEQUENCE",
            CreateKind::Object(kind) => kind.keyword(),
        }
    }

    fn is_program(self) -> bool {
        matches!(
            self,
            CreateKind::Object(
                ObjectKind::Procedure
                    | ObjectKind::Function
                    | ObjectKind::Trigger
                    | ObjectKind::Event
            )
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An unquoted word, as written.
    Word(String),
    /// A backtick- or double-quoted identifier (double quotes may be a string; either way it
    /// is one token).
    Quoted(String),
    /// A string literal.
    Str,
    Punct(u8),
}

/// Check that `sql` is exactly one `CREATE` of `kind` named `name` (compared without regard to
/// case), and that any schema qualifier on it (or on a trigger's table) is `database`, reading
/// it as the server will in the session it runs in (`rules`: the object's stored `sql_mode`).
pub fn check_create(
    sql: &str,
    kind: CreateKind,
    name: &str,
    database: &str,
    rules: QuoteRules,
) -> Result<(), String> {
    let tokens = tokenize(sql, rules)?;
    let body_start = check_head(&tokens, kind, name, database)?;
    if kind.is_program() {
        check_blocks(&tokens)
    } else if tokens[body_start..].contains(&Token::Punct(b';')) {
        Err("it holds more than one statement".into())
    } else {
        Ok(())
    }
}

/// The table a `CREATE TRIGGER` statement attaches its trigger to (`None` if it is not one).
pub fn trigger_table(sql: &str) -> Option<String> {
    let tokens = tokenize(sql, QuoteRules::default()).ok()?;
    let keyword = tokens
        .iter()
        .take(40)
        .position(|t| is_word(Some(t), "TRIGGER"))?;
    let mut i = keyword + 1;
    if is_word(tokens.get(i), "IF") {
        i += 3;
    }
    let (_, _, after) = qualified_name(&tokens, i)?;
    let on = (after..tokens.len().min(after + 8)).find(|&j| is_word(tokens.get(j), "ON"))?;
    qualified_name(&tokens, on + 1).map(|(_, table, _)| table)
}

fn tokenize(sql: &str, rules: QuoteRules) -> Result<Vec<Token>, String> {
    let bytes = sql.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    // Inside a `/*! … */` executable comment, whose content the server runs as SQL.
    let mut executable_comment = false;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            _ if c.is_ascii_whitespace() => i += 1,
            b'#' => i = comment_end(bytes, i, line_end(bytes, i))?,
            b'-' if bytes.get(i + 1) == Some(&b'-')
                && bytes.get(i + 2).is_none_or(|b| b.is_ascii_whitespace()) =>
            {
                i = comment_end(bytes, i, line_end(bytes, i))?
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let executable = matches!(bytes.get(i + 2), Some(b'!'))
                    || (bytes.get(i + 2) == Some(&b'M') && bytes.get(i + 3) == Some(&b'!'));
                if executable {
                    if executable_comment {
                        return Err("nested executable comments".into());
                    }
                    executable_comment = true;
                    i += if bytes[i + 2] == b'M' { 4 } else { 3 };
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                } else {
                    let close = bytes[i + 2..]
                        .windows(2)
                        .position(|w| w == b"*/")
                        .ok_or("an unterminated comment")?;
                    i = comment_end(bytes, i, i + 2 + close + 2)?;
                }
            }
            b'*' if executable_comment && bytes.get(i + 1) == Some(&b'/') => {
                executable_comment = false;
                i += 2;
            }
            b'\'' | b'"' | b'`' => {
                let end = quoted_end(bytes, i, rules)?;
                let inner = &sql[i + 1..end - 1];
                tokens.push(match c {
                    _ if rules.is_string_quote(c) => Token::Str,
                    _ => {
                        let doubled = if c == b'`' { "``" } else { "\"\"" };
                        Token::Quoted(inner.replace(doubled, &doubled[..1]))
                    }
                });
                i = end;
            }
            b'\\' => {
                // Not SQL outside a string, and a command to the mysql/mariadb client.
                return Err("a backslash outside a string".into());
            }
            _ if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || bytes[i] == b'_'
                        || bytes[i] == b'$'
                        || bytes[i] >= 0x80)
                {
                    i += 1;
                }
                tokens.push(Token::Word(sql[start..i].to_string()));
            }
            _ => {
                tokens.push(Token::Punct(c));
                i += 1;
            }
        }
    }
    if executable_comment {
        return Err("an unterminated executable comment".into());
    }
    Ok(tokens)
}

/// `end`, if the comment from `start` to `end` holds no backslash: the mysql and mariadb clients
/// read `\` commands (`\!` runs a shell command) in scripts, and a comment is no place for one.
fn comment_end(bytes: &[u8], start: usize, end: usize) -> Result<usize, String> {
    if bytes[start..end].contains(&b'\\') {
        return Err("a backslash in a comment".into());
    }
    Ok(end)
}

fn line_end(bytes: &[u8], start: usize) -> usize {
    bytes[start..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(bytes.len(), |p| start + p + 1)
}

/// End (exclusive) of the quoted token opening at `start`; strings take backslash escapes
/// unless `NO_BACKSLASH_ESCAPES`, all take a doubled quote.
fn quoted_end(bytes: &[u8], start: usize, rules: QuoteRules) -> Result<usize, String> {
    let quote = bytes[start];
    let escapes = rules.backslash_escapes(quote);
    let mut i = start + 1;
    while i < bytes.len() {
        if escapes && bytes[i] == b'\\' {
            i += 2;
        } else if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return Ok(i + 1);
            }
        } else {
            i += 1;
        }
    }
    Err("an unterminated quoted string or name".into())
}

/// Whether `token` is the keyword `word` (given in capitals; SQL keywords ignore case).
fn is_word(token: Option<&Token>, word: &str) -> bool {
    matches!(token, Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
}

/// A possibly qualified name at `at`: (qualifier, name, index after it).
fn qualified_name(tokens: &[Token], at: usize) -> Option<(Option<String>, String, usize)> {
    let part = |i: usize| match tokens.get(i) {
        Some(Token::Word(w)) | Some(Token::Quoted(w)) => Some(w.clone()),
        _ => None,
    };
    let first = part(at)?;
    if tokens.get(at + 1) == Some(&Token::Punct(b'.')) {
        let second = part(at + 2)?;
        return Some((Some(first), second, at + 3));
    }
    Some((None, first, at + 1))
}

/// Check `CREATE [OR REPLACE] [attributes] KIND [IF NOT EXISTS] name`; returns the index after
/// the name.
fn check_head(
    tokens: &[Token],
    kind: CreateKind,
    name: &str,
    database: &str,
) -> Result<usize, String> {
    if !is_word(tokens.first(), "CREATE") {
        return Err("it is not a CREATE statement".into());
    }
    let keyword = kind.keyword();
    let mut i = 1;
    // Attributes before the kind: OR REPLACE, ALGORITHM=…, DEFINER=…, SQL SECURITY …,
    // AGGREGATE. None of them contains the kind's keyword as a bare word.
    let limit = tokens.len().min(40);
    while i < limit && !is_word(tokens.get(i), keyword) {
        match &tokens[i] {
            Token::Word(w)
                if [
                    "TABLE",
                    "VIEW",
                    "PROCEDURE",
                    "FUNCTION",
                    "TRIGGER",
                    "EVENT",
                    "SEQUENCE",
                    "DATABASE",
                    "SCHEMA",
                    "USER",
                    "SERVER",
                ]
                .iter()
                .any(|kind| w.eq_ignore_ascii_case(kind)) =>
            {
                return Err(format!(
                    "it creates a {}, not a {keyword}",
                    w.to_ascii_uppercase()
                ));
            }
            Token::Punct(b';') => return Err("it holds more than one statement".into()),
            _ => i += 1,
        }
    }
    if !is_word(tokens.get(i), keyword) {
        return Err(format!("it does not create a {keyword}"));
    }
    i += 1;
    if is_word(tokens.get(i), "IF") {
        if !(is_word(tokens.get(i + 1), "NOT") && is_word(tokens.get(i + 2), "EXISTS")) {
            return Err("malformed IF NOT EXISTS".into());
        }
        i += 3;
    }
    let (qualifier, created, mut after) = qualified_name(tokens, i).ok_or("it names no object")?;
    if !created.eq_ignore_ascii_case(name) {
        return Err(format!("it creates {created:?}, not {name:?}"));
    }
    check_qualifier(qualifier.as_deref(), database)?;
    if kind == CreateKind::Object(ObjectKind::Trigger) {
        // CREATE TRIGGER name {BEFORE|AFTER} {INSERT|UPDATE|DELETE} ON table …
        let on = (after..tokens.len().min(after + 8))
            .find(|&j| is_word(tokens.get(j), "ON"))
            .ok_or("the trigger names no table")?;
        let (table_qualifier, _, next) =
            qualified_name(tokens, on + 1).ok_or("the trigger names no table")?;
        check_qualifier(table_qualifier.as_deref(), database)?;
        after = next;
    }
    Ok(after)
}

fn check_qualifier(qualifier: Option<&str>, database: &str) -> Result<(), String> {
    match qualifier {
        Some(q) if !q.eq_ignore_ascii_case(database) => Err(format!(
            "it creates its object in database {q:?}, not in {database:?}"
        )),
        _ => Ok(()),
    }
}

/// What an `END` closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    /// A bare `END`: a `BEGIN` block or a `CASE` expression.
    BeginOrCase,
    If,
    Case,
    Loop,
    While,
    Repeat,
    For,
}

/// Tokens after which a statement starts inside a stored program, so an `IF` or `REPEAT` there
/// is a statement and not a function call.
fn starts_statement(previous: Option<&Token>) -> bool {
    match previous {
        Some(Token::Punct(b';' | b':' | b')')) => true,
        Some(Token::Word(w)) => matches!(
            w.to_ascii_uppercase().as_str(),
            "BEGIN"
                | "THEN"
                | "ELSE"
                | "DO"
                | "LOOP"
                | "REPEAT"
                | "ROW"
                | "DETERMINISTIC"
                | "SQL"
                | "DATA"
                | "DEFINER"
                | "INVOKER"
        ),
        _ => false,
    }
}

/// Match the blocks of a stored program from its end backwards. Every `END [X]` must be opened
/// by a matching keyword in a place where a statement starts, and a `;` may only stand inside a
/// block. Reading backwards, a function `IF(…)` can never open a block (it is never where a
/// statement starts); whatever does not match is refused.
fn check_blocks(tokens: &[Token]) -> Result<(), String> {
    let mut open: Vec<Block> = Vec::new();
    let mut i = tokens.len();
    while i > 0 {
        i -= 1;
        let previous = i.checked_sub(1).and_then(|p| tokens.get(p));
        let next = tokens.get(i + 1);
        let Token::Word(word) = &tokens[i] else {
            if tokens[i] == Token::Punct(b';') && open.is_empty() {
                return Err("it holds more than one statement".into());
            }
            continue;
        };
        let word = word.to_ascii_uppercase();
        if is_word(previous, "END") {
            // The second word of `END IF` and the like was pushed with its END.
            if matches!(
                word.as_str(),
                "IF" | "CASE" | "LOOP" | "WHILE" | "REPEAT" | "FOR"
            ) {
                continue;
            }
        }
        match word.as_str() {
            "END" => open.push(match next {
                _ if is_word(next, "IF") => Block::If,
                _ if is_word(next, "CASE") => Block::Case,
                _ if is_word(next, "LOOP") => Block::Loop,
                _ if is_word(next, "WHILE") => Block::While,
                _ if is_word(next, "REPEAT") => Block::Repeat,
                _ if is_word(next, "FOR") => Block::For,
                _ => Block::BeginOrCase,
            }),
            "BEGIN" => close(&mut open, &[Block::BeginOrCase], "BEGIN")?,
            "CASE" => close(&mut open, &[Block::Case, Block::BeginOrCase], "CASE")?,
            "LOOP" => close(&mut open, &[Block::Loop], "LOOP")?,
            "WHILE" => close(&mut open, &[Block::While], "WHILE")?,
            "IF" if open.last() == Some(&Block::If) && starts_statement(previous) => {
                open.pop();
            }
            "REPEAT" if open.last() == Some(&Block::Repeat) && starts_statement(previous) => {
                open.pop();
            }
            "REPEAT" if next == Some(&Token::Punct(b'(')) => {}
            "REPEAT" => return Err("a REPEAT without END REPEAT".into()),
            "FOR" if open.last() == Some(&Block::For) && starts_statement(previous) => {
                open.pop();
            }
            _ => {}
        }
    }
    if open.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "an END without its opening {:?}",
            open[open.len() - 1]
        ))
    }
}

fn close(open: &mut Vec<Block>, accepts: &[Block], keyword: &str) -> Result<(), String> {
    match open.pop() {
        Some(block) if accepts.contains(&block) => Ok(()),
        _ => Err(format!("a {keyword} whose END does not match")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROCEDURE: CreateKind = CreateKind::Object(ObjectKind::Procedure);
    const FUNCTION: CreateKind = CreateKind::Object(ObjectKind::Function);
    const TRIGGER: CreateKind = CreateKind::Object(ObjectKind::Trigger);
    const EVENT: CreateKind = CreateKind::Object(ObjectKind::Event);
    const VIEW: CreateKind = CreateKind::Object(ObjectKind::View);

    #[test]
    fn what_servers_print_is_accepted() {
        let ok = [
            (
                CreateKind::Table,
                "t",
                "CREATE TABLE `t` (\n  `id` int NOT NULL,\n  `s` varchar(5) DEFAULT 'a;b',\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci\n/*!50100 PARTITION BY HASH (`id`)\nPARTITIONS 5 */",
            ),
            (
                CreateKind::Sequence,
                "s",
                "CREATE SEQUENCE `s` start with 1 minvalue 1 maxvalue 9223372036854775806 increment by 1 cache 1000 nocycle ENGINE=InnoDB",
            ),
            (
                VIEW,
                "v1",
                "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW `v1` AS select `t1`.`f2` AS `f2` from `t1`",
            ),
            (
                TRIGGER,
                "ins_sum",
                "CREATE DEFINER=`me`@`localhost` TRIGGER `ins_sum` BEFORE INSERT ON `account` FOR EACH ROW SET @sum = @sum + NEW.amount",
            ),
            (
                TRIGGER,
                "tr",
                "CREATE DEFINER=`root`@`localhost` trigger db.tr before update on db.t for each row begin if new.a > 1 then set new.b = if(new.a > 2, 1, 0); end if; end",
            ),
            (
                EVENT,
                "e_daily",
                "CREATE DEFINER=`jon`@`ghidora` EVENT `e_daily` ON SCHEDULE EVERY 1 DAY STARTS CURRENT_TIMESTAMP + INTERVAL 6 HOUR ON COMPLETION NOT PRESERVE ENABLE COMMENT 'x;y' DO BEGIN\n  INSERT INTO t VALUES (1);\n  DELETE FROM t WHERE a = 'END';\nEND",
            ),
            (
                PROCEDURE,
                "p",
                "CREATE DEFINER=`root`@`localhost` PROCEDURE `p`(IN x INT)\nBEGIN\n  DECLARE i INT DEFAULT 0;\n  lbl: LOOP\n    SET i = i + 1;\n    IF i > x THEN LEAVE lbl; ELSEIF i = 2 THEN ITERATE lbl; END IF;\n  END LOOP lbl;\n  WHILE i > 0 DO SET i = i - 1; END WHILE;\n  REPEAT SET i = i + 1; UNTIL i > 3 END REPEAT;\n  CASE WHEN i = 1 THEN SELECT 1; ELSE SELECT CASE i WHEN 4 THEN IF(i, 2, 3) ELSE REPEAT('a', 2) END; END CASE;\n  SELECT `end`, 'END IF;' FROM t; -- END;\nEND",
            ),
            (
                PROCEDURE,
                "p",
                "CREATE PROCEDURE `p`() IF 1 THEN SELECT 1; END IF",
            ),
            (PROCEDURE, "p", "CREATE PROCEDURE `p`() SELECT 1"),
            (
                FUNCTION,
                "f",
                "CREATE DEFINER=`root`@`localhost` FUNCTION `f`(a INT) RETURNS int\n    DETERMINISTIC\nRETURN IF(a > 0, a, -a)",
            ),
            (
                FUNCTION,
                "f",
                "CREATE FUNCTION `f`() RETURNS int DETERMINISTIC BEGIN DECLARE x INT; SET x = 1; RETURN x; END",
            ),
        ];
        for (kind, name, sql) in ok {
            assert_eq!(
                check_create(sql, kind, name, "db", QuoteRules::default()),
                Ok(()),
                "{sql}"
            );
        }
    }

    #[test]
    fn planted_statements_are_refused() {
        let bad = [
            (
                CreateKind::Table,
                "t",
                "CREATE TABLE `t` (id INT); DROP DATABASE live",
            ),
            (CreateKind::Table, "t", "CREATE TABLE `other` (id INT)"),
            (CreateKind::Table, "t", "CREATE TABLE `live`.`t` (id INT)"),
            (CreateKind::Table, "t", "DROP TABLE `t`"),
            (CreateKind::Table, "t", "CREATE DATABASE `t`"),
            (
                CreateKind::Table,
                "t",
                "CREATE TABLE `t` (id INT) /*!50100 ; DROP DATABASE live */",
            ),
            (
                VIEW,
                "v",
                "CREATE VIEW `v` AS SELECT 1; GRANT ALL ON *.* TO x",
            ),
            (VIEW, "v", "CREATE TABLE `v` (id INT)"),
            (
                PROCEDURE,
                "p",
                "CREATE PROCEDURE `p`() SELECT 1; DROP DATABASE live",
            ),
            (
                PROCEDURE,
                "p",
                "CREATE PROCEDURE `p`() BEGIN SELECT 1; END; DROP DATABASE live",
            ),
            (
                PROCEDURE,
                "p",
                "CREATE PROCEDURE `p`() SELECT IF(1,2,3); DROP DATABASE live; END IF",
            ),
            (
                PROCEDURE,
                "p",
                "CREATE PROCEDURE `p`() SELECT CASE WHEN 1 THEN IF(1,2,3) END; DROP DATABASE live; END IF",
            ),
            (
                PROCEDURE,
                "p",
                "CREATE PROCEDURE `p`() BEGIN IF 1 THEN SELECT 1; END IF; END; DROP DATABASE x; END IF",
            ),
            (
                PROCEDURE,
                "p",
                "CREATE PROCEDURE `p`() SELECT REPEAT('a', 2); DROP DATABASE x; END REPEAT",
            ),
            (
                PROCEDURE,
                "p",
                "CREATE PROCEDURE `p`() BEGIN SELECT 1; END \\! rm -rf /",
            ),
            (
                PROCEDURE,
                "p",
                "CREATE PROCEDURE `p`() BEGIN SELECT 1; -- \\! rm -rf /\nEND",
            ),
            (
                PROCEDURE,
                "p",
                "CREATE PROCEDURE `p`() BEGIN SELECT 1; END;; DROP DATABASE x",
            ),
            (
                TRIGGER,
                "tr",
                "CREATE TRIGGER `tr` BEFORE INSERT ON `live`.`t` FOR EACH ROW SET NEW.a = 1",
            ),
            (
                TRIGGER,
                "tr",
                "CREATE TRIGGER `live`.`tr` BEFORE INSERT ON `t` FOR EACH ROW SET NEW.a = 1",
            ),
            (
                EVENT,
                "e",
                "CREATE EVENT `e` ON SCHEDULE EVERY 1 DAY DO DELETE FROM t; DROP DATABASE x",
            ),
            (
                EVENT,
                "e",
                "CREATE EVENT `e` ON SCHEDULE AT NOW() + INTERVAL IF(1,1,1) DAY DO SELECT 1; DROP DATABASE x; END IF",
            ),
        ];
        for (kind, name, sql) in bad {
            assert!(
                check_create(sql, kind, name, "db", QuoteRules::default()).is_err(),
                "accepted: {sql}"
            );
        }
    }

    /// A planted object whose stored sql_mode makes the server end a string where a reader
    /// with the default rules would not: what follows the string is code to the server (and
    /// to the mysql client reading a `dump` script, where `\!` runs a shell command).
    #[test]
    fn statements_are_read_in_the_session_they_run_in() {
        let raw = QuoteRules::of_sql_mode(Some("NO_BACKSLASH_ESCAPES"));
        let planted = r"CREATE VIEW `v` AS SELECT 'x\' ; DROP DATABASE live; SELECT '";
        assert_eq!(
            check_create(planted, VIEW, "v", "db", QuoteRules::default()),
            Ok(()),
            "one string to a reader with backslash escapes"
        );
        assert!(check_create(planted, VIEW, "v", "db", raw).is_err());
        let shell = r"CREATE PROCEDURE `p`() SELECT 'x\' \! touch /tmp/pwned '";
        assert!(check_create(shell, PROCEDURE, "p", "db", raw).is_err());
        // Under ANSI_QUOTES a double-quoted token is a name: the qualifier is checked.
        let ansi = QuoteRules::of_sql_mode(Some("ANSI_QUOTES"));
        let elsewhere =
            r#"CREATE TRIGGER "tr" BEFORE INSERT ON "live"."t" FOR EACH ROW SET NEW.a = 1"#;
        assert!(check_create(elsewhere, TRIGGER, "tr", "db", ansi).is_err());
        let here = r#"CREATE TRIGGER "tr" BEFORE INSERT ON "t" FOR EACH ROW SET NEW.a = 1"#;
        assert_eq!(check_create(here, TRIGGER, "tr", "db", ansi), Ok(()));
    }

    #[test]
    fn a_trigger_names_its_table() {
        assert_eq!(
            trigger_table("CREATE DEFINER=`me`@`localhost` TRIGGER `ins_sum` BEFORE INSERT ON `account` FOR EACH ROW SET @sum = @sum + NEW.amount").as_deref(),
            Some("account")
        );
        assert_eq!(
            trigger_table("CREATE TRIGGER IF NOT EXISTS tr AFTER UPDATE ON `live`.`t``x` FOR EACH ROW SET @a = 1").as_deref(),
            Some("t`x")
        );
        assert_eq!(trigger_table("CREATE VIEW `v` AS SELECT 1"), None);
    }
}
