//! The catalog: what the console manages, kept in the store beside the verifications so that
//! every server using the store sees it. Each [`Collection`] maps an id to a JSON value with a
//! revision; the audit log is a numbered sequence of JSON lines.
//!
//! # The contract
//!
//! * Every write to a collection (a put or a delete) takes the collection's next revision, and
//!   [`Store::revision`](super::Store::revision) answers the latest: a server that polls it sees
//!   that something changed with one small read, and a write is never lost to a concurrent one
//!   ([`Expect::Revision`] refuses with [`StoreError::Conflict`] when the entry moved on).
//! * An entry with an expiry is gone once `now` passes it (answered as absent, forgotten later).
//! * A collection holds at most [`Collection::limit`] live entries; a new one beyond it is
//!   refused with [`StoreError::Full`].
//! * The audit log keeps its latest [`AUDIT_ENTRIES`] entries, numbered from 1 without gaps.
//!
//! Below the contract, the records of the sites collection (`StoredSite`, with its `Key`s),
//! which the server's site index reads and the console (`crate::catalog`) writes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;
use crate::config::{ConfigError, Site};
use crate::secret::KeyHash;

/// The audit entries a store keeps; older ones are forgotten.
pub const AUDIT_ENTRIES: usize = 100_000;

/// The audit entries one read returns at most.
pub const AUDIT_PAGE: usize = 1_000;

/// A collection of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Collection {
    /// Sites made in the console, with their keys (by site key).
    Sites,
    /// The console's users (by name).
    Users,
    /// Signed-in sessions (by the digest of their cookie), each with its expiry.
    Sessions,
    /// When each key of a console site was last used (by key id).
    KeyUses,
    /// Where alerts are delivered (by webhook id).
    Webhooks,
}

impl Collection {
    /// Every collection.
    pub const ALL: [Collection; 5] = [
        Collection::Sites,
        Collection::Users,
        Collection::Sessions,
        Collection::KeyUses,
        Collection::Webhooks,
    ];

    /// The collection's name in a backend.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Collection::Sites => "sites",
            Collection::Users => "users",
            Collection::Sessions => "sessions",
            Collection::KeyUses => "key_uses",
            Collection::Webhooks => "webhooks",
        }
    }

    /// The live entries it holds at most.
    #[must_use]
    pub fn limit(self) -> usize {
        match self {
            Collection::Sites => 10_000,
            Collection::Users => 1_000,
            Collection::Sessions => 10_000,
            Collection::KeyUses => 100_000,
            Collection::Webhooks => 100,
        }
    }
}

/// One entry of a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its id in the collection.
    pub id: String,
    /// The collection's revision when it was written.
    pub revision: u64,
    /// Its value, as JSON.
    pub value: String,
    /// When it stops being answered, if ever.
    pub expires_at: Option<OffsetDateTime>,
}

/// What a write expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Anything: the write replaces whatever is there.
    Anything,
    /// No live entry with the id.
    Absent,
    /// The entry as written at this revision.
    Revision(u64),
}

impl Expect {
    /// Whether an entry at `found` (its revision, `None` when there is no live entry) is what
    /// was expected.
    #[must_use]
    pub fn holds(self, found: Option<u64>) -> bool {
        match self {
            Expect::Anything => true,
            Expect::Absent => found.is_none(),
            Expect::Revision(revision) => found == Some(revision),
        }
    }
}

/// The catalog of a store that keeps it in process memory.
#[derive(Debug, Default)]
pub(crate) struct MemoryCatalog {
    collections: HashMap<Collection, BTreeMap<String, Entry>>,
    revisions: HashMap<Collection, u64>,
    audit: VecDeque<(u64, String)>,
    audited: u64,
}

fn live(entry: &Entry, now: OffsetDateTime) -> bool {
    entry.expires_at.is_none_or(|at| at > now)
}

/// The revision of the live entry `id` among `entries`, if `expect` holds for it.
fn expected(
    entries: &BTreeMap<String, Entry>,
    id: &str,
    expect: Expect,
    now: OffsetDateTime,
) -> Result<Option<u64>, StoreError> {
    let found = entries
        .get(id)
        .filter(|entry| live(entry, now))
        .map(|entry| entry.revision);
    if expect.holds(found) {
        Ok(found)
    } else {
        Err(StoreError::Conflict)
    }
}

impl MemoryCatalog {
    pub(crate) fn put(
        &mut self,
        collection: Collection,
        id: &str,
        value: String,
        expect: Expect,
        expires_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let entries = self.collections.entry(collection).or_default();
        let found = expected(entries, id, expect, now)?;
        // Expired entries are swept only when they stand in the way of a new one.
        if found.is_none() && entries.len() >= collection.limit() {
            entries.retain(|_, entry| live(entry, now));
            if entries.len() >= collection.limit() {
                return Err(StoreError::Full);
            }
        }
        let revision = self.revisions.entry(collection).or_default();
        *revision += 1;
        entries.insert(
            id.to_owned(),
            Entry {
                id: id.to_owned(),
                revision: *revision,
                value,
                expires_at,
            },
        );
        Ok(*revision)
    }

