//! The in-memory store: sharded maps behind short-held mutexes, bounded in size. It owns a
//! sweeper thread that forgets entries no answer depends on any more; the thread ends when the
//! store is dropped. For one process, tests and `--sandbox`; its state ends with the process.
//!
//! A verification whose retrievals are used up leaves its slot: what later answers need (its
//! site and expiry, 40 bytes with the map's own) moves to a map of markers, bounded apart
//! ([`MARKERS_PER_SLOT`] per slot of capacity), so the capacity bounds what is pending or
//! finished, not the traffic of the last 25 minutes.
//!
//! A pending or claimed verification is held packed (`store/packed.rs`, about 110 bytes) and
//! unpacked only when a transition touches it; a finished one as its record. Tables that an
//! expiry leaves at most a quarter used are shrunk, so a peak's memory goes back.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};
use time::OffsetDateTime;
use uuid::Uuid;

use super::catalog::MemoryCatalog;
use super::counter::Counter;
use super::history::MemoryHistory;
use super::packed;
use super::record::{self, Record, Records};
use super::{
    Collection, Counts, Entry as CatalogEntry, Expect, Finished, JournalBound, JournalEntry, Lease,
    Mark, Pending, Resolution, Retrieval, SeriesAdd, SeriesPoint, Store, StoreError,
};
use crate::background::{BackgroundThread, Running};
use crate::clock::Clock;

/// Shards spread lock contention across cores and keep each sweep of one shard short (a
/// million verifications are some 4 000 per shard); ids are random, so one byte spreads them
/// evenly.
const SHARDS: usize = 256;

/// How often the sweeper looks for entries to forget. Each pass locks one shard at a time.
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The sweeper's pause after each shard: it gives the core back to requests (a yield does
/// not, as measured by `scale-bench`).
const PAUSE: Duration = Duration::from_millis(1);

/// Markers of spent verifications kept per slot of capacity. Beyond that a spent verification
/// is forgotten at once, and a later retrieval of it answers not found instead of limit
/// reached: refused either way.
pub const MARKERS_PER_SLOT: usize = 16;

/// What a spent verification leaves behind.
#[derive(Debug, Clone, Copy)]
struct Marker {
    site_key: Uuid,
    /// The result's expiry, in Unix milliseconds.
    expires_at: i64,
}

/// A verification in a shard: open ones packed (see [`packed`]: about 110 bytes with a short page
/// URL, where a record, its pending verification and their texts took some 300), the others as
/// records. 16 bytes, so that a map entry is 32.
#[derive(Debug)]
enum Entry {
    Packed(Box<[u8]>),
    Unpacked(Box<Record>),
}

impl Entry {
    fn new(record: Record) -> Self {
        match packed::pack(&record) {
            Some(bytes) => Entry::Packed(bytes),
            None => Entry::Unpacked(Box::new(record)),
        }
    }

    /// Whether no answer depends on the verification any more at `now`.
    fn forgettable(&self, now: OffsetDateTime) -> bool {
        match self {
            // Bytes that do not unpack answer nothing: forgotten.
            Entry::Packed(bytes) => packed::forgettable_after(bytes).is_none_or(|at| at <= now),
            Entry::Unpacked(record) => record.forgettable_after() <= now,
        }
    }

    /// Runs `transition` on the record, packing it again afterwards if it is still open. `None`
    /// for bytes that do not unpack, which [`packed::pack`] never makes: the verification is then
    /// treated as absent (refused), never guessed at.
    fn with<T>(&mut self, transition: impl FnOnce(&mut Record) -> T) -> Option<T> {
        match self {
            Entry::Unpacked(record) => Some(transition(record)),
            Entry::Packed(bytes) => {
                let Some(mut record) = packed::unpack(bytes) else {
                    tracing::error!("a packed verification did not unpack; treated as absent");
                    return None;
                };
                let answer = transition(&mut record);
                *self = Entry::new(record);
                Some(answer)
            }
        }
    }
}

/// A bounded, sharded in-memory [`Store`].
#[derive(Debug)]
pub struct MemoryStore {
    shards: Arc<Shards>,
    /// Live and die with the process, so a heartbeat is never evidence across a restart.
    marks: Mutex<HashMap<&'static str, OffsetDateTime>>,
    /// The console's sites, users and sessions, and the audit log.
    catalog: Mutex<MemoryCatalog>,
    /// Series and journals.
    history: Mutex<MemoryHistory>,
    /// The sweeper, stopped and joined when the store is dropped; none if it could not start.
    _sweeper: Option<BackgroundThread>,
}

