//! What a site's security rules decide about a visitor when a challenge is handed out, in this
//! order (the first that decides wins):
//!
//! 1. the site's IP lists (`block_ips` before `allow_ips`);
//! 2. its country lists (`countries_blocked`; with `countries_allowed`, every other country and
//!    an unknown one is blocked);
//! 3. its proof-of-work rules, an ordered list: the first whose conditions all match applies
//!    its action (block, allow, or adjust the difficulty and the number of tasks);
//! 4. the operator's reputation lists, unless the site opts out.
//!
//! A blocked visitor still gets a challenge (a bot learns nothing from the widget); the result
//! fails with `decisionAction` `BLOCK`, and `decisionType` `CUSTOM_ACCESS_RULE` for the site's own
//! rules or `GLOBAL_IP_ACCESS_RULE` for the reputation lists.

use std::net::IpAddr;

use axum::http::HeaderMap;

use crate::config::{Action, Rule, Site};
use crate::networks::NetworkSet;
use crate::visitor::is_family;

/// A decision an access rule made about a visitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AccessRule {
    /// Allowed by one of the site's rules: passes with score 0.
    Allowed,
    /// Blocked by one of the site's rules: fails with score 1.
    Blocked,
    /// Blocked by the operator's reputation lists: fails with score 1.
    GloballyBlocked,
    /// Blocked by the site's country lists: fails with score 1, as [`AccessRule::Blocked`]
    /// (the older results API names it apart, `GEOBLOCKING`).
    CountryBlocked,
}

/// What is known about a visitor when its challenge is handed out.
#[derive(Debug)]
pub(crate) struct Visit<'a> {
    pub(crate) ip: Option<IpAddr>,
    /// Two letters, or empty when unknown.
    pub(crate) country: &'a str,
    /// e.g. `Chrome 119.0.0.0`.
    pub(crate) browser: &'a str,
    /// e.g. `Windows 10`.
    pub(crate) operating_system: &'a str,
    pub(crate) headers: &'a HeaderMap,
}

/// The rules' decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Decision {
    /// Allowed or blocked, when a rule decided.
    pub(crate) access: Option<AccessRule>,
    /// Difficulty bits to add (or remove).
    pub(crate) difficulty: i8,
    /// A number of tasks instead of the site's.
    pub(crate) tasks: Option<u8>,
}

/// Applies `site`'s rules, then the reputation lists, to what was `seen`.
pub(crate) fn decide(site: &Site, reputation: &NetworkSet, seen: &Visit<'_>) -> Decision {
    let decided = |access| Decision {
        access: Some(access),
        ..Decision::default()
    };
    // An address that cannot be read cannot be shown to be outside a block list.
    match seen.ip {
        Some(ip) if site.block_ips.contains(ip) => return decided(AccessRule::Blocked),
        None if !site.block_ips.is_empty() => return decided(AccessRule::Blocked),
        Some(ip) if site.allow_ips.contains(ip) => return decided(AccessRule::Allowed),
        _ => {}
    }
    let listed = |countries: &[String]| countries.iter().any(|country| country == seen.country);
    if listed(&site.countries_blocked)
        || (!site.countries_allowed.is_empty() && !listed(&site.countries_allowed))
    {
        return decided(AccessRule::CountryBlocked);
    }
    if let Some(rule) = site.rules.iter().find(|rule| rule.matches(seen)) {
        match rule.action {
            Action::Block => return decided(AccessRule::Blocked),
            Action::Allow => return decided(AccessRule::Allowed),
            Action::Adjust => {
                return Decision {
                    access: globally_blocked(site, reputation, seen.ip),
                    difficulty: rule.difficulty.unwrap_or(0),
                    tasks: rule.tasks,
                };
            }
        }
    }
    Decision {
        access: globally_blocked(site, reputation, seen.ip),
        ..Decision::default()
    }
}

fn globally_blocked(
    site: &Site,
    reputation: &NetworkSet,
    ip: Option<IpAddr>,
) -> Option<AccessRule> {
    let listed = site.reputation_lists && ip.is_some_and(|ip| reputation.contains(ip));
    listed.then_some(AccessRule::GloballyBlocked)
}

