//! Alerts: what an operator should hear of without watching a dashboard. Where something
//! happens, the server raises an [`Alert`] of a [`Kind`] on [`Alerts`] (a bounded queue, never
//! waited on: a full queue drops the alert and logs it); `webhooks` delivers each to the
//! webhooks that want it.
//!
//! Where each kind is raised:
//!
//! | kind | raised by |
//! |---|---|
//! | `refusals.spike` | `tasks`, every minute, for sites with refusals: the last hour's refusals (refused requests and blocked verifications) at least `refusal_spike_factor` times the site's hourly average over the week before, and at least `refusal_spike_minimum`; once per site and hour across servers |
//! | `quota.warning`, `quota.exhausted` | the finished verification that reaches 80 % and 100 % of a site's hourly quota (the store's count is atomic, so exactly one server sees it) |
//! | `store.outage_started`, `store.outage_ended` | `tasks`, when this server's store calls start or stop failing (each server tells of its own view) |
//! | `failover.window_opened` | `tasks`, when a starting server finds downtime on record |
//! | `network.locked_out` | the failed key guess that locks a client network out of the results API; once per network and hour across servers |
//! | `configuration.changed` | every change the audit log records, and every reload of the configuration file |
//! | `webhook.test` | the console's test button |

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Alerts waiting for delivery at most.
const QUEUE: usize = 1_024;

/// What an alert tells of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// A site's refusals rose far above its own baseline.
    RefusalSpike,
    /// A site used 80 % of its hourly quota.
    QuotaWarning,
    /// A site used all of its hourly quota.
    QuotaExhausted,
    /// This server's store stopped answering.
    StoreOutageStarted,
    /// This server's store answers again.
    StoreOutageEnded,
    /// Downtime is on record: failover claims are answered for a while.
    FailoverWindowOpened,
    /// A client network was locked out for guessing API keys.
    NetworkLockedOut,
    /// The configuration changed (the console, its API, or a reload).
    ConfigurationChanged,
    /// A test from the console.
    WebhookTest,
}

impl Kind {
    /// Every kind a webhook may ask for.
    pub(crate) const ALL: [Kind; 9] = [
        Kind::RefusalSpike,
        Kind::QuotaWarning,
        Kind::QuotaExhausted,
        Kind::StoreOutageStarted,
        Kind::StoreOutageEnded,
        Kind::FailoverWindowOpened,
        Kind::NetworkLockedOut,
        Kind::ConfigurationChanged,
        Kind::WebhookTest,
    ];

    /// The kind's name in a webhook's body and its `events` list.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::RefusalSpike => "refusals.spike",
            Kind::QuotaWarning => "quota.warning",
            Kind::QuotaExhausted => "quota.exhausted",
            Kind::StoreOutageStarted => "store.outage_started",
            Kind::StoreOutageEnded => "store.outage_ended",
            Kind::FailoverWindowOpened => "failover.window_opened",
            Kind::NetworkLockedOut => "network.locked_out",
            Kind::ConfigurationChanged => "configuration.changed",
            Kind::WebhookTest => "webhook.test",
        }
    }

    /// The kind `name` names.
    pub(crate) fn named(name: &str) -> Option<Self> {
        Kind::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// One alert.
#[derive(Debug, Clone)]
pub(crate) struct Alert {
    /// Unique: a receiver that sees it twice (a retry) can tell.
    pub(crate) id: Uuid,
    pub(crate) kind: Kind,
    pub(crate) at: OffsetDateTime,
    /// The site it is about (its name), if it is about one.
    pub(crate) site: Option<String>,
    /// What a receiver needs to know, by kind.
    pub(crate) data: Value,
    /// Only for this webhook (a test).
    pub(crate) only: Option<String>,
}

/// The queue alerts are raised on, and the sites with refusals since the last spike check.
#[derive(Debug)]
pub(crate) struct Alerts {
    sender: mpsc::Sender<Alert>,
    receiver: Mutex<Option<mpsc::Receiver<Alert>>>,
    refused: Mutex<HashSet<Arc<str>>>,
}

impl Default for Alerts {
    fn default() -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        Alerts {
            sender,
            receiver: Mutex::new(Some(receiver)),
            refused: Mutex::default(),
        }
    }
}

