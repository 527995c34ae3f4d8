//! Rows as SQL text: the encoding of table data inside chunks.
//!
//! A row is `(v1,v2,…)\n`, each value a SQL literal that a server in a `SET NAMES binary`
//! session stores back bit for bit: integers and DECIMAL as digits, FLOAT/DOUBLE in the shortest
//! exponent form that parses back to the same binary value, temporal values quoted, BIT and
//! non-UTF-8 bytes as hex, other bytes as escaped strings. Values are read with the binary
//! protocol, so floats never pass through a lossy text form on the way out.
//!
//! [`RowDecoder`] writes that text straight from the binary-protocol row packet the server
//! sends (MySQL manual, "Binary Protocol Resultset Row"; MariaDB's is the same): no value
//! object and no allocation per cell. This is the inner loop of every backup.

use mysql_async::Column;
use mysql_async::consts::{ColumnFlags, ColumnType};

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

/// How a column's values sit in a binary-protocol row packet, from the result's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// Little-endian integer of 1, 2, 4 or 8 bytes.
    Integer {
        bytes: usize,
        unsigned: bool,
    },
    Float,
    Double,
    /// Length byte (0, 4, 7 or 11), then year, month, day, hour, minute, second, microsecond.
    DateTime,
    /// Length byte (0, 8 or 12), then sign, days, hour, minute, second, microsecond.
    Time,
    /// Length-encoded bytes: strings, BLOBs, DECIMAL digits, BIT, JSON, geometry.
    LengthPrefixed,
    /// MYSQL_TYPE_NULL: every value is NULL (and flagged so in the null bitmap).
    Null,
}

impl Wire {
    fn of(column: &Column) -> Option<Wire> {
        let unsigned = column.flags().contains(ColumnFlags::UNSIGNED_FLAG);
        let integer = |bytes| Some(Wire::Integer { bytes, unsigned });
        match column.column_type() {
            ColumnType::MYSQL_TYPE_TINY => integer(1),
            ColumnType::MYSQL_TYPE_SHORT | ColumnType::MYSQL_TYPE_YEAR => integer(2),
            ColumnType::MYSQL_TYPE_LONG | ColumnType::MYSQL_TYPE_INT24 => integer(4),
            ColumnType::MYSQL_TYPE_LONGLONG => integer(8),
            ColumnType::MYSQL_TYPE_FLOAT => Some(Wire::Float),
            ColumnType::MYSQL_TYPE_DOUBLE => Some(Wire::Double),
            ColumnType::MYSQL_TYPE_TIMESTAMP
            | ColumnType::MYSQL_TYPE_DATE
            | ColumnType::MYSQL_TYPE_NEWDATE
            | ColumnType::MYSQL_TYPE_DATETIME => Some(Wire::DateTime),
            ColumnType::MYSQL_TYPE_TIME => Some(Wire::Time),
            ColumnType::MYSQL_TYPE_STRING
            | ColumnType::MYSQL_TYPE_VAR_STRING
            | ColumnType::MYSQL_TYPE_VARCHAR
            | ColumnType::MYSQL_TYPE_BLOB
            | ColumnType::MYSQL_TYPE_TINY_BLOB
            | ColumnType::MYSQL_TYPE_MEDIUM_BLOB
            | ColumnType::MYSQL_TYPE_LONG_BLOB
            | ColumnType::MYSQL_TYPE_SET
            | ColumnType::MYSQL_TYPE_ENUM
            | ColumnType::MYSQL_TYPE_DECIMAL
            | ColumnType::MYSQL_TYPE_NEWDECIMAL
            | ColumnType::MYSQL_TYPE_BIT
            | ColumnType::MYSQL_TYPE_GEOMETRY
            | ColumnType::MYSQL_TYPE_VECTOR
            | ColumnType::MYSQL_TYPE_JSON => Some(Wire::LengthPrefixed),
            ColumnType::MYSQL_TYPE_NULL => Some(Wire::Null),
            _ => None,
        }
    }
}

/// Turns binary-protocol row packets of one result into row text.
#[derive(Debug, Clone)]
pub struct RowDecoder {
    columns: Vec<(Wire, ColumnKind)>,
}

