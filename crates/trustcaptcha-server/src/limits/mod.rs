//! Limits per client network (an IPv4 address, an IPv6 /64) and per block (an IPv4 /24, an
//! IPv6 /48), so that one network, or the many networks one holder of a block has, cannot take
//! what every other visitor needs:
//!
//! * request rates on the widget's two endpoints (a token bucket per network and one per block,
//!   `governor`);
//! * challenges pending (handed out, neither submitted nor expired) per network and per
//!   block;
//! * the shared pools, a site's `max_pending_per_site` and the store's `max_verifications`: the
//!   first half of a pool is first come, first served; the second half only goes to blocks that
//!   hold less than an equal share of the first half (see [`fair`]). So a few blocks cannot fill
//!   a pool however fast they ask: with `k` blocks flooding, each is held to `half / k`, and a new
//!   visitor's block, holding none, always gets a place. What a block holds, and how many blocks
//!   hold any, are counted over every site (one table, O(1) to read): a block busy on one site
//!   has a smaller share of another's pool, never a larger one;
//! * failed key guesses (API keys on the results endpoint, bypass keys on create): past the
//!   hourly budget the network (or block) is locked out until the clock hour is over, and while
//!   locked out even a correct key is refused, so guessing learns nothing.
//!
//! A block's budget is `block_budget_multiple` times a network's. A client whose address is
//! unknown (see [`crate::client_address`]) counts under one shared network: unknown clients
//! cannot dodge the limits, they share them.
//!
//! Every request's work is O(1) however many networks are tracked: the tables are sharded, the
//! guess record is a [`table::BoundedTable`] (at most [`MAX_TRACKED_NETWORKS`] entries, the
//! oldest forgotten first), and forgetting expired entries is housekeeping on the blocking pool.
//! Pending challenges are bounded by the store's capacity.

mod table;

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher as _;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use ipnet::IpNet;
use parking_lot::{Mutex, MutexGuard};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::ServerSettings;
use crate::networks::{block, network};
use table::BoundedTable;

/// Networks and blocks whose failed guesses are remembered at most.
pub(crate) const MAX_TRACKED_NETWORKS: usize = 100_000;

/// The window in which failed guesses are counted: the clock hour.
const GUESS_WINDOW: i64 = 3600;

/// Why a request was limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limited {
    /// Too many requests from this network; try again after this long.
    Rate(Duration),
    /// Too many challenges pending for this network, its block, or its share of a pool.
    Pending,
    /// Too many failed key guesses from this network; locked out for this long.
    Guessing(Duration),
}

/// The two keys a client is counted under.
#[derive(Debug, Clone, Copy)]
struct Keys {
    network: IpNet,
    block: IpNet,
}

/// The keys of `ip`; unknown clients share one network and block.
fn keys_of(ip: Option<IpAddr>) -> Keys {
    let ip = ip.unwrap_or(crate::networks::UNKNOWN_CLIENT);
    Keys {
        network: network(ip),
        block: block(ip),
    }
}

/// Whether a block holding `held` may take one more place of a pool that has `used` of `cap`
/// taken while `active` blocks hold any: the first half of the pool is first come, first
/// served; of the second half, only a block holding less than an equal share of the first half
/// gets a place.
#[must_use]
pub(crate) fn fair(held: usize, used: usize, cap: usize, active: usize) -> bool {
    // Rounded up, so that a pool of one place (an hourly quota of 1) is first come too.
    let half = cap.div_ceil(2);
    used < cap && (used < half || held.saturating_mul(active.max(1)) < half)
}

/// A rate per network and a higher one per block.
struct Rate {
    networks: DefaultKeyedRateLimiter<IpNet>,
    blocks: DefaultKeyedRateLimiter<IpNet>,
}

impl Rate {
    fn new(per_minute: u32, burst: u32, multiple: u32) -> Self {
        let quota = |per_minute: u32, burst: u32| {
            let per_minute = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
            let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
            Quota::per_minute(per_minute).allow_burst(burst)
        };
        Rate {
            networks: DefaultKeyedRateLimiter::keyed(quota(per_minute, burst)),
            blocks: DefaultKeyedRateLimiter::keyed(quota(
                per_minute.saturating_mul(multiple),
                burst.saturating_mul(multiple),
            )),
        }
    }

    fn check(&self, keys: Keys) -> Result<(), Limited> {
        let wait = |not_until: governor::NotUntil<_>| {
            Limited::Rate(not_until.wait_time_from(DefaultClock::default().now()))
        };
        self.networks.check_key(&keys.network).map_err(wait)?;
        self.blocks.check_key(&keys.block).map_err(wait)
    }

