//! The state every request shares: the site index (sites, their keys and rules, the reputation
//! lists), store, clock, outage record, metrics and the visitor inspector. Built once from a
//! [`Config`]; cheap to clone. The site index can be replaced while serving ([`AppState::reload`]):
//! each request reads the site index current when it looks, and verifications in flight keep
//! working under the new one (they are found by their site key).

use std::collections::HashMap;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use uuid::Uuid;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError, ServerFiles, ServerSettings, Site};
use crate::failover::Outages;
use crate::limits::SharedLimits;
use crate::metrics::Metrics;
use crate::networks::NetworkSet;
use crate::secret::KeyHash;
use crate::statistics::Statistics;
use crate::store::memory::MemoryStore;
use crate::store::{Store, TrackedStore};
use crate::visitor::Inspector;

/// The shared state.
#[derive(Debug, Clone)]
pub struct AppState(Arc<AppStateInner>);

/// What [`AppState`] holds. Public only because it is `AppState`'s `Deref` target; every field
/// is crate-private.
#[doc(hidden)]
#[allow(unreachable_pub)]
pub struct AppStateInner {
    /// What a reload replaces.
    site_index: ArcSwap<SiteIndex>,
    /// The configuration file a reload reads, when the state was built from one.
    config_file: Option<PathBuf>,
    /// Verification storage; every call goes through its health tracking.
    pub(crate) store: TrackedStore,
    /// The store as logs and errors name it (its URL without credentials).
    store_name: String,
    /// The time source.
    pub(crate) clock: Arc<dyn Clock>,
    /// The outage record for failover answers.
    pub(crate) outages: Arc<Outages>,
    /// Rates, pending challenges and key guesses per client network.
    pub(crate) limits: SharedLimits,
    /// Prometheus metrics.
    pub(crate) metrics: Metrics,
    /// Per-site statistics on their way to the store.
    pub(crate) statistics: Statistics,
    /// User-Agent and GeoIP lookups.
    pub(crate) inspector: Inspector,
    /// Which client networks are hosting networks.
    pub(crate) hosting: crate::hosting::Hosting,
    /// Device set-ups per site and window, for the `repeated` signal.
    pub(crate) repetitions: crate::repetition::Repetitions,
    /// The public listener's certificate, when it serves TLS (a reload reads it again).
    pub(crate) tls: Option<crate::tls::Acceptor>,
    /// Process-wide settings (a reload leaves them as they are).
    pub(crate) settings: ServerSettings,
}

impl std::fmt::Debug for AppStateInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppStateInner")
            .field("sites", &self.site_index.load().sites.len())
            .field("store", &self.store)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

/// The sites, their keys and rules, and the reputation lists: what a reload replaces.
#[derive(Debug)]
pub(crate) struct SiteIndex {
    /// Sites in configuration order.
    sites: Vec<Arc<Site>>,
    /// Indexes into `sites` by site key.
    by_key: HashMap<Uuid, usize>,
    /// The sites each API key is valid for, by the key's digest.
    by_api_key: HashMap<KeyHash, Arc<KeySites>>,
    /// The operator's reputation lists, merged: networks blocked on every site that does not
    /// opt out.
    pub(crate) reputation: NetworkSet,
}

impl SiteIndex {
    /// The sites' names, in configuration order.
    pub(crate) fn site_names(&self) -> impl Iterator<Item = &str> {
        self.sites.iter().map(|site| &*site.name)
    }

    /// The site index of `sites`, with the reputation lists read.
    fn new(sites: Vec<Site>, reputation: NetworkSet) -> Self {
        let sites: Vec<Arc<Site>> = sites.into_iter().map(Arc::new).collect();
        let by_key = sites
            .iter()
            .enumerate()
            .map(|(index, site)| (site.site_key, index))
            .collect();
        let mut by_api_key: HashMap<KeyHash, KeySites> = HashMap::new();
        for site in &sites {
            for key in &site.api_keys {
                let entry = by_api_key.entry(*key).or_default();
                // A key listed twice for one site counts once.
                if !entry.site_keys.contains(&site.site_key) {
                    entry.sites.push(Arc::clone(site));
                    entry.site_keys.push(site.site_key);
                }
            }
        }
        SiteIndex {
            sites,
            by_key,
            by_api_key: by_api_key
                .into_iter()
                .map(|(key, sites)| (key, Arc::new(sites)))
                .collect(),
            reputation,
        }
    }
}

