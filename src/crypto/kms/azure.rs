//! Azure Key Vault and Managed HSM: `wrapkey` and `unwrapkey` of the master secret with a key
//! that never leaves the vault (RSA-OAEP-256 by default; `A256KW` for AES keys on Managed HSM).
//!
//! Two REST calls and a bearer token are all it takes, so they are made with the HTTP client
//! coffer already has rather than the Azure SDK (a second set of crates, still in beta, for
//! two calls). The token comes from the chain Azure's own tools use, configured by the same
//! variables as Blob storage: a service principal (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//! `AZURE_CLIENT_SECRET`), workload identity (`AZURE_FEDERATED_TOKEN_FILE`), managed identity
//! (App Service's `IDENTITY_ENDPOINT`, else the instance metadata service), then the Azure CLI.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind, Result};

const API_VERSION: &str = "7.4";

/// A key in Azure Key Vault or Managed HSM, as a slot names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureVaultKey {
    /// `VAULT.vault.azure.net` or `HSM.managedhsm.azure.net` (a `host:port` in tests).
    pub host: String,
    pub name: String,
    /// Empty: the key's current version.
    pub version: String,
    /// `RSA-OAEP-256` or `A256KW`.
    pub algorithm: String,
    /// Plain HTTP was asked for explicitly (a local test vault).
    pub allow_http: bool,
}

impl AzureVaultKey {
    /// `VAULT.vault.azure.net/keys/NAME[/VERSION][?algorithm=A256KW&allow-http=true]` (what
    /// follows `azure-keyvault://`).
    pub fn parse(rest: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::invalid(format!(
                "azure-keyvault://{rest} is not a Key Vault key URL: {why}"
            ))
            .with_hint("write azure-keyvault://VAULT.vault.azure.net/keys/NAME[/VERSION]")
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut parts = path.trim_end_matches('/').split('/');
        let host = parts
            .next()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no vault"))?;
        if parts.next() != Some("keys") {
            return Err(bad("the path must be /keys/NAME[/VERSION]"));
        }
        let name = parts
            .next()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("no key name"))?;
        let version = parts.next().unwrap_or("").to_string();
        if parts.next().is_some() {
            return Err(bad("too many path segments"));
        }
        let mut algorithm = "RSA-OAEP-256".to_string();
        let mut allow_http = false;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "algorithm" if value == "RSA-OAEP-256" || value == "A256KW" => {
                    algorithm = value.into_owned()
                }
                "algorithm" => return Err(bad("algorithm must be RSA-OAEP-256 or A256KW")),
                "allow-http" => allow_http = value == "true",
                other => return Err(bad(&format!("unknown parameter {other:?}"))),
            }
        }
        Ok(AzureVaultKey {
            host: host.to_string(),
            name: name.to_string(),
            version,
            algorithm,
            allow_http,
        })
    }

    pub fn url(&self) -> String {
        let mut url = format!("azure-keyvault://{}/keys/{}", self.host, self.name);
        if !self.version.is_empty() {
            url.push('/');
            url.push_str(&self.version);
        }
        let mut query = Vec::new();
        if self.algorithm != "RSA-OAEP-256" {
            query.push(format!("algorithm={}", self.algorithm));
        }
        if self.allow_http {
            query.push("allow-http=true".to_string());
        }
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        url
    }

    /// This key without a version: wrapping then uses the key's current version.
    pub fn latest(&self) -> Self {
        AzureVaultKey {
            version: String::new(),
            ..self.clone()
        }
    }

    fn base(&self) -> String {
        let scheme = if self.allow_http { "http" } else { "https" };
        let mut base = format!("{scheme}://{}/keys/{}", self.host, self.name);
        if !self.version.is_empty() {
            base.push('/');
            base.push_str(&self.version);
        }
        base
    }

    /// The resource a token must be for.
    fn resource(&self) -> &'static str {
        if self.host.contains(".managedhsm.") {
            "https://managedhsm.azure.net"
        } else {
            "https://vault.azure.net"
        }
    }

    /// Wrap `secret`; returns the wrapped bytes and the key version that wrapped them.
    pub async fn wrap(&self, secret: &[u8]) -> Result<(Vec<u8>, String)> {
        let reply = self
            .call("wrapkey", Zeroizing::new(B64URL.encode(secret)))
            .await?;
        let wrapped = B64URL.decode(text(&reply, "value")?).map_err(|e| {
            Error::invalid("Key Vault returned a wrapped key that is not base64url").with_source(e)
        })?;
        let version = text(&reply, "kid")?
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        Ok((wrapped, version))
    }

    /// Unwrap what [`AzureVaultKey::wrap`] returned (this key must name the version).
    pub async fn unwrap(&self, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let reply = self
            .call("unwrapkey", Zeroizing::new(B64URL.encode(wrapped)))
            .await?;
        let value = Zeroizing::new(text(&reply, "value")?.to_string());
        B64URL
            .decode(value.as_bytes())
            .map(Zeroizing::new)
            .map_err(|e| {
                Error::invalid("Key Vault returned a key that is not base64url").with_source(e)
            })
    }

    async fn call(&self, operation: &str, value: Zeroizing<String>) -> Result<Value> {
        let token = token(self.resource(), self.allow_http).await?;
        let client = http_client(self.allow_http)?;
        let url = format!("{}/{operation}?api-version={API_VERSION}", self.base());
        let body = Zeroizing::new(
            serde_json::to_vec(&json!({"alg": self.algorithm, "value": *value}))
                .map_err(|e| Error::invalid("encoding a Key Vault request").with_source(e))?,
        );
        let service = format!("Key Vault {}", self.host);
        let (status, reply) = super::send_with_retries(&service, || {
            Ok(client
                .post(&url)
                .bearer_auth(token.as_str())
                .header("content-type", "application/json")
                .body(body.to_vec()))
        })
        .await?;
        if status.is_success() {
            return serde_json::from_str(&reply).map_err(|e| {
                Error::invalid(format!("Key Vault {operation} returned no JSON")).with_source(e)
            });
        }
        Err(self.refusal(operation, status.as_u16(), &reply))
    }

    fn refusal(&self, operation: &str, status: u16, reply: &str) -> Error {
        let reply: Value = serde_json::from_str(reply).unwrap_or(Value::Null);
        let error = reply.get("error");
        let code = error
            .and_then(|e| e.get("code"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("HTTP {status}"));
        let inner = error
            .and_then(|e| e.get("innererror"))
            .and_then(|e| e.get("code"))
            .and_then(Value::as_str);
        let message = error
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let lower = message.to_ascii_lowercase();
        let hint = if lower.contains("disabled") || inner == Some("KeyDisabled") {
            "the key is disabled or expired: enable it in the vault, or open with another key slot"
        } else if code == "Forbidden" || status == 403 {
            "give the identity this host runs as the role \"Key Vault Crypto Service Encryption User\" on the key (or a wrapKey/unwrapKey access policy)"
        } else if code == "Unauthorized" || status == 401 {
            "the vault did not accept this host's token: check the identity's tenant"
        } else if code == "KeyNotFound" || status == 404 {
            "check the vault, key name and version"
        } else {
            "see the Key Vault documentation for this error"
        };
        Error::new(
            ErrorKind::WrongPassword,
            format!(
                "Key Vault key {} refused to {}: {code}{}{}{}",
                self.url(),
                operation.trim_end_matches("key"),
                inner.map(|i| format!(" ({i})")).unwrap_or_default(),
                if message.is_empty() { "" } else { ": " },
                message
            ),
        )
        .with_hint(hint)
    }
}

