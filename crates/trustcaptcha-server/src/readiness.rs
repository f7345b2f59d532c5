//! Whether the store can take work, watched: every [`INTERVAL`] the store is pinged (a write
//! included, see [`crate::store::Store::ping`]), and a change is logged, a warning with the
//! reason when the store stops being ready (a full disk, a SQLite file deleted or replaced, a
//! Redis whose eviction policy changed) and a line when it is ready again. `GET /readyz` answers
//! from the same ping, so a load balancer and the log tell the same story.

use std::time::Duration;

use crate::state::AppState;
use crate::store::StoreError;

/// How often the store's readiness is checked.
pub(crate) const INTERVAL: Duration = Duration::from_secs(10);

/// Checks every [`INTERVAL`] for as long as it runs, logging each change.
pub(crate) async fn watch(state: AppState) {
    let mut interval = tokio::time::interval(INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_ready = true;
    loop {
        interval.tick().await;
        match state.store.ping().await {
            Ok(()) if !was_ready => {
                tracing::warn!("the store is ready again");
                was_ready = true;
            }
            Ok(()) => {}
            Err(StoreError::Full) if was_ready => {
                tracing::warn!("not ready: the store is full");
                was_ready = false;
            }
            Err(error) if was_ready => {
                tracing::error!(%error, "not ready: the store cannot take work");
                was_ready = false;
            }
            Err(_) => {}
        }
    }
}
