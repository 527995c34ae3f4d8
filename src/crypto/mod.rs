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
pub mod slots;

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
    ShardPlan,
    Summary,
    LogSegment,
    /// A host's local copy of the in-memory index (never stored in the repository).
    IndexCache,
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
            Role::ShardPlan => b"coffer.v1.shard-plan",
            Role::Summary => b"coffer.v1.snapshot-summary",
            Role::LogSegment => b"coffer.v1.log-segment",
            Role::IndexCache => b"coffer.v1.local-index-cache",
        }
    }
}

impl Role {
    /// Objects every writer must read or write, write-only keys included: sealed with the
    /// metadata key. The others are private: only a full key opens them.
    pub fn is_metadata(self) -> bool {
        matches!(
            self,
            Role::Index
                | Role::Snapshot
                | Role::RunMarker
                | Role::PruneMark
                | Role::ShardPlan
                | Role::Summary
                | Role::LogSegment
                | Role::IndexCache
        )
    }
}

/// What a write-only key holds (see docs/FORMAT.md, "Write-only keys"): enough to chunk,
/// deduplicate, read and write metadata, and seal private objects to the repository's public
/// key, but not to open them.
#[derive(Clone, serde::Serialize, serde::Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct WriteMaterial {
    #[zeroize(skip)]
    pub version: u32,
    pub content_id_key: [u8; 32],
    pub chunker_key: [u8; 32],
    pub metadata_key: [u8; 32],
    #[zeroize(skip)]
    pub public_key: [u8; 32],
}

/// The subkeys of a repository: all of them for a full key, the writing part for a
/// write-only key.
pub struct Keys {
    /// The AEAD for private objects; `None` for a write-only key.
    aead: Option<XChaCha20Poly1305>,
    metadata: XChaCha20Poly1305,
    metadata_key: [u8; 32],
    id_key: [u8; 32],
    chunker_key: [u8; 32],
    /// X25519 key pair: private objects sealed by write-only keys are sealed to `public`.
    public: [u8; 32],
    private: Option<[u8; 32]>,
    /// Marks what a full key wrote (snapshots), so a reader can tell it from what a write-only
    /// key wrote under the metadata key both share; `None` for a write-only key.
    writer_key: Option<[u8; 32]>,
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.metadata_key.zeroize();
        self.id_key.zeroize();
        self.chunker_key.zeroize();
        if let Some(private) = &mut self.private {
            private.zeroize();
        }
        if let Some(writer) = &mut self.writer_key {
            writer.zeroize();
        }
    }
}

const SEALED_TO_REPOSITORY: &str = "coffer 2026 v1 sealed-to-repository";
const X25519_LEN: usize = 32;

impl Keys {
    pub fn derive(master: &MasterSecret) -> Self {
        let mut aead_key = blake3::derive_key("coffer 2026 v1 aead key", master.as_bytes());
        let aead = XChaCha20Poly1305::new(&aead_key.into());
        aead_key.zeroize();
        let metadata_key = blake3::derive_key("coffer 2026 v1 metadata key", master.as_bytes());
        let private = blake3::derive_key("coffer 2026 v1 x25519 private key", master.as_bytes());
        Keys {
            aead: Some(aead),
            metadata: XChaCha20Poly1305::new(&metadata_key.into()),
            metadata_key,
            id_key: blake3::derive_key("coffer 2026 v1 content id key", master.as_bytes()),
            chunker_key: blake3::derive_key("coffer 2026 v1 chunker key", master.as_bytes()),
            public: x25519_public(&private),
            private: Some(private),
            writer_key: Some(blake3::derive_key(
                "coffer 2026 v1 full-key writer mark",
                master.as_bytes(),
            )),
        }
    }

    /// The keys of a write-only credential.
    pub fn write_only(material: &WriteMaterial) -> Self {
        Keys {
            aead: None,
            metadata: XChaCha20Poly1305::new(&material.metadata_key.into()),
            metadata_key: material.metadata_key,
            id_key: material.content_id_key,
            chunker_key: material.chunker_key,
            public: material.public_key,
            private: None,
            writer_key: None,
        }
    }

    /// The mark a full key puts on `message` (what it wrote), hex; `None` for a write-only key,
    /// which cannot make one.
    pub fn writer_mark(&self, message: &[u8]) -> Option<String> {
        let key = self.writer_key.as_ref()?;
        Some(blake3::keyed_hash(key, message).to_hex().to_string())
    }

