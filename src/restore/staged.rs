//! A copy of a snapshot's database (or tables) loaded into a private staging database and left
//! there, never swapped in: what `dump --at` reads after the archived binary log took the copy
//! to a moment. The caller discards it ([`StagedCopy::discard`]) when done.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use mysql_async::Conn;

use super::server::stage;
use super::staging::{
    RestoreStats, ServerRestoreOptions, check_plan_is_readable, create_staging, drop_staging,
    prepare_session,
};
use super::{RestorePlan, RestoreScope};
use crate::error::Result;
use crate::repo::Repository;
use crate::repo::index::Index;
use crate::source::mysql::MysqlTarget;

/// The staged copy: its database, what loading it did, and a session on it.
pub struct StagedCopy {
    pub database: String,
    pub stats: RestoreStats,
    conn: Conn,
}

impl StagedCopy {
    /// A session on the staged copy (UTC, the restore's session settings).
    pub fn session(&mut self) -> (&mut Conn, &str) {
        (&mut self.conn, &self.database)
    }

    /// Drop the staging database.
    pub async fn discard(mut self) {
        drop_staging(&mut self.conn, &self.database).await;
    }
}

/// Load `plan` into a new staging database on `target` and replay `options.replay` onto it.
pub async fn stage_copy(
    repo: Arc<Repository>,
    index: Arc<Index>,
    plan: Arc<RestorePlan>,
    target: &MysqlTarget,
    options: &ServerRestoreOptions,
    chunks_done: Arc<AtomicU64>,
) -> Result<StagedCopy> {
    check_plan_is_readable(&repo, &index, &plan).await?;
    let mut conn = target.connect().await?;
    super::compat::refuse_incompatible(&mut conn, &plan, &target.describe()).await?;
    let database = create_staging(&mut conn, &plan, &options.staging_tag_or_new()?).await?;
    let loaded = async {
        match plan.scope {
            RestoreScope::Database => {
                stage(
                    &repo,
                    &index,
                    &plan,
                    target,
                    options,
                    &database,
                    &chunks_done,
                )
                .await
            }
            RestoreScope::Tables { .. } => {
                let (rows, bytes_fetched, replay) = super::tables::stage_tables(
                    &repo,
                    &index,
                    &plan,
                    target,
                    &database,
                    options,
                    &chunks_done,
                )
                .await?;
                Ok(RestoreStats {
                    tables: plan.tables.len() as u64,
                    rows,
                    bytes_fetched,
                    replay,
                    ..RestoreStats::default()
                })
            }
        }
    }
    .await;
    let prepared = match loaded {
        Ok(stats) => prepare_session(&mut conn, &database).await.map(|()| stats),
        Err(e) => Err(e),
    };
    match prepared {
        Ok(stats) => Ok(StagedCopy {
            database,
            stats,
            conn,
        }),
        Err(e) => {
            drop_staging(&mut conn, &database).await;
            Err(e)
        }
    }
}