/// Builds an [`AppState`]; tests swap the clock or the store.
#[must_use = "call build() to get the state"]
pub struct AppStateBuilder {
    config: Config,
    clock: Arc<dyn Clock>,
    store: Option<Arc<dyn Store>>,
    config_file: Option<PathBuf>,
}

impl std::fmt::Debug for AppStateBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppStateBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Checks that the store is safe to serve from (see [`Store::prepare`]); a server calls it
    /// once before serving and refuses to start when it fails.
    ///
    /// # Errors
    ///
    /// The store's reason it must not be used.
    pub async fn prepare_store(&self) -> Result<(), crate::store::StoreError> {
        self.store.prepare().await
    }

    /// Starts building the state for `config`, with the system clock and an in-memory store.
    pub fn builder(config: Config) -> AppStateBuilder {
        AppStateBuilder {
            config,
            clock: Arc::new(SystemClock),
            store: None,
            config_file: None,
        }
    }

    /// The store as logs and errors name it: its URL without credentials.
    #[must_use]
    pub fn store_name(&self) -> String {
        self.store_name.clone()
    }

    /// The process-wide settings it was built with.
    #[must_use]
    pub fn settings(&self) -> &ServerSettings {
        &self.settings
    }

    /// The site index current now.
    pub(crate) fn site_index(&self) -> Arc<SiteIndex> {
        self.site_index.load_full()
    }

    /// The site with this site key.
    #[must_use]
    pub(crate) fn site(&self, site_key: Uuid) -> Option<Arc<Site>> {
        let site_index = self.site_index.load();
        site_index
            .by_key
            .get(&site_key)
            .map(|&index| Arc::clone(&site_index.sites[index]))
    }

    /// Replaces the sites (their keys, bypass keys, lists, rules, lock and quotas), the
    /// reputation lists and the TLS certificate (read again from its files) with `config`'s. The running site index stays when `config` is not
    /// valid or a list cannot be read. A running server cannot change its other `[server]`
    /// settings: a `config` that changes one is refused, naming it.
    ///
    /// # Errors
    ///
    /// Every problem found; nothing was changed.
    pub fn reload(&self, config: Config) -> Result<(), ConfigError> {
        config.check()?;
        let changed = self.settings.needing_restart(&config.server);
        if !changed.is_empty() {
            return Err(ConfigError {
                problems: changed
                    .into_iter()
                    .map(|key| {
                        (
                            format!("server.{key}"),
                            "changed, but a running server cannot apply it: restart to apply \
                             it, or set it back to reload the rest"
                                .to_owned(),
                        )
                    })
                    .collect(),
            });
        }
        let reputation = crate::config::reputation_lists(&config.server.reputation_lists)?;
        // A renewed certificate under the same file names: read now, served to new connections.
        if let (Some(acceptor), Some(tls)) = (&self.tls, &config.server.tls) {
            acceptor
                .reload(tls)
                .map_err(|error| ConfigError::at("server.tls", error))?;
        }
        let site_index = SiteIndex::new(config.sites, reputation);
        tracing::info!(sites = site_index.sites.len(), "configuration reloaded");
        self.site_index.store(Arc::new(site_index));
        Ok(())
    }

    /// Re-reads the configuration file the state was built from (see
    /// [`AppStateBuilder::config_file`]), with the process environment's overrides, and
    /// [`reload`](AppState::reload)s it.
    ///
    /// # Errors
    ///
    /// When there is no file to read, it cannot be read or parsed, or it is not valid;
    /// the running configuration stays.
    pub async fn reload_from_file(&self) -> Result<(), ConfigError> {
        let Some(path) = self.config_file.clone() else {
            return Err(ConfigError::at(
                "config",
                "the server was not started from a configuration file",
            ));
        };
        // Reading the file parses every reputation list in it, which takes a while for large
        // ones: on the blocking pool, never on a worker that serves requests.
        let state = self.clone();
        let result = tokio::task::spawn_blocking(move || {
            crate::config::load(&path, crate::config::process_environment())
                .and_then(|config| state.reload(config))
        })
        .await
        .unwrap_or_else(|_| Err(ConfigError::at("config", "the reload stopped unexpectedly")));
        if let Err(error) = &result {
            tracing::warn!(%error, "the configuration was not reloaded; the running one stays");
        }
        result
    }

    /// The sites `key` is valid for, in configuration order: one lookup by the key's digest,
    /// whatever the number of sites (a digest reveals nothing about the keys it is compared
    /// with), then a constant-time comparison.
    #[must_use]
    pub(crate) fn sites_for_key(&self, key: &KeyHash) -> Option<Arc<KeySites>> {
        self.site_index
            .load()
            .by_api_key
            .get_key_value(key)
            .filter(|(found, _)| key.is_among(std::slice::from_ref(*found)))
            .map(|(_, sites)| Arc::clone(sites))
    }
}

