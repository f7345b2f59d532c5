//! Per-site statistics for operators, kept in the store (`store::history`) so that every
//! instance adds to the same numbers and any instance can show them: counts per hour and per day
//! ([`series`]), and the event log of the most recent verifications ([`log`]).
//!
//! What is counted: verifications created, solved, passed and blocked (by score or by rule),
//! refusals and unserved requests by reason, retrieval outcomes (failover among them), each
//! detection signal, the score and solve-time distributions, and the visitors' countries,
//! browsers and operating systems (families, a bounded set).
//!
//! Requests only add to counts in memory, by site and hour (one short lock); [`Statistics::flush`],
//! every [`FLUSH_INTERVAL`], before a page or export shows them, and when the server stops, adds
//! them to the store's hourly and daily series and appends the event log. A flush the store
//! refuses keeps everything for the next one.

pub(crate) mod log;
pub(crate) mod series;

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use parking_lot::Mutex;
use time::OffsetDateTime;

use crate::config::ServerSettings;
use crate::signals::Signals;
use crate::store::{
    JournalBound, JournalEntry, Resolution, SeriesAdd, Store as _, StoreError, TrackedStore,
};

/// How often counts in memory are added to the store.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_secs(10);

/// Counts and event log entries not yet added to the store.
#[derive(Debug)]
pub(crate) struct Statistics {
    pending: Mutex<Pending>,
    /// The entries a site's event log keeps: a site's newest this many wait for a flush (older
    /// ones would be dropped by the store at once), so a busy site's log costs the store no
    /// more than this per flush.
    log_entries: usize,
}

#[derive(Debug, Default)]
struct Pending {
    /// By site, then hour (its start, Unix seconds).
    counts: HashMap<String, HashMap<i64, HashMap<Event, u64>>>,
    /// By site, oldest first.
    log: HashMap<String, VecDeque<log::Logged>>,
}

impl Pending {
    fn add(&mut self, site: &str, hour: i64, event: Event, by: u64) {
        // Looked up by `&str` first, so that counting allocates no site name.
        let hours = match self.counts.get_mut(site) {
            Some(hours) => hours,
            None => self.counts.entry(site.to_owned()).or_default(),
        };
        *hours.entry(hour).or_default().entry(event).or_default() += by;
    }
}

/// One thing counted: a kind (`created`), or a kind and a name (`retrieval:ok`, `country:DE`).
/// Kinds and most names are static, so counting them on a request path allocates little.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Event {
    kind: &'static str,
    name: Option<Cow<'static, str>>,
}

impl Event {
    /// `kind:name`.
    pub(crate) fn named(kind: &'static str, name: impl Into<Cow<'static, str>>) -> Self {
        Event {
            kind,
            name: Some(name.into()),
        }
    }

    /// The event as the store's series name it.
    fn key(&self) -> String {
        match &self.name {
            Some(name) => format!("{}:{name}", self.kind),
            None => self.kind.to_owned(),
        }
    }
}

impl From<&'static str> for Event {
    fn from(kind: &'static str) -> Self {
        Event { kind, name: None }
    }
}

/// The solve-time buckets, in milliseconds (a solve at or above the last is in `slower`).
const SOLVE_BUCKETS_MS: [u64; 6] = [250, 500, 1_000, 2_000, 5_000, 10_000];

/// How long each kind of history is kept, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keep {
    hourly: Duration,
    daily: Duration,
    log: JournalBound,
}

impl Keep {
    pub(crate) fn of(settings: &ServerSettings) -> Self {
        let days = |days: u32| Duration::from_secs(u64::from(days) * 86_400);
        Keep {
            hourly: days(settings.hourly_statistics_days),
            daily: days(settings.daily_statistics_days),
            log: JournalBound {
                entries: settings.event_log_entries,
                age: days(settings.event_log_days),
            },
        }
    }
}

impl Statistics {
    /// Nothing counted yet; each site's event log keeps `log_entries`.
    pub(crate) fn new(log_entries: usize) -> Self {
        Statistics {
            pending: Mutex::default(),
            log_entries: log_entries.max(1),
        }
    }

    /// Counts one `event` of `site` at `now`.
    pub(crate) fn count(&self, site: &str, event: impl Into<Event>, now: OffsetDateTime) {
        let hour = Resolution::Hour.bucket(now);
        self.pending.lock().add(site, hour, event.into(), 1);
    }

