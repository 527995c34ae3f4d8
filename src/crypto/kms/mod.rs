//! Key slots wrapped by a key held in a KMS: the master secret is sent to the KMS to be wrapped
//! (once, when the slot is made) and unwrapped (each time the repository is opened); the
//! key-encryption key never leaves the KMS, so access to backups is granted, audited and
//! revoked there.
//!
//! The KMS binds each wrapped secret to the repository id (AWS: the encryption context), so a
//! slot copied into another repository does not open it.

pub mod aws;
pub mod azure;
pub mod trust;

use std::collections::BTreeMap;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroize;

use super::MasterSecret;
use super::slots::{KeyProvider, KeySlot, Wrapping};
use crate::error::{Error, ErrorKind, Result};
pub use trust::KmsTrust;
use trust::Origin;

/// Tries of one KMS request: a dropped connection, throttling (429) or a server error is tried
/// again after 300 ms × the attempt.
const KMS_ATTEMPTS: u64 = 3;

/// Send the request `build` makes (afresh for each try: a signature carries its time) to
/// `service` (named in the error when it never answers), retried as [`KMS_ATTEMPTS`] says;
/// returns the final status and body, success or refusal, for the caller to read.
pub(crate) async fn send_with_retries(
    service: &str,
    mut build: impl FnMut() -> Result<reqwest::RequestBuilder>,
) -> Result<(reqwest::StatusCode, zeroize::Zeroizing<String>)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let pause = std::time::Duration::from_millis(300 * attempt);
        let response = match build()?.send().await {
            Ok(response) => response,
            Err(e) if attempt < KMS_ATTEMPTS => {
                tracing::debug!("{service}: request failed, retrying: {e}");
                tokio::time::sleep(pause).await;
                continue;
            }
            Err(e) => {
                return Err(
                    Error::new(ErrorKind::Storage, format!("{service} did not answer"))
                        .with_source(e),
                );
            }
        };
        let status = response.status();
        let body = zeroize::Zeroizing::new(response.text().await.unwrap_or_default());
        if (status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS)
            && attempt < KMS_ATTEMPTS
        {
            tokio::time::sleep(pause).await;
            continue;
        }
        return Ok((status, body));
    }
}

/// A KMS key a slot can be wrapped by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KmsKey {
    Aws(aws::AwsKmsKey),
    Azure(azure::AzureVaultKey),
}

impl KmsKey {
    /// `aws-kms://KEY_ID_OR_ARN?region=R[&endpoint=URL&allow-http=true]` or
    /// `azure-keyvault://VAULT.vault.azure.net/keys/NAME[/VERSION]`.
    pub fn parse(url: &str) -> Result<Self> {
        if let Some(rest) = url.strip_prefix("aws-kms://") {
            return Ok(KmsKey::Aws(aws::AwsKmsKey::parse(rest)?));
        }
        if let Some(rest) = url.strip_prefix("azure-keyvault://") {
            return Ok(KmsKey::Azure(azure::AzureVaultKey::parse(rest)?));
        }
        Err(
            Error::invalid(format!("{url:?} is not a KMS key this coffer knows")).with_hint(
                "use aws-kms://KEY_ID_OR_ARN?region=R or azure-keyvault://VAULT.vault.azure.net/keys/NAME",
            ),
        )
    }

    pub fn url(&self) -> String {
        match self {
            KmsKey::Aws(key) => key.url(),
            KmsKey::Azure(key) => key.url(),
        }
    }

    /// The same key at its current version, for re-wrapping (`key rotate`). AWS KMS always
    /// encrypts with a key's current backing key; a Key Vault key drops its version.
    pub fn latest_version(&self) -> KmsKey {
        match self {
            KmsKey::Aws(key) => KmsKey::Aws(key.clone()),
            KmsKey::Azure(key) => KmsKey::Azure(key.latest()),
        }
    }

    /// Where requests for this key go (checked against [`KmsTrust`] before any is sent).
    pub fn origin(&self) -> Result<Origin> {
        match self {
            KmsKey::Aws(key) => Origin::parse(&key.endpoint_url()),
            KmsKey::Azure(key) => {
                let scheme = if key.allow_http { "http" } else { "https" };
                Origin::parse(&format!("{scheme}://{}", key.host))
            }
        }
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
            Wrapping::AzureKeyVault {
                vault,
                name,
                key_version,
                algorithm,
                allow_http,
            } => Some(KmsKey::Azure(azure::AzureVaultKey {
                host: vault.clone(),
                name: name.clone(),
                version: key_version.clone(),
                algorithm: algorithm.clone(),
                allow_http: *allow_http,
            })),
            Wrapping::Passphrase { .. } | Wrapping::WriteOnly { .. } => None,
        }
    }
}

