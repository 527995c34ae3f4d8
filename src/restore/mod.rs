//! Restoring one database from a snapshot, to a server ([`server`]) or as a SQL script
//! ([`script`]).
//!
//! Both sides share one [`RestorePlan`]: the database's trees loaded from the repository and
//! turned into statements in a safe order: database, tables and sequences, rows, routines,
//! views (in dependency order), triggers (after the rows, so they do not fire on them), events.
//! Only that database's blobs are read, each by byte range.

pub mod accounts;
pub mod compat;
pub mod estate;
pub mod history;
pub mod matching;
pub mod pin;
pub mod rows;
pub mod script;
pub mod server;
pub mod staged;
mod staging;
pub mod statements;
pub mod tables;
pub mod verify;

use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::repo::index::Index;
use crate::repo::snapshot::Snapshot;
use crate::repo::tree::{ChunkRef, DatabaseTree, StoredObject, TableKind, TableTree};
use crate::sql::{
    QuoteRules, check_session_value, column_list, quote_ident, quote_str, rename_created_table,
    rename_schema, split_foreign_keys, strip_definer,
};
use statements::{CreateKind, check_create};

/// How to rewrite what is restored.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Create the database under this name (references inside views, routines, triggers and
    /// events are rewritten).
    pub into: Option<String>,
    /// Drop `DEFINER=` clauses so objects belong to the restoring account.
    pub skip_definer: bool,
    /// Keep `DEFINER=` clauses even from a snapshot no full key is proven to have written
    /// (the operator's consent: such a definer was chosen by whoever held a write-only key).
    pub keep_definer: bool,
}

/// Whose account the restored views, routines, triggers and events run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Definers {
    /// As stored: their `DEFINER=` clauses are kept.
    Kept,
    /// The restoring account's: `DEFINER=` clauses are removed, for this reason.
    Replaced(String),
}

impl Definers {
    /// For the audit log and messages.
    pub fn describe(&self) -> String {
        match self {
            Definers::Kept => "kept as stored".to_string(),
            Definers::Replaced(why) => format!("replaced by the restoring account: {why}"),
        }
    }

    /// The policy for a snapshot `written_by` that, with the operator's flags: a definer runs
    /// code as another account, so one chosen by a write-only key (or by an unknown writer) is
    /// kept only with `--keep-definer`.
    pub fn decide(written_by: &crate::repo::snapshot::WrittenBy, options: &RestoreOptions) -> Self {
        if options.skip_definer {
            return Definers::Replaced("--skip-definer was given".into());
        }
        if written_by.is_full_key() || options.keep_definer {
            return Definers::Kept;
        }
        Definers::Replaced(format!(
            "the snapshot was not written by a full key ({}): its definers could have been chosen by whoever holds a write-only key (--keep-definer keeps them)",
            written_by.describe()
        ))
    }
}

/// A database loaded from a snapshot, ready to be turned into statements.
#[derive(Debug, Clone)]
pub struct RestorePlan {
    pub source_name: String,
    pub target_name: String,
    pub database: DatabaseTree,
    /// The tables restored: all of the database's, or those [`RestorePlan::select_tables`] chose.
    pub tables: Vec<TableTree>,
    /// The name each of `tables` is created under (`--into-table` renames one).
    pub table_targets: Vec<String>,
    pub scope: RestoreScope,
    /// Whose account the objects run as; with [`Definers::Replaced`], `database`'s objects no
    /// longer hold `DEFINER=` clauses (removed at load).
    definers: Definers,
    snapshot_label: String,
    /// `VERSION()` of the server the snapshot was taken from ("" when not known): a restore
    /// into another kind is checked first ([`compat`]).
    pub source_version: String,
}

/// What a plan restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreScope {
    /// The whole database: tables, rows, views, routines, triggers, events.
    Database,
    /// Some tables with their rows, foreign keys and triggers; a `renamed` table gets neither
    /// foreign keys nor triggers, whose names its original keeps in the database.
    Tables { renamed: bool },
}

