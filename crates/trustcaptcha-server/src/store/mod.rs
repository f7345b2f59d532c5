//! Where verifications live between the widget's create, its submission and the backend's
//! retrievals: the [`Store`] contract every backend implements, [`Layered`] stores that wrap
//! any store with a [`StoreLayer`] (such as [`TrackedStore`], through which the server makes every
//! store call, so that failures are logged and a recovery writes a heartbeat), and the
//! backends: [`sqlite::SqliteStore`] (durable, the default of `serve --config`),
//! `redis::RedisStore` (shared by many instances; feature `redis`) and
//! [`memory::MemoryStore`] (one process, tests, `--sandbox`). [`open`] picks one by URL.
//!
//! # The contract
//!
//! A verification is in one of these states:
//!
//! ```text
//!            insert_pending                 claim                   finish_claimed
//!   (none) ─────────────────▶ pending ─────────────────▶ claimed ─────────────────────▶ finished
//!      │                        ▲   ◀──────────────────  │   │                              │
//!      │                        │   release (or lapse)   │   └── abandon ──▶ (none)         │ last
//!      └──── insert_finished ───┼────────────────────────┼──────────────────────────▶ finished ──▶ spent
//!                               │                        │                       retrieval
//! ```
//!
//! * **pending**: a challenge was handed out; it can be claimed until its `expires_at`.
//! * **claimed**: one submission holds it under a [`Lease`]. Only the holder of that lease can
//!   finish, release or abandon it. A lease that lapses (its `until` passed) lets the next
//!   submission claim it again, so a claimant that vanished (a crashed process) strands nothing.
//! * **finished**: the result is ready and counts its retrievals.
//! * **spent**: every allowed retrieval was made; a backend drops the result and keeps a small
//!   marker that answers [`Retrieval::LimitReached`] until the result's expiry, then
//!   `NotFound` (a result served its full count needs no `Expired` answer: the marker's life
//!   is the result's, not that plus [`TOMBSTONE`], which bounds the markers of a steady rate
//!   to the result lifetime's worth). A spent verification no longer counts against the capacity, which bounds the
//!   pending and finished ones ([`Store::count`]); a backend may bound its markers apart and
//!   forget a spent verification early when they are full (a later retrieval then answers
//!   `NotFound`: refused either way).
//!
//! Every transition and every counted retrieval is atomic: of any number of concurrent claims
//! of one verification exactly one succeeds, and of concurrent retrievals exactly
//! `max_retrievals` get [`Retrieval::Found`].
//!
//! Expiry is judged against the `now` passed in, never against when a sweep last ran, so an
//! answer does not depend on housekeeping. A retrieval answers, in this order:
//!
//! 1. [`Retrieval::NotFound`]: no such id; or a pending or claimed verification past its
//!    `expires_at` (it can never finish); or a spent one past its result's expiry; or a
//!    finished one past its result's expiry plus [`TOMBSTONE`];
//! 2. [`Retrieval::WrongSite`]: the verification belongs to a site outside `authorized`;
//! 3. [`Retrieval::Expired`]: finished, not spent, and its result expired less than
//!    [`TOMBSTONE`] ago;
//! 4. [`Retrieval::NotFinished`]: pending or claimed;
//! 5. [`Retrieval::LimitReached`]: retrieved `max_retrievals` times already;
//! 6. [`Retrieval::Found`]: the result, with this retrieval counted and its timestamps set.
//!
//! A backend may forget an entry once no answer can depend on it any more (expired pending
//! entries at once; spent ones at their result's expiry; other finished ones after their expiry
//! plus [`TOMBSTONE`]); it must never forget
//! an entry earlier. Every backend passes the conformance suite in `conformance.rs`.

pub mod catalog;
mod counter;
pub mod history;
mod layer;
pub mod memory;
mod packed;
mod record;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(all(feature = "redis", any(test, feature = "test-support")))]
pub(crate) mod redis_servers;
pub mod sqlite;
mod tracked;

#[cfg(test)]
pub(crate) mod conformance;

use std::time::Duration;

