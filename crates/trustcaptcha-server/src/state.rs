//! The state every handler shares: sites, store, clock, outage record, solve tracker, metrics
//! and the client inspector. Built once from a [`Config`]; cheap to clone.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Arc;

use uuid::Uuid;

use crate::client_info::ClientInspector;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ServerSettings, Site};
use crate::failover::Outages;
use crate::metrics::Metrics;
use crate::rules::{HourlyQuota, SolveTracker};
use crate::store::Store;
use crate::store::memory::MemoryStore;

/// The handlers' shared state.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] holds.
pub struct Shared {
    /// Sites by site key.
    pub sites: HashMap<Uuid, Arc<Site>>,
    /// Verification storage.
    pub store: Arc<dyn Store>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// The outage record for failover answers.
    pub outages: Outages,
    /// Recent solves per client network, for adaptive difficulty.
    pub solves: SolveTracker,
    /// Verifications started per site this hour, for hourly quotas.
    pub quota: HourlyQuota,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// User-Agent and GeoIP lookups.
    pub inspector: ClientInspector,
    /// Process-wide settings.
    pub settings: ServerSettings,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("sites", &self.sites.len())
            .field("stored", &self.store.len())
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
    /// Starts building the state for `config`, with the system clock and an in-memory store.
    pub fn builder(config: Config) -> AppStateBuilder {
        AppStateBuilder {
            config,
            clock: Arc::new(SystemClock),
            store: None,
        }
    }

    /// The site a key is for, if any. Sites are tried in constant time per key.
    #[must_use]
    pub fn sites_for_key(&self, key: &crate::secret::KeyHash) -> Vec<&Arc<Site>> {
        self.sites
            .values()
            .filter(|site| key.is_among(&site.api_keys))
            .collect()
    }
}

impl AppStateBuilder {
    /// Uses `clock` instead of the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `store` instead of a [`MemoryStore`] sized by `server.max_verifications`.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Builds the state, opening the GeoIP database if one is configured.
    ///
    /// # Errors
    ///
    /// When the GeoIP database cannot be opened.
    pub fn build(self) -> Result<AppState, maxminddb::MaxMindDbError> {
        let Config { server, sites } = self.config;
        let inspector = ClientInspector::new(server.geoip_database.as_deref())?;
        let outages = Outages::new(server.failover_grace);
        if server.outage_before_start {
            outages.ended_at(self.clock.now());
        }
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(MemoryStore::new(server.max_verifications)));
        Ok(AppState(Arc::new(Shared {
            sites: sites
                .into_iter()
                .map(|site| (site.site_key, Arc::new(site)))
                .collect(),
            store,
            clock: self.clock,
            outages,
            solves: SolveTracker::default(),
            quota: HourlyQuota::default(),
            metrics: Metrics::default(),
            inspector,
            settings: server,
        })))
    }
}
