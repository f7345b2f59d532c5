//! The in-memory store: sharded maps behind short-held mutexes, bounded in size. It owns a
//! sweeper task that forgets entries no answer depends on any more; the task ends when the store
//! is dropped. For one process, tests and `--sandbox`; its state ends with the process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Finished, Lease, Pending, Retrieval, Store, StoreError, TOMBSTONE};
use crate::clock::Clock;

/// Shards spread lock contention across cores; ids are random, so any byte spreads evenly.
const SHARDS: usize = 16;

/// How often the sweeper looks for entries to forget. Each pass locks one shard at a time.
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// A bounded, sharded in-memory [`Store`].
#[derive(Debug)]
pub struct MemoryStore {
    shards: Arc<Shards>,
    sweeper: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Debug)]
struct Shards {
    maps: [Mutex<HashMap<Uuid, Record>>; SHARDS],
    len: AtomicUsize,
    capacity: usize,
}

#[derive(Debug)]
struct Record {
    site_key: Uuid,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Pending, or claimed when a lease holds it.
    Open {
        pending: Box<Pending>,
        lease: Option<Lease>,
    },
    Finished {
        finished: Box<Finished>,
        retrievals: u32,
    },
    /// Every allowed retrieval was made: only the expiry is kept.
    Spent { expires_at: OffsetDateTime },
}

impl State {
    /// When no answer depends on the entry any more.
    fn forgettable_after(&self) -> OffsetDateTime {
        match self {
            // A claim may still finish until its lease lapses.
            State::Open { pending, lease } => lease.map_or(pending.expires_at, |lease| {
                pending.expires_at.max(lease.until)
            }),
            State::Finished { finished, .. } => finished.expires_at() + TOMBSTONE,
            State::Spent { expires_at } => *expires_at + TOMBSTONE,
        }
    }
}

impl MemoryStore {
    /// A store that holds at most `capacity` verifications. Inside a Tokio runtime it starts its
    /// sweeper, judging expiry by `clock`; outside one, entries are only forgotten when
    /// answers no longer depend on them at read time (nothing is ever answered wrongly, but
    /// memory is not reclaimed).
    #[must_use]
    pub fn new(capacity: usize, clock: Arc<dyn Clock>) -> Self {
        let shards = Arc::new(Shards {
            maps: std::array::from_fn(|_| Mutex::default()),
            len: AtomicUsize::new(0),
            capacity,
        });
        let sweeper = tokio::runtime::Handle::try_current()
            .ok()
            .map(|runtime| runtime.spawn(sweep(Arc::downgrade(&shards), clock)));
        MemoryStore { shards, sweeper }
    }
}

impl Drop for MemoryStore {
    fn drop(&mut self) {
        if let Some(sweeper) = self.sweeper.take() {
            sweeper.abort();
        }
    }
}

/// The sweeper: holds only a weak reference, so it never keeps a dropped store alive.
async fn sweep(shards: Weak<Shards>, clock: Arc<dyn Clock>) {
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(shards) = shards.upgrade() else {
            return;
        };
        let forgotten = shards.forget_expired(clock.now());
        if forgotten > 0 {
            tracing::debug!(forgotten, "forgot expired verifications");
        }
    }
}

impl Shards {
    fn shard(&self, id: Uuid) -> MutexGuard<'_, HashMap<Uuid, Record>> {
        let index = usize::from(id.as_bytes()[15]) % SHARDS;
        // Every update under the lock is a single insert, remove or assignment, so a map seen
        // after a panic elsewhere is never half-updated.
        self.maps[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets what no answer depends on; one shard locked at a time.
    fn forget_expired(&self, now: OffsetDateTime) -> usize {
        let mut forgotten = 0;
        for map in &self.maps {
            let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
            let before = map.len();
            map.retain(|_, record| record.state.forgettable_after() > now);
            forgotten += before - map.len();
        }
        self.len.fetch_sub(forgotten, Ordering::AcqRel);
        forgotten
    }

    /// Inserts a new entry if the id is free and there is room. The size is reserved before the
    /// insert, so concurrent inserts cannot overshoot the capacity; a full store answers at once
    /// (the sweeper makes room), never by scanning.
    fn insert(&self, id: Uuid, record: Record) -> Result<(), StoreError> {
        if self.len.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.len.fetch_sub(1, Ordering::AcqRel);
            return Err(StoreError::Full);
        }
        let mut shard = self.shard(id);
        if shard.contains_key(&id) {
            self.len.fetch_sub(1, Ordering::AcqRel);
            return Err(StoreError::Duplicate);
        }
        shard.insert(id, record);
        Ok(())
    }

