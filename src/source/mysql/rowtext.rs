//! Rows as SQL text: the encoding of table data inside chunks.
//!
//! A row is `(v1,v2,…)\n`, each value a SQL literal that a server in a `SET NAMES binary`
//! session stores back bit for bit: integers and DECIMAL as digits, FLOAT/DOUBLE in the shortest
//! exponent form that parses back to the same binary value, temporal values quoted, BIT and
//! non-UTF-8 bytes as hex, other bytes as escaped strings. Values are read with the binary
//! protocol, so floats never pass through a lossy text form on the way out.

use mysql_async::Value;

use crate::sql::{push_hex, push_quoted};

/// How a column's values are written, from `information_schema.COLUMNS.DATA_TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Integer,
    Float,
    Double,
    Decimal,
    Date,
    DateTime,
    Time,
    Bit,
    /// Binary strings, BLOBs, geometry: bytes kept as they are.
    Bytes,
    /// Character data (CHAR, TEXT, ENUM, SET, UUID, INET6 …).
    Text,
    /// Types that parse their value from text and read a binary string differently: MySQL's
    /// JSON refuses binary input, MariaDB's UUID/INET4/INET6 take a binary string as the raw
    /// 16 or 4 bytes. Written with a `_utf8mb4` introducer.
    TextParsed,
}

impl ColumnKind {
    pub fn from_data_type(data_type: &str) -> Self {
        match data_type.to_ascii_lowercase().as_str() {
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "year" => {
                ColumnKind::Integer
            }
            "float" => ColumnKind::Float,
            "double" | "real" | "double precision" => ColumnKind::Double,
            "decimal" | "numeric" | "dec" | "fixed" => ColumnKind::Decimal,
            "date" => ColumnKind::Date,
            "datetime" | "timestamp" => ColumnKind::DateTime,
            "time" => ColumnKind::Time,
            "bit" => ColumnKind::Bit,
            "json" | "uuid" | "inet4" | "inet6" => ColumnKind::TextParsed,
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob"
            | "geometry" | "point" | "linestring" | "polygon" | "multipoint"
            | "multilinestring" | "multipolygon" | "geometrycollection" | "geomcollection"
            | "vector" => ColumnKind::Bytes,
            _ => ColumnKind::Text,
        }
    }
}

/// Append one value as a SQL literal.
pub fn push_value(out: &mut Vec<u8>, kind: ColumnKind, value: &Value) {
    use std::io::Write as _;
    match value {
        Value::NULL => out.extend_from_slice(b"NULL"),
        Value::Int(v) => out.extend_from_slice(itoa::Buffer::new().format(*v).as_bytes()),
        Value::UInt(v) => out.extend_from_slice(itoa::Buffer::new().format(*v).as_bytes()),
        // Widening a FLOAT to f64 is exact; the shortest f64 form parses back to that double,
        // which the server narrows to the original float without a second rounding.
        Value::Float(v) => {
            let _ = write!(out, "{:e}", f64::from(*v));
        }
        Value::Double(v) => {
            let _ = write!(out, "{v:e}");
        }
        Value::Date(y, mo, d, h, mi, s, us) => {
            out.push(b'\'');
            push_digits(out, u32::from(*y), 4);
            out.push(b'-');
            push_digits(out, u32::from(*mo), 2);
            out.push(b'-');
            push_digits(out, u32::from(*d), 2);
            if kind != ColumnKind::Date {
                out.push(b' ');
                push_clock(out, u64::from(*h), *mi, *s, *us);
            }
            out.push(b'\'');
        }
        Value::Time(negative, days, h, mi, s, us) => {
            out.push(b'\'');
            if *negative {
                out.push(b'-');
            }
            push_clock(out, u64::from(*days) * 24 + u64::from(*h), *mi, *s, *us);
            out.push(b'\'');
        }
        Value::Bytes(bytes) => push_bytes(out, kind, bytes),
    }
}

