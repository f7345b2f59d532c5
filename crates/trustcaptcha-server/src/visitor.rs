//! What a result says about the visitor (the browser that solved the captcha): its address,
//! page, device family, operating system and browser from the User-Agent (parsed with
//! `woothee`), and the country from an optional MaxMind-format GeoIP database.

use std::net::IpAddr;
use std::path::Path;

use crate::mmdb::{Database, Layout};

/// The longest text kept per field of a [`Visitor`] (the page URL, the device names): longer
/// values are cut at a character boundary, so a verification holds a bounded number of bytes
/// whatever the client sends, and the result echoes the cut value.
pub(crate) const MAX_FIELD_BYTES: usize = 256;

/// Only this much of a User-Agent is parsed; real ones are a few hundred bytes.
const MAX_USER_AGENT_BYTES: usize = 1024;

/// `text` cut to at most `max` bytes, at a character boundary.
#[must_use]
pub(crate) fn truncated(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// What a result reports about the visitor. Every pending verification holds one (the memory
/// store packs it; see `store::packed`), so its texts are boxes, not growable strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Visitor {
    /// The visitor's IP address.
    pub ip: Option<IpAddr>,
    /// The page the captcha was solved on.
    pub origin: Box<str>,
    /// Two-letter country code, or empty.
    pub country_code: Box<str>,
    /// Device family from the User-Agent.
    pub device_family: Box<str>,
    /// Operating system from the User-Agent.
    pub operating_system: Box<str>,
    /// Browser from the User-Agent.
    pub browser: Box<str>,
}

/// Parses User-Agents and looks up countries.
pub(crate) struct Inspector {
    user_agents: woothee::parser::Parser,
    geoip: Option<Database<CountryPath>>,
}

/// Where a country database keeps a network's two-letter code: MaxMind's layout
/// (`country.iso_code`: GeoLite2-Country, GeoIP2, DB-IP's lite files), or at the top level as
/// `country_code` (IP2Location LITE, IPinfo-style files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CountryPath {
    MaxMind,
    TopLevel,
}

impl Layout for CountryPath {
    type Value = Box<str>;
    const ALL: &'static [Self] = &[CountryPath::MaxMind, CountryPath::TopLevel];
    const WANTED: &'static str = "two-letter country code as `country.iso_code` (MaxMind's layout) \
                                  or `country_code`";

    /// The code this layout finds in `found`, when it is two letters.
    fn read(self, found: &maxminddb::LookupResult<'_, Vec<u8>>) -> Option<Box<str>> {
        use maxminddb::PathElement::Key;
        let path: &[maxminddb::PathElement<'_>] = match self {
            CountryPath::MaxMind => &[Key("country"), Key("iso_code")],
            CountryPath::TopLevel => &[Key("country_code")],
        };
        let code = found.decode_path::<String>(path).ok().flatten()?;
        (code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic()))
            .then(|| code.to_ascii_uppercase().into())
    }
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector")
            .field("geoip", &self.geoip.is_some())
            .finish_non_exhaustive()
    }
}

/// Device family, operating system and browser, as the result fields want them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Device {
    /// e.g. `Other` (desktop), `Smartphone`, `Spider`.
    pub family: Box<str>,
    /// e.g. `Windows 10`, `Linux`, `iOS 17.0`.
    pub operating_system: Box<str>,
    /// e.g. `Chrome 119.0.0.0`.
    pub browser: Box<str>,
}

impl Inspector {
    /// An inspector with an optional GeoIP database, whose layout is learnt from its records.
    ///
    /// # Errors
    ///
    /// When the database file cannot be opened, is not a MaxMind DB, or keeps no country code
    /// where a known layout does: a database read as "no country" would turn
    /// `countries_allowed` into "nobody" and `countries_blocked` into "everyone".
    pub(crate) fn new(geoip_database: Option<&Path>) -> Result<Self, String> {
        let geoip = geoip_database.map(Database::open).transpose()?;
        Ok(Inspector {
            user_agents: woothee::parser::Parser::new(),
            geoip,
        })
    }

