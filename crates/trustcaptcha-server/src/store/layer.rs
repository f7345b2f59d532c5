//! Stores that wrap stores: a [`StoreLayer`] sees every call to any [`Store`] before it is
//! handed on and every answer after, and [`Layered`] is that wrapped store, itself a [`Store`].
//! The delegation of the contract's methods is written here once; a layer writes only what it
//! adds. [`TrackedStore`](super::TrackedStore) (failures logged, a heartbeat on recovery) is one; the test
//! suite's fault store (a store taken down, a call stalled) another.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    Collection, Counts, Entry, Expect, Finished, JournalBound, JournalEntry, Lease, Mark, Pending,
    Resolution, Retrieval, SeriesAdd, SeriesPoint, Store, StoreError,
};

/// Which method of the [`Store`] contract a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// [`Store::insert_pending`].
    InsertPending,
    /// [`Store::claim`].
    Claim,
    /// [`Store::finish_claimed`].
    FinishClaimed,
    /// [`Store::insert_finished`].
    InsertFinished,
    /// [`Store::release`].
    Release,
    /// [`Store::abandon`].
    Abandon,
    /// [`Store::retrieve`].
    Retrieve,
    /// [`Store::count`].
    Count,
    /// [`Store::mark`].
    Mark,
    /// [`Store::latest`].
    Latest,
    /// [`Store::add`].
    Add,
    /// [`Store::counts`].
    Counts,
    /// [`Store::put_entry`].
    PutEntry,
    /// [`Store::entry`].
    Entry,
    /// [`Store::entries`].
    Entries,
    /// [`Store::delete_entry`].
    DeleteEntry,
    /// [`Store::revision`].
    Revision,
    /// [`Store::append_audit`].
    AppendAudit,
    /// [`Store::audit`].
    Audit,
    /// [`Store::add_series`].
    AddSeries,
    /// [`Store::series`].
    Series,
    /// [`Store::append_journal`].
    AppendJournal,
    /// [`Store::journal`].
    Journal,
    /// [`Store::prepare`].
    Prepare,
    /// [`Store::ping`].
    Ping,
}

/// What a layer does around each call.
#[async_trait::async_trait]
pub trait StoreLayer: std::fmt::Debug + Send + Sync + 'static {
    /// Runs before `call` reaches the wrapped store; an error is the answer instead.
    async fn before(&self, _call: Call) -> Result<(), StoreError> {
        Ok(())
    }

    /// Sees how `call` was answered (`None` when it succeeded); `inner` is the wrapped store,
    /// for a layer that reacts with a call of its own.
    fn after(&self, _call: Call, _error: Option<&StoreError>, _inner: &Arc<dyn Store>) {}
}

/// `inner` with `layer` around it. Cheap to clone.
#[derive(Debug)]
pub struct Layered<L> {
    layer: Arc<L>,
    inner: Arc<dyn Store>,
}

