//! SQL text helpers shared by the dump and restore sides: quoting, literals, and the rewrites a
//! restore applies to stored `CREATE` statements (schema rename, definer removal).

/// How the server reads quotes and backslashes under a statement's `sql_mode`: under
/// `ANSI_QUOTES` `"x"` is a name, not a string; under `NO_BACKSLASH_ESCAPES` a backslash is an
/// ordinary character, so `'a\'` is a whole string. Whatever reads stored SQL to check or rewrite
/// it must read it as the server will, or a string the reader thinks closed is code to the
/// server (and to the mysql client, where `\!` runs a shell command).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuoteRules {
    pub ansi_quotes: bool,
    pub no_backslash_escapes: bool,
}

impl QuoteRules {
    /// The rules of a `sql_mode` as `SHOW CREATE …` prints it (comma-separated words; `None`:
    /// the default). The combination modes that include `ANSI_QUOTES` count too.
    pub fn of_sql_mode(mode: Option<&str>) -> Self {
        let words: Vec<String> = mode
            .unwrap_or_default()
            .split(',')
            .map(|w| w.trim().to_ascii_uppercase())
            .collect();
        let has = |names: &[&str]| words.iter().any(|w| names.contains(&w.as_str()));
        QuoteRules {
            ansi_quotes: has(&[
                "ANSI_QUOTES",
                "ANSI",
                "DB2",
                "MAXDB",
                "MSSQL",
                "ORACLE",
                "POSTGRESQL",
            ]),
            no_backslash_escapes: has(&["NO_BACKSLASH_ESCAPES"]),
        }
    }

    /// Whether `quote` opens a string literal (else a quoted name).
    pub fn is_string_quote(self, quote: u8) -> bool {
        quote == b'\'' || (quote == b'"' && !self.ansi_quotes)
    }

    /// Whether a backslash escapes the next byte inside a token opened by `quote`.
    pub fn backslash_escapes(self, quote: u8) -> bool {
        self.is_string_quote(quote) && !self.no_backslash_escapes
    }
}

/// Check that a session value stored with an object (`sql_mode`, `character_set_client`,
/// `collation_connection`, `time_zone`) is a plain name from the server's vocabulary before it
/// is written into `SET SESSION x = '…'`: stored values come from the repository, where a quote
/// or backslash in one would end the literal and run what follows.
pub fn check_session_value(field: &str, value: &str) -> Result<(), String> {
    let allowed = |b: u8| match field {
        "sql_mode" => b.is_ascii_alphanumeric() || b == b'_' || b == b',',
        "time_zone" => b.is_ascii_alphanumeric() || matches!(b, b'_' | b'/' | b'+' | b'-' | b':'),
        _ => b.is_ascii_alphanumeric() || b == b'_',
    };
    if value.len() > 512 || !value.bytes().all(allowed) || (field != "sql_mode" && value.is_empty())
    {
        let shown: String = value.chars().take(80).collect();
        return Err(format!(
            "its {field} {shown:?} is not a {field} the server could have printed"
        ));
    }
    Ok(())
}

/// Quote an identifier with backticks, doubling embedded backticks. Any name MySQL allows
/// round-trips, including ones with spaces, quotes, dots or non-ASCII characters.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('`');
    for c in name.chars() {
        if c == '`' {
            out.push('`');
        }
        out.push(c);
    }
    out.push('`');
    out
}

/// `\`db\`.\`name\``.
pub fn qualified(db: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(db), quote_ident(name))
}

/// A comma-separated, quoted column list.
pub fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(",")
}

/// Append `bytes` as a single-quoted string literal with MySQL backslash escapes. Newlines are
/// escaped too, so an encoded row never spans lines.
pub fn push_quoted(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 2);
    out.push(b'\'');
    let mut rest = bytes;
    // Copy runs of ordinary bytes whole: most values contain nothing to escape.
    while let Some(at) = rest.iter().position(|&b| needs_escape(b)) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(match rest[at] {
            0 => b"\\0",
            b'\'' => b"\\'",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => b"\\Z",
        });
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'\'');
}

