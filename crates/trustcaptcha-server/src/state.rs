//! The state every request shares: sites, store, clock, outage record,
//! metrics and the visitor inspector. Built once from a [`Config`]; cheap to clone.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Arc;

use uuid::Uuid;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError, ServerSettings, Site};
use crate::failover::Outages;
use crate::limits::SharedLimits;
use crate::metrics::Metrics;
use crate::networks::NetworkSet;
use crate::secret::KeyHash;
use crate::store::memory::MemoryStore;
use crate::store::{Store, Tracked};
use crate::visitor::Inspector;

/// The shared state.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] holds. Public only because it is `AppState`'s `Deref` target; every field
/// is crate-private.
#[doc(hidden)]
#[allow(unreachable_pub)]
pub struct Shared {
    /// Sites in configuration order.
    sites: Vec<Arc<Site>>,
    /// Indexes into `sites` by site key.
    by_key: HashMap<Uuid, usize>,
    /// The sites each API key is valid for, by the key's digest.
    by_api_key: HashMap<KeyHash, KeySites>,
    /// Verification storage; every call records the store's health in `outages`.
    pub(crate) store: Tracked,
    /// The time source.
    pub(crate) clock: Arc<dyn Clock>,
    /// The outage record for failover answers.
    pub(crate) outages: Arc<Outages>,
    /// Rates, outstanding challenges and key guesses per client network.
    pub(crate) limits: SharedLimits,
    /// Prometheus metrics.
    pub(crate) metrics: Metrics,
    /// User-Agent and GeoIP lookups.
    pub(crate) inspector: Inspector,
    /// The operator's reputation lists, merged: networks blocked on every site that does not
    /// opt out.
    pub(crate) reputation: NetworkSet,
    /// Process-wide settings.
    pub(crate) settings: ServerSettings,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("sites", &self.sites.len())
            .field("store", &self.store)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Builds an [`AppState`]; tests swap the clock or the store.
#[must_use = "call build() to get the state"]
pub struct AppStateBuilder {
    config: Config,
    clock: Arc<dyn Clock>,
    store: Option<Arc<dyn Store>>,
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
        }
    }

    /// The site with this site key.
    #[must_use]
    pub(crate) fn site(&self, site_key: Uuid) -> Option<Arc<Site>> {
        self.by_key
            .get(&site_key)
            .map(|&index| Arc::clone(&self.sites[index]))
    }

    /// The sites `key` is valid for, in configuration order: one lookup by the key's digest,
    /// whatever the number of sites (a digest reveals nothing about the keys it is compared
    /// with), then a constant-time comparison.
    #[must_use]
    pub(crate) fn sites_for_key(&self, key: &KeyHash) -> Option<&KeySites> {
        self.by_api_key
            .get_key_value(key)
            .filter(|(found, _)| key.is_among(std::slice::from_ref(*found)))
            .map(|(_, sites)| sites)
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
    /// Uses `clock` instead of the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `store` instead of the configuration's (`store_url`), or of a [`MemoryStore`] sized
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
    /// Every problem [`Config::validate`] finds, or a GeoIP database that cannot be opened.
    pub fn build(self) -> Result<AppState, ConfigError> {
        self.config.validate()?;
        let Config {
            server,
            sites,
            store_url,
        } = self.config;
        let inspector =
            Inspector::new(server.geoip_database.as_deref()).map_err(|error| ConfigError {
                problems: vec![(
                    "server.geoip_database".into(),
                    format!("cannot be opened as a MaxMind database: {error}"),
                )],
            })?;
        let mut reputation = Vec::new();
        for path in &server.reputation_lists {
            let list = NetworkSet::read(path).map_err(|error| ConfigError {
                problems: vec![(
                    "server.reputation_lists".into(),
                    format!("{}: {error}", path.display()),
                )],
            })?;
            reputation.push(list);
        }
        let reputation = NetworkSet::union(reputation);
        let outages = Arc::new(Outages::new(server.failover_grace));
        if server.outage_before_start {
            outages.ended_at(self.clock.now());
        }
        let store = match (self.store, store_url) {
            (Some(store), _) => store,
            (None, Some(url)) => {
                crate::store::open(&url, server.max_verifications, Arc::clone(&self.clock))
                    .map_err(|error| ConfigError {
                        problems: vec![("store.url".into(), error.to_string())],
                    })?
            }
            (None, None) => Arc::new(MemoryStore::new(
                server.max_verifications,
                Arc::clone(&self.clock),
            )),
        };
        let limits = SharedLimits::start(&server, Arc::clone(&self.clock));
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
        Ok(AppState(Arc::new(Shared {
            sites,
            by_key,
            by_api_key,
            store: Tracked::new(store, Arc::clone(&outages), Arc::clone(&self.clock)),
            clock: self.clock,
            outages,
            limits,
            metrics: Metrics::default(),
            inspector,
            reputation,
            settings: server,
        })))
    }
}
