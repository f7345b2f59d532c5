//! The store conformance suite: the contract of [`Store`](super::Store), as tests every backend
//! runs. A backend's test module calls [`suite!`] with a function that makes an empty store of a
//! given capacity (or a [`Fixture`] holding one, with whatever else it needs to live, such as
//! its own Redis server).

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use time::macros::datetime;
use trustcaptcha::VerificationResult;
use uuid::Uuid;

use super::{
    Collection, Counts, Expect, Finished, Lease, Mark, Pending, Retrieval, Store, StoreError,
    TOMBSTONE,
};
use crate::visitor::Visitor;

pub(crate) const T0: OffsetDateTime = datetime!(2026-01-01 12:00 UTC);
pub(crate) const SITE: Uuid = Uuid::from_u128(1);
const OTHER_SITE: Uuid = Uuid::from_u128(9);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3_600);

pub(crate) fn pending(lifetime: Duration) -> Pending {
    Pending {
        site_key: SITE,
        tasks: crate::pow::Tasks::seeded([7; 16], 2),
        difficulty: 3,
        created_at: T0,
        expires_at: T0 + lifetime,
        visitor: Visitor {
            origin: "https://shop.example".into(),
            ..Visitor::default()
        },
        signals: crate::signals::Signals::default(),
        access_rule: None,
        request: 1,
    }
}

pub(crate) fn finished(id: Uuid, max_retrievals: u32, lifetime: Duration) -> Finished {
    let result: VerificationResult = serde_json::from_value(serde_json::json!({
        "captchaId": Uuid::from_u128(2), "verificationId": id,
        "verificationPassed": true, "score": 0.25,
    }))
    .expect("result");
    Finished {
        result: VerificationResult {
            result_expires_at: Some(T0 + lifetime),
            ..result
        },
        site_key: SITE,
        max_retrievals,
        access_rule: None,
    }
}

/// What a conformance test runs against: a store, and whatever must live as long as it.
pub(crate) trait Fixture: Send + Sync + 'static {
    /// The store under test.
    fn store(&self) -> &dyn Store;

    /// Whether the capacity is a count of verifications (the in-process backends), rather than
    /// memory that the store's server manages (Redis: a spent verification's result is deleted,
    /// but how soon its memory counts as free is the allocator's business).
    fn counts_capacity(&self) -> bool {
        true
    }
}

impl<S: Store> Fixture for S {
    fn store(&self) -> &dyn Store {
        self
    }
}

pub(crate) fn lease() -> Lease {
    Lease::new(T0, MINUTE)
}

