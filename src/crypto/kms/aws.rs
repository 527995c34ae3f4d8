//! AWS KMS (and API-compatible services): `Encrypt` and `Decrypt` of the master secret under a
//! symmetric KMS key, with an encryption context naming the repository.
//!
//! Requests go to the KMS JSON API over HTTPS, signed with SigV4 by `object_store`'s signer,
//! with credentials from the same chain as S3 storage (environment, web identity, ECS/EKS,
//! instance metadata). No AWS SDK: it would add a second HTTP and TLS stack to the build.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind, Result};

/// A key in AWS KMS, as a slot names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsKmsKey {
    /// Key id, key ARN, alias name (`alias/…`) or alias ARN.
    pub key_id: String,
    pub region: String,
    /// Another endpoint than `https://kms.REGION.amazonaws.com` (a VPC endpoint, a test server).
    pub endpoint: Option<String>,
    /// Plain HTTP to `endpoint` was asked for explicitly (`allow-http=true`).
    pub allow_http: bool,
}

impl AwsKmsKey {
    /// `KEY_ID_OR_ARN?region=R[&endpoint=URL&allow-http=true]` (what follows `aws-kms://`).
    pub fn parse(rest: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::invalid(format!("aws-kms://{rest} is not a KMS key URL: {why}")).with_hint(
                "write aws-kms://KEY_ID_OR_ARN?region=eu-central-1 (an ARN carries its region)",
            )
        };
        let (key_id, query) = rest.split_once('?').unwrap_or((rest, ""));
        if key_id.is_empty() {
            return Err(bad("the key id is missing"));
        }
        let mut region = None;
        let mut endpoint = None;
        let mut allow_http = false;
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "region" => region = Some(value.into_owned()),
                "endpoint" => endpoint = Some(value.into_owned()),
                "allow-http" => allow_http = value == "true",
                other => return Err(bad(&format!("unknown parameter {other:?}"))),
            }
        }
        // arn:aws:kms:REGION:ACCOUNT:key/ID
        let from_arn = key_id
            .strip_prefix("arn:")
            .and_then(|arn| arn.split(':').nth(2))
            .filter(|r| !r.is_empty())
            .map(str::to_string);
        let region = region
            .or(from_arn)
            .ok_or_else(|| bad("no region (add ?region=…)"))?;
        if let Some(url) = &endpoint
            && url.starts_with("http://")
            && !allow_http
        {
            return Err(bad("a plain-HTTP endpoint needs allow-http=true"));
        }
        Ok(AwsKmsKey {
            key_id: key_id.to_string(),
            region,
            endpoint,
            allow_http,
        })
    }

    /// The URL form, for messages and `key list`.
    pub fn url(&self) -> String {
        let mut url = format!("aws-kms://{}?region={}", self.key_id, self.region);
        if let Some(endpoint) = &self.endpoint {
            url.push_str(&format!("&endpoint={endpoint}"));
        }
        if self.allow_http {
            url.push_str("&allow-http=true");
        }
        url
    }

    /// Where requests go: the custom endpoint, else the region's public one.
    pub(crate) fn endpoint_url(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| format!("https://kms.{}.amazonaws.com/", self.region))
    }

    /// Encrypt `plaintext` (at most 4 KiB) under this key; returns the ciphertext blob and the
    /// key ARN KMS reports.
    pub async fn encrypt(
        &self,
        plaintext: &[u8],
        context: &BTreeMap<String, String>,
    ) -> Result<(Vec<u8>, String)> {
        let encoded = Zeroizing::new(B64.encode(plaintext));
        let reply = self
            .call(
                "Encrypt",
                json!({"KeyId": self.key_id, "Plaintext": *encoded, "EncryptionContext": context}),
            )
            .await?;
        let blob = field(&reply, "CiphertextBlob")?;
        let blob = B64.decode(blob).map_err(|e| {
            Error::invalid("AWS KMS returned a ciphertext that is not base64").with_source(e)
        })?;
        let arn = reply
            .get("KeyId")
            .and_then(Value::as_str)
            .unwrap_or(&self.key_id)
            .to_string();
        Ok((blob, arn))
    }

    /// Decrypt a ciphertext blob this key made with the same context.
    pub async fn decrypt(
        &self,
        blob: &[u8],
        context: &BTreeMap<String, String>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let reply = self
            .call(
                "Decrypt",
                json!({"KeyId": self.key_id, "CiphertextBlob": B64.encode(blob), "EncryptionContext": context}),
            )
            .await?;
        let plain = Zeroizing::new(field(&reply, "Plaintext")?.to_string());
        B64.decode(plain.as_bytes())
            .map(Zeroizing::new)
            .map_err(|e| {
                Error::invalid("AWS KMS returned a plaintext that is not base64").with_source(e)
            })
    }

    /// One signed call of the KMS JSON API, retried on throttling and server errors.
    async fn call(&self, action: &str, body: Value) -> Result<Value> {
        let credential = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name("coffer-kms")
            .with_region(&self.region)
            .build()
            .map_err(|e| {
                Error::invalid("reading AWS credentials for KMS").with_source(e)
            })?
            .credentials()
            .get_credential()
            .await
            .map_err(|e| {
                Error::new(ErrorKind::Storage, "no AWS credentials for KMS")
                    .with_source(e)
                    .with_hint("give this host an IAM role (instance profile, EKS/ECS) or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
            })?;
        let body = Zeroizing::new(
            serde_json::to_vec(&body)
                .map_err(|e| Error::invalid("encoding a KMS request").with_source(e))?,
        );
        let client = reqwest::Client::builder()
            .https_only(!self.allow_http)
            // A trusted endpoint's redirect must not carry a signed request anywhere else.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::invalid("setting up an HTTPS client").with_source(e))?;
        let endpoint = self.endpoint_url();
        let (status, text) = super::send_with_retries(&format!("AWS KMS at {endpoint}"), || {
            let mut request = http::Request::builder()
                .method(http::Method::POST)
                .uri(&endpoint)
                .header("content-type", "application/x-amz-json-1.1")
                .header("x-amz-target", format!("TrentService.{action}"))
                .body(object_store::client::HttpRequestBody::from(body.to_vec()))
                .map_err(|e| Error::invalid("building a KMS request").with_source(e))?;
            object_store::aws::AwsAuthorizer::new(&credential, "kms", &self.region)
                .try_authorize(&mut request, None)
                .map_err(|e| Error::invalid("signing a KMS request").with_source(e))?;
            let mut outgoing = client.post(&endpoint).body(body.to_vec());
            for (name, value) in request.headers() {
                outgoing = outgoing.header(name, value);
            }
            Ok(outgoing)
        })
        .await?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| {
                Error::invalid(format!("AWS KMS {action} returned no JSON")).with_source(e)
            });
        }
        Err(self.refusal(action, status.as_u16(), &text))
    }

    /// The error for a KMS that said no, naming the key, the cause and what to do.
    fn refusal(&self, action: &str, status: u16, text: &str) -> Error {
        let (kind, message) = error_of(text);
        let kind = kind.unwrap_or_else(|| format!("HTTP {status}"));
        let message = message.as_str();
        let hint = match kind.as_str() {
            "AccessDeniedException" | "AccessDenied" => format!(
                "grant kms:{action} on this key to the identity this host runs as (key policy or IAM policy)"
            ),
            "DisabledException" => {
                "the key is disabled: enable it in AWS KMS, or open the repository with another key slot".to_string()
            }
            "KMSInvalidStateException" => {
                "the key is pending deletion or not usable: cancel the deletion, or use another key slot".to_string()
            }
            "NotFoundException" => "check the key id and the region".to_string(),
            "IncorrectKeyException" | "InvalidCiphertextException" => {
                "the slot was wrapped by another key or under another repository, or was modified".to_string()
            }
            "UnrecognizedClientException" | "InvalidSignatureException" => {
                "the AWS credentials of this host are not valid for this region".to_string()
            }
            _ => "see the AWS KMS documentation for this error".to_string(),
        };
        Error::new(
            ErrorKind::WrongPassword,
            format!(
                "AWS KMS key {} refused to {}: {kind}{}{message}",
                self.key_id,
                action.to_ascii_lowercase(),
                if message.is_empty() { "" } else { ": " }
            ),
        )
        .with_hint(hint)
    }
}

