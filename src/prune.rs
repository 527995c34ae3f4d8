//! Prune: delete what no snapshot references, safely beside backups running on other hosts.
//!
//! Two phases, so that nothing a running backup may still rely on is deleted (the protocol and
//! its reasoning are in docs/FORMAT.md, "Prune"):
//!
//! 1. **Mark.** Packs whose blobs no snapshot references are condemned; packs mostly unused are
//!    repacked (their used blobs copied into new packs, one database's blobs kept together, and
//!    indexed) and condemned. A mark (`prune/<hash>`) lists them. Nothing is deleted.
//! 2. **Sweep.** A mark older than the grace period, once every run that started before it has
//!    finished or been abandoned, is swept: references are computed again from every snapshot now
//!    present, condemned packs still needed are kept, index files naming the others are
//!    rewritten without them, then the packs are deleted and the mark removed.
//!
//! One `prune` does both: it marks what is unused now and sweeps the marks that are ripe, so a
//! pack is deleted at the earliest by the next prune after the grace period (or by the same one
//! with a grace of zero when no backup runs). Every time compared is the store's own clock.
//!
//! What prune may delete, rule by rule (the test that shows each in brackets):
//!
//! - **Only with a full key.** A write-only key cannot run it, in the CLI or here
//!   (`keys::a_write_only_key_backs_up_deduplicating_but_reads_nothing`).
//! - **Unused now, by every snapshot and log segment present.** A pack is condemned only when
//!   no blob a snapshot or an archived binary-log segment references is located in it
//!   (`log_archive::prune_keeps_the_archived_log`); a mostly unused one is repacked first, its used blobs copied and
//!   indexed before it is condemned (`prune::forget_prune_frees_space_and_the_oldest_kept_snapshot_restores_exactly`).
//! - **Only proven copies count.** Before a pack is condemned as unused and again before a sweep
//!   deletes it, its own header is read: a referenced blob it holds that no other stored pack's
//!   header proves keeps it ([`ProvenCopies`];
//!   `threat_model::a_forged_index_and_mark_cannot_make_prune_delete_data`).
//! - **Nothing a running backup may rely on.** Packs stored after the oldest unfinished run
//!   began are not condemned; a mark is swept only once it is older than the grace period and
//!   every run that started before it finished or was abandoned (its lease ran out), and the
//!   sweep keeps a condemned pack a snapshot written since uses
//!   (`prune::a_backup_that_started_before_the_mark_keeps_what_it_deduplicated`,
//!   `prune::a_backup_after_the_mark_stores_condemned_data_again_and_dead_runs_expire`,
//!   `prune::prune_racing_backups_for_many_rounds_loses_nothing`).
//! - **Leftovers of dead runs.** A stored pack no index names is condemned once it is older than
//!   the grace period and than every unfinished run (no dedicated test yet).
//! - **Index first, packs last.** A sweep writes index files without the doomed packs, deletes
//!   the old files, then the packs, then the mark: a crash at any point leaves every indexed pack
//!   stored; what the store refuses to delete stays condemned under a new mark
//!   (`prune::objects_the_store_refuses_to_delete_are_skipped_named_and_tried_again`).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;

use crate::error::{Error, ErrorKind, Result};
use crate::repo::ids::{BlobId, IndexId, PackId, SnapshotId};
use crate::repo::index::{BlobLocation, Index, IndexFile, IndexedPack};
use crate::repo::log_segments::LogSegment;
use crate::repo::marks::{Condemned, CondemnedPack, ListedMark, PruneMark};
use crate::repo::pack::{MAX_PACK_LEN, PackBuilder};
use crate::repo::runs::{ActiveRun, ListedRun, friendly};
use crate::repo::snapshot::Snapshot;
use crate::repo::{Repository, paths};

/// Blobs per index file prune writes (as backups do).
const INDEX_FILE_BLOBS: usize = 50_000;

/// Database trees read at once while collecting references.
const TREES_IN_FLIGHT: usize = 16;