    /// The device described by `user_agent`; unknown parts are `Other`.
    #[must_use]
    pub(crate) fn device(&self, user_agent: &str) -> Device {
        let user_agent = truncated(user_agent, MAX_USER_AGENT_BYTES);
        let Some(parsed) = self.user_agents.parse(user_agent) else {
            return Device {
                family: "Other".into(),
                operating_system: "Other".into(),
                browser: "Other".into(),
            };
        };
        let known = |value: &str| value != woothee::woothee::VALUE_UNKNOWN;
        let family = match parsed.category {
            "smartphone" => "Smartphone",
            "mobilephone" => "Mobile Phone",
            "crawler" => "Spider",
            "appliance" => "Appliance",
            _ => "Other",
        };
        let operating_system = match (known(parsed.os), known(&parsed.os_version)) {
            (true, true)
                if !parsed.os.contains(&*parsed.os_version)
                    && !parsed.os_version.starts_with("NT") =>
            {
                format!("{} {}", parsed.os, parsed.os_version)
            }
            (true, _) => parsed.os.to_owned(),
            _ => "Other".to_owned(),
        };
        let browser = match (known(parsed.name), known(parsed.version)) {
            (true, true) => format!("{} {}", parsed.name, parsed.version),
            (true, false) => parsed.name.to_owned(),
            _ => "Other".to_owned(),
        };
        Device {
            family: family.into(),
            operating_system: truncated(&operating_system, MAX_FIELD_BYTES).into(),
            browser: truncated(&browser, MAX_FIELD_BYTES).into(),
        }
    }

    /// The ISO 3166-1 alpha-2 country of `ip`, or an empty string when unknown.
    #[must_use]
    pub(crate) fn country_code(&self, ip: IpAddr) -> Box<str> {
        self.geoip
            .as_ref()
            .and_then(|database| database.lookup(ip))
            .unwrap_or_default()
    }
}

/// Whether `family` (as a rule names it) matches any operating system (`os`) or browser the
/// User-Agent parser knows, or `Other` (what an unknown one is shown as).
pub(crate) fn known_family(family: &str, os: bool) -> bool {
    family.trim().eq_ignore_ascii_case("Other")
        || woothee::dataset::DATASET
            .values()
            .any(|known| (known.browser_type == "os") == os && is_family(known.name, family.trim()))
}

/// Whether `name` (e.g. `Chrome 119.0`, `Mac OSX`) is of `family` (`chrome`, `Mac OSX`): equal,
/// or followed by a space and a version, ignoring case.
pub(crate) fn is_family(name: &str, family: &str) -> bool {
    let (name, family) = (name.as_bytes(), family.as_bytes());
    name.len() >= family.len()
        && name[..family.len()].eq_ignore_ascii_case(family)
        && (name.len() == family.len() || name[family.len()] == b' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_can_name_only_families_the_parser_knows() {
        for browser in [
            "Chrome",
            "firefox",
            "Safari",
            "Edge",
            "Internet Explorer",
            "Other",
        ] {
            assert!(known_family(browser, false), "{browser}");
        }
        for system in ["Windows", "Mac OSX", "Linux", "Android", "iOS", "iPhone"] {
            assert!(known_family(system, true), "{system}");
        }
        for unknown in ["Chrom", "Netscape", "Brave", ""] {
            assert!(!known_family(unknown, false), "{unknown}");
        }
        assert!(!known_family("Chrome", true), "a browser is no system");
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        assert_eq!(truncated("abc", 5), "abc");
        assert_eq!(truncated("äöü", 3), "ä");
        let inspector = Inspector::new(None).expect("no database");
        let device = inspector.device(&format!("Mozilla/5.0 Chrome/{}", "9".repeat(100_000)));
        assert!(
            device.browser.len() <= MAX_FIELD_BYTES,
            "{}",
            device.browser.len()
        );
    }

    #[test]
    fn parses_common_user_agents() {
        let inspector = Inspector::new(None).expect("no database");
        let device = inspector.device("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36");
        assert_eq!(
            device,
            Device {
                family: "Other".into(),
                operating_system: "Windows 10".into(),
                browser: "Chrome 119.0.0.0".into()
            }
        );
        let headless = inspector.device("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36");
        assert_eq!(&*headless.browser, "Chrome 156.0.0.0");
        assert_eq!(&*headless.operating_system, "Linux");
        let iphone = inspector.device("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1");
        assert_eq!(&*iphone.family, "Smartphone");
        assert_eq!(&*iphone.operating_system, "iPhone 17.0");
        assert_eq!(&*inspector.device("").browser, "Other");
        assert_eq!(
            &*inspector.country_code("192.0.2.1".parse().expect("ip")),
            ""
        );
    }
}
