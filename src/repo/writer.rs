//! Writing blobs: deduplication, packing and index files, shared by concurrent workers.
//!
//! Each worker owns a [`PackSink`], so the blobs of one database are contiguous in that worker's
//! packs; all sinks share one [`BlobStore`] that knows which blobs exist (deduplication across
//! workers) and writes index files once their packs are stored.
//!
//! A blob id enters the shared set when a sink *claims* it, before its pack is stored: from then
//! on every other worker (and so every other database's tree) takes it as stored. The store
//! therefore counts claims and indexed blobs, and [`BlobStore::finish_run`] refuses to let a
//! snapshot be written unless every claimed blob is in a stored pack named by a stored index
//! file, whatever made a pack go missing (an upload error of any kind, an index write
//! rejected, a sink dropped half-way, a panic). Any failure inside a sink also marks the store
//! failed, so workers stop early instead of dumping more databases for a run that cannot end
//! with a snapshot.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Mutex, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use super::Repository;
use super::ids::BlobId;
use super::index::{Index, IndexFile, IndexedPack};
use super::pack::{BlobKind, PackBuilder};
use crate::crypto::compress;
use crate::error::{Error, ErrorKind, Result};

/// Write an index file once this many blobs are stored but not yet indexed.
const INDEX_FLUSH_BLOBS: usize = 50_000;

/// Shared state of all writers of one backup run.
pub struct BlobStore {
    repo: Arc<Repository>,
    known: std::sync::Mutex<HashSet<BlobId>>,
    pending: Mutex<IndexFile>,
    pending_blobs: AtomicU64,
    /// Blobs of this run recorded in `pending` or in an index file written by this run.
    recorded: AtomicU64,
    /// The first failure that left a claimed blob unstored.
    failure: std::sync::Mutex<Option<String>>,
    /// Bounds the packs being uploaded at once (and so the memory they hold).
    upload_slots: Arc<Semaphore>,
    /// Bounds the blobs compressed and sealed at once to the machine's cores: more would only
    /// make the threads reading rows wait for a core.
    sealing_slots: Arc<Semaphore>,
    /// Blobs claimed by this run (each must end up stored and indexed).
    pub blobs_new: AtomicU64,
    pub bytes_stored_new: AtomicU64,
}