fn text<'a>(reply: &'a Value, name: &str) -> Result<&'a str> {
    reply
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid(format!("Key Vault answered without {name}")))
}

fn http_client(allow_http: bool) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .https_only(!allow_http)
        // A trusted endpoint's redirect must not carry a token or a key anywhere else.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| Error::invalid("setting up an HTTPS client").with_source(e))
}

/// A bearer token for `resource` from the first credential this host has.
async fn token(resource: &str, allow_http: bool) -> Result<Zeroizing<String>> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let authority = env("AZURE_AUTHORITY_HOST")
        .unwrap_or_else(|| "https://login.microsoftonline.com".to_string());
    let scope = format!("{resource}/.default");
    let client = http_client(allow_http || authority.starts_with("http://127.0.0.1"))?;
    if let (Some(tenant), Some(client_id)) = (env("AZURE_TENANT_ID"), env("AZURE_CLIENT_ID")) {
        let assertion = match (
            env("AZURE_CLIENT_SECRET"),
            env("AZURE_FEDERATED_TOKEN_FILE"),
        ) {
            (Some(secret), _) => Some(("client_secret", Zeroizing::new(secret), None)),
            (None, Some(file)) => {
                let jwt = std::fs::read_to_string(&file).map_err(|e| {
                    Error::invalid(format!("reading AZURE_FEDERATED_TOKEN_FILE ({file})"))
                        .with_source(e)
                })?;
                Some((
                    "client_assertion",
                    Zeroizing::new(jwt.trim().to_string()),
                    Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ))
            }
            (None, None) => None,
        };
        if let Some((field, value, assertion_type)) = assertion {
            let url = format!(
                "{}/{tenant}/oauth2/v2.0/token",
                authority.trim_end_matches('/')
            );
            let mut form = vec![
                ("grant_type", "client_credentials"),
                ("client_id", client_id.as_str()),
                ("scope", scope.as_str()),
                (field, value.as_str()),
            ];
            if let Some(kind) = assertion_type {
                form.push(("client_assertion_type", kind));
            }
            let body = Zeroizing::new(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish(),
            );
            let response = client
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.to_string())
                .send()
                .await;
            return read_token(
                response,
                "access_token",
                "the Microsoft Entra ID token endpoint",
            )
            .await;
        }
    }
    if let (Some(endpoint), Some(header)) = (env("IDENTITY_ENDPOINT"), env("IDENTITY_HEADER")) {
        let url = with_query(
            &endpoint,
            &[("resource", resource), ("api-version", "2019-08-01")],
        )?;
        let response = client
            .get(url)
            .header("X-IDENTITY-HEADER", header)
            .send()
            .await;
        return read_token(response, "access_token", "the managed identity endpoint").await;
    }
    let client_id = env("AZURE_CLIENT_ID").unwrap_or_default();
    let mut query = vec![("resource", resource), ("api-version", "2018-02-01")];
    if !client_id.is_empty() {
        query.push(("client_id", client_id.as_str()));
    }
    let imds_url = with_query(
        "http://169.254.169.254/metadata/identity/oauth2/token",
        &query,
    )?;
    let imds = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| Error::invalid("setting up an HTTP client").with_source(e))?
        .get(imds_url)
        .header("Metadata", "true")
        .send()
        .await;
    if let Ok(response) = imds
        && response.status().is_success()
    {
        return read_token(
            Ok(response),
            "access_token",
            "the instance metadata service",
        )
        .await;
    }
    // Last, a signed-in Azure CLI (a developer's or operator's machine).
    let resource_arg = resource.to_string();
    let cli = tokio::task::spawn_blocking(move || {
        std::process::Command::new("az")
            .args([
                "account",
                "get-access-token",
                "--resource",
                &resource_arg,
                "--output",
                "json",
            ])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
    })
    .await;
    match cli {
        Ok(Ok(out)) if out.status.success() => {
            let reply: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
                Error::invalid("the Azure CLI returned no token").with_source(e)
            })?;
            Ok(Zeroizing::new(text(&reply, "accessToken")?.to_string()))
        }
        _ => Err(Error::new(
            ErrorKind::WrongPassword,
            "no Azure credentials for Key Vault on this host",
        )
        .with_hint("give the VM or pod a managed identity (or workload identity), set AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET, or sign in with `az login`")),
    }
}