#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// A mark is swept only once it is this old by the store's clock: readers (restores) that
    /// loaded the index before the mark finish with the packs it condemned still there.
    pub grace: Duration,
    /// Repack a pack once at least this share of its bytes is unused (0 < share <= 1).
    pub repack_unused: f64,
    /// Report what would be condemned and deleted, change nothing.
    pub dry_run: bool,
    /// The prune's own run lease (it stores packs when repacking, like a backup).
    pub lease: Duration,
    /// How far apart two store times must be to count as ordered: `Last-Modified` has a
    /// resolution of one second and is taken when a request arrives, not when the object
    /// becomes visible (which, for the small objects compared, follows within a second).
    pub order_slack: Duration,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            grace: Duration::from_secs(3600),
            repack_unused: 0.5,
            dry_run: false,
            lease: Duration::from_secs(12 * 3600),
            order_slack: Duration::from_secs(10),
        }
    }
}

/// What a prune did (or, with `dry_run`, would do).
#[derive(Debug, Default, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub snapshots: usize,
    pub packs: usize,
    pub pack_bytes: u64,
    pub referenced_blobs: usize,
    /// Mark phase: packs condemned because nothing uses them.
    pub condemned_unused: usize,
    pub condemned_unused_bytes: u64,
    /// Mark phase: mostly unused packs whose used blobs were copied, then condemned.
    pub repacked: usize,
    pub repacked_bytes: u64,
    pub copied_blobs: usize,
    pub copied_bytes: u64,
    /// Mark phase: stored packs no index names, left by runs that died.
    pub condemned_unindexed: usize,
    pub condemned_unindexed_bytes: u64,
    /// The mark written (none when nothing was condemned, or in a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark: Option<String>,
    /// Sweep phase.
    pub marks_swept: usize,
    /// Marks not swept yet, and why.
    pub marks_waiting: Vec<String>,
    pub packs_deleted: usize,
    pub bytes_freed: u64,
    /// Condemned packs a snapshot written since the mark uses after all.
    pub packs_kept: usize,
    pub index_files_replaced: usize,
    pub run_markers_removed: usize,
    /// Objects the store refused to delete (immutability policy, object lock, missing delete
    /// right), each with the store's answer; a later prune tries them again.
    pub not_deleted: Vec<String>,
    /// Damage met on the way (a pack not repacked because a blob in it failed to authenticate).
    pub problems: Vec<String>,
}

/// Mark what is unused now and sweep the marks that are ripe.
pub async fn prune(repo: &Repository, options: &PruneOptions) -> Result<PruneReport> {
    // A write-only host must not be able to destroy the history it writes to.
    repo.require_full_key()?;
    if !(options.repack_unused > 0.0 && options.repack_unused <= 1.0) {
        return Err(Error::invalid(format!(
            "a repack threshold of {} is not a share between 0 and 100%",
            options.repack_unused
        )));
    }
    let mut report = PruneReport {
        dry_run: options.dry_run,
        ..PruneReport::default()
    };
    let own = if options.dry_run {
        None
    } else {
        Some(repo.begin_run("prune", options.lease).await?)
    };
    let result = async {
        let now = store_now(repo, own.as_ref()).await?;
        mark(repo, options, now, own.as_ref(), &mut report).await?;
        sweep(repo, options, now, own.as_ref(), &mut report).await
    }
    .await;
    if let Some(run) = &own
        && let Err(e) = repo.storage().delete(run.name()).await
    {
        report.not_deleted.push(format!("{}: {e}", run.name()));
    }
    result.map(|()| report)
}

/// The store's clock now: the time it gave this prune's own run marker. A dry run writes
/// nothing and takes the host's clock instead (it only estimates what a sweep would take).
async fn store_now(repo: &Repository, own: Option<&ActiveRun>) -> Result<jiff::Timestamp> {
    let Some(run) = own else {
        return Ok(jiff::Timestamp::now());
    };
    let listed = repo.list_runs().await?;
    listed
        .iter()
        .find(|r| r.id == run.id)
        .and_then(|r| r.modified)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Storage,
                format!(
                    "{} does not report when objects were written; prune judges every age by the store's clock",
                    repo.storage().location()
                ),
            )
            .with_hint("use a store that reports Last-Modified (Azure Blob, S3, GCS, a local disk)")
        })
}

/// Every blob the snapshots and the archived binary log reference, each with the number of
/// the first database (in name order) that references it: blobs are repacked in that order, so
/// a database's blobs stay together (the log's come last).
struct References {
    blobs: HashMap<BlobId, u32>,
}

