//! Which chunks of a table can hold the rows a `--where` expression asks for, from the first
//! key of each chunk in the table tree, so that a few rows of a large table cost a few chunks.
//!
//! The expression is only read here, never trusted for the answer: the server evaluates it
//! on the candidate rows. This module only has to find a *superset* of the chunks holding
//! matching rows. It understands comparisons of the leading key column with integer literals
//! (`=`, `<=>`, `<`, `<=`, `>`, `>=`, `IN (…)`, `BETWEEN … AND …`) combined with `AND`, `OR`
//! and parentheses. Anything else is "unknown": ignored inside an `AND` (the other side still
//! restricts), everything inside an `OR`. Keys that are not integers (strings sort by
//! collation, which only the server knows) are not pinned at all.

use crate::repo::tree::TableTree;

/// A closed range of key values; `None` is unbounded.
type Range = (Option<i128>, Option<i128>);

/// The chunks to read, and how they were chosen (said to the operator).
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkChoice {
    /// Indexes into the table's chunks, in order.
    pub chunks: Vec<usize>,
    /// Whether the expression narrowed the chunks (false: the whole table is read).
    pub pinned: bool,
    pub explanation: String,
}

impl ChunkChoice {
    /// Every chunk of `table`, for the reason given.
    pub fn every_chunk(table: &TableTree, why: &str) -> ChunkChoice {
        ChunkChoice {
            chunks: (0..table.chunks.len()).collect(),
            pinned: false,
            explanation: format!(
                "reading all {} chunks of the table: {why}",
                table.chunks.len()
            ),
        }
    }
}

/// The chunks of `table` that may hold rows matching `expression`.
pub fn candidate_chunks(table: &TableTree, expression: &str) -> ChunkChoice {
    let everything = |why: String| ChunkChoice::every_chunk(table, &why);
    let Some(key) = table.key_columns.first() else {
        return everything("it has no primary or unique key".into());
    };
    let starts: Option<Vec<i128>> = table
        .chunks
        .iter()
        .map(|c| c.first_key.as_ref()?.first()?.parse::<i128>().ok())
        .collect();
    let Some(starts) = starts else {
        return everything(format!("its key column {key} is not an integer"));
    };
    let ranges = tokenize(expression).and_then(|tokens| {
        let mut parser = Parser {
            tokens: &tokens,
            at: 0,
            key,
        };
        let ranges = parser.or()?;
        (parser.at == tokens.len()).then_some(ranges)
    });
    let Some(Some(ranges)) = ranges else {
        return everything(format!(
            "the expression does not pin the key column {key} to values or ranges"
        ));
    };
    let chunks: Vec<usize> = (0..starts.len())
        .filter(|&i| {
            let start = starts[i];
            let next = starts.get(i + 1).copied();
            ranges.iter().any(|(low, high)| {
                high.is_none_or(|h| start <= h)
                    && match (low, next) {
                        (Some(l), Some(n)) => n >= *l,
                        _ => true,
                    }
            })
        })
        .collect();
    ChunkChoice {
        explanation: format!(
            "reading {} of {} chunks: the expression pins the key column {key}",
            chunks.len(),
            starts.len()
        ),
        chunks,
        pinned: true,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Number(String),
    Str,
    Op(String),
    Punct(char),
}

fn tokenize(text: &str) -> Option<Vec<Token>> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' {
            i += 1;
            loop {
                match chars.get(i) {
                    None => return None,
                    Some('\\') => i += 2,
                    Some(&q) if q == c && chars.get(i + 1) == Some(&c) => i += 2,
                    Some(&q) if q == c => break,
                    Some(_) => i += 1,
                }
            }
            i += 1;
            tokens.push(Token::Str);
        } else if c == '`' {
            let mut name = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return None,
                    Some('`') if chars.get(i + 1) == Some(&'`') => {
                        name.push('`');
                        i += 2;
                    }
                    Some('`') => break,
                    Some(&ch) => {
                        name.push(ch);
                        i += 1;
                    }
                }
            }
            i += 1;
            tokens.push(Token::Quoted(name));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            tokens.push(Token::Number(chars[start..i].iter().collect()));
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else if "<>=!".contains(c) {
            let start = i;
            while i < chars.len() && "<>=!".contains(chars[i]) {
                i += 1;
            }
            tokens.push(Token::Op(chars[start..i].iter().collect()));
        } else {
            tokens.push(Token::Punct(c));
            i += 1;
        }
    }
    Some(tokens)
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    key: &'a str,
}

/// `None`: the expression (or part) says nothing usable about the key.
type Ranges = Option<Vec<Range>>;

