//! The per-site rules applied when a widget starts a verification: which origins may use the
//! site, which client IPs are allowed or blocked outright, and how the difficulty rises for
//! clients that solve very often.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

/// One entry of a site's `allowed_origins`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    /// `*`: any origin.
    Any,
    /// `https://example.com` (a port is part of the origin).
    Exact(String),
    /// `https://*.example.com`: any subdomain of `example.com` (not the domain itself).
    Subdomains {
        /// `https://`, `http://`.
        scheme: String,
        /// `.example.com` or `.example.com:8443`.
        suffix: String,
    },
}

impl OriginPattern {
    /// Parses an `allowed_origins` entry.
    ///
    /// # Errors
    ///
    /// When the entry is not `*` or an `http(s)://host[:port]` origin (no path).
    pub fn parse(entry: &str) -> Result<Self, String> {
        let entry = entry.trim();
        if entry == "*" {
            return Ok(OriginPattern::Any);
        }
        if entry == "null" {
            return Ok(OriginPattern::Exact("null".to_owned()));
        }
        let invalid =
            || format!("`{entry}` is not `*`, `null` or an origin such as https://example.com");
        let (scheme, rest) = entry.split_once("://").ok_or_else(invalid)?;
        let scheme = scheme.to_ascii_lowercase();
        // An origin is a scheme, a host and a port: nothing a browser would not send.
        let rest = rest.strip_suffix('/').unwrap_or(rest).to_ascii_lowercase();
        if !matches!(scheme.as_str(), "http" | "https")
            || rest.is_empty()
            || rest.contains(['/', '?', '#', '@', '\\'])
            || rest.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid());
        }
        let (host, port) = match rest.rsplit_once(':') {
            // An IPv6 literal's colons are inside its brackets.
            Some((host, port)) if !port.contains(']') => (host, Some(port)),
            _ => (rest.as_str(), None),
        };
        if port.is_some_and(|port| port.parse::<u16>().is_err()) {
            return Err(format!(
                "`{entry}` has a port that is not a number from 0 to 65535"
            ));
        }
        let labels_ok = |domain: &str| {
            domain.starts_with('[')
                || domain.split('.').all(|label| {
                    !label.is_empty()
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
        };
        match host.strip_prefix("*.") {
            // `*.com` would be every site of a top-level domain: name at least a domain.
            Some(domain) if labels_ok(domain) && domain.contains('.') => {
                Ok(OriginPattern::Subdomains {
                    scheme: format!("{scheme}://"),
                    suffix: format!(".{}", &rest[2..]),
                })
            }
            Some(_) => Err(format!(
                "`{entry}`: a wildcard needs a domain of at least two labels, e.g. https://*.example.com"
            )),
            None if !labels_ok(host) => Err(invalid()),
            None => Ok(OriginPattern::Exact(format!("{scheme}://{rest}"))),
        }
    }

    /// Whether `origin` (as sent in the `Origin` header) matches. The opaque origin `null` (a
    /// sandboxed frame on any page, a file) matches only an entry that names it.
    #[must_use]
    pub fn matches(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/');
        match self {
            OriginPattern::Any => origin != "null",
            OriginPattern::Exact(exact) => origin.eq_ignore_ascii_case(exact),
            OriginPattern::Subdomains { scheme, suffix } => {
                let origin = origin.to_ascii_lowercase();
                origin.strip_prefix(scheme.as_str()).is_some_and(|host| {
                    host.len() > suffix.len() && host.ends_with(suffix.as_str())
                })
            }
        }
    }
}

/// Whether any pattern allows `origin`. A request without an origin is allowed only by `*`.
#[must_use]
pub(crate) fn origin_allowed(patterns: &[OriginPattern], origin: Option<&str>) -> bool {
    match origin {
        Some(origin) => patterns.iter().any(|p| p.matches(origin)),
        None => patterns.contains(&OriginPattern::Any),
    }
}

