//! What a key slot is (`keys/<id>`): the stored form, the kinds of wrapping, the bounds a reader
//! applies before any work, and the [`KeyProvider`] trait every way of opening one implements.
//! The passphrase provider ([`super::keys`]) and the KMS providers ([`super::kms`]) both build on
//! this module and on nothing of each other.

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{MasterSecret, NONCE_LEN, fill_random};
use crate::error::{Error, ErrorKind, Result};

/// How a key-encryption key wraps what a key slot holds: base64 of `nonce ‖
/// XChaCha20-Poly1305(kek, plaintext, aad)`, with a fresh random nonce.
pub(crate) fn seal_with_kek(kek: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<String> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let sealed = XChaCha20Poly1305::new(&(*kek).into())
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| Error::new(ErrorKind::Corrupt, "wrapping a key failed"))?;
    let mut wrapped = nonce.to_vec();
    wrapped.extend_from_slice(&sealed);
    Ok(B64.encode(wrapped))
}

/// The plaintext [`seal_with_kek`] wrapped in `wrapped` (`what` names it in errors), or `None`
/// when `kek` does not open it (another key, or altered bytes).
pub(crate) fn open_with_kek(
    kek: &[u8; 32],
    aad: &[u8],
    wrapped: &str,
    what: &str,
) -> Result<Option<Zeroizing<Vec<u8>>>> {
    let wrapped = B64
        .decode(wrapped)
        .map_err(|e| Error::corrupt(format!("{what} is not base64")).with_source(e))?;
    if wrapped.len() < NONCE_LEN {
        return Err(Error::corrupt(format!("{what} is truncated")));
    }
    let (nonce, body) = wrapped.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| Error::corrupt("nonce length"))?;
    Ok(XChaCha20Poly1305::new(&(*kek).into())
        .decrypt(&XNonce::from(nonce), Payload { msg: body, aad })
        .ok()
        .map(Zeroizing::new))
}

/// The stored form of a key slot (`keys/<id>`, plaintext JSON: it holds only wrapped material).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeySlot {
    pub version: u32,
    pub created: jiff::Timestamp,
    pub hostname: String,
    #[serde(flatten)]
    pub wrapping: Wrapping,
    /// Passphrase slots: base64 of `nonce || XChaCha20-Poly1305(kek, master secret) || tag`.
    /// KMS slots: base64 of the ciphertext the KMS returned.
    pub wrapped_key: String,
}

impl KeySlot {
    /// `passphrase`, `aws-kms`.
    pub fn kind(&self) -> &'static str {
        match &self.wrapping {
            Wrapping::Passphrase { .. } => "passphrase",
            Wrapping::AwsKms { .. } => "aws-kms",
            Wrapping::AzureKeyVault { .. } => "azure-keyvault",
            Wrapping::WriteOnly { .. } => "write-only",
        }
    }

    /// Whether the slot gives the master secret (every kind but write-only keys).
    pub fn can_read(&self) -> bool {
        !matches!(self.wrapping, Wrapping::WriteOnly { .. })
    }
}

/// How the key-encryption key is obtained.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Wrapping {
    /// KEK = Argon2id(passphrase, salt, params).
    Passphrase { kdf: Argon2Params },
    /// The master secret encrypted by AWS KMS (`Encrypt` with the encryption context
    /// `{"coffer-repository": repository}`).
    AwsKms {
        /// The key as given (id, ARN or alias).
        key_id: String,
        /// The key's ARN as KMS reported it when wrapping.
        key_arn: String,
        region: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        allow_http: bool,
        /// The repository id bound into the encryption context.
        repository: String,
    },
    /// A write-only key: `wrapped_key` is base64 of `nonce || XChaCha20-Poly1305(file secret,
    /// grant, aad = "coffer.v1.write-only-slot") || tag`, the secret being in the key file.
    WriteOnly {},
    /// The master secret wrapped by Azure Key Vault or Managed HSM (`wrapkey`).
    #[serde(rename = "azure-keyvault")]
    AzureKeyVault {
        /// `VAULT.vault.azure.net` or `HSM.managedhsm.azure.net`.
        vault: String,
        name: String,
        /// The key version that wrapped the secret (unwrapping needs this exact version).
        key_version: String,
        /// `RSA-OAEP-256` or `A256KW`.
        algorithm: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        allow_http: bool,
    },
}

/// Argon2id parameters, stored so they can be raised for new slots without breaking old ones.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Argon2Params {
    pub algorithm: String,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// base64 salt, 16 random bytes.
    pub salt: String,
}

/// Upper bounds on what a key slot may ask of the machine that opens it. Slots are read before
/// anything authenticates them, so a planted slot could otherwise ask for terabytes of memory
/// or hours of work. The bounds are far above any sensible setting (the default is 64 MiB, 3
/// passes).
pub const MAX_KDF_MEMORY_KIB: u32 = 4 << 20;
pub const MAX_KDF_ITERATIONS: u32 = 64;
pub const MAX_KDF_PARALLELISM: u32 = 16;

impl Argon2Params {
    /// The work these parameters ask for: KiB of memory × passes.
    pub fn work(&self) -> u64 {
        u64::from(self.memory_kib) * u64::from(self.iterations)
    }

    /// Refuse parameters beyond the bounds, before any memory is allocated.
    pub fn check_bounds(&self) -> Result<()> {
        let refuse = |what: String| {
            Err(Error::invalid(format!("key slot asks for {what}; refused"))
                .with_hint("the slot was not written by coffer; remove it if you do not know it"))
        };
        if self.memory_kib > MAX_KDF_MEMORY_KIB {
            return refuse(format!(
                "{} MiB of memory for key derivation, more than the {} MiB allowed",
                self.memory_kib / 1024,
                MAX_KDF_MEMORY_KIB / 1024
            ));
        }
        if self.iterations > MAX_KDF_ITERATIONS {
            return refuse(format!(
                "{} key-derivation passes, more than the {MAX_KDF_ITERATIONS} allowed",
                self.iterations
            ));
        }
        if self.parallelism == 0 || self.parallelism > MAX_KDF_PARALLELISM {
            return refuse(format!(
                "key-derivation parallelism {}, outside 1..={MAX_KDF_PARALLELISM}",
                self.parallelism
            ));
        }
        Ok(())
    }
}

/// Knows how to make and open some kinds of key slot.
#[async_trait]
pub trait KeyProvider: Send + Sync {
    /// What opens slots, for messages ("the given passphrase").
    fn describe(&self) -> String;
    /// Wrap `secret` of repository `repository` (its id) into a new slot.
    async fn wrap(&self, secret: &MasterSecret, repository: &str) -> Result<KeySlot>;
    /// Unwrap a slot: `Ok(None)` if this provider does not handle the slot's kind or the slot
    /// does not open with this provider's credential; an error when the provider could not
    /// tell (a KMS refused).
    async fn unwrap(&self, slot: &KeySlot) -> Result<Option<MasterSecret>>;
    /// What trying `slot` costs in key derivation (KiB of memory × passes; a KMS slot costs
    /// none), or `None` if this provider does not open slots of its kind: an open bounds the
    /// sum over the slots it tries.
    fn cost(&self, slot: &KeySlot) -> Option<u64>;
}