impl References {
    async fn collect(
        repo: &Repository,
        index: &Index,
        snapshots: &[(SnapshotId, Snapshot)],
        segments: &[LogSegment],
    ) -> Result<Self> {
        let mut trees: Vec<(&str, BlobId)> = Vec::new();
        let mut seen: HashSet<BlobId> = HashSet::new();
        for (_, snapshot) in snapshots {
            for db in &snapshot.databases {
                if seen.insert(db.tree) {
                    trees.push((&db.name, db.tree));
                }
            }
        }
        drop(seen);
        trees.sort();
        let mut numbers: HashMap<&str, u32> = HashMap::new();
        for (name, _) in &trees {
            let next = numbers.len() as u32;
            numbers.entry(name).or_insert(next);
        }
        let mut blobs: HashMap<BlobId, u32> = HashMap::new();
        let mut walks = stream::iter(trees)
            .map(|(name, tree)| {
                let number = numbers.get(name).copied().unwrap_or(0);
                async move {
                    repo.database_blobs(index, &tree)
                        .await
                        .map(|found| (number, found))
                        .map_err(|e| e.context(format!("reading database {name}")))
                }
            })
            .buffered(TREES_IN_FLIGHT);
        while let Some((number, found)) = walks.try_next().await? {
            for blob in found {
                blobs.entry(blob).or_insert(number);
            }
        }
        let log_number = numbers.len() as u32;
        for segment in segments {
            for blob in &segment.blobs {
                blobs.entry(*blob).or_insert(log_number);
            }
        }
        // Rule "a snapshot's accounts are kept with it": the accounts tree is referenced by the
        // snapshot itself (`prune::the_accounts_of_a_kept_snapshot_survive_prune` in
        // tests/accounts.rs).
        for (_, snapshot) in snapshots {
            if let Some(tree) = snapshot.accounts.as_ref().and_then(|a| a.tree) {
                blobs.entry(tree).or_insert(log_number);
            }
        }
        Ok(References { blobs })
    }
}

/// Rule "only proven copies count" (issue 18). Index files and prune marks are metadata that
/// any write-only key can write: a forged index can claim a referenced blob lives in another
/// pack, so that the pack really holding it looks unused, and a forged mark can condemn any
/// pack. So before a pack is condemned as unused, or deleted by a sweep, its own header
/// (authenticated under the repository's key) says which blobs it holds, and each one a
/// snapshot references must have another copy whose pack exists and whose header lists it at
/// the indexed place. Otherwise the pack stays, and the disagreement is reported.
/// (`threat_model::a_forged_index_and_mark_cannot_make_prune_delete_data`)
/// What a pack's header lists: each blob's offset and stored length.
type Header = HashMap<BlobId, (u32, u32)>;

struct ProvenCopies<'a> {
    repo: &'a Repository,
    /// Stored size of every pack, from the storage's own listing.
    stored: HashMap<PackId, u64>,
    /// Each pack's header, read once: blob to (offset, length); `None` when the pack is not in
    /// storage.
    headers: HashMap<PackId, Option<Header>>,
}

impl<'a> ProvenCopies<'a> {
    /// With the packs `stored` lists (size and store time, as [`stored_packs`] gives them).
    fn new(repo: &'a Repository, stored: &HashMap<PackId, (u64, Option<jiff::Timestamp>)>) -> Self {
        ProvenCopies {
            repo,
            stored: stored.iter().map(|(id, (size, _))| (*id, *size)).collect(),
            headers: HashMap::new(),
        }
    }

    /// What `pack`'s header lists (`None`: not stored).
    async fn header(&mut self, pack: &PackId) -> Result<Option<&Header>> {
        if !self.headers.contains_key(pack) {
            let header = match self.stored.get(pack) {
                None => None,
                Some(size) => self
                    .repo
                    .read_pack_header(pack, *size)
                    .await?
                    .map(|entries| {
                        entries
                            .into_iter()
                            .map(|e| (e.id, (e.offset, e.length)))
                            .collect()
                    }),
            };
            self.headers.insert(*pack, header);
        }
        Ok(self.headers.get(pack).and_then(Option::as_ref))
    }

    /// Whether `location` is proven: its pack is stored and its header lists `blob` there.
    async fn proves(&mut self, blob: &BlobId, location: &BlobLocation) -> bool {
        matches!(
            self.header(&location.pack).await,
            Ok(Some(header)) if header.get(blob) == Some(&(location.offset, location.length))
        )
    }

