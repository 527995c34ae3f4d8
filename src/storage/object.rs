//! Object-store backends (Azure Blob, S3 and S3-compatible stores, Google Cloud Storage) through
//! the `object_store` crate.
//!
//! Repository URLs: `azblob://ACCOUNT/CONTAINER[/prefix]`, `s3://BUCKET[/prefix]`,
//! `gs://BUCKET[/prefix]`, with options in the query string (`endpoint`, `region`, `allow-http`).
//! Credentials come only from the environment (each cloud's usual variables) or files named
//! there, never from the URL. HTTPS is required unless `allow-http=true` is given, which is meant
//! for local emulators.
//!
//! Small objects are written with a conditional create (`If-None-Match: *`); packs above
//! [`MULTIPART_THRESHOLD`] are uploaded in parts (object stores have no conditional multipart
//! upload), after a check that the name is free. Packs are named by the hash of their content, so
//! the only possible race writes identical bytes.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig, WriteMultipart,
};

use super::{ObjectMeta, PutOutcome, Storage};
use crate::error::{Error, ErrorKind, Result};

/// Objects larger than this are uploaded in parts.
pub const MULTIPART_THRESHOLD: usize = 8 << 20;
const PART_SIZE: usize = 8 << 20;
const PART_CONCURRENCY: usize = 4;

/// A repository inside a bucket or container.
#[derive(Debug)]
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    location: String,
}

/// Options from the repository URL's query string.
#[derive(Debug, Default)]
struct UrlOptions {
    endpoint: Option<String>,
    region: Option<String>,
    allow_http: bool,
}

const URL_HELP: &str = "use azblob://ACCOUNT/CONTAINER/prefix, s3://BUCKET/prefix[?endpoint=URL&region=R] \
or gs://BUCKET/prefix; credentials go in environment variables, not in the URL";