impl Alerts {
    /// Raises an alert of `kind` (about `site`, if any) with `data`.
    pub(crate) fn raise(&self, kind: Kind, site: Option<&str>, data: Value, now: OffsetDateTime) {
        self.send(Alert {
            id: Uuid::new_v4(),
            kind,
            at: now,
            site: site.map(str::to_owned),
            data,
            only: None,
        });
    }

    /// Queues `alert`; a full queue drops it (and says so in the log).
    pub(crate) fn send(&self, alert: Alert) {
        if let Err(error) = self.sender.try_send(alert) {
            tracing::warn!(%error, "an alert was dropped: the webhook queue is full");
        }
    }

    /// The queue's receiving end, for the one task that delivers (`None` once taken).
    pub(crate) fn take_receiver(&self) -> Option<mpsc::Receiver<Alert>> {
        self.receiver.lock().take()
    }

    /// Notes that `site` refused something (looked at by the next spike check).
    pub(crate) fn note_refusal(&self, site: &Arc<str>) {
        let mut refused = self.refused.lock();
        if !refused.contains(site) {
            refused.insert(Arc::clone(site));
        }
    }

    /// The sites that refused something since the last call.
    pub(crate) fn take_refusing_sites(&self) -> Vec<Arc<str>> {
        self.refused.lock().drain().collect()
    }
}

/// A spike in `refusals` (a site's refusals per hour, oldest first, the current hour last,
/// `into` seconds into it): the last hour's refusals (the current hour's, and the previous
/// one's share that the last hour covers) when they are at least `minimum` and at least
/// `factor` times the hourly average of the hours before the previous one (up to a week).
pub(crate) fn spike(refusals: &[u64], into: u64, factor: f64, minimum: u64) -> Option<u64> {
    let (&current, earlier) = refusals.split_last()?;
    let (&previous, baseline) = earlier.split_last().unwrap_or((&0, &[]));
    let into = into.min(3_600);
    let last_hour = current + previous * (3_600 - into) / 3_600;
    let baseline = &baseline[baseline.len().saturating_sub(168)..];
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    let average = if baseline.is_empty() {
        0.0
    } else {
        baseline.iter().sum::<u64>() as f64 / baseline.len() as f64
    };
    #[allow(clippy::cast_precision_loss)]
    (last_hour >= minimum && last_hour as f64 >= factor * average).then_some(last_hour)
}

#[cfg(test)]
mod tests {
    use super::spike;

    #[test]
    fn a_spike_is_far_above_the_sites_own_week_and_above_the_minimum() {
        let week = |per_hour: u64| vec![per_hour; 168];
        let with = |mut hours: Vec<u64>, previous: u64, current: u64| {
            hours.push(previous);
            hours.push(current);
            hours
        };
        // A quiet site: 60 refusals in the last hour are a spike.
        assert_eq!(spike(&with(week(2), 0, 60), 1_800, 3.0, 50), Some(60));
        // Below the minimum, however quiet the site.
        assert_eq!(spike(&with(week(0), 0, 49), 1_800, 3.0, 50), None);
        // A busy site: 250 is under three times its 100 an hour.
        assert_eq!(spike(&with(week(100), 0, 250), 1_800, 3.0, 50), None);
        assert_eq!(spike(&with(week(100), 0, 300), 1_800, 3.0, 50), Some(300));
        // Half an hour in, half the previous hour counts.
        assert_eq!(spike(&with(week(0), 100, 10), 1_800, 3.0, 50), Some(60));
        // A new site has no baseline: the minimum decides.
        assert_eq!(spike(&[0, 55], 0, 3.0, 50), Some(55));
        assert_eq!(spike(&[], 0, 3.0, 50), None);
    }
}
