//! Retries of transient storage failures, with exponential backoff and jitter.
//!
//! The one retry policy of the storage stack ([`RetryPolicy`]): object-store clients are built
//! to send each request once, so a failing call costs at most what the policy says. This layer
//! also covers a body cut mid-transfer (a short ranged read) and any backend. Only errors marked
//! transient are retried: a missing object or a refused credential fails at once.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{ObjectMeta, PutOutcome, Storage};
use crate::error::{Error, ErrorKind, Result};

/// How often and how long a storage call is retried.
///
/// The default: at most 6 attempts; waits of 0.5 s doubling per attempt (capped at 30 s),
/// each times a random factor in [0.5, 1.5); no new attempt once 5 minutes have passed since
/// the first. With the clients' request timeout of 120 s, one call fails after at most about
/// 7 minutes, usually after ~16 s of waiting.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            deadline: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// `base · 2^(attempt-1)`, capped at `max_delay`, times a random factor in [0.5, 1.5).
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1 << attempt.saturating_sub(1).min(10))
            .min(self.max_delay);
        let mut r = [0u8; 2];
        let jitter = match crate::crypto::fill_random(&mut r) {
            Ok(()) => 0.5 + f64::from(u16::from_le_bytes(r)) / 65536.0,
            Err(_) => 1.0,
        };
        exp.mul_f64(jitter)
    }
}

/// Retries transient failures of the wrapped storage.
#[derive(Debug)]
pub struct RetryingStorage {
    inner: Arc<dyn Storage>,
    policy: RetryPolicy,
}

impl RetryingStorage {
    pub fn new(inner: Arc<dyn Storage>, policy: RetryPolicy) -> Self {
        RetryingStorage {
            inner,
            policy: RetryPolicy {
                attempts: policy.attempts.max(1),
                ..policy
            },
        }
    }