use time::OffsetDateTime;
use trustcaptcha::VerificationResult;
use uuid::Uuid;

use crate::access::AccessRule;
use crate::pow::Tasks;
use crate::signals::Signals;
use crate::visitor::Visitor;

pub use catalog::{Collection, Entry, Expect};
pub use history::{JournalBound, JournalEntry, Resolution, SeriesAdd, SeriesPoint};
pub use layer::{Call, Layered, StoreLayer};
pub(crate) use tracked::tracked;
pub use tracked::{Health, TrackedStore};

/// Opens the store `[store]` names by its URL: `sqlite://PATH` (a file, created if missing),
/// `redis://[USER:PASSWORD@]HOST:PORT[/DB]` (one Redis node),
/// `redis+cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT…]` (a Redis Cluster, given by some of
/// its nodes) or `memory://` (also without a URL). `capacity` bounds the in-process backends;
/// Redis is bounded by its own `maxmemory`, and waits for the replicas the settings ask for.
///
/// # Errors
///
/// [`StoreError::Unavailable`] for another scheme, a malformed URL, or a file that cannot be
/// opened. A Redis is not contacted yet: see [`Store::prepare`].
pub fn open(
    settings: &crate::config::StoreSettings,
    capacity: usize,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    let url = settings.url.as_deref().unwrap_or("memory://");
    if url == "memory://" {
        return Ok(std::sync::Arc::new(memory::MemoryStore::new(
            capacity, clock,
        )));
    }
    #[cfg(feature = "redis")]
    if url.starts_with("redis://") || url.starts_with("redis+cluster://") {
        return Ok(std::sync::Arc::new(
            redis::RedisStore::open(url)?
                .wait_for_replicas(settings.wait_for_replicas, settings.replica_timeout),
        ));
    }
    match url.strip_prefix("sqlite://") {
        Some(path) if !path.is_empty() => Ok(std::sync::Arc::new(sqlite::SqliteStore::open(
            std::path::Path::new(path),
            capacity,
            clock,
        )?)),
        _ => Err(StoreError::Unavailable(format!(
            "`{}` is not a store URL: use sqlite://PATH, redis://HOST:PORT, \
             redis+cluster://HOST:PORT,… or memory://",
            crate::config::redacted(url)
        ))),
    }
}

/// How long after its result expired a finished verification that was not spent still answers
/// [`Retrieval::Expired`] (410) rather than [`Retrieval::NotFound`] (404).
pub const TOMBSTONE: Duration = Duration::from_secs(600);

/// A verification whose challenge was handed out and not yet solved.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pending {
    /// The site it belongs to.
    pub site_key: Uuid,
    /// The proof-of-work tasks (stored by earlier versions as `inputs`).
    #[serde(alias = "inputs")]
    pub tasks: Tasks,
    /// The difficulty the tasks were issued with.
    pub difficulty: u8,
    /// When the challenge was handed out.
    pub created_at: OffsetDateTime,
    /// When the challenge stops being accepted.
    pub expires_at: OffsetDateTime,
    /// What the result will say about the visitor.
    pub visitor: Visitor,
    /// Scoring signals seen when the challenge was handed out.
    pub signals: Signals,
    /// An allow or block list entry that matched the visitor.
    pub access_rule: Option<AccessRule>,
    /// The create request's headers that a browser repeats on the submission, as a digest
    /// (`detection::request_fingerprint`); 0 when there is nothing to compare: a site that is
    /// not scored, or a verification stored by an earlier release.
    #[serde(default)]
    pub request: u32,
}

/// A finished verification.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Finished {
    /// The result as it will be served; the retrieval timestamps are set per retrieval. Its
    /// `result_expires_at` is when it expires.
    pub result: VerificationResult,
    /// The site it belongs to.
    pub site_key: Uuid,
    /// How often it may be retrieved.
    pub max_retrievals: u32,
    /// The access rule that decided it, if one did: what the older results API's `reason`
    /// tells apart beyond `decisionType` (a country list's block is `GEOBLOCKING`). Results
    /// stored by earlier releases read with none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_rule: Option<AccessRule>,
}

