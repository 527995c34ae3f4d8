//! `--where` on archived row changes (`log show`, `log undo`): which row images a SQL condition
//! matches, as the server decides.
//!
//! As for `restore --where`, coffer never evaluates the condition itself: the row images are
//! written into a private scratch table shaped like the live table (a session `TEMPORARY` table,
//! `CREATE … AS SELECT … LIMIT 0`: the live columns' types and collations, without keys, so
//! the before and after images of one row can sit side by side) and selected with the
//! condition. Collations, dates, NULL and functions behave as in `SELECT … WHERE` on the live
//! table. The temporary table is the session's own: no other session sees it, it is not in a
//! ROW-format binary log, and it goes with the connection.
//!
//! The session is UTC and utf8mb4, as for `restore --where`: the literals coffer writes for
//! `TIMESTAMP` values are UTC, and a condition on such a column reads in UTC too.
//!
//! The images are judged by the live table's columns: a table whose column count changed since
//! the change was logged is refused by name (its images no longer line up with the columns).

use std::collections::HashMap;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use mysql_common::binlog::row::BinlogRow;

use super::replay::{TableShape, literal, table_shape};
use crate::error::{Error, Result};
use crate::source::mysql::mysql_error;
use crate::sql::{qualified, quote_ident};

/// The column numbering the images in the scratch table (a name no table of a study uses).
const ROW_NUMBER: &str = "coffer_row_number__";
/// Images written per statement.
const BATCH: usize = 200;

/// A SQL condition over the rows of one database's tables.
pub(crate) struct RowFilter {
    database: String,
    expression: String,
    /// Live table → (its shape, the scratch table's qualified name).
    tables: HashMap<String, (TableShape, String)>,
}

impl RowFilter {
    pub(crate) fn new(database: &str, expression: &str) -> Result<RowFilter> {
        if expression.trim().is_empty() {
            return Err(Error::invalid("the --where expression is empty")
                .with_hint("give a condition such as \"id IN (4, 7)\", or leave --where out"));
        }
        Ok(RowFilter {
            database: database.to_string(),
            expression: expression.to_string(),
            tables: HashMap::new(),
        })
    }

