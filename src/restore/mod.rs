//! Restoring one database from a snapshot, to a server ([`server`]) or as a SQL script
//! ([`script`]).
//!
//! Both sides share one [`RestorePlan`]: the database's trees loaded from the repository and
//! turned into statements in a safe order: database, tables and sequences, rows, routines,
//! views (in dependency order), triggers (after the rows, so they do not fire on them), events.
//! Only that database's blobs are read, each by byte range.

pub mod script;
pub mod server;

use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::repo::index::Index;
use crate::repo::snapshot::Snapshot;
use crate::repo::tree::{ChunkRef, DatabaseTree, StoredObject, TableKind, TableTree};
use crate::sql::{column_list, quote_ident, quote_str, rename_schema, strip_definer};

/// How to rewrite what is restored.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Create the database under this name (references inside views, routines, triggers and
    /// events are rewritten).
    pub into: Option<String>,
    /// Drop `DEFINER=` clauses so objects belong to the restoring account.
    pub skip_definer: bool,
}

/// A database loaded from a snapshot, ready to be turned into statements.
#[derive(Debug)]
pub struct RestorePlan {
    pub source_name: String,
    pub target_name: String,
    pub database: DatabaseTree,
    pub tables: Vec<TableTree>,
    skip_definer: bool,
}

/// A statement and the session it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: String,
    /// For stored programs and views: the `sql_mode` and collation they were created with.
    pub sql_mode: Option<String>,
    pub collation_connection: Option<String>,
    /// Contains `;` inside (routine bodies): a script needs another delimiter around it.
    pub compound: bool,
}

impl Statement {
    fn plain(sql: String) -> Self {
        Statement {
            sql,
            sql_mode: None,
            collation_connection: None,
            compound: false,
        }
    }
}

/// One chunk of rows to load.
#[derive(Debug, Clone)]
pub struct DataItem {
    pub table: usize,
    pub chunk: ChunkRef,
}

/// Session settings for loading: no FK or unique checks while loading, zero dates and explicit
/// zero auto-increment values accepted, timestamps in UTC as they were dumped, and strict mode
/// so that a value the server would have to alter fails the restore instead of changing quietly.
pub const LOAD_SESSION: &[&str] = &[
    "SET SESSION FOREIGN_KEY_CHECKS = 0",
    "SET SESSION UNIQUE_CHECKS = 0",
    LOAD_SQL_MODE,
    "SET SESSION time_zone = '+00:00'",
];

const LOAD_SQL_MODE: &str = "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,STRICT_ALL_TABLES'";

/// Back to the loading session after an object created in its own session.
const RESET_SESSION: &[&str] = &["SET NAMES utf8mb4", LOAD_SQL_MODE];

impl RestorePlan {
    /// Load the trees of `db` from `snapshot`.
    pub async fn load(
        repo: &Repository,
        index: &Index,
        snapshot: &Snapshot,
        snapshot_label: &str,
        db: &str,
        options: &RestoreOptions,
    ) -> Result<Self> {
        let entry = snapshot.databases.iter().find(|d| d.name == db).ok_or_else(|| {
            let failed = snapshot.failed.iter().find(|f| f.name == db);
            match failed {
                Some(f) => Error::not_found(format!(
                    "database {db} failed in snapshot {snapshot_label} and has no data there: {}",
                    f.error
                ))
                .with_hint("restore it from an earlier snapshot (`coffer snapshots`)"),
                None => Error::not_found(format!("database {db} is not in snapshot {snapshot_label}"))
                    .with_hint(format!("`coffer ls {snapshot_label}` lists the databases it holds")),
            }
        })?;
        let database: DatabaseTree = repo.read_tree(index, &entry.tree).await?;
        let mut tables = Vec::with_capacity(database.tables.len());
        for table in &database.tables {
            tables.push(repo.read_tree::<TableTree>(index, &table.tree).await?);
        }
        let target_name = options.into.clone().unwrap_or_else(|| db.to_string());
        if target_name.is_empty() || target_name.chars().count() > 64 {
            return Err(Error::invalid(format!(
                "{target_name:?} is not a valid database name (1 to 64 characters)"
            )));
        }
        Ok(RestorePlan {
            source_name: db.to_string(),
            target_name,
            database,
            tables,
            skip_definer: options.skip_definer,
        })
    }

    fn rewrite(&self, sql: &str, sql_mode: Option<&str>) -> String {
        let ansi_quotes = sql_mode.is_some_and(|m| m.to_ascii_uppercase().contains("ANSI_QUOTES"));
        let renamed = rename_schema(sql, &self.source_name, &self.target_name, ansi_quotes);
        if self.skip_definer {
            strip_definer(&renamed)
        } else {
            renamed
        }
    }