/// A result found by a retrieval, with this retrieval counted and its timestamps set.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// The result as it is served.
    pub result: VerificationResult,
    /// The access rule that decided it (see [`Finished::access_rule`]).
    pub access_rule: Option<AccessRule>,
}

impl Finished {
    /// When the result expires (a result without an expiry expires at once).
    #[must_use]
    pub fn expires_at(&self) -> OffsetDateTime {
        self.result
            .result_expires_at
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// The proof that a submission holds a claim: a random token, and until when it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lease {
    /// Random; only the claimant knows it.
    pub token: u64,
    /// After this, another submission may claim the verification.
    pub until: OffsetDateTime,
}

impl Lease {
    /// A fresh lease that holds for `duration` after `now`.
    #[must_use]
    pub fn new(now: OffsetDateTime, duration: Duration) -> Self {
        Lease {
            token: rand::random(),
            until: now + duration,
        }
    }
}

/// A time the store keeps the latest of, shared by every server using it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// A server was alive: servers mark it periodically, so that a gap between the latest
    /// heartbeat and a start is evidence of downtime.
    Heartbeat,
    /// An outage of the store, seen by some server, ended: every server allows failover answers
    /// for a while after it.
    OutageEnded,
}

impl Mark {
    /// The mark's name in a backend.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mark::Heartbeat => "heartbeat",
            Mark::OutageEnded => "outage_ended",
        }
    }
}

/// A counter's counts in two adjacent windows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// In the window before the current one.
    pub previous: u64,
    /// In the window that holds `now`.
    pub current: u64,
}

impl Counts {
    /// The count over the last `length` before `now`, estimated by weighting the previous
    /// window by how much of it still lies within that span (a sliding window from two fixed
    /// ones).
    #[must_use]
    pub fn sliding(self, length: Duration, now: OffsetDateTime) -> u64 {
        let length = length.as_millis().max(1);
        let into = u128::try_from(millis(now)).unwrap_or(0) % length;
        let weight = length - into;
        let previous = u128::from(self.previous) * weight / length;
        u64::try_from(previous)
            .unwrap_or(u64::MAX)
            .saturating_add(self.current)
    }
}

/// The window of `length` that holds `now`, numbered from the Unix epoch.
pub(crate) fn window(length: Duration, now: OffsetDateTime) -> i64 {
    let length = i64::try_from(length.as_millis()).unwrap_or(i64::MAX).max(1);
    millis(now).div_euclid(length)
}

/// Milliseconds since the Unix epoch, the time unit backends store.
pub(crate) fn millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Keeps the entries of `map` that `keep` answers true for; returns how many went. Once at most a
/// quarter of the table is used (after a mass expiry), the table is made half full, so that a
/// peak does not hold its memory for ever.
pub(crate) fn retain_shrinking<K, V, S>(
    map: &mut std::collections::HashMap<K, V, S>,
    keep: impl FnMut(&K, &mut V) -> bool,
) -> usize
where
    K: Eq + std::hash::Hash,
    S: std::hash::BuildHasher,
{
    let before = map.len();
    map.retain(keep);
    if map.capacity() > 4 * map.len() {
        map.shrink_to(2 * map.len());
    }
    before - map.len()
}

/// The time `millis` made into milliseconds, if it is one.
pub(crate) fn from_millis(at: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000).ok()
}

/// The answer to a retrieval, in the order of the contract.
#[derive(Debug, Clone, PartialEq)]
pub enum Retrieval {
    /// The result, with this retrieval counted and its timestamps set.
    Found(Box<Found>),
    /// No such verification, or none that can still be answered for.
    NotFound,
    /// The verification belongs to a site the caller's key is not for.
    WrongSite,
    /// Finished, but its result has expired.
    Expired,
    /// Not finished yet.
    NotFinished,
    /// Retrieved as often as allowed.
    LimitReached,
}