/// Runs every conformance test against the store `$make(capacity)` returns.
macro_rules! suite {
    ($make:expr) => {
        mod conformance_suite {
            use super::*;
            use $crate::store::conformance as c;

            #[tokio::test]
            async fn lifecycle() {
                c::lifecycle(&$make(10)).await;
            }
            #[tokio::test]
            async fn expiry_is_judged_by_now() {
                c::expiry_is_judged_by_now(&$make(10)).await;
            }
            #[tokio::test]
            async fn only_the_lease_holder_moves_a_claim() {
                c::only_the_lease_holder_moves_a_claim(&$make(10)).await;
            }
            #[tokio::test]
            async fn marks_keep_the_latest() {
                c::marks_keep_the_latest(&$make(10)).await;
            }
            #[tokio::test]
            async fn counters_count_per_window() {
                c::counters_count_per_window(&$make(10)).await;
            }
            #[tokio::test]
            async fn catalog_writes_are_revisioned_and_expire() {
                c::catalog_writes_are_revisioned_and_expire(&$make(10)).await;
            }
            #[tokio::test]
            async fn catalog_collections_are_bounded_and_audit_is_numbered() {
                c::catalog_collections_are_bounded_and_audit_is_numbered(&$make(10)).await;
            }
            #[tokio::test]
            async fn series_sum_by_bucket_and_are_forgotten() {
                c::series_sum_by_bucket_and_are_forgotten(&$make(10)).await;
            }
            #[tokio::test]
            async fn journals_keep_the_newest_within_their_bound() {
                c::journals_keep_the_newest_within_their_bound(&$make(10)).await;
            }
            #[tokio::test]
            async fn capacity_is_bounded() {
                c::capacity_is_bounded(&$make(2)).await;
            }
            #[tokio::test]
            async fn spent_verifications_leave_their_room() {
                c::spent_verifications_leave_their_room(&$make(2)).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_claims_and_retrievals_count_exactly() {
                c::concurrent_claims_and_retrievals_count_exactly(std::sync::Arc::new($make(10)))
                    .await;
            }
        }
    };
}
pub(crate) use suite;

pub(crate) async fn lifecycle(fixture: &impl Fixture) {
    let store = fixture.store();
    let id = Uuid::new_v4();
    store
        .insert_pending(id, pending(5 * MINUTE), T0)
        .await
        .expect("insert");
    assert_eq!(
        store.insert_pending(id, pending(5 * MINUTE), T0).await,
        Err(StoreError::Duplicate)
    );
    assert_eq!(
        store.retrieve(id, &[SITE], T0).await,
        Ok(Retrieval::NotFinished)
    );
    let lease = lease();
    assert_eq!(
        store.claim(id, lease, T0).await,
        Ok(Some(pending(5 * MINUTE)))
    );
    assert_eq!(
        store.claim(id, Lease::new(T0, MINUTE), T0).await,
        Ok(None),
        "claimed once"
    );
    assert_eq!(
        store.retrieve(id, &[SITE], T0).await,
        Ok(Retrieval::NotFinished)
    );
    // The access rule that decided is kept with the result (the older API's `reason` needs it).
    let decided = Finished {
        access_rule: Some(crate::access::AccessRule::CountryBlocked),
        ..finished(id, 2, 15 * MINUTE)
    };
    store
        .finish_claimed(id, lease, decided, T0)
        .await
        .expect("finish");
    assert_eq!(store.claim(id, lease, T0).await, Ok(None), "finished");
    assert_eq!(store.count().await, Ok(1));
    assert_eq!(
        store.retrieve(id, &[OTHER_SITE], T0).await,
        Ok(Retrieval::WrongSite)
    );

    let Ok(Retrieval::Found(first)) = store.retrieve(id, &[OTHER_SITE, SITE], T0 + MINUTE).await
    else {
        panic!("first retrieval")
    };
    assert_eq!(first.result.verification_id, id);
    assert_eq!(first.result.score, 0.25);
    assert_eq!(first.result.result_first_fetched_at, Some(T0 + MINUTE));
    assert_eq!(first.result.result_last_fetched_at, Some(T0 + MINUTE));
    assert_eq!(
        first.access_rule,
        Some(crate::access::AccessRule::CountryBlocked)
    );
    let Ok(Retrieval::Found(second)) = store.retrieve(id, &[SITE], T0 + 2 * MINUTE).await else {
        panic!("second retrieval")
    };
    assert_eq!(second.result.result_first_fetched_at, Some(T0 + MINUTE));
    assert_eq!(second.result.result_last_fetched_at, Some(T0 + 2 * MINUTE));
    assert_eq!(
        store.retrieve(id, &[SITE], T0 + 3 * MINUTE).await,
        Ok(Retrieval::LimitReached)
    );
    assert_eq!(
        store
            .retrieve(id, &[SITE], T0 + 15 * MINUTE - Duration::from_millis(1))
            .await,
        Ok(Retrieval::LimitReached),
        "spent until its result's expiry"
    );
    assert_eq!(
        store.retrieve(id, &[SITE], T0 + 15 * MINUTE).await,
        Ok(Retrieval::NotFound),
        "a spent verification is forgotten when its result expires"
    );
    assert_eq!(
        store.retrieve(Uuid::new_v4(), &[SITE], T0).await,
        Ok(Retrieval::NotFound)
    );
}

pub(crate) async fn expiry_is_judged_by_now(fixture: &impl Fixture) {
    let store = fixture.store();
    // An unfinished verification reads "not found" once expired, claimed or not.
    let open = Uuid::new_v4();
    let claimed = Uuid::new_v4();
    for id in [open, claimed] {
        store
            .insert_pending(id, pending(MINUTE), T0)
            .await
            .expect("insert");
    }
    store
        .claim(claimed, Lease::new(T0, 2 * MINUTE), T0)
        .await
        .expect("ok")
        .expect("claimed");
    for id in [open, claimed] {
        assert_eq!(
            store.retrieve(id, &[SITE], T0 + MINUTE).await,
            Ok(Retrieval::NotFound)
        );
    }
    assert_eq!(store.claim(open, lease(), T0 + MINUTE).await, Ok(None));

    // A finished one that was never spent reads "expired" from its expiry until the tombstone
    // time has passed, then "not found"; a spent one reads "not found" from its expiry.
    let done = Uuid::new_v4();
    store
        .insert_finished(done, finished(done, 1, MINUTE), T0)
        .await
        .expect("insert");
    assert_eq!(
        store
            .retrieve(done, &[SITE], T0 + MINUTE - Duration::from_millis(1))
            .await
            .map(|r| matches!(r, Retrieval::Found(_))),
        Ok(true)
    );
    let never = Uuid::new_v4();
    store
        .insert_finished(never, finished(never, 1, MINUTE), T0)
        .await
        .expect("insert");
    for at in [
        T0 + MINUTE,
        T0 + MINUTE + TOMBSTONE - Duration::from_millis(1),
    ] {
        assert_eq!(
            store.retrieve(never, &[SITE], at).await,
            Ok(Retrieval::Expired)
        );
        assert_eq!(
            store.retrieve(done, &[SITE], at).await,
            Ok(Retrieval::NotFound),
            "spent"
        );
    }
    assert_eq!(
        store
            .retrieve(never, &[SITE], T0 + MINUTE + TOMBSTONE)
            .await,
        Ok(Retrieval::NotFound)
    );
}

pub(crate) async fn only_the_lease_holder_moves_a_claim(fixture: &impl Fixture) {
    let store = fixture.store();
    let id = Uuid::new_v4();
    store
        .insert_pending(id, pending(10 * MINUTE), T0)
        .await
        .expect("insert");
    let first = Lease::new(T0, MINUTE);
    let stranger = Lease::new(T0, MINUTE);
    store
        .claim(id, first, T0)
        .await
        .expect("ok")
        .expect("claim");
    assert_eq!(
        store
            .finish_claimed(id, stranger, finished(id, 1, MINUTE), T0)
            .await,
        Err(StoreError::NotClaimant)
    );
    assert_eq!(
        store.release(id, stranger).await,
        Err(StoreError::NotClaimant)
    );
    assert_eq!(
        store.abandon(id, stranger).await,
        Err(StoreError::NotClaimant)
    );

    // Released: claimable again.
    store.release(id, first).await.expect("release");
    assert_eq!(
        store
            .finish_claimed(id, first, finished(id, 1, MINUTE), T0)
            .await,
        Err(StoreError::NotClaimant),
        "a released lease holds nothing"
    );
    let second = Lease::new(T0, MINUTE);
    store
        .claim(id, second, T0)
        .await
        .expect("ok")
        .expect("claim again");

    // A lapsed lease lets the next submission claim it; the old claimant can then do nothing.
    assert_eq!(
        store.claim(id, lease(), T0 + MINUTE / 2).await,
        Ok(None),
        "lease still holds"
    );
    let third = Lease::new(T0 + MINUTE, MINUTE);
    store
        .claim(id, third, T0 + MINUTE)
        .await
        .expect("ok")
        .expect("claim after the lease lapsed");
    assert_eq!(
        store
            .finish_claimed(id, second, finished(id, 1, MINUTE), T0)
            .await,
        Err(StoreError::NotClaimant)
    );

    // Abandoned: gone.
    store.abandon(id, third).await.expect("abandon");
    assert_eq!(store.abandon(id, third).await, Err(StoreError::NotClaimant));
    assert_eq!(
        store.retrieve(id, &[SITE], T0 + MINUTE).await,
        Ok(Retrieval::NotFound)
    );
    assert_eq!(store.claim(id, lease(), T0 + MINUTE).await, Ok(None));
    assert_eq!(store.count().await, Ok(0));
}

/// Fills the store until it refuses (a backend bounded by a count, given a capacity of two, or
/// one bounded by memory): then both kinds of insert are refused and it is not ready, while what
/// it holds can still be claimed, finished and retrieved. A sharded backend fills shard by
/// shard, so filling goes on until many inserts in a row were refused.
pub(crate) async fn capacity_is_bounded(fixture: &impl Fixture) {
    let store = fixture.store();
    assert_eq!(store.ping().await, Ok(()));
    let (mut open, mut done) = (Vec::new(), Vec::new());
    let mut refused_in_a_row = 0;
    // A cluster is full when every node is: refusals in a row are counted until that is sure.
    while refused_in_a_row < 200 {
        assert!(open.len() + done.len() < 100_000, "the store never fills");
        let id = Uuid::new_v4();
        let inserted = if open.len() <= done.len() {
            store.insert_pending(id, pending(MINUTE), T0).await
        } else {
            store.insert_finished(id, finished(id, 1, MINUTE), T0).await
        };
        refused_in_a_row += 1;
        match inserted {
            Ok(()) if open.len() <= done.len() => open.push(id),
            Ok(()) => done.push(id),
            Err(StoreError::Full) => continue,
            Err(other) => panic!("{other}"),
        }
        refused_in_a_row = 0;
    }
    assert!(!done.is_empty(), "room for at least one of each kind");
    assert_eq!(
        store
            .insert_pending(Uuid::new_v4(), pending(MINUTE), T0)
            .await,
        Err(StoreError::Full)
    );
    let id = Uuid::new_v4();
    assert_eq!(
        store.insert_finished(id, finished(id, 1, MINUTE), T0).await,
        Err(StoreError::Full)
    );
    assert_eq!(store.count().await, Ok(open.len() + done.len()));
    assert_eq!(
        store.ping().await,
        Err(StoreError::Full),
        "full is not ready"
    );

    let lease = lease();
    assert!(matches!(store.claim(open[0], lease, T0).await, Ok(Some(_))));
    assert_eq!(
        store
            .finish_claimed(open[0], lease, finished(open[0], 1, MINUTE), T0)
            .await,
        Ok(())
    );
    for id in [open[0], done[0]] {
        assert!(matches!(
            store.retrieve(id, &[SITE], T0).await,
            Ok(Retrieval::Found(_))
        ));
    }
}

/// A full store whose results were all retrieved as often as allowed takes new verifications
/// again, and still answers the spent ones in the contract's order.
pub(crate) async fn spent_verifications_leave_their_room(fixture: &impl Fixture) {
    let store = fixture.store();
    let mut done = Vec::new();
    loop {
        assert!(done.len() < 100_000, "the store never fills");
        let id = Uuid::new_v4();
        match store.insert_finished(id, finished(id, 1, MINUTE), T0).await {
            Ok(()) => done.push(id),
            Err(StoreError::Full) => break,
            Err(other) => panic!("{other}"),
        }
    }
    assert!(!done.is_empty());
    for id in &done {
        assert!(matches!(
            store.retrieve(*id, &[SITE], T0).await,
            Ok(Retrieval::Found(_))
        ));
    }
    if fixture.counts_capacity() {
        assert_eq!(store.count().await, Ok(0), "spent ones are not counted");
        for _ in 0..done.len().min(2) {
            let id = Uuid::new_v4();
            assert_eq!(
                store.insert_pending(id, pending(MINUTE), T0).await,
                Ok(()),
                "a spent verification's room is free again"
            );
        }
    }
    let spent = done[0];
    assert_eq!(
        store.retrieve(spent, &[OTHER_SITE], T0).await,
        Ok(Retrieval::WrongSite)
    );
    assert_eq!(
        store.retrieve(spent, &[SITE], T0 + MINUTE / 2).await,
        Ok(Retrieval::LimitReached)
    );
    assert_eq!(
        store.retrieve(spent, &[SITE], T0 + MINUTE).await,
        Ok(Retrieval::NotFound)
    );
}

pub(crate) async fn concurrent_claims_and_retrievals_count_exactly(fixture: Arc<impl Fixture>) {
    let store = fixture.store();
    let id = Uuid::new_v4();
    store
        .insert_pending(id, pending(MINUTE), T0)
        .await
        .expect("insert");
    let claims = (0..32).map(|_| {
        let fixture = Arc::clone(&fixture);
        tokio::spawn(async move { fixture.store().claim(id, lease(), T0).await })
    });
    let mut won = Vec::new();
    for claim in claims {
        if let Some(pending) = claim.await.expect("task").expect("ok") {
            won.push(pending);
        }
    }
    assert_eq!(won.len(), 1, "exactly one claim wins");

    let id = Uuid::new_v4();
    store
        .insert_finished(id, finished(id, 3, MINUTE), T0)
        .await
        .expect("insert");
    let retrievals = (0..64).map(|_| {
        let fixture = Arc::clone(&fixture);
        tokio::spawn(async move { fixture.store().retrieve(id, &[SITE], T0).await })
    });
    let mut found = 0;
    for retrieval in retrievals {
        match retrieval.await.expect("task").expect("ok") {
            Retrieval::Found(_) => found += 1,
            Retrieval::LimitReached => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(found, 3, "exactly max_retrievals are served");

    let additions: Vec<_> = (0..32)
        .map(|_| {
            let fixture = Arc::clone(&fixture);
            tokio::spawn(async move { fixture.store().add("c", MINUTE, 1, T0).await })
        })
        .collect();
    for addition in additions {
        addition.await.expect("task").expect("add");
    }
    assert_eq!(
        store
            .counts("c", MINUTE, T0)
            .await
            .map(|counts| counts.current),
        Ok(32),
        "every addition is counted"
    );
}

pub(crate) async fn marks_keep_the_latest(fixture: &impl Fixture) {
    let store = fixture.store();
    assert_eq!(store.latest(Mark::Heartbeat).await, Ok(None));
    store
        .mark(Mark::Heartbeat, T0 + MINUTE)
        .await
        .expect("beat");
    store
        .mark(Mark::Heartbeat, T0)
        .await
        .expect("an older beat");
    assert_eq!(store.latest(Mark::Heartbeat).await, Ok(Some(T0 + MINUTE)));
    assert_eq!(
        store.latest(Mark::OutageEnded).await,
        Ok(None),
        "marks are apart"
    );
    store.mark(Mark::OutageEnded, T0).await.expect("mark");
    assert_eq!(store.latest(Mark::OutageEnded).await, Ok(Some(T0)));
}

pub(crate) async fn counters_count_per_window(fixture: &impl Fixture) {
    let store = fixture.store();
    let hour = Duration::from_secs(3600);
    // T0 is on the hour: windows of an hour start there.
    let counts = |previous, current| Counts { previous, current };
    assert_eq!(store.counts("a", hour, T0).await, Ok(counts(0, 0)));
    assert_eq!(store.add("a", hour, 1, T0).await, Ok(1));
    assert_eq!(store.add("a", hour, 2, T0 + 59 * MINUTE).await, Ok(3));
    assert_eq!(
        store.add("b", hour, 5, T0).await,
        Ok(5),
        "counters are apart"
    );
    assert_eq!(store.counts("a", hour, T0).await, Ok(counts(0, 3)));
    assert_eq!(store.counts("a", hour, T0 + hour).await, Ok(counts(3, 0)));
    assert_eq!(store.add("a", hour, 1, T0 + hour).await, Ok(1));
    assert_eq!(
        store.counts("a", hour, T0 + hour + MINUTE).await,
        Ok(counts(3, 1))
    );
    assert_eq!(
        store.counts("a", hour, T0 + 3 * hour).await,
        Ok(counts(0, 0)),
        "two windows on, nothing is left"
    );
}

pub(crate) async fn catalog_writes_are_revisioned_and_expire(fixture: &impl Fixture) {
    let store = fixture.store();
    let sites = Collection::Sites;
    assert_eq!(store.revision(sites).await, Ok(0));
    let first = store
        .put_entry(sites, "a", "{\"v\":1}".into(), Expect::Absent, None, T0)
        .await
        .expect("put");
    assert_eq!(store.revision(sites).await, Ok(first));
    assert_eq!(
        store
            .put_entry(sites, "a", "{}".into(), Expect::Absent, None, T0)
            .await,
        Err(StoreError::Conflict),
        "an entry that exists is not made twice"
    );
    assert_eq!(
        store
            .put_entry(
                sites,
                "a",
                "{}".into(),
                Expect::Revision(first + 7),
                None,
                T0
            )
            .await,
        Err(StoreError::Conflict),
        "a write that expects another revision loses nothing"
    );
    let second = store
        .put_entry(
            sites,
            "a",
            "{\"v\":2}".into(),
            Expect::Revision(first),
            None,
            T0,
        )
        .await
        .expect("update");
    assert!(second > first);
    let entry = store
        .entry(sites, "a", T0)
        .await
        .expect("read")
        .expect("there");
    assert_eq!(
        (entry.revision, entry.value.as_str()),
        (second, "{\"v\":2}")
    );
    // A value with the separator the Redis backend packs with reads back whole.
    store
        .put_entry(
            sites,
            "b:c",
            "{\"x\":\"1:2:3\"}".into(),
            Expect::Anything,
            None,
            T0,
        )
        .await
        .expect("put");
    let ids: Vec<String> = store
        .entries(sites, T0)
        .await
        .expect("list")
        .into_iter()
        .map(|entry| format!("{}={}", entry.id, entry.value))
        .collect();
    assert_eq!(ids, ["a={\"v\":2}", "b:c={\"x\":\"1:2:3\"}"]);
    // Collections are apart.
    assert_eq!(store.entry(Collection::Users, "a", T0).await, Ok(None));
    assert_eq!(store.revision(Collection::Users).await, Ok(0));

    // An entry with an expiry is gone when `now` passes it.
    let sessions = Collection::Sessions;
    store
        .put_entry(
            sessions,
            "s",
            "{}".into(),
            Expect::Absent,
            Some(T0 + MINUTE),
            T0,
        )
        .await
        .expect("session");
    assert!(
        store
            .entry(sessions, "s", T0 + MINUTE / 2)
            .await
            .expect("read")
            .is_some()
    );
    let later = T0 + MINUTE;
    assert_eq!(store.entry(sessions, "s", later).await, Ok(None));
    assert_eq!(store.entries(sessions, later).await, Ok(vec![]));
    assert!(
        store
            .put_entry(sessions, "s", "{}".into(), Expect::Absent, None, later)
            .await
            .is_ok(),
        "an expired entry counts as absent"
    );

    // Deletes expect too, and count as writes.
    let before = store.revision(sites).await.expect("revision");
    assert_eq!(
        store
            .delete_entry(sites, "a", Expect::Revision(first), T0)
            .await,
        Err(StoreError::Conflict)
    );
    assert_eq!(
        store
            .delete_entry(sites, "a", Expect::Revision(second), T0)
            .await,
        Ok(true)
    );
    assert!(store.revision(sites).await.expect("revision") > before);
    assert_eq!(store.entry(sites, "a", T0).await, Ok(None));
    assert_eq!(
        store.delete_entry(sites, "a", Expect::Anything, T0).await,
        Ok(false)
    );
}

pub(crate) async fn catalog_collections_are_bounded_and_audit_is_numbered(fixture: &impl Fixture) {
    let store = fixture.store();
    let users = Collection::Users;
    for i in 0..users.limit() {
        store
            .put_entry(
                users,
                &format!("user{i}"),
                "{}".into(),
                Expect::Absent,
                None,
                T0,
            )
            .await
            .expect("room");
    }
    assert_eq!(
        store
            .put_entry(users, "one-too-many", "{}".into(), Expect::Absent, None, T0)
            .await,
        Err(StoreError::Full)
    );
    // A full collection still takes changes to what it holds, and room freed by a delete.
    assert!(
        store
            .put_entry(
                users,
                "user0",
                "{\"changed\":1}".into(),
                Expect::Anything,
                None,
                T0
            )
            .await
            .is_ok()
    );
    assert_eq!(
        store
            .delete_entry(users, "user1", Expect::Anything, T0)
            .await,
        Ok(true)
    );
    assert!(
        store
            .put_entry(users, "one-too-many", "{}".into(), Expect::Absent, None, T0)
            .await
            .is_ok()
    );

    assert_eq!(store.audit(0, 10).await, Ok(vec![]));
    for line in ["{\"n\":1}", "{\"n\":2}", "{\"n\":2}"] {
        store.append_audit(line.into()).await.expect("append");
    }
    let all = store.audit(0, 10).await.expect("read");
    assert_eq!(
        all,
        vec![
            (1, "{\"n\":1}".to_owned()),
            (2, "{\"n\":2}".to_owned()),
            (3, "{\"n\":2}".to_owned())
        ]
    );
    assert_eq!(
        store.audit(1, 1).await,
        Ok(vec![(2, "{\"n\":2}".to_owned())])
    );
    assert_eq!(store.audit(3, 10).await, Ok(vec![]));
}

pub(crate) async fn series_sum_by_bucket_and_are_forgotten(fixture: &impl Fixture) {
    use super::{Resolution, SeriesAdd, SeriesPoint};
    let store = fixture.store();
    let hour = Resolution::Hour.bucket(T0);
    let add = |site: &str, resolution: Resolution, bucket: i64, event: &str, by: u64| SeriesAdd {
        site: site.to_owned(),
        resolution,
        bucket,
        event: event.to_owned(),
        by,
        forget_at: T0 + 2 * HOUR,
    };
    let point = |bucket: i64, event: &str, count: u64| SeriesPoint {
        bucket,
        event: event.to_owned(),
        count,
    };
    store
        .add_series(
            vec![
                add("shop", Resolution::Hour, hour, "created", 2),
                add("shop", Resolution::Hour, hour, "signal:automation", 1),
                add("shop", Resolution::Hour, hour + 3_600, "created", 1),
                add(
                    "shop",
                    Resolution::Day,
                    Resolution::Day.bucket(T0),
                    "created",
                    3,
                ),
                add("blog", Resolution::Hour, hour, "created", 7),
            ],
            T0,
        )
        .await
        .expect("add");
    // Another server adds to the same bucket: the counts sum.
    store
        .add_series(vec![add("shop", Resolution::Hour, hour, "created", 5)], T0)
        .await
        .expect("add again");
    assert_eq!(
        store
            .series("shop", Resolution::Hour, hour, hour + 2 * 3_600, T0)
            .await,
        Ok(vec![
            point(hour, "created", 7),
            point(hour, "signal:automation", 1),
            point(hour + 3_600, "created", 1),
        ])
    );
    assert_eq!(
        store
            .series("shop", Resolution::Hour, hour + 1, hour + 3_600, T0)
            .await,
        Ok(vec![]),
        "a bucket is in a range by its start"
    );
    assert_eq!(
        store
            .series("shop", Resolution::Day, hour - 86_400, hour + 86_400, T0)
            .await,
        Ok(vec![point(Resolution::Day.bucket(T0), "created", 3)])
    );
    assert_eq!(
        store
            .series("blog", Resolution::Hour, hour, hour + 1, T0)
            .await,
        Ok(vec![point(hour, "created", 7)])
    );
    assert_eq!(
        store
            .series(
                "shop",
                Resolution::Hour,
                hour,
                hour + 2 * 3_600,
                T0 + 2 * HOUR
            )
            .await
            .map(|points| points.is_empty()),
        Ok(true),
        "forgotten after forget_at"
    );
}

pub(crate) async fn journals_keep_the_newest_within_their_bound(fixture: &impl Fixture) {
    use super::{JournalBound, JournalEntry};
    let store = fixture.store();
    let at = super::millis(T0);
    let entry = |offset: i64, id: &str| JournalEntry {
        at: at + offset,
        id: id.to_owned(),
        value: format!("{{\"id\":\"{id}\",\"text\":\"a\\nb\"}}"),
    };
    let bound = JournalBound {
        entries: 3,
        age: HOUR,
    };
    store
        .append_journal(
            "events:shop",
            vec![entry(0, "a"), entry(1, "b"), entry(1, "c")],
            bound,
            T0,
        )
        .await
        .expect("append");
    store
        .append_journal("events:blog", vec![entry(0, "x")], bound, T0)
        .await
        .expect("append");
    let ids = |entries: Vec<JournalEntry>| -> Vec<String> {
        entries.into_iter().map(|entry| entry.id).collect()
    };
    let read = store
        .journal("events:shop", at, at + 10, 10)
        .await
        .expect("read");
    assert_eq!(read[0], entry(1, "c"), "whole entries, newline and all");
    assert_eq!(ids(read), ["c", "b", "a"], "newest first, ties by id");
    assert_eq!(
        store
            .journal("events:shop", at + 1, at + 2, 1)
            .await
            .map(ids),
        Ok(vec!["c".to_owned()]),
        "from inclusive, to exclusive, limited"
    );
    // Beyond the count, the oldest go.
    store
        .append_journal("events:shop", vec![entry(2, "d")], bound, T0)
        .await
        .expect("append");
    assert_eq!(
        store.journal("events:shop", 0, i64::MAX, 10).await.map(ids),
        Ok(vec!["d".to_owned(), "c".to_owned(), "b".to_owned()])
    );
    // Beyond the age, too.
    store
        .append_journal(
            "events:shop",
            vec![JournalEntry {
                at: at + 90 * 60_000,
                ..entry(0, "e")
            }],
            bound,
            T0 + 90 * MINUTE,
        )
        .await
        .expect("append");
    assert_eq!(
        store.journal("events:shop", 0, i64::MAX, 10).await.map(ids),
        Ok(vec!["e".to_owned()])
    );
    assert_eq!(
        store.journal("events:blog", 0, i64::MAX, 10).await.map(ids),
        Ok(vec!["x".to_owned()]),
        "journals are apart"
    );
    assert_eq!(
        store.journal("events:none", 0, i64::MAX, 10).await,
        Ok(vec![])
    );
}