    /// Whether `mark` is the full-key mark of `message` (`false` for a write-only key, which
    /// cannot tell). Compared in constant time.
    pub fn verify_writer_mark(&self, message: &[u8], mark: &str) -> bool {
        let (Some(key), Ok(claimed)) = (self.writer_key.as_ref(), blake3::Hash::from_hex(mark))
        else {
            return false;
        };
        blake3::keyed_hash(key, message) == claimed
    }

    /// What a write-only key made from these keys holds.
    pub fn write_material(&self) -> WriteMaterial {
        WriteMaterial {
            version: 1,
            content_id_key: self.id_key,
            chunker_key: self.chunker_key,
            metadata_key: self.metadata_key,
            public_key: self.public,
        }
    }

    /// Whether `sealed` is sealed under the metadata key (rather than, written before coffer
    /// 0.3, under the AEAD key).
    pub fn is_sealed_as_metadata(&self, role: Role, sealed: &[u8]) -> bool {
        open_with(&self.metadata, role, sealed).is_some()
    }

    /// Whether these keys open private objects (false for a write-only key).
    pub fn can_read(&self) -> bool {
        self.aead.is_some()
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

    /// Encrypt and authenticate. Metadata: `nonce || ciphertext || tag` under the metadata key.
    /// Private objects: the same under the AEAD key with a full key; sealed to the
    /// repository's public key (`ephemeral public key || nonce || ciphertext || tag`) with a
    /// write-only key, which then cannot open what it wrote.
    pub fn seal(&self, role: Role, plaintext: &[u8]) -> Result<Vec<u8>> {
        if role.is_metadata() {
            return seal_with(&self.metadata, role, plaintext);
        }
        match &self.aead {
            Some(aead) => seal_with(aead, role, plaintext),
            None => self.seal_to_repository(role, plaintext),
        }
    }

    /// Check and decrypt what [`Keys::seal`] produced. `what` names the object for the error.
    pub fn open(&self, role: Role, sealed: &[u8], what: &dyn std::fmt::Display) -> Result<Vec<u8>> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(
                Error::corrupt(format!("{what} is truncated ({} bytes)", sealed.len()))
                    .with_hint("run `coffer check` to find damaged objects"),
            );
        }
        let damaged = || {
            Error::corrupt(format!(
                "{what} failed authentication: it was modified or damaged"
            ))
            .with_hint(
                "run `coffer check` to list damaged objects; restore from another snapshot or copy",
            )
        };
        if role.is_metadata() {
            if let Some(plain) = open_with(&self.metadata, role, sealed) {
                return Ok(plain);
            }
            // Written before coffer 0.3 under the AEAD key.
            return match &self.aead {
                Some(aead) => open_with(aead, role, sealed).ok_or_else(damaged),
                None => Err(Error::new(
                    ErrorKind::WrongPassword,
                    format!("{what} cannot be read with a write-only key (it was written before coffer 0.3, or it is damaged)"),
                )
                .with_hint("a full key reads it; `coffer check` with a full key tells damage apart")),
            };
        }
        let (Some(aead), Some(private)) = (&self.aead, &self.private) else {
            return Err(Error::new(
                ErrorKind::WrongPassword,
                format!("{what} cannot be read with a write-only key: it may only write backups"),
            )
            .with_hint("restore, dump, ls DB, history, audit and check --read-data need a full key (a passphrase or KMS slot)"));
        };
        open_with(aead, role, sealed)
            .or_else(|| open_sealed_to_repository(private, &self.public, role, sealed))
            .ok_or_else(damaged)
    }

    fn seal_to_repository(&self, role: Role, plaintext: &[u8]) -> Result<Vec<u8>> {
        use aws_lc_rs::agreement;
        let failed = || Error::new(ErrorKind::Corrupt, "sealing to the repository key failed");
        let ephemeral =
            agreement::PrivateKey::generate(&agreement::X25519).map_err(|_| failed())?;
        let ephemeral_public = ephemeral.compute_public_key().map_err(|_| failed())?;
        let ephemeral_public: [u8; X25519_LEN] =
            ephemeral_public.as_ref().try_into().map_err(|_| failed())?;
        let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, self.public);
        let mut key = agreement::agree(&ephemeral, peer, (), |shared| {
            Ok(sealing_key(shared, &ephemeral_public, &self.public))
        })
        .map_err(|()| failed())?;
        let cipher = XChaCha20Poly1305::new(&key.into());
        key.zeroize();
        let mut out = ephemeral_public.to_vec();
        out.extend_from_slice(&seal_with(&cipher, role, plaintext)?);
        Ok(out)
    }
}