/// The maps behind the store. A panic does not poison their locks (`parking_lot`'s): every
/// update under them is a single insert, remove or assignment, so none is seen half-done.
#[derive(Debug)]
struct Shards {
    maps: [Mutex<HashMap<Uuid, Entry>>; SHARDS],
    len: AtomicUsize,
    capacity: usize,
    /// Spent verifications, sharded like `maps`; at most `capacity * MARKERS_PER_SLOT`.
    markers: [Mutex<HashMap<Uuid, Marker>>; SHARDS],
    marked: AtomicUsize,
    /// Counters, sharded by their name's hash; at most `capacity` of them.
    counters: [Mutex<HashMap<String, Counter>>; SHARDS],
    counted: AtomicUsize,
    hasher: RandomState,
}

impl MemoryStore {
    /// A store that holds at most `capacity` verifications, with its sweeper, which judges
    /// expiry by `clock`.
    #[must_use]
    pub fn new(capacity: usize, clock: Arc<dyn Clock>) -> Self {
        let shards = Arc::new(Shards {
            maps: std::array::from_fn(|_| Mutex::default()),
            len: AtomicUsize::new(0),
            capacity,
            markers: std::array::from_fn(|_| Mutex::default()),
            marked: AtomicUsize::new(0),
            counters: std::array::from_fn(|_| Mutex::default()),
            counted: AtomicUsize::new(0),
            hasher: RandomState::new(),
        });
        let weak = Arc::downgrade(&shards);
        let sweeper = BackgroundThread::spawn("trustcaptcha-sweeper", move |running| {
            sweep(&weak, &*clock, &running);
        })
        .inspect_err(|error| {
            // Answers stay right (expiry is judged at read time); memory is not reclaimed.
            tracing::error!(%error, "the memory store's sweeper did not start");
        })
        .ok();
        MemoryStore {
            shards,
            marks: Mutex::default(),
            catalog: Mutex::default(),
            history: Mutex::default(),
            _sweeper: sweeper,
        }
    }
}

/// The sweeper, until the store is dropped: a thread of its own, which holds one shard's lock at
/// a time and pauses after each (a pass over a million entries takes a quarter of a second),
/// so that forgetting hundreds of thousands of entries at once never holds up a request on the
/// runtime's workers, with which it shares the cores. It holds only a weak reference between
/// sweeps, so it never keeps a dropped store alive.
fn sweep(shards: &Weak<Shards>, clock: &dyn Clock, running: &Running) {
    // Waiting for the interval, and each pause, end at once when the store is dropped (so a
    // dropped store waits for one shard's work at most).
    while running.wait(SWEEP_INTERVAL) {
        let Some(shards) = shards.upgrade() else {
            return;
        };
        let forgotten = shards.forget_expired(clock.now(), &mut || running.wait(PAUSE));
        if forgotten > 0 {
            tracing::debug!(forgotten, "forgot expired verifications");
        }
    }
}

/// The shard of `id`: ids are random, so one byte spreads them evenly.
fn shard_of(id: Uuid) -> usize {
    usize::from(id.as_bytes()[15]) % SHARDS
}

