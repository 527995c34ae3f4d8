//! Reading rows back from chunks: a strict parser of the row text that
//! [`crate::source::mysql::rowtext`] writes (`(v1,v2,…)`, each value one SQL literal).
//!
//! Every row is parsed before it is sent to a server or written into a script. A chunk is
//! authenticated, but whoever holds the repository key can write one; a row that is not exactly
//! a tuple of literals (say `(1);DROP DATABASE x;(1)`) is refused as damaged instead of being run.
//! The parsed value spans also let a restore send one oversized value in pieces.

use std::ops::Range;

/// One value of a row, as written in the chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Literal<'a> {
    Null,
    /// Digits, sign, decimal point and exponent, as the server printed them.
    Number(&'a [u8]),
    /// A backslash-escaped string literal (the bytes between the quotes, still escaped);
    /// `utf8mb4` when written with the `_utf8mb4` introducer (JSON, UUID, INET …).
    Quoted {
        escaped: &'a [u8],
        utf8mb4: bool,
    },
    /// A hex literal (the digits after `0x`).
    Hex(&'a [u8]),
}

/// The byte ranges of each value of one row line (without its trailing newline).
pub fn value_spans(row: &[u8]) -> Result<Vec<Range<usize>>, String> {
    if row.first() != Some(&b'(') || row.last() != Some(&b')') {
        return Err("a row must be a parenthesised list of values".into());
    }
    let end = row.len() - 1;
    let mut spans = Vec::new();
    let mut at = 1;
    loop {
        let value_end = literal_end(row, at)?;
        spans.push(at..value_end);
        match row.get(value_end) {
            Some(b',') if value_end < end => at = value_end + 1,
            Some(b')') if value_end == end => return Ok(spans),
            _ => {
                return Err(format!(
                    "unexpected byte at offset {value_end} after a value"
                ));
            }
        }
    }
}

/// End (exclusive) of the literal starting at `at`.
fn literal_end(row: &[u8], at: usize) -> Result<usize, String> {
    let rest = &row[at..];
    if rest.starts_with(b"NULL") {
        return Ok(at + 4);
    }
    if rest.starts_with(b"_utf8mb4'") {
        return quoted_end(row, at + "_utf8mb4".len());
    }
    match rest.first() {
        Some(b'\'') => quoted_end(row, at),
        Some(b'0') if rest.get(1) == Some(&b'x') => {
            let digits = rest[2..]
                .iter()
                .take_while(|b| b.is_ascii_hexdigit())
                .count();
            if digits == 0 || digits % 2 != 0 {
                return Err(format!("malformed hex literal at offset {at}"));
            }
            Ok(at + 2 + digits)
        }
        Some(b) if b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.') => {
            let len = rest
                .iter()
                .take_while(|b| b.is_ascii_digit() || b"+-.eE".contains(b))
                .count();
            Ok(at + len)
        }
        _ => Err(format!("no value literal at offset {at}")),
    }
}

