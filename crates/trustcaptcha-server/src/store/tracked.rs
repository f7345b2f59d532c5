//! [`Tracked`]: the store as the server uses it. Every call goes through it, and every answer
//! feeds the outage record: a failure starts (or continues) an outage, the next success ends
//! it. So an outage is noticed wherever it shows, and no handler has to remember to report it.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Counts, Finished, Lease, Mark, Pending, Retrieval, Store, StoreError};
use crate::clock::Clock;
use crate::failover::Outages;

/// A [`Store`] whose failures and recoveries are recorded in the outage record. Cheap to clone.
#[derive(Clone)]
pub struct Tracked {
    inner: Arc<dyn Store>,
    outages: Arc<Outages>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Tracked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracked")
            .field("inner", &self.inner)
            .field("outages", &self.outages)
            .finish_non_exhaustive()
    }
}

impl Tracked {
    /// Tracks `inner`'s health in `outages`, timed by `clock`.
    #[must_use]
    pub(crate) fn new(inner: Arc<dyn Store>, outages: Arc<Outages>, clock: Arc<dyn Clock>) -> Self {
        Tracked {
            inner,
            outages,
            clock,
        }
    }

    fn track<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match &result {
            Err(StoreError::Unavailable(reason)) => {
                tracing::error!(%reason, "store unavailable");
                self.outages.store_failed(self.clock.now());
            }
            // Any answer from the store, even a refusal, shows that it works.
            _ => {
                if let Some(ended) = self.outages.store_recovered(|| self.clock.now()) {
                    // Every server sharing the store learns of the outage from this mark.
                    let store = Arc::clone(&self.inner);
                    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                        runtime.spawn(async move {
                            if let Err(error) = store.mark(Mark::OutageEnded, ended).await {
                                tracing::warn!(%error, "the end of an outage was not recorded");
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