    /// For each of `packs` that must stay although the index and marks let it go, why: the
    /// referenced blobs its header lists that no pack outside `leaving` is proven to hold, or
    /// that its header cannot be read. The packs' own headers are read 8 at a time and not
    /// kept (a sweep judges thousands); only those of packs that may prove other copies are.
    async fn must_keep(
        &mut self,
        packs: &[PackId],
        index: &Index,
        references: &References,
        leaving: &HashSet<PackId>,
    ) -> HashMap<PackId, String> {
        let repo = self.repo;
        let stored = self.stored.clone();
        let stored = &stored;
        // Judged as they arrive: at most 8 headers in flight, none collected.
        let mut own = stream::iter(packs.iter().copied())
            .map(|pack| async move {
                let header = match stored.get(&pack) {
                    None => Ok(None),
                    Some(size) => repo.read_pack_header(&pack, *size).await,
                };
                (pack, header)
            })
            .buffer_unordered(8);
        let mut keep = HashMap::new();
        while let Some((pack, header)) = own.next().await {
            let held: Vec<BlobId> = match header {
                Ok(Some(entries)) => entries
                    .into_iter()
                    .map(|e| e.id)
                    .filter(|b| references.blobs.contains_key(b))
                    .collect(),
                // Not stored: nothing to lose.
                Ok(None) => continue,
                Err(e) => {
                    keep.insert(pack, format!("its header cannot be read ({e})"));
                    continue;
                }
            };
            let mut unproven = Vec::new();
            for blob in held {
                let mut proven = false;
                for location in index.locations(&blob) {
                    if location.pack != pack
                        && !leaving.contains(&location.pack)
                        && self.proves(&blob, &location).await
                    {
                        proven = true;
                        break;
                    }
                }
                if !proven {
                    unproven.push(blob.short());
                }
            }
            if !unproven.is_empty() {
                keep.insert(
                    pack,
                    format!(
                        "its header lists {} blob(s) snapshots reference ({}) that no other pack is proven to hold: the index files disagree with the packs (forged or damaged); run `coffer check --read-data`",
                        unproven.len(),
                        unproven.join(", ")
                    ),
                );
            }
        }
        keep
    }
}

/// Every stored pack with its size and the store's time of it, from the storage's own listing.
async fn stored_packs(
    repo: &Repository,
) -> Result<HashMap<PackId, (u64, Option<jiff::Timestamp>)>> {
    Ok(repo
        .storage()
        .list(paths::DATA)
        .await?
        .into_iter()
        .filter_map(|m| {
            let hex = m.name.rsplit('/').next()?;
            let mut id = [0u8; 32];
            hex::decode_to_slice(hex, &mut id).ok()?;
            Some((PackId(id), (m.size, m.modified)))
        })
        .collect())
}

/// Refuse to go on when a snapshot references a blob the index does not have: the repository
/// is damaged (or another prune is rewriting index files right now), and deleting anything on
/// that basis could make it worse.
fn require_indexed(references: &References, index: &Index) -> Result<()> {
    if let Some(blob) = references.blobs.keys().find(|b| !index.contains(b)) {
        return Err(Error::corrupt(format!(
            "blob {} is referenced by a snapshot but named by no index file; nothing was deleted",
            blob.short()
        ))
        .with_hint("run `coffer check` (and `coffer repair index` if it says so); if another prune was running, run this one again after it"));
    }
    Ok(())
}

