//! The outage record behind failover answers.
//!
//! A widget that cannot reach the server makes up a token with `clientFailover: true`; the
//! site's backend then asks with `?clientFailover=true`. Within a grace window after a recorded
//! outage such a claim gets a flagged `FAILOVER` result (stored, so it is retrieved only as often
//! as any result, and only for sites with `failover_answers`); outside it, 412. Nothing else is
//! ever synthesized: an id the store does not know is 404, and a store that cannot answer is 503.
//!
//! Recorded outages, from evidence only: any period in which the store failed (noticed by
//! [`crate::store::Tracked`]); downtime, when a server starts and the store's last heartbeat
//! (servers write one every [`HEARTBEAT_INTERVAL`]) is older than [`DOWNTIME_GAP`]; and, when
//! `outage_before_start` is on, the time before this process started. A memory store keeps no
//! heartbeat across a restart, so only a durable store can show downtime.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};
use time::OffsetDateTime;

use crate::store::Mark;

/// How often a serving server records in the store that it is alive.
pub(crate) const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

/// A gap this long between the store's last heartbeat and a start is downtime on record.
pub(crate) const DOWNTIME_GAP: Duration = Duration::from_secs(30);

/// Once per state, before serving: records downtime the store's heartbeat shows (for every
/// server sharing the store), learns of outages other servers recorded, then writes a heartbeat
/// of its own. Later calls do nothing.
pub(crate) async fn on_start(state: &crate::AppState) {
    state
        .outages
        .started
        .get_or_init(|| async {
            let now = state.clock.now();
            match state.store.latest(Mark::Heartbeat).await {
                Ok(Some(last)) if now - last > DOWNTIME_GAP => {
                    tracing::warn!(
                        since = %last,
                        "no server used this store for a while: downtime is on record"
                    );
                    state.outages.ended_at(now);
                    let _ = state.store.mark(Mark::OutageEnded, now).await;
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "the store's heartbeat cannot be read"),
            }
            beat(state).await;
        })
        .await;
}

/// Beats every [`HEARTBEAT_INTERVAL`], for as long as it runs.
pub(crate) async fn heartbeats(state: crate::AppState) {
    let mut interval = tokio::time::interval(HEARTBEAT_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        beat(&state).await;
    }
}

/// Writes a heartbeat, and takes over the latest outage any server sharing the store recorded.
/// A failure is noticed by the store's tracking; the next beat tries again.
async fn beat(state: &crate::AppState) {
    let _ = state.store.mark(Mark::Heartbeat, state.clock.now()).await;
    if let Ok(Some(ended)) = state.store.latest(Mark::OutageEnded).await {
        state.outages.ended_at(ended);
    }
}

/// The outage record and its grace window.
#[derive(Debug)]
pub(crate) struct Outages {
    grace: Duration,
    /// Set once the start-up evidence has been looked at.
    started: tokio::sync::OnceCell<()>,
    /// Lets the hot path (every successful store call) skip the lock when nothing is ongoing.
    ongoing: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last_ended: Option<OffsetDateTime>,
    ongoing_since: Option<OffsetDateTime>,
}

impl Outages {
    /// No outage on record yet.
    #[must_use]
    pub(crate) fn new(grace: Duration) -> Self {
        Outages {
            grace,
            started: tokio::sync::OnceCell::new(),
            ongoing: AtomicBool::new(false),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Records that an outage ended at `at` (e.g. this process started).
    pub(crate) fn ended_at(&self, at: OffsetDateTime) {
        let mut state = self.state();
        state.last_ended = Some(state.last_ended.map_or(at, |last| last.max(at)));
    }

    /// Records that the store failed at `at`; the outage lasts until [`Outages::store_recovered`].
    pub(crate) fn store_failed(&self, at: OffsetDateTime) {
        self.state().ongoing_since.get_or_insert(at);
        self.ongoing.store(true, Ordering::Release);
    }

    /// Records that the store works again at `at`, ending an ongoing outage.
    /// `at` is asked for only when an outage was ongoing, so that the hot path (every
    /// successful store call) costs one atomic swap.
    /// Returns when the outage ended, if this ended one.
    pub(crate) fn store_recovered(
        &self,
        at: impl FnOnce() -> OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        // Read before writing: every store answer passes here, and a write would move the
        // cache line between cores on each one.
        if !self.ongoing.load(Ordering::Acquire) || !self.ongoing.swap(false, Ordering::AcqRel) {
            return None;
        }
        self.state().ongoing_since.take()?;
        let ended = at();
        self.ended_at(ended);
        Some(ended)
    }

    /// Whether an outage is ongoing or ended within the grace window before `now`.
    #[must_use]
    pub(crate) fn grace_active(&self, now: OffsetDateTime) -> bool {
        let state = self.state();
        state.ongoing_since.is_some()
            || state
                .last_ended
                .is_some_and(|ended| now <= ended + self.grace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_window_follows_recorded_outages() {
        let t0 = time::macros::datetime!(2026-01-01 0:00 UTC);
        let minute = Duration::from_secs(60);
        let outages = Outages::new(5 * minute);
        assert!(!outages.grace_active(t0), "nothing on record");
        outages.ended_at(t0);
        assert!(outages.grace_active(t0 + 5 * minute));
        assert!(!outages.grace_active(t0 + 6 * minute));
        outages.store_failed(t0 + 10 * minute);
        assert!(outages.grace_active(t0 + 60 * minute), "ongoing");
        outages.store_recovered(|| t0 + 61 * minute);
        assert!(outages.grace_active(t0 + 66 * minute));
        assert!(!outages.grace_active(t0 + 67 * minute));
        outages.store_recovered(|| t0 + 90 * minute);
        assert!(!outages.grace_active(t0 + 91 * minute), "no outage to end");
    }
}