fn sealing_key(shared: &[u8], ephemeral: &[u8; X25519_LEN], public: &[u8; X25519_LEN]) -> [u8; 32] {
    let mut input = Vec::with_capacity(3 * X25519_LEN);
    input.extend_from_slice(shared);
    input.extend_from_slice(ephemeral);
    input.extend_from_slice(public);
    let key = blake3::derive_key(SEALED_TO_REPOSITORY, &input);
    input.zeroize();
    key
}

fn open_sealed_to_repository(
    private: &[u8; 32],
    public: &[u8; X25519_LEN],
    role: Role,
    sealed: &[u8],
) -> Option<Vec<u8>> {
    use aws_lc_rs::agreement;
    if sealed.len() < X25519_LEN + SEAL_OVERHEAD {
        return None;
    }
    let (ephemeral, body) = sealed.split_at(X25519_LEN);
    let ephemeral: [u8; X25519_LEN] = ephemeral.try_into().ok()?;
    let own = agreement::PrivateKey::from_private_key(&agreement::X25519, private).ok()?;
    let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, ephemeral);
    let mut key = agreement::agree(&own, peer, (), |shared| {
        Ok(sealing_key(shared, &ephemeral, public))
    })
    .ok()?;
    let cipher = XChaCha20Poly1305::new(&key.into());
    key.zeroize();
    open_with(&cipher, role, body)
}

fn x25519_public(private: &[u8; 32]) -> [u8; X25519_LEN] {
    use aws_lc_rs::agreement;
    agreement::PrivateKey::from_private_key(&agreement::X25519, private)
        .ok()
        .and_then(|key| key.compute_public_key().ok())
        .and_then(|public| public.as_ref().try_into().ok())
        // X25519 accepts every 32-byte string as a private key; this cannot fail.
        .unwrap_or([0; X25519_LEN])
}

fn seal_with(cipher: &XChaCha20Poly1305, role: Role, plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let sealed = cipher
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

fn open_with(cipher: &XChaCha20Poly1305, role: Role, sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < SEAL_OVERHEAD {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
    cipher
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: body,
                aad: role.aad(),
            },
        )
        .ok()
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

/// Most memory reserved up front for a decompressed body, whatever its frame declares: the
/// rest grows only as bytes are actually produced.
const DECOMPRESS_RESERVE: usize = 8 << 20;

/// Decompress zstd data whose content is at most `limit` bytes. Streaming: memory follows what
/// is produced (a forged frame declaring gigabytes reserves at most [`DECOMPRESS_RESERVE`]),
/// and the output stops one byte past `limit`, which is refused.
pub fn decompress(data: &[u8], limit: usize, what: &dyn std::fmt::Display) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let failed = |e: std::io::Error| {
        Error::corrupt(format!("{what} does not decompress"))
            .with_source(e)
            .with_hint("run `coffer check`")
    };
    let declared = zstd::zstd_safe::get_frame_content_size(data)
        .ok()
        .flatten()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    let mut out = Vec::with_capacity(declared.min(limit).min(DECOMPRESS_RESERVE));
    let decoder = zstd::stream::read::Decoder::with_buffer(data).map_err(failed)?;
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(failed)?;
    if out.len() > limit {
        return Err(Error::corrupt(format!(
            "{what} decompresses to more than the {limit} bytes allowed"
        ))
        .with_hint("run `coffer check`"));
    }
    Ok(out)
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
    fn decompression_is_bounded_by_what_is_produced() {
        let data = vec![7u8; 1 << 20];
        let packed = compress(&data).unwrap();
        assert_eq!(decompress(&packed, 1 << 20, &"x").unwrap(), data);
        let err = decompress(&packed, (1 << 20) - 1, &"x").unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
        // Truncated and altered frames are errors, not panics.
        assert!(decompress(&packed[..packed.len() / 2], 1 << 20, &"x").is_err());
        assert!(decompress(b"not zstd", 1 << 20, &"x").is_err());
        // A frame declaring 1 GiB of content that holds a few bytes reserves little.
        let mut forged = compress(b"abc").unwrap();
        forged.truncate(4);
        assert!(decompress(&forged, 1 << 30, &"x").is_err());
    }

    #[test]
    fn content_ids_are_keyed() {
        let a = Keys::derive(&MasterSecret::from_bytes([1; 32]));
        let b = Keys::derive(&MasterSecret::from_bytes([2; 32]));
        assert_ne!(a.content_id(b"same"), b.content_id(b"same"));
        assert_eq!(a.content_id(b"same"), a.content_id(b"same"));
    }
}
