//! Per-site statistics for operators, kept in the store so that every instance adds to the same
//! numbers and they survive restarts: verifications created, solved, passed and blocked,
//! refusals by reason, the score and solve-time distributions, the visitors' countries,
//! browsers and operating systems, and retrieval outcomes.
//!
//! Requests only add to counts in memory (one short lock); [`Statistics::flush`], every
//! [`FLUSH_INTERVAL`] and when the server stops, adds them to the store's counters in three
//! windows: the hour, the day and the week (see [`WINDOWS`]). [`Statistics::read`] gives a site's
//! counts over the last hour, day or week.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use parking_lot::Mutex;
use time::OffsetDateTime;

use crate::signals::Signals;
use crate::store::{Store as _, StoreError, TrackedStore};

/// How often counts in memory are added to the store.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_secs(10);

/// The windows statistics are kept in, by name: the last hour, day and week.
pub(crate) const WINDOWS: [(&str, Duration); 3] = [
    ("hour", Duration::from_secs(3_600)),
    ("day", Duration::from_secs(86_400)),
    ("week", Duration::from_secs(604_800)),
];

/// Counts not yet added to the store, by site and event.
#[derive(Debug, Default)]
pub(crate) struct Statistics {
    pending: Mutex<HashMap<String, HashMap<Event, u64>>>,
}

/// One thing counted: a kind (`created`), or a kind and a name (`retrieval:ok`, `country:DE`).
/// Kinds and most names are static, so counting them on a request path allocates nothing.
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

    /// The event as the store's counters and [`Statistics::read`] name it.
    fn key(&self) -> Cow<'static, str> {
        match &self.name {
            Some(name) => Cow::Owned(format!("{}:{name}", self.kind)),
            None => Cow::Borrowed(self.kind),
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

impl Statistics {
    /// Counts one `event` of `site`.
    pub(crate) fn count(&self, site: &str, event: impl Into<Event>) {
        self.add(site, event.into(), 1);
    }

    fn add(&self, site: &str, event: Event, by: u64) {
        let mut pending = self.pending.lock();
        let counts = match pending.get_mut(site) {
            Some(counts) => counts,
            None => pending.entry(site.to_owned()).or_default(),
        };
        *counts.entry(event).or_default() += by;
    }

    /// Counts a finished verification: passed or blocked, its score (in tenths), the
    /// detection signals that fired, its solve time, and the visitor's country, browser and
    /// operating system families.
    pub(crate) fn finished(
        &self,
        site: &str,
        result: &trustcaptcha::VerificationResult,
        signals: &Signals,
        solve: Duration,
    ) {
        let blocked = !result.verification_passed
            || result.decision_action == trustcaptcha::DecisionAction::Block;
        self.count(site, if blocked { "blocked" } else { "passed" });
        let tenths = (result.score.clamp(0.0, 1.0) * 10.0).round();
        self.count(site, Event::named("score", format!("{:.1}", tenths / 10.0)));
        for signal in signals.fired() {
            self.count(site, Event::named("signal", signal));
        }
        let millis = u64::try_from(solve.as_millis()).unwrap_or(u64::MAX);
        let bucket = SOLVE_BUCKETS_MS
            .iter()
            .find(|limit| millis < **limit)
            .map_or(Cow::Borrowed("slower"), |limit| {
                Cow::Owned(format!("<{limit}ms"))
            });
        self.count(site, Event::named("solve", bucket));
        let family = |name: &str| {
            let family = name.split(' ').next().unwrap_or_default();
            if family.is_empty() {
                "unknown".to_owned()
            } else {
                family.to_owned()
            }
        };
        self.count(site, Event::named("country", family(&result.country_code)));
        self.count(site, Event::named("browser", family(&result.browser)));
        self.count(site, Event::named("os", family(&result.operating_system)));
    }

    /// Adds the counts in memory to the store. Counts the store does not take are kept for
    /// the next flush.
    ///
    /// # Errors
    ///
    /// The store's first failure; what was not added stays in memory.
    pub(crate) async fn flush(
        &self,
        store: &TrackedStore,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let counts = std::mem::take(&mut *self.pending.lock());
        let mut left = counts.into_iter().flat_map(|(site, events)| {
            events
                .into_iter()
                .map(move |(event, by)| (site.clone(), event, by))
        });
        while let Some((site, event, by)) = left.next() {
            let key = event.key();
            for (name, length) in WINDOWS {
                if let Err(error) = store
                    .add(&counter(&site, &key, name), length, by, now)
                    .await
                {
                    // Put back what was not added (a window may be counted twice on the next
                    // flush; statistics tolerate that, verifications never depend on them).
                    self.add(&site, event, by);
                    for (site, event, by) in left {
                        self.add(&site, event, by);
                    }
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// `site`'s counts over the last `window` (`hour`, `day` or `week`) for `events`.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub(crate) async fn read(
        store: &TrackedStore,
        site: &str,
        window: &str,
        events: &[String],
        now: OffsetDateTime,
    ) -> Result<BTreeMap<String, u64>, StoreError> {
        let Some((name, length)) = WINDOWS.into_iter().find(|(name, _)| *name == window) else {
            return Ok(BTreeMap::new());
        };
        let mut read = BTreeMap::new();
        for event in events {
            let counts = store
                .counts(&counter(site, event, name), length, now)
                .await?;
            read.insert(event.clone(), counts.sliding(length, now));
        }
        Ok(read)
    }
}

/// The events [`Statistics::read`] reports for a site: everything counted but the visitors'
/// countries, browsers and operating systems (those are counted by name).
#[must_use]
pub(crate) fn reported_events() -> Vec<String> {
    let fixed = ["created", "solved", "passed", "blocked", "failed"];
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

fn counter(site: &str, event: &str, window: &str) -> String {
    format!("stats:{site}:{event}:{window}")
}
