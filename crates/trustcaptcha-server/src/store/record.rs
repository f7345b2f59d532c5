//! One verification as a backend keeps it, and the transitions of the store contract on it. The
//! contract's logic lives here once; a backend only finds the record, runs the transition under
//! its own atomicity (a lock, a transaction) and writes the record back.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Finished, Found, Lease, Pending, Retrieval, StoreError, TOMBSTONE};

/// Where an in-process backend keeps its records (the memory store's shards, SQLite's table):
/// adding one, and running a transition on one under the backend's own atomicity (a lock, a
/// transaction). The contract's methods that are nothing but a transition are written once, on
/// top of it ([`insert_pending`], [`claim`], …); both backends' `Store` impls hand them on.
#[async_trait::async_trait]
pub(crate) trait Records: Sync {
    /// Adds `record` under `id`: [`StoreError::Duplicate`] when the id exists (or existed and is
    /// spent), [`StoreError::Full`] at capacity.
    async fn insert(&self, id: Uuid, record: Record) -> Result<(), StoreError>;

    /// Runs `transition` on the record of `id` and keeps what it made of it; `None` when there
    /// is no record.
    async fn update<T: Send + 'static>(
        &self,
        id: Uuid,
        transition: impl for<'r> FnOnce(&'r mut Record) -> T + Send + 'static,
    ) -> Result<Option<T>, StoreError>;
}

/// `Store::insert_pending` on `records`.
pub(crate) async fn insert_pending(
    records: &impl Records,
    id: Uuid,
    pending: Pending,
) -> Result<(), StoreError> {
    records.insert(id, Record::pending(pending)).await
}

/// `Store::insert_finished` on `records`.
pub(crate) async fn insert_finished(
    records: &impl Records,
    id: Uuid,
    finished: Finished,
) -> Result<(), StoreError> {
    records.insert(id, Record::finished(finished)).await
}

/// `Store::claim` on `records`.
pub(crate) async fn claim(
    records: &impl Records,
    id: Uuid,
    lease: Lease,
    now: OffsetDateTime,
) -> Result<Option<Pending>, StoreError> {
    Ok(records
        .update(id, move |record| record.claim(lease, now))
        .await?
        .flatten())
}

/// `Store::finish_claimed` on `records`.
pub(crate) async fn finish_claimed(
    records: &impl Records,
    id: Uuid,
    lease: Lease,
    finished: Finished,
) -> Result<(), StoreError> {
    records
        .update(id, move |record| record.finish(lease, finished))
        .await?
        .unwrap_or(Err(StoreError::NotClaimant))
}

/// `Store::release` on `records`.
pub(crate) async fn release(
    records: &impl Records,
    id: Uuid,
    lease: Lease,
) -> Result<(), StoreError> {
    records
        .update(id, move |record| record.release(lease))
        .await?
        .unwrap_or(Err(StoreError::NotClaimant))
}

/// A stored verification.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    /// The site it belongs to.
    pub(crate) site_key: Uuid,
    /// Where it is in its life.
    pub(crate) state: State,
}

/// The states of the contract.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum State {
    /// Pending, or claimed when a lease holds it.
    Open {
        pending: Box<Pending>,
        lease: Option<Lease>,
    },
    /// The result, and how often it was retrieved.
    Finished {
        finished: Box<Finished>,
        retrievals: u32,
    },
    /// Every allowed retrieval was made: only the expiry is kept.
    Spent { expires_at: OffsetDateTime },
}

/// When no answer depends any more on an open verification that expires at `expires_at`, held
/// under `lease`: a claim may still finish until its lease lapses.
pub(crate) fn open_forgettable_after(
    expires_at: OffsetDateTime,
    lease: Option<Lease>,
) -> OffsetDateTime {
    lease.map_or(expires_at, |lease| expires_at.max(lease.until))
}

impl Record {
    /// A new pending verification.
    pub(crate) fn pending(pending: Pending) -> Self {
        Record {
            site_key: pending.site_key,
            state: State::Open {
                pending: Box::new(pending),
                lease: None,
            },
        }
    }

    /// A new finished verification.
    pub(crate) fn finished(finished: Finished) -> Self {
        Record {
            site_key: finished.site_key,
            state: State::Finished {
                finished: Box::new(finished),
                retrievals: 0,
            },
        }
    }

