//! The one rule for a client's address.
//!
//! A request's peer is the client, unless the peer is one of the operator's `trusted_proxies`.
//! Then the client's address comes from the one header the operator named in
//! `client_address_header`, the header its proxy sets; every other forwarding header is the
//! client's own writing and is never read:
//!
//! * `x-forwarded-for` and `forwarded` (RFC 7239) are lists that each proxy appends to. A
//!   client can write any entries it likes at the left, but the proxy appends the address it saw
//!   at the right, so the right-most entry that is not a trusted proxy is the client. Every
//!   field line of the header counts, in order (a second line is a continuation of the list).
//! * `x-real-ip` holds one address that the proxy sets, replacing whatever the client sent. More
//!   than one value means the proxy did not replace it, and the client is unknown.
//!
//! An entry that cannot be read (`unknown`, an obfuscated name, garbage) makes the client unknown
//! (`None`), never the proxy: an unknown client is blocked by any block list, allowed by no allow
//! list, and counted under one shared network by the limits. A request from a trusted proxy
//! without the header, or with only trusted proxies in it, is the proxy's own (a health check,
//! a backend on the proxy's host): a client cannot remove a header its proxy sets.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;
use serde::Deserialize;

/// The header a trusted proxy writes the client's address into (`client_address_header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientAddressHeader {
    /// `X-Forwarded-For: client, proxy1, …`: nginx's `$proxy_add_x_forwarded_for`, HAProxy's
    /// `option forwardfor`, Caddy and Traefik.
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`: HAProxy's `option forwarded`, or nginx
    /// told to set it.
    Forwarded,
    /// `X-Real-IP: client`: one address, set (not appended) by the proxy.
    XRealIp,
}

impl ClientAddressHeader {
    /// The header's name as the configuration and HTTP spell it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ClientAddressHeader::XForwardedFor => "x-forwarded-for",
            ClientAddressHeader::Forwarded => "forwarded",
            ClientAddressHeader::XRealIp => "x-real-ip",
        }
    }
}

/// Where client addresses come from: the trusted proxies and the header they set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Proxies<'a> {
    pub(crate) trusted: &'a [IpNet],
    /// Set whenever `trusted` is not empty (the configuration insists).
    pub(crate) header: Option<ClientAddressHeader>,
}

impl Proxies<'_> {
    /// Whether `ip` is one of the trusted proxies.
    pub(crate) fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request from `peer` (see the module's rule).
    #[must_use]
    pub(crate) fn client(&self, peer: IpAddr, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = crate::networks::canonical(peer);
        let Some(header) = self.header.filter(|_| self.trusts(peer)) else {
            return Some(peer);
        };
        let lines = headers
            .get_all(header.name())
            .iter()
            .map(|value| value.to_str().ok());
        let mut entries = Vec::new();
        for line in lines {
            // A line that is not text cannot be split safely: the client is unknown.
            entries.extend(line?.split(',').map(str::trim));
        }
        let hops = entries.into_iter().map(|entry| match header {
            ClientAddressHeader::Forwarded => forwarded_for(entry),
            ClientAddressHeader::XForwardedFor | ClientAddressHeader::XRealIp => hop(entry),
        });
        if header == ClientAddressHeader::XRealIp {
            let mut hops = hops;
            return match (hops.next(), hops.next()) {
                (Some(only), None) => only.map(crate::networks::canonical),
                (None, _) => Some(peer),
                (Some(_), Some(_)) => None,
            };
        }
        for hop in hops.rev() {
            match hop.map(crate::networks::canonical) {
                Some(ip) if self.trusts(ip) => {}
                other => return other,
            }
        }
        // No header, or only trusted proxies in it: the proxy, which always sets the header on
        // what it forwards, sent this request itself (a health check, a backend on its host).
        Some(peer)
    }
}

/// The `for=` parameter of one `Forwarded` element.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
        .and_then(|(_, value)| hop(value))
}

/// One forwarded hop: `ip`, `ip:port`, `[v6]` or `[v6]:port`, optionally quoted.
fn hop(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, _) = rest.split_once(']')?;
        return inside.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
    }
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    /// The client seen from the trusted proxy 127.0.0.1 with these header lines.
    fn client(
        header: ClientAddressHeader,
        lines: &[(&'static str, &'static str)],
    ) -> Option<IpAddr> {
        let trusted: Vec<IpNet> = vec!["127.0.0.0/8".parse().expect("net")];
        let mut headers = HeaderMap::new();
        for (name, value) in lines {
            headers.append(*name, HeaderValue::from_static(value));
        }
        Proxies {
            trusted: &trusted,
            header: Some(header),
        }
        .client(ip("127.0.0.1"), &headers)
    }

    #[test]
    fn x_forwarded_for_gives_the_right_most_untrusted_entry() {
        let xff = |value| {
            client(
                ClientAddressHeader::XForwardedFor,
                &[("x-forwarded-for", value)],
            )
        };
        assert_eq!(
            xff("198.51.100.7, 203.0.113.9, 127.0.0.2"),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(xff("203.0.113.9:4711"), Some(ip("203.0.113.9")));
        assert_eq!(xff("[2001:db8::7]:4711"), Some(ip("2001:db8::7")));
        assert_eq!(xff("2001:db8::7"), Some(ip("2001:db8::7")));
        assert_eq!(xff("::ffff:192.0.2.1"), Some(ip("192.0.2.1")));
        assert_eq!(xff("garbage"), None, "never the proxy's own address");
        assert_eq!(xff("unknown, 127.0.0.3"), None);
        assert_eq!(xff("127.0.0.3"), Some(ip("127.0.0.1")), "only proxies");
        assert_eq!(
            client(
                ClientAddressHeader::XForwardedFor,
                &[
                    ("x-forwarded-for", "198.51.100.7"),
                    ("x-forwarded-for", "203.0.113.9")
                ]
            ),
            Some(ip("203.0.113.9")),
            "a second line continues the list"
        );
    }

    #[test]
    fn only_the_named_header_is_read() {
        // The proxy sets X-Forwarded-For and passes the client's own Forwarded and X-Real-IP.
        let lines = [
            ("forwarded", "for=198.51.100.7"),
            ("x-real-ip", "198.51.100.8"),
            ("x-forwarded-for", "198.51.100.9, 203.0.113.9"),
        ];
        assert_eq!(
            client(ClientAddressHeader::XForwardedFor, &lines),
            Some(ip("203.0.113.9"))
        );
        // A proxy named as setting Forwarded, but the request carries none: the proxy's own
        // request, whatever else the client wrote.
        let lines = [
            ("x-forwarded-for", "203.0.113.9"),
            ("x-real-ip", "203.0.113.9"),
        ];
        assert_eq!(
            client(ClientAddressHeader::Forwarded, &lines),
            Some(ip("127.0.0.1"))
        );
        assert_eq!(
            client(ClientAddressHeader::XRealIp, &lines[..1]),
            Some(ip("127.0.0.1"))
        );
    }

    #[test]
    fn forwarded_reads_the_for_parameter() {
        let fwd = |value| client(ClientAddressHeader::Forwarded, &[("forwarded", value)]);
        assert_eq!(
            fwd(r#"for=198.51.100.7, for="[2001:db8:cafe::17]:4711";proto=https"#),
            Some(ip("2001:db8:cafe::17"))
        );
        assert_eq!(fwd("for=192.0.2.60;by=127.0.0.1"), Some(ip("192.0.2.60")));
        assert_eq!(fwd("for=unknown"), None);
        assert_eq!(fwd("for=_hidden"), None);
        assert_eq!(fwd("proto=https"), None, "an element without for=");
    }

    #[test]
    fn x_real_ip_is_one_address_set_by_the_proxy() {
        let real =
            |lines: &[(&'static str, &'static str)]| client(ClientAddressHeader::XRealIp, lines);
        assert_eq!(
            real(&[("x-real-ip", "203.0.113.9")]),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            real(&[("x-real-ip", "198.51.100.7"), ("x-real-ip", "203.0.113.9")]),
            None,
            "two values: the proxy did not replace the client's"
        );
        assert_eq!(real(&[("x-real-ip", "198.51.100.7, 203.0.113.9")]), None);
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_writes() {
        let trusted: Vec<IpNet> = vec!["127.0.0.0/8".parse().expect("net")];
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        let proxies = Proxies {
            trusted: &trusted,
            header: Some(ClientAddressHeader::XForwardedFor),
        };
        assert_eq!(
            proxies.client(ip("192.0.2.1"), &headers),
            Some(ip("192.0.2.1"))
        );
        let none = Proxies {
            trusted: &[],
            header: None,
        };
        assert_eq!(
            none.client(ip("127.0.0.1"), &headers),
            Some(ip("127.0.0.1"))
        );
    }
}
