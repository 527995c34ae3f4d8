//! The repository format: how backups are laid out in a [`Storage`] and read back.
//!
//! Owns object naming, the config, key slots on disk, packs, index files, trees and snapshots.
//! Knows nothing about MySQL: it stores named trees and opaque data blobs. The write order that
//! keeps a repository consistent after a crash at any point is: packs, then the index files that
//! name them, then the snapshot that refers to their blobs (see docs/FORMAT.md).

pub mod accounts;
pub mod audit;
pub mod host_state;
pub mod ids;
pub mod index;
pub mod index_cache;
pub mod keyslots;
pub mod log_segments;
pub mod marks;
pub mod pack;
pub mod runs;
pub mod select;
pub mod shard_plan;
pub mod snapshot;
pub mod summary;
pub mod tree;
pub mod writer;

use std::sync::Arc;

use std::collections::{HashMap, HashSet};

use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::crypto::kms::slot_key_url;
use crate::crypto::slots::{KeyProvider, KeySlot};
use crate::crypto::{Keys, MasterSecret, Role, pack_body, unpack_body};
use crate::error::{Error, ErrorKind, Result};
use crate::storage::{PutOutcome, Storage};
use ids::{BlobId, IndexId, PackId, SnapshotId, storage_hash};
use index::{Index, IndexFile};
use snapshot::Snapshot;
use summary::SnapshotSummary;

/// Repository format version written by this build.
pub const FORMAT_VERSION: u32 = 1;
/// Largest plaintext of a metadata object (index, snapshot, tree) accepted when reading.
const MAX_METADATA_LEN: usize = 1 << 30;
/// Largest stored index file or snapshot read (sealed and compressed; real ones are a few MB).
pub(crate) const MAX_METADATA_OBJECT: u64 = 256 << 20;
/// Largest stored key slot or config read (real ones are under 1 KiB).
pub(crate) const MAX_SMALL_OBJECT: u64 = 64 << 10;
/// How far a snapshot's time may lie after the store's time of its object (clock skew between
/// the backup host and the store): beyond it, the snapshot claims to be from the future.
const FUTURE_SLACK_MINUTES: i64 = 10;

/// Largest plaintext of a config (real ones are a few hundred bytes).
const MAX_SMALL_PLAINTEXT: usize = 64 << 10;
/// Most key slots one open tries (slots of kinds the key given cannot open are not counted).
pub const MAX_SLOTS_TRIED: usize = 16;
/// Most key-derivation work one open spends over all the slots it tries, in KiB of Argon2
/// memory × passes: 32 GiB·passes, a few seconds to half a minute on one core (one default
/// slot costs 64 MiB × 3).
pub const MAX_KDF_WORK: u64 = 32 << 20;

/// What this host expects of a repository it opens, beside a key that opens it.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The repository id the host is configured for (`--repository-id`): a repository with
    /// another id (a swapped config and key slots) is refused.
    pub expected_id: Option<String>,
    /// Try this key slot first (the one the host opened the repository with last time).
    pub preferred_slot: Option<String>,
    /// Try only this key slot (`--key-slot`).
    pub only_slot: Option<String>,
}

/// Refuse a repository whose id is not the one the host expects.
fn check_expected_id(config: &Config, options: &OpenOptions, location: &str) -> Result<()> {
    match &options.expected_id {
        Some(expected) if !expected.eq_ignore_ascii_case(&config.id) => Err(Error::invalid(format!(
            "{location} holds repository {}, not {expected}, the one this host is configured for",
            config.id
        ))
        .with_hint(
            "someone may have replaced the repository's config and key slots to make this host write where they hold the key; \
             check the storage, or change --repository-id (COFFER_REPOSITORY_ID) if the repository was replaced on purpose",
        )),
        _ => Ok(()),
    }
}

/// `config`: sealed JSON, written last by `init`; its presence marks a repository.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub version: u32,
    /// Random id of this repository.
    pub id: String,
    pub created: jiff::Timestamp,
    pub chunker: ChunkerParams,
    /// Target size of pack objects.
    pub pack_size: u32,
}

/// Content-defined chunking parameters, fixed at `init` (changing them breaks deduplication).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

impl ChunkerParams {
    /// Parameters around an average chunk size (a power of two between 4 KiB and 16 MiB).
    pub fn with_average(avg_size: u32) -> Result<Self> {
        if !avg_size.is_power_of_two() || !(4096..=16 << 20).contains(&avg_size) {
            return Err(Error::invalid(format!(
                "average chunk size {avg_size} is not a power of two between 4 KiB and 16 MiB"
            ))
            .with_hint("use e.g. --chunk-size 1MiB"));
        }
        Ok(ChunkerParams {
            min_size: avg_size / 4,
            avg_size,
            max_size: avg_size * 4,
        })
    }
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            min_size: 256 << 10,
            avg_size: 1 << 20,
            max_size: 4 << 20,
        }
    }
}

/// Options for [`Repository::init`].
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub chunker: ChunkerParams,
    pub pack_size: u32,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunker: ChunkerParams::default(),
            pack_size: 16 << 20,
        }
    }
}

/// Names of the object folders.
pub mod paths {
    pub const CONFIG: &str = "config";
    pub const KEYS: &str = "keys/";
    pub const DATA: &str = "data/";
    pub const INDEX: &str = "index/";
    pub const SNAPSHOTS: &str = "snapshots/";
    pub const AUDIT: &str = "audit/";
    pub const RUNS: &str = "runs/";
    pub const PRUNE_MARKS: &str = "prune/";
    pub const SHARD_PLANS: &str = "shards/";
    pub const SUMMARIES: &str = "summaries/";
    pub const LOGS: &str = "logs/";

