//! How the rows of one table matching a `--where` looked in each snapshot, and what changed
//! between consecutive snapshots, so support can pick the point to restore from.
//!
//! As for a rows restore ([`super::matching`]), the server decides which rows match: each
//! candidate chunk is loaded alone into a copy of the table (as it was defined in that
//! snapshot) in a staging database and the rows for which the expression is not true are
//! deleted. Snapshots share chunks, so every distinct chunk (per table definition) is read and
//! evaluated once, whatever the number of snapshots. Rows are matched across snapshots by the
//! key the table is sorted by (primary key, else a unique key); a table without one is
//! compared by whole rows (added and removed only).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use jiff::Timestamp;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::RestorePlan;
use super::matching::{create_copy, keep_matching};
use super::pin::{ChunkChoice, candidate_chunks};
use super::rows::value_spans;
use super::staging::{
    create_staging, drop_staging, exec, load_limits, prepare_session, random_tag,
};
use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::repo::ids::{BlobId, SnapshotId};
use crate::repo::index::Index;
use crate::repo::snapshot::Snapshot;
use crate::repo::tree::{DatabaseTree, TableTree};
use crate::source::mysql::dump::rows_as_text;
use crate::source::mysql::{MysqlTarget, mysql_error};
use crate::sql::qualified;

/// What a row was in one snapshot, compared with the snapshot before.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    /// In the first snapshot shown.
    Present,
    Added,
    Changed,
    Unchanged,
    Removed,
}

/// One matching row (or one that no longer matches or exists: `Removed`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RowState {
    pub status: RowStatus,
    /// Column name → SQL literal, for the key columns.
    pub key: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed_columns: Vec<String>,
    /// Column name → SQL literal, as stored (for `Removed`: as it was before).
    pub values: BTreeMap<String, String>,
}

/// The matching rows of one snapshot.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotRows {
    pub snapshot: String,
    pub time: Timestamp,
    /// Whether the table existed in that snapshot.
    pub table_present: bool,
    pub rows: Vec<RowState>,
}

/// What the history cost.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct HistoryStats {
    pub snapshots: usize,
    /// Chunk references over all snapshots that could hold matching rows.
    pub chunk_references: usize,
    /// Distinct chunks read and evaluated.
    pub chunks_evaluated: usize,
    pub pinned: bool,
}

/// One snapshot holding the database: its id, time, and (database tree, table tree) if the
/// table is in it.
struct SnapshotTable {
    label: String,
    time: Timestamp,
    trees: Option<(BlobId, BlobId)>,
}

/// The rows of a snapshot in key order: (key literals, literals of every column).
type RowsByKey = Vec<(Vec<String>, Vec<String>)>;

