//! Failover after the server's own store fails: a store that can be switched off stands in
//! for a remote store (e.g. Redis) becoming unreachable.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::fixtures::*;
use time::OffsetDateTime;
use trustcaptcha::{DecisionType, ErrorKind};
use trustcaptcha_server::clock::ManualClock;
use trustcaptcha_server::store::memory::MemoryStore;
use trustcaptcha_server::store::{Finished, Lease, Pending, Retrieval, Store, StoreError};
use trustcaptcha_server::testing::*;
use uuid::Uuid;

/// A memory store that answers `Unavailable` while switched off.
#[derive(Debug)]
struct SwitchableStore {
    inner: MemoryStore,
    down: AtomicBool,
}

impl SwitchableStore {
    fn up(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("switched off by the test".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl Store for SwitchableStore {
    async fn insert_pending(
        &self,
        id: Uuid,
        pending: Pending,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.up()?;
        self.inner.insert_pending(id, pending, now).await
    }
    async fn claim(
        &self,
        id: Uuid,
        lease: Lease,
        now: OffsetDateTime,
    ) -> Result<Option<Pending>, StoreError> {
        self.up()?;
        self.inner.claim(id, lease, now).await
    }
    async fn finish_claimed(
        &self,
        id: Uuid,
        lease: Lease,
        finished: Finished,
    ) -> Result<(), StoreError> {
        self.up()?;
        self.inner.finish_claimed(id, lease, finished).await
    }
    async fn insert_finished(
        &self,
        id: Uuid,
        finished: Finished,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.up()?;
        self.inner.insert_finished(id, finished, now).await
    }
    async fn release(&self, id: Uuid, lease: Lease) -> Result<(), StoreError> {
        self.up()?;
        self.inner.release(id, lease).await
    }
    async fn abandon(&self, id: Uuid, lease: Lease) -> Result<(), StoreError> {
        self.up()?;
        self.inner.abandon(id, lease).await
    }
    async fn retrieve(
        &self,
        id: Uuid,
        authorized: &[Uuid],
        now: OffsetDateTime,
    ) -> Result<Retrieval, StoreError> {
        self.up()?;
        self.inner.retrieve(id, authorized, now).await
    }
    async fn count(&self) -> Result<usize, StoreError> {
        self.up()?;
        self.inner.count().await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.up()
    }
}

#[tokio::test]
async fn a_store_outage_is_recorded_and_answered_with_failover_results() {
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let store = Arc::new(SwitchableStore {
        inner: MemoryStore::new(100, clock.clone()),
        down: AtomicBool::new(false),
    });
    let state = trustcaptcha_server::AppState::builder(config(""))
        .clock(clock.clone())
        .store(store.clone())
        .build()
        .expect("state");
    let server = trustcaptcha_server::spawn(state, ([127, 0, 0, 1], 0).into())
        .await
        .expect("spawn");
    let http = reqwest::Client::new();
    let client = trustcaptcha::TrustCaptcha::builder(KEY_A)
        .api_host(&server.url)
        .build()
        .expect("client");
    let claimed = token_for(
        "6f1c2d3e-4b5a-4c6d-8e7f-0123456789ab",
        r#","clientFailover":true"#,
    );
    let lost = token_for("00000000-0000-4000-8000-000000000456", "");

    assert_eq!(
        client
            .get_verification_result(&claimed)
            .await
            .expect_err("no outage yet")
            .kind(),
        ErrorKind::ClientReportedServerUnreachable
    );

    store.down.store(true, Ordering::SeqCst);
    let ready = http
        .get(format!("{}/readyz", server.url))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 503);
    let create = http
        .post(format!("{}/v2/verifications", server.url))
        .header("origin", ORIGIN)
        .json(&create_body(SITE_A, false))
        .send()
        .await
        .expect("create");
    assert_eq!(
        create.status(),
        503,
        "the widget sees an error status, never a fake success"
    );
    let during = client
        .get_verification_result(&lost)
        .await
        .expect("synthesized during the outage");
    assert_eq!(during.decision_type, DecisionType::Failover);
    assert!(during.gateway_failover_active);

    clock.advance(Duration::from_secs(60));
    store.down.store(false, Ordering::SeqCst);
    assert_eq!(
        client
            .get_verification_result(&lost)
            .await
            .expect("grace window")
            .decision_type,
        DecisionType::FailoverTolerance,
        "the first normal call after recovery ends the outage; the grace window starts"
    );
    assert_eq!(
        client
            .get_verification_result(&claimed)
            .await
            .expect("grace window")
            .decision_type,
        DecisionType::Failover
    );

    clock.advance(Duration::from_secs(301));
    assert_eq!(
        client
            .get_verification_result(&claimed)
            .await
            .expect_err("grace over")
            .kind(),
        ErrorKind::ClientReportedServerUnreachable
    );
    assert_eq!(
        client
            .get_verification_result(&lost)
            .await
            .expect_err("grace over")
            .kind(),
        ErrorKind::VerificationNotFound
    );
}
