//! What the console manages, kept in the store's catalog (`store::catalog`) so that every
//! server sharing the store sees the same: sites made at run time with their keys ([`sites`]),
//! the console's users ([`users`]) and their sessions ([`sessions`]), the webhooks alerts go to
//! ([`webhooks`]), and the audit log of every change ([`audit`]).
//!
//! A change goes: the caller's [`Actor`] (resolved by the console's guard) → an operation here,
//! which reads the entry with its revision, makes the change, checks the result exactly as a
//! configuration file's sites are checked, writes it only if nobody wrote in between, records
//! it in the audit log, and applies it to this server at once. Other servers apply it when
//! they next poll the catalog's revision ([`crate::tasks`]).

pub(crate) mod audit;
pub(crate) mod sessions;
pub(crate) mod sites;
pub(crate) mod users;
pub(crate) mod webhooks;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::state::AppState;
use crate::store::StoreError;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    /// Changes everything.
    Admin,
    /// Sees statistics, settings and the audit log; changes nothing and sees no secret.
    Viewer,
}

impl Role {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

/// Who is asking: a user (signed in, or named by a trusted proxy), or the admin token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Actor {
    /// As the audit log names it: a user's name, `(admin token)` or `(loopback)`.
    pub(crate) name: String,
    pub(crate) role: Role,
}

/// Why a console operation did not happen.
#[derive(Debug)]
pub(crate) enum Refused {
    /// No such site, key or user.
    NotFound(&'static str),
    /// The change would make an invalid configuration: every problem, by field.
    Invalid(ConfigError),
    /// Somebody changed it first: read it again.
    Conflict,
    /// The request itself is wrong.
    BadRequest(String),
    /// Sites from the configuration file change only in the file.
    FromFile,
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for Refused {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict => Refused::Conflict,
            error => Refused::Store(error),
        }
    }
}

impl From<ConfigError> for Refused {
    fn from(error: ConfigError) -> Self {
        Refused::Invalid(error)
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::NotFound(what) => write!(f, "no such {what}"),
            Refused::Invalid(error) => write!(f, "{error}"),
            Refused::Conflict => f.write_str(
                "it was changed by someone else in the meantime: reload it and try again",
            ),
            Refused::BadRequest(message) => f.write_str(message),
            Refused::FromFile => f.write_str(
                "this site comes from the configuration file: change it there and reload",
            ),
            Refused::Store(error) => write!(f, "{error}"),
        }
    }
}

/// A new random secret: `prefix` and 49 letters and digits (about 290 bits), the shape of the
/// hosted service's keys.
pub(crate) fn new_secret(prefix: &str) -> String {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut secret = String::from(prefix);
    while secret.len() < prefix.len() + 49 {
        // Bytes from 248 up are dropped, so that every character is equally likely.
        for byte in rand::random::<[u8; 64]>() {
            if byte < 248 && secret.len() < prefix.len() + 49 {
                secret.push(char::from(ALPHABET[usize::from(byte % 62)]));
            }
        }
    }
    secret
}

/// The command line, as the audit log names it.
fn command_line() -> Actor {
    Actor {
        name: "(command line)".into(),
        role: Role::Admin,
    }
}

/// Adds a console user (`role` `admin` or `viewer`; no `password`: the user signs in only
/// through the trusted proxy's `console_user_header`), as the command line does for the first
/// one. Recorded in the audit log as made from the command line.
///
/// # Errors
///
/// An invalid name, role or password, a name that is taken, or the store's failure.
pub async fn add_user(
    state: &AppState,
    name: &str,
    role: &str,
    password: Option<String>,
) -> Result<(), String> {
    let role = Role::parse(role).ok_or("the role is admin or viewer")?;
    users::add(state, &command_line(), name, role, password)
        .await
        .map_err(|refused| refused.to_string())
}

/// Removes a console user; their sessions end with them.
///
/// # Errors
///
/// An unknown user, or the store's failure.
pub async fn remove_user(state: &AppState, name: &str) -> Result<(), String> {
    users::remove(state, &command_line(), name)
        .await
        .map_err(|refused| refused.to_string())
}

#[cfg(test)]
mod tests {
    use super::new_secret;

    #[test]
    fn a_new_key_is_never_in_debug_output() {
        let made = super::sites::NewKey {
            id: uuid::Uuid::nil(),
            secret: new_secret("ak_"),
        };
        let shown = format!("{made:?}");
        assert!(
            !shown.contains(&made.secret) && shown.contains("NewKey"),
            "{shown}"
        );
    }

    #[test]
    fn secrets_are_49_letters_and_digits_after_their_prefix_and_differ() {
        let secrets: Vec<String> = (0..200).map(|_| new_secret("ak_")).collect();
        for secret in &secrets {
            let random = secret.strip_prefix("ak_").expect("prefix");
            assert_eq!(random.len(), 49);
            assert!(random.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
        let distinct: std::collections::HashSet<&String> = secrets.iter().collect();
        assert_eq!(distinct.len(), secrets.len());
        // Every character of the alphabet turns up in 9 800 draws (each misses with odds of
        // about e^-158): no byte range is left out.
        let seen: std::collections::HashSet<u8> = secrets
            .iter()
            .flat_map(|secret| secret.bytes().skip(3))
            .collect();
        assert_eq!(seen.len(), 62);
    }
}
