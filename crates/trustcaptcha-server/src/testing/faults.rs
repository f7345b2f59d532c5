//! A store with faults a test can switch on, as a [`StoreLayer`] around a memory store: the
//! whole store down (every call answers `Unavailable`, as an unreachable remote store would), or
//! the next `finish_claimed` never returning (to cancel a submission between its claim and its
//! result). It also says when a claim was taken and when one was released.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::clock::Clock;
use crate::store::memory::MemoryStore;
use crate::store::{Call, Layered, Store, StoreError, StoreLayer};

/// A memory store with [`Faults`] around it.
pub type FaultStore = Layered<Faults>;

/// A working memory store of `capacity` verifications, judging expiry by `clock`, with faults
/// to switch on through [`Layered::layer`].
#[must_use]
pub fn fault_store(capacity: usize, clock: Arc<dyn Clock>) -> FaultStore {
    Layered::new(
        Faults::default(),
        Arc::new(MemoryStore::new(capacity, clock)),
    )
}

/// The faults, switched on and off by the test.
#[derive(Debug, Default)]
pub struct Faults {
    down: AtomicBool,
    stall_next_finish: AtomicBool,
    claimed: tokio::sync::Notify,
    released: tokio::sync::Notify,
}

impl Faults {
    /// Takes the store down (`true`) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Makes the next `finish_claimed` wait forever.
    pub fn stall_next_finish(&self) {
        self.stall_next_finish.store(true, Ordering::SeqCst);
    }

    /// Resolves once a claim has been taken (since the last call).
    pub async fn claimed(&self) {
        self.claimed.notified().await;
    }

    /// Resolves once a claim has been released (since the last call).
    pub async fn released(&self) {
        self.released.notified().await;
    }
}

#[async_trait::async_trait]
impl StoreLayer for Faults {
    async fn before(&self, call: Call) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("taken down by the test".into()));
        }
        if call == Call::FinishClaimed && self.stall_next_finish.swap(false, Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    fn after(&self, call: Call, _error: Option<&StoreError>, _inner: &Arc<dyn Store>) {
        match call {
            Call::Claim => self.claimed.notify_one(),
            Call::Release => self.released.notify_one(),
            _ => {}
        }
    }
}