    fn forget(&self) {
        self.networks.retain_recent();
        self.blocks.retain_recent();
    }
}

/// The limits and what they count.
pub(crate) struct Limits {
    creates: Rate,
    submits: Rate,
    pending: Pending,
    guesses: BoundedTable<Guesses>,
    max_per_network: usize,
    max_per_block: usize,
    max_per_site: usize,
    max_in_store: usize,
    guesses_per_network: u32,
    guesses_per_block: u32,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("max_per_network", &self.max_per_network)
            .field("max_per_block", &self.max_per_block)
            .field("max_per_site", &self.max_per_site)
            .finish_non_exhaustive()
    }
}

/// Expiry times of the pending challenges (Unix milliseconds, half the size of a timestamp:
/// one per pending verification in each map), oldest first. Networks and blocks are sharded, so
/// that forgetting expired ones (a million networks, with a botnet) locks a sliver at a time;
/// the pools (sites and the whole store) share one lock. Locks are always taken in the order
/// network shard, block shard, pools.
#[derive(Debug)]
struct Pending {
    by_network: Shards,
    by_block: Shards,
    /// Blocks holding at least one pending challenge.
    active_blocks: AtomicUsize,
    pools: Mutex<Pools>,
}

#[derive(Debug, Default)]
struct Pools {
    by_site: HashMap<Uuid, VecDeque<i64>>,
    /// Every site's, for the store's share.
    all: VecDeque<i64>,
}

/// Shards of the pending challenges per network or block: a million networks are some 4 000
/// per shard.
const SHARDS: usize = 256;

#[derive(Debug)]
struct Shards {
    shards: [Mutex<HashMap<IpNet, VecDeque<i64>>>; SHARDS],
    hasher: std::hash::RandomState,
}

impl Shards {
    fn new() -> Self {
        Shards {
            shards: std::array::from_fn(|_| Mutex::default()),
            hasher: std::hash::RandomState::new(),
        }
    }

    fn lock(&self, key: &IpNet) -> MutexGuard<'_, HashMap<IpNet, VecDeque<i64>>> {
        let index = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        self.shards[index].lock()
    }
}

/// The pause after each shard while forgetting: freeing a million networks' records at once
/// would take a core from requests for a tenth of a second (`scale-bench`).
const PAUSE: Duration = Duration::from_millis(1);

/// Failed guesses of a network or block within one clock hour.
#[derive(Debug, Clone, Copy)]
struct Guesses {
    hour: i64,
    failed: u32,
}

/// Removes the oldest entry under `key`; returns whether the key went with it.
fn pop_one<K: std::hash::Hash + Eq>(map: &mut HashMap<K, VecDeque<i64>>, key: &K) -> bool {
    let emptied = map.get_mut(key).is_some_and(|times| {
        times.pop_front();
        times.is_empty()
    });
    if emptied {
        map.remove(key);
    }
    emptied
}

