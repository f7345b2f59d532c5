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
use time::OffsetDateTime;
use uuid::Uuid;

use crate::store::catalog::{CatalogSite, KeyKind, StoredSite};

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError, ServerFiles, ServerSettings, Site};
use crate::failover::Outages;
use crate::limits::SharedLimits;
use crate::metrics::Metrics;
use crate::networks::NetworkSet;
use crate::secret::KeyHash;
use crate::statistics::Statistics;
use crate::store::{Collection, Expect, Store, TrackedStore};
use crate::visitor::Inspector;

/// The shared state.
#[derive(Debug, Clone)]
pub struct AppState(Arc<AppStateInner>);

/// What [`AppState`] holds. Public only because it is `AppState`'s `Deref` target; every field
/// is crate-private.
#[doc(hidden)]
#[allow(unreachable_pub)]
pub struct AppStateInner {
    /// What a reload or a console change replaces.
    site_index: ArcSwap<SiteIndex>,
    /// Held while the site index is built again, so that a reload and a console change never
    /// undo each other.
    rebuilding: parking_lot::Mutex<()>,
    /// Held while the console's sites are read, so that reads apply in order.
    catalog_refresh: tokio::sync::Mutex<()>,
    /// Console keys used since the last flush, with when.
    key_uses: parking_lot::Mutex<HashMap<Uuid, OffsetDateTime>>,
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
    /// Alerts on their way to the webhooks.
    pub(crate) alerts: crate::alerts::Alerts,
    /// Set once the server was told to stop: `/readyz` then answers 503 while it drains.
    pub(crate) draining: std::sync::atomic::AtomicBool,
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
    /// The public listener's URL once a server bound it.
    pub(crate) bound_url: std::sync::OnceLock<String>,
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

/// The sites, their keys and rules, and the reputation lists: what a reload or a change in the
/// console replaces.
#[derive(Debug)]
pub(crate) struct SiteIndex {
    /// The configuration file's sites in its order, then the console's by site key.
    sites: Vec<Arc<Site>>,
    /// How many of `sites` (the first) come from the configuration file.
    from_file: usize,
    /// The console's sites as this server last read them from the store's catalog.
    pub(crate) catalog: Arc<CatalogSites>,
    /// Indexes into `sites` by site key.
    by_key: HashMap<Uuid, usize>,
    /// The sites each API key is valid for, by the key's digest.
    by_api_key: HashMap<KeyHash, Arc<KeySites>>,
    /// The operator's reputation lists, merged: networks blocked on every site that does not
    /// opt out.
    pub(crate) reputation: Arc<NetworkSet>,
}

/// The console's sites as one server last read them.
#[derive(Debug, Default)]
pub(crate) struct CatalogSites {
    /// The revision of the catalog's sites they were read at.
    pub(crate) revision: u64,
    pub(crate) sites: Vec<CatalogSite>,
    /// When the next of their keys stops working: the index is built again then.
    pub(crate) next_expiry: Option<OffsetDateTime>,
}

impl SiteIndex {
    /// The sites' names, the file's first.
    pub(crate) fn site_names(&self) -> impl Iterator<Item = &str> {
        self.sites.iter().map(|site| &*site.name)
    }

    /// The site with this site key, with its catalog entry when it is a console site: one
    /// lookup in the index (the console's sites follow the file's, in catalog order).
    pub(crate) fn lookup(&self, site_key: Uuid) -> Option<(&Arc<Site>, Option<&CatalogSite>)> {
        let index = *self.by_key.get(&site_key)?;
        let entry = index
            .checked_sub(self.from_file)
            .and_then(|index| self.catalog.sites.get(index));
        Some((&self.sites[index], entry))
    }

    /// The configuration file's sites.
    pub(crate) fn file_sites(&self) -> &[Arc<Site>] {
        &self.sites[..self.from_file]
    }