impl ObjectStorage {
    /// Open `azblob://`, `s3://` or `gs://` locations.
    pub fn open(location: &str) -> Result<Self> {
        let url = url::Url::parse(location).map_err(|e| {
            Error::invalid(format!("repository URL {location:?}: {e}")).with_hint(URL_HELP)
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                Error::invalid("the repository URL must not contain credentials")
                    .with_hint("put them in the environment (see README: storage credentials)"),
            );
        }
        let mut options = UrlOptions::default();
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "endpoint" => options.endpoint = Some(value.into_owned()),
                "region" => options.region = Some(value.into_owned()),
                "allow-http" => options.allow_http = value == "true" || value == "1",
                other => {
                    return Err(
                        Error::invalid(format!("unknown repository URL option {other:?}"))
                            .with_hint("options are endpoint, region and allow-http"),
                    );
                }
            }
        }
        if let Some(endpoint) = &options.endpoint
            && endpoint.starts_with("http://")
            && !options.allow_http
        {
            return Err(
                Error::invalid(format!("the endpoint {endpoint} is plain HTTP")).with_hint(
                    "use https://, or add allow-http=true for a local emulator on a trusted host",
                ),
            );
        }
        let host = url.host_str().unwrap_or_default().to_string();
        let segments: Vec<String> = url
            .path_segments()
            .map(|s| s.filter(|p| !p.is_empty()).map(str::to_string).collect())
            .unwrap_or_default();
        let client = ClientOptions::new()
            .with_allow_http(options.allow_http)
            .with_timeout(Duration::from_secs(120))
            .with_connect_timeout(Duration::from_secs(10));
        // One retry policy for the whole stack: the client sends each request once and
        // `RetryingStorage` (see `storage::retry::RetryPolicy`) decides about retries. Retries
        // in both layers multiplied into ~18 minutes on one failing call.
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 0,
            retry_timeout: Duration::ZERO,
        };
        let build_err = |e: object_store::Error| {
            Error::invalid(format!("configuring storage for {location}"))
                .with_source(e)
                .with_hint(URL_HELP)
        };
        let (store, prefix): (Arc<dyn ObjectStore>, Vec<String>) = match url.scheme() {
            "azblob" => {
                let Some((container, prefix)) = segments.split_first() else {
                    return Err(
                        Error::invalid("azblob:// needs ACCOUNT/CONTAINER").with_hint(URL_HELP)
                    );
                };
                let mut builder = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_account(&host)
                    .with_container_name(container)
                    // Only an explicit endpoint with allow-http may use plain HTTP.
                    .with_use_emulator(false)
                    .with_client_options(client)
                    .with_retry(retry);
                if let Some(endpoint) = options.endpoint.clone() {
                    builder = builder.with_endpoint(endpoint);
                }
                // AKS's workload-identity webhook sets the host with a trailing slash, which
                // the client would keep in the token URL ("…com//TENANT/…").
                if let Ok(authority) = std::env::var("AZURE_AUTHORITY_HOST") {
                    builder = builder.with_authority_host(authority.trim_end_matches('/'));
                }
                (
                    Arc::new(builder.build().map_err(build_err)?),
                    prefix.to_vec(),
                )
            }
            "s3" => {
                let mut builder = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(&host)
                    .with_client_options(client)
                    .with_retry(retry);
                if let Some(profile) = aws_profile()? {
                    builder = builder
                        .with_access_key_id(profile.access_key)
                        .with_secret_access_key(profile.secret_key);
                    if let Some(token) = profile.token {
                        builder = builder.with_token(token);
                    }
                    if let Some(region) = profile.region {
                        builder = builder.with_region(region);
                    }
                }
                if let Some(endpoint) = options.endpoint.clone() {
                    builder = builder.with_endpoint(endpoint);
                }
                if let Some(region) = options.region.clone() {
                    builder = builder.with_region(region);
                }
                (Arc::new(builder.build().map_err(build_err)?), segments)
            }
            "gs" => {
                let builder = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&host)
                    .with_client_options(client)
                    .with_retry(retry);
                (Arc::new(builder.build().map_err(build_err)?), segments)
            }
            other => {
                return Err(
                    Error::invalid(format!("unsupported repository scheme {other}://"))
                        .with_hint(URL_HELP),
                );
            }
        };
        let prefix = prefix.join("/");
        let mut shown = url.clone();
        shown.set_query(None);
        Ok(ObjectStorage {
            store,
            prefix,
            location: shown.to_string(),
        })
    }

    fn path(&self, name: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(name)
        } else {
            Path::from(format!("{}/{name}", self.prefix))
        }
    }

    fn err(&self, op: &str, name: &str, e: object_store::Error) -> Error {
        let kind = match &e {
            object_store::Error::NotFound { .. } => ErrorKind::NotFound,
            _ => ErrorKind::Storage,
        };
        let hint = match &e {
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => {
                Some("check the storage credentials in the environment and their permissions")
            }
            _ => None,
        };
        let err = Error::new(kind, format!("{op} {name} in {}", self.location))
            .with_source(e)
            .transient(kind == ErrorKind::Storage);
        match hint {
            Some(h) => err.with_hint(h).transient(false),
            None => err,
        }
    }
}

/// Static credentials read from an AWS profile.
struct AwsProfile {
    access_key: String,
    secret_key: String,
    token: Option<String>,
    region: Option<String>,
}