/// A statement and the session it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: String,
    /// For stored programs and views: the `sql_mode` and collation they were created with.
    pub sql_mode: Option<String>,
    pub collation_connection: Option<String>,
    /// For events: the time zone their schedule was written in.
    pub time_zone: Option<String>,
    /// The stored object it creates, if it creates one.
    pub object: Option<(crate::repo::tree::ObjectKind, String)>,
}

impl Statement {
    /// The statement creating `object`, with the session it was created in.
    pub fn for_object(object: &StoredObject, sql: String) -> Self {
        Statement {
            sql,
            sql_mode: object.sql_mode.clone(),
            collation_connection: object.collation_connection.clone(),
            time_zone: object.time_zone.clone(),
            object: Some((object.kind, object.name.clone())),
        }
    }

    /// A stored program (routine, trigger, event), whose body may contain `;`: a script needs
    /// another delimiter around it.
    pub fn is_compound(&self) -> bool {
        matches!(&self.object, Some((kind, _)) if *kind != crate::repo::tree::ObjectKind::View)
    }

    pub(crate) fn plain(sql: String) -> Self {
        Statement {
            sql,
            sql_mode: None,
            collation_connection: None,
            time_zone: None,
            object: None,
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
    LOAD_TIME_ZONE,
];

/// Rows hold timestamps as UTC, as they were dumped.
const LOAD_TIME_ZONE: &str = "SET SESSION time_zone = '+00:00'";

const LOAD_SQL_MODE: &str = "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,STRICT_ALL_TABLES'";

/// Back to the loading session after an object created in its own session.
const RESET_SESSION: &[&str] = &["SET NAMES utf8mb4", LOAD_SQL_MODE, LOAD_TIME_ZONE];

/// How large the statements of a load may be.
#[derive(Debug, Clone, Copy)]
pub struct LoadLimits {
    /// Largest statement sent (below the target's `max_allowed_packet`).
    pub statement: usize,
    /// Largest single value the target can hold: its `max_allowed_packet`, which also bounds
    /// the strings `CONCAT` builds.
    pub value: usize,
}

/// User variables that carry large values into an INSERT.
const VALUE_VARIABLE: &str = "@coffer_value_";

/// Statements that insert one row too large for a single statement: its largest values are
/// built in user variables from hex pieces that each fit a statement, then the row is inserted
/// with the variables in their place, then the variables are cleared. The session's character
/// set is binary, so a variable holds exactly the bytes of the literal it replaces; values
/// written with `_utf8mb4` (JSON, which refuses binary strings) are converted back.
fn large_row_statements(
    table: &TableTree,
    head: &str,
    row: &[u8],
    spans: &[std::ops::Range<usize>],
    limits: &LoadLimits,
) -> Result<Vec<Vec<u8>>> {
    let mut by_size: Vec<usize> = (0..spans.len()).collect();
    by_size.sort_by_key(|&i| std::cmp::Reverse(spans[i].len()));
    let mut in_variable = vec![false; spans.len()];
    let mut row_len = head.len() + row.len();
    // Reserve room for the variable references that replace the moved values.
    let reference_len = VALUE_VARIABLE.len() + 40;
    for &i in &by_size {
        // Values no longer than their reference gain nothing in a variable (and NULL must stay
        // NULL, not become the string 'NULL'); sorted by size, so none after this one would.
        if row_len <= limits.statement || spans[i].len() <= reference_len {
            break;
        }
        in_variable[i] = true;
        row_len = row_len - spans[i].len() + reference_len;
    }
    if row_len > limits.statement {
        return Err(Error::invalid(format!(
            "a row of table {} has too many values to fit a {}-byte statement",
            table.name, limits.statement
        ))
        .with_hint("raise max_allowed_packet on the target server"));
    }
    // Hex doubles the bytes; leave room for the statement around the piece.
    let piece = (limits.statement.saturating_sub(128) / 2).max(1);
    let mut out = Vec::new();
    let mut values: Vec<Vec<u8>> = Vec::with_capacity(spans.len());
    for (i, span) in spans.iter().enumerate() {
        let text = &row[span.clone()];
        if !in_variable[i] {
            values.push(text.to_vec());
            continue;
        }
        let literal = rows::literal(text);
        let bytes = rows::decode(literal);
        if bytes.len() > limits.value {
            return Err(Error::invalid(format!(
                "column {} of a row of table {} holds {} bytes, more than the target server's max_allowed_packet ({} bytes) lets it store",
                table.columns.get(i).map_or("?", String::as_str),
                table.name,
                bytes.len(),
                limits.value
            ))
            .with_hint(format!(
                "raise max_allowed_packet on the target server to at least {} (SET GLOBAL max_allowed_packet, or the server parameter on Azure) and restore again",
                bytes.len().next_multiple_of(1024)
            )));
        }
        let variable = format!("{VALUE_VARIABLE}{i}");
        let mut first = true;
        for part in bytes
            .chunks(piece)
            .chain(bytes.is_empty().then_some(&[][..]))
        {
            let mut statement = if first {
                format!("SET {variable} = ").into_bytes()
            } else {
                format!("SET {variable} = CONCAT({variable}, ").into_bytes()
            };
            crate::sql::push_hex(&mut statement, part);
            if !first {
                statement.push(b')');
            }
            out.push(statement);
            first = false;
        }
        let utf8mb4 = matches!(literal, rows::Literal::Quoted { utf8mb4: true, .. });
        values.push(if utf8mb4 {
            format!("CONVERT({variable} USING utf8mb4)").into_bytes()
        } else {
            variable.into_bytes()
        });
    }
    let mut insert = head.as_bytes().to_vec();
    insert.push(b'(');
    insert.extend_from_slice(&values.join(&b","[..]));
    insert.push(b')');
    out.push(insert);
    for (i, moved) in in_variable.iter().enumerate() {
        if *moved {
            out.push(format!("SET {VALUE_VARIABLE}{i} = NULL").into_bytes());
        }
    }
    Ok(out)
}

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
        let written_by = repo.written_by(snapshot);
        Self::load_written_by(
            repo,
            index,
            snapshot,
            &written_by,
            snapshot_label,
            db,
            options,
        )
        .await
    }

