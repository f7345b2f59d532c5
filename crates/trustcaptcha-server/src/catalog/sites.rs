//! Sites made in the console. A site is kept as the TOML of its `[[sites]]` table (what a file
//! would hold for it, without keys) beside its keys, and read by the same reader and checked
//! by the same check as the file's sites ([`crate::config::Config::check`], with every other
//! site): a change the file would refuse is refused here too, with the same words.
//!
//! Keys are made by the server, shown once, and kept as SHA-256 digests with a name and their
//! dates. Rotating a key makes a new one and lets the old one work for an overlap; revoking
//! deletes it. Sites from the configuration file are shown but change only in the file.

use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Actor, Refused, audit, new_secret};
use crate::secret::KeyHash;
use crate::state::AppState;
pub(crate) use crate::store::catalog::{CatalogSite, Key, KeyKind, StoredSite, rfc3339};
use crate::store::{Collection, Expect, Store as _};

/// The longest overlap a rotation may give the old key: a week.
pub(crate) const MAX_OVERLAP: Duration = Duration::from_secs(7 * 86_400);

/// Keys one site holds at most (expired ones are dropped at its next change).
const MAX_KEYS: usize = 50;

/// A key made for the caller: its id and the key itself, shown once. Its `Debug` output never
/// shows the key.
pub(crate) struct NewKey {
    pub(crate) id: Uuid,
    pub(crate) secret: String,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn new_key(kind: KeyKind, name: &str, now: OffsetDateTime) -> Result<(Key, NewKey), Refused> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(Refused::BadRequest(
            "a key's name is 1 to 64 characters".into(),
        ));
    }
    let secret = new_secret(kind.prefix());
    let key = Key {
        id: Uuid::new_v4(),
        kind,
        name: name.to_owned(),
        hash: KeyHash::of(&secret),
        created_at: now,
        expires_at: None,
    };
    let made = NewKey { id: key.id, secret };
    Ok((key, made))
}

/// Makes a site named `name` with a random site key, the default settings and one API key.
///
/// # Errors
///
/// A name another site reads as (or an invalid one), or the store's failure.
pub(crate) async fn create(
    state: &AppState,
    by: &Actor,
    name: &str,
) -> Result<(Uuid, NewKey), Refused> {
    let site_key = Uuid::new_v4();
    let now = state.clock.now();
    let mut table = toml::Table::new();
    table.insert("name".into(), name.trim().into());
    table.insert("site_key".into(), site_key.to_string().into());
    let (key, made) = new_key(KeyKind::Api, "default", now)?;
    let stored = StoredSite {
        settings: toml::to_string(&table).map_err(|e| Refused::BadRequest(e.to_string()))?,
        keys: vec![key],
        created_at: now,
    };
    state.check_catalog_site(&stored.site(now)?)?;
    let value = serde_json::to_string(&stored).map_err(|e| Refused::BadRequest(e.to_string()))?;
    state
        .store
        .put_entry(
            Collection::Sites,
            &site_key.to_string(),
            value,
            Expect::Absent,
            None,
            now,
        )
        .await?;
    audit::record(
        state,
        by,
        "site.create",
        &site_key.to_string(),
        None,
        Some(stored.public()),
    )
    .await;
    state.refresh_catalog().await;
    Ok((site_key, made))
}

/// The catalog's entry of the console site `site_key`; a file site's key is refused as one.
async fn console_entry(
    state: &AppState,
    site_key: Uuid,
    now: OffsetDateTime,
) -> Result<crate::store::Entry, Refused> {
    let entry = state
        .store
        .entry(Collection::Sites, &site_key.to_string(), now)
        .await?;
    entry.ok_or_else(|| {
        if state.site(site_key).is_some() {
            Refused::FromFile
        } else {
            Refused::NotFound("site")
        }
    })
}

/// Reads the console site `site_key`, lets `change` change it, checks the result and writes it
/// if nobody wrote in between (and, when `revision` is given, if the caller's copy is the
/// latest); records it and applies it here.
async fn change<T>(
    state: &AppState,
    by: &Actor,
    site_key: Uuid,
    revision: Option<u64>,
    action: &str,
    change: impl FnOnce(&mut StoredSite, OffsetDateTime) -> Result<T, Refused>,
) -> Result<T, Refused> {
    let now = state.clock.now();
    let id = site_key.to_string();
    let entry = console_entry(state, site_key, now).await?;
    if revision.is_some_and(|revision| revision != entry.revision) {
        return Err(Refused::Conflict);
    }
    let mut stored: StoredSite = serde_json::from_str(&entry.value)
        .map_err(|_| Refused::BadRequest("the stored site cannot be read".into()))?;
    let before = stored.public();
    let answer = change(&mut stored, now)?;
    stored.keys.retain(|key| key.live(now));
    if stored.keys.len() > MAX_KEYS {
        return Err(Refused::BadRequest(format!(
            "a site holds at most {MAX_KEYS} keys: revoke some first"
        )));
    }
    let site = stored.site(now)?;
    if site.site_key != site_key {
        return Err(Refused::BadRequest(
            "a site's key cannot change: pages carry it; make a new site instead".into(),
        ));
    }
    state.check_catalog_site(&site)?;
    let value = serde_json::to_string(&stored).map_err(|e| Refused::BadRequest(e.to_string()))?;
    state
        .store
        .put_entry(
            Collection::Sites,
            &id,
            value,
            Expect::Revision(entry.revision),
            None,
            now,
        )
        .await?;
    audit::record(state, by, action, &id, Some(before), Some(stored.public())).await;
    state.refresh_catalog().await;
    Ok(answer)
}

