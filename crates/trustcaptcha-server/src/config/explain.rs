//! Reading configuration text into a [`Config`], and saying what is wrong with text that does
//! not read in words its author knows: the line and column, the key's place (`sites[1].tasks`),
//! and what the key expects.

use serde::de::DeserializeOwned;

use super::ConfigError;

/// `text` as a [`Config`](super::Config) (or a part of one: a site's table), not yet checked.
///
/// # Errors
///
/// The first value of the wrong shape (or the syntax error), explained.
pub(super) fn read<T: DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    let deserializer = toml::Deserializer::parse(text).map_err(|e| explain::<T>(text, &e, ""))?;
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let place = error.path().to_string();
        explain::<T>(text, error.inner(), if place == "." { "" } else { &place })
    })
}

/// A TOML error as one `(location, problem)`: the location is the line and column, with the
/// key's place when known; the problem names the key and, where the value is of the wrong kind,
/// what the key expects. TOML's own message for an unquoted text (`listen = 127.0.0.1:8080`)
/// only says what the parser did not expect, so such a line is tried again with the value quoted:
/// if it then reads, the value needs quotes; if it then has the wrong type, that error says what
/// the key expects.
fn explain<T: DeserializeOwned>(text: &str, error: &toml::de::Error, place: &str) -> ConfigError {
    let Some(span) = error.span() else {
        let location = if place.is_empty() { "file" } else { place };
        let message = if names_secret(place, "") {
            unechoed(error.message())
        } else {
            plain(error.message())
        };
        return ConfigError::at(location, message);
    };
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = &text[line_start..line_end];
    let number = text[..start].matches('\n').count() + 1;
    let column = start - line_start + 1;
    let location = if place.is_empty() {
        format!("line {number}, column {column}")
    } else {
        format!("line {number}, column {column} ({place})")
    };
    let Some((key, value)) = line.split_once('=').map(|(k, v)| (k.trim(), v.trim())) else {
        return ConfigError::at(location, plain(error.message()));
    };
    if names_secret(place, key) {
        return ConfigError::at(location, format!("`{key}`: {}", unechoed(error.message())));
    }
    // A bare word may be text missing its quotes; a number (even a negative one) is not.
    let bare_word = !value.starts_with(['"', '\'', '[', '{']) && value.parse::<f64>().is_err();
    if !key.is_empty() && bare_word {
        let retried = format!(
            "{}{key} = \"{}\"{}",
            &text[..line_start],
            value.replace('\\', "\\\\").replace('"', "\\\""),
            &text[line_end..]
        );
        match toml::from_str::<T>(&retried) {
            Ok(_) => {
                return ConfigError::at(
                    location,
                    format!("`{key}` is text and must be in quotes: {key} = \"{value}\""),
                );
            }
            Err(retry) if retry.span().is_some_and(|s| s.start >= line_start) => {
                return ConfigError::at(
                    location,
                    format!("`{key} = {value}`: {}", plain(retry.message())),
                );
            }
            Err(_) => {}
        }
    }
    ConfigError::at(location, format!("`{key}`: {}", plain(error.message())))
}

/// Keys whose values are secrets or may carry one (a store URL's password): an error about one
/// says what the key expects, never what was written.
const SECRET_KEYS: [&str; 4] = ["api_keys", "bypass_keys", "admin_token", "url"];

/// Whether the value at `place` (`sites[0].api_keys[1]`) or under the line's `key` is a secret.
fn names_secret(place: &str, key: &str) -> bool {
    SECRET_KEYS
        .iter()
        .any(|secret| key == *secret || place.split(['.', '[']).any(|part| part == *secret))
}

/// A message about a secret's value without the value: serde's own messages quote what they
/// read (`invalid type: string "…", expected a sequence`), so only what is expected is kept;
/// the server's own messages about keys never quote one.
fn unechoed(message: &str) -> String {
    if !message.contains("invalid") {
        return plain(message);
    }
    match message.rsplit_once("expected ") {
        Some((_, expected)) => format!(
            "has the wrong form (not shown: it may be a secret): {}",
            plain(&format!("expected {expected}"))
        ),
        None => "has the wrong form (not shown: it may be a secret)".to_owned(),
    }
}

/// Serde's type names in words a configuration's reader knows.
fn plain(message: &str) -> String {
    [
        ("expected usize", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected u32", "expected a whole number"),
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected i8", "expected a whole number from -128 to 127"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ]
    .iter()
    .fold(message.trim().to_owned(), |text, (from, to)| {
        text.replace(from, to)
    })
}