impl Shards {
    fn shard(&self, id: Uuid) -> MutexGuard<'_, HashMap<Uuid, Entry>> {
        self.maps[shard_of(id)].lock()
    }

    fn markers(&self, id: Uuid) -> MutexGuard<'_, HashMap<Uuid, Marker>> {
        self.markers[shard_of(id)].lock()
    }

    /// Moves a verification that was just spent out of its slot, into a marker if there is
    /// room for one. `shard` is the locked shard that holds it.
    fn spend(&self, shard: &mut HashMap<Uuid, Entry>, id: Uuid, marker: Marker) {
        if shard.remove(&id).is_none() {
            return;
        }
        self.len.fetch_sub(1, Ordering::AcqRel);
        if self.marked.fetch_add(1, Ordering::AcqRel) >= self.capacity * MARKERS_PER_SLOT {
            self.marked.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        if self.markers(id).insert(id, marker).is_some() {
            self.marked.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Forgets what no answer depends on; one shard locked at a time, `between_shards` called
    /// after each (the pass stops when it answers false).
    fn forget_expired(
        &self,
        now: OffsetDateTime,
        between_shards: &mut dyn FnMut() -> bool,
    ) -> usize {
        let mut forgotten = 0;
        for map in &self.maps {
            let mut map = map.lock();
            forgotten += super::retain_shrinking(&mut map, |_, entry| !entry.forgettable(now));
            drop(map);
            if !between_shards() {
                return forgotten;
            }
        }
        self.len.fetch_sub(forgotten, Ordering::AcqRel);
        let until = super::millis(now);
        for markers in &self.markers {
            let mut markers = markers.lock();
            let gone = super::retain_shrinking(&mut markers, |_, marker| marker.expires_at > until);
            self.marked.fetch_sub(gone, Ordering::AcqRel);
            forgotten += gone;
            drop(markers);
            if !between_shards() {
                return forgotten;
            }
        }
        let now = super::millis(now);
        for counters in &self.counters {
            let mut counters = counters.lock();
            let gone =
                super::retain_shrinking(&mut counters, |_, counter| counter.forgettable_at() > now);
            self.counted.fetch_sub(gone, Ordering::AcqRel);
            drop(counters);
            if !between_shards() {
                return forgotten;
            }
        }
        forgotten
    }

    fn counters(&self, name: &str) -> MutexGuard<'_, HashMap<String, Counter>> {
        let index = usize::try_from(self.hasher.hash_one(name) % SHARDS as u64).unwrap_or(0);
        self.counters[index].lock()
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
        if shard.contains_key(&id) || self.markers(id).contains_key(&id) {
            self.len.fetch_sub(1, Ordering::AcqRel);
            return Err(StoreError::Duplicate);
        }
        shard.insert(id, Entry::new(record));
        Ok(())
    }

    /// Answers a retrieval: from the record of `id`, or from its marker once spent.
    fn retrieve(&self, id: Uuid, authorized: &[Uuid], now: OffsetDateTime) -> Retrieval {
        let mut shard = self.shard(id);
        if let Some(entry) = shard.get_mut(&id) {
            let Some((answer, spent)) = entry.with(|record| {
                let answer = record.retrieve(authorized, now);
                let spent = record.spent_until().map(|expires_at| Marker {
                    site_key: record.site_key,
                    expires_at: super::millis(expires_at),
                });
                (answer, spent)
            }) else {
                return Retrieval::NotFound;
            };
            if let Some(marker) = spent {
                self.spend(&mut shard, id, marker);
            }
            return answer;
        }
        drop(shard);
        let Some(marker) = self.markers(id).get(&id).copied() else {
            return Retrieval::NotFound;
        };
        let expires_at =
            super::from_millis(marker.expires_at).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Record::spent(marker.site_key, expires_at).retrieve(authorized, now)
    }

    /// Runs `transition` on the record of `id`, if there is one.
    fn with_record<T>(&self, id: Uuid, transition: impl FnOnce(&mut Record) -> T) -> Option<T> {
        self.shard(id).get_mut(&id)?.with(transition)
    }
}

#[async_trait::async_trait]
impl Records for MemoryStore {
    async fn insert(&self, id: Uuid, record: Record) -> Result<(), StoreError> {
        self.shards.insert(id, record)
    }

    async fn update<T: Send + 'static>(
        &self,
        id: Uuid,
        transition: impl for<'r> FnOnce(&'r mut Record) -> T + Send + 'static,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.shards.with_record(id, transition))
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
        record::insert_pending(self, id, pending).await
    }

    async fn claim(
        &self,
        id: Uuid,
        lease: Lease,
        now: OffsetDateTime,
    ) -> Result<Option<Pending>, StoreError> {
        record::claim(self, id, lease, now).await
    }

    async fn finish_claimed(
        &self,
        id: Uuid,
        lease: Lease,
        finished: Finished,
        _now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        record::finish_claimed(self, id, lease, finished).await
    }

    async fn insert_finished(
        &self,
        id: Uuid,
        finished: Finished,
        _now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        record::insert_finished(self, id, finished).await
    }

    async fn release(&self, id: Uuid, lease: Lease) -> Result<(), StoreError> {
        record::release(self, id, lease).await
    }

    async fn abandon(&self, id: Uuid, lease: Lease) -> Result<(), StoreError> {
        let mut shard = self.shards.shard(id);
        let held = shard
            .get_mut(&id)
            .and_then(|entry| entry.with(|record| record.held_by(lease)));
        if held != Some(true) {
            return Err(StoreError::NotClaimant);
        }
        shard.remove(&id);
        self.shards.len.fetch_sub(1, Ordering::AcqRel);
        Ok(())
    }

    async fn retrieve(
        &self,
        id: Uuid,
        authorized: &[Uuid],
        now: OffsetDateTime,
    ) -> Result<Retrieval, StoreError> {
        Ok(self.shards.retrieve(id, authorized, now))
    }

    async fn count(&self) -> Result<usize, StoreError> {
        Ok(self.shards.len.load(Ordering::Acquire))
    }

    async fn mark(&self, mark: Mark, at: OffsetDateTime) -> Result<(), StoreError> {
        let mut marks = self.marks.lock();
        let latest = marks.entry(mark.name()).or_insert(at);
        *latest = (*latest).max(at);
        Ok(())
    }

    async fn latest(&self, mark: Mark) -> Result<Option<OffsetDateTime>, StoreError> {
        let marks = self.marks.lock();
        Ok(marks.get(mark.name()).copied())
    }

    async fn add(
        &self,
        counter: &str,
        length: Duration,
        by: u64,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut counters = self.shards.counters(counter);
        if let Some(existing) = counters.get_mut(counter) {
            return Ok(existing.add(by, now));
        }
        if self.shards.counted.fetch_add(1, Ordering::AcqRel) >= self.shards.capacity {
            self.shards.counted.fetch_sub(1, Ordering::AcqRel);
            return Err(StoreError::Full);
        }
        let mut new = Counter::new(length, now);
        let count = new.add(by, now);
        counters.insert(counter.to_owned(), new);
        Ok(count)
    }

    async fn counts(
        &self,
        counter: &str,
        _length: Duration,
        now: OffsetDateTime,
    ) -> Result<Counts, StoreError> {
        let counters = self.shards.counters(counter);
        Ok(counters
            .get(counter)
            .map(|counter| counter.counts(now))
            .unwrap_or_default())
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
        self.catalog
            .lock()
            .put(collection, id, value, expect, expires_at, now)
    }

    async fn entry(
        &self,
        collection: Collection,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<CatalogEntry>, StoreError> {
        Ok(self.catalog.lock().get(collection, id, now))
    }

    async fn entries(
        &self,
        collection: Collection,
        now: OffsetDateTime,
    ) -> Result<Vec<CatalogEntry>, StoreError> {
        Ok(self.catalog.lock().list(collection, now))
    }

    async fn delete_entry(
        &self,
        collection: Collection,
        id: &str,
        expect: Expect,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.catalog.lock().delete(collection, id, expect, now)
    }

    async fn revision(&self, collection: Collection) -> Result<u64, StoreError> {
        Ok(self.catalog.lock().revision(collection))
    }

    async fn append_audit(&self, entry: String) -> Result<u64, StoreError> {
        Ok(self.catalog.lock().append_audit(entry))
    }

    async fn audit(&self, after: u64, limit: usize) -> Result<Vec<(u64, String)>, StoreError> {
        Ok(self.catalog.lock().audit(after, limit))
    }

    async fn add_series(
        &self,
        adds: Vec<SeriesAdd>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.history.lock().add_series(adds, now);
        Ok(())
    }

    async fn series(
        &self,
        site: &str,
        resolution: Resolution,
        from: i64,
        to: i64,
        now: OffsetDateTime,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        Ok(self.history.lock().series(site, resolution, from, to, now))
    }

    async fn append_journal(
        &self,
        journal: &str,
        entries: Vec<JournalEntry>,
        bound: JournalBound,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.history
            .lock()
            .append_journal(journal, entries, bound, now);
        Ok(())
    }

    async fn journal(
        &self,
        journal: &str,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        Ok(self.history.lock().journal(journal, from, to, limit))
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
        assert_eq!(
            store
                .shards
                .forget_expired(conformance::T0 + minute, &mut || true),
            1
        );
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
    async fn open_verifications_are_held_packed_in_small_entries() {
        assert_eq!(std::mem::size_of::<(Uuid, Entry)>(), 32);
        let store = store(10);
        let id = Uuid::new_v4();
        let minute = Duration::from_secs(60);
        let pending = conformance::pending(minute);
        store
            .insert_pending(id, pending.clone(), conformance::T0)
            .await
            .expect("insert");
        let packed =
            |store: &MemoryStore| matches!(store.shards.shard(id).get(&id), Some(Entry::Packed(_)));
        assert!(packed(&store));
        let lease = conformance::lease();
        let claimed = store
            .claim(id, lease, conformance::T0)
            .await
            .expect("claim");
        assert_eq!(claimed, Some(pending));
        assert!(packed(&store), "claimed, it stays packed with its lease");
        assert_eq!(
            store.release(id, conformance::lease()).await,
            Err(StoreError::NotClaimant)
        );
        assert_eq!(store.release(id, lease).await, Ok(()));
        assert!(packed(&store));
    }

    #[test]
    fn dropping_the_store_ends_its_sweeper() {
        let store = store(1);
        assert!(store._sweeper.is_some(), "the sweeper started");
        // Dropping the store joins the sweeper, so the drop returns only once the thread has
        // ended (the sweeper waits 5 s between passes: ending means it heard the drop).
        let (dropped, done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(store);
            let _ = dropped.send(());
        });
        done.recv_timeout(Duration::from_secs(60))
            .expect("the store's drop returned, its sweeper ended");
    }
}