/// The error type and message of a KMS error reply: the JSON API's `{"__type", "message"}`,
/// or the XML `<Code>`/`<Message>` that IAM authorization failures come back as.
fn error_of(text: &str) -> (Option<String>, String) {
    if let Ok(reply) = serde_json::from_str::<Value>(text) {
        let kind = reply
            .get("__type")
            .and_then(Value::as_str)
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_string());
        let message = reply
            .get("message")
            .or_else(|| reply.get("Message"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        return (kind, message);
    }
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&format!("</{name}>"))? + start;
        Some(text[start..end].trim().to_string())
    };
    (tag("Code"), tag("Message").unwrap_or_default())
}

fn field<'a>(reply: &'a Value, name: &str) -> Result<&'a str> {
    reply
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid(format!("AWS KMS answered without {name}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_refuse_what_they_should() {
        let key =
            AwsKmsKey::parse("1234abcd-12ab-34cd-56ef-1234567890ab?region=eu-central-1").unwrap();
        assert_eq!(key.region, "eu-central-1");
        assert_eq!(
            key.endpoint_url(),
            "https://kms.eu-central-1.amazonaws.com/"
        );
        let arn = AwsKmsKey::parse("arn:aws:kms:us-west-2:111122223333:key/1234").unwrap();
        assert_eq!(arn.region, "us-west-2");
        assert!(AwsKmsKey::parse("1234").is_err(), "no region");
        assert!(AwsKmsKey::parse("1234?region=x&endpoint=http://127.0.0.1:1").is_err());
        let local =
            AwsKmsKey::parse("k?region=us-east-1&endpoint=http://127.0.0.1:1&allow-http=true")
                .unwrap();
        assert_eq!(
            AwsKmsKey::parse(&local.url()["aws-kms://".len()..]).unwrap(),
            local
        );
        assert!(AwsKmsKey::parse("k?region=x&color=blue").is_err());
    }

    #[test]
    fn errors_are_read_from_json_and_xml_replies() {
        let (kind, message) = error_of(
            r#"{"__type":"com.amazonaws.kms#DisabledException","message":"key is disabled"}"#,
        );
        assert_eq!(kind.as_deref(), Some("DisabledException"));
        assert_eq!(message, "key is disabled");
        let (kind, message) = error_of(
            "<ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>User: u is not authorized to perform: kms:Decrypt</Message></Error></Errors></ErrorResponse>",
        );
        assert_eq!(kind.as_deref(), Some("AccessDenied"));
        assert!(message.contains("kms:Decrypt"));
        assert_eq!(error_of("gateway timeout"), (None, String::new()));
    }
}