/// The history of the rows of `table` in `database` matching `expression`, over `snapshots`
/// (oldest first).
pub async fn table_history(
    repo: &Arc<Repository>,
    index: &Index,
    snapshots: &[(SnapshotId, Snapshot)],
    target: &MysqlTarget,
    database: &str,
    table: &str,
    expression: &str,
) -> Result<(Vec<SnapshotRows>, HistoryStats)> {
    if expression.trim().is_empty() {
        return Err(Error::invalid("the --where expression is empty")
            .with_hint("give a condition such as \"id IN (4, 7)\""));
    }
    // The table's tree in each snapshot (trees and database trees are shared between
    // snapshots; each is read once).
    let mut database_trees: HashMap<BlobId, DatabaseTree> = HashMap::new();
    let mut table_trees: HashMap<BlobId, TableTree> = HashMap::new();
    let mut per_snapshot: Vec<SnapshotTable> = Vec::new();
    for (id, snapshot) in snapshots {
        let Some(entry) = snapshot.databases.iter().find(|d| d.name == database) else {
            continue;
        };
        if let std::collections::hash_map::Entry::Vacant(vacant) = database_trees.entry(entry.tree)
        {
            vacant.insert(repo.read_tree(index, &entry.tree).await?);
        }
        let table_ref = database_trees[&entry.tree]
            .tables
            .iter()
            .find(|t| t.name == table)
            .map(|t| t.tree);
        if let Some(tree_id) = table_ref
            && !table_trees.contains_key(&tree_id)
        {
            let tree: TableTree = repo.read_tree(index, &tree_id).await?;
            table_trees.insert(tree_id, tree);
        }
        per_snapshot.push(SnapshotTable {
            label: id.to_string(),
            time: snapshot.time,
            trees: table_ref.map(|t| (entry.tree, t)),
        });
    }
    if per_snapshot.is_empty() {
        return Err(
            Error::not_found(format!("no snapshot holds database {database}"))
                .with_hint("`coffer snapshots` lists them; check --since/--until"),
        );
    }
    if table_trees.is_empty() {
        return Err(Error::not_found(format!(
            "table {table} is in no snapshot of database {database}"
        ))
        .with_hint(format!("`coffer ls --db {database}` lists its tables")));
    }

    let mut conn = target.connect().await?;
    let tag = random_tag()?;
    let any_database = database_trees
        .values()
        .next()
        .cloned()
        .ok_or_else(|| Error::not_found("no database tree"))?;
    let any_table = table_trees
        .values()
        .next()
        .cloned()
        .ok_or_else(|| Error::not_found("no table tree"))?;
    // The chunks that can hold matching rows, per table tree (shared by many snapshots).
    let choices: HashMap<BlobId, ChunkChoice> = table_trees
        .iter()
        .map(|(id, tree)| (*id, candidate_chunks(tree, expression)))
        .collect();
    let staging_plan = RestorePlan::for_table(any_database, any_table, "coffer_history", &tag)?;
    let staging = create_staging(&mut conn, &staging_plan, &tag).await?;
    let evaluated = evaluate(
        repo,
        index,
        &mut conn,
        &staging,
        &per_snapshot,
        &database_trees,
        &table_trees,
        &choices,
        expression,
    )
    .await;
    drop_staging(&mut conn, &staging).await;
    let (matches, mut stats) = evaluated?;
    stats.snapshots = per_snapshot.len();

    // Per snapshot: the union of its chunks' matching rows, compared with the previous one.
    let mut out = Vec::with_capacity(per_snapshot.len());
    let mut previous: Option<(RowsByKey, Vec<String>)> = None;
    for SnapshotTable {
        label: id,
        time,
        trees,
    } in &per_snapshot
    {
        let Some((_, tree_id)) = trees else {
            // The table did not exist: every row shown before is gone.
            let rows = previous
                .take()
                .map(|(rows, columns)| removed_rows(&rows, &columns, &[]))
                .unwrap_or_default();
            out.push(SnapshotRows {
                snapshot: id.clone(),
                time: *time,
                table_present: false,
                rows,
            });
            continue;
        };
        let tree = &table_trees[tree_id];
        let key_positions = key_positions(tree);
        let mut current: RowsByKey = Vec::new();
        for &chunk in &choices[tree_id].chunks {
            let Some(rows) = matches.get(&(tree.chunks[chunk].id, tree.create_sql.clone())) else {
                continue;
            };
            for values in rows {
                let key = match &key_positions {
                    Some(positions) => positions.iter().map(|&p| values[p].clone()).collect(),
                    None => values.clone(),
                };
                current.push((key, values.clone()));
            }
        }
        let rows = compare(previous.as_ref(), &current, tree, &key_positions);
        out.push(SnapshotRows {
            snapshot: id.clone(),
            time: *time,
            table_present: true,
            rows,
        });
        previous = Some((current, tree.columns.clone()));
    }
    Ok((out, stats))
}

/// Positions of the key columns in the row, or `None` for a table without a key.
fn key_positions(tree: &TableTree) -> Option<Vec<usize>> {
    if tree.key_columns.is_empty() {
        return None;
    }
    tree.key_columns
        .iter()
        .map(|k| tree.columns.iter().position(|c| c == k))
        .collect()
}

fn named(columns: &[String], values: &[String]) -> BTreeMap<String, String> {
    columns
        .iter()
        .cloned()
        .zip(values.iter().cloned())
        .collect()
}

fn key_map(tree_keys: &[String], key: &[String], columns: &[String]) -> BTreeMap<String, String> {
    if tree_keys.is_empty() {
        return named(columns, key);
    }
    named(tree_keys, key)
}

fn removed_rows(rows: &RowsByKey, columns: &[String], keys: &[String]) -> Vec<RowState> {
    rows.iter()
        .map(|(key, values)| RowState {
            status: RowStatus::Removed,
            key: key_map(keys, key, columns),
            changed_columns: Vec::new(),
            values: named(columns, values),
        })
        .collect()
}

