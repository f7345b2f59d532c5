//! Limits per client network (an IPv4 address, an IPv6 /64), so that one network cannot take
//! what every other visitor needs:
//!
//! * request rates on the widget's two endpoints (a token bucket per network, `governor`);
//! * challenges outstanding (handed out, neither submitted nor expired) per network and per
//!   site, so that no network and no site can fill the store;
//! * failed key guesses (API keys on the results endpoint, bypass keys on create): past the
//!   hourly budget the network is locked out until the hour is over, and while locked out even a
//!   correct key is refused, so guessing learns nothing.
//!
//! A client whose address is unknown (see [`crate::rules::client_ip`]) counts under one shared
//! network: unknown clients cannot dodge the limits, they share them.
//!
//! Memory is bounded: outstanding challenges are bounded by the store's capacity, and the guess
//! record keeps at most [`MAX_TRACKED_NETWORKS`] networks, forgetting finished windows first.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher as _;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use ipnet::IpNet;
use parking_lot::{Mutex, MutexGuard};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::ServerSettings;
use crate::rules::network;

/// Networks whose failed guesses are remembered at most.
pub(crate) const MAX_TRACKED_NETWORKS: usize = 100_000;

/// The window in which failed guesses are counted.
const GUESS_WINDOW: Duration = Duration::from_secs(3600);

/// Why a request was limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limited {
    /// Too many requests from this network; try again after this long.
    Rate(Duration),
    /// Too many challenges outstanding for this network or this site.
    Outstanding,
    /// Too many failed key guesses from this network; locked out for this long.
    Guessing(Duration),
}

/// The limits and what they count.
pub(crate) struct Limits {
    creates: DefaultKeyedRateLimiter<IpNet>,
    submits: DefaultKeyedRateLimiter<IpNet>,
    outstanding: Outstanding,
    guesses: Mutex<HashMap<IpNet, Guesses>>,
    max_per_network: usize,
    max_per_site: usize,
    guesses_per_window: u32,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("max_per_network", &self.max_per_network)
            .field("max_per_site", &self.max_per_site)
            .finish_non_exhaustive()
    }
}

/// Expiry times of the outstanding challenges (Unix milliseconds, half the size of a timestamp:
/// one per pending verification in each map), oldest first. Networks are sharded, so that
/// forgetting expired ones (a million networks, with a botnet) locks a sliver at a time; sites
/// are few and share one lock, always taken after a network shard's.
#[derive(Debug)]
struct Outstanding {
    by_network: [Mutex<HashMap<IpNet, VecDeque<i64>>>; NETWORK_SHARDS],
    by_site: Mutex<HashMap<Uuid, VecDeque<i64>>>,
    hasher: std::hash::RandomState,
}

/// Shards of [`Outstanding::by_network`]: a million networks are some 4 000 per shard.
const NETWORK_SHARDS: usize = 256;

/// The pause after each shard while forgetting: freeing a million networks' records at once
/// would take a core from requests for a tenth of a second (`scale-bench`).
const PAUSE: Duration = Duration::from_millis(1);

impl Outstanding {
    fn network(&self, network: &IpNet) -> MutexGuard<'_, HashMap<IpNet, VecDeque<i64>>> {
        let index =
            usize::try_from(self.hasher.hash_one(network) % NETWORK_SHARDS as u64).unwrap_or(0);
        self.by_network[index].lock()
    }
}

#[derive(Debug, Clone, Copy)]
struct Guesses {
    window_start: std::time::Instant,
    failed: u32,
}

