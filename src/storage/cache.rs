//! A local cache of a repository's index files, snapshots and snapshot summaries.
//!
//! Those objects are immutable and named by the BLAKE3 hash of their bytes, so a cached copy is
//! valid exactly when its hash matches its name: every read checks that, and a bad copy is
//! dropped and fetched again. Listings always come from the repository; cached objects it no
//! longer lists are removed. The cache is therefore safe to delete at any time.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use super::{ObjectMeta, PutOutcome, Storage};
use crate::error::Result;

const CACHED_FOLDERS: &[&str] = &["index/", "snapshots/", "summaries/"];

#[derive(Debug)]
pub struct CachedStorage {
    inner: Arc<dyn Storage>,
    dir: PathBuf,
}

impl CachedStorage {
    /// Cache `inner`'s metadata under `dir` (one folder per repository).
    pub fn new(inner: Arc<dyn Storage>, dir: PathBuf) -> Self {
        CachedStorage { inner, dir }
    }

    fn cached_path(&self, name: &str) -> Option<PathBuf> {
        let cacheable = CACHED_FOLDERS.iter().any(|f| name.starts_with(f))
            && !name
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..");
        cacheable.then(|| self.dir.join(name))
    }

    fn read_valid(path: &Path, name: &str) -> Option<Vec<u8>> {
        let bytes = std::fs::read(path).ok()?;
        let expected = name.rsplit('/').next()?;
        if blake3::hash(&bytes).to_hex().as_str() == expected {
            Some(bytes)
        } else {
            let _ = std::fs::remove_file(path);
            None
        }
    }

    /// Best effort: a cache that cannot be written only costs a download next time.
    fn store(path: &Path, bytes: &[u8]) {
        use std::io::Write as _;
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        let Some(dir) = path.parent() else { return };
        // Owner-only, like the repository's own objects: cached index files and snapshots
        // are encrypted, but their names and sizes are nobody else's business.
        if std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .is_err()
        {
            return;
        }
        let mut suffix = [0u8; 8];
        if crate::crypto::fill_random(&mut suffix).is_err() {
            return;
        }
        let tmp = dir.join(format!(".tmp-{}", hex::encode(suffix)));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut file| file.write_all(bytes));
        if written.is_ok() && std::fs::rename(&tmp, path).is_ok() {
            return;
        }
        let _ = std::fs::remove_file(&tmp);
    }
}

#[async_trait]
impl Storage for CachedStorage {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn put_if_absent(&self, name: &str, data: &[u8]) -> Result<PutOutcome> {
        let outcome = self.inner.put_if_absent(name, data).await?;
        if let Some(path) = self.cached_path(name) {
            Self::store(&path, data);
        }
        Ok(outcome)
    }

    async fn get(&self, name: &str, max_len: u64) -> Result<Vec<u8>> {
        let Some(path) = self.cached_path(name) else {
            return self.inner.get(name, max_len).await;
        };
        if let Some(bytes) = Self::read_valid(&path, name)
            && bytes.len() as u64 <= max_len
        {
            return Ok(bytes);
        }
        let bytes = self.inner.get(name, max_len).await?;
        Self::store(&path, &bytes);
        Ok(bytes)
    }

    async fn get_range(&self, name: &str, range: Range<u64>) -> Result<Vec<u8>> {
        self.inner.get_range(name, range).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let listed = self.inner.list(prefix).await?;
        if CACHED_FOLDERS.contains(&prefix) {
            let folder = self.dir.join(prefix.trim_end_matches('/'));
            let live: std::collections::HashSet<&str> =
                listed.iter().map(|m| m.name.as_str()).collect();
            for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
                let name = format!("{}{}", prefix, entry.file_name().to_string_lossy());
                if !live.contains(name.as_str()) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(listed)
    }

    async fn delete(&self, name: &str) -> Result<()> {
        if let Some(path) = self.cached_path(name) {
            let _ = std::fs::remove_file(path);
        }
        self.inner.delete(name).await
    }

    async fn exists(&self, name: &str) -> Result<bool> {
        self.inner.exists(name).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::storage::local::LocalStorage;
    use crate::storage::metered::{MeteredStorage, Traffic};

    #[tokio::test]
    async fn serves_validated_copies_and_follows_deletions() {
        let repo = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let traffic = Arc::new(Traffic::default());
        let metered: Arc<dyn Storage> = Arc::new(MeteredStorage::new(
            Arc::new(LocalStorage::new(repo.path())),
            traffic.clone(),
        ));
        let store = CachedStorage::new(metered.clone(), cache.path().to_path_buf());
        let body = b"sealed index bytes";
        let name = format!("index/{}", blake3::hash(body).to_hex());
        metered.put_if_absent(&name, body).await.unwrap();

        assert_eq!(store.get(&name, 1 << 20).await.unwrap(), body);
        let reads = traffic.bytes_read.load(Ordering::Relaxed);
        assert_eq!(store.get(&name, 1 << 20).await.unwrap(), body);
        assert_eq!(
            traffic.bytes_read.load(Ordering::Relaxed),
            reads,
            "second read came from the cache"
        );

        // A damaged cached copy is detected and replaced.
        std::fs::write(cache.path().join(&name), b"tampered").unwrap();
        assert_eq!(store.get(&name, 1 << 20).await.unwrap(), body);
        assert!(traffic.bytes_read.load(Ordering::Relaxed) > reads);

        // Objects gone from the repository leave the cache on the next listing.
        metered.delete(&name).await.unwrap();
        assert!(store.list("index/").await.unwrap().is_empty());
        assert!(!cache.path().join(&name).exists());
    }
}