#[inline]
fn needs_escape(b: u8) -> bool {
    matches!(b, 0 | b'\'' | b'\\' | b'\n' | b'\r' | 0x1a)
}

/// Append `bytes` as a hex literal (`0x…`), or `''` when empty (`0x` alone is not valid SQL).
pub fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.is_empty() {
        out.extend_from_slice(b"''");
        return;
    }
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(2 + bytes.len() * 2);
    out.extend_from_slice(b"0x");
    for &b in bytes {
        out.push(DIGITS[(b >> 4) as usize]);
        out.push(DIGITS[(b & 15) as usize]);
    }
}

/// A string literal for text (sessions variables, names in `SHOW` statements).
pub fn quote_str(s: &str) -> String {
    let mut out = Vec::new();
    push_quoted(&mut out, s.as_bytes());
    String::from_utf8_lossy(&out).into_owned()
}

/// The column names a `SHOW CREATE TABLE` statement defines, in order. The server prints each
/// column definition on its own line, starting with two spaces and the backtick-quoted name
/// (newlines inside comments and defaults are escaped); keys and constraints start with a
/// keyword instead.
pub fn create_table_columns(create_sql: &str) -> Vec<String> {
    create_sql
        .lines()
        .filter_map(|line| leading_quoted_name(line.strip_prefix("  ")?))
        .collect()
}

/// A `SHOW CREATE TABLE` statement without its `FOREIGN KEY` constraints, and those
/// constraint definitions (each `CONSTRAINT \`name\` FOREIGN KEY …`, ready for `ALTER TABLE …
/// ADD`). The server prints every definition on its own line starting with two spaces, so the
/// constraints are whole lines; the comma before a removed last definition goes with it.
pub fn split_foreign_keys(create_sql: &str) -> (String, Vec<String>) {
    let lines: Vec<&str> = create_sql.lines().collect();
    // The definitions end at the first line that starts with `)`; table options follow.
    let end = lines
        .iter()
        .skip(1)
        .position(|l| l.starts_with(')'))
        .map_or(lines.len(), |p| p + 1);
    let is_foreign_key = |line: &str| {
        line.starts_with("  CONSTRAINT ") && line.contains(" FOREIGN KEY (")
            || line.starts_with("  FOREIGN KEY (")
    };
    let mut kept: Vec<String> = Vec::with_capacity(lines.len());
    let mut foreign_keys = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 && i < end && is_foreign_key(line) {
            foreign_keys.push(line.trim().trim_end_matches(',').to_string());
        } else {
            kept.push((*line).to_string());
        }
    }
    if !foreign_keys.is_empty() {
        // The last definition kept before the closing line must not end with a comma.
        let close = end - foreign_keys.len();
        if close >= 2
            && let Some(last) = kept.get_mut(close - 1)
            && let Some(stripped) = last.strip_suffix(',')
        {
            *last = stripped.to_string();
        }
    }
    (kept.join("\n"), foreign_keys)
}

/// A `CREATE TABLE` statement creating the table under `new_name` instead: the first name
/// after `CREATE TABLE` (as `SHOW CREATE TABLE` prints it, backtick-quoted) is replaced.
pub fn rename_created_table(create_sql: &str, new_name: &str) -> Option<String> {
    let start = create_sql.find('`')?;
    let head = &create_sql[..start];
    if !head.starts_with("CREATE ") || !head.bytes().all(|b| b.is_ascii_alphabetic() || b == b' ') {
        return None;
    }
    let bytes = create_sql.as_bytes();
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == b'`' {
            if bytes.get(i + 1) == Some(&b'`') {
                i += 2;
                continue;
            }
            return Some(format!(
                "{}{}{}",
                &create_sql[..start],
                quote_ident(new_name),
                &create_sql[i + 1..]
            ));
        }
        i += 1;
    }
    None
}