    /// `data/<first two hex digits>/<pack id>`: fans packs out over 256 folders.
    pub fn pack(id: &super::PackId) -> String {
        let hex = id.to_hex();
        format!("{DATA}{}/{hex}", &hex[..2])
    }
}

/// An opened repository: storage plus unlocked keys.
pub struct Repository {
    storage: Arc<dyn Storage>,
    keys: Keys,
    config: Config,
    /// Kept to wrap new key slots; zeroized on drop. `None` when opened with a write-only key.
    master: Option<MasterSecret>,
    /// The id of the key slot that opened the repository.
    opened_slot: String,
    /// This host's local copy of the index, if it keeps one ([`Repository::set_index_cache`]).
    index_cache: Option<index_cache::IndexCache>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("location", &self.storage.location())
            .field("id", &self.config.id)
            .finish()
    }
}

impl Repository {
    /// Create a new repository in empty storage.
    pub async fn init(
        storage: Arc<dyn Storage>,
        provider: &dyn KeyProvider,
        options: InitOptions,
    ) -> Result<Self> {
        if storage.exists(paths::CONFIG).await? {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("{} already holds a repository", storage.location()),
            )
            .with_hint("use it as it is, or choose an empty location"));
        }
        probe_conditional_create(storage.as_ref()).await?;
        remove_orphaned_key_slots(storage.as_ref()).await?;
        let master = MasterSecret::generate()?;
        let mut repo_id = [0u8; 16];
        crate::crypto::fill_random(&mut repo_id)?;
        let config = Config {
            version: FORMAT_VERSION,
            id: hex::encode(repo_id),
            created: jiff::Timestamp::now(),
            chunker: options.chunker,
            pack_size: options.pack_size,
        };
        let slot = provider.wrap(&master, &config.id).await?;
        // The key slot first: a config without a key would be a locked-out repository.
        let slot_id = keyslots::store_slot(storage.as_ref(), &slot).await?;
        let keys = Keys::derive(&master);
        let config_json = serde_json::to_vec(&config)
            .map_err(|e| Error::invalid("encoding config").with_source(e))?;
        let sealed = pack_body(&keys, Role::Config, &config_json)?;
        if storage.put_if_absent(paths::CONFIG, &sealed).await? == PutOutcome::AlreadyExists {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("{} was initialised concurrently", storage.location()),
            ));
        }
        Ok(Repository {
            storage,
            keys,
            config,
            master: Some(master),
            opened_slot: slot_id,
            index_cache: None,
        })
    }

    /// Open an existing repository, unlocking it with `provider`, with no expectations of
    /// the host (see [`Repository::open_with`]).
    pub async fn open(storage: Arc<dyn Storage>, provider: &dyn KeyProvider) -> Result<Self> {
        Self::open_with(storage, provider, &OpenOptions::default()).await
    }

    /// Open an existing repository, unlocking it with `provider`.
    ///
    /// Key slots are untrusted input (anyone who can write to the storage can add one), so the
    /// work they can ask for is bounded in total, not only per slot: the slot `options` prefers
    /// (the one this host opened with last) is tried first, then the others cheapest first, at
    /// most [`MAX_SLOTS_TRIED`] of them and [`MAX_KDF_WORK`] of key derivation in all; what
    /// was passed over is named in the error. A slot whose master secret does not decrypt the
    /// config (left behind by an `init` that crashed before writing its config) is passed over,
    /// and so is a slot this build cannot read (unparsable, of an unknown kind or version, or
    /// asking for key-derivation costs above the bounds), each with a warning. A repository
    /// whose id is not the one `options` expects is refused.
    pub async fn open_with(
        storage: Arc<dyn Storage>,
        provider: &dyn KeyProvider,
        options: &OpenOptions,
    ) -> Result<Self> {
        let config_bytes = storage
            .get(paths::CONFIG, MAX_SMALL_OBJECT)
            .await
            .map_err(|e| {
                if e.kind() == ErrorKind::NotFound {
                    Error::not_found(format!("no coffer repository at {}", storage.location()))
                        .with_hint("check --repo, or create one with `coffer init`")
                } else {
                    e
                }
            })?;
        let listed = storage.list(paths::KEYS).await?;
        if listed.is_empty() {
            return Err(Error::corrupt(format!(
                "{} has no key slots",
                storage.location()
            )));
        }
        let mut candidates = Vec::new();
        for meta in listed {
            let id = meta.name.trim_start_matches(paths::KEYS).to_string();
            if options.only_slot.as_ref().is_some_and(|only| *only != id) {
                continue;
            }
            match read_key_slot(storage.as_ref(), &meta).await {
                Ok(slot) => {
                    // Kinds this provider does not open cost nothing and are not tries.
                    if let Some(cost) = provider.cost(&slot) {
                        candidates.push((id, slot, cost));
                    }
                }
                Err(e) if e.kind() == ErrorKind::Storage => return Err(e),
                Err(e) => tracing::warn!(slot = %meta.name, "skipping key slot: {e}"),
            }
        }
        if let Some(only) = &options.only_slot
            && candidates.is_empty()
        {
            return Err(Error::not_found(format!(
                "key slot {only} is not in {} or is not one {} opens",
                storage.location(),
                provider.describe()
            ))
            .with_hint("list the slots with `coffer key list`"));
        }
        let preferred = options.preferred_slot.as_deref();
        candidates
            .sort_by_key(|(id, slot, cost)| (Some(id.as_str()) != preferred, *cost, slot.created));
        let mut opened_elsewhere = Vec::new();
        let mut refusals = Vec::new();
        let mut passed_over = Vec::new();
        let mut tries = 0;
        let mut work = 0u64;
        for (id, slot, cost) in candidates {
            if tries == MAX_SLOTS_TRIED || work.saturating_add(cost) > MAX_KDF_WORK {
                passed_over.push(id);
                continue;
            }
            tries += 1;
            work += cost;
            let master = match provider.unwrap(&slot).await {
                Ok(Some(master)) => master,
                Ok(None) => continue,
                Err(e) => {
                    let what = match slot_key_url(&slot) {
                        Some(key) => format!("{} slot {id} ({key})", slot.kind()),
                        None => format!("{} slot {id}", slot.kind()),
                    };
                    tracing::debug!("{what} did not open: {e}");
                    refusals.push(match e.hint() {
                        Some(hint) => format!("{what}: {e} ({hint})"),
                        None => format!("{what}: {e}"),
                    });
                    continue;
                }
            };
            let keys = Keys::derive(&master);
            let Ok(json) = unpack_body(
                &keys,
                Role::Config,
                &config_bytes,
                MAX_SMALL_PLAINTEXT,
                &"config",
            ) else {
                opened_elsewhere.push(id);
                continue;
            };
            let config: Config = serde_json::from_slice(&json).map_err(|e| {
                Error::corrupt(format!("{}: config is not valid", storage.location()))
                    .with_source(e)
            })?;
            if config.version != FORMAT_VERSION {
                return Err(unsupported_version(config.version));
            }
            check_expected_id(&config, options, &storage.location())?;
            return Ok(Repository {
                storage,
                keys,
                config,
                master: Some(master),
                opened_slot: id,
                index_cache: None,
            });
        }
        if !opened_elsewhere.is_empty() {
            tracing::warn!(
                slots = %opened_elsewhere.join(", "),
                "key slots open with this passphrase but hold another key than the config's (left by an interrupted init?)"
            );
        }
        let mut message = format!(
            "no key slot of {} opens with {}",
            storage.location(),
            provider.describe()
        );
        for refusal in &refusals {
            message.push_str("\n  ");
            message.push_str(refusal);
        }
        let mut hint =
            "check COFFER_PASSWORD / COFFER_PASSWORD_FILE, or the KMS permissions of this host"
                .to_string();
        if !passed_over.is_empty() {
            message.push_str(&format!(
                "\n  not tried, beyond the {MAX_SLOTS_TRIED} slots or the key-derivation work one open may cost: {}",
                passed_over.join(", ")
            ));
            hint = "name the slot to open with --key-slot ID (COFFER_KEY_SLOT); slots nobody made are an attack or debris: `coffer key list`, `coffer key remove`".to_string();
        }
        Err(Error::new(ErrorKind::WrongPassword, message).with_hint(hint))
    }

    /// Who wrote `snapshot`, as far as this key can tell: only a full key verifies the mark a
    /// full key made, so to a write-only key nothing is proven.
    pub fn written_by(&self, snapshot: &Snapshot) -> snapshot::WrittenBy {
        use snapshot::WrittenBy;
        let Some(writer) = &snapshot.writer else {
            return WrittenBy::NotProven {
                slot: None,
                why: "no writer recorded (before coffer 0.4)",
            };
        };
        let slot = writer.slot.clone();
        match &writer.full_key_mark {
            _ if !self.keys.can_read() => WrittenBy::NotProven {
                slot: Some(slot),
                why: "not verifiable with a write-only key",
            },
            Some(mark) if self.keys.verify_writer_mark(&snapshot.marked_bytes(), mark) => {
                WrittenBy::FullKey { slot }
            }
            Some(_) => WrittenBy::NotProven {
                slot: Some(slot),
                why: "a full-key mark that does not verify",
            },
            None => WrittenBy::NotProven {
                slot: Some(slot),
                why: "write-only key",
            },
        }
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Seal `value` as JSON and store it content-addressed under `folder`; returns its id.
    async fn save_json<T: Serialize>(
        &self,
        folder: &str,
        role: Role,
        value: &T,
    ) -> Result<[u8; 32]> {
        let json = serde_json::to_vec(value)
            .map_err(|e| Error::invalid("encoding metadata").with_source(e))?;
        let sealed = pack_body(&self.keys, role, &json)?;
        let id = storage_hash(&sealed);
        self.storage
            .put_if_absent(&format!("{folder}{}", hex::encode(id)), &sealed)
            .await?;
        Ok(id)
    }

    async fn load_json<T: DeserializeOwned>(&self, name: &str, role: Role) -> Result<T> {
        let sealed = self.storage.get(name, MAX_METADATA_OBJECT).await?;
        if storage_hash(&sealed) != *name_hash(name)? {
            return Err(
                Error::corrupt(format!("{name} does not match its name (damaged object)"))
                    .with_hint("run `coffer check`"),
            );
        }
        let json = unpack_body(&self.keys, role, &sealed, MAX_METADATA_LEN, &name)?;
        serde_json::from_slice(&json)
            .map_err(|e| Error::corrupt(format!("{name} is not valid")).with_source(e))
    }

    pub async fn save_index(&self, file: &IndexFile) -> Result<IndexId> {
        self.save_json(paths::INDEX, Role::Index, file)
            .await
            .map(IndexId)
    }

    /// Store `snapshot`, marked with the slot that writes it (and, with a full key, the mark
    /// only a full key can make), then its summary.
    pub async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotId> {
        let mut snapshot = snapshot.clone();
        let mark = self.keys.writer_mark(&snapshot.marked_bytes());
        snapshot.writer = Some(snapshot::SnapshotWriter {
            slot: self.opened_slot.clone(),
            write_only: self.is_write_only(),
            full_key_mark: mark,
        });
        let id = SnapshotId(
            self.save_json(paths::SNAPSHOTS, Role::Snapshot, &snapshot)
                .await?,
        );
        // Derived data: a snapshot whose summary is missing is summarised when read.
        if let Err(e) = self
            .save_summary(&SnapshotSummary::of(&id, &snapshot))
            .await
        {
            tracing::warn!("the summary of snapshot {} was not stored: {e}", id.short());
        }
        Ok(id)
    }

    /// Store `summary`, with a full key's mark when this is one.
    async fn save_summary(&self, summary: &SnapshotSummary) -> Result<()> {
        let mut summary = summary.clone();
        summary.full_key_mark = self.keys.writer_mark(&summary.marked_bytes());
        self.save_json(paths::SUMMARIES, Role::Summary, &summary)
            .await
            .map(|_| ())
    }

    /// Whether `summary` carries a full key's mark this key verifies.
    fn summary_marked(&self, summary: &SnapshotSummary) -> bool {
        summary
            .full_key_mark
            .as_deref()
            .is_some_and(|mark| self.keys.verify_writer_mark(&summary.marked_bytes(), mark))
    }

    /// Every snapshot's summary, oldest first (see [`summary`]): a damaged snapshot that has
    /// no summary is an error that names it, as in [`Repository::snapshots`].
    pub async fn summaries(&self) -> Result<Vec<(SnapshotId, SnapshotSummary)>> {
        Ok(self
            .summaries_stored_as()
            .await?
            .into_iter()
            .map(|(id, summary, _)| (id, summary))
            .collect())
    }

    /// [`Repository::summaries`] with the object each summary is stored as (`None`: made
    /// from the snapshot, none is stored).
    ///
    /// Summaries are a cache, and metadata a write-only key can write: with a full key, a
    /// stored summary without its mark is checked against its snapshot (the snapshot wins, and
    /// a summary that disagrees is named at warning level and replaced), then stored again with
    /// the mark, so each is checked once. A snapshot whose time is later than the store's time
    /// of its object (it claims to be from the future: forged to pass for the newest) is left
    /// out with a warning, for every key.
    async fn summaries_stored_as(&self) -> Result<Vec<summary::StoredSummary>> {
        let listed = self.storage.list(paths::SNAPSHOTS).await?;
        let ids = listed
            .iter()
            .map(|m| name_hash(&m.name).map(|hash| SnapshotId(*hash)))
            .collect::<Result<Vec<_>>>()?;
        let stored_at: HashMap<SnapshotId, jiff::Timestamp> = listed
            .iter()
            .zip(&ids)
            .filter_map(|(meta, id)| Some((*id, meta.modified?)))
            .collect();
        // Damaged summaries are only derived data lost: their snapshots are read instead.
        let (stored, _damaged) = self
            .load_folder::<SnapshotSummary>(paths::SUMMARIES, Role::Summary)
            .await?;
        let stored = stored
            .into_iter()
            .map(|(hash, summary)| {
                (
                    format!("{}{}", paths::SUMMARIES, hex::encode(hash)),
                    summary,
                )
            })
            .collect();
        let (paired, missing) = summary::pair_up(ids, stored);
        let mut all = if self.keys.can_read() {
            self.checked_against_snapshots(paired).await?
        } else {
            paired
        };
        let derived: Vec<Result<Option<(SnapshotId, SnapshotSummary)>>> = stream::iter(missing)
            .map(|id| async move {
                let name = format!("{}{}", paths::SNAPSHOTS, id.to_hex());
                match self.load_json::<Snapshot>(&name, Role::Snapshot).await {
                    Ok(snapshot) => Ok(Some((id, SnapshotSummary::of(&id, &snapshot)))),
                    // Removed since it was listed (by a forget).
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e.with_hint(
                        "run `coffer check` to list every damaged object and the snapshots it affects",
                    )),
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        for made in derived {
            if let Some((id, summary)) = made? {
                all.push((id, summary, None));
            }
        }
        all.retain(|(id, summary, _)| {
            let from_the_future = stored_at.get(id).is_some_and(|stored| {
                summary.time > *stored + jiff::SignedDuration::from_mins(FUTURE_SLACK_MINUTES)
            });
            if from_the_future {
                tracing::warn!(
                    "snapshot {} claims a time ({}) after the store wrote it: left out of listings, retention and snapshot choice (forged?); `coffer check` names it",
                    id.short(),
                    summary.time
                );
            }
            !from_the_future
        });
        all.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok(all)
    }

    /// Stored summaries a full key has not marked, checked against their snapshots: the
    /// snapshot wins; each checked one is stored again with the mark (best effort).
    async fn checked_against_snapshots(
        &self,
        paired: Vec<summary::StoredSummary>,
    ) -> Result<Vec<summary::StoredSummary>> {
        let checked: Vec<Result<Option<summary::StoredSummary>>> = stream::iter(paired)
            .map(|(id, summary, object)| async move {
                if self.summary_marked(&summary) {
                    return Ok(Some((id, summary, object)));
                }
                let name = format!("{}{}", paths::SNAPSHOTS, id.to_hex());
                let snapshot = match self.load_json::<Snapshot>(&name, Role::Snapshot).await {
                    Ok(snapshot) => snapshot,
                    Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e),
                };
                let derived = SnapshotSummary::of(&id, &snapshot);
                if !derived.agrees_with(&summary) {
                    tracing::warn!(
                        "summary {} disagrees with snapshot {}: the snapshot's own contents are used (a forged or damaged summary; `coffer check` names it)",
                        object.as_deref().unwrap_or("?"),
                        id.short()
                    );
                }
                // Replaced by a marked copy of what the snapshot says.
                if self.save_summary(&derived).await.is_ok()
                    && let Some(old) = &object
                    && let Err(e) = self.storage.delete(old).await
                {
                    tracing::debug!("the unmarked summary {old} was not removed: {e}");
                }
                Ok(Some((id, derived, None)))
            })
            .buffer_unordered(8)
            .collect()
            .await;
        let mut out = Vec::new();
        for one in checked {
            if let Some(entry) = one? {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// Store the summaries of snapshots that have none (written before summaries existed, or
    /// by a run that stopped between the two); returns how many were stored.
    pub async fn store_missing_summaries(&self) -> Result<usize> {
        let mut stored = 0;
        for (_, summary, object) in self.summaries_stored_as().await? {
            if object.is_none() {
                self.save_summary(&summary).await?;
                stored += 1;
            }
        }
        Ok(stored)
    }

    /// Stored summaries that are damaged or disagree with the snapshot they name (for
    /// `check`): they would mislead listings, retention and the SLA report.
    pub async fn summary_problems(
        &self,
        snapshots: &[(SnapshotId, Snapshot)],
    ) -> Result<Vec<String>> {
        let (stored, damaged) = self
            .load_folder::<SnapshotSummary>(paths::SUMMARIES, Role::Summary)
            .await?;
        let fix = "delete it; the next backup stores it again";
        let mut problems: Vec<String> = damaged
            .iter()
            .map(|e| format!("summary: {e} ({fix})"))
            .collect();
        let by_id: std::collections::HashMap<String, (&SnapshotId, &Snapshot)> = snapshots
            .iter()
            .map(|(id, s)| (id.to_hex(), (id, s)))
            .collect();
        for (hash, summary) in stored {
            let Some((id, snapshot)) = by_id.get(&summary.snapshot) else {
                continue;
            };
            if !SnapshotSummary::of(id, snapshot).agrees_with(&summary) {
                problems.push(format!(
                    "summary {}{} does not match snapshot {} ({fix})",
                    paths::SUMMARIES,
                    hex::encode(hash),
                    id.short()
                ));
            }
        }
        Ok(problems)
    }

    /// Snapshots whose time is later than the store's time of their object (beyond the clock
    /// slack): each claims to be from the future, which only a forged one does (for `check`).
    pub async fn future_dated(&self, snapshots: &[(SnapshotId, Snapshot)]) -> Result<Vec<String>> {
        let stored_at: HashMap<String, jiff::Timestamp> = self
            .storage
            .list(paths::SNAPSHOTS)
            .await?
            .into_iter()
            .filter_map(|m| Some((m.name, m.modified?)))
            .collect();
        Ok(snapshots
            .iter()
            .filter_map(|(id, snapshot)| {
                let stored = stored_at.get(&format!("{}{}", paths::SNAPSHOTS, id.to_hex()))?;
                (snapshot.time > *stored + jiff::SignedDuration::from_mins(FUTURE_SLACK_MINUTES))
                    .then(|| {
                        format!(
                            "snapshot {} claims the time {} but was stored at {}: forged to pass for the newest, or written with a wrong clock; listings, retention and snapshot choice leave it out (delete the object {}{} once understood)",
                            id.short(),
                            snapshot.time,
                            stored,
                            paths::SNAPSHOTS,
                            id.to_hex()
                        )
                    })
            })
            .collect())
    }

    /// Delete the summaries of the snapshots `removed` (full hex ids), after the snapshots, and
    /// those whose snapshot is gone already (an earlier forget stopped between the two). The
    /// summaries are read before the snapshots are listed: a backup stores its snapshot before
    /// its summary, so a summary whose snapshot the later listing lacks has none.
    pub async fn remove_summaries_of(&self, removed: &HashSet<String>) -> Result<()> {
        let (stored, _damaged) = self
            .load_folder::<SnapshotSummary>(paths::SUMMARIES, Role::Summary)
            .await?;
        let present: HashSet<String> = self
            .storage
            .list(paths::SNAPSHOTS)
            .await?
            .iter()
            .filter_map(|m| name_hash(&m.name).ok().map(|hash| hex::encode(*hash)))
            .collect();
        for (hash, summary) in stored {
            if removed.contains(&summary.snapshot) || !present.contains(&summary.snapshot) {
                self.storage
                    .delete(&format!("{}{}", paths::SUMMARIES, hex::encode(hash)))
                    .await?;
            }
        }
        Ok(())
    }

    /// Read every index file into one in-memory index. A damaged index file is an error that
    /// names it; [`Repository::load_index_reporting`] reads past damage instead.
    pub async fn load_index(&self) -> Result<Index> {
        let (index, mut damaged) = self.load_index_from(true).await?;
        match damaged.pop() {
            Some(e) => Err(e),
            None => Ok(index),
        }
    }

    /// Keep a local copy of the index in `cache` ([`index_cache`]): [`Repository::load_index`]
    /// then parses the index files only when they changed.
    pub fn set_index_cache(&mut self, cache: index_cache::IndexCache) {
        self.index_cache = Some(cache);
    }

    /// Read every index file that is intact; the damaged ones, and damaged prune marks, come
    /// back as errors (so [`Repository::load_index`] refuses to go on with a mark it cannot
    /// read). Failing to reach the storage is still an error of the whole call.
    ///
    /// Prune marks are listed *before* the index files: a sweep deletes its mark only after
    /// the index files naming its packs, so an index read after a mark was found missing
    /// names none of the packs that sweep deleted.
    ///
    /// Never from the local cache: `check` reads every index file through here.
    pub async fn load_index_reporting(&self) -> Result<(Index, Vec<Error>)> {
        self.load_index_from(false).await
    }

    async fn load_index_from(&self, use_cache: bool) -> Result<(Index, Vec<Error>)> {
        let (marks, mut damaged) = self.list_prune_marks_reporting().await?;
        let listed = self.storage.list(paths::INDEX).await?;
        // Only an index read without damage is cached, and a cached one only stands in for one
        // that would be (the same names listed: the same generation).
        let cached = match &self.index_cache {
            Some(cache) if use_cache && damaged.is_empty() => {
                let names: Vec<String> = listed.iter().map(|m| m.name.clone()).collect();
                let marks: Vec<String> = marks.iter().map(|m| m.name.clone()).collect();
                Some((
                    cache,
                    index_cache::IndexCache::generation(&self.config.id, &names, &marks),
                ))
            }
            _ => None,
        };
        if let Some((cache, generation)) = &cached
            && let Some(index) = cache.load(&self.keys, generation)
        {
            return Ok((index, damaged));
        }
        let condemned: HashSet<PackId> = marks
            .into_iter()
            .flat_map(|listed| listed.mark.packs.into_iter().map(|p| p.id))
            .collect();
        let (files, damaged_files) = self.load_listed::<IndexFile>(listed, Role::Index).await?;
        let clean = damaged_files.is_empty();
        damaged.extend(damaged_files.into_iter().map(|e| e.context("index file")));
        let index = Index::ranked(
            files.into_iter().map(|(_, f)| f).collect(),
            |pack| u8::from(condemned.contains(pack)),
            condemned.clone(),
        );
        if let Some((cache, generation)) = &cached
            && clean
        {
            cache.store(&self.keys, generation, &index);
        }
        Ok((index, damaged))
    }

    /// One index file.
    pub async fn load_index_file(&self, id: &IndexId) -> Result<IndexFile> {
        self.load_json(&format!("{}{id}", paths::INDEX), Role::Index)
            .await
    }

    /// Every intact index file with its id, and the damaged ones as errors.
    pub async fn load_index_files_reporting(
        &self,
    ) -> Result<(Vec<(IndexId, IndexFile)>, Vec<Error>)> {
        let (files, damaged) = self
            .load_folder::<IndexFile>(paths::INDEX, Role::Index)
            .await?;
        Ok((
            files
                .into_iter()
                .map(|(hash, file)| (IndexId(hash), file))
                .collect(),
            damaged,
        ))
    }

    /// All snapshots, oldest first. A damaged snapshot is an error that names it;
    /// [`Repository::snapshots_reporting`] reads past damage instead.
    pub async fn snapshots(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        let (all, mut damaged) = self.snapshots_reporting().await?;
        match damaged.pop() {
            Some(e) => Err(e),
            None => Ok(all),
        }
    }

    /// Every intact snapshot, oldest first, and the damaged ones as errors.
    pub async fn snapshots_reporting(&self) -> Result<(Vec<(SnapshotId, Snapshot)>, Vec<Error>)> {
        let (loaded, damaged) = self
            .load_folder::<Snapshot>(paths::SNAPSHOTS, Role::Snapshot)
            .await?;
        let mut all: Vec<(SnapshotId, Snapshot)> = loaded
            .into_iter()
            .map(|(hash, snapshot)| (SnapshotId(hash), snapshot))
            .collect();
        all.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok((all, damaged))
    }

    /// Load every object of a metadata folder, eight at a time. Objects that fail to
    /// authenticate or parse are returned as errors beside the rest; one removed since the
    /// listing is left out; only a storage failure (listing, or a read that exhausted its
    /// retries) fails the call.
    async fn load_folder<T: DeserializeOwned + Send>(
        &self,
        folder: &str,
        role: Role,
    ) -> Result<(Vec<([u8; 32], T)>, Vec<Error>)> {
        let names = self.storage.list(folder).await?;
        self.load_listed(names, role).await
    }

    /// [`Repository::load_folder`] for objects already listed.
    async fn load_listed<T: DeserializeOwned + Send>(
        &self,
        names: Vec<crate::storage::ObjectMeta>,
        role: Role,
    ) -> Result<(Vec<([u8; 32], T)>, Vec<Error>)> {
        let results: Vec<Result<([u8; 32], T)>> = stream::iter(names)
            .map(|meta| async move {
                let hash = *name_hash(&meta.name)?;
                let value = self.load_json::<T>(&meta.name, role).await?;
                Ok((hash, value))
            })
            .buffer_unordered(8)
            .collect()
            .await;
        let mut loaded = Vec::with_capacity(results.len());
        let mut damaged = Vec::new();
        for result in results {
            match result {
                Ok(v) => loaded.push(v),
                // Removed since it was listed (by a prune): it is no longer part of the folder.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                // Not damage: these keys may not read such objects (a write-only key).
                Err(e) if matches!(e.kind(), ErrorKind::Storage | ErrorKind::WrongPassword) => {
                    return Err(e);
                }
                Err(e) => damaged.push(e.with_hint(
                    "run `coffer check` to list every damaged object and the snapshots it affects",
                )),
            }
        }
        Ok((loaded, damaged))
    }

    /// Delete the snapshot object with the full id `id` (hex). Only the snapshot goes: the
    /// packs and index files it referenced stay for prune to judge.
    pub async fn remove_snapshot(&self, id: &str) -> Result<()> {
        self.require_full_key()?;
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid(format!("{id:?} is not a full snapshot id")));
        }
        self.storage
            .delete(&format!("{}{}", paths::SNAPSHOTS, id.to_ascii_lowercase()))
            .await
    }

    /// Find a snapshot by `latest` or a unique id prefix.
    pub async fn find_snapshot(&self, spec: &str) -> Result<(SnapshotId, Snapshot)> {
        if spec == "latest" {
            return self.snapshots().await?.pop().ok_or_else(|| {
                Error::not_found(format!("{} has no snapshots yet", self.storage.location()))
                    .with_hint("run `coffer backup` first")
            });
        }
        let spec = spec.to_ascii_lowercase();
        if spec.is_empty() || !spec.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::invalid(format!("{spec:?} is not a snapshot id"))
                .with_hint("give `latest` or an id from `coffer snapshots`"));
        }
        let names = self.storage.list(paths::SNAPSHOTS).await?;
        let matches: Vec<_> = names
            .iter()
            .filter(|m| {
                m.name
                    .strip_prefix(paths::SNAPSHOTS)
                    .is_some_and(|hex| hex.starts_with(&spec))
            })
            .collect();
        match matches.as_slice() {
            [one] => {
                let id = SnapshotId(*name_hash(&one.name)?);
                Ok((id, self.load_json(&one.name, Role::Snapshot).await?))
            }
            [] => Err(Error::not_found(format!("no snapshot with id {spec}"))
                .with_hint("list them with `coffer snapshots`")),
            _ => Err(Error::invalid(format!(
                "snapshot id prefix {spec} is ambiguous ({} snapshots match)",
                matches.len()
            ))
            .with_hint("give more digits")),
        }
    }

    /// Read, check and decrypt one blob, reading only its byte range of the pack. Each location
    /// the index claims is tried in turn: an index file is metadata a write-only key can forge,
    /// and one may name a pack a prune deleted since, so a location whose pack is missing or
    /// whose bytes are not the blob is passed over (with a warning) for the next.
    pub async fn read_blob(&self, index: &Index, id: &BlobId) -> Result<Vec<u8>> {
        let locations = index.locations(id);
        if locations.is_empty() {
            return Err(Error::corrupt(format!(
                "blob {} is referenced but not in the index",
                id.short()
            ))
            .with_hint("run `coffer check`; restore from another snapshot"));
        }
        let mut first_error = None;
        for loc in locations {
            match self.read_blob_at(id, &loc).await {
                Ok(plain) => return Ok(plain),
                Err(e) if matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::NotFound) => {
                    tracing::warn!("{e}; trying another copy");
                    first_error.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(first_error.unwrap_or_else(|| Error::corrupt("no copy of the blob")))
    }

    /// One blob at one claimed location.
    async fn read_blob_at(&self, id: &BlobId, loc: &index::BlobLocation) -> Result<Vec<u8>> {
        let name = paths::pack(&loc.pack);
        let start = u64::from(loc.offset);
        let what = format!("blob {} in pack {}", id.short(), loc.pack.short());
        let sealed = self
            .storage
            .get_range(&name, start..start + u64::from(loc.length))
            .await
            .map_err(|e| {
                if e.kind() == ErrorKind::NotFound {
                    Error::corrupt(format!("{what}: the pack is missing from storage"))
                        .with_source(e)
                        .with_hint("run `coffer check`; restore from another snapshot")
                } else {
                    e
                }
            })?;
        self.open_blob(id, loc.kind, loc.raw_length, &sealed, &what)
    }

    /// The entries a pack's own header lists (authenticated), reading only its end: `None`
    /// when the pack is not in storage. `size` is the stored size (from a listing).
    pub async fn read_pack_header(
        &self,
        pack: &PackId,
        size: u64,
    ) -> Result<Option<Vec<pack::PackEntry>>> {
        let name = paths::pack(pack);
        let what = format!("pack {}", pack.short());
        let tail = match self
            .storage
            .get_range(&name, size.saturating_sub(4)..size)
            .await
        {
            Ok(tail) => tail,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let tail: [u8; 4] = tail
            .as_slice()
            .try_into()
            .map_err(|_| Error::corrupt(format!("{what} is too short to be a pack")))?;
        let range = pack::header_range(size, tail, &what)?;
        let blob_area = range.start;
        let sealed = self.storage.get_range(&name, range).await?;
        pack::parse_header(&self.keys, &sealed, blob_area, &what).map(Some)
    }

    /// Authenticate and decrypt a sealed blob and prove it is the blob named `id`.
    pub fn open_blob(
        &self,
        id: &BlobId,
        kind: pack::BlobKind,
        raw_length: u32,
        sealed: &[u8],
        what: &dyn std::fmt::Display,
    ) -> Result<Vec<u8>> {
        let plain = unpack_body(&self.keys, kind.role(), sealed, raw_length as usize, what)?;
        if self.keys.content_id(&plain) != id.0 {
            return Err(Error::corrupt(format!("{what} does not match its id"))
                .with_hint("run `coffer check`"));
        }
        Ok(plain)
    }

    /// Read a tree blob as JSON.
    pub async fn read_tree<T: DeserializeOwned>(&self, index: &Index, id: &BlobId) -> Result<T> {
        let bytes = self.read_blob(index, id).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::corrupt(format!("tree {} is not valid", id.short())).with_source(e))
    }

    /// Every blob a database tree references: itself, its table trees and their chunks.
    pub async fn database_blobs(&self, index: &Index, tree: &BlobId) -> Result<Vec<BlobId>> {
        let database: tree::DatabaseTree = self.read_tree(index, tree).await?;
        let mut blobs = vec![*tree];
        for table in &database.tables {
            blobs.push(table.tree);
            let table_tree: tree::TableTree = self.read_tree(index, &table.tree).await?;
            blobs.extend(table_tree.chunks.iter().map(|c| c.id));
        }
        Ok(blobs)
    }

    /// Store a pack under its content name.
    pub async fn save_pack(&self, id: &PackId, bytes: &[u8]) -> Result<()> {
        self.storage
            .put_if_absent(&paths::pack(id), bytes)
            .await
            .map(|_| ())
    }
}

/// Refuse storage that silently ignores put-if-absent (some S3-compatible stores ignore
/// `If-None-Match`): on such a store two writers could overwrite each other's objects.
async fn probe_conditional_create(storage: &dyn Storage) -> Result<()> {
    let mut suffix = [0u8; 8];
    crate::crypto::fill_random(&mut suffix)?;
    let name = format!("probe-{}", hex::encode(suffix));
    storage.put_if_absent(&name, b"first").await?;
    let second = storage.put_if_absent(&name, b"second").await?;
    let kept = storage.get(&name, MAX_SMALL_OBJECT).await?;
    // Storage with an immutability policy may refuse the delete; a stray probe is harmless.
    let _ = storage.delete(&name).await;
    if second != PutOutcome::AlreadyExists || kept != b"first" {
        return Err(Error::invalid(format!(
            "{} does not honour conditional writes (put-if-absent): an existing object was overwritten",
            storage.location()
        ))
        .with_hint("use a store that supports conditional PUT (If-None-Match: *), such as Azure Blob, AWS S3, GCS or a recent MinIO"));
    }
    Ok(())
}

/// Read and parse one key slot, refusing ones this build cannot use.
pub(crate) async fn read_key_slot(
    storage: &dyn Storage,
    meta: &crate::storage::ObjectMeta,
) -> Result<KeySlot> {
    let bytes = storage.get(&meta.name, MAX_SMALL_OBJECT).await?;
    let slot: KeySlot = serde_json::from_slice(&bytes).map_err(|e| {
        // Name the kind if the slot says which: a newer coffer may have written it.
        let kind = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("kind")?.as_str().map(str::to_string));
        match kind {
            Some(kind) => Error::invalid(format!(
                "key slot of kind {kind:?}, which this coffer cannot open"
            )),
            None => Error::corrupt("not a valid key slot").with_source(e),
        }
    })?;
    if slot.version != FORMAT_VERSION {
        return Err(unsupported_version(slot.version));
    }
    Ok(slot)
}

/// Remove key slots that no config goes with: an `init` that stopped between writing its key
/// slot and its config left them, and nothing can refer to them. Slots younger than
/// [`ORPHAN_SLOT_AGE`] are left alone, as they may belong to an `init` running right now
/// elsewhere; `open` passes over any slot that does not open the config, so one left here
/// (or on a store that refuses deletes) is harmless.
async fn remove_orphaned_key_slots(storage: &dyn Storage) -> Result<()> {
    let now = jiff::Timestamp::now();
    for meta in storage.list(paths::KEYS).await? {
        let orphan = match read_key_slot(storage, &meta).await {
            Ok(slot) => now.duration_since(slot.created) > ORPHAN_SLOT_AGE,
            Err(e) if e.kind() == ErrorKind::Storage => return Err(e),
            Err(_) => false,
        };
        if !orphan {
            continue;
        }
        tracing::info!(slot = %meta.name, "removing a key slot left by an interrupted init");
        if let Err(e) = storage.delete(&meta.name).await {
            tracing::warn!(slot = %meta.name, "cannot remove the key slot left by an interrupted init: {e}");
        }
    }
    Ok(())
}

/// How old a key slot without a config must be before `init` takes it for a leftover.
const ORPHAN_SLOT_AGE: jiff::SignedDuration = jiff::SignedDuration::from_mins(15);

fn unsupported_version(version: u32) -> Error {
    Error::invalid(format!(
        "repository format version {version} is not supported by this coffer (it reads version {FORMAT_VERSION})"
    ))
    .with_hint("use a coffer release that supports this repository version")
}

/// The hash encoded in the last path segment of an object name.
pub(crate) fn name_hash(name: &str) -> Result<Box<[u8; 32]>> {
    let last = name.rsplit('/').next().unwrap_or(name);
    let mut out = [0u8; 32];
    hex::decode_to_slice(last, &mut out)
        .map_err(|_| Error::corrupt(format!("unexpected object name {name:?}")))?;
    Ok(Box::new(out))
}