impl RowDecoder {
    /// A decoder for a result with these `columns`, written as `kinds` (one per column, from
    /// `information_schema`). Refuses a column type the binary protocol does not define.
    pub fn new(columns: &[Column], kinds: &[ColumnKind]) -> Result<RowDecoder, String> {
        if columns.len() != kinds.len() {
            return Err(format!(
                "the server returned {} columns where {} were selected",
                columns.len(),
                kinds.len()
            ));
        }
        let columns = columns
            .iter()
            .zip(kinds)
            .map(|(column, &kind)| {
                Wire::of(column).map(|wire| (wire, kind)).ok_or_else(|| {
                    format!(
                        "column {} has a type the binary protocol does not define ({:?})",
                        column.name_str(),
                        column.column_type()
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(RowDecoder { columns })
    }

    /// Append the row in `packet` as `(…)\n`. `starts` is cleared and receives where each value
    /// begins in `out`, then where the closing parenthesis is, so value `i` is
    /// `out[starts[i]..starts[i + 1] - 1]` without its comma (see [`RowDecoder::value`]).
    pub fn push_row(
        &self,
        packet: &[u8],
        out: &mut Vec<u8>,
        starts: &mut Vec<usize>,
    ) -> Result<(), &'static str> {
        const TRUNCATED: &str = "row packet ends inside a value";
        // 0x00, then the null bitmap with its two-bit offset, then the non-NULL values.
        let bitmap_len = (self.columns.len() + 7 + 2) / 8;
        let (&header, rest) = packet.split_first().ok_or(TRUNCATED)?;
        if header != 0 {
            return Err("not a binary-protocol row (header byte is not 0x00)");
        }
        let bitmap = rest.get(..bitmap_len).ok_or(TRUNCATED)?;
        let mut values = Reader(&rest[bitmap_len..]);
        starts.clear();
        out.push(b'(');
        for (i, &(wire, kind)) in self.columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            starts.push(out.len());
            let bit = i + 2;
            if bitmap[bit / 8] & (1 << (bit % 8)) != 0 || wire == Wire::Null {
                out.extend_from_slice(b"NULL");
                continue;
            }
            match wire {
                Wire::Integer { bytes, unsigned } => {
                    let raw = values.take(bytes).ok_or(TRUNCATED)?;
                    let mut le = [0u8; 8];
                    le[..bytes].copy_from_slice(raw);
                    let value = u64::from_le_bytes(le);
                    let mut digits = itoa::Buffer::new();
                    let text = if unsigned {
                        digits.format(value)
                    } else {
                        // Sign-extend from the width sent.
                        let shift = 64 - 8 * bytes as u32;
                        digits.format(((value << shift) as i64) >> shift)
                    };
                    out.extend_from_slice(text.as_bytes());
                }
                Wire::Float => {
                    let raw = values.take(4).ok_or(TRUNCATED)?;
                    let value = f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
                    // Widening a FLOAT to f64 is exact; the shortest f64 form parses back to
                    // that double, which the server narrows to the original float without a
                    // second rounding.
                    push_double(out, f64::from(value));
                }
                Wire::Double => {
                    let raw = values.take(8).ok_or(TRUNCATED)?;
                    let mut le = [0u8; 8];
                    le.copy_from_slice(raw);
                    push_double(out, f64::from_le_bytes(le));
                }
                Wire::DateTime => {
                    let len =
                        usize::from(*values.take(1).ok_or(TRUNCATED)?.first().ok_or(TRUNCATED)?);
                    let raw = values.take(len).ok_or(TRUNCATED)?;
                    push_datetime(out, kind, raw);
                }
                Wire::Time => {
                    let len =
                        usize::from(*values.take(1).ok_or(TRUNCATED)?.first().ok_or(TRUNCATED)?);
                    let raw = values.take(len).ok_or(TRUNCATED)?;
                    push_time(out, raw);
                }
                Wire::LengthPrefixed => {
                    let len = values.length().ok_or(TRUNCATED)?;
                    let bytes = values.take(len).ok_or(TRUNCATED)?;
                    push_bytes(out, kind, bytes);
                }
                Wire::Null => {}
            }
        }
        starts.push(out.len());
        out.extend_from_slice(b")\n");
        Ok(())
    }

    /// Value `i` of the row just written by [`RowDecoder::push_row`] into `out`.
    pub fn value<'a>(out: &'a [u8], starts: &[usize], i: usize) -> &'a [u8] {
        match (starts.get(i), starts.get(i + 1)) {
            // The next value starts after a comma; the last one ends at the parenthesis.
            (Some(&start), Some(&next)) if i + 2 < starts.len() => &out[start..next - 1],
            (Some(&start), Some(&end)) => &out[start..end],
            _ => &[],
        }
    }
}

/// The unread part of a row packet.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(taken)
    }

    /// A length-encoded integer (0xFB, NULL, and 0xFF do not occur in a binary row).
    fn length(&mut self) -> Option<usize> {
        let first = *self.take(1)?.first()?;
        let width = match first {
            0..=0xFA => return Some(usize::from(first)),
            0xFC => 2,
            0xFD => 3,
            0xFE => 8,
            _ => return None,
        };
        let mut le = [0u8; 8];
        le[..width].copy_from_slice(self.take(width)?);
        usize::try_from(u64::from_le_bytes(le)).ok()
    }
}

