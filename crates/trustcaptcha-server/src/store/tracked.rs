//! [`TrackedStore`]: the store as the server uses it. Every call goes through it, and every answer
//! tells whether the store works: a failure is logged, and the first success after failures
//! writes a heartbeat at once. While the store failed no server could write its heartbeat,
//! although every server kept answering (with 503); the fresh heartbeat keeps a server that
//! starts next from reading that gap as downtime (see [`crate::failover`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::layer::{Call, Layered, StoreLayer};
use super::{Mark, Store, StoreError};
use crate::clock::Clock;

/// A [`Store`] whose failures are logged and whose recoveries write a heartbeat: the store as
/// the server uses it. Cheap to clone.
pub type TrackedStore = Layered<Health>;

/// `inner` tracked, with recoveries timed by `clock`.
#[must_use]
pub(crate) fn tracked(inner: Arc<dyn Store>, clock: Arc<dyn Clock>) -> TrackedStore {
    let health = Health {
        failing: AtomicBool::default(),
        clock,
    };
    Layered::new(health, inner)
}

/// The layer of [`TrackedStore`]: whether the store's latest answer was a failure.
pub struct Health {
    /// Read before written, since every store answer passes here and a write would move the
    /// cache line between cores on each one.
    failing: AtomicBool,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("failing", &self.failing)
            .finish_non_exhaustive()
    }
}

impl Health {
    /// Whether the store's latest answer was a failure.
    pub(crate) fn failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }
}

#[async_trait::async_trait]
impl StoreLayer for Health {
    fn after(&self, _call: Call, error: Option<&StoreError>, inner: &Arc<dyn Store>) {
        match error {
            Some(StoreError::Unavailable(reason)) => {
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
                    let (store, now) = (Arc::clone(inner), self.clock.now());
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
    }
}