/// Why the store could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store holds as many verifications as it may.
    #[error("the store is full")]
    Full,
    /// The id is already taken.
    #[error("the verification id is already in use")]
    Duplicate,
    /// The lease does not hold the claim (it lapsed and another submission claimed it, or the
    /// verification is gone).
    #[error("the claim is not held by this lease")]
    NotClaimant,
    /// A catalog entry is not what the write expected (another write came first).
    #[error("the entry was changed by another write")]
    Conflict,
    /// The backend failed (e.g. a remote store is unreachable).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

/// Verification storage; see the [module documentation](self) for the contract.
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Stores a new pending verification.
    ///
    /// # Errors
    ///
    /// [`StoreError::Duplicate`] when the id exists, [`StoreError::Full`] at capacity.
    async fn insert_pending(
        &self,
        id: Uuid,
        pending: Pending,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Claims a pending, unexpired verification (or one whose previous lease lapsed) under
    /// `lease`. `None` when it does not exist, has expired, is finished, or another lease holds
    /// it.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    async fn claim(
        &self,
        id: Uuid,
        lease: Lease,
        now: OffsetDateTime,
    ) -> Result<Option<Pending>, StoreError>;

    /// Finishes a verification claimed under `lease`.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotClaimant`] when `lease` does not hold the claim.
    async fn finish_claimed(
        &self,
        id: Uuid,
        lease: Lease,
        finished: Finished,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Stores a verification that finished without a challenge (a bypass key).
    ///
    /// # Errors
    ///
    /// [`StoreError::Duplicate`] when the id exists, [`StoreError::Full`] at capacity.
    async fn insert_finished(
        &self,
        id: Uuid,
        finished: Finished,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Returns a claimed verification to pending (its submission was cancelled).
    ///
    /// # Errors
    ///
    /// [`StoreError::NotClaimant`] when `lease` does not hold the claim.
    async fn release(&self, id: Uuid, lease: Lease) -> Result<(), StoreError>;

    /// Forgets a claimed verification (its submission was wrong).
    ///
    /// # Errors
    ///
    /// [`StoreError::NotClaimant`] when `lease` does not hold the claim.
    async fn abandon(&self, id: Uuid, lease: Lease) -> Result<(), StoreError>;

    /// Retrieves a result for a caller whose key is valid for the sites in `authorized`,
    /// counting the retrieval atomically.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    async fn retrieve(
        &self,
        id: Uuid,
        authorized: &[Uuid],
        now: OffsetDateTime,
    ) -> Result<Retrieval, StoreError>;

    /// How many pending and finished verifications are held (including those waiting to be
    /// forgotten; spent ones are not counted). A backend that keeps markers, counters and marks
    /// as entries of the same kind (Redis: keys) may count those too.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    async fn count(&self) -> Result<usize, StoreError>;

    /// Records `at` as `mark`'s time unless a later one is recorded: the latest is kept.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    async fn mark(&self, mark: Mark, at: OffsetDateTime) -> Result<(), StoreError>;

    /// The latest time recorded for `mark`, by any server using this store.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    async fn latest(&self, mark: Mark) -> Result<Option<OffsetDateTime>, StoreError>;

    /// Adds `by` to `counter` in the window of `length` that holds `now` (windows are aligned to
    /// the Unix epoch) and returns the window's new count. Atomic across every server using the
    /// store.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    async fn add(
        &self,
        counter: &str,
        length: Duration,
        by: u64,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError>;

    /// `counter`'s counts in the window before the one that holds `now`, and in that one.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    async fn counts(
        &self,
        counter: &str,
        length: Duration,
        now: OffsetDateTime,
    ) -> Result<Counts, StoreError>;

    /// Writes `value` as the entry `id` of `collection` (see [`catalog`]) if `expect` holds,
    /// and returns its revision.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] when `expect` does not hold, [`StoreError::Full`] for a new
    /// entry of a full collection.
    async fn put_entry(
        &self,
        collection: Collection,
        id: &str,
        value: String,
        expect: Expect,
        expires_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError>;

    /// The live entry `id` of `collection`.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    async fn entry(
        &self,
        collection: Collection,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Entry>, StoreError>;

    /// Every live entry of `collection`, by id.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    async fn entries(
        &self,
        collection: Collection,
        now: OffsetDateTime,
    ) -> Result<Vec<Entry>, StoreError>;

    /// Deletes the entry `id` of `collection` if `expect` holds; whether there was a live one.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] when `expect` does not hold.
    async fn delete_entry(
        &self,
        collection: Collection,
        id: &str,
        expect: Expect,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// The revision of `collection`'s latest write (0 before the first).
    ///
    /// # Errors
    ///
    /// When the backend fails.
    async fn revision(&self, collection: Collection) -> Result<u64, StoreError>;

    /// Appends `entry` (a JSON line) to the audit log; its number.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    async fn append_audit(&self, entry: String) -> Result<u64, StoreError>;

    /// The audit entries numbered after `after`, oldest first, at most `limit` (and at most
    /// [`catalog::AUDIT_PAGE`]).
    ///
    /// # Errors
    ///
    /// When the backend fails.
    async fn audit(&self, after: u64, limit: usize) -> Result<Vec<(u64, String)>, StoreError>;

    /// Adds every addition of `adds` to the series (see [`history`]).
    ///
    /// # Errors
    ///
    /// When the backend fails (part of the batch may have been added).
    async fn add_series(&self, adds: Vec<SeriesAdd>, now: OffsetDateTime)
    -> Result<(), StoreError>;

    /// `site`'s non-zero counts in the buckets of `resolution` starting in `from..to` (Unix
    /// seconds), by bucket then event.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    async fn series(
        &self,
        site: &str,
        resolution: Resolution,
        from: i64,
        to: i64,
        now: OffsetDateTime,
    ) -> Result<Vec<SeriesPoint>, StoreError>;

    /// Appends `entries` to `journal` and keeps it within `bound` (see [`history`]).
    ///
    /// # Errors
    ///
    /// When the backend fails.
    async fn append_journal(
        &self,
        journal: &str,
        entries: Vec<JournalEntry>,
        bound: JournalBound,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// `journal`'s entries with `from <= at < to` (milliseconds), newest first, at most
    /// `limit` (and [`history::JOURNAL_PAGE`]).
    ///
    /// # Errors
    ///
    /// When the backend fails.
    async fn journal(
        &self,
        journal: &str,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<JournalEntry>, StoreError>;

    /// Checks, once before a server starts serving, that the store is safe to serve from (a
    /// Redis must not evict live verifications). Backends with nothing to check accept.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] with the reason the store must not be used.
    async fn prepare(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Whether the store can serve requests now, new verifications included.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when it cannot, [`StoreError::Full`] when it has no room
    /// for another verification.
    async fn ping(&self) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::retain_shrinking;

    /// A pending verification stored by a release that kept no request fingerprint reads with
    /// 0, which the submission does not compare.
    #[test]
    fn a_pending_verification_of_an_earlier_release_reads_without_a_fingerprint() {
        let pending = super::conformance::pending(std::time::Duration::from_secs(60));
        let mut json = serde_json::to_value(&pending).expect("json");
        assert_eq!(json["request"], 1);
        json.as_object_mut().expect("object").remove("request");
        let read: super::Pending = serde_json::from_value(json).expect("read");
        assert_eq!(read.request, 0);
        assert_eq!(super::Pending { request: 1, ..read }, pending);
    }

    #[test]
    fn a_table_emptied_by_forgetting_gives_its_memory_back() {
        let mut map: std::collections::HashMap<u32, u32> = (0..100_000).map(|i| (i, i)).collect();
        let peak = map.capacity();
        assert_eq!(retain_shrinking(&mut map, |key, _| key % 2 == 0), 50_000);
        assert!(map.capacity() > peak / 2, "half full: kept for reuse");
        assert_eq!(
            retain_shrinking(&mut map, |key, _| key % 1_000 == 0),
            49_900
        );
        assert!(map.capacity() < peak / 100, "{} of {peak}", map.capacity());
        assert_eq!(map.len(), 100);
        assert!(
            map.iter()
                .all(|(key, value)| key % 1_000 == 0 && key == value)
        );
    }
}
