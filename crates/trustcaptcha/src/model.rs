//! The verification result of the results API and its two decision enums.
//!
//! Field names are the snake_case forms of the JSON keys; `Serialize` writes the original
//! camelCase JSON back, so a handler can return the result to a browser unchanged.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// The outcome of one verification, as `GET /v2/verifications/{id}/results` returns it.
///
/// `verification_passed` and `score` are required: a body without them is an error, never a
/// pass. The other fields default to empty values when a server omits them or sends `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationResult {
    /// Identifies the captcha (site) the verification belongs to.
    pub captcha_id: Uuid,
    /// Identifies the verification.
    pub verification_id: Uuid,
    /// Whether the captcha was passed and the request can be allowed.
    pub verification_passed: bool,
    /// Bot probability between 0 (likely human) and 1 (likely bot).
    pub score: f64,
    /// Which mechanism decided the outcome.
    #[serde(default, deserialize_with = "null_as_default")]
    pub decision_type: DecisionType,
    /// What TrustCaptcha recommends doing with the request.
    #[serde(default, deserialize_with = "null_as_default")]
    pub decision_action: DecisionAction,
    /// Whether the gateway synthesized this result during an outage.
    #[serde(default, deserialize_with = "null_as_default")]
    pub gateway_failover_active: bool,
    /// Whether risk scoring was enabled for the captcha.
    #[serde(default, deserialize_with = "null_as_default")]
    pub risk_scoring_enabled: bool,
    /// Whether the captcha runs in minimal-data mode.
    #[serde(default, deserialize_with = "null_as_default")]
    pub minimal_data_mode_enabled: bool,
    /// The page on which the captcha was solved.
    #[serde(default, deserialize_with = "null_as_default")]
    pub origin: String,
    /// The client's IPv4 or IPv6 address.
    #[serde(default, deserialize_with = "null_as_default")]
    pub ip_address: String,
    /// ISO 3166-1 alpha-2 country of the client's IP; empty when unknown.
    #[serde(default, deserialize_with = "null_as_default")]
    pub country_code: String,
    /// The client's device family.
    #[serde(default, deserialize_with = "null_as_default")]
    pub device_family: String,
    /// The client's operating system and version.
    #[serde(default, deserialize_with = "null_as_default")]
    pub operating_system: String,
    /// The client's browser and version.
    #[serde(default, deserialize_with = "null_as_default")]
    pub browser: String,
    /// When the client started the verification.
    #[serde(default, with = "rfc3339")]
    pub verification_started_at: Option<OffsetDateTime>,
    /// When the client finished the verification.
    #[serde(default, with = "rfc3339")]
    pub verification_finished_at: Option<OffsetDateTime>,
    /// When the result stops being retrievable.
    #[serde(default, with = "rfc3339")]
    pub result_expires_at: Option<OffsetDateTime>,
    /// When the result was fetched for the first time.
    #[serde(default, with = "rfc3339")]
    pub result_first_fetched_at: Option<OffsetDateTime>,
    /// When the result was fetched most recently (by this call).
    #[serde(default, with = "rfc3339")]
    pub result_last_fetched_at: Option<OffsetDateTime>,
}

impl VerificationResult {
    /// Whether this result was produced by a failover mechanism rather than a real
    /// verification: `gatewayFailoverActive` or a `FAILOVER*` decision type.
    ///
    /// High-security flows may want to reject such results.
    #[must_use]
    pub fn is_failover(&self) -> bool {
        self.gateway_failover_active
            || matches!(
                self.decision_type,
                DecisionType::Failover | DecisionType::FailoverTolerance
            )
    }
}

/// Timestamps in RFC 3339, as the results API writes them (`2026-05-03T13:45:08.214Z`: the
/// fraction without trailing zeros, `Z` for UTC), exactly as `time` formats them. Read by `time`;
/// written here into a buffer on the stack, since a server writes five with every result it
/// serves and `time`'s formatting, through `io::Write` digit by digit, showed in its profile.
mod rfc3339 {
    use serde::{Deserializer, Serializer, ser::Error as _};
    use time::{OffsetDateTime, UtcOffset};

