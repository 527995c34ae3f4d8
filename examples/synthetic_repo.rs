//! Builds a large synthetic repository for bench/prune_scale.py: `DATABASES` databases of one
//! table with `CHUNKS` data blobs each, in two snapshots. The second snapshot holds new chunks
//! for every other database, so forgetting the first leaves about a third of the blobs unused,
//! spread over packs that also hold used blobs (prune condemns some packs and repacks others).
//!
//! Usage: `COFFER_PASSWORD=… cargo run --release --example synthetic_repo -- PATH DATABASES CHUNKS`
//! The blobs are small (one short row each) so that a million of them build in minutes; prune's
//! memory and time depend on the number of blobs and packs, not their size.

use std::sync::Arc;

use coffer::crypto::keys::PassphraseProvider;
use coffer::crypto::slots::KeyProvider;
use coffer::repo::ids::BlobId;
use coffer::repo::pack::BlobKind;
use coffer::repo::snapshot::{BackupStats, DatabaseEntry, Snapshot, SourceInfo};
use coffer::repo::tree::{ChunkRef, DatabaseTree, TableKind, TableRef, TableTree};
use coffer::repo::writer::BlobStore;
use coffer::repo::{ChunkerParams, InitOptions, Repository};
use coffer::storage::local::LocalStorage;
use coffer::{Error, Result};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn usage() -> Error {
    Error::invalid("usage: synthetic_repo PATH DATABASES CHUNKS (COFFER_PASSWORD set)")
}

async fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, databases, chunks] = args.as_slice() else {
        return Err(usage());
    };
    let databases: u32 = databases.parse().map_err(|_| usage())?;
    let chunks: u32 = chunks.parse().map_err(|_| usage())?;
    let password = std::env::var("COFFER_PASSWORD").map_err(|_| usage())?;
    let provider = PassphraseProvider::new(zeroize::Zeroizing::new(password))?;
    let provider: &dyn KeyProvider = &provider;
    let repo = Arc::new(
        Repository::init(
            Arc::new(LocalStorage::new(path)),
            provider,
            InitOptions {
                chunker: ChunkerParams::default(),
                pack_size: 16 << 10,
            },
        )
        .await?,
    );
    let first = write_snapshot(&repo, databases, chunks, |_| 1).await?;
    let second = write_snapshot(&repo, databases, chunks, |db| 1 + db % 2).await?;
    println!("{first} {second}");
    Ok(())
}

/// One snapshot of every database, each at the version `version(db)` gives.
async fn write_snapshot(
    repo: &Arc<Repository>,
    databases: u32,
    chunks: u32,
    version: impl Fn(u32) -> u32,
) -> Result<String> {
    let index = repo.load_index().await?;
    let store = BlobStore::new(Arc::clone(repo), &index, 4);
    drop(index);
    let mut sink = store.sink();
    let mut entries = Vec::new();
    for db in 0..databases {
        let name = format!("study_{db:05}");
        let v = version(db);
        let mut refs = Vec::with_capacity(chunks as usize);
        for chunk in 0..chunks {
            let row = format!("({chunk},'{name} v{v} row {chunk}')\n");
            let id = sink.add(BlobKind::Data, row.into_bytes()).await?;
            refs.push(ChunkRef {
                id,
                rows: 1,
                first_key: Some(vec![chunk.to_string()]),
            });
        }
        let table = TableTree {
            version: 1,
            name: "t".into(),
            kind: TableKind::Base,
            create_sql: "CREATE TABLE `t` (`id` int NOT NULL, `v` text, PRIMARY KEY (`id`))".into(),
            columns: vec!["id".into(), "v".into()],
            key_columns: vec!["id".into()],
            sequence_next: None,
            chunks: refs,
        };
        let table_id = add_json(&mut sink, &table).await?;
        let tree = DatabaseTree {
            version: 1,
            name: name.clone(),
            charset: "utf8mb4".into(),
            collation: "utf8mb4_general_ci".into(),
            tables: vec![TableRef {
                name: "t".into(),
                tree: table_id,
                rows: u64::from(chunks),
                bytes: 0,
                read_at: None,
            }],
            views: Vec::new(),
            routines: Vec::new(),
            triggers: Vec::new(),
            events: Vec::new(),
            warnings: Vec::new(),
        };
        let tree_id = add_json(&mut sink, &tree).await?;
        entries.push(DatabaseEntry {
            name,
            tree: tree_id,
            tables: 1,
            rows: u64::from(chunks),
            bytes: 0,
            carried_from: None,
            read_at: None,
            tables_carried: 0,
            content: None,
            position_proven: false,
            log_position: None,
        });
    }
    sink.finish().await?;
    store.finish_run().await?;
    let now = jiff::Timestamp::now();
    let snapshot = Snapshot {
        version: 1,
        time: now,
        finished: now,
        hostname: "synthetic".into(),
        source: SourceInfo {
            server: "synthetic:3306".into(),
            server_version: "8.0.36".into(),
            binlog: None,
            binlog_unavailable: Some("synthetic".into()),
            server_identity: None,
        },
        databases: entries,
        failed: Vec::new(),
        stats: BackupStats::default(),
        tags: Vec::new(),
        time_given: false,
        run: None,
        change_tracking: None,
        shard: None,
        writer: None,
        accounts: None,
    };
    Ok(repo.save_snapshot(&snapshot).await?.to_string())
}

async fn add_json<T: serde::Serialize>(
    sink: &mut coffer::repo::writer::PackSink,
    value: &T,
) -> Result<BlobId> {
    let json =
        serde_json::to_vec(value).map_err(|e| Error::invalid("encoding a tree").with_source(e))?;
    sink.add(BlobKind::Tree, json).await
}
