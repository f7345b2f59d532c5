//! The outage record behind failover answers.
//!
//! A widget that cannot reach the server makes up a token with `clientFailover: true`; the
//! site's backend then asks with `?clientFailover=true`. The widget does this only when its
//! request throws (no connection, a CORS failure, a broken body), never on an HTTP error
//! status: while this server answers, even with 503, no widget fails over. So the only evidence
//! that widgets failed is **downtime**: a time in which no server sharing the store answered.
//! Anything else that claims failover is a page that chose not to reach us (a blocked request
//! is the cheapest way to skip a captcha), and gets 412.
//!
//! Downtime is on record when a server starts and the store's last heartbeat (servers write one
//! every [`HEARTBEAT_INTERVAL`], and at once when their store answers again after failing) is
//! older than [`DOWNTIME_GAP`]: shorter gaps are restarts a widget's user would not notice. With
//! `outage_before_start`, the time before this process started counts too. Claims are answered
//! for a margin after the downtime ended, `failover_grace`, which is at most
//! [`MAX_FAILOVER_GRACE`] (a widget's failover token lives that long, so no honest claim comes
//! later). Such a claim gets a flagged `FAILOVER` result once (stored, retrievable one time, and
//! only for sites with `failover_answers`); every other claim is 412. A store that fails opens
//! nothing: the server answered 503 throughout. A memory store keeps no heartbeat across a
//! restart, so only a durable store can show downtime.
//!
//! The server never learns which visitors failed over (the backend's request carries only the
//! made-up id), so a claim within the window is not tied to a network: a backend that must not
//! let an unverified visitor through treats `FAILOVER` results by its own policy
//! (`docs/operators.md`, "Failover").

use std::time::Duration;

use parking_lot::Mutex;
use time::OffsetDateTime;

pub(crate) use crate::config::MAX_FAILOVER_GRACE;

/// How often a serving server records in the store that it is alive.
pub(crate) const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

/// A gap this long between the store's last heartbeat and a start is downtime on record.
pub(crate) const DOWNTIME_GAP: Duration = Duration::from_secs(30);

/// The outage record and its grace window.
#[derive(Debug)]
pub(crate) struct Outages {
    grace: Duration,
    /// Set once the start-up evidence has been looked at (see `tasks::on_start`).
    pub(crate) started: tokio::sync::OnceCell<()>,
    /// When the latest downtime on record ended.
    last_ended: Mutex<Option<OffsetDateTime>>,
}

impl Outages {
    /// No outage on record yet; claims answered for `grace` (at most [`MAX_FAILOVER_GRACE`])
    /// after one.
    #[must_use]
    pub(crate) fn new(grace: Duration) -> Self {
        Outages {
            grace: grace.min(MAX_FAILOVER_GRACE),
            started: tokio::sync::OnceCell::new(),
            last_ended: Mutex::default(),
        }
    }

    /// Records that downtime ended at `at` (e.g. this process started after it).
    pub(crate) fn ended_at(&self, at: OffsetDateTime) {
        let mut last = self.last_ended.lock();
        *last = Some(last.map_or(at, |last| last.max(at)));
    }

    /// Whether `now` is within the grace window after the latest downtime.
    #[must_use]
    pub(crate) fn grace_active(&self, now: OffsetDateTime) -> bool {
        self.last_ended
            .lock()
            .is_some_and(|ended| now <= ended + self.grace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_window_follows_recorded_downtime_and_is_bounded() {
        let t0 = time::macros::datetime!(2026-01-01 0:00 UTC);
        let minute = Duration::from_secs(60);
        let outages = Outages::new(5 * minute);
        assert!(!outages.grace_active(t0), "nothing on record");
        outages.ended_at(t0);
        assert!(outages.grace_active(t0 + 5 * minute));
        assert!(!outages.grace_active(t0 + 6 * minute));
        outages.ended_at(t0 - minute);
        assert!(
            !outages.grace_active(t0 + 6 * minute),
            "an older end moves nothing"
        );

        let long = Outages::new(24 * 60 * minute);
        long.ended_at(t0);
        assert!(long.grace_active(t0 + 15 * minute));
        assert!(
            !long.grace_active(t0 + 16 * minute),
            "no honest claim outlives the widget's token"
        );
    }
}