/// How the difficulty rises for a client that solves often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveDifficulty {
    /// The window in which solves are counted. It slides, estimated from two fixed windows
    /// (the store's counters): a solve counts fully within its own fixed window and fades out
    /// linearly over the next.
    pub window: Duration,
    /// Solves within the window that cost nothing extra.
    pub free_solves: u32,
    /// Extra difficulty bits per further `free_solves` solves (at least one per solve over).
    pub step: u8,
    /// The most extra bits ever added.
    pub max_extra: u8,
}

impl Default for AdaptiveDifficulty {
    fn default() -> Self {
        AdaptiveDifficulty {
            window: Duration::from_secs(60),
            free_solves: 10,
            step: 1,
            max_extra: 8,
        }
    }
}

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

/// Where clients whose address is unknown are counted, together: they share one network and
/// one block, so that not knowing an address never buys a budget of one's own.
pub(crate) const UNKNOWN_CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

/// A quota counts per clock hour.
pub(crate) const QUOTA_WINDOW: Duration = Duration::from_secs(3600);

/// The extra difficulty bits for a client network that solved `solved` challenges within the
/// rule's window and holds `outstanding` unsolved ones (they count like solves, so that
/// creating many first and solving them later does not keep the base difficulty).
pub(crate) fn extra_bits(solved: u64, outstanding: usize, rule: &AdaptiveDifficulty) -> u8 {
    let outstanding = u64::try_from(outstanding).unwrap_or(u64::MAX);
    let count = u32::try_from(solved.saturating_add(outstanding)).unwrap_or(u32::MAX);
    let over = count.saturating_sub(rule.free_solves);
    if over == 0 {
        return 0;
    }
    let per = rule.free_solves.max(1);
    let steps = over.div_ceil(per);
    let extra = steps.saturating_mul(u32::from(rule.step));
    u8::try_from(extra.min(u32::from(rule.max_extra))).unwrap_or(rule.max_extra)
}

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
    let ip = crate::networks::canonical(ip);
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
    fn origin_patterns() {
        let exact = OriginPattern::parse("https://Example.com").expect("valid");
        assert!(exact.matches("https://example.com"));
        assert!(exact.matches("https://example.com/"));
        assert!(!exact.matches("https://example.com:8443"));
        assert!(!exact.matches("http://example.com"));
        let sub = OriginPattern::parse("https://*.example.com").expect("valid");
        assert!(sub.matches("https://a.example.com"));
        assert!(sub.matches("https://a.b.example.com"));
        assert!(!sub.matches("https://example.com"));
        assert!(!sub.matches("https://badexample.com"));
        assert!(!sub.matches("http://a.example.com"));
        for bad in [
            "example.com",
            "ftp://x",
            "https://x/path",
            "https://*",
            "https://a*.b",
            "",
            "https://*.com",
            "https://shop .example.com",
            "https://example.com:99999",
            "https://user@example.com",
            "https://example.com?x=1",
            "https://example.com/path",
            "https://example.com#top",
            "https://exa_mple.com",
        ] {
            assert!(OriginPattern::parse(bad).is_err(), "{bad}");
        }
        assert!(origin_allowed(&[OriginPattern::Any], None));
        assert!(!origin_allowed(&[OriginPattern::Any], Some("null")));
        let null = OriginPattern::parse("null").expect("valid");
        assert!(origin_allowed(&[null], Some("null")));
        assert!(!origin_allowed(std::slice::from_ref(&exact), None));
        assert!(origin_allowed(&[exact], Some("https://example.com")));
    }

    #[test]
    fn difficulty_rises_with_solves_and_outstanding_challenges() {
        let rule = AdaptiveDifficulty {
            window: Duration::from_secs(60),
            free_solves: 2,
            step: 2,
            max_extra: 5,
        };
        assert_eq!(extra_bits(2, 0, &rule), 0, "free");
        assert_eq!(extra_bits(3, 0, &rule), 2);
        assert_eq!(extra_bits(0, 3, &rule), 2, "outstanding counts like solves");
        assert_eq!(extra_bits(5, 0, &rule), 4);
        assert_eq!(extra_bits(12, 0, &rule), 5, "capped at max_extra");
        assert_eq!(extra_bits(u64::MAX, usize::MAX, &rule), 5);
    }

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