/// The shortest exponent form that parses back to the same double.
fn push_double(out: &mut Vec<u8>, value: f64) {
    use std::io::Write as _;
    let _ = write!(out, "{value:e}");
}

/// `'YYYY-MM-DD'` for a DATE column, `'YYYY-MM-DD HH:MM:SS[.ffffff]'` otherwise, from the
/// binary form's fields (missing ones are zero, as the protocol leaves out trailing zeros).
fn push_datetime(out: &mut Vec<u8>, kind: ColumnKind, raw: &[u8]) {
    let byte = |i: usize| raw.get(i).copied().unwrap_or(0);
    let year = u16::from_le_bytes([byte(0), byte(1)]);
    let micros = if raw.len() >= 11 {
        u32::from_le_bytes([byte(7), byte(8), byte(9), byte(10)])
    } else {
        0
    };
    out.push(b'\'');
    push_digits(out, u32::from(year), 4);
    out.push(b'-');
    push_digits(out, u32::from(byte(2)), 2);
    out.push(b'-');
    push_digits(out, u32::from(byte(3)), 2);
    if kind != ColumnKind::Date {
        out.push(b' ');
        push_clock(out, u64::from(byte(4)), byte(5), byte(6), micros);
    }
    out.push(b'\'');
}

/// `'[-]HH:MM:SS[.ffffff]'` with the days folded into the hours.
fn push_time(out: &mut Vec<u8>, raw: &[u8]) {
    let byte = |i: usize| raw.get(i).copied().unwrap_or(0);
    let days = u32::from_le_bytes([byte(1), byte(2), byte(3), byte(4)]);
    let micros = if raw.len() >= 12 {
        u32::from_le_bytes([byte(8), byte(9), byte(10), byte(11)])
    } else {
        0
    };
    out.push(b'\'');
    if byte(0) == 1 {
        out.push(b'-');
    }
    push_clock(
        out,
        u64::from(days) * 24 + u64::from(byte(5)),
        byte(6),
        byte(7),
        micros,
    );
    out.push(b'\'');
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

/// Binary-protocol row packets built from values, for tests of what reads them.
#[cfg(test)]
pub(crate) mod test_packets {
    use mysql_async::Column;
    use mysql_async::consts::{ColumnFlags, ColumnType};

    /// One value as the server would send it.
    #[derive(Debug, Clone, Copy)]
    pub enum Cell<'a> {
        Null,
        Int(i64),
        UInt(u64),
        Float(f32),
        Double(f64),
        Date(u16, u8, u8, u8, u8, u8, u32),
        Time(bool, u32, u8, u8, u8, u32),
        Bytes(&'a [u8]),
    }

    /// The columns and row packet for `cells`: integers as BIGINT, dates as DATETIME.
    pub fn row(cells: &[Cell]) -> (Vec<Column>, Vec<u8>) {
        let mut bitmap = vec![0u8; (cells.len() + 9) / 8];
        let mut values = Vec::new();
        let mut columns = Vec::new();
        for (i, cell) in cells.iter().enumerate() {
            let (column_type, flags) = match *cell {
                Cell::Null => {
                    bitmap[(i + 2) / 8] |= 1 << ((i + 2) % 8);
                    (ColumnType::MYSQL_TYPE_VAR_STRING, ColumnFlags::empty())
                }
                Cell::Int(v) => {
                    values.extend_from_slice(&v.to_le_bytes());
                    (ColumnType::MYSQL_TYPE_LONGLONG, ColumnFlags::empty())
                }
                Cell::UInt(v) => {
                    values.extend_from_slice(&v.to_le_bytes());
                    (ColumnType::MYSQL_TYPE_LONGLONG, ColumnFlags::UNSIGNED_FLAG)
                }
                Cell::Float(v) => {
                    values.extend_from_slice(&v.to_le_bytes());
                    (ColumnType::MYSQL_TYPE_FLOAT, ColumnFlags::empty())
                }
                Cell::Double(v) => {
                    values.extend_from_slice(&v.to_le_bytes());
                    (ColumnType::MYSQL_TYPE_DOUBLE, ColumnFlags::empty())
                }
                Cell::Date(y, mo, d, h, mi, sec, us) => {
                    // The shortest form the protocol allows, as servers send it.
                    let len: u8 = if us != 0 {
                        11
                    } else if (h, mi, sec) != (0, 0, 0) {
                        7
                    } else if (y, mo, d) != (0, 0, 0) {
                        4
                    } else {
                        0
                    };
                    values.push(len);
                    let mut all = y.to_le_bytes().to_vec();
                    all.extend_from_slice(&[mo, d, h, mi, sec]);
                    all.extend_from_slice(&us.to_le_bytes());
                    values.extend_from_slice(&all[..usize::from(len)]);
                    (ColumnType::MYSQL_TYPE_DATETIME, ColumnFlags::empty())
                }
                Cell::Time(negative, days, h, mi, sec, us) => {
                    let len: u8 = if us != 0 { 12 } else { 8 };
                    values.push(len);
                    let mut all = vec![u8::from(negative)];
                    all.extend_from_slice(&days.to_le_bytes());
                    all.extend_from_slice(&[h, mi, sec]);
                    all.extend_from_slice(&us.to_le_bytes());
                    values.extend_from_slice(&all[..usize::from(len)]);
                    (ColumnType::MYSQL_TYPE_TIME, ColumnFlags::empty())
                }
                Cell::Bytes(bytes) => {
                    match bytes.len() {
                        n @ 0..=0xFA => values.push(n as u8),
                        n @ 0xFB..=0xFFFF => {
                            values.push(0xFC);
                            values.extend_from_slice(&(n as u16).to_le_bytes());
                        }
                        n => {
                            values.push(0xFE);
                            values.extend_from_slice(&(n as u64).to_le_bytes());
                        }
                    }
                    values.extend_from_slice(bytes);
                    (ColumnType::MYSQL_TYPE_BLOB, ColumnFlags::empty())
                }
            };
            columns.push(Column::new(column_type).with_flags(flags));
        }
        let mut packet = vec![0u8];
        packet.extend_from_slice(&bitmap);
        packet.extend_from_slice(&values);
        (columns, packet)
    }
}

#[cfg(test)]
mod tests {
    use super::test_packets::{Cell, row};
    use super::*;
    use mysql_async::consts::ColumnFlags;

    fn text(kinds: &[ColumnKind], cells: &[Cell]) -> String {
        let (columns, packet) = row(cells);
        let decoder = RowDecoder::new(&columns, kinds).unwrap();
        let mut out = Vec::new();
        decoder
            .push_row(&packet, &mut out, &mut Vec::new())
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    fn enc(kind: ColumnKind, cell: Cell) -> String {
        let row = text(&[kind], &[cell]);
        row[1..row.len() - 2].to_string()
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
            let text = enc(ColumnKind::Float, Cell::Float(f));
            let back = text.parse::<f64>().unwrap() as f32;
            assert_eq!(back.to_bits(), f.to_bits(), "{text}");
        }
        for d in [0.1f64, 1e308, 5e-324, -123.456, 2f64.powi(60) + 1.0] {
            let text = enc(ColumnKind::Double, Cell::Double(d));
            assert_eq!(
                text.parse::<f64>().unwrap().to_bits(),
                d.to_bits(),
                "{text}"
            );
        }
    }

    #[test]
    fn integers_of_every_width_and_sign() {
        assert_eq!(
            enc(ColumnKind::Integer, Cell::Int(i64::MIN)),
            i64::MIN.to_string()
        );
        assert_eq!(
            enc(ColumnKind::Integer, Cell::UInt(u64::MAX)),
            u64::MAX.to_string()
        );
        // A TINYINT -1 and a TINYINT UNSIGNED 255 are the same byte.
        for (flags, expected) in [
            (ColumnFlags::empty(), "-1"),
            (ColumnFlags::UNSIGNED_FLAG, "255"),
        ] {
            let column = Column::new(ColumnType::MYSQL_TYPE_TINY).with_flags(flags);
            let decoder = RowDecoder::new(&[column], &[ColumnKind::Integer]).unwrap();
            let mut out = Vec::new();
            decoder
                .push_row(&[0, 0, 0xFF], &mut out, &mut Vec::new())
                .unwrap();
            assert_eq!(out, format!("({expected})\n").as_bytes());
        }
        let column = Column::new(ColumnType::MYSQL_TYPE_INT24);
        let decoder = RowDecoder::new(&[column], &[ColumnKind::Integer]).unwrap();
        let mut out = Vec::new();
        let packet = [0, 0, 0x00, 0x00, 0x80, 0xFF];
        decoder
            .push_row(&packet, &mut out, &mut Vec::new())
            .unwrap();
        assert_eq!(out, b"(-8388608)\n");
    }

    #[test]
    fn temporal_and_bytes() {
        assert_eq!(
            enc(ColumnKind::Date, Cell::Date(0, 0, 0, 0, 0, 0, 0)),
            "'0000-00-00'"
        );
        assert_eq!(
            enc(ColumnKind::Date, Cell::Date(2024, 2, 29, 0, 0, 0, 0)),
            "'2024-02-29'"
        );
        assert_eq!(
            enc(ColumnKind::DateTime, Cell::Date(2024, 2, 29, 0, 0, 0, 0)),
            "'2024-02-29 00:00:00'"
        );
        assert_eq!(
            enc(ColumnKind::DateTime, Cell::Date(2024, 2, 29, 23, 59, 1, 5)),
            "'2024-02-29 23:59:01.000005'"
        );
        assert_eq!(
            enc(ColumnKind::Time, Cell::Time(true, 34, 22, 59, 59, 0)),
            "'-838:59:59'"
        );
        assert_eq!(
            enc(ColumnKind::Time, Cell::Time(false, 0, 1, 2, 3, 400)),
            "'01:02:03.000400'"
        );
        assert_eq!(enc(ColumnKind::Text, Cell::Bytes(b"a'b")), "'a\\'b'");
        assert_eq!(enc(ColumnKind::Text, Cell::Bytes(&[0xe9])), "0xe9");
        assert_eq!(enc(ColumnKind::Bit, Cell::Bytes(&[5])), "0x05");
        assert_eq!(enc(ColumnKind::Decimal, Cell::Bytes(b"-12.50")), "-12.50");
        assert_eq!(enc(ColumnKind::Text, Cell::Bytes(b"")), "''");
        assert_eq!(enc(ColumnKind::Text, Cell::Null), "NULL");
        assert_eq!(
            enc(ColumnKind::from_data_type("uuid"), Cell::Bytes(b"1-2")),
            "_utf8mb4'1-2'"
        );
        let long = vec![b'x'; 70_000];
        assert_eq!(enc(ColumnKind::Bytes, Cell::Bytes(&long)).len(), 70_002);
    }

    #[test]
    fn values_are_found_again_in_the_row_text() {
        let cells = [
            Cell::Int(7),
            Cell::Null,
            Cell::Bytes(b"a,b"),
            Cell::Double(0.5),
        ];
        let kinds = [
            ColumnKind::Integer,
            ColumnKind::Text,
            ColumnKind::Text,
            ColumnKind::Double,
        ];
        let (columns, packet) = row(&cells);
        let decoder = RowDecoder::new(&columns, &kinds).unwrap();
        let (mut out, mut starts) = (b"earlier".to_vec(), Vec::new());
        decoder.push_row(&packet, &mut out, &mut starts).unwrap();
        let values: Vec<&[u8]> = (0..4)
            .map(|i| RowDecoder::value(&out, &starts, i))
            .collect();
        assert_eq!(values, [&b"7"[..], b"NULL", b"'a,b'", b"5e-1"]);
    }

    #[test]
    fn malformed_packets_are_errors_not_panics() {
        let cells = [
            Cell::Int(1),
            Cell::Bytes(b"abc"),
            Cell::Date(2024, 1, 2, 3, 4, 5, 6),
        ];
        let kinds = [ColumnKind::Integer, ColumnKind::Text, ColumnKind::DateTime];
        let (columns, packet) = row(&cells);
        let decoder = RowDecoder::new(&columns, &kinds).unwrap();
        for cut in 0..packet.len() {
            assert!(
                decoder
                    .push_row(&packet[..cut], &mut Vec::new(), &mut Vec::new())
                    .is_err(),
                "a packet cut at {cut} was accepted"
            );
        }
        let mut not_a_row = packet.clone();
        not_a_row[0] = 0xFE;
        assert!(
            decoder
                .push_row(&not_a_row, &mut Vec::new(), &mut Vec::new())
                .is_err()
        );
        assert!(RowDecoder::new(&columns, &kinds[..2]).is_err());
        let unknown = Column::new(ColumnType::MYSQL_TYPE_TYPED_ARRAY);
        assert!(RowDecoder::new(&[unknown], &[ColumnKind::Text]).is_err());
    }
}
