//! What the console's forms and its JSON API both read: one shape each, so that a page and a
//! script ask for a change in the same words.

use serde::Deserialize;

use crate::catalog::sites::KeyKind;

/// A new site.
#[derive(Deserialize)]
pub(crate) struct NewSite {
    pub(crate) name: String,
}

/// A site's settings as TOML (its `[[sites]]` table without keys), and the revision the
/// caller read (a site changed since is refused).
#[derive(Deserialize)]
pub(crate) struct Settings {
    pub(crate) revision: Option<u64>,
    pub(crate) settings: String,
}

/// The revision the caller read, for a change that names nothing else (a deletion).
#[derive(Deserialize)]
pub(crate) struct Revision {
    pub(crate) revision: Option<u64>,
}

/// A key to make.
#[derive(Deserialize)]
pub(crate) struct KeyToMake {
    pub(crate) kind: KeyKind,
    pub(crate) name: String,
}

/// A rotation: how long the old key keeps working.
#[derive(Deserialize)]
pub(crate) struct Rotation {
    pub(crate) overlap_secs: u64,
}

/// One's own new password, with the current one.
#[derive(Deserialize)]
pub(crate) struct PasswordChange {
    pub(crate) current: String,
    pub(crate) password: String,
}

/// A page of the audit log: the entries after number `after`, at most `limit`.
#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    pub(crate) after: u64,
    pub(crate) limit: Option<usize>,
}
