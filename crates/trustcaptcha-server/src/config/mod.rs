//! The server's configuration: a TOML file of server settings, sites and the store, read into
//! typed parts ([`ServerSettings`], [`Site`], [`StoreSettings`]) and checked in one place,
//! [`Config::check`], that `serve`, `check-config`, a reload and a configuration made in code
//! all go through.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:8080"
//!
//! [[sites]]
//! name = "shop"
//! site_key = "0b6c6b8e-2f5a-4c1e-9a3d-5f7e8d9c0a1b"
//! api_keys = ["sha256:…"]            # or the key in clear; or TRUSTCAPTCHA_SITE__SHOP__API_KEYS
//! allowed_origins = ["https://shop.example.com"]
//! ```
//!
//! How a file becomes a [`Config`]: [`load`] reads it, applies the environment's overrides
//! ([`with_environment`]: `TRUSTCAPTCHA_SERVER__<KEY>`, `TRUSTCAPTCHA_STORE__<KEY>`,
//! `TRUSTCAPTCHA_SITE__<NAME>__<KEY>`), and [`parse`]s it: serde reads the typed parts directly
//! (a value of the wrong shape stops there, named by its line and its place), then the
//! check reports every remaining problem at once. The check reads no file: the files the
//! settings name (reputation lists, the country database) are read once, by [`ServerFiles::read`].

mod environment;
mod explain;
mod files;
mod server;
mod site;
mod store;
mod values;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

pub use environment::{process_environment, with_environment};
pub use files::ServerFiles;
pub(crate) use files::reputation_lists;
pub use server::{ClientAddressHeader, MAX_FAILOVER_GRACE, ServerSettings, admin_listener_allowed};
pub use site::{
    Action, MAX_CHALLENGE_LIFETIME, RESULT_LIFETIMES, Rule, SANDBOX_API_KEY, SANDBOX_SITE_KEY, Site,
};
#[cfg(feature = "redis")]
pub(crate) use store::redis_nodes;
pub use store::{StoreSettings, redacted};

/// A configuration: what a file holds, or what code builds. Its `Debug` output shows only the
/// store URL's scheme, since a store URL may carry credentials.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Process-wide settings (`[server]`).
    #[serde(default)]
    pub server: ServerSettings,
    /// The sites (captchas) this server serves (`[[sites]]`).
    #[serde(default)]
    pub sites: Vec<Site>,
    /// Where verifications are kept (`[store]`).
    #[serde(default)]
    pub store: StoreSettings,
}

impl Config {
    /// `sites` with the default server settings and a memory store: the embedded server of
    /// tests, examples and demos.
    #[must_use]
    pub fn new(sites: Vec<Site>) -> Self {
        Config {
            server: ServerSettings::default(),
            sites,
            store: StoreSettings::default(),
        }
    }

    /// Every problem with this configuration, each with its location (`server.…`,
    /// `sites[i].…`, `store.url`): what `check-config` reports and what
    /// [`AppState`](crate::AppState) refuses to start (or reload) with, however the configuration
    /// was made. Reads no file.
    ///
    /// # Errors
    ///
    /// The problems, when there are any.
    pub fn check(&self) -> Result<(), ConfigError> {
        let mut problems: Vec<(String, String)> = located("server", self.server.check());
        let mut keys = HashMap::new();
        let mut names = HashMap::new();
        for (i, site) in self.sites.iter().enumerate() {
            let at = format!("sites[{i}]");
            problems.extend(located(&at, site.check()));
            if keys.insert(site.site_key, i).is_some() {
                problems.push((
                    format!("{at}.site_key"),
                    "is used by an earlier site".into(),
                ));
            }
            // Names key the environment overrides, metrics and logs: two sites whose names
            // read the same there would share one variable.
            let env_name = environment::env_name(&site.name);
            if let Some(earlier) = names.insert(env_name.clone(), site.name.clone()) {
                problems.push((
                    format!("{at}.name"),
                    format!(
                        "`{}` reads as `{earlier}` in environment variables \
                         (TRUSTCAPTCHA_SITE__{env_name}__…): name sites apart",
                        site.name
                    ),
                ));
            }
            // A bypass key is written into pages; one that is another site's API key would
            // hand that site's results to anyone who reads the page.
            let reused = site.bypass_keys.iter().any(|key| {
                self.sites
                    .iter()
                    .any(|other| other.site_key != site.site_key && key.is_among(&other.api_keys))
            });
            if reused {
                problems.push((
                    format!("{at}.bypass_keys"),
                    "holds a key that is another site's API key".into(),
                ));
            }
        }
        if self.sites.is_empty() {
            problems.push((
                "sites".into(),
                "no site is configured: add a [[sites]] table with at least a name and a site_key"
                    .into(),
            ));
        }
        problems.extend(located("store", self.store.check()));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }
}