    async fn retry<T, F, Fut>(&self, what: &str, name: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut + Send,
        Fut: std::future::Future<Output = Result<T>> + Send,
        T: Send,
    {
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() && attempt < self.policy.attempts => {
                    let delay = self.policy.backoff(attempt);
                    if started.elapsed() + delay > self.policy.deadline {
                        return Err(e.context(format!(
                            "storage {what} still failing after {attempt} attempts in {:.0?}",
                            started.elapsed()
                        )));
                    }
                    tracing::warn!(object = name, attempt, error = %e, "storage {what} failed, retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) if e.is_transient() => {
                    return Err(e.context(format!("storage {what} failed {attempt} times")));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[async_trait]
impl Storage for RetryingStorage {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn put_if_absent(&self, name: &str, data: &[u8]) -> Result<PutOutcome> {
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let outcome = self
            .retry("write", name, || {
                attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.inner.put_if_absent(name, data)
            })
            .await?;
        // A retried create that finds the name taken may have met its own first attempt, which
        // the store applied while the answer was lost. Every object coffer creates carries a
        // random nonce, salt or name, so another writer's object never has exactly these bytes:
        // if the stored ones are these, the object is this write's (a run marker, key slot or
        // shard plan must not be taken for someone else's).
        if outcome == PutOutcome::AlreadyExists
            && attempts.load(std::sync::atomic::Ordering::Relaxed) > 1
            && self
                .get(name, data.len() as u64)
                .await
                .is_ok_and(|stored| stored == data)
        {
            return Ok(PutOutcome::Created);
        }
        Ok(outcome)
    }

    async fn get(&self, name: &str, max_len: u64) -> Result<Vec<u8>> {
        self.retry("read", name, || self.inner.get(name, max_len))
            .await
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// Fails every call with a transient error, counting the calls.
    #[derive(Debug, Default)]
    struct AlwaysFailing {
        calls: AtomicU32,
    }

    impl AlwaysFailing {
        fn fail<T>(&self) -> Result<T> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            Err(Error::new(ErrorKind::Storage, "connection reset").transient(true))
        }
    }

    #[async_trait]
    impl Storage for AlwaysFailing {
        fn location(&self) -> String {
            "failing".into()
        }
        async fn put_if_absent(&self, _: &str, _: &[u8]) -> Result<PutOutcome> {
            self.fail()
        }
        async fn get(&self, _: &str, _: u64) -> Result<Vec<u8>> {
            self.fail()
        }
        async fn get_range(&self, _: &str, _: Range<u64>) -> Result<Vec<u8>> {
            self.fail()
        }
        async fn list(&self, _: &str) -> Result<Vec<ObjectMeta>> {
            self.fail()
        }
        async fn delete(&self, _: &str) -> Result<()> {
            self.fail()
        }
        async fn exists(&self, _: &str) -> Result<bool> {
            self.fail()
        }
    }

    #[tokio::test]
    async fn a_failing_call_is_tried_a_bounded_number_of_times() {
        let inner = Arc::new(AlwaysFailing::default());
        let policy = RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(1),
            ..Default::default()
        };
        let storage = RetryingStorage::new(inner.clone(), policy);
        let err = storage.get("x", 10).await.unwrap_err();
        assert_eq!(inner.calls.load(Ordering::Relaxed), 4);
        assert!(err.to_string().contains("failed 4 times"), "{err}");
    }

    /// Stores the first create, then fails its answer; a later create of the name finds it.
    #[derive(Debug, Default)]
    struct AnswerLost {
        stored: std::sync::Mutex<Option<Vec<u8>>>,
    }

    #[async_trait]
    impl Storage for AnswerLost {
        fn location(&self) -> String {
            "answer-lost".into()
        }
        async fn put_if_absent(&self, _: &str, data: &[u8]) -> Result<PutOutcome> {
            let mut stored = self.stored.lock().map_err(|_| Error::invalid("poisoned"))?;
            if stored.is_some() {
                return Ok(PutOutcome::AlreadyExists);
            }
            *stored = Some(data.to_vec());
            Err(Error::new(ErrorKind::Storage, "connection reset").transient(true))
        }
        async fn get(&self, _: &str, _: u64) -> Result<Vec<u8>> {
            let stored = self.stored.lock().map_err(|_| Error::invalid("poisoned"))?;
            stored.clone().ok_or_else(|| Error::not_found("x"))
        }
        async fn get_range(&self, _: &str, _: Range<u64>) -> Result<Vec<u8>> {
            Err(Error::invalid("unused"))
        }
        async fn list(&self, _: &str) -> Result<Vec<ObjectMeta>> {
            Ok(Vec::new())
        }
        async fn delete(&self, _: &str) -> Result<()> {
            Ok(())
        }
        async fn exists(&self, _: &str) -> Result<bool> {
            Ok(self
                .stored
                .lock()
                .map_err(|_| Error::invalid("poisoned"))?
                .is_some())
        }
    }

    #[tokio::test]
    async fn a_create_whose_answer_was_lost_is_recognised_as_its_own() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(1),
            ..Default::default()
        };
        let storage = RetryingStorage::new(Arc::new(AnswerLost::default()), policy);
        assert_eq!(
            storage.put_if_absent("runs/x", b"mine").await.unwrap(),
            PutOutcome::Created
        );
        // Another writer's bytes under the name are not taken for ours.
        let inner = Arc::new(AnswerLost::default());
        inner.put_if_absent("runs/x", b"theirs").await.unwrap_err();
        let storage = RetryingStorage::new(inner, policy);
        assert_eq!(
            storage.put_if_absent("runs/x", b"mine").await.unwrap(),
            PutOutcome::AlreadyExists
        );
    }

    #[tokio::test]
    async fn no_attempt_starts_after_the_deadline() {
        let inner = Arc::new(AlwaysFailing::default());
        let policy = RetryPolicy {
            attempts: 100,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(20),
            deadline: Duration::from_millis(100),
        };
        let storage = RetryingStorage::new(inner.clone(), policy);
        let started = Instant::now();
        assert!(storage.list("x/").await.is_err());
        let calls = inner.calls.load(Ordering::Relaxed);
        assert!((2..=12).contains(&calls), "{calls} calls");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