fn compare(
    previous: Option<&(RowsByKey, Vec<String>)>,
    current: &RowsByKey,
    tree: &TableTree,
    key_positions: &Option<Vec<usize>>,
) -> Vec<RowState> {
    let keys = if key_positions.is_some() {
        tree.key_columns.clone()
    } else {
        Vec::new()
    };
    let mut rows = Vec::new();
    let before_by_key: HashMap<&Vec<String>, &Vec<String>> = previous
        .map(|(before, _)| before.iter().map(|(k, v)| (k, v)).collect())
        .unwrap_or_default();
    let current_keys: std::collections::HashSet<&Vec<String>> =
        current.iter().map(|(k, _)| k).collect();
    for (key, values) in current {
        let (status, changed_columns) = match previous {
            None => (RowStatus::Present, Vec::new()),
            Some((_, before_columns)) => match before_by_key.get(key) {
                None => (RowStatus::Added, Vec::new()),
                Some(old) => {
                    let old = named(before_columns, old);
                    let changed: Vec<String> = tree
                        .columns
                        .iter()
                        .zip(values)
                        .filter(|(c, v)| old.get(*c) != Some(*v))
                        .map(|(c, _)| c.clone())
                        .chain(
                            before_columns
                                .iter()
                                .filter(|c| !tree.columns.contains(c))
                                .cloned(),
                        )
                        .collect();
                    if changed.is_empty() {
                        (RowStatus::Unchanged, changed)
                    } else {
                        (RowStatus::Changed, changed)
                    }
                }
            },
        };
        rows.push(RowState {
            status,
            key: key_map(&keys, key, &tree.columns),
            changed_columns,
            values: named(&tree.columns, values),
        });
    }
    if let Some((before, before_columns)) = previous {
        let gone: RowsByKey = before
            .iter()
            .filter(|(k, _)| !current_keys.contains(k))
            .cloned()
            .collect();
        rows.extend(removed_rows(&gone, before_columns, &keys));
    }
    rows
}

/// The matching rows of every distinct candidate chunk, keyed by (chunk, table definition).
type Matches = HashMap<(BlobId, String), Vec<Vec<String>>>;

#[allow(clippy::too_many_arguments)]
async fn evaluate(
    repo: &Arc<Repository>,
    index: &Index,
    conn: &mut Conn,
    staging: &str,
    per_snapshot: &[SnapshotTable],
    database_trees: &HashMap<BlobId, DatabaseTree>,
    table_trees: &HashMap<BlobId, TableTree>,
    choices: &HashMap<BlobId, ChunkChoice>,
    expression: &str,
) -> Result<(Matches, HistoryStats)> {
    prepare_session(conn, staging).await?;
    let limits = load_limits(conn).await?;
    let mut matches: Matches = HashMap::new();
    let mut stats = HistoryStats {
        pinned: true,
        ..HistoryStats::default()
    };
    // One staged table (and plan) per distinct definition.
    let mut staged: HashMap<String, (String, RestorePlan, String)> = HashMap::new();
    for SnapshotTable { label, trees, .. } in per_snapshot {
        let Some((database_tree, tree_id)) = trees else {
            continue;
        };
        let tree = &table_trees[tree_id];
        let choice = &choices[tree_id];
        stats.pinned &= choice.pinned;
        stats.chunk_references += choice.chunks.len();
        if !staged.contains_key(&tree.create_sql) {
            let name = format!("coffer_history_{}", staged.len());
            let plan = RestorePlan::for_table(
                database_trees[database_tree].clone(),
                tree.clone(),
                &name,
                &label[..label.len().min(8)],
            )?;
            let (_, condition) = create_copy(conn, &plan, staging, expression).await?;
            staged.insert(tree.create_sql.clone(), (name, plan, condition));
        }
        let (name, plan, condition) = &staged[&tree.create_sql];
        let table = qualified(staging, name);
        for &chunk in &choice.chunks {
            let chunk_ref = &tree.chunks[chunk];
            let cache_key = (chunk_ref.id, tree.create_sql.clone());
            if matches.contains_key(&cache_key) {
                continue;
            }
            let data = repo.read_blob(index, &chunk_ref.id).await?;
            exec(
                conn,
                &format!("TRUNCATE TABLE {table}"),
                "emptying the staged table",
            )
            .await?;
            exec(conn, "SET NAMES binary", "switching to binary input").await?;
            for insert in plan.insert_statements(0, &data, &limits)? {
                conn.query_drop(insert)
                    .await
                    .map_err(|e| mysql_error(e, &format!("loading a chunk of {}", tree.name)))?;
            }
            exec(conn, "SET NAMES utf8mb4", "switching back to text input").await?;
            keep_matching(conn, &table, condition).await?;
            let rows = rows_as_text(conn, staging, name, &tree.columns, &tree.key_columns).await?;
            let mut parsed = Vec::with_capacity(rows.len());
            for row in rows {
                let spans = value_spans(&row).map_err(|why| {
                    Error::corrupt(format!(
                        "a row read back from the staged {} is not a row: {why}",
                        tree.name
                    ))
                })?;
                parsed.push(
                    spans
                        .into_iter()
                        .map(|s| String::from_utf8_lossy(&row[s]).into_owned())
                        .collect(),
                );
            }
            matches.insert(cache_key, parsed);
            stats.chunks_evaluated += 1;
        }
    }
    Ok((matches, stats))
}