    pub(crate) fn get(
        &self,
        collection: Collection,
        id: &str,
        now: OffsetDateTime,
    ) -> Option<Entry> {
        self.collections
            .get(&collection)?
            .get(id)
            .filter(|entry| live(entry, now))
            .cloned()
    }

    pub(crate) fn list(&self, collection: Collection, now: OffsetDateTime) -> Vec<Entry> {
        self.collections
            .get(&collection)
            .map(|entries| {
                entries
                    .values()
                    .filter(|entry| live(entry, now))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn delete(
        &mut self,
        collection: Collection,
        id: &str,
        expect: Expect,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let entries = self.collections.entry(collection).or_default();
        let found = expected(entries, id, expect, now)?;
        entries.remove(id);
        if found.is_some() {
            *self.revisions.entry(collection).or_default() += 1;
        }
        Ok(found.is_some())
    }

    pub(crate) fn revision(&self, collection: Collection) -> u64 {
        self.revisions.get(&collection).copied().unwrap_or(0)
    }

    pub(crate) fn append_audit(&mut self, entry: String) -> u64 {
        self.audited += 1;
        self.audit.push_back((self.audited, entry));
        if self.audit.len() > AUDIT_ENTRIES {
            self.audit.pop_front();
        }
        self.audited
    }

    pub(crate) fn audit(&self, after: u64, limit: usize) -> Vec<(u64, String)> {
        let start = self.audit.partition_point(|(number, _)| *number <= after);
        self.audit
            .iter()
            .skip(start)
            .take(limit.min(AUDIT_PAGE))
            .cloned()
            .collect()
    }
}

/// A site as the catalog keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredSite {
    /// The site's table as TOML, without `api_keys` and `bypass_keys`.
    pub(crate) settings: String,
    pub(crate) keys: Vec<Key>,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) created_at: OffsetDateTime,
}

/// One key of a console site.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Key {
    pub(crate) id: Uuid,
    pub(crate) kind: KeyKind,
    pub(crate) name: String,
    /// Its digest; the key itself was shown once, when it was made.
    pub(crate) hash: KeyHash,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) created_at: OffsetDateTime,
    /// When it stops working (a rotated key's overlap), if ever.
    #[serde(with = "time::serde::rfc3339::option")]
    pub(crate) expires_at: Option<OffsetDateTime>,
}

/// What a key opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum KeyKind {
    /// The backend's key, for results.
    Api,
    /// A bypass key, for pages that must pass without a challenge (automated tests).
    Bypass,
}

impl KeyKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            KeyKind::Api => "api",
            KeyKind::Bypass => "bypass",
        }
    }

    pub(crate) fn prefix(self) -> &'static str {
        match self {
            KeyKind::Api => "ak_",
            KeyKind::Bypass => "bk_",
        }
    }
}

impl Key {
    /// Whether it works at `now`.
    pub(crate) fn live(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }

    /// What the audit log and the API show of it: never its digest.
    pub(crate) fn public(&self) -> Value {
        json!({
            "id": self.id,
            "kind": self.kind.name(),
            "name": self.name,
            "created_at": rfc3339(self.created_at),
            "expires_at": self.expires_at.map(rfc3339),
        })
    }
}

pub(crate) fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl StoredSite {
    /// The site it describes, with its keys that work at `now`, not yet checked.
    ///
    /// # Errors
    ///
    /// When its settings do not read as a site's table (or carry keys).
    pub(crate) fn site(&self, now: OffsetDateTime) -> Result<Site, ConfigError> {
        let mut site = crate::config::read_site(&self.settings)?;
        if !site.api_keys.is_empty() || !site.bypass_keys.is_empty() {
            return Err(ConfigError::at(
                "settings",
                "keys are not settings: make them in the site's keys",
            ));
        }
        for key in self.keys.iter().filter(|key| key.live(now)) {
            match key.kind {
                KeyKind::Api => site.api_keys.push(key.hash),
                KeyKind::Bypass => site.bypass_keys.push(key.hash),
            }
        }
        Ok(site)
    }

    /// When its next key stops working, after `now`.
    pub(crate) fn next_expiry(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.keys
            .iter()
            .filter_map(|key| key.expires_at)
            .filter(|at| *at > now)
            .min()
    }

    /// What the audit log shows of it: its settings and its keys, without their digests.
    pub(crate) fn public(&self) -> Value {
        json!({
            "settings": self.settings,
            "keys": self.keys.iter().map(Key::public).collect::<Vec<_>>(),
        })
    }
}

/// A console site as this server last read it from the catalog.
#[derive(Debug, Clone)]
pub(crate) struct CatalogSite {
    pub(crate) site: Arc<Site>,
    pub(crate) stored: Arc<StoredSite>,
    /// The entry's revision, for changes that must not overwrite another's.
    pub(crate) revision: u64,
}