    /// `CREATE DATABASE …` for the target name.
    pub fn create_database(&self, if_not_exists: bool) -> Statement {
        Statement::plain(format!(
            "CREATE DATABASE {}{} CHARACTER SET {} COLLATE {}",
            if if_not_exists { "IF NOT EXISTS " } else { "" },
            quote_ident(&self.target_name),
            self.database.charset,
            self.database.collation
        ))
    }

    /// Tables and sequences, before any row.
    pub fn table_statements(&self) -> Vec<Statement> {
        let mut out = Vec::new();
        for table in &self.tables {
            out.push(Statement::plain(table.create_sql.clone()));
            if let (TableKind::Sequence, Some(next)) = (table.kind, &table.sequence_next)
                && !next.is_empty()
                && next.chars().all(|c| c.is_ascii_digit() || c == '-')
            {
                out.push(Statement::plain(format!(
                    "SELECT SETVAL({}, {next}, 0)",
                    quote_ident(&table.name)
                )));
            }
        }
        out
    }

    /// Every data chunk, largest tables first so parallel loading ends together.
    pub fn data_items(&self) -> Vec<DataItem> {
        let mut items: Vec<DataItem> = self
            .tables
            .iter()
            .enumerate()
            .flat_map(|(i, t)| {
                t.chunks.iter().map(move |c| DataItem {
                    table: i,
                    chunk: c.clone(),
                })
            })
            .collect();
        let chunks_of = |t: usize| self.tables[t].chunks.len();
        items.sort_by_key(|item| std::cmp::Reverse(chunks_of(item.table)));
        items
    }

    /// Routines, views, triggers and events, after the rows.
    pub fn object_statements(&self) -> Vec<Statement> {
        let db = &self.database;
        let stored = |o: &StoredObject, compound: bool| Statement {
            sql: self.rewrite(&o.create_sql, o.sql_mode.as_deref()),
            sql_mode: o.sql_mode.clone(),
            collation_connection: o.collation_connection.clone(),
            compound,
        };
        let mut out = Vec::new();
        out.extend(db.routines.iter().map(|o| stored(o, true)));
        out.extend(db.views.iter().map(|o| stored(o, false)));
        out.extend(db.triggers.iter().map(|o| stored(o, true)));
        out.extend(db.events.iter().map(|o| stored(o, true)));
        out
    }

    /// Split a chunk's rows into INSERT statements of at most about `max_len` bytes.
    pub fn insert_statements(
        &self,
        table: usize,
        chunk: &[u8],
        max_len: usize,
    ) -> Result<Vec<Vec<u8>>> {
        let table = self
            .tables
            .get(table)
            .ok_or_else(|| Error::corrupt("data item names a missing table"))?;
        let head = format!(
            "INSERT INTO {} ({}) VALUES ",
            quote_ident(&table.name),
            column_list(&table.columns)
        );
        let mut out = Vec::new();
        let mut current = Vec::new();
        for row in chunk.split(|b| *b == b'\n').filter(|r| !r.is_empty()) {
            if row.first() != Some(&b'(') || row.last() != Some(&b')') {
                return Err(Error::corrupt(format!(
                    "a chunk of table {} holds a malformed row",
                    table.name
                )));
            }
            if !current.is_empty() && current.len() + row.len() + 1 > max_len {
                out.push(std::mem::take(&mut current));
            }
            if current.is_empty() {
                current.extend_from_slice(head.as_bytes());
            } else {
                current.push(b',');
            }
            current.extend_from_slice(row);
        }
        if !current.is_empty() {
            out.push(current);
        }
        Ok(out)
    }

    /// `SET` statements that undo [`RestorePlan::session_for`] after the statement ran.
    pub fn session_reset_after(statement: &Statement) -> &'static [&'static str] {
        if statement.sql_mode.is_some() || statement.collation_connection.is_some() {
            RESET_SESSION
        } else {
            &[]
        }
    }

    /// `SET` statements that put a session into an object's creation context.
    pub fn session_for(statement: &Statement) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(mode) = &statement.sql_mode {
            out.push(format!("SET SESSION sql_mode = {}", quote_str(mode)));
        }
        if let Some(collation) = &statement.collation_connection {
            out.push(format!(
                "SET SESSION collation_connection = {}",
                quote_str(collation)
            ));
        }
        out
    }
}
