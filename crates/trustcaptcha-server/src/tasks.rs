//! The work a serving server does beside the requests, owned by [`Tasks`]: started by
//! [`crate::serve`] and stopped with it.
//!
//! - **Start-up evidence of downtime** ([`on_start`]) and **heartbeats**: the store's last
//!   heartbeat tells a starting server whether widgets may have failed over (see
//!   [`crate::failover`]).
//! - **Statistics**: the counts kept in memory are added to the store every
//!   [`FLUSH_INTERVAL`], and so are the console keys' last uses.
//! - **The console's sites**: read from the store at start, then whenever the catalog's
//!   revision, polled every [`CATALOG_POLL`], says they changed (or a rotated key's overlap
//!   ended): a change made on one server is served by every server within that time.
//! - **Alerts** (`crate::alerts`): delivered to the webhooks (`crate::webhooks::deliver`); the
//!   store's calls watched every [`STORE_WATCH`] for an outage starting or ending; the sites
//!   that refused something checked every [`SPIKE_CHECK`] for a spike.
//! - **Readiness**: every [`READINESS_INTERVAL`] the store is pinged (a write included, see
//!   [`crate::store::Store::ping`]), and a change is logged, a warning with the reason when the
//!   store stops being ready (a full disk, a SQLite file deleted or replaced, a Redis whose
//!   eviction policy changed) and a line when it is ready again. `GET /readyz` answers from the
//!   same ping, so a load balancer and the log tell the same story.

use std::time::Duration;

use crate::alerts::Kind;
use crate::failover::{DOWNTIME_GAP, HEARTBEAT_INTERVAL};
use crate::state::AppState;
use crate::statistics::FLUSH_INTERVAL;
use crate::store::catalog::rfc3339;
use crate::store::{Mark, Store as _, StoreError};

/// The running tasks; dropping this stops them.
#[derive(Debug)]
pub(crate) struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Tasks {
    /// Looks at the start-up evidence ([`on_start`]), then starts the periodic tasks.
    pub(crate) async fn start(state: &AppState) -> Self {
        on_start(state).await;
        state.refresh_catalog().await;
        let mut tasks = vec![
            tokio::spawn(poll_catalog(state.clone())),
            tokio::spawn(heartbeats(state.clone())),
            tokio::spawn(flush_statistics(state.clone())),
            tokio::spawn(watch_readiness(state.clone())),
            tokio::spawn(watch_store(state.clone())),
            tokio::spawn(watch_refusals(state.clone())),
        ];
        if let Some(alerts) = state.alerts.take_receiver() {
            tasks.push(tokio::spawn(crate::webhooks::deliver(
                state.clone(),
                alerts,
            )));
        }
        Tasks(tasks)
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Once per state, before serving: records downtime the store's heartbeat shows (for every
/// server sharing the store), learns of outages other servers recorded, then writes a heartbeat
/// of its own. Later calls do nothing.
pub(crate) async fn on_start(state: &AppState) {
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
                    let data = serde_json::json!({
                        "last_heartbeat": rfc3339(last),
                        "until": rfc3339(now + state.settings().failover_grace),
                    });
                    state
                        .alerts
                        .raise(Kind::FailoverWindowOpened, None, data, now);
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "the store's heartbeat cannot be read"),
            }
            beat(state).await;
        })
        .await;
}

/// Beats every [`HEARTBEAT_INTERVAL`], for as long as it runs.
async fn heartbeats(state: AppState) {
    let mut interval = tokio::time::interval(HEARTBEAT_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        beat(&state).await;
    }
}

/// Writes a heartbeat, and takes over the latest outage any server sharing the store recorded.
/// A failure is noticed by the store's tracking; the next beat tries again.
async fn beat(state: &AppState) {
    let _ = state.store.mark(Mark::Heartbeat, state.clock.now()).await;
    if let Ok(Some(ended)) = state.store.latest(Mark::OutageEnded).await {
        state.outages.ended_at(ended);
    }
}

/// Adds the counts in memory to the store every [`FLUSH_INTERVAL`], for as long as it runs.
async fn flush_statistics(state: AppState) {
    let mut interval = tokio::time::interval(FLUSH_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        // A failure is recorded by the store's tracking; the counts wait for the next flush.
        let _ = state.flush_statistics().await;
        state.flush_key_uses().await;
    }
}