impl<L> Clone for Layered<L> {
    fn clone(&self) -> Self {
        Layered {
            layer: Arc::clone(&self.layer),
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<L: StoreLayer> Layered<L> {
    /// `inner`, every call of which goes through `layer`.
    #[must_use]
    pub fn new(layer: L, inner: Arc<dyn Store>) -> Self {
        Layered {
            layer: Arc::new(layer),
            inner,
        }
    }

    /// The layer, for what it offers beside the calls.
    #[must_use]
    pub fn layer(&self) -> &L {
        &self.layer
    }

    async fn around<T>(
        &self,
        call: Call,
        answer: impl Future<Output = Result<T, StoreError>> + Send,
    ) -> Result<T, StoreError> {
        self.layer.before(call).await?;
        let answer = answer.await;
        self.layer.after(call, answer.as_ref().err(), &self.inner);
        answer
    }
}

#[async_trait::async_trait]
impl<L: StoreLayer> Store for Layered<L> {
    async fn insert_pending(
        &self,
        id: Uuid,
        pending: Pending,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let answer = self.inner.insert_pending(id, pending, now);
        self.around(Call::InsertPending, answer).await
    }

    async fn claim(
        &self,
        id: Uuid,
        lease: Lease,
        now: OffsetDateTime,
    ) -> Result<Option<Pending>, StoreError> {
        self.around(Call::Claim, self.inner.claim(id, lease, now))
            .await
    }

    async fn finish_claimed(
        &self,
        id: Uuid,
        lease: Lease,
        finished: Finished,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let answer = self.inner.finish_claimed(id, lease, finished, now);
        self.around(Call::FinishClaimed, answer).await
    }

    async fn insert_finished(
        &self,
        id: Uuid,
        finished: Finished,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let answer = self.inner.insert_finished(id, finished, now);
        self.around(Call::InsertFinished, answer).await
    }

    async fn release(&self, id: Uuid, lease: Lease) -> Result<(), StoreError> {
        self.around(Call::Release, self.inner.release(id, lease))
            .await
    }

    async fn abandon(&self, id: Uuid, lease: Lease) -> Result<(), StoreError> {
        self.around(Call::Abandon, self.inner.abandon(id, lease))
            .await
    }

    async fn retrieve(
        &self,
        id: Uuid,
        authorized: &[Uuid],
        now: OffsetDateTime,
    ) -> Result<Retrieval, StoreError> {
        let answer = self.inner.retrieve(id, authorized, now);
        self.around(Call::Retrieve, answer).await
    }

    async fn count(&self) -> Result<usize, StoreError> {
        self.around(Call::Count, self.inner.count()).await
    }

    async fn mark(&self, mark: Mark, at: OffsetDateTime) -> Result<(), StoreError> {
        self.around(Call::Mark, self.inner.mark(mark, at)).await
    }

    async fn latest(&self, mark: Mark) -> Result<Option<OffsetDateTime>, StoreError> {
        self.around(Call::Latest, self.inner.latest(mark)).await
    }

    async fn add(
        &self,
        counter: &str,
        length: Duration,
        by: u64,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let answer = self.inner.add(counter, length, by, now);
        self.around(Call::Add, answer).await
    }

    async fn counts(
        &self,
        counter: &str,
        length: Duration,
        now: OffsetDateTime,
    ) -> Result<Counts, StoreError> {
        let answer = self.inner.counts(counter, length, now);
        self.around(Call::Counts, answer).await
    }

    async fn put_entry(
        &self,
        collection: Collection,
        id: &str,
        value: String,
        expect: Expect,
        expires_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let answer = self
            .inner
            .put_entry(collection, id, value, expect, expires_at, now);
        self.around(Call::PutEntry, answer).await
    }

    async fn entry(
        &self,
        collection: Collection,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Entry>, StoreError> {
        self.around(Call::Entry, self.inner.entry(collection, id, now))
            .await
    }

    async fn entries(
        &self,
        collection: Collection,
        now: OffsetDateTime,
    ) -> Result<Vec<Entry>, StoreError> {
        self.around(Call::Entries, self.inner.entries(collection, now))
            .await
    }

    async fn delete_entry(
        &self,
        collection: Collection,
        id: &str,
        expect: Expect,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let answer = self.inner.delete_entry(collection, id, expect, now);
        self.around(Call::DeleteEntry, answer).await
    }

    async fn revision(&self, collection: Collection) -> Result<u64, StoreError> {
        self.around(Call::Revision, self.inner.revision(collection))
            .await
    }

    async fn append_audit(&self, entry: String) -> Result<u64, StoreError> {
        self.around(Call::AppendAudit, self.inner.append_audit(entry))
            .await
    }

    async fn audit(&self, after: u64, limit: usize) -> Result<Vec<(u64, String)>, StoreError> {
        self.around(Call::Audit, self.inner.audit(after, limit))
            .await
    }

    async fn add_series(
        &self,
        adds: Vec<SeriesAdd>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.around(Call::AddSeries, self.inner.add_series(adds, now))
            .await
    }

    async fn series(
        &self,
        site: &str,
        resolution: Resolution,
        from: i64,
        to: i64,
        now: OffsetDateTime,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        let answer = self.inner.series(site, resolution, from, to, now);
        self.around(Call::Series, answer).await
    }

    async fn append_journal(
        &self,
        journal: &str,
        entries: Vec<JournalEntry>,
        bound: JournalBound,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let answer = self.inner.append_journal(journal, entries, bound, now);
        self.around(Call::AppendJournal, answer).await
    }

    async fn journal(
        &self,
        journal: &str,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        let answer = self.inner.journal(journal, from, to, limit);
        self.around(Call::Journal, answer).await
    }

    async fn prepare(&self) -> Result<(), StoreError> {
        self.around(Call::Prepare, self.inner.prepare()).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.around(Call::Ping, self.inner.ping()).await
    }
}
