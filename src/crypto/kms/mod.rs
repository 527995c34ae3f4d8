//! Key slots wrapped by a key held in a KMS: the master secret is sent to the KMS to be wrapped
//! (once, when the slot is made) and unwrapped (each time the repository is opened); the
//! key-encryption key never leaves the KMS, so access to backups is granted, audited and
//! revoked there.
//!
//! The KMS binds each wrapped secret to the repository id (AWS: the encryption context), so a
//! slot copied into another repository does not open it.

pub mod aws;

use std::collections::BTreeMap;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroize;

use super::MasterSecret;
use super::keys::{KeyProvider, KeySlot, Wrapping};
use crate::error::{Error, Result};

/// A KMS key a slot can be wrapped by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KmsKey {
    Aws(aws::AwsKmsKey),
}

impl KmsKey {
    /// `aws-kms://KEY_ID_OR_ARN?region=R[&endpoint=URL&allow-http=true]`.
    pub fn parse(url: &str) -> Result<Self> {
        if let Some(rest) = url.strip_prefix("aws-kms://") {
            return Ok(KmsKey::Aws(aws::AwsKmsKey::parse(rest)?));
        }
        Err(
            Error::invalid(format!("{url:?} is not a KMS key this coffer knows"))
                .with_hint("use aws-kms://KEY_ID_OR_ARN?region=R"),
        )
    }

    pub fn url(&self) -> String {
        match self {
            KmsKey::Aws(key) => key.url(),
        }
    }

    /// The same key at its current version, for re-wrapping (`key rotate`). AWS KMS always
    /// encrypts with a key's current backing key, so an AWS key is its own latest version.
    pub fn latest_version(&self) -> KmsKey {
        self.clone()
    }

    /// The key a slot names, if it is a KMS slot.
    pub fn of_slot(slot: &KeySlot) -> Option<KmsKey> {
        match &slot.wrapping {
            Wrapping::AwsKms {
                key_id,
                region,
                endpoint,
                allow_http,
                ..
            } => Some(KmsKey::Aws(aws::AwsKmsKey {
                key_id: key_id.clone(),
                region: region.clone(),
                endpoint: endpoint.clone(),
                allow_http: *allow_http,
            })),
            Wrapping::Passphrase { .. } => None,
        }
    }
}

/// Encryption context binding a wrapped secret to its repository.
fn context(repository: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("coffer-repository".to_string(), repository.to_string())])
}

/// Opens any KMS slot with the credentials this host has; wraps new slots with `new_key`.
#[derive(Debug, Default)]
pub struct KmsProvider {
    new_key: Option<KmsKey>,
}

impl KmsProvider {
    /// A provider that only opens existing KMS slots.
    pub fn ambient() -> Self {
        KmsProvider { new_key: None }
    }

    /// A provider that also wraps new slots with `key`.
    pub fn with_key(key: KmsKey) -> Self {
        KmsProvider { new_key: Some(key) }
    }
}

#[async_trait]
impl KeyProvider for KmsProvider {
    fn describe(&self) -> String {
        "this host's KMS credentials".to_string()
    }

    async fn wrap(&self, secret: &MasterSecret, repository: &str) -> Result<KeySlot> {
        let Some(key) = &self.new_key else {
            return Err(Error::invalid(
                "no KMS key given to wrap the repository key with",
            ));
        };
        match key {
            KmsKey::Aws(aws) => {
                let (blob, arn) = aws.encrypt(secret.as_bytes(), &context(repository)).await?;
                Ok(KeySlot {
                    version: 1,
                    created: jiff::Timestamp::now(),
                    hostname: crate::hostname(),
                    wrapping: Wrapping::AwsKms {
                        key_id: aws.key_id.clone(),
                        key_arn: arn,
                        region: aws.region.clone(),
                        endpoint: aws.endpoint.clone(),
                        allow_http: aws.allow_http,
                        repository: repository.to_string(),
                    },
                    wrapped_key: B64.encode(blob),
                })
            }
        }
    }

    async fn unwrap(&self, slot: &KeySlot) -> Result<Option<MasterSecret>> {
        let Some(key) = KmsKey::of_slot(slot) else {
            return Ok(None);
        };
        let blob = B64
            .decode(&slot.wrapped_key)
            .map_err(|e| Error::corrupt("wrapped key is not base64").with_source(e))?;
        let plain = match (&key, &slot.wrapping) {
            (KmsKey::Aws(aws), Wrapping::AwsKms { repository, .. }) => {
                aws.decrypt(&blob, &context(repository)).await?
            }
            _ => return Ok(None),
        };
        if plain.len() != 32 {
            return Err(Error::corrupt("the KMS returned a key of the wrong length"));
        }
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&plain);
        let secret = MasterSecret::from_bytes(bytes);
        bytes.zeroize();
        Ok(Some(secret))
    }
}