    /// [`RestorePlan::load`] with who wrote `snapshot` already known: checking a snapshot's
    /// mark reads all of it, which an estate restore does once per snapshot, not once for each
    /// of its thousands of databases.
    pub async fn load_written_by(
        repo: &Repository,
        index: &Index,
        snapshot: &Snapshot,
        written_by: &crate::repo::snapshot::WrittenBy,
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
        let definers = Definers::decide(written_by, options);
        let target_name = options.into.clone().unwrap_or_else(|| db.to_string());
        if target_name.is_empty() || target_name.chars().count() > 64 {
            return Err(Error::invalid(format!(
                "{target_name:?} is not a valid database name (1 to 64 characters)"
            )));
        }
        let mut plan = RestorePlan {
            source_name: db.to_string(),
            target_name,
            database,
            table_targets: tables.iter().map(|t| t.name.clone()).collect(),
            tables,
            scope: RestoreScope::Database,
            definers,
            snapshot_label: snapshot_label.to_string(),
            source_version: snapshot.source.server_version.clone(),
        };
        plan.prepare_statements().map_err(|why| {
            Error::corrupt(format!(
                "database {db} in snapshot {snapshot_label}: {why}; nothing was restored"
            ))
            .with_hint(
                "coffer never stores such a statement: someone with the repository key wrote it. \
                 Restore from another snapshot and find out who can write to the repository",
            )
        })?;
        Ok(plan)
    }

