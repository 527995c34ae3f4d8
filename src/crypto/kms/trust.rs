//! Which KMS endpoints this host sends its credentials and wrapped keys to.
//!
//! A key slot is read from storage before anything authenticates it, and a KMS slot names the
//! endpoint to call: a vault host, an AWS region, a custom endpoint, plain HTTP. Whoever can
//! write to the bucket could plant a slot naming a server of theirs, which would then receive
//! this host's Entra ID bearer token (good for every Key Vault the identity may use) or a
//! SigV4-signed request, and could answer with a key of its choosing. So the endpoint a slot
//! names is only ever called when this host's own configuration trusts it:
//!
//! - by default, the public clouds' KMS endpoints over HTTPS: Key Vault and Managed HSM hosts
//!   (`NAME.vault.azure.net`, `NAME.managedhsm.azure.net` and the sovereign clouds' suffixes)
//!   and `https://kms.REGION.amazonaws.com` for a region of AWS's naming pattern;
//! - with `--kms-trust` (`COFFER_KMS_TRUST`, `kms_trust` in a job), exactly the endpoints listed
//!   and nothing else: `edc.vault.azure.net` pins one vault, `https://vpce-1.kms.eu-west-1.vpce.amazonaws.com`
//!   a VPC endpoint, `http://127.0.0.1:8443` a local test double (plain HTTP only when an entry
//!   says `http://`).
//!
//! A slot outside the trust is passed over with a message that names it; nothing is sent.

use super::KmsKey;
use crate::error::{Error, Result};

/// Host suffixes of Azure Key Vault and Managed HSM in the public and sovereign clouds.
const AZURE_VAULT_SUFFIXES: [&str; 6] = [
    ".vault.azure.net",
    ".managedhsm.azure.net",
    ".vault.azure.cn",
    ".managedhsm.azure.cn",
    ".vault.usgovcloudapi.net",
    ".managedhsm.usgovcloudapi.net",
];

/// Where a KMS request goes: scheme and authority (`host[:port]`), lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub https: bool,
    pub authority: String,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.authority)
    }
}

impl Origin {
    /// `https://host[:port]`, `http://host[:port]` or a bare `host[:port]` (HTTPS).
    pub fn parse(text: &str) -> Result<Origin> {
        let bad = |why: &str| {
            Error::invalid(format!("{text:?} is not a KMS endpoint: {why}")).with_hint(
                "list endpoints as edc.vault.azure.net, https://HOST[:PORT] or http://127.0.0.1:PORT",
            )
        };
        let with_scheme = if text.contains("://") {
            text.to_string()
        } else {
            format!("https://{text}")
        };
        let url = url::Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(bad(&format!("scheme {other:?}"))),
        };
        if !matches!(url.path(), "" | "/") || url.query().is_some() || !url.username().is_empty() {
            return Err(bad("only a scheme, a host and a port"));
        }
        let host = url.host_str().ok_or_else(|| bad("no host"))?;
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        Ok(Origin {
            https,
            authority: authority.to_ascii_lowercase(),
        })
    }
}

/// The KMS endpoints this host may call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KmsTrust {
    /// `None`: the public clouds' endpoints over HTTPS. `Some`: exactly these.
    only: Option<Vec<Origin>>,
}

impl KmsTrust {
    /// The public clouds' KMS endpoints, over HTTPS.
    pub fn public_clouds() -> Self {
        KmsTrust { only: None }
    }