/// The backtick-quoted identifier `text` starts with, unquoted (doubled backticks undone).
pub fn leading_quoted_name(text: &str) -> Option<String> {
    let rest = text.strip_prefix('`')?;
    let mut name = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '`' {
            if chars.peek() == Some(&'`') {
                chars.next();
                name.push('`');
                continue;
            }
            return Some(name);
        }
        name.push(c);
    }
    None
}

/// Replace references to schema `from` by `to` in a stored `CREATE` statement or program body.
///
/// A small lexer walks the text, skipping string literals and comments, and rewrites every
/// identifier equal to `from` (quoted or not; double-quoted too when `ansi_quotes`) that is used
/// as a qualifier: followed by `.` and not itself preceded by `.`, reading quotes as `rules`
/// say. An alias spelled like the schema and used as a qualifier would be rewritten too; that
/// limit is documented for `--into`.
pub fn rename_schema(sql: &str, from: &str, to: &str, rules: QuoteRules) -> String {
    if from == to {
        return sql.to_string();
    }
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 16);
    let mut i = 0;
    let mut copied = 0;
    // Whether the last significant token was a `.`.
    let mut after_dot = false;
    while i < bytes.len() {
        let c = bytes[i];
        let (token_end, ident): (usize, Option<String>) = match c {
            b'\'' | b'"' if rules.is_string_quote(c) => {
                (skip_quoted(bytes, i, c, rules.backslash_escapes(c)), None)
            }
            b'`' | b'"' => {
                let end = skip_quoted(bytes, i, c, false);
                // An unclosed name runs to the end (a mutation: nothing to rename in it).
                let closed = end > i + 1 && bytes.get(end - 1) == Some(&c);
                let doubled = if c == b'`' { "``" } else { "\"\"" };
                let inner = closed
                    .then(|| sql.get(i + 1..end - 1))
                    .flatten()
                    .map(|inner| inner.replace(doubled, &doubled[..1]));
                (end, inner)
            }
            b'#' => (skip_line(bytes, i), None),
            b'-' if bytes.get(i + 1) == Some(&b'-')
                && bytes.get(i + 2).is_none_or(|b| b.is_ascii_whitespace()) =>
            {
                (skip_line(bytes, i), None)
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') && bytes.get(i + 2) != Some(&b'!') => {
                (skip_comment(bytes, i), None)
            }
            _ if is_ident_byte(c) => {
                let mut end = i;
                while end < bytes.len() && is_ident_byte(bytes[end]) {
                    end += 1;
                }
                (end, sql.get(i..end).map(str::to_string))
            }
            _ => {
                if !c.is_ascii_whitespace() {
                    after_dot = c == b'.';
                }
                i += 1;
                continue;
            }
        };
        if let Some(name) = ident {
            let next = bytes[token_end..].iter().find(|b| !b.is_ascii_whitespace());
            if name == from && !after_dot && next == Some(&b'.') {
                out.push_str(&sql[copied..i]);
                out.push_str(&quote_ident(to));
                copied = token_end;
            }
        }
        after_dot = false;
        i = token_end.max(i + 1);
    }
    out.push_str(&sql[copied..]);
    out
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// End (exclusive) of the quoted token opening at `start`: a doubled quote stays inside, and so
/// does a backslash-escaped character in string literals (not in identifiers). An unclosed token
/// runs to the end.
fn skip_quoted(bytes: &[u8], start: usize, quote: u8, backslash_escapes: bool) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        if backslash_escapes && bytes[i] == b'\\' {
            i += 2;
        } else if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