/// Phase one: condemn what is unused now, after copying the used part of mostly unused packs.
async fn mark(
    repo: &Repository,
    options: &PruneOptions,
    now: jiff::Timestamp,
    own: Option<&ActiveRun>,
    report: &mut PruneReport,
) -> Result<()> {
    // The order matters (docs/FORMAT.md): snapshots, then the stored packs, then the index,
    // then the runs. A snapshot read here had its index files written before it, and a pack
    // listed here that no index names yet belongs to a run whose marker the last step sees.
    let snapshots = repo.snapshots().await?;
    let segments = repo.log_segments().await?;
    let stored = stored_packs(repo).await?;
    let index = repo.load_index().await?;
    let runs = repo.list_runs().await?;

    report.snapshots = snapshots.len();
    let references = References::collect(repo, &index, &snapshots, &segments).await?;
    require_indexed(&references, &index)?;
    report.referenced_blobs = references.blobs.len();

    let mut used: HashMap<PackId, u64> = HashMap::new();
    for (blob, location) in index.entries() {
        if references.blobs.contains_key(blob) {
            *used.entry(location.pack).or_default() += u64::from(location.length);
        }
    }
    let finished = finished_runs(&snapshots, &segments);
    let oldest_unfinished = runs
        .iter()
        .filter(|r| Some(r.id.as_str()) != own.map(|o| o.id.as_str()))
        .filter(|r| !finished.contains(r.id.as_str()) && !abandoned(r, now))
        .map(|r| r.modified)
        .min();
    // Stored before every run still going began, so no such run wrote it. Condemning a
    // running backup's pack would be safe (the sweep waits for the run and keeps what its
    // snapshot uses) but would make backups starting meanwhile store its blobs again.
    let before_every_run = |pack: &PackId| {
        let Some(Some(modified)) = stored.get(pack).map(|(_, m)| *m) else {
            return false;
        };
        match oldest_unfinished {
            None => true,
            Some(None) => false,
            Some(Some(run_start)) => modified + signed(options.order_slack) < run_start,
        }
    };
    let mut condemned: Vec<CondemnedPack> = Vec::new();
    let mut to_repack: HashSet<PackId> = HashSet::new();
    let unused: Vec<PackId> = index
        .packs()
        .map(|(pack, _)| *pack)
        .filter(|pack| {
            !index.is_condemned(pack)
                && before_every_run(pack)
                && used.get(pack).copied().unwrap_or(0) == 0
        })
        .collect();
    let keep = ProvenCopies::new(repo, &stored)
        .must_keep(&unused, &index, &references, &HashSet::new())
        .await;
    for (pack, size) in index.packs() {
        report.packs += 1;
        report.pack_bytes += size;
        if index.is_condemned(pack) || !before_every_run(pack) {
            continue;
        }
        let used = used.get(pack).copied().unwrap_or(0);
        if used == 0
            && let Some(why) = keep.get(pack)
        {
            report
                .problems
                .push(format!("pack {} was not condemned: {why}", pack.short()));
        } else if used == 0 {
            report.condemned_unused += 1;
            report.condemned_unused_bytes += size;
            condemned.push(CondemnedPack {
                id: *pack,
                size: *size,
                why: Condemned::Unused,
            });
        } else if 1.0 - used as f64 / (*size).max(1) as f64 >= options.repack_unused {
            to_repack.insert(*pack);
        }
    }

    // Leftovers of runs that died: older than the grace period and than every run still going.
    for (pack, (size, modified)) in &stored {
        if index.has_pack(pack) || index.is_condemned(pack) {
            continue;
        }
        let Some(modified) = modified else { continue };
        let old_enough = now.duration_since(*modified) >= signed(options.grace);
        if old_enough && before_every_run(pack) {
            report.condemned_unindexed += 1;
            report.condemned_unindexed_bytes += size;
            condemned.push(CondemnedPack {
                id: *pack,
                size: *size,
                why: Condemned::Unindexed,
            });
        }
    }

    if !to_repack.is_empty() {
        repack(
            repo,
            options,
            &index,
            &references,
            &to_repack,
            &mut condemned,
            report,
        )
        .await?;
    }
    if options.dry_run || condemned.is_empty() {
        return Ok(());
    }
    let mark = PruneMark {
        version: 1,
        created: jiff::Timestamp::now(),
        host: crate::hostname(),
        packs: condemned,
    };
    report.mark = Some(repo.save_prune_mark(&mark).await?);
    Ok(())
}