    /// The live shape of `table`, with its scratch table made (and the condition tried on it,
    /// so that a typo is reported before anything is read).
    pub(crate) async fn shape(&mut self, conn: &mut Conn, table: &str) -> Result<&TableShape> {
        if self.tables.is_empty() {
            utc_session(conn, "preparing the session --where is judged in").await?;
        }
        if !self.tables.contains_key(table) {
            let shape = table_shape(conn, &self.database, table)
                .await?
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "--where is judged on the live table's columns, and {} has no table {table}",
                        self.database
                    ))
                    .with_hint("leave --where out, or name the tables that exist with --table")
                })?;
            let scratch = qualified(
                &self.database,
                &format!("coffer_where_{}", self.tables.len() + 1),
            );
            let live = qualified(&self.database, table);
            exec(
                conn,
                &format!(
                    "CREATE TEMPORARY TABLE {scratch} AS SELECT *, CAST(0 AS UNSIGNED) AS {} FROM {live} LIMIT 0",
                    quote_ident(ROW_NUMBER)
                ),
                "making the scratch table --where is judged in",
            )
            .await?;
            conn.query_drop(format!(
                "SELECT COUNT(*) FROM {scratch} WHERE {}",
                self.condition()
            ))
            .await
            .map_err(|e| {
                mysql_error(
                    e,
                    &format!(
                        "the --where expression {:?} is refused by the server",
                        self.expression
                    ),
                )
                .with_hint(format!(
                    "write a SQL condition over the columns of {table}: {}",
                    shape
                        .columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            self.tables.insert(table.to_string(), (shape, scratch));
        }
        self.tables
            .get(table)
            .map(|(shape, _)| shape)
            .ok_or_else(|| Error::invalid(format!("no scratch table for {table}")))
    }

    fn condition(&self) -> String {
        // On lines of their own: a `--` comment inside the condition ends there.
        format!("(\n{}\n)", self.expression)
    }

    /// Which of `images` (rows of `table` as the log holds them) the condition is true for.
    pub(crate) async fn matching(
        &mut self,
        conn: &mut Conn,
        table: &str,
        images: &[&BinlogRow],
    ) -> Result<Vec<bool>> {
        let shape = self.shape(conn, table).await?.clone();
        let literals = images
            .iter()
            .map(|row| row_literals(table, row, &shape))
            .collect::<Result<Vec<_>>>()?;
        let scratch = self
            .tables
            .get(table)
            .map(|(_, scratch)| scratch.clone())
            .ok_or_else(|| Error::invalid(format!("no scratch table for {table}")))?;
        let columns = shape
            .columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .chain([quote_ident(ROW_NUMBER)])
            .collect::<Vec<_>>()
            .join(", ");
        let mut matched = vec![false; images.len()];
        for (batch, rows) in literals.chunks(BATCH).enumerate() {
            let values = rows
                .iter()
                .enumerate()
                .map(|(i, row)| format!("({}, {})", row.join(", "), batch * BATCH + i))
                .collect::<Vec<_>>()
                .join(", ");
            exec(
                conn,
                &format!("INSERT INTO {scratch} ({columns}) VALUES {values}"),
                "writing row images into the scratch table",
            )
            .await?;
            let found: Vec<u64> = conn
                .query(format!(
                    "SELECT {} FROM {scratch} WHERE {}",
                    quote_ident(ROW_NUMBER),
                    self.condition()
                ))
                .await
                .map_err(|e| mysql_error(e, "judging row images by the --where expression"))?;
            exec(
                conn,
                &format!("DELETE FROM {scratch}"),
                "emptying the scratch table",
            )
            .await?;
            for n in found {
                if let Some(slot) = usize::try_from(n).ok().and_then(|n| matched.get_mut(n)) {
                    *slot = true;
                }
            }
        }
        Ok(matched)
    }

    /// Whether the condition is true for either image of one change.
    pub(crate) async fn either_matches(
        &mut self,
        conn: &mut Conn,
        table: &str,
        before: Option<&BinlogRow>,
        after: Option<&BinlogRow>,
    ) -> Result<bool> {
        let images: Vec<&BinlogRow> = before.into_iter().chain(after).collect();
        Ok(self
            .matching(conn, table, &images)
            .await?
            .into_iter()
            .any(|m| m))
    }

    /// Drop the scratch tables (they would also go with the connection).
    pub(crate) async fn close(self, conn: &mut Conn) {
        for (_, scratch) in self.tables.into_values() {
            let _ = conn
                .query_drop(format!("DROP TEMPORARY TABLE IF EXISTS {scratch}"))
                .await;
        }
    }
}

/// A logged row of `table` as SQL literals, one per column of `shape`: every column must be in
/// the image (`binlog_row_image=FULL`) and the image must have as many columns as the table.
pub(crate) fn row_literals(
    table: &str,
    row: &BinlogRow,
    shape: &TableShape,
) -> Result<Vec<String>> {
    if row.len() != shape.columns.len() {
        return Err(Error::invalid(format!(
            "table {table} has {} columns now and {} in the log: its definition changed since; nothing was written",
            shape.columns.len(),
            row.len()
        )));
    }
    shape
        .columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let value = row.as_ref(i).ok_or_else(|| {
                Error::invalid(format!(
                    "the log's row of {table} lacks column {} (binlog_row_image=FULL is needed)",
                    column.name
                ))
            })?;
            literal(value, column).map_err(Error::invalid)
        })
        .collect()
}

/// UTC and utf8mb4 for `conn`: coffer's literals of logged `TIMESTAMP` values are UTC (shared
/// with [`super::undo`], which reads live rows in it).
pub(crate) async fn utc_session(conn: &mut Conn, what: &str) -> Result<()> {
    for statement in ["SET NAMES utf8mb4", "SET SESSION time_zone = '+00:00'"] {
        exec(conn, statement, what).await?;
    }
    Ok(())
}

async fn exec(conn: &mut Conn, sql: &str, what: &str) -> Result<()> {
    conn.query_drop(sql).await.map_err(|e| mysql_error(e, what))
}