/// The network unknown clients share.
fn network_of(ip: Option<IpAddr>) -> IpNet {
    network(ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
}

/// Removes the oldest entry under `key`, and the key once it has none.
fn pop_one<K: std::hash::Hash + Eq>(map: &mut HashMap<K, VecDeque<i64>>, key: &K) {
    let emptied = map.get_mut(key).is_some_and(|times| {
        times.pop_front();
        times.is_empty()
    });
    if emptied {
        map.remove(key);
    }
}

/// Prunes every entry of `map`, and forgets the keys left without any.
fn prune_all<K: std::hash::Hash + Eq>(map: &mut HashMap<K, VecDeque<i64>>, now: OffsetDateTime) {
    crate::store::retain_shrinking(map, |_, times| {
        prune(times, now);
        !times.is_empty()
    });
}

fn prune(times: &mut VecDeque<i64>, now: OffsetDateTime) {
    let now = crate::store::millis(now);
    while times.front().is_some_and(|expiry| *expiry <= now) {
        times.pop_front();
    }
    // A site's queue can hold a million expiries at a peak; it gives the memory back after.
    if times.capacity() > 4 * times.len().max(16) {
        times.shrink_to(2 * times.len());
    }
}

impl Limits {
    /// Limits as `settings` configure them.
    pub(crate) fn new(settings: &ServerSettings) -> Self {
        let quota = || {
            let per_minute = NonZeroU32::new(settings.widget_requests_per_minute.max(1))
                .unwrap_or(NonZeroU32::MIN);
            let burst = NonZeroU32::new(settings.widget_burst.max(1)).unwrap_or(NonZeroU32::MIN);
            Quota::per_minute(per_minute).allow_burst(burst)
        };
        Limits {
            creates: DefaultKeyedRateLimiter::keyed(quota()),
            submits: DefaultKeyedRateLimiter::keyed(quota()),
            outstanding: Outstanding {
                by_network: std::array::from_fn(|_| Mutex::default()),
                by_site: Mutex::default(),
                hasher: std::hash::RandomState::new(),
            },
            guesses: Mutex::default(),
            max_per_network: settings.max_pending_per_network,
            max_per_site: settings.max_pending_per_site,
            guesses_per_window: settings.failed_keys_per_hour,
        }
    }

    fn rate(limiter: &DefaultKeyedRateLimiter<IpNet>, ip: Option<IpAddr>) -> Result<(), Limited> {
        limiter.check_key(&network_of(ip)).map_err(|not_until| {
            Limited::Rate(not_until.wait_time_from(DefaultClock::default().now()))
        })
    }

    /// Takes one create request of `ip`'s network from its budget.
    pub(crate) fn create(&self, ip: Option<IpAddr>) -> Result<(), Limited> {
        Self::rate(&self.creates, ip)
    }

    /// Takes one submission of `ip`'s network from its budget.
    pub(crate) fn submit(&self, ip: Option<IpAddr>) -> Result<(), Limited> {
        Self::rate(&self.submits, ip)
    }

    /// How many challenges `ip`'s network has outstanding at `now`.
    pub(crate) fn outstanding(&self, ip: Option<IpAddr>, now: OffsetDateTime) -> usize {
        let network = network_of(ip);
        self.outstanding
            .network(&network)
            .get_mut(&network)
            .map_or(0, |times| {
                prune(times, now);
                times.len()
            })
    }

    /// Records a challenge handed out to `ip` for `site`, expiring at `expires_at`, unless the
    /// network or the site has as many outstanding as allowed.
    pub(crate) fn hand_out(
        &self,
        ip: Option<IpAddr>,
        site: Uuid,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<(), Limited> {
        let network = network_of(ip);
        let mut by_network = self.outstanding.network(&network);
        let network = by_network.entry(network).or_default();
        prune(network, now);
        let mut by_site = self.outstanding.by_site.lock();
        let site = by_site.entry(site).or_default();
        prune(site, now);
        if network.len() >= self.max_per_network || site.len() >= self.max_per_site {
            return Err(Limited::Outstanding);
        }
        let expires_at = crate::store::millis(expires_at);
        network.push_back(expires_at);
        site.push_back(expires_at);
        Ok(())
    }

    /// Forgets one outstanding challenge of `ip` for `site` (it was submitted, or not stored).
    pub(crate) fn settle(&self, ip: Option<IpAddr>, site: Uuid) {
        let network = network_of(ip);
        let mut by_network = self.outstanding.network(&network);
        pop_one(&mut by_network, &network);
        pop_one(&mut self.outstanding.by_site.lock(), &site);
    }

    /// Whether `ip`'s network is locked out for guessing keys, and for how long.
    pub(crate) fn guessing(&self, ip: Option<IpAddr>) -> Result<(), Limited> {
        let guesses = self.guesses.lock();
        match guesses.get(&network_of(ip)) {
            Some(record) if record.failed >= self.guesses_per_window => {
                let over = GUESS_WINDOW.saturating_sub(record.window_start.elapsed());
                if over.is_zero() {
                    Ok(())
                } else {
                    Err(Limited::Guessing(over))
                }
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed key guess of `ip`'s network.
    pub(crate) fn failed_guess(&self, ip: Option<IpAddr>) {
        let mut guesses = self.guesses.lock();
        if guesses.len() >= MAX_TRACKED_NETWORKS {
            guesses.retain(|_, record| record.window_start.elapsed() < GUESS_WINDOW);
        }
        let network = network_of(ip);
        if guesses.len() >= MAX_TRACKED_NETWORKS && !guesses.contains_key(&network) {
            // Full of live windows: the oldest-started one makes room.
            if let Some(oldest) = guesses
                .iter()
                .min_by_key(|(_, record)| record.window_start)
                .map(|(network, _)| *network)
            {
                guesses.remove(&oldest);
            }
        }
        let record = guesses.entry(network).or_insert(Guesses {
            window_start: std::time::Instant::now(),
            failed: 0,
        });
        if record.window_start.elapsed() >= GUESS_WINDOW {
            *record = Guesses {
                window_start: std::time::Instant::now(),
                failed: 0,
            };
        }
        record.failed = record.failed.saturating_add(1);
    }

    /// Forgets what no longer limits anyone: rate budgets that are full again, expired
    /// outstanding challenges. One shard locked at a time, `between_shards` called after each.
    fn forget(&self, now: OffsetDateTime, between_shards: &mut dyn FnMut()) {
        self.creates.retain_recent();
        self.submits.retain_recent();
        for shard in &self.outstanding.by_network {
            prune_all(&mut shard.lock(), now);
            between_shards();
        }
        prune_all(&mut self.outstanding.by_site.lock(), now);
    }

    /// One pass of the housekeeping: [`Limits::forget`] with a [`PAUSE`] after each shard. Blocks
    /// for as long as the pass takes; it belongs on the blocking pool.
    pub(crate) fn housekeeping(&self, now: OffsetDateTime) {
        self.forget(now, &mut || std::thread::sleep(PAUSE));
    }
}

/// How often [`Limits`] forgets what no longer limits anyone.
const FORGET_INTERVAL: Duration = Duration::from_secs(30);

/// Limits shared by the requests, with the task that keeps them small; the task ends when the
/// last handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct SharedLimits(Arc<Limits>);

impl std::ops::Deref for SharedLimits {
    type Target = Limits;

    fn deref(&self) -> &Limits {
        &self.0
    }
}

impl SharedLimits {
    /// Limits as `settings` configure them; inside a Tokio runtime their housekeeping starts,
    /// judging expiry by `clock`.
    pub(crate) fn start(settings: &ServerSettings, clock: Arc<dyn Clock>) -> Self {
        let limits = Arc::new(Limits::new(settings));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&limits);
            runtime.spawn(async move {
                let mut interval = tokio::time::interval(FORGET_INTERVAL);
                loop {
                    interval.tick().await;
                    let Some(limits) = weak.upgrade() else {
                        return;
                    };
                    let now = clock.now();
                    // On the blocking pool: with a million networks a pass is long, and must
                    // not take a runtime worker from requests.
                    let _ = tokio::task::spawn_blocking(move || limits.housekeeping(now)).await;
                }
            });
        }
        SharedLimits(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ServerSettings {
        ServerSettings {
            widget_requests_per_minute: 1,
            widget_burst: 2,
            max_pending_per_network: 2,
            max_pending_per_site: 3,
            failed_keys_per_hour: 2,
            ..ServerSettings::default()
        }
    }

    #[test]
    fn rates_are_per_network() {
        let limits = Limits::new(&settings());
        let a: IpAddr = "2001:db8::1".parse().expect("ip");
        let same: IpAddr = "2001:db8::2".parse().expect("ip");
        let other: IpAddr = "192.0.2.1".parse().expect("ip");
        assert_eq!(limits.create(Some(a)), Ok(()));
        assert_eq!(limits.create(Some(same)), Ok(()));
        assert!(
            matches!(limits.create(Some(a)), Err(Limited::Rate(wait)) if wait > Duration::ZERO)
        );
        assert_eq!(limits.create(Some(other)), Ok(()));
        assert_eq!(
            limits.submit(Some(a)),
            Ok(()),
            "submissions have their own budget"
        );
        assert_eq!(limits.create(None), Ok(()));
        assert_eq!(limits.create(None), Ok(()));
        assert!(
            limits.create(None).is_err(),
            "unknown clients share one budget"
        );
    }

    #[test]
    fn outstanding_challenges_are_capped_per_network_and_site() {
        let limits = Limits::new(&settings());
        let t0 = time::macros::datetime!(2026-01-01 0:00 UTC);
        let minute = Duration::from_secs(60);
        let (a, b) = (
            Some("192.0.2.1".parse().expect("ip")),
            Some("192.0.2.2".parse().expect("ip")),
        );
        let (site, other_site) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert_eq!(limits.hand_out(a, site, t0, t0 + minute), Ok(()));
        assert_eq!(limits.hand_out(a, site, t0, t0 + minute), Ok(()));
        assert_eq!(
            limits.hand_out(a, other_site, t0, t0 + minute),
            Err(Limited::Outstanding),
            "per network"
        );
        assert_eq!(limits.outstanding(a, t0), 2);
        assert_eq!(limits.hand_out(b, site, t0, t0 + minute), Ok(()));
        assert_eq!(
            limits.hand_out(b, site, t0, t0 + minute),
            Err(Limited::Outstanding),
            "per site"
        );
        limits.settle(a, site);
        assert_eq!(limits.outstanding(a, t0), 1);
        assert_eq!(
            limits.hand_out(b, site, t0, t0 + minute),
            Ok(()),
            "room again"
        );
        assert_eq!(
            limits.outstanding(a, t0 + minute),
            0,
            "expired ones do not count"
        );
        assert_eq!(
            limits.hand_out(a, site, t0 + minute, t0 + 2 * minute),
            Ok(())
        );
    }

    #[test]
    fn forgetting_drops_the_expired_challenges_of_every_network_and_keeps_live_ones() {
        let limits = Limits::new(&ServerSettings {
            max_pending_per_site: 10_000,
            ..settings()
        });
        let t0 = time::macros::datetime!(2026-01-01 0:00 UTC);
        let minute = Duration::from_secs(60);
        let site = Uuid::from_u128(1);
        for i in 0..1_000u16 {
            let [high, low] = i.to_be_bytes();
            let ip = Some(IpAddr::from([10, 0, high, low]));
            assert_eq!(limits.hand_out(ip, site, t0, t0 + minute), Ok(()));
        }
        let live = Some(IpAddr::from([192, 0, 2, 9]));
        assert_eq!(limits.hand_out(live, site, t0, t0 + 3 * minute), Ok(()));
        limits.forget(t0 + 2 * minute, &mut || {});
        let networks: usize = limits
            .outstanding
            .by_network
            .iter()
            .map(|shard| shard.lock().len())
            .sum();
        assert_eq!(networks, 1, "only the live network is left");
        assert_eq!(limits.outstanding(live, t0 + 2 * minute), 1);
        assert_eq!(limits.outstanding.by_site.lock()[&site].len(), 1);
    }

    #[test]
    fn failed_guesses_lock_a_network_out() {
        let limits = Limits::new(&settings());
        let a = Some("192.0.2.1".parse().expect("ip"));
        let b = Some("192.0.2.2".parse().expect("ip"));
        assert_eq!(limits.guessing(a), Ok(()));
        limits.failed_guess(a);
        assert_eq!(limits.guessing(a), Ok(()));
        limits.failed_guess(a);
        assert!(
            matches!(limits.guessing(a), Err(Limited::Guessing(wait)) if wait > Duration::from_secs(3000))
        );
        assert_eq!(limits.guessing(b), Ok(()), "per network");
    }
}