/// How often the store's health is looked at for an outage starting or ending.
pub(crate) const STORE_WATCH: Duration = Duration::from_secs(1);

/// Tells the webhooks when this server's store calls start failing, and when they work again.
async fn watch_store(state: AppState) {
    let mut interval = tokio::time::interval(STORE_WATCH);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut since: Option<time::OffsetDateTime> = None;
    let instance = std::env::var("HOSTNAME").unwrap_or_else(|_| std::process::id().to_string());
    loop {
        interval.tick().await;
        let now = state.clock.now();
        let failing = state.store.layer().failing();
        state.metrics.store_up(!failing);
        match (failing, since) {
            (true, None) => {
                since = Some(now);
                let data = serde_json::json!({ "instance": instance });
                state
                    .alerts
                    .raise(Kind::StoreOutageStarted, None, data, now);
            }
            (false, Some(started)) => {
                since = None;
                let data = serde_json::json!({
                    "instance": instance,
                    "seconds": (now - started).whole_seconds(),
                });
                state.alerts.raise(Kind::StoreOutageEnded, None, data, now);
            }
            _ => {}
        }
    }
}

/// How often the sites that refused something are checked for a spike.
pub(crate) const SPIKE_CHECK: Duration = Duration::from_secs(60);

/// Checks every [`SPIKE_CHECK`] the sites that refused something since the last check.
async fn watch_refusals(state: AppState) {
    let mut interval = tokio::time::interval(SPIKE_CHECK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        check_spikes(&state).await;
    }
}

/// Raises a spike alert for each site that refused something since the last check and whose
/// last hour is a spike ([`crate::alerts::spike`]) that no server has told of this hour.
pub(crate) async fn check_spikes(state: &AppState) {
    let sites = state.alerts.take_refusing_sites();
    if sites.is_empty() || state.flush_statistics().await.is_err() {
        return;
    }
    let now = state.clock.now();
    let settings = state.settings();
    let week = time::Duration::days(7) + time::Duration::hours(1);
    for site in sites {
        let hourly = crate::store::Resolution::Hour;
        let Ok(table) =
            crate::statistics::series::read(&state.store, &site, hourly, (now - week, now), now)
                .await
        else {
            continue;
        };
        let refusals: Vec<u64> = table
            .sum_of("refused:")
            .iter()
            .zip(table.of("blocked"))
            .map(|(refused, blocked)| refused + blocked)
            .collect();
        let into = table
            .buckets
            .last()
            .map_or(0, |start| (now.unix_timestamp() - start).unsigned_abs());
        let factor = settings.refusal_spike_factor;
        let Some(last_hour) =
            crate::alerts::spike(&refusals, into, factor, settings.refusal_spike_minimum)
        else {
            continue;
        };
        // Once per site and hour, whichever server sees it first.
        let once = format!("alert:spike:{site}");
        if state
            .store
            .add(&once, Duration::from_secs(3_600), 1, now)
            .await
            != Ok(1)
        {
            continue;
        }
        let data = serde_json::json!({ "refusals_last_hour": last_hour, "factor": factor });
        state
            .alerts
            .raise(Kind::RefusalSpike, Some(&site), data, now);
    }
}

/// How often the catalog's revision is read: the most a console change takes to reach every
/// server (one small read per poll: a `GET` in Redis).
pub(crate) const CATALOG_POLL: Duration = Duration::from_millis(250);

/// How long polling pauses after the store failed to answer it: an outage is logged by every
/// call that fails, and four a second would flood the log.
const CATALOG_POLL_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// Serves the console's sites as they change, for as long as it runs.
async fn poll_catalog(state: AppState) {
    let mut interval = tokio::time::interval(CATALOG_POLL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if !state.refresh_catalog().await {
            tokio::time::sleep(CATALOG_POLL_AFTER_FAILURE).await;
        }
    }
}

/// How often the store's readiness is checked.
pub(crate) const READINESS_INTERVAL: Duration = Duration::from_secs(10);

/// Checks every [`READINESS_INTERVAL`] for as long as it runs, logging each change.
async fn watch_readiness(state: AppState) {
    let mut interval = tokio::time::interval(READINESS_INTERVAL);
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