/// Copy the used blobs of `packs` into new packs (ordered by database, so each database's blobs
/// stay together), index them, and condemn the old packs. A pack holding a blob that fails to
/// authenticate is reported and left alone.
async fn repack(
    repo: &Repository,
    options: &PruneOptions,
    index: &Index,
    references: &References,
    packs: &HashSet<PackId>,
    condemned: &mut Vec<CondemnedPack>,
    report: &mut PruneReport,
) -> Result<()> {
    // (database number, offset) of each used blob, per pack.
    let mut used: HashMap<PackId, Vec<(u32, BlobId, crate::repo::index::BlobLocation)>> =
        HashMap::new();
    for (blob, location) in index.entries() {
        if packs.contains(&location.pack)
            && let Some(database) = references.blobs.get(blob)
        {
            used.entry(location.pack)
                .or_default()
                .push((*database, *blob, location));
        }
    }
    let sizes: HashMap<PackId, u64> = index.packs().copied().collect();
    let mut order: Vec<(u32, PackId)> = used
        .iter_mut()
        .map(|(pack, blobs)| {
            blobs.sort_by_key(|(database, _, location)| (*database, location.offset));
            (blobs.first().map_or(0, |b| b.0), *pack)
        })
        .collect();
    order.sort();

    let mut builder = PackBuilder::default();
    let mut written: Vec<IndexedPack> = Vec::new();
    for (_, pack) in order {
        let blobs = &used[&pack];
        let size = sizes.get(&pack).copied().unwrap_or(0);
        let count = |report: &mut PruneReport| {
            report.repacked += 1;
            report.repacked_bytes += size;
            report.copied_blobs += blobs.len();
            report.copied_bytes += blobs.iter().map(|b| u64::from(b.2.length)).sum::<u64>();
        };
        if options.dry_run {
            count(report);
            continue;
        }
        let bytes = match repo
            .storage()
            .get(&paths::pack(&pack), size.min(MAX_PACK_LEN))
            .await
        {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::Storage => return Err(e),
            Err(e) => {
                report.problems.push(format!(
                    "pack {} was not repacked: {e}; run `coffer check --read-data`",
                    pack.short()
                ));
                continue;
            }
        };
        let mut verified = Vec::with_capacity(blobs.len());
        let mut damaged = None;
        for (_, blob, location) in blobs {
            let start = location.offset as usize;
            let Some(sealed) = bytes.get(start..start + location.length as usize) else {
                damaged = Some(format!("blob {} lies outside the pack", blob.short()));
                break;
            };
            let what = format!("blob {} in pack {}", blob.short(), pack.short());
            if let Err(e) = repo.open_blob(blob, location.kind, location.raw_length, sealed, &what)
            {
                damaged = Some(e.to_string());
                break;
            }
            verified.push((*blob, *location, sealed));
        }
        if let Some(why) = damaged {
            report.problems.push(format!(
                "pack {} was not repacked: {why}; run `coffer check --read-data`",
                pack.short()
            ));
            continue;
        }
        count(report);
        for (blob, location, sealed) in verified {
            builder.push(blob, location.kind, sealed, location.raw_length as usize)?;
            if builder.len() >= repo.config().pack_size as usize {
                written.push(store_pack(repo, std::mem::take(&mut builder)).await?);
            }
        }
        condemned.push(CondemnedPack {
            id: pack,
            size,
            why: Condemned::Repacked,
        });
    }
    if !builder.is_empty() {
        written.push(store_pack(repo, builder).await?);
    }
    // The copies are indexed before the mark condemns the originals.
    save_index_files(repo, written).await?;
    Ok(())
}

async fn store_pack(repo: &Repository, builder: PackBuilder) -> Result<IndexedPack> {
    let pack = builder.finish(repo.keys())?;
    repo.save_pack(&pack.id, &pack.bytes).await?;
    Ok(IndexedPack::new(
        pack.id,
        pack.bytes.len() as u64,
        &pack.entries,
    ))
}

/// Write `packs` into index files of at most [`INDEX_FILE_BLOBS`] blobs each.
async fn save_index_files(repo: &Repository, packs: Vec<IndexedPack>) -> Result<usize> {
    let mut files = 0;
    let mut file = IndexFile {
        version: 1,
        packs: Vec::new(),
    };
    let mut blobs = 0;
    for pack in packs {
        blobs += pack.blobs.len();
        file.packs.push(pack);
        if blobs >= INDEX_FILE_BLOBS {
            repo.save_index(&file).await?;
            files += 1;
            file.packs.clear();
            blobs = 0;
        }
    }
    if !file.packs.is_empty() {
        repo.save_index(&file).await?;
        files += 1;
    }
    Ok(files)
}

/// Runs that are over: a snapshot or a binary-log segment names them.
fn finished_runs<'a>(
    snapshots: &'a [(SnapshotId, Snapshot)],
    segments: &'a [LogSegment],
) -> HashSet<&'a str> {
    snapshots
        .iter()
        .filter_map(|(_, s)| s.run.as_deref())
        .chain(segments.iter().map(|s| s.run.as_str()))
        .collect()
}

/// A run whose lease has run out by the store's clock.
fn abandoned(run: &ListedRun, now: jiff::Timestamp) -> bool {
    run.modified
        .is_some_and(|at| now.duration_since(at) > signed(run.lease()))
}

fn signed(duration: Duration) -> jiff::SignedDuration {
    jiff::SignedDuration::try_from(duration).unwrap_or(jiff::SignedDuration::MAX)
}

