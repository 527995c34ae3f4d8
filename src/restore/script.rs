//! Writing a [`RestorePlan`] as a SQL script that the stock `mysql`/`mariadb` client loads.

use std::io::Write;

use super::{LOAD_SESSION, LoadLimits, RestorePlan};
use crate::error::{Error, ErrorKind, Result};
use crate::repo::Repository;
use crate::repo::index::Index;
use crate::sql::quote_ident;

/// Largest statement written: loads into any server whose max_allowed_packet is at least
/// 1 MiB (defaults: MariaDB 16 MiB, MySQL 64 MiB, their clients 16 MiB); larger values are
/// assembled from pieces of this size.
pub(super) const SCRIPT_STATEMENT_LIMIT: usize = 1 << 20;
/// Largest value a script can carry (the protocol's limit; the loading server's
/// max_allowed_packet may be lower, which it reports itself).
pub(super) const SCRIPT_VALUE_LIMIT: usize = 1 << 30;

/// A client delimiter that does not occur anywhere in `sql`, so the client cannot end the
/// statement early (stored statements are checked, but the delimiter must not depend on it).
fn delimiter_for(sql: &str) -> String {
    [";;", "$$", "//", "##"]
        .into_iter()
        .map(str::to_string)
        .chain((1..).map(|n| format!("$coffer{n}$")))
        .find(|d| !sql.contains(d.as_str()))
        .unwrap_or_else(|| ";;".to_string())
}

/// Where a script's rows come from.
pub enum ScriptRows<'a> {
    /// The snapshot's chunks.
    Snapshot {
        repo: &'a Repository,
        index: &'a Index,
    },
    /// A copy of the plan's tables in a database on a server, read in key order
    /// (`dump --at`: the snapshot taken to a moment in a staging database).
    Staged {
        conn: &'a mut mysql_async::Conn,
        database: &'a str,
    },
}

/// Write the whole database as SQL to `out`. `header` lines are written as comments.
pub async fn write_script(
    rows: ScriptRows<'_>,
    plan: &RestorePlan,
    header: &[String],
    out: &mut dyn Write,
) -> Result<()> {
    let io =
        |e: std::io::Error| Error::new(ErrorKind::Storage, "writing the SQL script").with_source(e);
    for line in header {
        writeln!(out, "-- {}", line.replace('\n', " ")).map_err(io)?;
    }
    writeln!(out, "SET NAMES utf8mb4;").map_err(io)?;
    for statement in LOAD_SESSION {
        writeln!(out, "{statement};").map_err(io)?;
    }
    writeln!(out, "{};", plan.create_database(true).sql).map_err(io)?;
    writeln!(out, "USE {};", quote_ident(&plan.target_name)).map_err(io)?;
    for statement in plan.table_statements() {
        writeln!(out, "{};", statement.sql).map_err(io)?;
    }
    writeln!(out, "SET NAMES binary;").map_err(io)?;
    match rows {
        ScriptRows::Snapshot { repo, index } => {
            let mut items = plan.data_items();
            items.sort_by_key(|item| item.table);
            for item in items {
                let data = repo.read_blob(index, &item.chunk.id).await?;
                write_inserts(plan, item.table, &data, out)?;
            }
        }
        ScriptRows::Staged { conn, database } => {
            for (number, table) in plan.tables.iter().enumerate() {
                if table.kind == crate::repo::tree::TableKind::Sequence {
                    continue;
                }
                // Rows are streamed and written in batches of statements, whatever their number.
                let mut batch: Vec<u8> = Vec::new();
                crate::source::mysql::dump::for_each_row_as_text(
                    conn,
                    database,
                    &plan.table_targets[number],
                    &table.columns,
                    &table.key_columns,
                    |row| {
                        batch.extend_from_slice(row);
                        batch.push(b'\n');
                        if batch.len() >= SCRIPT_STATEMENT_LIMIT {
                            write_inserts(plan, number, &batch, out)?;
                            batch.clear();
                        }
                        Ok(())
                    },
                )
                .await?;
                write_inserts(plan, number, &batch, out)?;
            }
        }
    }
    writeln!(out, "SET NAMES utf8mb4;").map_err(io)?;
    for statement in plan.object_statements() {
        for set in RestorePlan::session_for(&statement) {
            writeln!(out, "{set};").map_err(io)?;
        }
        if statement.is_compound() {
            let delimiter = delimiter_for(&statement.sql);
            writeln!(
                out,
                "DELIMITER {delimiter}\n{}{delimiter}\nDELIMITER ;",
                statement.sql
            )
            .map_err(io)?;
        } else {
            writeln!(out, "{};", statement.sql).map_err(io)?;
        }
        for reset in RestorePlan::session_reset_after(&statement) {
            writeln!(out, "{reset};").map_err(io)?;
        }
    }
    out.flush().map_err(io)
}

/// Rows of the plan's table `table` (chunk text) as INSERT statements.
fn write_inserts(plan: &RestorePlan, table: usize, rows: &[u8], out: &mut dyn Write) -> Result<()> {
    let limits = LoadLimits {
        statement: SCRIPT_STATEMENT_LIMIT,
        value: SCRIPT_VALUE_LIMIT,
    };
    for insert in plan.insert_statements(table, rows, &limits)? {
        out.write_all(&insert)
            .and_then(|()| out.write_all(b";\n"))
            .map_err(|e| Error::new(ErrorKind::Storage, "writing the SQL script").with_source(e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::delimiter_for;

    #[test]
    fn the_delimiter_never_occurs_in_the_statement() {
        assert_eq!(delimiter_for("BEGIN SELECT 1; END"), ";;");
        assert_eq!(delimiter_for("BEGIN SELECT ';;'; END"), "$$");
        assert_eq!(
            delimiter_for("BEGIN SELECT ';; $$ // ## $coffer1$'; END"),
            "$coffer2$"
        );
    }
}
