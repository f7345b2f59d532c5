//! Which pages may use a site: its `allowed_origins`, each an exact origin, every subdomain of
//! one, or `*`, matched against the `Origin` header a browser sends.

use serde::Deserialize;

/// One entry of a site's `allowed_origins`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
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

impl TryFrom<String> for OriginPattern {
    type Error = String;

    fn try_from(entry: String) -> Result<Self, String> {
        OriginPattern::parse(&entry)
    }
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
}