    /// Counts a finished verification (passed or blocked, by score or by rule; its score in
    /// tenths, the detection signals that fired, its solve time, the visitor's country,
    /// browser and system families) and adds it to the site's event log.
    pub(crate) fn finished(&self, site: &str, finished: &log::Finished<'_>, now: OffsetDateTime) {
        let result = finished.result;
        let mut events: Vec<Event> = Vec::with_capacity(12);
        if log::blocked(result) {
            events.push("blocked".into());
            events.push(Event::named(
                "blocked",
                if finished.access_rule.is_some() {
                    "rule"
                } else {
                    "score"
                },
            ));
        } else {
            events.push("passed".into());
        }
        let tenths = (result.score.clamp(0.0, 1.0) * 10.0).round();
        events.push(Event::named("score", format!("{:.1}", tenths / 10.0)));
        events.extend(
            finished
                .signals
                .fired()
                .map(|signal| Event::named("signal", signal)),
        );
        let millis = u64::try_from(finished.solve.as_millis()).unwrap_or(u64::MAX);
        let bucket = SOLVE_BUCKETS_MS
            .iter()
            .find(|limit| millis < **limit)
            .map_or(Cow::Borrowed("slower"), |limit| {
                Cow::Owned(format!("<{limit}ms"))
            });
        events.push(Event::named("solve", bucket));
        events.push(Event::named("country", log::family(&result.country_code)));
        events.push(Event::named("browser", log::family(&result.browser)));
        events.push(Event::named("os", log::family(&result.operating_system)));
        let logged = finished.logged(now);
        let hour = Resolution::Hour.bucket(now);
        let mut pending = self.pending.lock();
        for event in events {
            pending.add(site, hour, event, 1);
        }
        let log = match pending.log.get_mut(site) {
            Some(log) => log,
            None => pending.log.entry(site.to_owned()).or_default(),
        };
        if log.len() >= self.log_entries {
            log.pop_front();
        }
        log.push_back(logged);
    }

    /// Adds the counts in memory to the store's series and the pending entries to the event
    /// logs. What the store does not take is kept for the next flush.
    ///
    /// # Errors
    ///
    /// The store's first failure.
    pub(crate) async fn flush(
        &self,
        store: &TrackedStore,
        keep: Keep,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let Pending { counts, log } = std::mem::take(&mut *self.pending.lock());
        let mut adds = Vec::new();
        let hours = counts
            .iter()
            .flat_map(|(site, hours)| hours.iter().map(move |(hour, events)| (site, hour, events)));
        for (site, hour, events) in hours {
            let day = Resolution::Day.bucket(
                OffsetDateTime::from_unix_timestamp(*hour).unwrap_or(OffsetDateTime::UNIX_EPOCH),
            );
            for (event, by) in events {
                let key = event.key();
                for (resolution, bucket, kept) in [
                    (Resolution::Hour, *hour, keep.hourly),
                    (Resolution::Day, day, keep.daily),
                ] {
                    adds.push(SeriesAdd {
                        site: site.clone(),
                        resolution,
                        bucket,
                        event: key.clone(),
                        by: *by,
                        forget_at: forget_at(bucket, resolution, kept),
                    });
                }
            }
        }
        if !adds.is_empty()
            && let Err(error) = store.add_series(adds, now).await
        {
            // Put back what was not added (a count may be added twice after a failure;
            // statistics tolerate that, verifications never depend on them).
            self.put_back(counts, log);
            return Err(error);
        }
        let mut left = log.into_iter();
        while let Some((site, entries)) = left.next() {
            let journal = log::journal(&site);
            let written: Vec<JournalEntry> = entries.iter().map(log::Logged::entry).collect();
            if let Err(error) = store.append_journal(&journal, written, keep.log, now).await {
                let unwritten = std::iter::once((site, entries)).chain(left).collect();
                self.put_back(HashMap::new(), unwritten);
                return Err(error);
            }
        }
        Ok(())
    }