    /// A plan of the single table `table` of `database`, created under `created_as` (for
    /// reading rows back without restoring: `history`). Stored statements are checked as in
    /// [`RestorePlan::load`].
    pub fn for_table(
        database: DatabaseTree,
        table: TableTree,
        created_as: &str,
        snapshot_label: &str,
    ) -> Result<Self> {
        let mut plan = RestorePlan {
            source_name: database.name.clone(),
            target_name: database.name.clone(),
            table_targets: vec![table.name.clone()],
            tables: vec![table],
            database,
            scope: RestoreScope::Database,
            definers: Definers::Replaced("rows are only read back".into()),
            snapshot_label: snapshot_label.to_string(),
            source_version: String::new(),
        };
        plan.prepare_statements().map_err(|why| {
            Error::corrupt(format!(
                "database {} in snapshot {snapshot_label}: {why}",
                plan.source_name
            ))
        })?;
        let name = plan.tables[0].name.clone();
        plan.select_tables(&[name], Some(created_as))?;
        Ok(plan)
    }

    /// Whose account the restored objects run as.
    pub fn definers(&self) -> &Definers {
        &self.definers
    }

    /// Check every stored statement ([`RestorePlan::check_statements`]) and, when definers
    /// are replaced, take the `DEFINER=` clauses out of the objects (a clause that cannot be
    /// taken out refuses the restore).
    fn prepare_statements(&mut self) -> std::result::Result<(), String> {
        self.check_statements()?;
        if let Definers::Replaced(_) = self.definers {
            for object in self.database.objects_mut() {
                let rules = QuoteRules::of_sql_mode(object.sql_mode.as_deref());
                object.create_sql = strip_definer(&object.create_sql, rules).map_err(|why| {
                    format!(
                        "the stored definition of {} {} is refused: {why}",
                        object.kind.keyword().to_lowercase(),
                        object.name
                    )
                })?;
            }
        }
        Ok(())
    }