    /// A spent verification, as a backend that keeps spent ones apart brings it back.
    pub(crate) fn spent(site_key: Uuid, expires_at: OffsetDateTime) -> Self {
        Record {
            site_key,
            state: State::Spent { expires_at },
        }
    }

    /// The expiry of a spent verification; `None` while its result may still be served.
    pub(crate) fn spent_until(&self) -> Option<OffsetDateTime> {
        match self.state {
            State::Spent { expires_at } => Some(expires_at),
            _ => None,
        }
    }

    /// When no answer depends on the record any more, so that a backend may forget it.
    pub(crate) fn forgettable_after(&self) -> OffsetDateTime {
        match &self.state {
            State::Open { pending, lease } => open_forgettable_after(pending.expires_at, *lease),
            State::Finished { finished, .. } => finished.expires_at() + TOMBSTONE,
            // A spent result was served its full count: once it expires, whether a retrieval
            // reads "expired" or "not found" changes nothing (refused either way), and keeping
            // markers only for their result's lifetime bounds them to that, not to it plus the
            // tombstone time (15 rather than 25 minutes of a steady rate, in a file or memory).
            State::Spent { expires_at } => *expires_at,
        }
    }

    /// Claims a pending, unexpired verification (or one whose lease lapsed) under `lease`.
    pub(crate) fn claim(&mut self, lease: Lease, now: OffsetDateTime) -> Option<Pending> {
        let State::Open {
            pending,
            lease: held,
        } = &mut self.state
        else {
            return None;
        };
        let claimable = pending.expires_at > now && held.is_none_or(|held| held.until <= now);
        if !claimable {
            return None;
        }
        *held = Some(lease);
        Some((**pending).clone())
    }

    /// Whether `lease` holds the claim on this record.
    pub(crate) fn held_by(&self, lease: Lease) -> bool {
        matches!(self.state, State::Open { lease: Some(held), .. } if held == lease)
    }

    /// Finishes a verification claimed under `lease`.
    pub(crate) fn finish(&mut self, lease: Lease, finished: Finished) -> Result<(), StoreError> {
        if !self.held_by(lease) {
            return Err(StoreError::NotClaimant);
        }
        self.state = State::Finished {
            finished: Box::new(finished),
            retrievals: 0,
        };
        Ok(())
    }

    /// Returns a verification claimed under `lease` to pending.
    pub(crate) fn release(&mut self, lease: Lease) -> Result<(), StoreError> {
        if !self.held_by(lease) {
            return Err(StoreError::NotClaimant);
        }
        if let State::Open { lease, .. } = &mut self.state {
            *lease = None;
        }
        Ok(())
    }

    /// A retrieval by a caller authorized for `authorized`, in the contract's order; counts it
    /// (and sets the result's retrieval timestamps) when it is [`Retrieval::Found`].
    pub(crate) fn retrieve(&mut self, authorized: &[Uuid], now: OffsetDateTime) -> Retrieval {
        let gone = match &self.state {
            // Past its expiry an unfinished verification is gone for good, even while a late
            // claim may still finish it.
            State::Open { pending, .. } => pending.expires_at <= now,
            _ => self.forgettable_after() <= now,
        };
        if gone {
            return Retrieval::NotFound;
        }
        if !authorized.contains(&self.site_key) {
            return Retrieval::WrongSite;
        }
        let (finished, retrievals) = match &mut self.state {
            State::Open { .. } => return Retrieval::NotFinished,
            State::Spent { .. } => return Retrieval::LimitReached,
            State::Finished {
                finished,
                retrievals,
            } => (finished, retrievals),
        };
        let expires_at = finished.expires_at();
        if expires_at <= now {
            return Retrieval::Expired;
        }
        if *retrievals >= finished.max_retrievals {
            return Retrieval::LimitReached;
        }
        *retrievals += 1;
        let result = &mut finished.result;
        result.result_first_fetched_at.get_or_insert(now);
        result.result_last_fetched_at = Some(now);
        let answer = Box::new(Found {
            result: result.clone(),
            access_rule: finished.access_rule,
        });
        if *retrievals >= finished.max_retrievals {
            // The result is never served again: keep only what later answers need.
            self.state = State::Spent { expires_at };
        }
        Retrieval::Found(answer)
    }
}
