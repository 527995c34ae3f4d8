//! Key slots: how the master secret is protected at rest.
//!
//! A repository has one or more key slots (`keys/<id>` objects); each holds the same master
//! secret wrapped by a different key-encryption key. A [`KeyProvider`] knows how to wrap and
//! unwrap some kinds of slot: a passphrase stretched with Argon2id here, a key held in a KMS in
//! [`super::kms`]. Adding or removing a slot never re-encrypts any data.

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{MasterSecret, NONCE_LEN, fill_random};
use crate::error::{Error, ErrorKind, Result};

const SLOT_AAD: &[u8] = b"coffer.v1.keyslot";

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

    /// The KMS key, as a URL, for KMS slots.
    pub fn key_url(&self) -> Option<String> {
        super::kms::KmsKey::of_slot(self).map(|k| k.url())
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
}

/// Key-derivation cost. The default costs ~0.3 s and 64 MiB, once per command.
#[derive(Debug, Clone, Copy)]
pub struct KdfCost {
    pub memory_kib: u32,
    pub iterations: u32,
}

impl Default for KdfCost {
    fn default() -> Self {
        KdfCost {
            memory_kib: 64 * 1024,
            iterations: 3,
        }
    }
}

/// A passphrase-protected slot.
pub struct PassphraseProvider {
    passphrase: Zeroizing<String>,
    cost: KdfCost,
}

impl PassphraseProvider {
    pub fn new(passphrase: Zeroizing<String>) -> Result<Self> {
        if passphrase.is_empty() {
            return Err(
                Error::invalid("the repository passphrase is empty").with_hint(
                    "set COFFER_PASSWORD or COFFER_PASSWORD_FILE to a non-empty passphrase",
                ),
            );
        }
        Ok(PassphraseProvider {
            passphrase,
            cost: KdfCost::default(),
        })
    }

    /// Use another cost for new slots (existing slots keep the parameters they were made with).
    pub fn with_cost(mut self, cost: KdfCost) -> Self {
        self.cost = cost;
        self
    }

    fn kek(&self, params: &Argon2Params) -> Result<Zeroizing<[u8; 32]>> {
        if params.algorithm != "argon2id" {
            return Err(Error::corrupt(format!(
                "key slot uses unknown KDF {:?}",
                params.algorithm
            )));
        }
        params.check_bounds()?;
        let salt = B64
            .decode(&params.salt)
            .map_err(|e| Error::corrupt("key slot salt is not base64").with_source(e))?;
        let argon_params = argon2::Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            Some(32),
        )
        .map_err(|e| Error::corrupt(format!("key slot has invalid Argon2 parameters: {e}")))?;
        let argon = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon_params,
        );
        let mut kek = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(self.passphrase.as_bytes(), &salt, kek.as_mut())
            .map_err(|e| Error::corrupt(format!("key derivation failed: {e}")))?;
        Ok(kek)
    }
}

#[async_trait]
impl KeyProvider for PassphraseProvider {
    fn describe(&self) -> String {
        "the given passphrase".to_string()
    }

    async fn wrap(&self, secret: &MasterSecret, _repository: &str) -> Result<KeySlot> {
        let mut salt = [0u8; 16];
        fill_random(&mut salt)?;
        let kdf = Argon2Params {
            algorithm: "argon2id".into(),
            memory_kib: self.cost.memory_kib,
            iterations: self.cost.iterations,
            parallelism: 1,
            salt: B64.encode(salt),
        };
        let kek = self.kek(&kdf)?;
        let wrapped_key = seal_with_kek(&kek, SLOT_AAD, secret.as_bytes())?;
        Ok(KeySlot {
            version: 1,
            created: jiff::Timestamp::now(),
            hostname: crate::hostname(),
            wrapping: Wrapping::Passphrase { kdf },
            wrapped_key,
        })
    }

    async fn unwrap(&self, slot: &KeySlot) -> Result<Option<MasterSecret>> {
        let Wrapping::Passphrase { kdf } = &slot.wrapping else {
            return Ok(None);
        };
        let kek = self.kek(kdf)?;
        let Some(plain) = open_with_kek(&kek, SLOT_AAD, &slot.wrapped_key, "wrapped key")? else {
            return Ok(None);
        };
        let bytes: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| Error::corrupt("unwrapped key has the wrong length"))?;
        Ok(Some(MasterSecret::from_bytes(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap(pass: &str) -> PassphraseProvider {
        PassphraseProvider::new(Zeroizing::new(pass.to_string()))
            .unwrap()
            .with_cost(KdfCost {
                memory_kib: 64,
                iterations: 1,
            })
    }

    #[tokio::test]
    async fn wrap_unwrap_and_wrong_passphrase() {
        let secret = MasterSecret::from_bytes([9; 32]);
        let slot = cheap("right").wrap(&secret, "repo").await.unwrap();
        let json = serde_json::to_string(&slot).unwrap();
        assert!(json.contains(r#""kind":"passphrase""#), "{json}");
        let slot: KeySlot = serde_json::from_str(&json).unwrap();
        assert_eq!(
            cheap("right")
                .unwrap(&slot)
                .await
                .unwrap()
                .unwrap()
                .as_bytes(),
            &[9; 32]
        );
        assert!(cheap("wrong").unwrap(&slot).await.unwrap().is_none());
    }

    fn kdf(slot: &mut KeySlot) -> &mut Argon2Params {
        match &mut slot.wrapping {
            Wrapping::Passphrase { kdf } => kdf,
            other => panic!("not a passphrase slot: {other:?}"),
        }
    }

    #[tokio::test]
    async fn planted_kdf_costs_are_refused_before_any_work() {
        let secret = MasterSecret::from_bytes([9; 32]);
        let mut slot = cheap("right").wrap(&secret, "repo").await.unwrap();
        // 4 TiB of memory: must fail at once, not try to allocate.
        kdf(&mut slot).memory_kib = u32::MAX;
        let Err(err) = cheap("right").unwrap(&slot).await else {
            panic!("a slot asking for 4 TiB of memory was opened");
        };
        assert!(err.to_string().contains("MiB of memory"), "{err}");
        kdf(&mut slot).memory_kib = 64;
        kdf(&mut slot).iterations = 1_000_000;
        assert!(cheap("right").unwrap(&slot).await.is_err());
        kdf(&mut slot).iterations = 1;
        kdf(&mut slot).parallelism = 0;
        assert!(cheap("right").unwrap(&slot).await.is_err());
    }

    #[test]
    fn empty_passphrase_is_refused() {
        assert!(PassphraseProvider::new(Zeroizing::new(String::new())).is_err());
    }
}
