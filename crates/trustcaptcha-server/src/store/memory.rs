//! The in-memory store: sharded maps behind mutexes, bounded in size, with expired entries
//! evicted by [`Store::evict_expired`] (the server calls it periodically) and on demand when full.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Fetched, Finished, Pending, Store, StoreError};

/// Shards spread lock contention across cores; ids are random, so any byte spreads evenly.
const SHARDS: usize = 16;

/// Expired entries are kept this long so that late fetches get 410 rather than 404.
const TOMBSTONE: Duration = Duration::from_secs(600);

/// A bounded, sharded in-memory [`Store`].
#[derive(Debug)]
pub struct MemoryStore {
    shards: [Mutex<HashMap<Uuid, Record>>; SHARDS],
    len: AtomicUsize,
    capacity: usize,
}

#[derive(Debug)]
struct Record {
    site_key: Uuid,
    expires_at: OffsetDateTime,
    state: State,
}

#[derive(Debug)]
enum State {
    Pending(Box<Pending>),
    Submitting,
    Finished {
        finished: Box<Finished>,
        retrievals: u32,
    },
}

impl MemoryStore {
    /// A store that holds at most `capacity` verifications.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        MemoryStore {
            shards: std::array::from_fn(|_| Mutex::default()),
            len: AtomicUsize::new(0),
            capacity,
        }
    }

    fn shard(&self, id: Uuid) -> MutexGuard<'_, HashMap<Uuid, Record>> {
        let index = usize::from(id.as_bytes()[15]) % SHARDS;
        // A panic while holding the lock cannot leave a map half-updated in a way that matters
        // here (every update is a single insert/remove/assignment), so a poisoned lock is used.
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves room for one more entry, evicting expired ones if needed.
    fn reserve(&self, now: OffsetDateTime) -> Result<(), StoreError> {
        if self.len.fetch_add(1, Ordering::AcqRel) < self.capacity {
            return Ok(());
        }
        self.len.fetch_sub(1, Ordering::AcqRel);
        self.evict_expired(now);
        if self.len.fetch_add(1, Ordering::AcqRel) < self.capacity {
            Ok(())
        } else {
            self.len.fetch_sub(1, Ordering::AcqRel);
            Err(StoreError::Full)
        }
    }
}

impl Store for MemoryStore {
    fn insert_pending(
        &self,
        id: Uuid,
        pending: Pending,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.reserve(now)?;
        let mut shard = self.shard(id);
        if shard.contains_key(&id) {
            self.len.fetch_sub(1, Ordering::AcqRel);
            return Err(StoreError::Duplicate);
        }
        shard.insert(
            id,
            Record {
                site_key: pending.site_key,
                expires_at: pending.expires_at,
                state: State::Pending(Box::new(pending)),
            },
        );
        Ok(())
    }

    fn claim_pending(&self, id: Uuid, now: OffsetDateTime) -> Result<Option<Pending>, StoreError> {
        let mut shard = self.shard(id);
        let Some(record) = shard.get_mut(&id) else {
            return Ok(None);
        };
        if record.expires_at <= now {
            return Ok(None);
        }
        // Taking the state out leaves `Submitting` behind: concurrent submissions find no
        // pending challenge, so exactly one of them can finish it.
        match std::mem::replace(&mut record.state, State::Submitting) {
            State::Pending(pending) => Ok(Some(*pending)),
            other => {
                record.state = other;
                Ok(None)
            }
        }
    }

    fn finish(&self, id: Uuid, finished: Finished, now: OffsetDateTime) -> Result<(), StoreError> {
        let expires_at = finished.result.result_expires_at.unwrap_or(now);
        let record = Record {
            site_key: finished.site_key,
            expires_at,
            state: State::Finished {
                finished: Box::new(finished),
                retrievals: 0,
            },
        };
        let exists = self.shard(id).contains_key(&id);
        if !exists {
            self.reserve(now)?;
        }
        let replaced = self.shard(id).insert(id, record).is_some();
        match (exists, replaced) {
            (false, true) => self.len.fetch_sub(1, Ordering::AcqRel),
            // Evicted between the check and the insert: the insert added an entry after all.
            (true, false) => self.len.fetch_add(1, Ordering::AcqRel),
            _ => 0,
        };
        Ok(())
    }

    fn discard(&self, id: Uuid) -> Result<(), StoreError> {
        if self.shard(id).remove(&id).is_some() {
            self.len.fetch_sub(1, Ordering::AcqRel);
        }
        Ok(())
    }

    fn fetch(
        &self,
        id: Uuid,
        authorized: &[Uuid],
        now: OffsetDateTime,
    ) -> Result<Fetched, StoreError> {
        let mut shard = self.shard(id);
        let Some(record) = shard.get_mut(&id) else {
            return Ok(Fetched::NotFound);
        };
        if !authorized.contains(&record.site_key) {
            return Ok(Fetched::WrongSite);
        }
        if record.expires_at <= now {
            return Ok(Fetched::Expired);
        }
        let State::Finished {
            finished,
            retrievals,
        } = &mut record.state
        else {
            return Ok(Fetched::NotFinished);
        };
        if *retrievals >= finished.max_retrievals {
            return Ok(Fetched::LimitReached);
        }
        *retrievals += 1;
        let result = &mut finished.result;
        result.result_first_fetched_at.get_or_insert(now);
        result.result_last_fetched_at = Some(now);
        Ok(Fetched::Found(Box::new(result.clone())))
    }