    /// The index of the file's `sites` and the console's `catalog` sites, whose keys are
    /// looked up as they work at `now`.
    fn new(
        file_sites: Vec<Arc<Site>>,
        catalog: Arc<CatalogSites>,
        reputation: Arc<NetworkSet>,
        now: OffsetDateTime,
    ) -> Self {
        let from_file = file_sites.len();
        let mut sites = file_sites;
        sites.extend(catalog.sites.iter().map(|entry| Arc::clone(&entry.site)));
        let by_key = sites
            .iter()
            .enumerate()
            .map(|(index, site)| (site.site_key, index))
            .collect();
        let mut by_api_key: HashMap<KeyHash, KeySites> = HashMap::new();
        for site in &sites[..from_file] {
            for key in &site.api_keys {
                let entry = by_api_key.entry(*key).or_default();
                // A key listed twice for one site counts once.
                if !entry.site_keys.contains(&site.site_key) {
                    entry.sites.push(Arc::clone(site));
                    entry.site_keys.push(site.site_key);
                }
            }
        }
        for entry in &catalog.sites {
            let keys = entry.stored.keys.iter();
            for key in keys.filter(|key| key.kind == KeyKind::Api && key.live(now)) {
                by_api_key.insert(
                    key.hash,
                    KeySites {
                        sites: vec![Arc::clone(&entry.site)],
                        site_keys: vec![entry.site.site_key],
                        expires_at: key.expires_at,
                        key_id: Some(key.id),
                    },
                );
            }
        }
        SiteIndex {
            sites,
            from_file,
            catalog,
            by_key,
            by_api_key: by_api_key
                .into_iter()
                .map(|(key, sites)| (key, Arc::new(sites)))
                .collect(),
            reputation,
        }
    }
}

/// Every problem of the file's sites and the console's together (two sites with one key or
/// name): the console's are named by their name, since they have no place in the file.
fn check_together(file_sites: &[Site], catalog_sites: &[Site]) -> Result<(), ConfigError> {
    let mut sites = file_sites.to_vec();
    sites.extend_from_slice(catalog_sites);
    let Err(mut error) = Config::new(sites).check() else {
        return Ok(());
    };
    for (location, _) in &mut error.problems {
        let index = location
            .strip_prefix("sites[")
            .and_then(|rest| rest.split_once(']'))
            .and_then(|(index, rest)| Some((index.parse::<usize>().ok()?, rest)));
        if let Some((index, rest)) = index
            && let Some(site) = index
                .checked_sub(file_sites.len())
                .and_then(|index| catalog_sites.get(index))
        {
            *location = format!("console site `{}`{rest}", site.name);
        }
    }
    Err(error)
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
        let _rebuilding = self.rebuilding.lock();
        let current = self.site_index.load_full();
        let catalog_sites: Vec<Site> = current
            .catalog
            .sites
            .iter()
            .map(|entry| (*entry.site).clone())
            .collect();
        check_together(&config.sites, &catalog_sites)?;
        let site_index = SiteIndex::new(
            config.sites.into_iter().map(Arc::new).collect(),
            Arc::clone(&current.catalog),
            Arc::new(reputation),
            self.clock.now(),
        );
        tracing::info!(sites = site_index.sites.len(), "configuration reloaded");
        let data = serde_json::json!({ "source": "reload", "sites": site_index.sites.len() });
        self.site_index.store(Arc::new(site_index));
        let kind = crate::alerts::Kind::ConfigurationChanged;
        self.alerts.raise(kind, None, data, self.clock.now());
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
    /// with), then a constant-time comparison. A console key whose rotation overlap has passed
    /// works no more; and a console key is looked up only after the catalog's revision was read
    /// (one small store read), so that a key revoked on any server stops at once on this one.
    pub(crate) async fn sites_for_key(&self, key: &KeyHash) -> Option<Arc<KeySites>> {
        let found = self.indexed_sites_for_key(key);
        if found.as_ref().is_some_and(|sites| sites.key_id.is_some()) {
            self.catalog_current().await;
            return self.indexed_sites_for_key(key);
        }
        found
    }

    fn indexed_sites_for_key(&self, key: &KeyHash) -> Option<Arc<KeySites>> {
        let now = self.clock.now();
        self.site_index
            .load()
            .by_api_key
            .get_key_value(key)
            .filter(|(found, _)| key.is_among(std::slice::from_ref(*found)))
            .filter(|(_, sites)| sites.expires_at.is_none_or(|at| at > now))
            .map(|(_, sites)| Arc::clone(sites))
    }

    /// The site with this site key, as the catalog has it now when it is a console site (see
    /// [`AppState::sites_for_key`]): for a bypass key, which must stop as soon as it is revoked.
    pub(crate) async fn current_site(&self, site_key: Uuid) -> Option<Arc<Site>> {
        let console = self
            .site_index
            .load()
            .lookup(site_key)
            .is_some_and(|(_, entry)| entry.is_some());
        if console {
            self.catalog_current().await;
        }
        self.site(site_key)
    }

    /// Reads the console's sites again if the catalog's revision moved since this server read
    /// them. A store that cannot be read leaves them as they are: what follows needs the same
    /// store, and fails closed with it.
    async fn catalog_current(&self) {
        let known = self.site_index.load().catalog.revision;
        if self
            .store
            .revision(Collection::Sites)
            .await
            .is_ok_and(|revision| revision != known)
        {
            self.refresh_catalog().await;
        }
    }

    /// Adds the statistics and event log entries counted in memory to the store.
    ///
    /// # Errors
    ///
    /// The store's first failure; what was not added waits for the next flush.
    pub(crate) async fn flush_statistics(&self) -> Result<(), crate::store::StoreError> {
        let keep = crate::statistics::Keep::of(&self.settings);
        self.statistics
            .flush(&self.store, keep, self.clock.now())
            .await
    }

    /// Notes that the console key `key_id` was used now; written to the store with the
    /// statistics.
    pub(crate) fn note_key_use(&self, key_id: Uuid) {
        self.key_uses.lock().insert(key_id, self.clock.now());
    }

    /// Writes the key uses noted since the last call to the store. Uses that could not be
    /// written are noted again.
    pub(crate) async fn flush_key_uses(&self) {
        let uses = std::mem::take(&mut *self.key_uses.lock());
        for (key_id, at) in uses {
            let value = serde_json::json!({ "at": crate::store::catalog::rfc3339(at) }).to_string();
            let written = self
                .store
                .put_entry(
                    Collection::KeyUses,
                    &key_id.to_string(),
                    value,
                    Expect::Anything,
                    None,
                    at,
                )
                .await;
            if written.is_err() {
                self.key_uses.lock().entry(key_id).or_insert(at);
            }
        }
    }

    /// Checks `candidate`, a console site in the making, as a configuration file's site is
    /// checked, together with every other site; problems are named by the candidate's fields.
    ///
    /// # Errors
    ///
    /// Every problem of the candidate.
    pub(crate) fn check_catalog_site(&self, candidate: &Site) -> Result<(), ConfigError> {
        let index = self.site_index.load();
        let file_sites: Vec<Site> = index
            .file_sites()
            .iter()
            .map(|site| (**site).clone())
            .collect();
        let mut others: Vec<Site> = index
            .catalog
            .sites
            .iter()
            .filter(|entry| entry.site.site_key != candidate.site_key)
            .map(|entry| (*entry.site).clone())
            .collect();
        others.push(candidate.clone());
        let Err(error) = check_together(&file_sites, &others) else {
            return Ok(());
        };
        let own = format!("console site `{}`", candidate.name);
        let problems: Vec<(String, String)> = error
            .problems
            .into_iter()
            .filter_map(|(location, problem)| {
                let field = location.strip_prefix(&own)?;
                Some((field.trim_start_matches('.').to_owned(), problem))
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }

    /// Reads the console's sites from the store when they changed since this server last read
    /// them (or one of their keys has since stopped working), and serves them. A site that does
    /// not read or check (written by a newer server, or clashing with a file's site added since)
    /// is left out, with a warning. A store that fails leaves the sites as they are; the answer
    /// is then false.
    pub(crate) async fn refresh_catalog(&self) -> bool {
        let _one_at_a_time = self.catalog_refresh.lock().await;
        let now = self.clock.now();
        let current = self.site_index.load_full();
        let Ok(revision) = self.store.revision(Collection::Sites).await else {
            return false;
        };
        let expired = current.catalog.next_expiry.is_some_and(|at| at <= now);
        if revision == current.catalog.revision && !expired {
            return true;
        }
        let Ok(entries) = self.store.entries(Collection::Sites, now).await else {
            return false;
        };
        let mut sites = Vec::with_capacity(entries.len());
        for entry in entries {
            let read = serde_json::from_str::<StoredSite>(&entry.value)
                .map_err(|error| ConfigError::at("catalog", error.to_string()))
                .and_then(|stored| Ok((stored.site(now)?, stored)));
            match read {
                Ok((site, stored)) => sites.push(CatalogSite {
                    site: Arc::new(site),
                    stored: Arc::new(stored),
                    revision: entry.revision,
                }),
                Err(error) => {
                    tracing::warn!(site_key = %entry.id, %error, "a console site is not served");
                }
            }
        }
        let file_sites: Vec<Site> = current
            .file_sites()
            .iter()
            .map(|site| (**site).clone())
            .collect();
        let catalog_sites: Vec<Site> = sites.iter().map(|entry| (*entry.site).clone()).collect();
        if let Err(error) = check_together(&file_sites, &catalog_sites) {
            tracing::warn!(%error, "console sites with problems are not served");
            sites.retain(|entry| {
                let own = format!("console site `{}`", entry.site.name);
                !error
                    .problems
                    .iter()
                    .any(|(location, _)| location.starts_with(&own))
            });
        }
        let next_expiry = sites
            .iter()
            .filter_map(|entry| entry.stored.next_expiry(now))
            .min();
        let catalog = Arc::new(CatalogSites {
            revision,
            sites,
            next_expiry,
        });
        let _rebuilding = self.rebuilding.lock();
        let latest = self.site_index.load_full();
        if latest.catalog.revision > revision {
            return true;
        }
        let index = SiteIndex::new(
            latest.file_sites().to_vec(),
            catalog,
            Arc::clone(&latest.reputation),
            now,
        );
        tracing::debug!(
            revision,
            sites = index.catalog.sites.len(),
            "console sites read"
        );
        self.site_index.store(Arc::new(index));
        true
    }
}

/// The sites one API key is valid for, in configuration order.
#[derive(Debug, Default)]
pub(crate) struct KeySites {
    pub(crate) sites: Vec<Arc<Site>>,
    /// Their site keys, the retrieval's authorized sites.
    pub(crate) site_keys: Vec<Uuid>,
    /// When the key stops working (a console key rotated away), if ever.
    pub(crate) expires_at: Option<OffsetDateTime>,
    /// The console's id of the key, whose last use is recorded.
    pub(crate) key_id: Option<Uuid>,
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

    /// Uses `store` instead of the configuration's (`[store] url`), or of a
    /// [`MemoryStore`](crate::store::memory::MemoryStore) sized
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
        let store = match self.store {
            Some(store) => store,
            None => crate::store::open(&store, server.max_verifications, Arc::clone(&self.clock))
                .map_err(|error| ConfigError::at("store.url", error.to_string()))?,
        };
        let limits = SharedLimits::start(&server, Arc::clone(&self.clock));
        let site_index = SiteIndex::new(
            sites.into_iter().map(Arc::new).collect(),
            Arc::default(),
            Arc::new(files.reputation),
            self.clock.now(),
        );
        Ok(AppState(Arc::new(AppStateInner {
            site_index: ArcSwap::from_pointee(site_index),
            rebuilding: parking_lot::Mutex::new(()),
            catalog_refresh: tokio::sync::Mutex::new(()),
            key_uses: parking_lot::Mutex::default(),
            config_file: self.config_file,
            store: crate::store::tracked(store, Arc::clone(&self.clock)),
            store_name,
            clock: self.clock,
            outages,
            limits,
            metrics: Metrics::default(),
            statistics: Statistics::new(server.event_log_entries),
            alerts: crate::alerts::Alerts::default(),
            draining: std::sync::atomic::AtomicBool::new(false),
            inspector: files.inspector,
            hosting: files.hosting,
            repetitions: crate::repetition::Repetitions::default(),
            tls: files.tls,
            settings: server,
            bound_url: std::sync::OnceLock::new(),
        })))
    }
}
