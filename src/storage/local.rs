//! The local-filesystem backend (`file:///path` or a bare path).
//!
//! Put-if-absent is a write to a temporary file in the target folder, `fsync`, then a hard link to
//! the final name (which fails if the name exists) and an `fsync` of the folder: a crash leaves at
//! most a `.tmp-*` file, which listings skip and any later run may delete.

use std::io::{ErrorKind as IoKind, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{ObjectMeta, PutOutcome, Storage};
use crate::error::{Error, ErrorKind, Result, ResultExt};

const TMP_PREFIX: &str = ".tmp-";

/// A repository in a local folder.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStorage { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str) -> Result<PathBuf> {
        if name.is_empty()
            || name
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(Error::invalid(format!("invalid object name {name:?}")));
        }
        Ok(self.root.join(name))
    }
}

fn io_err(op: &str, path: &Path, e: std::io::Error) -> Error {
    let kind = if e.kind() == IoKind::NotFound {
        ErrorKind::NotFound
    } else {
        ErrorKind::Storage
    };
    Error::new(kind, format!("{op} {}", path.display())).with_source(e)
}

fn put_blocking(path: &Path, data: &[u8]) -> Result<PutOutcome> {
    if path.exists() {
        return Ok(PutOutcome::AlreadyExists);
    }
    let dir = path
        .parent()
        .ok_or_else(|| Error::invalid(format!("no parent folder for {}", path.display())))?;
    std::fs::create_dir_all(dir).map_err(|e| io_err("creating folder", dir, e))?;
    let mut suffix = [0u8; 8];
    crate::crypto::fill_random(&mut suffix)?;
    let tmp = dir.join(format!("{TMP_PREFIX}{}", hex::encode(suffix)));
    let write = || -> std::io::Result<()> {
        // Owner-only: the objects are encrypted, but key slots and metadata are nobody
        // else's business on a shared host.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(data)?;
        file.sync_all()
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err("writing", &tmp, e));
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            // Make the new directory entry durable before anything refers to the object.
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_err("syncing folder", dir, e))?;
            Ok(PutOutcome::Created)
        }
        Err(e) if e.kind() == IoKind::AlreadyExists => Ok(PutOutcome::AlreadyExists),
        Err(e) => Err(io_err("linking", path, e)),
    }
}

fn list_blocking(root: &Path, prefix: &str) -> Result<Vec<ObjectMeta>> {
    let mut out = Vec::new();
    let start = root.join(prefix.trim_end_matches('/'));
    let mut stack = vec![start];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == IoKind::NotFound => continue,
            Err(e) => return Err(io_err("listing", &dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_err("listing", &dir, e))?;
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy();
            if file_name.starts_with(TMP_PREFIX) {
                continue;
            }
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                // Deleted between the directory read and now (a run marker, a pruned pack):
                // it is no longer part of the listing.
                Err(e) if e.kind() == IoKind::NotFound => continue,
                Err(e) => return Err(io_err("reading metadata of", &entry.path(), e)),
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if let Ok(rel) = entry.path().strip_prefix(root) {
                let name = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push(ObjectMeta {
                    name,
                    size: meta.len(),
                    modified: meta
                        .modified()
                        .ok()
                        .and_then(|t| jiff::Timestamp::try_from(t).ok()),
                });
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .or_kind(ErrorKind::Storage, || "storage worker thread failed".into())?
}

#[async_trait]
impl Storage for LocalStorage {
    fn location(&self) -> String {
        format!("file://{}", self.root.display())
    }

    async fn put_if_absent(&self, name: &str, data: &[u8]) -> Result<PutOutcome> {
        let path = self.path(name)?;
        let data = data.to_vec();
        blocking(move || put_blocking(&path, &data)).await
    }

    async fn get(&self, name: &str, max_len: u64) -> Result<Vec<u8>> {
        let path = self.path(name)?;
        let name = name.to_string();
        blocking(move || {
            let file = std::fs::File::open(&path).map_err(|e| io_err("reading", &path, e))?;
            let size = file
                .metadata()
                .map_err(|e| io_err("reading", &path, e))?
                .len();
            if size > max_len {
                return Err(super::too_large(&name, size, max_len));
            }
            let mut bytes = Vec::with_capacity(size as usize);
            file.take(max_len)
                .read_to_end(&mut bytes)
                .map_err(|e| io_err("reading", &path, e))?;
            Ok(bytes)
        })
        .await
    }

    async fn get_range(&self, name: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let path = self.path(name)?;
        blocking(move || {
            let mut file = std::fs::File::open(&path).map_err(|e| io_err("opening", &path, e))?;
            let len = usize::try_from(range.end.saturating_sub(range.start))
                .map_err(|_| Error::invalid("range too large for this platform"))?;
            let mut buf = vec![0u8; len];
            file.seek(SeekFrom::Start(range.start))
                .map_err(|e| io_err("seeking in", &path, e))?;
            file.read_exact(&mut buf).map_err(|e| {
                if e.kind() == IoKind::UnexpectedEof {
                    Error::corrupt(format!(
                        "{} is shorter than the index says (wanted bytes {range:?})",
                        path.display()
                    ))
                    .with_hint("run `coffer check`")
                } else {
                    io_err("reading", &path, e)
                }
            })?;
            Ok(buf)
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        blocking(move || list_blocking(&root, &prefix)).await
    }

    async fn delete(&self, name: &str) -> Result<()> {
        let path = self.path(name)?;
        blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == IoKind::NotFound => Ok(()),
            Err(e) => Err(io_err("deleting", &path, e)),
        })
        .await
    }

    async fn exists(&self, name: &str) -> Result<bool> {
        let path = self.path(name)?;
        blocking(move || Ok(path.exists())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_if_absent_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStorage::new(dir.path());
        assert_eq!(
            store.put_if_absent("data/ab/x", b"one").await.unwrap(),
            PutOutcome::Created
        );
        assert_eq!(
            store.put_if_absent("data/ab/x", b"two").await.unwrap(),
            PutOutcome::AlreadyExists
        );
        assert_eq!(store.get("data/ab/x", 1 << 20).await.unwrap(), b"one");
        assert_eq!(store.get_range("data/ab/x", 1..3).await.unwrap(), b"ne");
        assert!(store.get_range("data/ab/x", 1..9).await.is_err());
        let listed = store.list("data/").await.unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|m| (m.name.as_str(), m.size))
                .collect::<Vec<_>>(),
            vec![("data/ab/x", 3)]
        );
        assert!(listed[0].modified.is_some());
        assert_eq!(
            store.get("data/ab/y", 1 << 20).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert!(store.get("../etc/passwd", 1 << 20).await.is_err());
        let too_large = store.get("data/ab/x", 2).await.unwrap_err();
        assert_eq!(too_large.kind(), ErrorKind::Corrupt);
        assert!(too_large.to_string().contains("more than the 2 bytes"));
        store.delete("data/ab/x").await.unwrap();
        assert!(!store.exists("data/ab/x").await.unwrap());
    }
}
