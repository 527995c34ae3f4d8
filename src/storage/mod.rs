//! Storage backends: where repository objects live.
//!
//! A backend moves opaque, already-encrypted bytes under `/`-separated names relative to the
//! repository root; it never sees plaintext or keys. The contract every backend keeps:
//!
//! - [`Storage::put_if_absent`] is atomic: readers see either no object or the whole object, and
//!   an existing object is never replaced (two writers cannot clobber each other).
//! - Objects are immutable once written; only [`Storage::delete`] (used by prune) removes them.
//! - [`Storage::list`] may omit objects being written concurrently, never returns partial ones.
//!
//! Object stores (Azure Blob, S3, GCS) implement the same trait in [`object`]; [`retry`],
//! [`cache`] and [`metered`] wrap any backend.

pub mod cache;
pub mod local;
pub mod metered;
pub mod object;
pub mod retry;

use std::fmt;
use std::ops::Range;

use async_trait::async_trait;

use crate::error::Result;

/// Outcome of a conditional create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    /// The name was taken. For content-addressed objects this means the same bytes are there.
    AlreadyExists,
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Name relative to the repository root, e.g. `index/3fa1…`.
    pub name: String,
    pub size: u64,
    /// When the store wrote the object, by the store's own clock (`Last-Modified`, a file's
    /// mtime). Prune compares these times with each other only, never with a host's clock.
    pub modified: Option<jiff::Timestamp>,
}

/// A place that stores repository objects.
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    /// Where this is, for messages (no credentials).
    fn location(&self) -> String;

    /// Create `name` holding `data` unless it exists.
    async fn put_if_absent(&self, name: &str, data: &[u8]) -> Result<PutOutcome>;

    /// Read a whole object of at most `max_len` bytes. A larger object is refused before its
    /// body is read ([`too_large`]): objects are read whole only before their hash is checked,
    /// and a planted or damaged object must not make coffer allocate without bound.
    async fn get(&self, name: &str, max_len: u64) -> Result<Vec<u8>>;

    /// Read `range` of an object (the range must lie inside it).
    async fn get_range(&self, name: &str, range: Range<u64>) -> Result<Vec<u8>>;

    /// List objects whose names start with `prefix` (a folder such as `snapshots/`).
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Remove an object; removing a missing object is not an error.
    async fn delete(&self, name: &str) -> Result<()>;

    /// Whether an object exists.
    async fn exists(&self, name: &str) -> Result<bool>;
}

/// The error for an object larger than its kind may be.
pub fn too_large(name: &str, size: u64, max_len: u64) -> crate::error::Error {
    crate::error::Error::corrupt(format!(
        "{name} is {size} bytes, more than the {max_len} bytes such an object can have"
    ))
    .with_hint("run `coffer check`: the object is damaged or was not written by coffer")
}

/// How to assemble the storage stack for a location.
#[derive(Debug, Clone, Default)]
pub struct StorageOptions {
    /// Folder for the local metadata cache of remote repositories (none: no cache).
    pub cache_dir: Option<std::path::PathBuf>,
}

/// An opened storage stack and its transfer counters.
#[derive(Debug, Clone)]
pub struct OpenedStorage {
    pub storage: std::sync::Arc<dyn Storage>,
    pub traffic: std::sync::Arc<metered::Traffic>,
}

/// Open the storage a repository location names: a bare path or `file:///path`, or an object
/// store (`azblob://`, `s3://`, `gs://`). Remote stores are wrapped, outermost first, in the
/// metadata cache, retries with backoff, and the traffic meter.
pub fn open_location(
    location: &str,
    options: &StorageOptions,
) -> crate::error::Result<OpenedStorage> {
    open_stack(location, options, retry::RetryPolicy::default())
}

/// The storage at `location` without the metadata cache and retrying only as `retry` says:
/// for probes (`coffer doctor`), where a refusal must show at once, not after minutes of
/// retries.
pub fn open_uncached(
    location: &str,
    retry: retry::RetryPolicy,
) -> crate::error::Result<std::sync::Arc<dyn Storage>> {
    Ok(open_stack(location, &StorageOptions { cache_dir: None }, retry)?.storage)
}

fn open_stack(
    location: &str,
    options: &StorageOptions,
    retry_policy: retry::RetryPolicy,
) -> crate::error::Result<OpenedStorage> {
    use std::sync::Arc;

    use crate::error::Error;
    let traffic = Arc::new(metered::Traffic::default());
    let meter = |inner: Arc<dyn Storage>| -> Arc<dyn Storage> {
        Arc::new(metered::MeteredStorage::new(inner, traffic.clone()))
    };
    if location.is_empty() {
        return Err(Error::invalid("the repository location is empty")
            .with_hint("pass --repo PATH or set COFFER_REPO"));
    }
    if let Some(path) = location.strip_prefix("file://") {
        if path.is_empty() {
            return Err(Error::invalid(
                "file:// needs a path, e.g. file:///var/backups/coffer",
            ));
        }
        return Ok(OpenedStorage {
            storage: meter(Arc::new(local::LocalStorage::new(path))),
            traffic,
        });
    }
    if !location.contains("://") {
        return Ok(OpenedStorage {
            storage: meter(Arc::new(local::LocalStorage::new(location))),
            traffic,
        });
    }
    let backend = meter(Arc::new(object::ObjectStorage::open(location)?));
    let retrying: Arc<dyn Storage> = Arc::new(retry::RetryingStorage::new(backend, retry_policy));
    let storage = match &options.cache_dir {
        Some(dir) => {
            let key = blake3::hash(location.as_bytes()).to_hex();
            Arc::new(cache::CachedStorage::new(
                retrying,
                dir.join(&key.as_str()[..16]),
            )) as Arc<dyn Storage>
        }
        None => retrying,
    };
    Ok(OpenedStorage { storage, traffic })
}