    fn evict_expired(&self, now: OffsetDateTime) -> usize {
        let mut evicted = 0;
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            let before = shard.len();
            shard.retain(|_, record| match record.state {
                // An expired challenge can never finish; drop it at once.
                State::Pending(_) | State::Submitting => record.expires_at > now,
                State::Finished { .. } => record.expires_at + TOMBSTONE > now,
            });
            evicted += before - shard.len();
        }
        self.len.fetch_sub(evicted, Ordering::AcqRel);
        evicted
    }

    fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ClientInfo;
    use time::macros::datetime;
    use trustcaptcha::VerificationResult;

    const T0: OffsetDateTime = datetime!(2026-01-01 12:00 UTC);
    const SITE: Uuid = Uuid::from_u128(1);

    fn pending(expires_in: Duration) -> Pending {
        Pending {
            site_key: SITE,
            inputs: vec![[0; 16]],
            difficulty: 1,
            created_at: T0,
            expires_at: T0 + expires_in,
            client: ClientInfo::default(),
            signals: Default::default(),
            access_rule: None,
        }
    }

    fn finished(id: Uuid, max_retrievals: u32, lifetime: Duration) -> Finished {
        let result: VerificationResult = serde_json::from_value(serde_json::json!({
            "captchaId": Uuid::from_u128(2), "verificationId": id,
            "verificationPassed": true, "score": 0.0,
        }))
        .expect("result");
        Finished {
            result: VerificationResult {
                result_expires_at: Some(T0 + lifetime),
                ..result
            },
            site_key: SITE,
            max_retrievals,
        }
    }

    #[test]
    fn lifecycle_of_a_verification() {
        let store = MemoryStore::new(10);
        let id = Uuid::new_v4();
        let minute = Duration::from_secs(60);
        store
            .insert_pending(id, pending(minute), T0)
            .expect("insert");
        assert_eq!(
            store.insert_pending(id, pending(minute), T0),
            Err(StoreError::Duplicate)
        );
        assert_eq!(store.fetch(id, &[SITE], T0), Ok(Fetched::NotFinished));
        assert!(store.claim_pending(id, T0).expect("ok").is_some());
        assert_eq!(store.claim_pending(id, T0), Ok(None), "claimed once");
        assert_eq!(store.fetch(id, &[SITE], T0), Ok(Fetched::NotFinished));
        store
            .finish(id, finished(id, 2, 15 * minute), T0)
            .expect("finish");
        assert_eq!(store.len(), 1);

        assert_eq!(
            store.fetch(id, &[Uuid::from_u128(9)], T0),
            Ok(Fetched::WrongSite)
        );
        let Ok(Fetched::Found(first)) = store.fetch(id, &[SITE], T0 + minute) else {
            panic!("first fetch")
        };
        assert_eq!(first.result_first_fetched_at, Some(T0 + minute));
        let Ok(Fetched::Found(second)) = store.fetch(id, &[SITE], T0 + 2 * minute) else {
            panic!("second fetch")
        };
        assert_eq!(second.result_first_fetched_at, Some(T0 + minute));
        assert_eq!(second.result_last_fetched_at, Some(T0 + 2 * minute));
        assert_eq!(
            store.fetch(id, &[SITE], T0 + 3 * minute),
            Ok(Fetched::LimitReached)
        );
        assert_eq!(
            store.fetch(id, &[SITE], T0 + 15 * minute),
            Ok(Fetched::Expired)
        );
        assert_eq!(
            store.fetch(Uuid::new_v4(), &[SITE], T0),
            Ok(Fetched::NotFound)
        );
    }

    #[test]
    fn expired_challenges_cannot_be_claimed_and_are_evicted() {
        let store = MemoryStore::new(10);
        let id = Uuid::new_v4();
        store
            .insert_pending(id, pending(Duration::from_secs(60)), T0)
            .expect("insert");
        assert_eq!(
            store.claim_pending(id, T0 + Duration::from_secs(60)),
            Ok(None)
        );
        assert_eq!(store.evict_expired(T0 + Duration::from_secs(60)), 1);
        assert!(store.is_empty());
    }

    #[test]
    fn capacity_is_bounded_and_reclaimed_from_expired_entries() {
        let store = MemoryStore::new(2);
        let second = Duration::from_secs(1);
        store
            .insert_pending(Uuid::new_v4(), pending(second), T0)
            .expect("1");
        store
            .insert_pending(Uuid::new_v4(), pending(60 * second), T0)
            .expect("2");
        assert_eq!(
            store.insert_pending(Uuid::new_v4(), pending(second), T0),
            Err(StoreError::Full)
        );
        store
            .insert_pending(Uuid::new_v4(), pending(60 * second), T0 + second)
            .expect("room made by evicting the expired entry");
        assert_eq!(store.len(), 2);
        let id = Uuid::new_v4();
        assert_eq!(
            store.finish(id, finished(id, 1, second), T0),
            Err(StoreError::Full)
        );
    }

    #[test]
    fn concurrent_fetches_count_exactly() {
        let store = std::sync::Arc::new(MemoryStore::new(10));
        let id = Uuid::new_v4();
        store
            .finish(id, finished(id, 1, Duration::from_secs(60)), T0)
            .expect("finish");
        let found: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let store = &store;
                    scope.spawn(move || {
                        (0..25)
                            .filter(|_| {
                                matches!(store.fetch(id, &[SITE], T0), Ok(Fetched::Found(_)))
                            })
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("thread")).sum()
        });
        assert_eq!(found, 1);
    }
}
