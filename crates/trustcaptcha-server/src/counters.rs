//! The names of the store counters the server keeps: solves per client network (for adaptive
//! difficulty), a site's verifications per clock hour (its quota) and each client block's share
//! of that quota.

use std::net::IpAddr;
use std::time::Duration;

use crate::networks::{UNKNOWN_CLIENT, block, network};

/// The store counter of solves by `ip`'s network, for a window of `length` (sites with
/// different windows count separately).
pub(crate) fn solves_counter(ip: IpAddr, length: Duration) -> String {
    format!("solves:{}:{}", network(ip), length.as_secs())
}

/// The store counter of a site's finished verifications, per clock hour.
pub(crate) fn quota_counter(site_key: uuid::Uuid) -> String {
    format!("quota:{site_key}")
}

/// The store counter of the part of a site's quota that one client block spent, per clock hour.
pub(crate) fn quota_block_counter(site_key: uuid::Uuid, ip: Option<IpAddr>) -> String {
    format!("quota:{site_key}:{}", block(ip.unwrap_or(UNKNOWN_CLIENT)))
}

/// A quota counts per clock hour.
pub(crate) const QUOTA_WINDOW: Duration = Duration::from_secs(3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_is_counted_as_one() {
        let window = Duration::from_secs(60);
        let counter = |ip: &str| solves_counter(ip.parse().expect("ip"), window);
        assert_eq!(counter("2001:db8::1"), counter("2001:db8::ffff"));
        assert_ne!(counter("2001:db8::1"), counter("2001:db8:0:1::1"));
        assert_eq!(counter("::ffff:192.0.2.1"), counter("192.0.2.1"));
        assert_ne!(
            counter("192.0.2.1"),
            solves_counter("192.0.2.1".parse().expect("ip"), 2 * window)
        );
    }
}
