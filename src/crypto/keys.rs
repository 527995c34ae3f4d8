//! Passphrase key slots: the master secret wrapped by a key-encryption key stretched from a
//! passphrase with Argon2id.
//!
//! A repository has one or more key slots (`keys/<id>` objects, [`super::slots`]); each holds the
//! same master secret wrapped by a different key-encryption key. A [`KeyProvider`] knows how to
//! wrap and unwrap some kinds of slot: a passphrase here, a key held in a KMS in [`super::kms`].
//! Adding or removing a slot never re-encrypts any data.

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

use super::slots::{Argon2Params, KeyProvider, KeySlot, Wrapping, open_with_kek, seal_with_kek};
use super::{MasterSecret, fill_random};
use crate::error::{Error, Result};

const SLOT_AAD: &[u8] = b"coffer.v1.keyslot";

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

    fn cost(&self, slot: &KeySlot) -> Option<u64> {
        match &slot.wrapping {
            Wrapping::Passphrase { kdf } => Some(kdf.work()),
            _ => None,
        }
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
