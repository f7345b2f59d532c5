//! [`BoundedTable`]: a map from networks to small records that never holds more than its bound,
//! with every operation O(1) when full: sharded (so one lock is a sliver of the table), and
//! first-in first-out when a shard is full (the record inserted longest ago makes room, found in
//! a queue rather than by scanning).

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher as _;

use ipnet::IpNet;
use parking_lot::Mutex;

/// Shards of a table: with a million networks in flight, each lock covers a 64th of them.
const SHARDS: usize = 64;

/// A bounded, sharded map of networks to records.
#[derive(Debug)]
pub(crate) struct BoundedTable<V> {
    shards: [Mutex<Shard<V>>; SHARDS],
    per_shard: usize,
    hasher: std::hash::RandomState,
}

#[derive(Debug)]
struct Shard<V> {
    records: HashMap<IpNet, V>,
    /// Keys in insertion order. A key forgotten by [`BoundedTable::retain`] leaves the queue
    /// at the same time, so the queue and the map always hold the same keys.
    order: VecDeque<IpNet>,
}

impl<V> Default for Shard<V> {
    fn default() -> Self {
        Shard {
            records: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<V> BoundedTable<V> {
    /// A table of at most `bound` records (rounded up to a multiple of the shard count).
    pub(crate) fn new(bound: usize) -> Self {
        BoundedTable {
            shards: std::array::from_fn(|_| Mutex::default()),
            per_shard: bound.div_ceil(SHARDS).max(1),
            hasher: std::hash::RandomState::new(),
        }
    }

    fn shard(&self, key: &IpNet) -> &Mutex<Shard<V>> {
        let index = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        &self.shards[index]
    }

    /// Reads `key`'s record.
    pub(crate) fn read<R>(&self, key: &IpNet, read: impl FnOnce(Option<&V>) -> R) -> R {
        read(self.shard(key).lock().records.get(key))
    }

    /// Changes `key`'s record, inserting `new()` first when there is none; when the shard is
    /// full, the record inserted longest ago is forgotten to make room.
    pub(crate) fn update<R>(
        &self,
        key: IpNet,
        new: impl FnOnce() -> V,
        change: impl FnOnce(&mut V) -> R,
    ) -> R {
        let mut shard = self.shard(&key).lock();
        let Shard { records, order } = &mut *shard;
        if !records.contains_key(&key) {
            while records.len() >= self.per_shard {
                let Some(oldest) = order.pop_front() else {
                    break;
                };
                records.remove(&oldest);
            }
            order.push_back(key);
        }
        change(records.entry(key).or_insert_with(new))
    }

    /// Keeps the records `keep` answers true for, one shard locked at a time. O(n): for
    /// housekeeping on the blocking pool, never for a request.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&V) -> bool) {
        for shard in &self.shards {
            let mut shard = shard.lock();
            let Shard { records, order } = &mut *shard;
            crate::store::retain_shrinking(records, |_, record| keep(record));
            order.retain(|key| records.contains_key(key));
        }
    }

    /// How many records the table holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().records.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(i: u32) -> IpNet {
        IpNet::from(std::net::IpAddr::from(std::net::Ipv4Addr::from(i)))
    }

    #[test]
    fn holds_at_most_its_bound_and_forgets_the_oldest_first() {
        let table = BoundedTable::new(SHARDS * 4);
        for i in 0..10_000 {
            table.update(net(i), || i, |_| ());
        }
        assert_eq!(table.len(), SHARDS * 4);
        // The survivors are the latest of each shard: nothing inserted early is left.
        let survivors = (0..10_000).filter(|i| table.read(&net(*i), |r| r.is_some()));
        assert!(survivors.clone().all(|i| i >= 10_000 - SHARDS as u32 * 40));
        // Changing an existing record forgets nothing.
        table.update(net(9_999), || 0, |record| *record += 1);
        assert_eq!(table.read(&net(9_999), |r| r.copied()), Some(10_000));
        assert_eq!(table.len(), SHARDS * 4);
    }

    #[test]
    fn retain_keeps_the_queue_and_the_map_together() {
        let table = BoundedTable::new(SHARDS * 2);
        for i in 0..1_000 {
            table.update(net(i), || i, |_| ());
        }
        table.retain(|record| record % 2 == 0);
        let left = table.len();
        for shard in &table.shards {
            let shard = shard.lock();
            assert_eq!(shard.order.len(), shard.records.len());
        }
        for i in 1_000..1_100 {
            table.update(net(i), || i, |_| ());
        }
        assert!(table.len() <= SHARDS * 2 && table.len() >= left);
    }
}