    /// Refuse any stored statement that is not the single `CREATE` its tree claims, in the
    /// database being restored (see [`statements`]), read in the session it runs in, session
    /// values that are not plain names, and charset names that are not names.
    fn check_statements(&self) -> std::result::Result<(), String> {
        for name in [&self.database.charset, &self.database.collation] {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!(
                    "the character set or collation {name:?} is not a name"
                ));
            }
        }
        for table in &self.tables {
            let kind = match table.kind {
                TableKind::Base => CreateKind::Table,
                TableKind::Sequence => CreateKind::Sequence,
            };
            check_create(
                &table.create_sql,
                kind,
                &table.name,
                &self.target_name,
                QuoteRules::default(),
            )
            .map_err(|why| {
                format!(
                    "the stored definition of table {} is refused: {why}",
                    table.name
                )
            })?;
            if table.columns.is_empty() && table.kind == TableKind::Base && !table.chunks.is_empty()
            {
                return Err(format!("table {} has rows but no columns", table.name));
            }
        }
        for object in self.database.objects() {
            let refused = |why: String| {
                format!(
                    "the stored definition of {} {} is refused: {why}",
                    object.kind.keyword().to_lowercase(),
                    object.name
                )
            };
            for (field, value) in [
                ("sql_mode", &object.sql_mode),
                ("character_set_client", &object.character_set_client),
                ("collation_connection", &object.collation_connection),
                ("time_zone", &object.time_zone),
            ] {
                if let Some(value) = value {
                    check_session_value(field, value).map_err(refused)?;
                }
            }
            let sql = self.rewrite(
                &object.create_sql,
                object.sql_mode.as_deref(),
                &self.target_name,
            );
            check_create(
                &sql,
                CreateKind::Object(object.kind),
                &object.name,
                &self.target_name,
                QuoteRules::of_sql_mode(object.sql_mode.as_deref()),
            )
            .map_err(refused)?;
        }
        Ok(())
    }

    /// Narrow the plan to the tables `names` (in that order), the first created as `rename`
    /// when given (only with a single table). A name the snapshot does not hold is an error
    /// that lists the tables it does.
    pub fn select_tables(&mut self, names: &[String], rename: Option<&str>) -> Result<()> {
        if rename.is_some() && names.len() != 1 {
            return Err(Error::invalid("--into-table renames a single table")
                .with_hint("give exactly one --table with --into-table"));
        }
        if let Some(new) = rename
            && (new.is_empty() || new.chars().count() > 64)
        {
            return Err(Error::invalid(format!(
                "{new:?} is not a valid table name (1 to 64 characters)"
            )));
        }
        let mut chosen = Vec::with_capacity(names.len());
        for name in names {
            let Some(table) = self.tables.iter().find(|t| &t.name == name) else {
                let mut held: Vec<&str> = self.tables.iter().map(|t| t.name.as_str()).collect();
                held.sort_unstable();
                let similar = held.iter().find(|h| h.eq_ignore_ascii_case(name));
                let listed = if held.len() > 20 {
                    format!("{}, … ({} in all)", held[..20].join(", "), held.len())
                } else {
                    held.join(", ")
                };
                return Err(Error::not_found(format!(
                    "table {name} is not in database {} of snapshot {}",
                    self.source_name, self.snapshot_label
                ))
                .with_hint(match similar {
                    Some(s) => format!("did you mean {s}? Table names are compared exactly"),
                    None if held.is_empty() => "the database held no tables then".to_string(),
                    None => format!("it holds: {listed}"),
                }));
            };
            if !chosen.iter().any(|t: &TableTree| &t.name == name) {
                chosen.push(table.clone());
            }
        }
        self.table_targets = chosen
            .iter()
            .map(|t| rename.map_or_else(|| t.name.clone(), str::to_string))
            .collect();
        self.tables = chosen;
        self.scope = RestoreScope::Tables {
            renamed: rename.is_some_and(|r| r != names[0]),
        };
        Ok(())
    }

    /// The stored objects this plan creates: all of them for a database; for tables, their
    /// triggers (none for a renamed table).
    fn objects_in_scope(&self) -> impl Iterator<Item = &StoredObject> {
        self.database.objects().filter(move |o| match self.scope {
            RestoreScope::Database => true,
            RestoreScope::Tables { renamed: true } => false,
            RestoreScope::Tables { renamed: false } => {
                o.kind == crate::repo::tree::ObjectKind::Trigger
                    && statements::trigger_table(&o.create_sql)
                        .is_some_and(|t| self.tables.iter().any(|table| table.name == t))
            }
        })
    }

    /// A stored object's statement for creating it in database `into` (its definer already
    /// decided at load).
    fn rewrite(&self, sql: &str, sql_mode: Option<&str>, into: &str) -> String {
        rename_schema(
            sql,
            &self.source_name,
            into,
            QuoteRules::of_sql_mode(sql_mode),
        )
    }

    /// `CREATE DATABASE …` for the target name.
    pub fn create_database(&self, if_not_exists: bool) -> Statement {
        self.create_database_named(&self.target_name, if_not_exists)
    }

    /// `CREATE DATABASE …` with the snapshot's character set and collation (names checked at
    /// load) under any name.
    pub fn create_database_named(&self, name: &str, if_not_exists: bool) -> Statement {
        Statement::plain(format!(
            "CREATE DATABASE {}{} CHARACTER SET {} COLLATE {}",
            if if_not_exists { "IF NOT EXISTS " } else { "" },
            quote_ident(name),
            self.database.charset,
            self.database.collation
        ))
    }

    /// Tables and sequences, before any row.
    pub fn table_statements(&self) -> Vec<Statement> {
        let mut out = Vec::new();
        for (table, name) in self.tables.iter().zip(&self.table_targets) {
            out.push(Statement::plain(self.create_table_sql(table, name)));
            if let (TableKind::Sequence, Some(next)) = (table.kind, &table.sequence_next)
                && !next.is_empty()
                && next.chars().all(|c| c.is_ascii_digit() || c == '-')
            {
                out.push(Statement::plain(format!(
                    "SELECT SETVAL({}, {next}, 0)",
                    quote_ident(name)
                )));
            }
        }
        out
    }

    /// A table's stored `CREATE` statement, creating it as `name` (a renamed copy without
    /// foreign keys).
    pub fn create_table_sql(&self, table: &TableTree, name: &str) -> String {
        if table.name == name {
            return table.create_sql.clone();
        }
        // Checked at load to be a CREATE of the table's name, so the first quoted name is it.
        let renamed = rename_created_table(&table.create_sql, name)
            .unwrap_or_else(|| table.create_sql.clone());
        // A renamed copy sits beside its original, whose foreign key names it would repeat.
        split_foreign_keys(&renamed).0
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

    /// [`RestorePlan::data_items`] in the order `stripes` loaders should take them: each table's
    /// chunks dealt out from `stripes` evenly spaced points of its key range, so that loaders
    /// working on one table at once append to different parts of its B-tree instead of all
    /// contending for its last page.
    pub fn data_items_striped(&self, stripes: usize) -> Vec<DataItem> {
        let stripes = stripes.max(1);
        let mut out = Vec::new();
        for item_group in self.data_items().chunk_by(|a, b| a.table == b.table) {
            let n = item_group.len();
            let per = n.div_ceil(stripes);
            for offset in 0..per {
                for stripe in 0..stripes {
                    if let Some(item) = item_group.get(stripe * per + offset) {
                        out.push(item.clone());
                    }
                }
            }
        }
        out
    }

    /// Routines, views, triggers and events, after the rows.
    pub fn object_statements(&self) -> Vec<Statement> {
        self.object_statements_in(&self.target_name)
    }

    /// Routines, views, triggers and events, for creating them in database `into`.
    pub fn object_statements_in(&self, into: &str) -> Vec<Statement> {
        self.objects_in_scope()
            .map(|o| {
                let sql = self.rewrite(&o.create_sql, o.sql_mode.as_deref(), into);
                Statement::for_object(o, sql)
            })
            .collect()
    }

    /// Turn a chunk's rows into statements of at most `limits.statement` bytes: multi-row
    /// INSERTs, and for a row too large for one statement, its large values assembled in user
    /// variables piece by piece first. Every row is parsed ([`rows::value_spans`]): a chunk
    /// that is not rows of literals for this table's columns is refused as damaged.
    pub fn insert_statements(
        &self,
        table: usize,
        chunk: &[u8],
        limits: &LoadLimits,
    ) -> Result<Vec<Vec<u8>>> {
        self.insert_statements_into(table, chunk, limits, None)
    }

    /// [`RestorePlan::insert_statements`] naming the table qualified with `database` when given.
    pub fn insert_statements_into(
        &self,
        table: usize,
        chunk: &[u8],
        limits: &LoadLimits,
        database: Option<&str>,
    ) -> Result<Vec<Vec<u8>>> {
        let (Some(table), Some(name)) = (self.tables.get(table), self.table_targets.get(table))
        else {
            return Err(Error::corrupt("data item names a missing table"));
        };
        let head = format!(
            "INSERT INTO {} ({}) VALUES ",
            match database {
                Some(db) => crate::sql::qualified(db, name),
                None => quote_ident(name),
            },
            column_list(&table.columns)
        );
        let mut out = Vec::new();
        let mut current = Vec::new();
        for (number, row) in chunk
            .split(|b| *b == b'\n')
            .filter(|r| !r.is_empty())
            .enumerate()
        {
            let spans = rows::value_spans(row).map_err(|why| {
                Error::corrupt(format!(
                    "row {} of a chunk of table {} is damaged: {why}",
                    number + 1,
                    table.name
                ))
                .with_hint("run `coffer check --read-data`; restore from another snapshot")
            })?;
            if spans.len() != table.columns.len() {
                return Err(Error::corrupt(format!(
                    "row {} of a chunk of table {} has {} values for {} columns",
                    number + 1,
                    table.name,
                    spans.len(),
                    table.columns.len()
                )));
            }
            if head.len() + row.len() > limits.statement {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
                out.extend(large_row_statements(table, &head, row, &spans, limits)?);
                continue;
            }
            if !current.is_empty() && current.len() + row.len() + 1 > limits.statement {
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
        if statement.sql_mode.is_some()
            || statement.collation_connection.is_some()
            || statement.time_zone.is_some()
        {
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
        if let Some(zone) = &statement.time_zone {
            out.push(format!("SET SESSION time_zone = {}", quote_str(zone)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loaders_start_on_evenly_spaced_chunks_of_a_table() {
        let mut t = table(1);
        t.chunks = (0..8)
            .map(|i| ChunkRef {
                id: crate::repo::ids::BlobId([i; 32]),
                rows: 1,
                first_key: None,
            })
            .collect();
        let plan = plan_of(Vec::new(), vec![t], Definers::Kept);
        let order = |stripes| {
            plan.data_items_striped(stripes)
                .iter()
                .map(|i| i.chunk.id.0[0])
                .collect::<Vec<_>>()
        };
        assert_eq!(order(4), [0, 2, 4, 6, 1, 3, 5, 7]);
        assert_eq!(order(3), [0, 3, 6, 1, 4, 7, 2, 5]);
        assert_eq!(order(1), [0, 1, 2, 3, 4, 5, 6, 7]);
    }

    /// A plan of database `d` with `events` and `tables` (each restored under its own name).
    fn plan_of(
        events: Vec<StoredObject>,
        tables: Vec<TableTree>,
        definers: Definers,
    ) -> RestorePlan {
        RestorePlan {
            source_name: "d".into(),
            target_name: "d".into(),
            database: DatabaseTree {
                version: 1,
                name: "d".into(),
                charset: "utf8mb4".into(),
                collation: "utf8mb4_bin".into(),
                tables: Vec::new(),
                views: Vec::new(),
                routines: Vec::new(),
                triggers: Vec::new(),
                events,
                warnings: Vec::new(),
            },
            table_targets: tables.iter().map(|t| t.name.clone()).collect(),
            tables,
            scope: RestoreScope::Database,
            definers,
            snapshot_label: "s".into(),
            source_version: String::new(),
        }
    }

    /// A plan of database `d` holding `object`, prepared as a restore prepares it.
    fn prepared_with(
        object: StoredObject,
        definers: Definers,
    ) -> std::result::Result<RestorePlan, String> {
        let mut plan = plan_of(vec![object], Vec::new(), definers);
        plan.prepare_statements()?;
        Ok(plan)
    }

    fn event(create_sql: &str) -> StoredObject {
        StoredObject {
            kind: crate::repo::tree::ObjectKind::Event,
            name: "e".into(),
            create_sql: create_sql.into(),
            sql_mode: Some("STRICT_TRANS_TABLES".into()),
            character_set_client: Some("utf8mb4".into()),
            collation_connection: Some("utf8mb4_general_ci".into()),
            time_zone: Some("SYSTEM".into()),
        }
    }

    /// The attack of issue 18: session fields are written into `SET SESSION x = '…'`; one
    /// that switches off backslash escapes breaks the quoting of the next literal, on the
    /// server and in `dump` scripts fed to the mysql client (`\!` runs a shell command).
    #[test]
    fn planted_session_fields_and_definers_are_refused_or_removed() {
        let sql = "CREATE DEFINER=`root`@`localhost` EVENT `e` ON SCHEDULE EVERY 1 DAY DO SELECT 1";
        let replaced = Definers::Replaced("test".into());
        assert!(prepared_with(event(sql), replaced.clone()).is_ok());
        for (field, value) in [
            ("sql_mode", "NO_BACKSLASH_ESCAPES"),
            ("sql_mode", "NO_BACKSLASH_ESCAPES'; DROP DATABASE live; -- "),
            ("collation_connection", "x\\'; DROP DATABASE live; -- "),
            ("time_zone", "+00:00'\n\\! id > /tmp/pwned\n'"),
            ("character_set_client", "utf8mb4' OR '1"),
        ] {
            let mut object = event(sql);
            match field {
                "sql_mode" => object.sql_mode = Some(value.into()),
                "collation_connection" => object.collation_connection = Some(value.into()),
                "time_zone" => object.time_zone = Some(value.into()),
                _ => object.character_set_client = Some(value.into()),
            }
            let outcome = prepared_with(object, replaced.clone());
            // A plain NO_BACKSLASH_ESCAPES is a real mode: the statement is read under it.
            if value == "NO_BACKSLASH_ESCAPES" {
                assert!(outcome.is_ok(), "{outcome:?}");
            } else {
                let why = outcome.expect_err(value);
                assert!(why.contains(field), "{why}");
            }
        }
        // Definers replaced: the clause is gone from what runs, also under ANSI_QUOTES.
        let plan = prepared_with(event(sql), replaced.clone()).expect("plan");
        assert!(!plan.object_statements()[0].sql.contains("DEFINER"));
        let mut ansi =
            event(r#"CREATE DEFINER="root"@"%" EVENT "e" ON SCHEDULE EVERY 1 DAY DO SELECT 1"#);
        ansi.sql_mode = Some("ANSI_QUOTES".into());
        let plan = prepared_with(ansi, replaced).expect("plan");
        assert!(
            !plan.object_statements()[0].sql.contains("DEFINER"),
            "{:?}",
            plan.object_statements()
        );
        let kept = prepared_with(event(sql), Definers::Kept).expect("plan");
        assert!(kept.object_statements()[0].sql.contains("DEFINER=`root`"));
    }

    fn table(columns: usize) -> TableTree {
        TableTree {
            version: 1,
            name: "t".into(),
            kind: TableKind::Base,
            create_sql: "CREATE TABLE `t` (`c0` int)".into(),
            columns: (0..columns).map(|i| format!("c{i}")).collect(),
            key_columns: Vec::new(),
            sequence_next: None,
            chunks: Vec::new(),
        }
    }

    #[test]
    fn a_large_row_goes_in_pieces_and_short_values_stay_literals() {
        let big = "ab".repeat(3000);
        let row = format!("(NULL,1,'{big}',_utf8mb4'{big}',NULL)");
        let spans = rows::value_spans(row.as_bytes()).expect("row");
        let limits = LoadLimits {
            statement: 2048,
            value: 1 << 20,
        };
        let head = "INSERT INTO `t` (`c0`,`c1`,`c2`,`c3`,`c4`) VALUES ";
        let statements =
            large_row_statements(&table(5), head, row.as_bytes(), &spans, &limits).expect("fits");
        assert!(statements.iter().all(|s| s.len() <= limits.statement));
        let insert = statements
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .find(|s| s.starts_with("INSERT"))
            .expect("an insert");
        assert_eq!(
            insert,
            format!(
                "{head}(NULL,1,{VALUE_VARIABLE}2,CONVERT({VALUE_VARIABLE}3 USING utf8mb4),NULL)"
            )
        );
        let too_small = LoadLimits {
            statement: 2048,
            value: 100,
        };
        let err = large_row_statements(&table(5), head, row.as_bytes(), &spans, &too_small)
            .expect_err("a value above max_allowed_packet");
        assert!(err.to_string().contains("column c"), "{err}");
    }
}
