//! Counts the bytes read from and written to the wrapped storage, so commands can report what a
//! restore or backup actually transferred.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use super::{ObjectMeta, PutOutcome, Storage};
use crate::error::Result;

/// Transfer counters.
#[derive(Debug, Default)]
pub struct Traffic {
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    pub requests: AtomicU64,
}

#[derive(Debug)]
pub struct MeteredStorage {
    inner: Arc<dyn Storage>,
    traffic: Arc<Traffic>,
}

impl MeteredStorage {
    pub fn new(inner: Arc<dyn Storage>, traffic: Arc<Traffic>) -> Self {
        MeteredStorage { inner, traffic }
    }

    fn count(&self, read: usize, written: usize) {
        self.traffic.requests.fetch_add(1, Ordering::Relaxed);
        self.traffic
            .bytes_read
            .fetch_add(read as u64, Ordering::Relaxed);
        self.traffic
            .bytes_written
            .fetch_add(written as u64, Ordering::Relaxed);
    }
}

#[async_trait]
impl Storage for MeteredStorage {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn put_if_absent(&self, name: &str, data: &[u8]) -> Result<PutOutcome> {
        let outcome = self.inner.put_if_absent(name, data).await?;
        self.count(0, data.len());
        Ok(outcome)
    }

    async fn get(&self, name: &str, max_len: u64) -> Result<Vec<u8>> {
        let bytes = self.inner.get(name, max_len).await?;
        self.count(bytes.len(), 0);
        Ok(bytes)
    }

    async fn get_range(&self, name: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let bytes = self.inner.get_range(name, range).await?;
        self.count(bytes.len(), 0);
        Ok(bytes)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.count(0, 0);
        self.inner.list(prefix).await
    }

    async fn delete(&self, name: &str) -> Result<()> {
        self.count(0, 0);
        self.inner.delete(name).await
    }

    async fn exists(&self, name: &str) -> Result<bool> {
        self.count(0, 0);
        self.inner.exists(name).await
    }
}
