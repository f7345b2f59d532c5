//! Values whose file form is text with rules of its own: country codes, header names and the
//! server's public URL.

use axum::http::HeaderName;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// Two-letter country codes, read in any case and kept in upper case.
pub(super) fn countries<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    /// One code, so that an error is named by its index.
    struct Country(String);
    impl<'de> Deserialize<'de> for Country {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let entry = String::deserialize(deserializer)?;
            let code = entry.trim().to_ascii_uppercase();
            if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
                Ok(Country(code))
            } else {
                Err(D::Error::custom(format!(
                    "`{entry}` is not a two-letter country code"
                )))
            }
        }
    }
    Ok(Vec::<Country>::deserialize(deserializer)?
        .into_iter()
        .map(|country| country.0)
        .collect())
}

/// An HTTP header's name.
pub(super) fn header_name<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<HeaderName>, D::Error> {
    let name = String::deserialize(deserializer)?;
    HeaderName::from_bytes(name.trim().as_bytes())
        .map(Some)
        .map_err(|_| D::Error::custom(format!("`{name}` is not a header name")))
}

/// An origin without its trailing `/` (the check says whether it is one).
pub(super) fn public_url<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    let url = String::deserialize(deserializer)?;
    Ok(Some(url.trim().trim_end_matches('/').to_owned()))
}