impl BlobStore {
    /// Start writing into `repo`, deduplicating against every blob `index` holds outside
    /// condemned packs (a sweep may delete those), with at most `concurrent_uploads` packs in
    /// flight.
    pub fn new(repo: Arc<Repository>, index: &Index, concurrent_uploads: usize) -> Arc<Self> {
        let known = index.live_blob_ids().copied().collect();
        Arc::new(BlobStore {
            repo,
            known: std::sync::Mutex::new(known),
            pending: Mutex::new(IndexFile {
                version: 1,
                packs: Vec::new(),
            }),
            pending_blobs: AtomicU64::new(0),
            recorded: AtomicU64::new(0),
            failure: std::sync::Mutex::new(None),
            upload_slots: Arc::new(Semaphore::new(concurrent_uploads.max(1))),
            sealing_slots: Arc::new(Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
            blobs_new: AtomicU64::new(0),
            bytes_stored_new: AtomicU64::new(0),
        })
    }

    pub fn repo(&self) -> &Arc<Repository> {
        &self.repo
    }

    /// True if the caller must store `id` (nobody has it or is storing it).
    fn claim(&self, id: BlobId) -> bool {
        match self.known.lock() {
            Ok(mut known) => known.insert(id),
            // A poisoned set only means another worker panicked; its contents are still valid.
            Err(poisoned) => poisoned.into_inner().insert(id),
        }
    }

    /// A new sink for one worker.
    pub fn sink(self: &Arc<Self>) -> PackSink {
        PackSink {
            store: Arc::clone(self),
            builder: PackBuilder::default(),
            sealing: VecDeque::new(),
            uploads: JoinSet::new(),
        }
    }

    /// Remember that blobs claimed by this run were lost; the run can no longer save a snapshot.
    fn mark_failed(&self, error: &Error) {
        let mut failure = match self.failure.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        failure.get_or_insert_with(|| error.to_string());
    }

    /// Why this run can no longer save a snapshot, if it cannot.
    pub fn failure(&self) -> Option<String> {
        match self.failure.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    async fn record_pack(&self, pack: IndexedPack) -> Result<()> {
        let count = pack.blobs.len() as u64;
        let mut pending = self.pending.lock().await;
        pending.packs.push(pack);
        self.recorded.fetch_add(count, Ordering::Relaxed);
        if self.pending_blobs.fetch_add(count, Ordering::Relaxed) + count
            >= INDEX_FLUSH_BLOBS as u64
        {
            self.write_pending(&mut pending).await?;
        }
        Ok(())
    }

    async fn write_pending(&self, pending: &mut IndexFile) -> Result<()> {
        if pending.packs.is_empty() {
            return Ok(());
        }
        self.repo.save_index(pending).await?;
        pending.packs.clear();
        self.pending_blobs.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Write an index file for all stored packs not indexed yet, then prove that every blob
    /// this run claimed is stored and indexed. Call after every sink finished; only when it
    /// succeeds may a snapshot refer to the run's blobs.
    pub async fn finish_run(&self) -> Result<()> {
        if let Some(why) = self.failure() {
            return Err(Error::new(
                ErrorKind::Storage,
                format!("blobs of this backup could not be stored: {why}"),
            ));
        }
        let mut pending = self.pending.lock().await;
        self.write_pending(&mut pending).await?;
        let claimed = self.blobs_new.load(Ordering::Relaxed);
        let recorded = self.recorded.load(Ordering::Relaxed);
        if claimed != recorded {
            return Err(Error::new(
                ErrorKind::Storage,
                format!(
                    "{} of the {claimed} new blobs of this backup were never stored",
                    claimed.saturating_sub(recorded)
                ),
            ));
        }
        Ok(())
    }
}

/// One worker's pack under construction, its blobs being compressed and sealed, and its packs
/// being uploaded. Compression and encryption run on the blocking pool, so the worker keeps
/// reading rows from the server meanwhile.
pub struct PackSink {
    store: Arc<BlobStore>,
    builder: PackBuilder,
    sealing: VecDeque<JoinHandle<Result<SealedBlob>>>,
    uploads: JoinSet<Result<()>>,
}

/// A blob ready for a pack.
struct SealedBlob {
    id: BlobId,
    kind: BlobKind,
    sealed: Vec<u8>,
    raw_length: usize,
}

/// Blobs of one worker being sealed at once.
const SEALING_IN_FLIGHT: usize = 2;

/// Blobs at least this large are compressed and sealed on the blocking pool.
const OFFLOAD_MIN_BYTES: usize = 128 << 10;

/// Context for a failure to prepare a claimed blob for its pack.
fn fatal(e: Error) -> Error {
    e.context("preparing a blob for its pack")
}

impl PackSink {
    /// Store `plaintext` as a blob unless the repository has it; returns its id. An error here
    /// means blobs claimed by this sink are lost: the run cannot save a snapshot.
    /// The repository's keyed id of `bytes` (not stored).
    pub fn content_id(&self, bytes: &[u8]) -> BlobId {
        BlobId(self.store.repo().keys().content_id(bytes))
    }

    pub async fn add(&mut self, kind: BlobKind, plaintext: Vec<u8>) -> Result<BlobId> {
        let result = self.add_claimed(kind, plaintext).await;
        self.failed_if_err(result)
    }

    fn failed_if_err<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            self.store.mark_failed(e);
        }
        result
    }

    async fn add_claimed(&mut self, kind: BlobKind, plaintext: Vec<u8>) -> Result<BlobId> {
        let id = BlobId(self.store.repo.keys().content_id(&plaintext));
        if !self.store.claim(id) {
            return Ok(id);
        }
        self.store.blobs_new.fetch_add(1, Ordering::Relaxed);
        let repo = Arc::clone(&self.store.repo);
        let small = plaintext.len() < OFFLOAD_MIN_BYTES;
        let seal = move || -> Result<SealedBlob> {
            let sealed = repo.keys().seal(kind.role(), &compress(&plaintext)?)?;
            Ok(SealedBlob {
                id,
                kind,
                sealed,
                raw_length: plaintext.len(),
            })
        };
        if small {
            // Handing a small blob to another thread costs more than sealing it here.
            let blob = seal().map_err(fatal)?;
            self.pack_blob(blob).await?;
        } else {
            let slot = Arc::clone(&self.store.sealing_slots)
                .acquire_owned()
                .await
                .map_err(|e| {
                    fatal(Error::new(ErrorKind::Storage, "sealing pool closed").with_source(e))
                })?;
            self.sealing.push_back(tokio::task::spawn_blocking(move || {
                let sealed = seal();
                drop(slot);
                sealed
            }));
            while self.sealing.len() > SEALING_IN_FLIGHT {
                self.pack_next_sealed().await?;
            }
        }
        Ok(id)
    }

    async fn pack_next_sealed(&mut self) -> Result<()> {
        let Some(handle) = self.sealing.pop_front() else {
            return Ok(());
        };
        let blob = handle
            .await
            .map_err(|e| {
                Error::new(ErrorKind::Storage, "sealing a blob stopped unexpectedly").with_source(e)
            })?
            .map_err(fatal)?;
        self.pack_blob(blob).await
    }

    async fn pack_blob(&mut self, blob: SealedBlob) -> Result<()> {
        self.builder
            .push(blob.id, blob.kind, &blob.sealed, blob.raw_length)
            .map_err(fatal)?;
        if self.builder.len() >= self.store.repo.config().pack_size as usize {
            self.upload_pack().await?;
        }
        Ok(())
    }

    /// Seal what is pending and start uploading the pack under construction, if any.
    pub async fn flush(&mut self) -> Result<()> {
        let result = self.seal_pending_and_upload().await;
        self.failed_if_err(result)
    }

    async fn seal_pending_and_upload(&mut self) -> Result<()> {
        while !self.sealing.is_empty() {
            self.pack_next_sealed().await?;
        }
        self.upload_pack().await
    }

    /// Start uploading the pack under construction, if any; the worker goes on dumping while it
    /// uploads. Waits only when all upload slots are taken.
    async fn upload_pack(&mut self) -> Result<()> {
        self.reap_finished()?;
        if self.builder.is_empty() {
            return Ok(());
        }
        let builder = std::mem::take(&mut self.builder);
        let pack = builder.finish(self.store.repo.keys())?;
        let slot = Arc::clone(&self.store.upload_slots)
            .acquire_owned()
            .await
            .map_err(|e| Error::new(ErrorKind::Storage, "upload slots closed").with_source(e))?;
        let store = Arc::clone(&self.store);
        self.uploads.spawn(async move {
            let _slot = slot;
            store.repo.save_pack(&pack.id, &pack.bytes).await?;
            store
                .bytes_stored_new
                .fetch_add(pack.bytes.len() as u64, Ordering::Relaxed);
            store
                .record_pack(IndexedPack::new(
                    pack.id,
                    pack.bytes.len() as u64,
                    &pack.entries,
                ))
                .await
        });
        Ok(())
    }

    /// Upload what is left and wait until every pack of this sink is stored and queued for the
    /// index. A failed upload is returned here (or earlier, from `add`/`flush`).
    pub async fn finish(&mut self) -> Result<()> {
        self.flush().await?;
        while let Some(joined) = self.uploads.join_next().await {
            let result = joined
                .map_err(|e| {
                    Error::new(ErrorKind::Storage, "a pack upload stopped unexpectedly")
                        .with_source(e)
                })
                .and_then(|r| r);
            self.failed_if_err(result)?;
        }
        Ok(())
    }

    fn reap_finished(&mut self) -> Result<()> {
        while let Some(joined) = self.uploads.try_join_next() {
            joined.map_err(|e| {
                Error::new(ErrorKind::Storage, "a pack upload stopped unexpectedly").with_source(e)
            })??;
        }
        Ok(())
    }
}