/// `(field, message)` pairs under `at`.
fn located(at: &str, problems: Vec<(String, String)>) -> Vec<(String, String)> {
    problems
        .into_iter()
        .map(|(field, message)| (format!("{at}.{field}"), message))
        .collect()
}

/// The problems a part's check finds, as `(field, message)`.
#[derive(Default)]
struct Problems(Vec<(String, String)>);

impl Problems {
    /// Records `message` for `field` unless `ok`.
    fn require(&mut self, ok: bool, field: &str, message: &str) {
        if !ok {
            self.push(field, message.to_owned());
        }
    }

    fn push(&mut self, field: &str, message: String) {
        self.0.push((field.to_owned(), message));
    }
}

/// Everything wrong with a configuration, each problem with its location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// `(location, problem)` pairs, e.g. `("sites[0].site_key", "…")`.
    pub problems: Vec<(String, String)>,
}

impl ConfigError {
    /// One problem at `location`.
    pub(crate) fn at(location: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            problems: vec![(location.into(), problem.into())],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        write!(
            f,
            "{count} problem{} in the configuration",
            if count == 1 { "" } else { "s" }
        )?;
        for (location, problem) in &self.problems {
            write!(f, "\n  {location}: {problem}")?;
        }
        Ok(())
    }
}

/// Reads a configuration file, applies the overrides among `env` (see [`with_environment`];
/// pass [`process_environment`] for the process's), and checks it. Without a `[store]`, the
/// store is a SQLite file beside the configuration file, named after it.
///
/// # Errors
///
/// When the file cannot be read, is not valid TOML of the expected shape, or has invalid values;
/// problems of the file as written are named by its lines.
pub fn load(
    path: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let in_file = |mut error: ConfigError| {
        for (location, _) in &mut error.problems {
            *location = format!("{}: {location}", path.display());
        }
        error
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::at(path.display().to_string(), format!("cannot be read: {e}")))?;
    // The file as written is read first, so that its shape errors are named by its own lines;
    // it is read again only when the environment changed it.
    let written: Config = explain::read(&text).map_err(in_file)?;
    let overridden = with_environment(&text, env).map_err(in_file)?;
    let mut config = if overridden == text {
        written
    } else {
        explain::read(&overridden).map_err(in_file)?
    };
    config.check().map_err(in_file)?;
    config.store.url.get_or_insert_with(|| {
        let stem = path.file_stem().map_or_else(
            || "trustcaptcha".into(),
            |stem| stem.to_string_lossy().into_owned(),
        );
        format!(
            "sqlite://{}",
            path.with_file_name(format!("{stem}.state.sqlite3"))
                .display()
        )
    });
    Ok(config)
}

/// Reads one site's table (what a `[[sites]]` entry holds, as TOML), not yet checked: how the
/// console's sites are read, by the same reader as a file's (the same check follows, with the
/// other sites, in [`Config::check`]).
///
/// # Errors
///
/// A value of the wrong shape (named by line and place).
pub(crate) fn read_site(text: &str) -> Result<Site, ConfigError> {
    explain::read(text)
}

/// Reads and checks configuration text (no environment, no files).
///
/// # Errors
///
/// A value of the wrong shape (named by line, column and place), or every problem the
/// check finds.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let config: Config = explain::read(text)?;
    config.check()?;
    Ok(config)
}

#[cfg(test)]
mod tests;