    /// Exactly the endpoints listed (see the module doc for the forms); an empty list is the
    /// default.
    pub fn only<S: AsRef<str>>(entries: &[S]) -> Result<Self> {
        let origins = entries
            .iter()
            .flat_map(|e| e.as_ref().split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(Origin::parse)
            .collect::<Result<Vec<_>>>()?;
        Ok(KmsTrust {
            only: (!origins.is_empty()).then_some(origins),
        })
    }

    /// Refuse `key` unless this host trusts the endpoint it would call, before any request.
    pub fn check(&self, key: &KmsKey) -> Result<()> {
        let origin = key.origin()?;
        let trusted = match &self.only {
            Some(listed) => listed.contains(&origin),
            None => origin.https && public_cloud_endpoint(key, &origin.authority),
        };
        if trusted {
            return Ok(());
        }
        let allowed = match &self.only {
            Some(listed) => listed
                .iter()
                .map(Origin::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            None => "the public clouds' Key Vault, Managed HSM and AWS KMS endpoints over HTTPS"
                .to_string(),
        };
        Err(Error::invalid(format!(
            "{} would be sent to {origin}, which this host does not trust (it trusts {allowed})",
            key.url()
        ))
        .with_hint(
            "a key slot names the endpoint, and anyone who can write to the storage can add one: \
             if this endpoint is yours, list it in --kms-trust / COFFER_KMS_TRUST (kms_trust in the job)",
        ))
    }
}

/// Whether `authority` is where the public cloud serves `key`'s kind of KMS.
fn public_cloud_endpoint(key: &KmsKey, authority: &str) -> bool {
    match key {
        KmsKey::Azure(_) => AZURE_VAULT_SUFFIXES.iter().any(|suffix| {
            authority.strip_suffix(suffix).is_some_and(|name| {
                (3..=24).contains(&name.len())
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            })
        }),
        KmsKey::Aws(aws) => {
            aws.endpoint.is_none()
                && aws_region(&aws.region)
                && authority == format!("kms.{}.amazonaws.com", aws.region)
        }
    }
}

/// AWS's region naming: `eu-central-1`, `us-gov-west-1`, `ap-southeast-4`, `cn-north-1`.
fn aws_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts.len() <= 4
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1]
            .parse::<u8>()
            .is_ok_and(|n| (1..=99).contains(&n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(url: &str) -> KmsKey {
        KmsKey::parse(url).unwrap()
    }

    #[test]
    fn by_default_only_public_cloud_endpoints_over_https_are_called() {
        let trust = KmsTrust::public_clouds();
        for ok in [
            "azure-keyvault://edc-prod.vault.azure.net/keys/coffer",
            "azure-keyvault://hsm1.managedhsm.azure.net/keys/k?algorithm=A256KW",
            "azure-keyvault://edc.vault.usgovcloudapi.net/keys/k",
            "aws-kms://arn:aws:kms:eu-central-1:111122223333:key/k",
            "aws-kms://alias/coffer?region=us-gov-west-1",
        ] {
            trust
                .check(&key(ok))
                .unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for planted in [
            "azure-keyvault://evil.example/keys/k",
            "azure-keyvault://127.0.0.1:8443/keys/k/v1?allow-http=true",
            "azure-keyvault://edc.vault.azure.net.evil.example/keys/k",
            "azure-keyvault://edc.vault.azure.net:444/keys/k",
            "azure-keyvault://a.b.vault.azure.net/keys/k",
            "aws-kms://k?region=us-east-1&endpoint=https://evil.example",
            "aws-kms://k?region=us-east-1&endpoint=http://127.0.0.1:5000&allow-http=true",
            "aws-kms://k?region=evil.example/x",
            "aws-kms://k?region=us-east-1.evil.example",
        ] {
            let Ok(parsed) = KmsKey::parse(planted) else {
                continue;
            };
            let err = trust.check(&parsed).expect_err(planted).to_string();
            assert!(
                err.contains("does not trust") || err.contains("not a KMS endpoint"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_list_trusts_exactly_what_it_names() {
        let trust = KmsTrust::only(&["edc.vault.azure.net", "http://127.0.0.1:8443"]).unwrap();
        trust
            .check(&key("azure-keyvault://edc.vault.azure.net/keys/k"))
            .unwrap();
        trust
            .check(&key(
                "azure-keyvault://127.0.0.1:8443/keys/k?allow-http=true",
            ))
            .unwrap();
        // Another vault of the public cloud is no longer trusted once a list is given.
        assert!(
            trust
                .check(&key("azure-keyvault://other.vault.azure.net/keys/k"))
                .is_err()
        );
        // The listed host over HTTPS is another endpoint than the one listed over HTTP.
        assert!(
            trust
                .check(&key("azure-keyvault://127.0.0.1:8443/keys/k"))
                .is_err()
        );
        let aws = KmsTrust::only(&["https://kms.eu-west-1.amazonaws.com"]).unwrap();
        aws.check(&key("aws-kms://k?region=eu-west-1")).unwrap();
        assert!(aws.check(&key("aws-kms://k?region=eu-west-2")).is_err());
        assert!(KmsTrust::only(&["ftp://x"]).is_err());
        assert!(KmsTrust::only(&["https://x/path"]).is_err());
        assert_eq!(KmsTrust::only(&[" , "]).unwrap(), KmsTrust::public_clouds());
    }
}