/// End (exclusive) of the quoted string whose opening quote is at `open`. Inside, a quote is
/// always escaped with a backslash (the encoder never doubles quotes).
fn quoted_end(row: &[u8], open: usize) -> Result<usize, String> {
    let mut i = open + 1;
    while i < row.len() {
        match row[i] {
            b'\\' => {
                if !matches!(
                    row.get(i + 1),
                    Some(b'0' | b'\'' | b'\\' | b'n' | b'r' | b'Z')
                ) {
                    return Err(format!("unknown escape in a string at offset {i}"));
                }
                i += 2;
            }
            b'\'' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(format!("unterminated string starting at offset {open}"))
}

/// What the literal in `text` (one span from [`value_spans`]) is.
pub fn literal(text: &[u8]) -> Literal<'_> {
    if text == b"NULL" {
        return Literal::Null;
    }
    if let Some(quoted) = text.strip_prefix(b"_utf8mb4") {
        return Literal::Quoted {
            escaped: &quoted[1..quoted.len() - 1],
            utf8mb4: true,
        };
    }
    if text.first() == Some(&b'\'') {
        return Literal::Quoted {
            escaped: &text[1..text.len() - 1],
            utf8mb4: false,
        };
    }
    if let Some(digits) = text.strip_prefix(b"0x") {
        return Literal::Hex(digits);
    }
    Literal::Number(text)
}

/// The bytes a quoted or hex literal stands for (numbers and NULL: their text).
pub fn decode(literal: Literal<'_>) -> Vec<u8> {
    match literal {
        Literal::Null => b"NULL".to_vec(),
        Literal::Number(text) => text.to_vec(),
        Literal::Hex(digits) => digits
            .chunks_exact(2)
            .map(|pair| (hex_value(pair[0]) << 4) | hex_value(pair[1]))
            .collect(),
        Literal::Quoted { escaped, .. } => {
            let mut out = Vec::with_capacity(escaped.len());
            let mut bytes = escaped.iter();
            while let Some(&b) = bytes.next() {
                if b != b'\\' {
                    out.push(b);
                    continue;
                }
                out.push(match bytes.next() {
                    Some(b'0') => 0,
                    Some(b'n') => b'\n',
                    Some(b'r') => b'\r',
                    Some(b'Z') => 0x1a,
                    Some(&other) => other,
                    None => b'\\',
                });
            }
            out
        }
    }
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::mysql::rowtext::test_packets::{Cell, row};
    use crate::source::mysql::rowtext::{ColumnKind, RowDecoder};

    fn spans(row: &str) -> Result<Vec<String>, String> {
        let row = row.as_bytes();
        value_spans(row).map(|s| {
            s.into_iter()
                .map(|r| String::from_utf8_lossy(&row[r]).into_owned())
                .collect()
        })
    }

    #[test]
    fn rows_the_encoder_writes_parse_back_value_by_value() {
        let kinds = [
            ColumnKind::Integer,
            ColumnKind::Text,
            ColumnKind::Bytes,
            ColumnKind::TextParsed,
            ColumnKind::Double,
            ColumnKind::DateTime,
            ColumnKind::Text,
        ];
        let values = [
            Cell::Int(-7),
            Cell::Bytes(b"it's a \\ test,\n)("),
            Cell::Bytes(&[0xff, 0x00, b'\'']),
            Cell::Bytes(br#"{"a": "b'c"}"#),
            Cell::Double(-1.5e-7),
            Cell::Date(2024, 2, 29, 23, 59, 1, 5),
            Cell::Null,
        ];
        let (columns, packet) = row(&values);
        let decoder = RowDecoder::new(&columns, &kinds).expect("decoder");
        let mut text = Vec::new();
        decoder
            .push_row(&packet, &mut text, &mut Vec::new())
            .expect("row");
        let line = &text[..text.len() - 1];
        let spans = value_spans(line).expect("parses");
        assert_eq!(spans.len(), values.len());
        let decoded: Vec<Vec<u8>> = spans
            .iter()
            .map(|r| decode(literal(&line[r.clone()])))
            .collect();
        assert_eq!(decoded[0], b"-7");
        assert_eq!(decoded[1], b"it's a \\ test,\n)(");
        assert_eq!(decoded[2], vec![0xff, 0x00, b'\'']);
        assert_eq!(decoded[3], br#"{"a": "b'c"}"#);
        assert!(matches!(
            literal(&line[spans[3].clone()]),
            Literal::Quoted { utf8mb4: true, .. }
        ));
        assert_eq!(literal(&line[spans[6].clone()]), Literal::Null);
    }

    #[test]
    fn anything_but_a_tuple_of_literals_is_refused() {
        for bad in [
            "(1);DROP DATABASE x;(1)",
            "(1),(2)",
            "(1, 2)",
            "(1,SLEEP(10))",
            "('unterminated)",
            "('a\\q')",
            "(0x1)",
            "(0x)",
            "()",
            "(1",
            "(@x)",
            "('a' 'b')",
        ] {
            assert!(spans(bad).is_err(), "{bad} was accepted");
        }
        assert_eq!(
            spans("(NULL,'',0x00ff,_utf8mb4'x',-1.5e-7)").expect("valid"),
            ["NULL", "''", "0x00ff", "_utf8mb4'x'", "-1.5e-7"]
        );
    }
}
