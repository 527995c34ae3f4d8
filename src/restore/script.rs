//! Writing a [`RestorePlan`] as a SQL script that the stock `mysql`/`mariadb` client loads.

use std::io::Write;

use super::{LOAD_SESSION, RestorePlan};
use crate::error::{Error, ErrorKind, Result};
use crate::repo::Repository;
use crate::repo::index::Index;
use crate::sql::quote_ident;

/// Largest INSERT statement written (the client's default max_allowed_packet is 16 MiB).
const SCRIPT_STATEMENT_LIMIT: usize = 4 << 20;

/// Write the whole database as SQL to `out`. `header` lines are written as comments.
pub async fn write_script(
    repo: &Repository,
    index: &Index,
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
    let mut items = plan.data_items();
    items.sort_by_key(|item| item.table);
    for item in items {
        let data = repo.read_blob(index, &item.chunk.id).await?;
        for insert in plan.insert_statements(item.table, &data, SCRIPT_STATEMENT_LIMIT)? {
            out.write_all(&insert).map_err(io)?;
            out.write_all(b";\n").map_err(io)?;
        }
    }
    writeln!(out, "SET NAMES utf8mb4;").map_err(io)?;
    for statement in plan.object_statements() {
        for set in RestorePlan::session_for(&statement) {
            writeln!(out, "{set};").map_err(io)?;
        }
        if statement.compound {
            writeln!(out, "DELIMITER ;;\n{};;\nDELIMITER ;", statement.sql).map_err(io)?;
        } else {
            writeln!(out, "{};", statement.sql).map_err(io)?;
        }
        for reset in RestorePlan::session_reset_after(&statement) {
            writeln!(out, "{reset};").map_err(io)?;
        }
    }
    out.flush().map_err(io)
}