fn with_query(base: &str, pairs: &[(&str, &str)]) -> Result<url::Url> {
    let mut url = url::Url::parse(base)
        .map_err(|e| Error::invalid(format!("{base} is not a URL")).with_source(e))?;
    url.query_pairs_mut().extend_pairs(pairs);
    Ok(url)
}

async fn read_token(
    response: std::result::Result<reqwest::Response, reqwest::Error>,
    field: &str,
    from: &str,
) -> Result<Zeroizing<String>> {
    let response = response.map_err(|e| {
        Error::new(ErrorKind::Storage, format!("{from} did not answer")).with_source(e)
    })?;
    let status = response.status();
    let body = Zeroizing::new(response.text().await.unwrap_or_default());
    let reply: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if !status.is_success() {
        let why = reply
            .get("error_description")
            .or_else(|| reply.get("error"))
            .and_then(Value::as_str)
            .unwrap_or("");
        return Err(Error::new(
            ErrorKind::WrongPassword,
            format!("{from} refused a token for Key Vault: HTTP {status} {why}"),
        )
        .with_hint("check AZURE_TENANT_ID, AZURE_CLIENT_ID and the identity's credentials"));
    }
    Ok(Zeroizing::new(text(&reply, field)?.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_refuse_what_they_should() {
        let key = AzureVaultKey::parse("edc.vault.azure.net/keys/coffer").unwrap();
        assert_eq!(key.base(), "https://edc.vault.azure.net/keys/coffer");
        assert_eq!(key.resource(), "https://vault.azure.net");
        let versioned = AzureVaultKey::parse("edc.vault.azure.net/keys/coffer/abc123").unwrap();
        assert_eq!(versioned.latest(), key);
        let hsm = AzureVaultKey::parse("h.managedhsm.azure.net/keys/k?algorithm=A256KW").unwrap();
        assert_eq!(hsm.resource(), "https://managedhsm.azure.net");
        assert_eq!(
            AzureVaultKey::parse(&hsm.url()["azure-keyvault://".len()..]).unwrap(),
            hsm
        );
        assert!(AzureVaultKey::parse("edc.vault.azure.net/secrets/x").is_err());
        assert!(AzureVaultKey::parse("edc.vault.azure.net/keys/").is_err());
        assert!(AzureVaultKey::parse("edc.vault.azure.net/keys/k?algorithm=RSA1_5").is_err());
        let local = AzureVaultKey::parse("127.0.0.1:8443/keys/k/v1?allow-http=true").unwrap();
        assert_eq!(local.base(), "http://127.0.0.1:8443/keys/k/v1");
    }
}
