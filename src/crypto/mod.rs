//! Encryption, authentication and content ids.
//!
//! Owns the key hierarchy: one random 256-bit master secret per repository, from which BLAKE3
//! `derive_key` makes independent subkeys (one for the AEAD, one for content ids, one for the
//! chunker). Everything that leaves the process goes through [`Keys::seal`]: zstd-compressed by the
//! caller, then XChaCha20-Poly1305 with a random 192-bit nonce (safe for any number of objects).
//! The associated data binds a ciphertext to its role, so an index file cannot be passed off as a
//! snapshot. How the master secret itself is protected lives in [`keys`].

pub mod keys;
pub mod kms;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Error, ErrorKind, Result};

/// Bytes of nonce in front of every ciphertext.
pub const NONCE_LEN: usize = 24;
/// Bytes of authentication tag after every ciphertext.
pub const TAG_LEN: usize = 16;
/// Total size a ciphertext adds to its plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// The repository master secret. Never written anywhere unwrapped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterSecret([u8; 32]);

impl MasterSecret {
    /// A fresh random secret for a new repository.
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes)?;
        Ok(MasterSecret(bytes))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        MasterSecret(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// What a sealed object is; bound into the AEAD associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Config,
    DataBlob,
    TreeBlob,
    PackHeader,
    Index,
    Snapshot,
    Audit,
    RunMarker,
    PruneMark,
}

impl Role {
    fn aad(self) -> &'static [u8] {
        match self {
            Role::Config => b"coffer.v1.config",
            Role::DataBlob => b"coffer.v1.blob.data",
            Role::TreeBlob => b"coffer.v1.blob.tree",
            Role::PackHeader => b"coffer.v1.pack-header",
            Role::Index => b"coffer.v1.index",
            Role::Snapshot => b"coffer.v1.snapshot",
            Role::Audit => b"coffer.v1.audit",
            Role::RunMarker => b"coffer.v1.run",
            Role::PruneMark => b"coffer.v1.prune-mark",
        }
    }
}

/// The subkeys derived from an unlocked master secret.
pub struct Keys {
    aead: XChaCha20Poly1305,
    id_key: [u8; 32],
    chunker_key: [u8; 32],
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.id_key.zeroize();
        self.chunker_key.zeroize();
    }
}

impl Keys {
    pub fn derive(master: &MasterSecret) -> Self {
        let mut aead_key = blake3::derive_key("coffer 2026 v1 aead key", master.as_bytes());
        let aead = XChaCha20Poly1305::new(&aead_key.into());
        aead_key.zeroize();
        Keys {
            aead,
            id_key: blake3::derive_key("coffer 2026 v1 content id key", master.as_bytes()),
            chunker_key: blake3::derive_key("coffer 2026 v1 chunker key", master.as_bytes()),
        }
    }

    /// The keyed content id of a plaintext blob. Keyed so that two repositories holding the same
    /// data do not show the same ids.
    pub fn content_id(&self, plaintext: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.id_key, plaintext).as_bytes()
    }

    /// Key for the chunker's gear table: cut points differ between repositories, so chunk sizes
    /// do not fingerprint known content.
    pub fn chunker_key(&self) -> &[u8; 32] {
        &self.chunker_key
    }

    /// Encrypt and authenticate: `nonce || ciphertext || tag`.
    pub fn seal(&self, role: Role, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let sealed = self
            .aead
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: role.aad(),
                },
            )
            .map_err(|_| Error::new(ErrorKind::Corrupt, "encryption failed"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Check and decrypt what [`Keys::seal`] produced. `what` names the object for the error.
    pub fn open(&self, role: Role, sealed: &[u8], what: &dyn std::fmt::Display) -> Result<Vec<u8>> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(
                Error::corrupt(format!("{what} is truncated ({} bytes)", sealed.len()))
                    .with_hint("run `coffer check` to find damaged objects"),
            );
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| Error::corrupt("nonce length"))?;
        self.aead.decrypt(&XNonce::from(nonce), Payload { msg: body, aad: role.aad() }).map_err(|_| {
            Error::corrupt(format!("{what} failed authentication: it was modified or damaged"))
                .with_hint("run `coffer check` to list damaged objects; restore from another snapshot or copy")
        })
    }
}

/// Fill `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| {
        Error::new(
            ErrorKind::Storage,
            format!("no randomness from the OS: {e}"),
        )
    })
}

/// zstd level for everything written. Level 1 compresses SQL row text about twice as fast as the
/// default level 3 for a few percent more bytes; the backup is CPU-bound on the database host.
const ZSTD_LEVEL: i32 = 1;

thread_local! {
    /// One compression context per thread: creating a context costs more than compressing a
    /// small blob.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Compress with zstd at the repository's level.
pub fn compress(data: &[u8]) -> Result<Vec<u8>> {
    let failed = |e: std::io::Error| {
        Error::new(ErrorKind::Corrupt, "zstd compression failed").with_source(e)
    };
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = match slot.as_mut() {
            Some(c) => c,
            None => slot.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(failed)?),
        };
        compressor.compress(data).map_err(failed)
    })
}

/// Decompress a zstd frame whose content size is at most `limit` bytes.
pub fn decompress(data: &[u8], limit: usize, what: &dyn std::fmt::Display) -> Result<Vec<u8>> {
    zstd::bulk::decompress(data, limit)
        .map_err(|e| Error::corrupt(format!("{what} does not decompress")).with_source(e))
}

/// Compress then seal: the form of every object body in the repository.
pub fn pack_body(keys: &Keys, role: Role, plaintext: &[u8]) -> Result<Vec<u8>> {
    keys.seal(role, &compress(plaintext)?)
}

/// Open then decompress a body made by [`pack_body`].
pub fn unpack_body(
    keys: &Keys,
    role: Role,
    sealed: &[u8],
    limit: usize,
    what: &dyn std::fmt::Display,
) -> Result<Vec<u8>> {
    let compressed = keys.open(role, sealed, what)?;
    decompress(&compressed, limit, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_role_binding() {
        let keys = Keys::derive(&MasterSecret::from_bytes([7; 32]));
        let sealed = keys.seal(Role::Index, b"hello").unwrap();
        assert_eq!(sealed.len(), 5 + SEAL_OVERHEAD);
        assert_eq!(keys.open(Role::Index, &sealed, &"x").unwrap(), b"hello");
        let err = keys.open(Role::Snapshot, &sealed, &"x").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert!(keys.open(Role::Index, &flipped, &"x").is_err());
    }

    #[test]
    fn content_ids_are_keyed() {
        let a = Keys::derive(&MasterSecret::from_bytes([1; 32]));
        let b = Keys::derive(&MasterSecret::from_bytes([2; 32]));
        assert_ne!(a.content_id(b"same"), b.content_id(b"same"));
        assert_eq!(a.content_id(b"same"), a.content_id(b"same"));
    }
}