fn skip_line(bytes: &[u8], start: usize) -> usize {
    bytes[start..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(bytes.len(), |p| start + p + 1)
}

fn skip_comment(bytes: &[u8], start: usize) -> usize {
    bytes[start + 2..]
        .windows(2)
        .position(|w| w == b"*/")
        .map_or(bytes.len(), |p| start + 2 + p + 2)
}

/// Remove the `DEFINER=user@host` clause from the head of a `CREATE` statement, so the object is
/// created for the restoring account. A statement without one is returned unchanged; one whose
/// head names a definer this cannot take out is an error (never run with the definer kept).
pub fn strip_definer(sql: &str, rules: QuoteRules) -> Result<String, String> {
    let bytes = sql.as_bytes();
    // The head: up to the object's kind, where the name and body start.
    let kinds = [
        "VIEW",
        "PROCEDURE",
        "FUNCTION",
        "TRIGGER",
        "EVENT",
        "TABLE",
        "SEQUENCE",
    ];
    let mut i = 0;
    let mut definer: Option<(usize, usize)> = None;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'/' && bytes.get(i + 1) == Some(&b'*') {
            // `/*!50013 DEFINER=… */` as mysqldump writes it: the clause is inside.
            i += 2;
            while i < bytes.len()
                && (bytes[i] == b'!' || bytes[i] == b'M' || bytes[i].is_ascii_digit())
            {
                i += 1;
            }
        } else if c == b'*' && bytes.get(i + 1) == Some(&b'/') {
            i += 2;
        } else if c == b'=' {
            // `ALGORITHM=UNDEFINED`.
            i += 1;
        } else if is_ident_byte(c) {
            let start = i;
            while i < bytes.len() && is_ident_byte(bytes[i]) {
                i += 1;
            }
            let word = sql[start..i].to_ascii_uppercase();
            if kinds.contains(&word.as_str()) {
                break;
            }
            if word == "DEFINER" {
                let mut at = i;
                while at < bytes.len() && bytes[at].is_ascii_whitespace() {
                    at += 1;
                }
                if bytes.get(at) != Some(&b'=') {
                    // `SQL SECURITY DEFINER`: not the clause.
                    continue;
                }
                at += 1;
                while at < bytes.len() && bytes[at].is_ascii_whitespace() {
                    at += 1;
                }
                let user_end = definer_part_end(bytes, at, rules)
                    .ok_or("its DEFINER clause cannot be read")?;
                let mut end = user_end;
                if bytes.get(end) == Some(&b'@') {
                    end = definer_part_end(bytes, end + 1, rules)
                        .ok_or("its DEFINER clause cannot be read")?;
                }
                definer = Some((start, end));
                break;
            }
        } else {
            // Anything else (a quote, a parenthesis) before the kind: not a head coffer reads.
            break;
        }
    }
    Ok(match definer {
        Some((start, end)) => {
            let tail = sql[end..].trim_start();
            format!("{}{tail}", &sql[..start])
        }
        None if sql.to_ascii_uppercase().contains("DEFINER") && head_names_definer(sql) => {
            return Err("its DEFINER clause cannot be read".into());
        }
        None => sql.to_string(),
    })
}

