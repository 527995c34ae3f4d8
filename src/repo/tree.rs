//! Tree blobs: what a database and each of its tables look like, and where their rows are.
//!
//! A snapshot names one [`DatabaseTree`] per database; it names one [`TableTree`] per table, which
//! lists the table's data chunks in primary-key order with the first key of each chunk. Trees hold
//! no timestamps, so an unchanged database produces byte-identical trees and costs nothing new.

use serde::{Deserialize, Serialize};

use super::ids::BlobId;

/// Everything about one database except table rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseTree {
    pub version: u32,
    pub name: String,
    pub charset: String,
    pub collation: String,
    pub tables: Vec<TableRef>,
    /// Views in an order in which each can be created after those before it.
    pub views: Vec<StoredObject>,
    pub routines: Vec<StoredObject>,
    pub triggers: Vec<StoredObject>,
    pub events: Vec<StoredObject>,
    /// Things the dump noticed but could not guarantee (e.g. a non-transactional table).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl DatabaseTree {
    /// Every stored object: routines, views, triggers, events.
    pub fn objects(&self) -> impl Iterator<Item = &StoredObject> {
        self.routines
            .iter()
            .chain(&self.views)
            .chain(&self.triggers)
            .chain(&self.events)
    }

    /// What the database holds, whatever was carried: the tree as JSON with the tables'
    /// `read_at` left out (a table carried over and the same table read again give the same
    /// bytes).
    pub fn content_bytes(&self) -> crate::error::Result<Vec<u8>> {
        let mut content = self.clone();
        for table in &mut content.tables {
            table.read_at = None;
        }
        serde_json::to_vec(&content)
            .map_err(|e| crate::error::Error::invalid("encoding database tree").with_source(e))
    }

    /// [`DatabaseTree::objects`], to change.
    pub fn objects_mut(&mut self) -> impl Iterator<Item = &mut StoredObject> {
        self.routines
            .iter_mut()
            .chain(&mut self.views)
            .chain(&mut self.triggers)
            .chain(&mut self.events)
    }
}

/// A table as listed in its database tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableRef {
    pub name: String,
    pub tree: BlobId,
    pub rows: u64,
    /// Bytes of the row text (logical size, before compression).
    pub bytes: u64,
    /// Set when the table was not read but carried over from an earlier snapshot (its tree is
    /// that snapshot's): when its rows were read from the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_at: Option<jiff::Timestamp>,
}

/// A view, routine, trigger or event: its `SHOW CREATE` text and the session it must be run in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredObject {
    pub kind: ObjectKind,
    pub name: String,
    /// The `CREATE …` statement as the server printed it, schema references included.
    pub create_sql: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub character_set_client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collation_connection: Option<String>,
    /// For events: the time zone their schedule is read in (`SHOW CREATE EVENT`'s `time_zone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    View,
    Procedure,
    Function,
    Trigger,
    Event,
}

impl ObjectKind {
    pub fn keyword(self) -> &'static str {
        match self {
            ObjectKind::View => "VIEW",
            ObjectKind::Procedure => "PROCEDURE",
            ObjectKind::Function => "FUNCTION",
            ObjectKind::Trigger => "TRIGGER",
            ObjectKind::Event => "EVENT",
        }
    }
}

/// One table: its definition and its rows as chunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableTree {
    pub version: u32,
    pub name: String,
    pub kind: TableKind,
    /// `SHOW CREATE TABLE` (or `SHOW CREATE SEQUENCE`) output, with the AUTO_INCREMENT counter.
    pub create_sql: String,
    /// Columns that hold stored values, in the order each row lists them (generated columns are
    /// left out: the server recomputes them; invisible columns are included).
    pub columns: Vec<String>,
    /// Columns the rows are sorted by (the primary key, else a unique key); empty if unordered.
    pub key_columns: Vec<String>,
    /// For sequences: the next value not yet handed out (`next_not_cached_value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_next: Option<String>,
    pub chunks: Vec<ChunkRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    Base,
    Sequence,
}

/// A data chunk of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub id: BlobId,
    pub rows: u64,
    /// SQL literals of the key columns of the chunk's first row, so a later reader can find the
    /// chunk holding a key without reading the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_key: Option<Vec<String>>,
}