/// The KMS key of a KMS slot, as a URL (`None` for other kinds).
pub fn slot_key_url(slot: &KeySlot) -> Option<String> {
    KmsKey::of_slot(slot).map(|k| k.url())
}

/// Encryption context binding a wrapped secret to its repository.
fn context(repository: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("coffer-repository".to_string(), repository.to_string())])
}

/// Opens the KMS slots whose endpoint this host trusts, with the credentials it has; wraps new
/// slots with `new_key`.
#[derive(Debug, Default)]
pub struct KmsProvider {
    new_key: Option<KmsKey>,
    trust: KmsTrust,
}

impl KmsProvider {
    /// A provider that only opens existing KMS slots, calling only endpoints `trust` allows.
    pub fn ambient(trust: KmsTrust) -> Self {
        KmsProvider {
            new_key: None,
            trust,
        }
    }

    /// A provider that also wraps new slots with `key` (which `trust` must allow).
    pub fn with_key(key: KmsKey, trust: KmsTrust) -> Self {
        KmsProvider {
            new_key: Some(key),
            trust,
        }
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
        self.trust.check(key)?;
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
            KmsKey::Azure(vault) => {
                let (wrapped, version) = vault.wrap(secret.as_bytes()).await?;
                Ok(KeySlot {
                    version: 1,
                    created: jiff::Timestamp::now(),
                    hostname: crate::hostname(),
                    wrapping: Wrapping::AzureKeyVault {
                        vault: vault.host.clone(),
                        name: vault.name.clone(),
                        key_version: version,
                        algorithm: vault.algorithm.clone(),
                        allow_http: vault.allow_http,
                    },
                    wrapped_key: B64.encode(wrapped),
                })
            }
        }
    }

    fn cost(&self, slot: &KeySlot) -> Option<u64> {
        KmsKey::of_slot(slot).map(|_| 0)
    }

    async fn unwrap(&self, slot: &KeySlot) -> Result<Option<MasterSecret>> {
        let Some(key) = KmsKey::of_slot(slot) else {
            return Ok(None);
        };
        // Before anything is sent: the slot, not this host, chose the endpoint.
        self.trust.check(&key)?;
        let blob = B64
            .decode(&slot.wrapped_key)
            .map_err(|e| Error::corrupt("wrapped key is not base64").with_source(e))?;
        let plain = match (&key, &slot.wrapping) {
            (KmsKey::Aws(aws), Wrapping::AwsKms { repository, .. }) => {
                aws.decrypt(&blob, &context(repository)).await?
            }
            (KmsKey::Azure(vault), _) => vault.unwrap(&blob).await?,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Slot fields are flattened beside the slot's own (`version`, `created` …): every kind
    /// must survive a round trip with its key intact.
    #[test]
    fn every_kms_slot_kind_round_trips_through_json() {
        for url in [
            "aws-kms://arn:aws:kms:eu-central-1:111122223333:key/k",
            "azure-keyvault://edc.vault.azure.net/keys/coffer/0123abcd",
        ] {
            let key = KmsKey::parse(url).unwrap();
            let wrapping = match &key {
                KmsKey::Aws(aws) => Wrapping::AwsKms {
                    key_id: aws.key_id.clone(),
                    key_arn: aws.key_id.clone(),
                    region: aws.region.clone(),
                    endpoint: None,
                    allow_http: false,
                    repository: "r".into(),
                },
                KmsKey::Azure(vault) => Wrapping::AzureKeyVault {
                    vault: vault.host.clone(),
                    name: vault.name.clone(),
                    key_version: vault.version.clone(),
                    algorithm: vault.algorithm.clone(),
                    allow_http: false,
                },
            };
            let slot = KeySlot {
                version: 1,
                created: jiff::Timestamp::UNIX_EPOCH,
                hostname: "h".into(),
                wrapping,
                wrapped_key: "AAAA".into(),
            };
            let json = serde_json::to_string(&slot).unwrap();
            let back: KeySlot = serde_json::from_str(&json).unwrap();
            assert_eq!(back.version, 1, "{json}");
            assert_eq!(back.kind(), slot.kind());
            assert!(
                json.contains(&format!(r#""kind":"{}""#, slot.kind())),
                "{json}"
            );
            assert_eq!(KmsKey::of_slot(&back), Some(key), "{json}");
        }
    }
}