/// Prunes every entry of `map`, and forgets the keys left without any; returns how many went.
fn prune_all<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, VecDeque<i64>>,
    now: OffsetDateTime,
) -> usize {
    crate::store::retain_shrinking(map, |_, times| {
        prune(times, now);
        !times.is_empty()
    })
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
        let multiple = settings.block_budget_multiple.max(1);
        let rate = || {
            Rate::new(
                settings.widget_requests_per_minute,
                settings.widget_burst,
                multiple,
            )
        };
        let multiple = usize::try_from(multiple).unwrap_or(usize::MAX);
        Limits {
            creates: rate(),
            submits: rate(),
            pending: Pending {
                by_network: Shards::new(),
                by_block: Shards::new(),
                active_blocks: AtomicUsize::new(0),
                pools: Mutex::default(),
            },
            guesses: BoundedTable::new(MAX_TRACKED_NETWORKS),
            max_per_network: settings.max_pending_per_network,
            max_per_block: settings.max_pending_per_network.saturating_mul(multiple),
            max_per_site: settings.max_pending_per_site,
            max_in_store: settings.max_verifications,
            guesses_per_network: settings.failed_keys_per_hour,
            guesses_per_block: settings
                .failed_keys_per_hour
                .saturating_mul(settings.block_budget_multiple.max(1)),
        }
    }

    /// Takes one create request of `ip`'s network and block from their budgets.
    pub(crate) fn create(&self, ip: Option<IpAddr>) -> Result<(), Limited> {
        self.creates.check(keys_of(ip))
    }

    /// Takes one submission of `ip`'s network and block from their budgets.
    pub(crate) fn submit(&self, ip: Option<IpAddr>) -> Result<(), Limited> {
        self.submits.check(keys_of(ip))
    }

    /// How many blocks hold pending challenges: how many share the pools.
    pub(crate) fn active_blocks(&self) -> usize {
        self.pending.active_blocks.load(Ordering::Relaxed)
    }

    /// How many challenges `ip`'s network has pending at `now`.
    pub(crate) fn pending(&self, ip: Option<IpAddr>, now: OffsetDateTime) -> usize {
        let network = keys_of(ip).network;
        self.pending
            .by_network
            .lock(&network)
            .get_mut(&network)
            .map_or(0, |times| {
                prune(times, now);
                times.len()
            })
    }

    /// Records a challenge handed out to `ip` for `site`, expiring at `expires_at`, unless the
    /// network or its block has as many pending as allowed, or the block has its share of
    /// the site's pool or the store's.
    pub(crate) fn hand_out(
        &self,
        ip: Option<IpAddr>,
        site: Uuid,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<(), Limited> {
        let keys = keys_of(ip);
        let pending = &self.pending;
        let mut by_network = pending.by_network.lock(&keys.network);
        let network = by_network.entry(keys.network).or_default();
        prune(network, now);
        let mut by_block = pending.by_block.lock(&keys.block);
        let block = by_block.get_mut(&keys.block);
        let held = block.map_or(0, |block| {
            prune(block, now);
            block.len()
        });
        let mut pools = pending.pools.lock();
        let Pools { by_site, all } = &mut *pools;
        let site = by_site.entry(site).or_default();
        prune(site, now);
        prune(all, now);
        // A block emptied by the prune above still counts as active until housekeeping; the
        // share it sees is then a little smaller, never larger.
        let active = pending.active_blocks.load(Ordering::Relaxed);
        if network.len() >= self.max_per_network
            || held >= self.max_per_block
            || !fair(held, site.len(), self.max_per_site, active)
            || !fair(held, all.len(), self.max_in_store, active)
        {
            if network.is_empty() {
                by_network.remove(&keys.network);
            }
            return Err(Limited::Pending);
        }
        let expires_at = crate::store::millis(expires_at);
        network.push_back(expires_at);
        site.push_back(expires_at);
        all.push_back(expires_at);
        let block = by_block.entry(keys.block).or_insert_with(|| {
            pending.active_blocks.fetch_add(1, Ordering::Relaxed);
            VecDeque::new()
        });
        block.push_back(expires_at);
        Ok(())
    }

    /// Forgets one pending challenge of `ip` for `site` (it was submitted, or not stored).
    pub(crate) fn settle(&self, ip: Option<IpAddr>, site: Uuid) {
        let keys = keys_of(ip);
        let pending = &self.pending;
        pop_one(&mut pending.by_network.lock(&keys.network), &keys.network);
        if pop_one(&mut pending.by_block.lock(&keys.block), &keys.block) {
            pending.active_blocks.fetch_sub(1, Ordering::Relaxed);
        }
        let mut pools = pending.pools.lock();
        pop_one(&mut pools.by_site, &site);
        pools.all.pop_front();
    }

    /// Whether `ip`'s network or block is locked out at `now` for guessing keys, and for how
    /// long.
    pub(crate) fn guessing(&self, ip: Option<IpAddr>, now: OffsetDateTime) -> Result<(), Limited> {
        let keys = keys_of(ip);
        let hour = now.unix_timestamp().div_euclid(GUESS_WINDOW);
        let locked = |key: &IpNet, budget: u32| {
            self.guesses.read(key, |record| {
                record.is_some_and(|record| record.hour == hour && record.failed >= budget)
            })
        };
        if locked(&keys.network, self.guesses_per_network)
            || locked(&keys.block, self.guesses_per_block)
        {
            let left = (hour + 1) * GUESS_WINDOW - now.unix_timestamp();
            let left = u64::try_from(left).unwrap_or(1).max(1);
            return Err(Limited::Guessing(Duration::from_secs(left)));
        }
        Ok(())
    }

    /// Counts a failed key guess of `ip`'s network and block at `now`; the network or block
    /// that this guess locked out, if it did.
    pub(crate) fn failed_guess(&self, ip: Option<IpAddr>, now: OffsetDateTime) -> Option<IpNet> {
        let keys = keys_of(ip);
        let hour = now.unix_timestamp().div_euclid(GUESS_WINDOW);
        let mut locked = None;
        for (key, budget) in [
            (keys.network, self.guesses_per_network),
            (keys.block, self.guesses_per_block),
        ] {
            self.guesses.update(
                key,
                || Guesses { hour, failed: 0 },
                |record| {
                    if record.hour != hour {
                        *record = Guesses { hour, failed: 0 };
                    }
                    record.failed = record.failed.saturating_add(1);
                    if record.failed == budget {
                        locked = locked.or(Some(key));
                    }
                },
            );
        }
        locked
    }

    /// Forgets what no longer limits anyone: rate budgets that are full again, expired
    /// pending challenges, guesses of past hours. One shard locked at a time,
    /// `between_shards` called after each.
    fn forget(&self, now: OffsetDateTime, between_shards: &mut dyn FnMut()) {
        self.creates.forget();
        self.submits.forget();
        let pending = &self.pending;
        for shard in &pending.by_network.shards {
            prune_all(&mut shard.lock(), now);
            between_shards();
        }
        for shard in &pending.by_block.shards {
            let gone = prune_all(&mut shard.lock(), now);
            pending.active_blocks.fetch_sub(gone, Ordering::Relaxed);
            between_shards();
        }
        let mut pools = pending.pools.lock();
        prune_all(&mut pools.by_site, now);
        prune(&mut pools.all, now);
        drop(pools);
        let hour = now.unix_timestamp().div_euclid(GUESS_WINDOW);
        self.guesses.retain(|record| record.hour == hour);
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
    use std::net::Ipv4Addr;

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
    fn outstanding_challenges_are_capped_per_network_and_block() {
        let limits = Limits::new(&ServerSettings {
            block_budget_multiple: 2,
            max_pending_per_site: 1_000,
            ..settings()
        });
        let t0 = time::macros::datetime!(2026-01-01 0:00 UTC);
        let minute = Duration::from_secs(60);
        let ip = |text: &str| Some(text.parse::<IpAddr>().expect("ip"));
        let site = Uuid::from_u128(1);
        let hand_out = |from| limits.hand_out(from, site, t0, t0 + minute);
        assert_eq!(hand_out(ip("192.0.2.1")), Ok(()));
        assert_eq!(hand_out(ip("192.0.2.1")), Ok(()));
        assert_eq!(
            hand_out(ip("192.0.2.1")),
            Err(Limited::Pending),
            "per network"
        );
        assert_eq!(hand_out(ip("192.0.2.2")), Ok(()));
        assert_eq!(hand_out(ip("192.0.2.2")), Ok(()));
        assert_eq!(
            hand_out(ip("192.0.2.3")),
            Err(Limited::Pending),
            "the /24 has its four"
        );
        assert_eq!(hand_out(ip("198.51.100.1")), Ok(()), "another block");
        for i in 1..=2 {
            assert_eq!(hand_out(ip(&format!("2001:db8:1:{i}::1"))), Ok(()));
            assert_eq!(hand_out(ip(&format!("2001:db8:1:{i}::2"))), Ok(()));
        }
        assert_eq!(
            hand_out(ip("2001:db8:1:3::1")),
            Err(Limited::Pending),
            "the /48 has its four"
        );
        limits.settle(ip("192.0.2.1"), site);
        assert_eq!(limits.pending(ip("192.0.2.1"), t0), 1);
        assert_eq!(hand_out(ip("192.0.2.3")), Ok(()), "room again in the block");
        assert_eq!(
            limits.pending(ip("192.0.2.1"), t0 + minute),
            0,
            "expired ones do not count"
        );
    }

    #[test]
    fn a_pool_of_one_or_two_places_is_first_come() {
        assert!(fair(0, 0, 1, 5), "an hourly quota of 1");
        assert!(!fair(0, 1, 1, 5), "and spent");
        assert!(fair(3, 0, 2, 1));
        assert!(
            fair(0, 1, 2, 1) && !fair(1, 1, 2, 1),
            "the second place goes by share"
        );
        assert!(!fair(0, 0, 0, 1), "no pool, no place");
    }

    #[test]
    fn a_few_blocks_cannot_fill_a_sites_pool_or_the_stores() {
        let t0 = time::macros::datetime!(2026-01-01 0:00 UTC);
        let minute = Duration::from_secs(60);
        let flood = |limits: &Limits, blocks: u8, site: Uuid| {
            let mut given = 0;
            for round in 0..200u8 {
                for block in 0..blocks {
                    let ip = IpAddr::from([10, block, 0, round]);
                    given += usize::from(limits.hand_out(Some(ip), site, t0, t0 + minute).is_ok());
                }
            }
            given
        };
        let generous = ServerSettings {
            max_pending_per_network: 1_000,
            max_verifications: 100_000,
            max_pending_per_site: 1_000,
            ..ServerSettings::default()
        };
        let (site, other) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let visitor = Some(IpAddr::from([203, 0, 113, 7]));

        // A site's pool of 1 000: four blocks flooding get its first half and no more.
        let limits = Limits::new(&generous);
        let given = flood(&limits, 4, site);
        assert!((500..=504).contains(&given), "{given}");
        assert_eq!(limits.hand_out(visitor, site, t0, t0 + minute), Ok(()));

        // The store's pool of 1 000 (every site's challenges): the same, across sites.
        let limits = Limits::new(&ServerSettings {
            max_verifications: 1_000,
            ..generous.clone()
        });
        let given = flood(&limits, 4, site) + flood(&limits, 3, other);
        assert!((500..=507).contains(&given), "{given}");
        assert_eq!(limits.hand_out(visitor, other, t0, t0 + minute), Ok(()));

        // Many blocks each holding little still fill it: the pool is for everyone.
        let limits = Limits::new(&generous);
        let mut given = 0;
        for block in 0..=255u8 {
            for host in 0..8u8 {
                let ip = IpAddr::from([10, block, 0, host]);
                given += usize::from(limits.hand_out(Some(ip), site, t0, t0 + minute).is_ok());
            }
        }
        assert_eq!(
            given, 1_000,
            "every place taken by 256 blocks of a few each"
        );
    }

    #[test]
    fn forgetting_drops_the_expired_challenges_of_every_network_and_keeps_live_ones() {
        let limits = Limits::new(&ServerSettings {
            max_pending_per_site: 10_000,
            block_budget_multiple: 65_536,
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
        let count = |shards: &Shards| -> usize {
            shards.shards.iter().map(|shard| shard.lock().len()).sum()
        };
        assert_eq!(
            count(&limits.pending.by_network),
            1,
            "only the live network is left"
        );
        assert_eq!(count(&limits.pending.by_block), 1);
        assert_eq!(limits.pending.active_blocks.load(Ordering::Relaxed), 1);
        assert_eq!(limits.pending(live, t0 + 2 * minute), 1);
        assert_eq!(limits.pending.pools.lock().by_site[&site].len(), 1);
    }

    #[test]
    fn failed_guesses_lock_a_network_and_then_its_block_out_for_the_hour() {
        let limits = Limits::new(&ServerSettings {
            block_budget_multiple: 3,
            ..settings()
        });
        let t0 = time::macros::datetime!(2026-01-01 0:10 UTC);
        let ip = |text: &str| Some(text.parse::<IpAddr>().expect("ip"));
        let a = ip("192.0.2.1");
        assert_eq!(limits.guessing(a, t0), Ok(()));
        assert_eq!(limits.failed_guess(a, t0), None);
        assert_eq!(limits.guessing(a, t0), Ok(()));
        assert_eq!(
            limits.failed_guess(a, t0),
            Some("192.0.2.1/32".parse().expect("net")),
            "this guess locked the network out"
        );
        assert_eq!(
            limits.guessing(a, t0),
            Err(Limited::Guessing(Duration::from_secs(50 * 60))),
            "until the hour is over"
        );
        assert_eq!(limits.guessing(ip("192.0.2.2"), t0), Ok(()), "per network");
        // Six guesses in the /24 (two networks' budgets times three) lock the whole block.
        for host in 2..=3 {
            limits.failed_guess(ip(&format!("192.0.2.{host}")), t0);
            limits.failed_guess(ip(&format!("192.0.2.{host}")), t0);
        }
        assert!(limits.guessing(ip("192.0.2.200"), t0).is_err(), "the block");
        assert_eq!(
            limits.guessing(ip("192.0.3.1"), t0),
            Ok(()),
            "another block"
        );
        let next_hour = t0 + Duration::from_secs(50 * 60);
        assert_eq!(limits.guessing(a, next_hour), Ok(()));
        limits.forget(next_hour, &mut || {});
        assert_eq!(limits.guesses.len(), 0, "past hours are forgotten");
    }

    #[test]
    fn a_million_guessing_networks_keep_the_record_bounded() {
        let limits = Limits::new(&settings());
        let t0 = time::macros::datetime!(2026-01-01 0:00 UTC);
        for i in 0..1_000_000u32 {
            limits.failed_guess(Some(IpAddr::from(Ipv4Addr::from(0x0a00_0000 + i))), t0);
        }
        assert!(limits.guesses.len() <= MAX_TRACKED_NETWORKS + 64);
        // The latest guesser is remembered: its record was not what made room.
        let last = Some(IpAddr::from(Ipv4Addr::from(0x0a00_0000 + 999_999)));
        limits.failed_guess(last, t0);
        assert!(limits.guessing(last, t0).is_err());
    }
}