impl Parser<'_> {
    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn or(&mut self) -> Option<Ranges> {
        let mut ranges = self.and()?;
        while self.peek_word("OR") || self.tokens.get(self.at) == Some(&Token::Op("||".into())) {
            self.at += 1;
            let right = self.and()?;
            ranges = match (ranges, right) {
                (Some(mut a), Some(b)) => {
                    a.extend(b);
                    Some(a)
                }
                _ => None,
            };
        }
        Some(ranges)
    }

    fn and(&mut self) -> Option<Ranges> {
        let mut ranges = self.atom()?;
        while self.peek_word("AND") {
            self.at += 1;
            let right = self.atom()?;
            ranges = match (ranges, right) {
                (Some(a), Some(b)) => Some(intersect(&a, &b)),
                (Some(a), None) | (None, Some(a)) => Some(a),
                (None, None) => None,
            };
        }
        Some(ranges)
    }

    /// One comparison or a parenthesised expression. Something it cannot read is skipped up to
    /// the next `AND`/`OR`/`)` at its own depth and counts as unknown; `None` only when the
    /// text does not even balance.
    fn atom(&mut self) -> Option<Ranges> {
        if self.tokens.get(self.at) == Some(&Token::Punct('(')) {
            let save = self.at;
            self.at += 1;
            if let Some(inner) = self.or()
                && self.tokens.get(self.at) == Some(&Token::Punct(')'))
                && self.ends_atom(self.at + 1)
            {
                self.at += 1;
                return Some(inner);
            }
            self.at = save;
        }
        let start = self.at;
        if let Some(ranges) = self.comparison()
            && self.ends_atom(self.at)
        {
            return Some(Some(ranges));
        }
        self.at = start;
        self.skip_unknown()?;
        Some(None)
    }

    fn ends_atom(&self, at: usize) -> bool {
        match self.tokens.get(at) {
            None | Some(Token::Punct(')')) => true,
            Some(Token::Word(w)) => w.eq_ignore_ascii_case("AND") || w.eq_ignore_ascii_case("OR"),
            Some(Token::Op(op)) => op == "||",
            _ => false,
        }
    }

    fn skip_unknown(&mut self) -> Option<()> {
        let mut depth = 0usize;
        let mut between = false;
        while let Some(token) = self.tokens.get(self.at) {
            match token {
                Token::Punct('(') => depth += 1,
                Token::Punct(')') if depth == 0 => return Some(()),
                Token::Punct(')') => depth -= 1,
                Token::Word(w) if depth == 0 && w.eq_ignore_ascii_case("BETWEEN") => between = true,
                Token::Word(w) if depth == 0 && w.eq_ignore_ascii_case("AND") && between => {
                    between = false
                }
                Token::Word(w)
                    if depth == 0
                        && (w.eq_ignore_ascii_case("AND") || w.eq_ignore_ascii_case("OR")) =>
                {
                    return Some(());
                }
                Token::Op(op) if depth == 0 && op == "||" => return Some(()),
                _ => {}
            }
            self.at += 1;
        }
        (depth == 0).then_some(())
    }

    fn is_key(&self, token: Option<&Token>) -> bool {
        match token {
            Some(Token::Word(w)) => w.eq_ignore_ascii_case(self.key),
            Some(Token::Quoted(q)) => q.eq_ignore_ascii_case(self.key),
            _ => false,
        }
    }

    fn integer(&mut self) -> Option<i128> {
        let negative = self.tokens.get(self.at) == Some(&Token::Punct('-'));
        if negative {
            self.at += 1;
        }
        let Some(Token::Number(n)) = self.tokens.get(self.at) else {
            return None;
        };
        let value: i128 = n.parse().ok()?;
        self.at += 1;
        Some(if negative { -value } else { value })
    }

    fn comparison(&mut self) -> Option<Vec<Range>> {
        if self.is_key(self.tokens.get(self.at)) {
            self.at += 1;
            if self.peek_word("IN") {
                self.at += 1;
                if self.tokens.get(self.at) != Some(&Token::Punct('(')) {
                    return None;
                }
                self.at += 1;
                let mut points = Vec::new();
                loop {
                    let v = self.integer()?;
                    points.push((Some(v), Some(v)));
                    match self.tokens.get(self.at) {
                        Some(Token::Punct(',')) => self.at += 1,
                        Some(Token::Punct(')')) => {
                            self.at += 1;
                            return Some(points);
                        }
                        _ => return None,
                    }
                }
            }
            if self.peek_word("BETWEEN") {
                self.at += 1;
                let low = self.integer()?;
                if !self.peek_word("AND") {
                    return None;
                }
                self.at += 1;
                let high = self.integer()?;
                return Some(vec![(Some(low), Some(high))]);
            }
            let Some(Token::Op(op)) = self.tokens.get(self.at).cloned() else {
                return None;
            };
            self.at += 1;
            let value = self.integer()?;
            return range_for(&op, value, false);
        }
        // A literal on the left: `5 < id`.
        let value = self.integer()?;
        let Some(Token::Op(op)) = self.tokens.get(self.at).cloned() else {
            return None;
        };
        self.at += 1;
        if !self.is_key(self.tokens.get(self.at)) {
            return None;
        }
        self.at += 1;
        range_for(&op, value, true)
    }
}

