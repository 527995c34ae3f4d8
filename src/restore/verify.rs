//! Proof that a restored database equals its snapshot: every table is read back from the server
//! through the dump's own row encoder and cut by the repository's own chunker, and the chunk ids
//! must be the snapshot's, in order. Equal keyed ids mean equal rows, bit for bit, without
//! reading the chunks themselves; the rows are streamed, so memory stays at one chunk. A table
//! without a key has no defined row order: its rows are compared as a sorted list against the
//! snapshot's chunks instead (held in memory).

use std::sync::Arc;

use mysql_async::prelude::Queryable;

use super::RestorePlan;
use super::staging::prepare_session;
use crate::chunker::{RowChunker, gear_table};
use crate::error::Result;
use crate::repo::Repository;
use crate::repo::ids::BlobId;
use crate::repo::index::Index;
use crate::repo::tree::TableKind;
use crate::source::mysql::MysqlTarget;
use crate::source::mysql::dump::{for_each_row_as_text, rows_as_text};

/// How one table compared.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableVerdict {
    pub table: String,
    pub rows_expected: u64,
    pub rows_found: u64,
    pub equal: bool,
    /// For a difference: where it starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub difference: Option<String>,
}

/// Compare every table of `plan` with the tables restored in `database` on `target`.
pub async fn verify_restored(
    repo: &Arc<Repository>,
    index: &Index,
    plan: &RestorePlan,
    target: &MysqlTarget,
    database: &str,
) -> Result<Vec<TableVerdict>> {
    let mut conn = target.connect().await?;
    prepare_session(&mut conn, database).await?;
    conn.query_drop("SET NAMES utf8mb4")
        .await
        .map_err(|e| crate::source::mysql::mysql_error(e, "setting up the verifying session"))?;
    let gear = gear_table(repo.keys().chunker_key());
    let params = repo.config().chunker;
    let mut verdicts = Vec::with_capacity(plan.tables.len());
    for (table, name) in plan.tables.iter().zip(&plan.table_targets) {
        if table.kind != TableKind::Base {
            continue;
        }
        let rows_expected: u64 = table.chunks.iter().map(|c| c.rows).sum();
        let (rows_found, difference) = if table.key_columns.is_empty() {
            // No order to cut by: compare the sorted rows.
            let mut found = rows_as_text(&mut conn, database, name, &table.columns, &[]).await?;
            let mut expected = Vec::with_capacity(found.len());
            for chunk in &table.chunks {
                let data = repo.read_blob(index, &chunk.id).await?;
                expected.extend(
                    data.split(|b| *b == b'\n')
                        .filter(|r| !r.is_empty())
                        .map(<[u8]>::to_vec),
                );
            }
            expected.sort_unstable();
            found.sort_unstable();
            let difference =
                (expected != found).then(|| "the rows differ (a table without a key)".to_string());
            (found.len() as u64, difference)
        } else {
            // Rows streamed in key order through the chunker, as a dump cuts them.
            let mut chunker = RowChunker::new(gear.clone(), params);
            let mut ids: Vec<BlobId> = Vec::with_capacity(table.chunks.len());
            let mut rows_found = 0u64;
            let mut line = Vec::new();
            let keys = repo.keys();
            for_each_row_as_text(
                &mut conn,
                database,
                name,
                &table.columns,
                &table.key_columns,
                |row| {
                    rows_found += 1;
                    line.clear();
                    line.extend_from_slice(row);
                    line.push(b'\n');
                    if let Some(chunk) = chunker.push_row(&line) {
                        ids.push(BlobId(keys.content_id(&chunk.data)));
                    }
                    Ok(())
                },
            )
            .await?;
            if let Some(chunk) = chunker.finish() {
                ids.push(BlobId(keys.content_id(&chunk.data)));
            }
            let expected: Vec<BlobId> = table.chunks.iter().map(|c| c.id).collect();
            let difference = match expected.iter().zip(&ids).position(|(a, b)| a != b) {
                Some(i) => Some(format!(
                    "chunk {} of {} differs (rows from about {} on)",
                    i + 1,
                    expected.len(),
                    table.chunks[..i].iter().map(|c| c.rows).sum::<u64>() + 1
                )),
                None if expected.len() != ids.len() => Some(format!(
                    "{} chunks expected, {} found",
                    expected.len(),
                    ids.len()
                )),
                None => None,
            };
            (rows_found, difference)
        };
        verdicts.push(TableVerdict {
            table: table.name.clone(),
            rows_expected,
            rows_found,
            equal: difference.is_none() && rows_expected == rows_found,
            difference,
        });
    }
    Ok(verdicts)
}