impl Rule {
    fn matches(&self, seen: &Visit<'_>) -> bool {
        let networks =
            self.networks.is_empty() || seen.ip.is_some_and(|ip| self.networks.contains(ip));
        let countries =
            self.countries.is_empty() || self.countries.iter().any(|c| c == seen.country);
        let browsers = self.browsers.is_empty()
            || self
                .browsers
                .iter()
                .any(|family| is_family(seen.browser, family));
        let systems = self.operating_systems.is_empty()
            || self
                .operating_systems
                .iter()
                .any(|family| is_family(seen.operating_system, family));
        let header = self.header.as_ref().is_none_or(|name| {
            seen.headers.get_all(name).iter().any(|present| {
                self.header_value
                    .as_deref()
                    .is_none_or(|value| present.as_bytes() == value.as_bytes())
            })
        });
        networks && countries && browsers && systems && header
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderName;

    use super::*;
    use crate::networks::parse_network;

    fn set(entries: &[&str]) -> NetworkSet {
        NetworkSet::new(
            entries
                .iter()
                .map(|entry| parse_network(entry).expect("network")),
        )
    }

    fn seen<'a>(ip: &str, country: &'a str, headers: &'a HeaderMap) -> Visit<'a> {
        Visit {
            ip: Some(ip.parse().expect("ip")),
            country,
            browser: "Firefox 120.0",
            operating_system: "Linux",
            headers,
        }
    }

    fn rule(action: Action) -> Rule {
        Rule {
            networks: NetworkSet::default(),
            countries: Vec::new(),
            browsers: Vec::new(),
            operating_systems: Vec::new(),
            header: None,
            header_value: None,
            action,
            difficulty: None,
            tasks: None,
        }
    }

    #[test]
    fn lists_then_countries_then_rules_then_reputation() {
        let headers = HeaderMap::new();
        let reputation = set(&["203.0.113.0/24"]);
        let mut site = Site::sandbox();
        let listed = seen("203.0.113.5", "FR", &headers);
        assert_eq!(
            decide(&site, &reputation, &listed).access,
            Some(AccessRule::GloballyBlocked)
        );
        site.reputation_lists = false;
        assert_eq!(
            decide(&site, &reputation, &listed).access,
            None,
            "opted out"
        );
        site.reputation_lists = true;

        site.countries_blocked = vec!["FR".into()];
        assert_eq!(
            decide(&site, &reputation, &listed).access,
            Some(AccessRule::CountryBlocked)
        );
        site.countries_blocked.clear();
        site.countries_allowed = vec!["DE".into()];
        assert_eq!(
            decide(&site, &reputation, &seen("192.0.2.1", "", &headers)).access,
            Some(AccessRule::CountryBlocked),
            "an unknown country is not on an allow list"
        );
        assert_eq!(
            decide(&site, &reputation, &seen("192.0.2.1", "DE", &headers)).access,
            None
        );
        site.allow_ips = set(&["192.0.2.0/24"]);
        assert_eq!(
            decide(&site, &reputation, &seen("192.0.2.1", "", &headers)).access,
            Some(AccessRule::Allowed),
            "the IP lists come first"
        );
    }

    #[test]
    fn the_first_matching_rule_wins() {
        let mut headers = HeaderMap::new();
        headers.insert("x-load-test", "yes".parse().expect("value"));
        let mut site = Site::sandbox();
        let mut by_header = rule(Action::Block);
        by_header.header = Some(HeaderName::from_static("x-load-test"));
        by_header.header_value = Some("no".into());
        let mut firefox = Rule {
            difficulty: Some(3),
            tasks: Some(20),
            ..rule(Action::Adjust)
        };
        firefox.browsers = vec!["firefox".into()];
        firefox.operating_systems = vec!["Linux".into()];
        site.rules = vec![by_header, firefox, rule(Action::Allow)];
        let decision = decide(
            &site,
            &NetworkSet::default(),
            &seen("192.0.2.1", "", &headers),
        );
        assert_eq!(
            decision,
            Decision {
                access: None,
                difficulty: 3,
                tasks: Some(20)
            }
        );
        let access = |site: &Site| {
            decide(
                site,
                &NetworkSet::default(),
                &seen("192.0.2.1", "", &headers),
            )
            .access
        };
        site.rules[0].header_value = None;
        assert_eq!(
            access(&site),
            Some(AccessRule::Blocked),
            "a header's presence"
        );
        site.rules.remove(0);
        site.rules[0].networks = set(&["10.0.0.0/8"]);
        assert_eq!(
            access(&site),
            Some(AccessRule::Allowed),
            "a rule whose network does not match is passed over"
        );
    }

    #[test]
    fn families_match_names_with_versions() {
        assert!(is_family("Chrome 119.0.0.0", "chrome"));
        assert!(is_family("Mac OSX", "mac osx"));
        assert!(!is_family("Chromium 119", "Chrome"));
        assert!(!is_family("Chrome", "Chrome 119"));
    }
}
