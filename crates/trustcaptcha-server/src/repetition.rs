//! Repetition across sessions: from how many client networks one device set-up came to a site,
//! against how many scored create requests the site had, per fixed window (the `repeated`
//! signal; the rule is [`Repetition`]).
//!
//! Counted by each instance for the requests it serves, in bounded memory: the set-ups are
//! chosen by the client, so a store counter per set-up (or per set-up and network) would let one
//! network grow the store with every request. Here a site keeps at most
//! [`MAX_DEVICES_PER_SITE`] set-ups per window (later ones are not followed until the window
//! turns), and each set-up at most the rule's `networks` networks (all it needs to know is
//! whether there are that many). Behind a load balancer that spreads one farm over several
//! instances, each sees its share of the farm's networks and of the site's traffic: the share
//! is the same, the networks threshold is reached later.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, RandomState};
use std::net::IpAddr;

use parking_lot::Mutex;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::adaptive::Repetition;

/// The most device set-ups one site follows per window: some 100 bytes each.
pub(crate) const MAX_DEVICES_PER_SITE: usize = 20_000;

/// What each site's current window holds.
#[derive(Debug, Default)]
pub(crate) struct Repetitions {
    sites: Mutex<HashMap<Uuid, Window>>,
    /// Hashes networks for the sets (a process's own keys: nothing here leaves it).
    hasher: RandomState,
}

#[derive(Debug)]
struct Window {
    /// The window's number since the Unix epoch.
    number: i64,
    /// Scored create requests in the window.
    created: u64,
    /// Per device set-up, the networks it came from (at most the rule's threshold).
    devices: HashMap<u64, Vec<u64>>,
}

impl Repetitions {
    /// Counts a scored create request of `site` from `ip` describing `device` at `now`, and
    /// says whether that set-up is now repeated by `rule`.
    pub(crate) fn note(
        &self,
        site: Uuid,
        rule: &Repetition,
        device: u64,
        ip: IpAddr,
        now: OffsetDateTime,
    ) -> bool {
        let length = i64::try_from(rule.window.as_secs().max(1)).unwrap_or(i64::MAX);
        let number = now.unix_timestamp().div_euclid(length);
        let network = self.hasher.hash_one(crate::networks::network(ip));
        let threshold = usize::try_from(rule.networks).unwrap_or(usize::MAX);
        let mut sites = self.sites.lock();
        let window = sites.entry(site).or_insert_with(|| Window::new(number));
        if window.number != number {
            *window = Window::new(number);
        }
        window.created += 1;
        let created = window.created;
        if !window.devices.contains_key(&device) && window.devices.len() >= MAX_DEVICES_PER_SITE {
            return false;
        }
        let networks = window.devices.entry(device).or_default();
        if networks.len() < threshold && !networks.contains(&network) {
            networks.push(network);
        }
        rule.repeated(networks.len() as u64, created)
    }
}

impl Window {
    fn new(number: i64) -> Self {
        Window {
            number,
            created: 0,
            devices: HashMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn a_set_up_from_many_networks_of_a_quiet_site_is_repeated_and_a_new_window_forgets() {
        let rule = Repetition {
            window: Duration::from_secs(3600),
            networks: 3,
            share: 0.5,
        };
        let counts = Repetitions::default();
        let site = Uuid::nil();
        let now = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(7200);
        let note = |device, address: &str, at| counts.note(site, &rule, device, ip(address), at);
        assert!(!note(1, "198.51.100.1", now));
        assert!(!note(1, "198.51.100.1", now), "one network, however often");
        assert!(!note(1, "2001:db8::1", now));
        assert!(!note(1, "2001:db8::2", now), "the same IPv6 /64");
        assert!(note(1, "198.51.100.3", now));
        // Others' set-ups dilute its share.
        for other in 2..10 {
            assert!(!note(other, &format!("203.0.113.{other}"), now));
        }
        assert!(!note(1, "198.51.100.4", now), "3 of 13: a common device");
        // The next window starts afresh.
        assert!(!note(1, "198.51.100.5", now + Duration::from_secs(3600)));
    }

    #[test]
    fn memory_stays_bounded_whatever_the_set_ups() {
        let rule = Repetition::default();
        let counts = Repetitions::default();
        let now = OffsetDateTime::UNIX_EPOCH;
        for device in 0..(MAX_DEVICES_PER_SITE as u64 + 500) {
            counts.note(Uuid::nil(), &rule, device, ip("198.51.100.1"), now);
        }
        let sites = counts.sites.lock();
        assert_eq!(sites[&Uuid::nil()].devices.len(), MAX_DEVICES_PER_SITE);
        drop(sites);
        // Each set-up keeps at most the threshold's networks.
        for network in 0..200u8 {
            counts.note(Uuid::nil(), &rule, 0, ip(&format!("10.0.0.{network}")), now);
        }
        let sites = counts.sites.lock();
        assert_eq!(sites[&Uuid::nil()].devices[&0].len(), 10);
    }
}
