//! Sets of IP networks: a site's allow and block lists, the networks of a proof-of-work rule,
//! and the operator's reputation lists (files in the plain formats public block lists and Tor
//! exit lists are published in). A set is kept as sorted, merged address ranges, so a lookup is
//! a binary search whatever the number of networks.
//!
//! Limits count a client under its **network** (an IPv4 address, an IPv6 /64) and its
//! **block** (an IPv4 /24, an IPv6 /48): `network` and `block`.

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

/// A set of IP networks. IPv4-mapped IPv6 addresses are looked up as the IPv4 address they
/// carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl NetworkSet {
    /// The set of `networks`.
    #[must_use]
    pub fn new(networks: impl IntoIterator<Item = IpNet>) -> Self {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for network in networks {
            match network {
                IpNet::V4(net) => v4.push((u32::from(net.network()), u32::from(net.broadcast()))),
                IpNet::V6(net) => v6.push((u128::from(net.network()), u128::from(net.broadcast()))),
            }
        }
        Self::from_ranges(v4, v6)
    }

    fn from_ranges(v4: Vec<(u32, u32)>, v6: Vec<(u128, u128)>) -> Self {
        NetworkSet {
            v4: merged(v4, |end| end.saturating_add(1)),
            v6: merged(v6, |end| end.saturating_add(1)),
        }
    }

    /// The networks of all of `sets`.
    #[must_use]
    pub fn union(sets: impl IntoIterator<Item = NetworkSet>) -> Self {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for set in sets {
            v4.extend(set.v4);
            v6.extend(set.v6);
        }
        Self::from_ranges(v4, v6)
    }

    /// Whether `ip` lies in one of the networks.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match canonical(ip) {
            IpAddr::V4(ip) => covered(&self.v4, u32::from(ip)),
            IpAddr::V6(ip) => covered(&self.v6, u128::from(ip)),
        }
    }

    /// Whether the set holds every address of a family (`0.0.0.0/0`, `::/0`, or networks that
    /// add up to one of them).
    #[must_use]
    pub fn contains_everything(&self) -> bool {
        self.v4.first() == Some(&(0, u32::MAX)) || self.v6.first() == Some(&(0, u128::MAX))
    }

    /// Whether the set holds no network.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Reads a list file: one address or network (CIDR) per line; text after `#` or `;` is a
    /// comment; a line's first word counts, so `1.2.3.0/24 ; SBL123` (Spamhaus DROP) works; Tor's
    /// exit list format (`ExitAddress 1.2.3.4 2026-…`, among `ExitNode`, `Published` and
    /// `LastStatus` lines) is understood too.
    ///
    /// # Errors
    ///
    /// When the file cannot be read, or a line is neither empty, a comment, a Tor keyword line
    /// nor an address or network (named by its line number).
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|error| error.to_string())?;
        Self::parse(&text)
    }

    /// [`NetworkSet::read`] on text.
    ///
    /// # Errors
    ///
    /// When a line is not understood (named by its line number).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut networks = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            let entry = match words.next() {
                None | Some("ExitNode" | "Published" | "LastStatus") => continue,
                Some("ExitAddress") => words.next().unwrap_or_default(),
                Some(entry) => entry,
            };
            let network = parse_network(entry).ok_or_else(|| {
                format!(
                    "line {}: `{entry}` is not an address or network",
                    number + 1
                )
            })?;
            networks.push(network);
        }
        Ok(Self::new(networks))
    }
}

/// A list of addresses and networks (as [`parse_network`] reads them), e.g. a site's
/// `block_ips`; an entry that is neither is named by its place in the list.
impl<'de> Deserialize<'de> for NetworkSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        list(deserializer).map(NetworkSet::new)
    }
}

/// Deserializes a list of addresses and networks, e.g. `trusted_proxies`.
pub(crate) fn list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    /// One entry, so that an error is named by its index.
    struct Entry(IpNet);
    impl<'de> Deserialize<'de> for Entry {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let entry = String::deserialize(deserializer)?;
            parse_network(entry.trim()).map(Entry).ok_or_else(|| {
                serde::de::Error::custom(format!("`{entry}` is not an IP address or CIDR block"))
            })
        }
    }
    Ok(Vec::<Entry>::deserialize(deserializer)?
        .into_iter()
        .map(|entry| entry.0)
        .collect())
}

/// An address (`192.0.2.7`, `2001:db8::1`) or a network in CIDR form.
#[must_use]
pub fn parse_network(entry: &str) -> Option<IpNet> {
    entry
        .parse::<IpNet>()
        .ok()
        .map(|network| network.trunc())
        .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, as dual-stack sockets report IPv4 peers) are