    /// Replaces the state of a verification claimed under `lease` by what `change` makes of
    /// it (`None` forgets it).
    fn with_claim(
        &self,
        id: Uuid,
        lease: Lease,
        change: impl FnOnce(Box<Pending>) -> Option<State>,
    ) -> Result<(), StoreError> {
        let mut shard = self.shard(id);
        let held = shard.get(&id).is_some_and(
            |record| matches!(record.state, State::Open { lease: Some(held), .. } if held == lease),
        );
        if !held {
            return Err(StoreError::NotClaimant);
        }
        let Some(Record {
            site_key,
            state: State::Open { pending, .. },
        }) = shard.remove(&id)
        else {
            unreachable!("checked above under the same lock")
        };
        match change(pending) {
            Some(state) => {
                shard.insert(id, Record { site_key, state });
            }
            None => {
                self.len.fetch_sub(1, Ordering::AcqRel);
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn insert_pending(
        &self,
        id: Uuid,
        pending: Pending,
        _now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let record = Record {
            site_key: pending.site_key,
            state: State::Open {
                pending: Box::new(pending),
                lease: None,
            },
        };
        self.shards.insert(id, record)
    }

    async fn claim(
        &self,
        id: Uuid,
        lease: Lease,
        now: OffsetDateTime,
    ) -> Result<Option<Pending>, StoreError> {
        let mut shard = self.shards.shard(id);
        let Some(Record {
            state: State::Open {
                pending,
                lease: held,
            },
            ..
        }) = shard.get_mut(&id)
        else {
            return Ok(None);
        };
        let claimable = pending.expires_at > now && held.is_none_or(|held| held.until <= now);
        if !claimable {
            return Ok(None);
        }
        *held = Some(lease);
        Ok(Some((**pending).clone()))
    }

    async fn finish_claimed(
        &self,
        id: Uuid,
        lease: Lease,
        finished: Finished,
    ) -> Result<(), StoreError> {
        self.shards.with_claim(id, lease, |_| {
            Some(State::Finished {
                finished: Box::new(finished),
                retrievals: 0,
            })
        })
    }

    async fn insert_finished(
        &self,
        id: Uuid,
        finished: Finished,
        _now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let record = Record {
            site_key: finished.site_key,
            state: State::Finished {
                finished: Box::new(finished),
                retrievals: 0,
            },
        };
        self.shards.insert(id, record)
    }

    async fn release(&self, id: Uuid, lease: Lease) -> Result<(), StoreError> {
        self.shards.with_claim(id, lease, |pending| {
            Some(State::Open {
                pending,
                lease: None,
            })
        })
    }

    async fn abandon(&self, id: Uuid, lease: Lease) -> Result<(), StoreError> {
        self.shards.with_claim(id, lease, |_| None)
    }

    async fn retrieve(
        &self,
        id: Uuid,
        authorized: &[Uuid],
        now: OffsetDateTime,
    ) -> Result<Retrieval, StoreError> {
        let mut shard = self.shards.shard(id);
        let Some(record) = shard.get_mut(&id) else {
            return Ok(Retrieval::NotFound);
        };
        let gone = match &record.state {
            // Past its expiry an unfinished verification is gone for good, even while a late
            // claim may still finish it.
            State::Open { pending, .. } => pending.expires_at <= now,
            state => state.forgettable_after() <= now,
        };
        if gone {
            return Ok(Retrieval::NotFound);
        }
        if !authorized.contains(&record.site_key) {
            return Ok(Retrieval::WrongSite);
        }
        let (finished, retrievals) = match &mut record.state {
            State::Open { .. } => return Ok(Retrieval::NotFinished),
            State::Spent { expires_at } if *expires_at <= now => return Ok(Retrieval::Expired),
            State::Spent { .. } => return Ok(Retrieval::LimitReached),
            State::Finished {
                finished,
                retrievals,
            } => (finished, retrievals),
        };
        let expires_at = finished.expires_at();
        if expires_at <= now {
            return Ok(Retrieval::Expired);
        }
        if *retrievals >= finished.max_retrievals {
            return Ok(Retrieval::LimitReached);
        }
        *retrievals += 1;
        let result = &mut finished.result;
        result.result_first_fetched_at.get_or_insert(now);
        result.result_last_fetched_at = Some(now);
        let answer = Box::new(result.clone());
        if *retrievals >= finished.max_retrievals {
            // The result is never served again: keep only what later answers need.
            record.state = State::Spent { expires_at };
        }
        Ok(Retrieval::Found(answer))
    }

    async fn count(&self) -> Result<usize, StoreError> {
        Ok(self.shards.len.load(Ordering::Acquire))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if self.shards.len.load(Ordering::Acquire) >= self.shards.capacity {
            Err(StoreError::Full)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::conformance;

    fn store(capacity: usize) -> MemoryStore {
        MemoryStore::new(
            capacity,
            Arc::new(ManualClock::new(conformance::T0)) as Arc<dyn Clock>,
        )
    }

    conformance::suite!(store);

    #[tokio::test]
    async fn the_sweeper_forgets_only_what_no_answer_needs() {
        let store = store(10);
        let live = Uuid::new_v4();
        let dead = Uuid::new_v4();
        let minute = Duration::from_secs(60);
        store
            .insert_pending(live, conformance::pending(10 * minute), conformance::T0)
            .await
            .expect("insert");
        store
            .insert_pending(dead, conformance::pending(minute), conformance::T0)
            .await
            .expect("insert");
        assert_eq!(store.shards.forget_expired(conformance::T0 + minute), 1);
        assert_eq!(store.count().await, Ok(1));
        assert!(
            store
                .claim(live, conformance::lease(), conformance::T0 + minute)
                .await
                .expect("ok")
                .is_some()
        );
    }

    #[tokio::test]
    async fn dropping_the_store_ends_its_sweeper() {
        let store = store(1);
        let sweeper = store
            .sweeper
            .as_ref()
            .expect("started in a runtime")
            .abort_handle();
        drop(store);
        tokio::task::yield_now().await;
        assert!(sweeper.is_finished());
    }
}
