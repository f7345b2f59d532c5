//! Reading a site's series: a range bucket by bucket (charts, exports), or the totals over the
//! last hour, day or week (the summary).

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;

use crate::store::{Resolution, Store as _, StoreError, TrackedStore};

/// The most buckets one read covers: 90 days of hours, or ten years of days.
pub(crate) const MAX_BUCKETS: usize = 3_660;

/// The windows the summary offers, by name.
pub(crate) const WINDOWS: [(&str, Duration); 3] = [
    ("hour", Duration::from_secs(3_600)),
    ("day", Duration::from_secs(86_400)),
    ("week", Duration::from_secs(604_800)),
];

/// A site's counts over a range, bucket by bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Table {
    /// How long each bucket is.
    pub(crate) resolution: Resolution,
    /// Each bucket's start, Unix seconds, oldest first.
    pub(crate) buckets: Vec<i64>,
    /// Each event's count in each bucket (in the order of `buckets`); only events counted at
    /// least once in the range.
    pub(crate) counts: BTreeMap<String, Vec<u64>>,
}

impl Table {
    /// `event`'s counts, bucket by bucket (zeros when it was never counted).
    pub(crate) fn of(&self, event: &str) -> Vec<u64> {
        self.counts
            .get(event)
            .cloned()
            .unwrap_or_else(|| vec![0; self.buckets.len()])
    }

    /// The sum of every event starting with `prefix`, bucket by bucket.
    pub(crate) fn sum_of(&self, prefix: &str) -> Vec<u64> {
        let mut sum = vec![0; self.buckets.len()];
        for (_, counts) in self
            .counts
            .iter()
            .filter(|(event, _)| event.starts_with(prefix))
        {
            for (total, count) in sum.iter_mut().zip(counts) {
                *total += count;
            }
        }
        sum
    }
}

/// `site`'s counts in the buckets of `resolution` from the one holding `from` to the one
/// holding `to` (Unix seconds), at most [`MAX_BUCKETS`] of them (the latest).
///
/// # Errors
///
/// When the store fails.
pub(crate) async fn read(
    store: &TrackedStore,
    site: &str,
    resolution: Resolution,
    (from, to): (OffsetDateTime, OffsetDateTime),
    now: OffsetDateTime,
) -> Result<Table, StoreError> {
    let step = resolution.seconds();
    let last = resolution.bucket(to);
    let first = resolution
        .bucket(from)
        .max(last - step * (MAX_BUCKETS as i64 - 1));
    let buckets: Vec<i64> = (0..)
        .map(|n| first + n * step)
        .take_while(|bucket| *bucket <= last)
        .collect();
    let points = store
        .series(site, resolution, first, last + step, now)
        .await?;
    let mut counts: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for point in points {
        let Ok(index) = usize::try_from((point.bucket - first) / step) else {
            continue;
        };
        if let Some(count) = counts
            .entry(point.event)
            .or_insert_with(|| vec![0; buckets.len()])
            .get_mut(index)
        {
            *count += point.count;
        }
    }
    Ok(Table {
        resolution,
        buckets,
        counts,
    })
}

/// `site`'s totals over the last `length` before `now`, from its hourly series: the oldest hour
/// that the window reaches into is weighted by how much of it the window covers.
///
/// # Errors
///
/// When the store fails.
pub(crate) async fn totals(
    store: &TrackedStore,
    site: &str,
    length: Duration,
    now: OffsetDateTime,
) -> Result<BTreeMap<String, u64>, StoreError> {
    let start = now - length;
    let table = read(store, site, Resolution::Hour, (start, now), now).await?;
    let step = Resolution::Hour.seconds();
    // The part of the first bucket inside the window, in seconds.
    let first_share = table
        .buckets
        .first()
        .map_or(step, |first| first + step - start.unix_timestamp())
        .clamp(0, step);
    Ok(table
        .counts
        .into_iter()
        .map(|(event, counts)| {
            let total = counts
                .iter()
                .enumerate()
                .map(|(index, count)| {
                    if index == 0 {
                        count * first_share.unsigned_abs() / step.unsigned_abs()
                    } else {
                        *count
                    }
                })
                .sum();
            (event, total)
        })
        .collect())
}