/// treated as the IPv4 address they carry.
#[must_use]
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Sorts ranges and merges those that overlap or touch (`next` is the address after one).
fn merged<T: Ord + Copy>(mut ranges: Vec<(T, T)>, next: impl Fn(T) -> T) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match out.last_mut() {
            Some(last) if start <= next(last.1) => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// Whether `value` lies in one of the sorted, disjoint `ranges`.
fn covered<T: Ord + Copy>(ranges: &[(T, T)], value: T) -> bool {
    let after = ranges.partition_point(|(start, _)| *start <= value);
    after > 0 && value <= ranges[after - 1].1
}

/// Where clients whose address is unknown are counted, together: they share one network and
/// one block, so that not knowing an address never buys a budget of one's own.
pub(crate) const UNKNOWN_CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

/// The network a client is counted under: its IPv4 address, or its IPv6 /64 (what one
/// household or one server is given).
pub(crate) fn network(ip: IpAddr) -> IpNet {
    truncated(ip, 32, 64)
}

/// The block a client's network belongs to: its IPv4 /24, or its IPv6 /48 (what one site or
/// one customer of a provider is given, 65 536 /64s), counted with a budget of its own so that
/// whoever holds a block cannot multiply a network's budget by the networks in it.
pub(crate) fn block(ip: IpAddr) -> IpNet {
    truncated(ip, 24, 48)
}

fn truncated(ip: IpAddr, v4: u8, v6: u8) -> IpNet {
    let ip = canonical(ip);
    let prefix = match ip {
        IpAddr::V4(_) => v4,
        IpAddr::V6(_) => v6,
    };
    IpNet::new(ip, prefix)
        .map(|net| net.trunc())
        .unwrap_or_else(|_| IpNet::from(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_blocks_group_addresses_as_they_are_handed_out() {
        let ip = |text: &str| text.parse::<IpAddr>().expect("ip");
        assert_eq!(
            network(ip("2001:db8:1:2::1")),
            network(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            network(ip("2001:db8:1:2::1")),
            network(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            block(ip("2001:db8:1:2::1")),
            block(ip("2001:db8:1:ffff::1"))
        );
        assert_ne!(block(ip("2001:db8:1::1")), block(ip("2001:db8:2::1")));
        assert_eq!(block(ip("192.0.2.1")), block(ip("192.0.2.254")));
        assert_ne!(block(ip("192.0.2.1")), block(ip("192.0.3.1")));
        assert_eq!(block(ip("::ffff:192.0.2.1")), block(ip("192.0.2.9")));
        assert_eq!(block(ip("192.0.2.1")).to_string(), "192.0.2.0/24");
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn lookups_follow_the_networks() {
        let set = NetworkSet::parse(
            "# a comment\n192.0.2.0/24\n\n198.51.100.7 ; one host\n2001:db8::/32\n10.0.0.0/9\n10.128.0.0/9\n",
        )
        .expect("parse");
        for inside in [
            "192.0.2.0",
            "192.0.2.255",
            "198.51.100.7",
            "2001:db8:ffff::1",
            "10.200.1.1",
        ] {
            assert!(set.contains(ip(inside)), "{inside}");
        }
        for outside in [
            "192.0.3.0",
            "198.51.100.8",
            "2001:db9::1",
            "11.0.0.0",
            "::1",
        ] {
            assert!(!set.contains(ip(outside)), "{outside}");
        }
        assert!(
            set.contains(ip("::ffff:192.0.2.9")),
            "mapped addresses count as IPv4"
        );
        assert_eq!(set.v4.len(), 3, "adjacent halves are merged");
    }

    #[test]
    fn tor_exit_lists_and_drop_lists_are_read() {
        let tor = "ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E\nPublished 2026-11-25 23:52:16\nLastStatus 2026-11-26 01:00:00\nExitAddress 203.0.113.9 2026-11-26 01:09:06\n";
        assert!(
            NetworkSet::parse(tor)
                .expect("tor")
                .contains(ip("203.0.113.9"))
        );
        let drop = "; Spamhaus DROP List\n203.0.113.0/24 ; SBL000001\n";
        assert!(
            NetworkSet::parse(drop)
                .expect("drop")
                .contains(ip("203.0.113.200"))
        );
    }

    #[test]
    fn a_line_that_is_not_a_network_is_named() {
        let error = NetworkSet::parse("192.0.2.1\nnot-an-address\n").expect_err("bad line");
        assert!(error.contains("line 2"), "{error}");
        assert!(NetworkSet::default().is_empty());
    }

    proptest::proptest! {
        #[test]
        fn a_set_answers_as_a_scan_of_its_networks(
            networks in proptest::collection::vec((proptest::num::u32::ANY, 0u8..=32), 0..40),
            probes in proptest::collection::vec(proptest::num::u32::ANY, 0..40),
        ) {
            let networks: Vec<IpNet> = networks
                .into_iter()
                .map(|(address, prefix)| {
                    IpNet::new(IpAddr::from(std::net::Ipv4Addr::from(address)), prefix)
                        .expect("prefix")
                        .trunc()
                })
                .collect();
            let set = NetworkSet::new(networks.iter().copied());
            for probe in probes {
                let probe = IpAddr::from(std::net::Ipv4Addr::from(probe));
                proptest::prop_assert_eq!(
                    set.contains(probe),
                    networks.iter().any(|network| network.contains(&probe))
                );
            }
        }
    }
}