/// Phase two: delete the packs of ripe marks that nothing needs after all.
async fn sweep(
    repo: &Repository,
    options: &PruneOptions,
    now: jiff::Timestamp,
    own: Option<&ActiveRun>,
    report: &mut PruneReport,
) -> Result<()> {
    // Runs before snapshots: a run seen unfinished here either is still going (and blocks) or
    // has its snapshot in the list read next, whose references count.
    let marks = repo.list_prune_marks().await?;
    if marks.is_empty() {
        return Ok(());
    }
    let runs = repo.list_runs().await?;
    let snapshots = repo.snapshots().await?;
    let segments = repo.log_segments().await?;
    let finished = finished_runs(&snapshots, &segments);
    let own_id = own.map(|o| o.id.as_str());
    // The store's clock has reached at least the newest time it gave an object we just listed
    // (the mark this prune wrote, say).
    let now = marks
        .iter()
        .map(|m| m.modified)
        .chain(runs.iter().map(|r| r.modified))
        .flatten()
        .fold(now, std::cmp::max);

    let mut ripe: Vec<&ListedMark> = Vec::new();
    let mut other_condemned: HashSet<PackId> = HashSet::new();
    for listed in &marks {
        match why_waiting(listed, &runs, &finished, own_id, now, options) {
            None => ripe.push(listed),
            Some(why) => {
                report.marks_waiting.push(why);
                other_condemned.extend(listed.mark.packs.iter().map(|p| p.id));
            }
        }
    }
    if ripe.is_empty() {
        return Ok(());
    }
    let sweeping: HashMap<PackId, u64> = ripe
        .iter()
        .flat_map(|m| m.mark.packs.iter().map(|p| (p.id, p.size)))
        .collect();

    let (files, damaged) = repo.load_index_files_reporting().await?;
    if let Some(e) = damaged.into_iter().next() {
        return Err(e.context("an index file is damaged; nothing was deleted"));
    }
    let condemned: HashSet<PackId> = sweeping
        .keys()
        .chain(other_condemned.iter())
        .copied()
        .collect();
    // Which packs each index file names; the files themselves go into the index.
    let packs_of_file: Vec<(IndexId, Vec<PackId>)> = files
        .iter()
        .map(|(id, file)| (*id, file.packs.iter().map(|p| p.id).collect()))
        .collect();
    // Any copy outside the packs being swept is preferred, so a blob located in one of them
    // has no other copy.
    let index = Index::ranked(
        files.into_iter().map(|(_, f)| f).collect(),
        |pack| {
            if sweeping.contains_key(pack) {
                2
            } else {
                u8::from(other_condemned.contains(pack))
            }
        },
        condemned,
    );
    let references = References::collect(repo, &index, &snapshots, &segments).await?;
    require_indexed(&references, &index)?;
    let mut kept: HashSet<PackId> = HashSet::new();
    for blob in references.blobs.keys() {
        if let Some(location) = index.get(blob)
            && sweeping.contains_key(&location.pack)
        {
            kept.insert(location.pack);
        }
    }
    // The mark is re-verified: a pack goes only when its own header agrees.
    let leaving: HashSet<PackId> = sweeping
        .keys()
        .filter(|p| !kept.contains(p))
        .copied()
        .collect();
    let judged: Vec<PackId> = leaving.iter().copied().collect();
    let keep = ProvenCopies::new(repo, &stored_packs(repo).await?)
        .must_keep(&judged, &index, &references, &leaving)
        .await;
    for (pack, why) in keep {
        report
            .problems
            .push(format!("condemned pack {} was kept: {why}", pack.short()));
        kept.insert(pack);
    }
    drop(references);
    drop(index);
    report.packs_kept = kept.len();
    let doomed: HashSet<PackId> = sweeping
        .keys()
        .filter(|p| !kept.contains(p))
        .copied()
        .collect();

    let superseded: Vec<(IndexId, Vec<PackId>)> = packs_of_file
        .into_iter()
        .filter_map(|(id, packs)| {
            let gone: Vec<PackId> = packs.into_iter().filter(|p| doomed.contains(p)).collect();
            (!gone.is_empty()).then_some((id, gone))
        })
        .collect();
    if options.dry_run {
        report.marks_swept = ripe.len();
        report.packs_deleted = doomed.len();
        report.bytes_freed = doomed.iter().map(|p| sweeping[p]).sum();
        report.index_files_replaced = superseded.len();
        return Ok(());
    }
    if let Some(run) = own {
        run.check_lease()?;
    }

    // Index files without the doomed packs first, then the old files, then the packs: a crash
    // at any point leaves every indexed pack stored.
    let mut survivors: Vec<IndexedPack> = Vec::new();
    for (id, _) in &superseded {
        let file = repo
            .load_index_file(id)
            .await
            .map_err(|e| e.context("an index file to rewrite; nothing was deleted"))?;
        survivors.extend(file.packs.into_iter().filter(|p| !doomed.contains(&p.id)));
    }
    save_index_files(repo, survivors).await?;
    let mut blocked: HashSet<PackId> = HashSet::new();
    for (id, gone) in superseded {
        let name = format!("{}{}", paths::INDEX, id);
        match repo.storage().delete(&name).await {
            Ok(()) => report.index_files_replaced += 1,
            Err(e) => {
                report.not_deleted.push(format!("{name}: {e}"));
                blocked.extend(gone);
            }
        }
    }
    let deletions: Vec<PackId> = doomed
        .iter()
        .filter(|p| !blocked.contains(p))
        .copied()
        .collect();
    let mut remaining = blocked;
    let results: Vec<(PackId, Result<()>)> = stream::iter(deletions)
        .map(|pack| async move {
            let result = repo.storage().delete(&paths::pack(&pack)).await;
            (pack, result)
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for (pack, result) in results {
        match result {
            Ok(()) => {
                report.packs_deleted += 1;
                report.bytes_freed += sweeping[&pack];
            }
            Err(e) => {
                report
                    .not_deleted
                    .push(format!("{}: {e}", paths::pack(&pack)));
                remaining.insert(pack);
            }
        }
    }

    // What could not be deleted stays condemned under a new mark; then the old marks go.
    if !remaining.is_empty() {
        let packs = ripe
            .iter()
            .flat_map(|m| m.mark.packs.iter())
            .filter(|p| remaining.contains(&p.id))
            .cloned()
            .collect();
        repo.save_prune_mark(&PruneMark {
            version: 1,
            created: jiff::Timestamp::now(),
            host: crate::hostname(),
            packs,
        })
        .await?;
    }
    for listed in &ripe {
        match repo.storage().delete(&listed.name).await {
            Ok(()) => report.marks_swept += 1,
            Err(e) => report.not_deleted.push(format!("{}: {e}", listed.name)),
        }
    }
    for run in &runs {
        if Some(run.id.as_str()) == own_id {
            continue;
        }
        if finished.contains(run.id.as_str()) || abandoned(run, now) {
            match repo.storage().delete(&run.name).await {
                Ok(()) => report.run_markers_removed += 1,
                Err(e) => report.not_deleted.push(format!("{}: {e}", run.name)),
            }
        }
    }
    Ok(())
}

/// Why `listed` cannot be swept yet, if it cannot.
fn why_waiting(
    listed: &ListedMark,
    runs: &[ListedRun],
    finished: &HashSet<&str>,
    own: Option<&str>,
    now: jiff::Timestamp,
    options: &PruneOptions,
) -> Option<String> {
    let grace = options.grace;
    let name = listed.name.trim_start_matches(paths::PRUNE_MARKS);
    let short = crate::repo::ids::short_text(name);
    let Some(marked) = listed.modified else {
        return Some(format!("mark {short}: the store reports no time for it"));
    };
    let ripe_at = marked + signed(grace);
    if now < ripe_at {
        return Some(format!(
            "mark {short} ({} packs): the grace period of {} ends at {} (store time)",
            listed.mark.packs.len(),
            friendly(grace),
            ripe_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        ));
    }
    let blocking: Vec<String> = runs
        .iter()
        .filter(|r| Some(r.id.as_str()) != own && !finished.contains(r.id.as_str()))
        .filter(|r| {
            r.modified
                .is_none_or(|at| at <= marked + signed(options.order_slack))
        })
        .filter(|r| !abandoned(r, now))
        .map(|r| {
            let until = r
                .modified
                .map(|at| {
                    format!(
                        ", taken for abandoned after {}",
                        (at + signed(r.lease())).strftime("%Y-%m-%d %H:%M UTC")
                    )
                })
                .unwrap_or_default();
            format!("{}{until}", r.describe())
        })
        .collect();
    if blocking.is_empty() {
        return None;
    }
    Some(format!(
        "mark {short} ({} packs): waiting for runs that started before it: {}",
        listed.mark.packs.len(),
        blocking.join("; ")
    ))
}