    pub(super) fn serialize<S: Serializer>(
        at: &Option<OffsetDateTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let Some(at) = at else {
            return serializer.serialize_none();
        };
        let mut text = Text {
            bytes: [0; 35],
            len: 0,
        };
        text.timestamp(*at)
            .ok_or_else(|| S::Error::custom("the timestamp has no RFC 3339 form"))?;
        serializer.serialize_some(text.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        time::serde::rfc3339::option::deserialize(deserializer)
    }

    /// ASCII written into a fixed buffer, as long as the longest timestamp
    /// (`9999-12-31T23:59:59.999999999+23:59`).
    struct Text {
        bytes: [u8; 35],
        len: usize,
    }

    impl Text {
        /// `None` for what RFC 3339 cannot express: a year outside 0–9999, an offset with
        /// seconds or beyond ±23:59.
        fn timestamp(&mut self, at: OffsetDateTime) -> Option<()> {
            let (year, month, day) = at.to_calendar_date();
            let offset = at.offset();
            let year = u32::try_from(year).ok().filter(|year| *year < 10_000)?;
            if offset.seconds_past_minute() != 0 || offset.whole_hours().unsigned_abs() > 23 {
                return None;
            }
            self.digits(year, 4);
            self.byte(b'-');
            self.digits(u32::from(u8::from(month)), 2);
            self.byte(b'-');
            self.digits(u32::from(day), 2);
            self.byte(b'T');
            self.digits(u32::from(at.hour()), 2);
            self.byte(b':');
            self.digits(u32::from(at.minute()), 2);
            self.byte(b':');
            self.digits(u32::from(at.second()), 2);
            let (mut fraction, mut width) = (at.nanosecond(), 9);
            if fraction != 0 {
                while fraction % 10 == 0 {
                    fraction /= 10;
                    width -= 1;
                }
                self.byte(b'.');
                self.digits(fraction, width);
            }
            if offset == UtcOffset::UTC {
                self.byte(b'Z');
            } else {
                self.byte(if offset.is_negative() { b'-' } else { b'+' });
                self.digits(u32::from(offset.whole_hours().unsigned_abs()), 2);
                self.byte(b':');
                self.digits(u32::from(offset.minutes_past_hour().unsigned_abs()), 2);
            }
            Some(())
        }

        fn byte(&mut self, byte: u8) {
            self.bytes[self.len] = byte;
            self.len += 1;
        }

        /// `value` in `width` decimal digits, zero-padded (`value` has no more digits).
        fn digits(&mut self, mut value: u32, width: usize) {
            for slot in self.bytes[self.len..self.len + width].iter_mut().rev() {
                *slot = b'0' + (value % 10) as u8;
                value /= 10;
            }
            self.len += width;
        }

        fn as_str(&self) -> &str {
            // Only ASCII digits and separators are ever written.
            std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
        }
    }
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Defines a string enum with known wire values and a fallback that keeps unknown ones.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
        #[serde(from = "String")]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A value this version of the crate does not know, kept verbatim. Empty when the
            /// server did not send the field.
            Other(String),
        }

        impl Default for $name {
            /// `Other("")`: the server did not say.
            fn default() -> Self {
                $name::Other(String::new())
            }
        }

