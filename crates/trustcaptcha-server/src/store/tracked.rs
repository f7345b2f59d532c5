//! [`Tracked`]: the store as the server uses it. Every call goes through it, and every answer
//! tells whether the store works: a failure is logged, and the first success after failures
//! writes a heartbeat at once. While the store failed no server could write its heartbeat,
//! although every server kept answering (with 503); the fresh heartbeat keeps a server that
//! starts next from reading that gap as downtime (see [`crate::failover`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Counts, Finished, Lease, Mark, Pending, Retrieval, Store, StoreError};
use crate::clock::Clock;

/// A [`Store`] whose failures are logged and whose recoveries write a heartbeat. Cheap to clone.
#[derive(Clone)]
pub struct Tracked {
    inner: Arc<dyn Store>,
    /// Whether the latest answer was a failure; read before written, since every store answer
    /// passes here and a write would move the cache line between cores on each one.
    failing: Arc<AtomicBool>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Tracked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracked")
            .field("inner", &self.inner)
            .field("failing", &self.failing)
            .finish_non_exhaustive()
    }
}

impl Tracked {
    /// Tracks `inner`'s health, timed by `clock`.
    #[must_use]
    pub(crate) fn new(inner: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Tracked {
            inner,
            failing: Arc::default(),
            clock,
        }
    }

    fn track<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match &result {
            Err(StoreError::Unavailable(reason)) => {
                tracing::error!(%reason, "store unavailable");
                if !self.failing.load(Ordering::Acquire) {
                    self.failing.store(true, Ordering::Release);
                }
            }
            // Any answer from the store, even a refusal, shows that it works.
            _ => {
                if self.failing.load(Ordering::Acquire)
                    && self.failing.swap(false, Ordering::AcqRel)
                {
                    tracing::warn!("store available again");
                    let (store, now) = (Arc::clone(&self.inner), self.clock.now());
                    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                        runtime.spawn(async move {
                            if let Err(error) = store.mark(Mark::Heartbeat, now).await {
                                tracing::warn!(%error, "the heartbeat after recovery was not written");
                            }
                        });
                    }
                }
            }
        }
        result
    }

    /// See [`Store::insert_pending`].
    pub(crate) async fn insert_pending(
        &self,
        id: Uuid,
        pending: Pending,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.track(self.inner.insert_pending(id, pending, now).await)
    }

    /// See [`Store::claim`].
    pub(crate) async fn claim(
        &self,
        id: Uuid,
        lease: Lease,
        now: OffsetDateTime,
    ) -> Result<Option<Pending>, StoreError> {
        self.track(self.inner.claim(id, lease, now).await)
    }

    /// See [`Store::finish_claimed`].
    pub(crate) async fn finish_claimed(
        &self,
        id: Uuid,
        lease: Lease,
        finished: Finished,
    ) -> Result<(), StoreError> {
        self.track(
            self.inner
                .finish_claimed(id, lease, finished, self.clock.now())
                .await,
        )
    }

    /// See [`Store::insert_finished`].
    pub(crate) async fn insert_finished(
        &self,
        id: Uuid,
        finished: Finished,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.track(self.inner.insert_finished(id, finished, now).await)
    }

    /// See [`Store::release`].
    pub(crate) async fn release(&self, id: Uuid, lease: Lease) -> Result<(), StoreError> {
        self.track(self.inner.release(id, lease).await)
    }

    /// See [`Store::abandon`].
    pub(crate) async fn abandon(&self, id: Uuid, lease: Lease) -> Result<(), StoreError> {
        self.track(self.inner.abandon(id, lease).await)
    }

    /// See [`Store::retrieve`].
    pub(crate) async fn retrieve(
        &self,
        id: Uuid,
        authorized: &[Uuid],
        now: OffsetDateTime,
    ) -> Result<Retrieval, StoreError> {
        self.track(self.inner.retrieve(id, authorized, now).await)
    }

    /// See [`Store::count`].
    pub(crate) async fn count(&self) -> Result<usize, StoreError> {
        self.track(self.inner.count().await)
    }

    /// See [`Store::mark`].
    pub(crate) async fn mark(&self, mark: Mark, at: OffsetDateTime) -> Result<(), StoreError> {
        self.track(self.inner.mark(mark, at).await)
    }

    /// See [`Store::latest`].
    pub(crate) async fn latest(&self, mark: Mark) -> Result<Option<OffsetDateTime>, StoreError> {
        self.track(self.inner.latest(mark).await)
    }

    /// See [`Store::add`].
    pub(crate) async fn add(
        &self,
        counter: &str,
        length: Duration,
        by: u64,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        self.track(self.inner.add(counter, length, by, now).await)
    }

    /// See [`Store::counts`].
    pub(crate) async fn counts(
        &self,
        counter: &str,
        length: Duration,
        now: OffsetDateTime,
    ) -> Result<Counts, StoreError> {
        self.track(self.inner.counts(counter, length, now).await)
    }

    /// See [`Store::prepare`].
    pub(crate) async fn prepare(&self) -> Result<(), StoreError> {
        self.track(self.inner.prepare().await)
    }

    /// See [`Store::ping`].
    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        self.track(self.inner.ping().await)
    }
}