/// Replaces a console site's settings with `settings` (a site's table as TOML, without keys).
///
/// # Errors
///
/// Settings that are not valid (every problem, by field), a site changed since `revision`, or
/// the store's failure.
pub(crate) async fn set_settings(
    state: &AppState,
    by: &Actor,
    site_key: Uuid,
    revision: Option<u64>,
    settings: String,
) -> Result<(), Refused> {
    change(state, by, site_key, revision, "site.change", |stored, _| {
        stored.settings = settings;
        Ok(())
    })
    .await
}

/// Changes a console site's settings through their table (what the console's forms do).
///
/// # Errors
///
/// As [`set_settings`], or `edit`'s own refusal.
pub(crate) async fn edit_settings(
    state: &AppState,
    by: &Actor,
    site_key: Uuid,
    revision: Option<u64>,
    edit: impl FnOnce(&mut toml::Table) -> Result<(), String>,
) -> Result<(), Refused> {
    change(state, by, site_key, revision, "site.change", |stored, _| {
        let mut table: toml::Table = stored
            .settings
            .parse()
            .map_err(|_| Refused::BadRequest("the stored settings cannot be read".into()))?;
        edit(&mut table).map_err(Refused::BadRequest)?;
        stored.settings =
            toml::to_string(&table).map_err(|e| Refused::BadRequest(e.to_string()))?;
        Ok(())
    })
    .await
}

/// Deletes a console site: its widgets get 404 and its keys stop, on every server.
///
/// # Errors
///
/// A file site, an unknown one, one changed since `revision`, or the store's failure.
pub(crate) async fn delete(
    state: &AppState,
    by: &Actor,
    site_key: Uuid,
    revision: Option<u64>,
) -> Result<(), Refused> {
    let now = state.clock.now();
    let id = site_key.to_string();
    let entry = console_entry(state, site_key, now).await?;
    let expect = Expect::Revision(revision.unwrap_or(entry.revision));
    if !state
        .store
        .delete_entry(Collection::Sites, &id, expect, now)
        .await?
    {
        return Err(Refused::NotFound("site"));
    }
    let before = serde_json::from_str::<StoredSite>(&entry.value)
        .ok()
        .map(|stored| stored.public());
    audit::record(state, by, "site.delete", &id, before, None).await;
    state.refresh_catalog().await;
    Ok(())
}

/// Makes a new key of `kind` for a console site.
///
/// # Errors
///
/// As [`set_settings`].
pub(crate) async fn add_key(
    state: &AppState,
    by: &Actor,
    site_key: Uuid,
    kind: KeyKind,
    name: &str,
) -> Result<NewKey, Refused> {
    change(state, by, site_key, None, "key.add", |stored, now| {
        let (key, made) = new_key(kind, name, now)?;
        stored.keys.push(key);
        Ok(made)
    })
    .await
}

/// Makes a key to replace `key_id` (same kind and name) and lets the old one work for
/// `overlap` more (at most [`MAX_OVERLAP`]; zero stops it at once).
///
/// # Errors
///
/// An unknown key, an overlap that is too long, or as [`set_settings`].
pub(crate) async fn rotate_key(
    state: &AppState,
    by: &Actor,
    site_key: Uuid,
    key_id: Uuid,
    overlap: Duration,
) -> Result<NewKey, Refused> {
    if overlap > MAX_OVERLAP {
        return Err(Refused::BadRequest(
            "the overlap is at most a week (604800 seconds)".into(),
        ));
    }
    change(state, by, site_key, None, "key.rotate", |stored, now| {
        let old = stored
            .keys
            .iter_mut()
            .find(|key| key.id == key_id && key.live(now))
            .ok_or(Refused::NotFound("key"))?;
        let until = now + overlap;
        old.expires_at = Some(old.expires_at.map_or(until, |at| at.min(until)));
        let (kind, name) = (old.kind, old.name.clone());
        let (key, made) = new_key(kind, &name, now)?;
        stored.keys.push(key);
        Ok(made)
    })
    .await
}

/// Revokes a key at once, on every server.
///
/// # Errors
///
/// An unknown key, the site's last API key (a site needs one), or as [`set_settings`].
pub(crate) async fn revoke_key(
    state: &AppState,
    by: &Actor,
    site_key: Uuid,
    key_id: Uuid,
) -> Result<(), Refused> {
    change(state, by, site_key, None, "key.revoke", |stored, now| {
        let before = stored.keys.len();
        stored.keys.retain(|key| key.id != key_id || !key.live(now));
        if stored.keys.len() == before {
            return Err(Refused::NotFound("key"));
        }
        Ok(())
    })
    .await
}
