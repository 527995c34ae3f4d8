//! Retries of transient storage failures, with exponential backoff and jitter.
//!
//! Object-store clients retry single HTTP requests already; this layer also covers a body cut
//! mid-transfer (a short ranged read), errors the client gave up on, and any backend. Only errors
//! marked transient are retried: a missing object or a refused credential fails at once.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{ObjectMeta, PutOutcome, Storage};
use crate::error::{Error, ErrorKind, Result};

/// Retries transient failures of the wrapped storage.
#[derive(Debug)]
pub struct RetryingStorage {
    inner: Arc<dyn Storage>,
    attempts: u32,
    base_delay: Duration,
}

impl RetryingStorage {
    pub fn new(inner: Arc<dyn Storage>, attempts: u32, base_delay: Duration) -> Self {
        RetryingStorage {
            inner,
            attempts: attempts.max(1),
            base_delay,
        }
    }

    async fn retry<T, F, Fut>(&self, what: &str, name: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut + Send,
        Fut: std::future::Future<Output = Result<T>> + Send,
        T: Send,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() && attempt < self.attempts => {
                    let delay = backoff(self.base_delay, attempt);
                    tracing::warn!(object = name, attempt, error = %e, "storage {what} failed, retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// `base · 2^(attempt-1)`, capped at 30 s, times a random factor in [0.5, 1.5).
fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base
        .saturating_mul(1 << attempt.saturating_sub(1).min(10))
        .min(Duration::from_secs(30));
    let mut r = [0u8; 2];
    let jitter = match crate::crypto::fill_random(&mut r) {
        Ok(()) => 0.5 + f64::from(u16::from_le_bytes(r)) / 65536.0,
        Err(_) => 1.0,
    };
    exp.mul_f64(jitter)
}

#[async_trait]
impl Storage for RetryingStorage {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn put_if_absent(&self, name: &str, data: &[u8]) -> Result<PutOutcome> {
        // A retried create that finds the name taken was usually our own first attempt whose
        // response was lost; names are content hashes, so the stored bytes are ours.
        self.retry("write", name, || self.inner.put_if_absent(name, data))
            .await
    }

    async fn get(&self, name: &str) -> Result<Vec<u8>> {
        self.retry("read", name, || self.inner.get(name)).await
    }

    async fn get_range(&self, name: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let want = range.end.saturating_sub(range.start);
        self.retry("read", name, || async {
            let bytes = self.inner.get_range(name, range.clone()).await?;
            if bytes.len() as u64 != want {
                return Err(Error::new(
                    ErrorKind::Storage,
                    format!("reading {name}: got {} of {want} bytes", bytes.len()),
                )
                .transient(true));
            }
            Ok(bytes)
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.retry("list", prefix, || self.inner.list(prefix)).await
    }

    async fn delete(&self, name: &str) -> Result<()> {
        self.retry("delete", name, || self.inner.delete(name)).await
    }

    async fn exists(&self, name: &str) -> Result<bool> {
        self.retry("check", name, || self.inner.exists(name)).await
    }
}
