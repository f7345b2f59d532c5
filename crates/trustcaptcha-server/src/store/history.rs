//! History: what happened over time, kept in the store so that every server's traffic is counted
//! once and any server can show it. Two kinds of record:
//!
//! * **Series**: per site, a count per event in each bucket of a [`Resolution`] (an hour or a
//!   day, aligned to UTC). Additions are batched ([`SeriesAdd`]); a bucket is forgotten after
//!   its `forget_at`.
//! * **Journals**: named, time-ordered lists of JSON entries (a site's event log, a webhook's
//!   deliveries), bounded by a [`JournalBound`]: the newest `entries`, none older than `age`.
//!
//! # The contract
//!
//! * [`Store::add_series`](super::Store::add_series) adds every addition of a batch; adding to
//!   the same bucket and event from many servers sums exactly. A backend may apply part of a
//!   failed batch (statistics tolerate a count repeated after a failure; verifications never
//!   depend on them).
//! * [`Store::series`](super::Store::series) answers the non-zero counts of buckets in
//!   `from..to` (bucket starts, Unix seconds) that are not past their `forget_at`, ordered by
//!   bucket then event.
//! * [`Store::append_journal`](super::Store::append_journal) keeps, after the append, at most
//!   `bound.entries` entries of the journal and none older than `now - bound.age` (the oldest
//!   go first); [`Store::journal`](super::Store::journal) answers entries with `from <= at <
//!   to`, newest first (equal times by id, descending), at most `limit` (and at most
//!   [`JOURNAL_PAGE`]).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use time::OffsetDateTime;
/// The journal entries one read returns at most.
pub const JOURNAL_PAGE: usize = 1_000;

/// How long a series bucket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resolution {
    /// An hour.
    Hour,
    /// A day (UTC).
    Day,
}

impl Resolution {
    /// Both resolutions.
    pub const ALL: [Resolution; 2] = [Resolution::Hour, Resolution::Day];

    /// `hour` or `day`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Resolution::Hour => "hour",
            Resolution::Day => "day",
        }
    }

    /// The resolution `name` names.
    #[must_use]
    pub fn named(name: &str) -> Option<Self> {
        Resolution::ALL
            .into_iter()
            .find(|resolution| resolution.name() == name)
    }

    /// A bucket's length in seconds.
    #[must_use]
    pub fn seconds(self) -> i64 {
        match self {
            Resolution::Hour => 3_600,
            Resolution::Day => 86_400,
        }
    }

    /// A bucket's length.
    #[must_use]
    pub fn length(self) -> Duration {
        Duration::from_secs(self.seconds().unsigned_abs())
    }

    /// The start (Unix seconds) of the bucket that holds `at`.
    #[must_use]
    pub fn bucket(self, at: OffsetDateTime) -> i64 {
        at.unix_timestamp()
            .div_euclid(self.seconds())
            .saturating_mul(self.seconds())
    }

    /// A number for backends that store it as one.
    pub(crate) fn number(self) -> i64 {
        match self {
            Resolution::Hour => 0,
            Resolution::Day => 1,
        }
    }
}

/// One addition to a site's series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesAdd {
    /// The site's name.
    pub site: String,
    /// The bucket's resolution.
    pub resolution: Resolution,
    /// The bucket's start, Unix seconds.
    pub bucket: i64,
    /// What is counted (`created`, `signal:automation`, …).
    pub event: String,
    /// How much to add.
    pub by: u64,
    /// When the bucket may be forgotten.
    pub forget_at: OffsetDateTime,
}

/// A site's count of one event in one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesPoint {
    /// The bucket's start, Unix seconds.
    pub bucket: i64,
    /// What was counted.
    pub event: String,
    /// How often.
    pub count: u64,
}

/// One entry of a journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// When it happened, milliseconds since the Unix epoch.
    pub at: i64,
    /// Unique within the journal (e.g. the verification's id).
    pub id: String,
    /// The entry, as JSON.
    pub value: String,
}

/// What a journal keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalBound {
    /// The newest this many entries.
    pub entries: usize,
    /// None older than this.
    pub age: Duration,
}

impl JournalBound {
    /// The oldest time kept at `now`, milliseconds.
    pub(crate) fn oldest(self, now: OffsetDateTime) -> i64 {
        super::millis(now).saturating_sub(i64::try_from(self.age.as_millis()).unwrap_or(i64::MAX))
    }
}

/// The history of a store that keeps it in process memory.
#[derive(Debug, Default)]
pub(crate) struct MemoryHistory {
    series: BTreeMap<(String, Resolution, i64), (OffsetDateTime, BTreeMap<String, u64>)>,
    journals: HashMap<String, BTreeMap<(i64, String), String>>,
    /// When the series were last swept of forgotten buckets.
    swept: Option<OffsetDateTime>,
}

impl MemoryHistory {
    pub(crate) fn add_series(&mut self, adds: Vec<SeriesAdd>, now: OffsetDateTime) {
        if self
            .swept
            .is_none_or(|swept| now - swept > time::Duration::MINUTE)
        {
            self.series.retain(|_, (forget_at, _)| *forget_at > now);
            self.swept = Some(now);
        }
        for add in adds {
            let (forget_at, counts) = self
                .series
                .entry((add.site, add.resolution, add.bucket))
                .or_insert_with(|| (add.forget_at, BTreeMap::new()));
            *forget_at = (*forget_at).max(add.forget_at);
            let count = counts.entry(add.event).or_default();
            *count = count.saturating_add(add.by);
        }
    }

    pub(crate) fn series(
        &self,
        site: &str,
        resolution: Resolution,
        from: i64,
        to: i64,
        now: OffsetDateTime,
    ) -> Vec<SeriesPoint> {
        if from >= to {
            return Vec::new();
        }
        let range = (site.to_owned(), resolution, from)..(site.to_owned(), resolution, to);
        self.series
            .range(range)
            .filter(|(_, (forget_at, _))| *forget_at > now)
            .flat_map(|((_, _, bucket), (_, counts))| {
                counts.iter().map(|(event, count)| SeriesPoint {
                    bucket: *bucket,
                    event: event.clone(),
                    count: *count,
                })
            })
            .filter(|point| point.count > 0)
            .collect()
    }

    pub(crate) fn append_journal(
        &mut self,
        journal: &str,
        entries: Vec<JournalEntry>,
        bound: JournalBound,
        now: OffsetDateTime,
    ) {
        let kept = self.journals.entry(journal.to_owned()).or_default();
        for entry in entries {
            kept.insert((entry.at, entry.id), entry.value);
        }
        let oldest = bound.oldest(now);
        kept.retain(|(at, _), _| *at >= oldest);
        while kept.len() > bound.entries {
            kept.pop_first();
        }
    }

    pub(crate) fn journal(
        &self,
        journal: &str,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Vec<JournalEntry> {
        let Some(kept) = self.journals.get(journal) else {
            return Vec::new();
        };
        if from >= to {
            return Vec::new();
        }
        kept.range((from, String::new())..(to, String::new()))
            .rev()
            .take(limit.min(JOURNAL_PAGE))
            .map(|((at, id), value)| JournalEntry {
                at: *at,
                id: id.clone(),
                value: value.clone(),
            })
            .collect()
    }
}