/// The key values `key OP value` admits (`value OP key` when `flipped`), as closed ranges.
fn range_for(op: &str, value: i128, flipped: bool) -> Option<Vec<Range>> {
    let op = if flipped {
        match op {
            "<" => ">",
            "<=" => ">=",
            ">" => "<",
            ">=" => "<=",
            other => other,
        }
    } else {
        op
    };
    Some(vec![match op {
        "=" | "<=>" => (Some(value), Some(value)),
        "<" => (None, Some(value - 1)),
        "<=" => (None, Some(value)),
        ">" => (Some(value + 1), None),
        ">=" => (Some(value), None),
        _ => return None,
    }])
}

fn intersect(a: &[Range], b: &[Range]) -> Vec<Range> {
    let mut out = Vec::new();
    for (al, ah) in a {
        for (bl, bh) in b {
            let low = match (al, bl) {
                (Some(x), Some(y)) => Some(*x.max(y)),
                (x, y) => x.or(*y),
            };
            let high = match (ah, bh) {
                (Some(x), Some(y)) => Some(*x.min(y)),
                (x, y) => x.or(*y),
            };
            if let (Some(l), Some(h)) = (low, high)
                && l > h
            {
                continue;
            }
            out.push((low, high));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::ids::BlobId;
    use crate::repo::tree::{ChunkRef, TableKind};

    /// A table of ids 1..=1000 in ten chunks of 100 keys.
    fn table(key: &str, starts: &[&str]) -> TableTree {
        TableTree {
            version: 1,
            name: "t".into(),
            kind: TableKind::Base,
            create_sql: String::new(),
            columns: vec![key.into(), "v".into()],
            key_columns: vec![key.into()],
            sequence_next: None,
            chunks: starts
                .iter()
                .map(|s| ChunkRef {
                    id: BlobId([0; 32]),
                    rows: 100,
                    first_key: Some(vec![s.to_string()]),
                })
                .collect(),
        }
    }

    fn chunks(expression: &str) -> Option<Vec<usize>> {
        let starts: Vec<String> = (0..10).map(|i| (1 + i * 100).to_string()).collect();
        let starts: Vec<&str> = starts.iter().map(String::as_str).collect();
        let choice = candidate_chunks(&table("id", &starts), expression);
        choice.pinned.then_some(choice.chunks)
    }

    #[test]
    fn comparisons_of_the_key_pick_the_chunks_that_can_hold_them() {
        assert_eq!(chunks("id = 150"), Some(vec![1]));
        assert_eq!(
            chunks("`ID` = 101"),
            Some(vec![0, 1]),
            "a boundary takes both neighbours"
        );
        assert_eq!(chunks("id IN (5, 950)"), Some(vec![0, 9]));
        assert_eq!(chunks("id BETWEEN 250 AND 350"), Some(vec![2, 3]));
        assert_eq!(chunks("id > 850"), Some(vec![8, 9]));
        assert_eq!(chunks("850 < id"), Some(vec![8, 9]));
        assert_eq!(chunks("id <= 50"), Some(vec![0]));
        assert_eq!(chunks("id = 5 OR id = 505"), Some(vec![0, 5]));
        assert_eq!(
            chunks("(id >= 300 AND id < 350) AND note LIKE 'x%'"),
            Some(vec![2, 3])
        );
        assert_eq!(
            chunks("name = 'a' AND (id = 5 OR id = 999)"),
            Some(vec![0, 9])
        );
        assert_eq!(chunks("id = -3"), Some(vec![]), "below the smallest key");
        assert_eq!(chunks("id = 5 AND id = 999"), Some(vec![]));
    }

    #[test]
    fn anything_it_cannot_bound_reads_the_whole_table() {
        for expression in [
            "name = 'x'",
            "id = 5 OR name = 'x'",
            "NOT id = 5",
            "id <> 5",
            "id + 1 = 6",
            "id = 5.5",
            "id IN (SELECT id FROM other)",
            "id = 5 OR (name = 'a'",
            "other_id = 5",
        ] {
            assert_eq!(chunks(expression), None, "{expression}");
        }
        let strings = candidate_chunks(&table("code", &["'a'", "'m'"]), "code = 'b'");
        assert!(!strings.pinned);
        assert!(
            strings.explanation.contains("not an integer"),
            "{}",
            strings.explanation
        );
    }
}