    fn put_back(
        &self,
        counts: HashMap<String, HashMap<i64, HashMap<Event, u64>>>,
        log: HashMap<String, VecDeque<log::Logged>>,
    ) {
        let mut pending = self.pending.lock();
        for (site, hours) in counts {
            for (hour, events) in hours {
                for (event, by) in events {
                    pending.add(&site, hour, event, by);
                }
            }
        }
        for (site, older) in log {
            // What was logged since goes after what could not be written; the oldest go first
            // when that is more than the log keeps.
            let kept = pending.log.entry(site).or_default();
            let newer = std::mem::replace(kept, older);
            kept.extend(newer);
            while kept.len() > self.log_entries {
                kept.pop_front();
            }
        }
    }
}

/// When a bucket kept for `kept` after it ends may be forgotten.
fn forget_at(bucket: i64, resolution: Resolution, kept: Duration) -> OffsetDateTime {
    let end = bucket.saturating_add(resolution.seconds());
    OffsetDateTime::from_unix_timestamp(end).unwrap_or(OffsetDateTime::UNIX_EPOCH) + kept
}

/// The events statistics report for a site, in the order they are shown: everything counted
/// but the visitors' countries, browsers and operating systems (those are counted by name).
#[must_use]
pub(crate) fn reported_events() -> Vec<String> {
    let fixed = [
        "created",
        "solved",
        "passed",
        "blocked",
        "blocked:score",
        "blocked:rule",
        "failed",
    ];
    let refused = [
        "origin_not_allowed",
        "mode_mismatch",
        "site_locked",
        "quota_exhausted",
        "bypass_key_rejected",
        "rate_limited",
        "too_many_pending",
        "locked_out",
    ];
    let unserved = ["store_full", "store_unavailable"];
    let retrievals = [
        "ok",
        "fixture",
        "failover",
        "not_found",
        "expired",
        "not_finished",
        "limit_reached",
        "failover_rejected",
        "store_unavailable",
    ];
    let scores = (0..=10).map(|tenths| format!("score:{:.1}", f64::from(tenths) / 10.0));
    let solves = SOLVE_BUCKETS_MS
        .iter()
        .map(|limit| format!("solve:<{limit}ms"))
        .chain(std::iter::once("solve:slower".to_owned()));
    fixed
        .into_iter()
        .map(str::to_owned)
        .chain(refused.iter().map(|reason| format!("refused:{reason}")))
        .chain(unserved.iter().map(|reason| format!("unserved:{reason}")))
        .chain(
            retrievals
                .iter()
                .map(|outcome| format!("retrieval:{outcome}")),
        )
        .chain(scores)
        .chain(Signals::all_names().map(|signal| format!("signal:{signal}")))
        .chain(solves)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::{Keep, Statistics};
    use crate::clock::SystemClock;
    use crate::store::conformance::{T0, finished};
    use crate::store::memory::MemoryStore;
    use crate::store::{JournalBound, Store as _};

    /// A busy site's log waits for its flush as its newest `event_log_entries` only (the store
    /// would drop the rest at once).
    #[tokio::test]
    async fn a_sites_pending_log_is_its_newest_entries() {
        let statistics = Statistics::new(3);
        let results: Vec<_> = (0..5)
            .map(|n| finished(uuid::Uuid::from_u128(n + 1), 1, Duration::from_secs(60)).result)
            .collect();
        for (n, result) in (0..).zip(&results) {
            let logged = super::log::Finished {
                result,
                signals: crate::signals::Signals::default(),
                solve: Duration::from_secs(2),
                access_rule: None,
                how: "proof_of_work",
            };
            statistics.finished("shop", &logged, T0 + Duration::from_secs(n));
        }
        let store = crate::store::tracked(
            Arc::new(MemoryStore::new(10, Arc::new(SystemClock))),
            Arc::new(SystemClock),
        );
        let keep = Keep {
            hourly: Duration::from_secs(86_400),
            daily: Duration::from_secs(86_400),
            log: JournalBound {
                entries: 3,
                age: Duration::from_secs(86_400),
            },
        };
        statistics.flush(&store, keep, T0).await.expect("flush");
        let ids: Vec<String> = store
            .journal("events:shop", 0, i64::MAX, 10)
            .await
            .expect("read")
            .into_iter()
            .map(|entry| entry.id)
            .collect();
        let id = |n: u128| uuid::Uuid::from_u128(n).to_string();
        assert_eq!(ids, [id(5), id(4), id(3)]);
    }
}