/// Static credentials of `AWS_PROFILE` (default `default`) from `~/.aws/credentials` and its
/// region from `~/.aws/config`, when no credentials are in the environment. Profiles that
/// assume roles or use SSO are not read; use the environment or instance roles for those.
fn aws_profile() -> Result<Option<AwsProfile>> {
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
        || std::env::var_os("AWS_WEB_IDENTITY_TOKEN_FILE").is_some()
    {
        return Ok(None);
    }
    let Some(home) = std::env::var_os("HOME") else {
        return Ok(None);
    };
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let credentials_file = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(&home).join(".aws/credentials"));
    let Ok(text) = std::fs::read_to_string(&credentials_file) else {
        return Ok(None);
    };
    let section = ini_section(&text, &profile);
    let (Some(key), Some(secret)) = (
        section.get("aws_access_key_id"),
        section.get("aws_secret_access_key"),
    ) else {
        return Ok(None);
    };
    let config_file = std::env::var_os("AWS_CONFIG_FILE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(&home).join(".aws/config"));
    let region = std::fs::read_to_string(config_file).ok().and_then(|t| {
        let name = if profile == "default" {
            "default".to_string()
        } else {
            format!("profile {profile}")
        };
        ini_section(&t, &name).get("region").cloned()
    });
    Ok(Some(AwsProfile {
        access_key: key.clone(),
        secret_key: secret.clone(),
        token: section.get("aws_session_token").cloned(),
        region,
    }))
}

fn ini_section(text: &str, name: &str) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = header.trim() == name;
        } else if inside && let Some((k, v)) = line.split_once('=') {
            out.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    out
}

#[async_trait]
impl Storage for ObjectStorage {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn put_if_absent(&self, name: &str, data: &[u8]) -> Result<PutOutcome> {
        let path = self.path(name);
        if data.len() > MULTIPART_THRESHOLD {
            if self.exists(name).await? {
                return Ok(PutOutcome::AlreadyExists);
            }
            let upload = self
                .store
                .put_multipart(&path)
                .await
                .map_err(|e| self.err("starting upload of", name, e))?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            for part in data.chunks(PART_SIZE) {
                writer
                    .wait_for_capacity(PART_CONCURRENCY)
                    .await
                    .map_err(|e| self.err("uploading", name, e))?;
                writer.put(bytes::Bytes::copy_from_slice(part));
            }
            writer
                .finish()
                .await
                .map_err(|e| self.err("finishing upload of", name, e))?;
            return Ok(PutOutcome::Created);
        }
        let payload = PutPayload::from(bytes::Bytes::copy_from_slice(data));
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self.store.put_opts(&path, payload, options).await {
            Ok(_) => Ok(PutOutcome::Created),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(PutOutcome::AlreadyExists),
            Err(e) => Err(self.err("writing", name, e)),
        }
    }

    async fn get(&self, name: &str, max_len: u64) -> Result<Vec<u8>> {
        let path = self.path(name);
        let result = self
            .store
            .get(&path)
            .await
            .map_err(|e| self.err("reading", name, e))?;
        if result.meta.size > max_len {
            return Err(super::too_large(name, result.meta.size, max_len));
        }
        let bytes = result
            .bytes()
            .await
            .map_err(|e| self.err("reading", name, e))?;
        Ok(bytes.to_vec())
    }

    async fn get_range(&self, name: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let path = self.path(name);
        let bytes = self
            .store
            .get_range(&path, range.clone())
            .await
            .map_err(|e| self.err("reading", name, e))?;
        Ok(bytes.to_vec())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let path = self.path(prefix.trim_end_matches('/'));
        let root_len = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let mut out: Vec<ObjectMeta> = self
            .store
            .list(Some(&path))
            .map_ok(|meta| {
                let full = meta.location.to_string();
                ObjectMeta {
                    name: full.get(root_len..).unwrap_or_default().to_string(),
                    size: meta.size,
                    modified: jiff::Timestamp::from_millisecond(
                        meta.last_modified.timestamp_millis(),
                    )
                    .ok(),
                }
            })
            .try_collect()
            .await
            .map_err(|e| self.err("listing", prefix, e))?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn delete(&self, name: &str) -> Result<()> {
        match self.store.delete(&self.path(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err("deleting", name, e)),
        }
    }

    async fn exists(&self, name: &str) -> Result<bool> {
        match self.store.head(&self.path(name)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.err("checking", name, e)),
        }
    }
}