/// `HH:MM:SS[.ffffff]`, hours at least two digits.
fn push_clock(out: &mut Vec<u8>, hours: u64, minutes: u8, seconds: u8, micros: u32) {
    if hours < 100 {
        push_digits(out, hours as u32, 2);
    } else {
        out.extend_from_slice(itoa::Buffer::new().format(hours).as_bytes());
    }
    out.push(b':');
    push_digits(out, u32::from(minutes), 2);
    out.push(b':');
    push_digits(out, u32::from(seconds), 2);
    if micros != 0 {
        out.push(b'.');
        push_digits(out, micros, 6);
    }
}

/// `value` zero-padded to exactly `width` digits (values are range-checked by the protocol).
fn push_digits(out: &mut Vec<u8>, mut value: u32, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for slot in out[start..].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

fn push_bytes(out: &mut Vec<u8>, kind: ColumnKind, bytes: &[u8]) {
    match kind {
        // Digits as the server sent them: exact.
        ColumnKind::Decimal | ColumnKind::Integer | ColumnKind::Float | ColumnKind::Double
            if !bytes.is_empty()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_digit() || b"+-.eE".contains(b)) =>
        {
            out.extend_from_slice(bytes)
        }
        ColumnKind::Bit => push_hex(out, bytes),
        ColumnKind::TextParsed => {
            out.extend_from_slice(b"_utf8mb4");
            push_quoted(out, bytes);
        }
        _ if std::str::from_utf8(bytes).is_ok() => push_quoted(out, bytes),
        _ => push_hex(out, bytes),
    }
}

/// Append a whole row, `(…)\n`.
pub fn push_row(out: &mut Vec<u8>, kinds: &[ColumnKind], values: &[Option<Value>]) {
    out.push(b'(');
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_value(
            out,
            kinds.get(i).copied().unwrap_or(ColumnKind::Text),
            value.as_ref().unwrap_or(&Value::NULL),
        );
    }
    out.extend_from_slice(b")\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(kind: ColumnKind, v: Value) -> String {
        let mut out = Vec::new();
        push_value(&mut out, kind, &v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn floats_round_trip_exactly() {
        for f in [
            0.1f32,
            1.0e-38,
            3.402_823_5e38,
            -0.0,
            16_777_217.0,
            1.175_494_4e-38,
        ] {
            let text = enc(ColumnKind::Float, Value::Float(f));
            let back = text.parse::<f64>().unwrap() as f32;
            assert_eq!(back.to_bits(), f.to_bits(), "{text}");
        }
        for d in [0.1f64, 1e308, 5e-324, -123.456, 2f64.powi(60) + 1.0] {
            let text = enc(ColumnKind::Double, Value::Double(d));
            assert_eq!(
                text.parse::<f64>().unwrap().to_bits(),
                d.to_bits(),
                "{text}"
            );
        }
    }

    #[test]
    fn temporal_and_bytes() {
        assert_eq!(
            enc(ColumnKind::Date, Value::Date(0, 0, 0, 0, 0, 0, 0)),
            "'0000-00-00'"
        );
        assert_eq!(
            enc(ColumnKind::DateTime, Value::Date(2024, 2, 29, 23, 59, 1, 5)),
            "'2024-02-29 23:59:01.000005'"
        );
        assert_eq!(
            enc(ColumnKind::Time, Value::Time(true, 34, 22, 59, 59, 0)),
            "'-838:59:59'"
        );
        assert_eq!(
            enc(ColumnKind::Text, Value::Bytes(b"a'b".to_vec())),
            "'a\\'b'"
        );
        assert_eq!(enc(ColumnKind::Text, Value::Bytes(vec![0xe9])), "0xe9");
        assert_eq!(enc(ColumnKind::Bit, Value::Bytes(vec![5])), "0x05");
        assert_eq!(
            enc(ColumnKind::Decimal, Value::Bytes(b"-12.50".to_vec())),
            "-12.50"
        );
        assert_eq!(enc(ColumnKind::Text, Value::Bytes(Vec::new())), "''");
        assert_eq!(enc(ColumnKind::Text, Value::NULL), "NULL");
        assert_eq!(
            enc(
                ColumnKind::from_data_type("uuid"),
                Value::Bytes(b"1-2".to_vec())
            ),
            "_utf8mb4'1-2'"
        );
    }
}