/// Whether `DEFINER=` appears before the statement's first parenthesis or quote: a clause
/// [`strip_definer`] did not find where it looked.
fn head_names_definer(sql: &str) -> bool {
    let head_end = sql.find(['(', '\'', '"', '`']).unwrap_or(sql.len());
    let head: String = sql[..head_end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    head.to_ascii_uppercase().contains("DEFINER=")
}

/// End of one part of `user@host` at `start`: a quoted name or string (as `rules` read quotes),
/// or a bare word such as `CURRENT_USER` or `CURRENT_USER()`.
fn definer_part_end(bytes: &[u8], start: usize, rules: QuoteRules) -> Option<usize> {
    let first = *bytes.get(start)?;
    if matches!(first, b'`' | b'\'' | b'"') {
        let end = skip_quoted(bytes, start, first, rules.backslash_escapes(first));
        (end >= start + 2 && bytes.get(end - 1) == Some(&first)).then_some(end)
    } else {
        let mut end = start;
        while end < bytes.len()
            && (is_ident_byte(bytes[end]) || bytes[end] == b'.' || bytes[end] == b'%')
        {
            end += 1;
        }
        if bytes[end..].starts_with(b"()") {
            end += 2;
        }
        (end > start).then_some(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_with_backticks() {
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(qualified("d b", "t.1"), "`d b`.`t.1`");
    }

    #[test]
    fn literals() {
        let mut out = Vec::new();
        push_quoted(&mut out, b"it's\n\\\0");
        assert_eq!(out, b"'it\\'s\\n\\\\\\0'");
        let mut out = Vec::new();
        push_hex(&mut out, &[0xff, 0x01]);
        assert_eq!(out, b"0xff01");
    }

    #[test]
    fn definer_is_stripped_from_the_head_only() {
        let plain = QuoteRules::default();
        let strip = |sql: &str| strip_definer(sql, plain).unwrap();
        assert_eq!(
            strip(
                "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW `v` AS select 1"
            ),
            "CREATE ALGORITHM=UNDEFINED SQL SECURITY DEFINER VIEW `v` AS select 1"
        );
        assert_eq!(
            strip("CREATE DEFINER=`a``b`@`%` PROCEDURE `p`() BEGIN END"),
            "CREATE PROCEDURE `p`() BEGIN END"
        );
        assert_eq!(
            strip("CREATE PROCEDURE `p`() SELECT 'DEFINER=x'"),
            "CREATE PROCEDURE `p`() SELECT 'DEFINER=x'"
        );
        assert_eq!(
            strip(
                "CREATE DEFINER = CURRENT_USER() TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET @a = 1"
            ),
            "CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET @a = 1"
        );
        // Under ANSI_QUOTES the server prints the definer in double quotes.
        let ansi = QuoteRules::of_sql_mode(Some("PIPES_AS_CONCAT,ANSI_QUOTES,IGNORE_SPACE"));
        assert_eq!(
            strip_definer(
                r#"CREATE DEFINER="root"@"%" EVENT e ON SCHEDULE EVERY 1 DAY DO SELECT 1"#,
                ansi
            )
            .unwrap(),
            "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO SELECT 1"
        );
        // A clause it cannot take out is refused, never kept.
        assert!(strip_definer("CREATE DEFINER=(root) PROCEDURE p() SELECT 1", plain).is_err());
    }

    #[test]
    fn session_values_are_plain_names() {
        for (field, ok) in [
            ("sql_mode", "STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION"),
            ("sql_mode", ""),
            ("collation_connection", "utf8mb4_0900_ai_ci"),
            ("character_set_client", "utf8mb4"),
            ("time_zone", "SYSTEM"),
            ("time_zone", "+01:00"),
            ("time_zone", "Europe/Berlin"),
        ] {
            assert_eq!(check_session_value(field, ok), Ok(()), "{field} {ok}");
        }
        for (field, planted) in [
            ("sql_mode", "NO_BACKSLASH_ESCAPES'; DROP DATABASE live; -- "),
            ("collation_connection", "utf8mb4_bin\\'"),
            ("time_zone", "+00:00'\n\\! id"),
            ("character_set_client", ""),
        ] {
            assert!(
                check_session_value(field, planted).is_err(),
                "{field} {planted:?}"
            );
        }
    }

    #[test]
    fn columns_of_a_create_table() {
        let sql = "CREATE TABLE `t` (\n  `id` int NOT NULL,\n  `a``b` varchar(10) DEFAULT 'x\\n  `no`',\n  \
                   `é` json,\n  `created` timestamp NULL DEFAULT CURRENT_TIMESTAMP,\n  PRIMARY KEY (`id`),\n  \
                   KEY `k` (`a``b`)\n) ENGINE=InnoDB";
        assert_eq!(create_table_columns(sql), ["id", "a`b", "é", "created"]);
        // MySQL 8.0.30+ with a generated invisible primary key, as the manual prints it
        // (create-table-gipks.html).
        let gipk = "CREATE TABLE `auto_1` (\n  `my_row_id` bigint unsigned NOT NULL AUTO_INCREMENT /*!80023 INVISIBLE */,\n  \
                    `c1` varchar(50) DEFAULT NULL,\n  `c2` int DEFAULT NULL,\n  PRIMARY KEY (`my_row_id`)\n) \
                    ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci";
        assert_eq!(create_table_columns(gipk), ["my_row_id", "c1", "c2"]);
        // Partitioning in a version comment after the table options.
        let partitioned = "CREATE TABLE `t` (\n  `id` int NOT NULL,\n  `date` date NOT NULL\n) ENGINE=InnoDB \
                           DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci\n/*!50100 PARTITION BY RANGE (year(`date`))\n\
                           (PARTITION p0 VALUES LESS THAN (2010) ENGINE = InnoDB,\n PARTITION p1 VALUES LESS THAN MAXVALUE ENGINE = InnoDB) */";
        assert_eq!(create_table_columns(partitioned), ["id", "date"]);
    }

    #[test]
    fn schema_rename() {
        assert_eq!(
            rename_schema(
                "select `a`.`t`.`x` from `a`.`t` join `ab`.`t`",
                "a",
                "b",
                QuoteRules::default()
            ),
            "select `b`.`t`.`x` from `b`.`t` join `ab`.`t`"
        );
        assert_eq!(
            rename_schema(
                "SELECT a.t.x, 'a.t', x.a.y FROM a . t -- a.t\n/* a.t */ WHERE \"a\".t",
                "a",
                "new`db",
                QuoteRules::default()
            ),
            "SELECT `new``db`.t.x, 'a.t', x.a.y FROM `new``db` . t -- a.t\n/* a.t */ WHERE \"a\".t"
        );
        assert_eq!(
            rename_schema(
                "DELETE FROM \"a\".\"t\"",
                "a",
                "b",
                QuoteRules::of_sql_mode(Some("ANSI_QUOTES"))
            ),
            "DELETE FROM `b`.\"t\""
        );
        assert_eq!(
            rename_schema(
                "SELECT 'it''s a.b', `a``x`.t",
                "a`x",
                "b",
                QuoteRules::default()
            ),
            "SELECT 'it''s a.b', `b`.t"
        );
        // Under NO_BACKSLASH_ESCAPES the string ends at the second quote: `a.t` after it is
        // code, and is renamed.
        let raw = QuoteRules::of_sql_mode(Some("NO_BACKSLASH_ESCAPES"));
        assert_eq!(
            rename_schema(r"SELECT 'x\', a.t", "a", "b", raw),
            r"SELECT 'x\', `b`.t"
        );
    }

    #[test]
    fn foreign_keys_come_out_of_a_create_table_as_whole_definitions() {
        let sql = "CREATE TABLE `c` (\n  `id` int NOT NULL,\n  `pid` int DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  KEY `fk_c` (`pid`),\n  CONSTRAINT `fk_c` FOREIGN KEY (`pid`) REFERENCES `p` (`id`) ON DELETE CASCADE,\n  CONSTRAINT `c_chk_1` CHECK ((`pid` > 0)),\n  CONSTRAINT `fk 2` FOREIGN KEY (`pid`) REFERENCES `q` (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
        let (table, keys) = split_foreign_keys(sql);
        assert_eq!(
            table,
            "CREATE TABLE `c` (\n  `id` int NOT NULL,\n  `pid` int DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  KEY `fk_c` (`pid`),\n  CONSTRAINT `c_chk_1` CHECK ((`pid` > 0))\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        );
        assert_eq!(
            keys,
            [
                "CONSTRAINT `fk_c` FOREIGN KEY (`pid`) REFERENCES `p` (`id`) ON DELETE CASCADE",
                "CONSTRAINT `fk 2` FOREIGN KEY (`pid`) REFERENCES `q` (`id`)"
            ]
        );
        let plain = "CREATE TABLE `t` (\n  `id` int\n) ENGINE=InnoDB";
        assert_eq!(split_foreign_keys(plain), (plain.to_string(), Vec::new()));
    }

    #[test]
    fn a_created_table_is_renamed_and_nothing_else() {
        assert_eq!(
            rename_created_table("CREATE TABLE `a``b` (\n  `a``b` int\n)", "new").as_deref(),
            Some("CREATE TABLE `new` (\n  `a``b` int\n)")
        );
        assert_eq!(rename_created_table("SELECT `x`", "new"), None);
    }
}