/// The sites one API key is valid for, in configuration order.
#[derive(Debug, Default)]
pub(crate) struct KeySites {
    pub(crate) sites: Vec<Arc<Site>>,
    /// Their site keys, the retrieval's authorized sites.
    pub(crate) site_keys: Vec<Uuid>,
}

impl AppStateBuilder {
    /// Remembers the file the configuration was read from, for
    /// [`AppState::reload_from_file`] (`SIGHUP` and the admin endpoint).
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_file = Some(path.into());
        self
    }

    /// Uses `clock` instead of the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `store` instead of the configuration's (`[store] url`), or of a [`MemoryStore`] sized
    /// by `server.max_verifications` when it names none.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Validates the configuration (however it was made: a file, the environment or code) and
    /// builds the state, opening the GeoIP database if one is configured. Call it inside a
    /// Tokio runtime, so that the default store can start its sweeper.
    ///
    /// # Errors
    ///
    /// Every problem [`Config::check`] finds, or a GeoIP database that cannot be opened.
    pub fn build(self) -> Result<AppState, ConfigError> {
        self.config.check()?;
        let Config {
            server,
            sites,
            store,
        } = self.config;
        let files = ServerFiles::read(&server)?;
        let outages = Arc::new(Outages::new(server.failover_grace));
        if server.outage_before_start {
            outages.ended_at(self.clock.now());
        }
        let store_name = match (&self.store, &store.url) {
            (Some(_), _) => "(a store given in code)".to_owned(),
            (None, Some(url)) => crate::config::redacted(url),
            (None, None) => "memory://".to_owned(),
        };
        let store = match (self.store, store.url) {
            (Some(store), _) => store,
            (None, Some(url)) => {
                crate::store::open(&url, server.max_verifications, Arc::clone(&self.clock))
                    .map_err(|error| ConfigError::at("store.url", error.to_string()))?
            }
            (None, None) => Arc::new(MemoryStore::new(
                server.max_verifications,
                Arc::clone(&self.clock),
            )),
        };
        let limits = SharedLimits::start(&server, Arc::clone(&self.clock));
        let site_index = SiteIndex::new(sites, files.reputation);
        Ok(AppState(Arc::new(AppStateInner {
            site_index: ArcSwap::from_pointee(site_index),
            config_file: self.config_file,
            store: crate::store::tracked(store, Arc::clone(&self.clock)),
            store_name,
            clock: self.clock,
            outages,
            limits,
            metrics: Metrics::default(),
            statistics: Statistics::default(),
            inspector: files.inspector,
            hosting: files.hosting,
            repetitions: crate::repetition::Repetitions::default(),
            tls: files.tls,
            settings: server,
        })))
    }
}
