//! The signals of automation one verification showed, as a set of flags: what
//! [`crate::detection`] finds, [`crate::scoring`] weighs, statistics count and the store keeps.
//!
//! Two stored forms depend on this set, and both are pinned by tests here: the bit of each flag
//! (the memory store packs a pending verification's signals into a `u16`), and the JSON object
//! of flag names to booleans that the SQLite and Redis stores keep (`{"honeypot":false,…}`,
//! readable by every earlier release). A new signal takes the next free bit and a new name.

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

bitflags::bitflags! {
    /// The signals that fired for one verification.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct Signals: u16 {
        /// A honeypot was filled or touched.
        const HONEYPOT = 1 << 0;
        /// The integrity hash is missing or wrong.
        const INTEGRITY = 1 << 1;
        /// The browser flags itself as automated.
        const AUTOMATION = 1 << 2;
        /// The timestamps are impossible.
        const TIMING = 1 << 3;
        /// Standard mode without any user event (so far).
        const NO_EVENTS = 1 << 4;
        /// The browser calls itself headless.
        const HEADLESS = 1 << 5;
        /// The HTTP request disagrees with the page's description of the browser.
        const REQUEST = 1 << 6;
        /// A desktop window without browser UI.
        const WINDOW = 1 << 7;
        /// Events the widget cannot have recorded.
        const EVENTS = 1 << 8;
        /// Input no hand produces.
        const SYNTHETIC = 1 << 9;
        /// Solved faster than a browser can.
        const TOO_FAST = 1 << 10;
        /// The network solves far more than its share.
        const VELOCITY = 1 << 11;
        /// A desktop window larger than its screen.
        const SCREEN = 1 << 12;
        /// The client's network is a hosting or data-centre network.
        const HOSTING = 1 << 13;
        /// The TLS client is not the browser the User-Agent names.
        const TLS = 1 << 14;
        /// One device fingerprint from many networks, a large share of the site's traffic.
        const REPEATED = 1 << 15;
    }
}

/// Each signal's name, in bit order: its flag's name in lower case (a test holds them to it).
/// A table, because names are written and compared on every stored record.
const NAMES: [&str; 16] = [
    "honeypot",
    "integrity",
    "automation",
    "timing",
    "no_events",
    "headless",
    "request",
    "window",
    "events",
    "synthetic",
    "too_fast",
    "velocity",
    "screen",
    "hosting",
    "tls",
    "repeated",
];

impl Signals {
    /// A single signal's name as statistics, logs and the stored form write it (`no_events`);
    /// of several, the lowest one's.
    pub(crate) fn name(self) -> &'static str {
        NAMES
            .get(self.bits().trailing_zeros() as usize)
            .copied()
            .unwrap_or_default()
    }

    /// Every signal, one flag each, in bit order.
    pub(crate) fn each() -> impl Iterator<Item = Signals> {
        Signals::all().iter()
    }
}

/// The stored form: every signal's name with whether it fired.
impl Serialize for Signals {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(Signals::all().iter().count()))?;
        for signal in Signals::each() {
            map.serialize_entry(&signal.name(), &self.contains(signal))?;
        }
        map.end()
    }
}

/// Reads the stored form; a signal it does not name did not fire, and a name this release does
/// not know (written by a newer one) is passed over.
impl<'de> Deserialize<'de> for Signals {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Names;
        impl<'de> Visitor<'de> for Names {
            type Value = Signals;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of signal names to booleans")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Signals, A::Error> {
                let mut signals = Signals::empty();
                while let Some((name, fired)) = map.next_entry::<String, bool>()? {
                    if let Some(signal) = Signals::each().find(|signal| signal.name() == name) {
                        signals.set(signal, fired);
                    }
                }
                Ok(signals)
            }
        }
        deserializer.deserialize_map(Names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored bit of each signal: changing one misreads what a running store holds.
    #[test]
    fn the_stored_bit_order_is_pinned() {
        let order: Vec<(String, u16)> = Signals::each()
            .map(|signal| (signal.name().to_owned(), signal.bits()))
            .collect();
        let flags: Vec<(String, u16)> = Signals::all()
            .iter_names()
            .map(|(name, signal)| (name.to_ascii_lowercase(), signal.bits()))
            .collect();
        assert_eq!(order, flags, "the table of names is the flags' names");
        let expected = [
            "honeypot",
            "integrity",
            "automation",
            "timing",
            "no_events",
            "headless",
            "request",
            "window",
            "events",
            "synthetic",
            "too_fast",
            "velocity",
            "screen",
            "hosting",
            "tls",
            "repeated",
        ]
        .iter()
        .enumerate()
        .map(|(bit, name)| ((*name).to_owned(), 1u16 << bit))
        .collect::<Vec<_>>();
        assert_eq!(order, expected);
    }

    /// The JSON object earlier releases wrote is read as they meant it, and written alike.
    #[test]
    fn the_stored_object_form_is_read_and_written_as_before() {
        let earlier = r#"{"honeypot":false,"integrity":true,"automation":false,"timing":false,
            "no_events":true,"headless":false,"request":false,"window":false,"events":false,
            "synthetic":false,"too_fast":false,"velocity":true}"#;
        let signals: Signals = serde_json::from_str(earlier).expect("read");
        assert_eq!(
            signals,
            Signals::INTEGRITY | Signals::NO_EVENTS | Signals::VELOCITY
        );
        let written = serde_json::to_value(signals).expect("write");
        let mut earlier: serde_json::Value = serde_json::from_str(earlier).expect("json");
        // Signals added since are written beside the earlier ones.
        earlier["screen"] = false.into();
        earlier["hosting"] = false.into();
        earlier["tls"] = false.into();
        earlier["repeated"] = false.into();
        assert_eq!(written, earlier);
        let partial: Signals =
            serde_json::from_str(r#"{"honeypot":true,"from_a_newer_release":true}"#).expect("read");
        assert_eq!(partial, Signals::HONEYPOT);
        assert!(serde_json::from_str::<Signals>(r#"{"honeypot":"yes"}"#).is_err());
    }

    #[test]
    fn every_signal_has_its_own_bit() {
        for bits in 0..=u16::MAX {
            assert_eq!(Signals::from_bits_truncate(bits).bits(), bits);
        }
        assert_eq!(Signals::all().bits(), u16::MAX);
    }
}