        impl $name {
            /// The value as it appears on the wire.
            #[must_use]
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $wire, )*
                    $name::Other(other) => other,
                }
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                match value.as_str() {
                    $( $wire => $name::$variant, )*
                    _ => $name::Other(value),
                }
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                match value {
                    $name::Other(other) => other,
                    known => known.as_str().to_owned(),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum! {
    /// How the verification outcome was determined (`decisionType`).
    DecisionType {
        /// Regular validation: proof-of-work plus risk score.
        Standard = "STANDARD",
        /// Solved with a configured bypass key.
        BypassKey = "BYPASS_KEY",
        /// A custom access rule (allow or block list) of the captcha matched.
        CustomAccessRule = "CUSTOM_ACCESS_RULE",
        /// A global TrustCaptcha access rule matched.
        GlobalIpAccessRule = "GLOBAL_IP_ACCESS_RULE",
        /// The captcha service was unreachable; the gateway returned a tolerant result.
        Failover = "FAILOVER",
        /// A soft error shortly after an outage; the gateway returned a tolerant result.
        FailoverTolerance = "FAILOVER_TOLERANCE",
    }
}

wire_enum! {
    /// What TrustCaptcha recommends doing with the request (`decisionAction`).
    DecisionAction {
        /// Allow the request.
        Allow = "ALLOW",
        /// Block the request.
        Block = "BLOCK",
        /// A custom rule with a custom action applied; see the captcha's settings.
        Custom = "CUSTOM",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_RESULT: &str = r#"{
        "captchaId": "cc2e2d5e-d1ef-4a7f-a7bd-dec5b37df47a",
        "verificationId": "07b01922-3faa-4667-a4a6-910a76cb8ab7",
        "verificationPassed": true,
        "score": 0.3,
        "decisionType": "STANDARD",
        "decisionAction": "ALLOW",
        "gatewayFailoverActive": false,
        "riskScoringEnabled": true,
        "minimalDataModeEnabled": false,
        "origin": "https://www.your-website.com/sub-page",
        "ipAddress": "2a01:123:33bb:1a1a:0:0:0:1",
        "countryCode": "DE",
        "deviceFamily": "Other",
        "operatingSystem": "Windows 10",
        "browser": "Chrome 119.0.0",
        "verificationStartedAt": "2026-05-03T13:30:05.941Z",
        "verificationFinishedAt": "2026-05-03T13:30:08.214Z",
        "resultExpiresAt": "2026-05-03T13:45:08.214Z",
        "resultFirstFetchedAt": "2026-05-03T13:30:09.001Z",
        "resultLastFetchedAt": "2026-05-03T13:30:09.001Z"
    }"#;

    #[test]
    fn parses_the_seed_result_and_serializes_it_back() {
        let result: VerificationResult = serde_json::from_str(SEED_RESULT).expect("valid");
        assert!(result.verification_passed);
        assert_eq!(result.score, 0.3);
        assert_eq!(result.decision_type, DecisionType::Standard);
        assert_eq!(result.decision_action, DecisionAction::Allow);
        assert_eq!(result.country_code, "DE");
        assert_eq!(
            result.result_expires_at,
            Some(time::macros::datetime!(2026-05-03 13:45:08.214 UTC))
        );
        assert!(!result.is_failover());

        let original: serde_json::Value = serde_json::from_str(SEED_RESULT).expect("json");
        let round_trip = serde_json::to_value(&result).expect("serializes");
        assert_eq!(
            original
                .as_object()
                .expect("object")
                .keys()
                .collect::<Vec<_>>()
                .len(),
            round_trip.as_object().expect("object").len()
        );
        for (key, value) in original.as_object().expect("object") {
            let ours = &round_trip[key];
            if key.ends_with("At") {
                let parse = |v: &serde_json::Value| {
                    OffsetDateTime::parse(
                        v.as_str().expect("string"),
                        &time::format_description::well_known::Rfc3339,
                    )
                    .expect("rfc3339")
                };
                assert_eq!(parse(ours), parse(value), "{key}");
            } else {
                assert_eq!(ours, value, "{key}");
            }
        }
    }

    #[test]
    fn tolerates_missing_and_null_optional_fields_and_unknown_enums() {
        let result: VerificationResult = serde_json::from_str(
            r#"{"captchaId":"cc2e2d5e-d1ef-4a7f-a7bd-dec5b37df47a",
                "verificationId":"07b01922-3faa-4667-a4a6-910a76cb8ab7",
                "verificationPassed":false,"score":1,"origin":null,
                "decisionType":"SOMETHING_NEW","verificationStartedAt":null,"extra":1}"#,
        )
        .expect("valid");
        assert_eq!(result.origin, "");
        assert_eq!(
            result.decision_type,
            DecisionType::Other("SOMETHING_NEW".into())
        );
        assert_eq!(result.decision_type.to_string(), "SOMETHING_NEW");
        assert_eq!(result.decision_action, DecisionAction::Other(String::new()));
        assert_eq!(result.verification_started_at, None);
    }

    #[test]
    fn a_result_without_passed_or_score_is_rejected() {
        for missing in ["verificationPassed", "score"] {
            let mut value: serde_json::Value = serde_json::from_str(SEED_RESULT).expect("json");
            value.as_object_mut().expect("object").remove(missing);
            assert!(
                serde_json::from_value::<VerificationResult>(value).is_err(),
                "{missing}"
            );
        }
    }

    #[test]
    fn failover_results_are_recognised() {
        let mut result: VerificationResult = serde_json::from_str(SEED_RESULT).expect("valid");
        result.decision_type = DecisionType::FailoverTolerance;
        assert!(result.is_failover());
        result.decision_type = DecisionType::Standard;
        result.gateway_failover_active = true;
        assert!(result.is_failover());
    }

    proptest::proptest! {
        #[test]
        fn timestamps_are_written_as_time_writes_them_and_read_back(
            seconds in 0i64..253_402_300_800, // 0000-01-01 .. 9999-12-31
            nanos in 0u32..1_000_000_000,
            rounded in 0u32..4,
            offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59i32),
        ) {
            use time::format_description::well_known::Rfc3339;
            // Shorter fractions (milliseconds, none) are common and written differently.
            let nanos = nanos - nanos % [1, 1_000, 1_000_000, 1_000_000_000][rounded as usize];
            let offset = time::UtcOffset::from_whole_seconds(offset_minutes * 60).expect("offset");
            let at = (OffsetDateTime::from_unix_timestamp(seconds - 62_167_219_200).expect("in range")
                + time::Duration::nanoseconds(i64::from(nanos)))
                .to_offset(offset);
            let mut result: VerificationResult = serde_json::from_str(SEED_RESULT).expect("valid");
            result.result_expires_at = Some(at);
            let json = serde_json::to_value(&result).expect("serializes");
            let expected = at.format(&Rfc3339).expect("formats");
            proptest::prop_assert_eq!(json["resultExpiresAt"].as_str(), Some(expected.as_str()));
            let back: VerificationResult = serde_json::from_value(json).expect("reads back");
            proptest::prop_assert_eq!(back.result_expires_at, Some(at));
        }
    }

    #[test]
    fn a_timestamp_outside_rfc_3339_is_an_error_not_a_panic() {
        let mut result: VerificationResult = serde_json::from_str(SEED_RESULT).expect("valid");
        for beyond in [
            time::macros::datetime!(-0001-01-01 0:00 UTC),
            time::macros::datetime!(2026-01-01 0:00 +01:00:30),
            time::macros::datetime!(2026-01-01 0:00 +24:00),
        ] {
            result.result_expires_at = Some(beyond);
            assert!(serde_json::to_string(&result).is_err(), "{beyond}");
            assert!(
                beyond
                    .format(&time::format_description::well_known::Rfc3339)
                    .is_err()
            );
        }
    }
}
