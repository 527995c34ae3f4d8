//! A host's local copy of the in-memory [`Index`], so a command that needs the index (every
//! restore) does not read and parse every index file again while the repository's index has
//! not changed.
//!
//! The copy is named by the index's *generation*: a hash of the names of the index files and
//! prune marks listed (all content-named and immutable), so any new index file, any removed by
//! a prune, and any prune mark makes a new generation, and the old copy is simply not used
//! (and replaced). The listing is read from the repository every time; only the parsing is
//! saved. The copy is sealed under the repository's metadata key (role `IndexCache`), so a
//! copy someone else wrote is not read, and it is only a hint: locations are checked against
//! each blob when read (`Repository::read_blob`), and anything that does not decode is
//! ignored. Safe to delete at any time; written 0600 in a 0700 folder.

use std::path::{Path, PathBuf};

use super::index::Index;
use crate::crypto::{Keys, Role, pack_body, unpack_body};

/// Largest cached index read back (some 170 million blobs).
const MAX_CACHED_INDEX: usize = 8 << 30;

/// The folder holding one repository's cached index.
#[derive(Debug, Clone)]
pub struct IndexCache {
    dir: PathBuf,
}

impl IndexCache {
    pub fn new(dir: PathBuf) -> Self {
        IndexCache { dir }
    }

    /// The generation of the index that `index_files` and `prune_marks` (object names, as
    /// listed) make, within the repository `repository_id`.
    pub fn generation(
        repository_id: &str,
        index_files: &[String],
        prune_marks: &[String],
    ) -> String {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"coffer index generation v1\0");
        hasher.update(repository_id.as_bytes());
        for (part, names) in [("index", index_files), ("marks", prune_marks)] {
            let mut names: Vec<&String> = names.iter().collect();
            names.sort();
            hasher.update(part.as_bytes());
            for name in names {
                hasher.update(&[0]);
                hasher.update(name.as_bytes());
            }
        }
        hasher.finalize().to_hex().to_string()
    }

    fn path(&self, generation: &str) -> PathBuf {
        self.dir.join(format!("index-{generation}"))
    }

    /// The cached index of `generation`, if there is a readable one.
    pub fn load(&self, keys: &Keys, generation: &str) -> Option<Index> {
        let sealed = std::fs::read(self.path(generation)).ok()?;
        let plain = unpack_body(
            keys,
            Role::IndexCache,
            &sealed,
            MAX_CACHED_INDEX,
            &"the cached index",
        )
        .map_err(|e| tracing::debug!("cached index not used: {e}"))
        .ok()?;
        // The generation is sealed in too: a copy of another generation renamed to this one
        // (an older index, lacking newer blobs) is not taken for it.
        let body = plain.strip_prefix(generation.as_bytes())?;
        Index::from_cache_bytes(body)
    }

    /// Keep `index` as the copy of `generation`, replacing older ones. Best effort: a cache that
    /// cannot be written only costs the parsing next time.
    pub fn store(&self, keys: &Keys, generation: &str, index: &Index) {
        if let Err(e) = self.try_store(keys, generation, index) {
            tracing::debug!("index not cached: {e}");
        }
    }

    fn try_store(&self, keys: &Keys, generation: &str, index: &Index) -> crate::error::Result<()> {
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        let io = |e: std::io::Error| {
            crate::error::Error::invalid("writing the index cache").with_source(e)
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(io)?;
        let mut plain = generation.as_bytes().to_vec();
        plain.extend_from_slice(&index.to_cache_bytes());
        let sealed = pack_body(keys, Role::IndexCache, &plain)?;
        let target = self.path(generation);
        let partial = self
            .dir
            .join(format!(".index-{generation}.{}", std::process::id()));
        {
            use std::io::Write as _;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&partial)
                .map_err(io)?;
            file.write_all(&sealed).map_err(io)?;
        }
        std::fs::rename(&partial, &target).map_err(io)?;
        remove_others(&self.dir, &target);
        Ok(())
    }
}

/// Older generations are never read again.
fn remove_others(dir: &Path, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path != keep && name.to_string_lossy().starts_with("index-") {
            let _ = std::fs::remove_file(path);
        }
    }
}
