//! Webhooks: where alerts (`crate::alerts`) are sent, kept in the catalog's webhooks collection
//! so that every server sharing the store delivers to the same ones. A webhook is a URL, the
//! site it listens to (or none: every site and the server's own alerts), the kinds it wants (or
//! all), and the secret its deliveries are signed with. The secret is shown once, when the
//! webhook is made; the store keeps it (a signature needs it), no page or answer shows it again.

use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

use super::{Actor, Refused, audit, new_secret};
use crate::alerts::{Alert, Kind};
use crate::state::AppState;
use crate::store::{Collection, Expect, Store as _, StoreError};

/// One webhook.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Webhook {
    /// `wh_` and random letters and digits.
    pub(crate) id: String,
    /// Where deliveries are posted (`http` or `https`).
    pub(crate) url: String,
    /// The site's name it listens to; `None`: every site and the server's own alerts.
    pub(crate) site: Option<String>,
    /// The kinds it wants (their names); empty: every kind.
    pub(crate) events: Vec<String>,
    /// The key of the deliveries' HMAC-SHA256 signatures.
    pub(crate) secret: String,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) created_at: OffsetDateTime,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("site", &self.site)
            .field("events", &self.events)
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// Whether `alert` is for this webhook.
    pub(crate) fn wants(&self, alert: &Alert) -> bool {
        if let Some(only) = &alert.only {
            return *only == self.id;
        }
        let site = match (&self.site, &alert.site) {
            (None, _) => true,
            (Some(mine), Some(its)) => mine == its,
            (Some(_), None) => false,
        };
        site && alert.kind != Kind::WebhookTest
            && (self.events.is_empty()
                || self.events.iter().any(|event| event == alert.kind.name()))
    }

    /// What the audit log and the pages show: everything but the secret.
    pub(crate) fn shown(&self) -> serde_json::Value {
        json!({
            "id": self.id,
            "url": self.url,
            "site": self.site,
            "events": self.events,
            "created_at": crate::store::catalog::rfc3339(self.created_at),
        })
    }
}

/// Every webhook.
///
/// # Errors
///
/// When the store fails.
pub(crate) async fn list(state: &AppState) -> Result<Vec<Webhook>, StoreError> {
    let entries = state
        .store
        .entries(Collection::Webhooks, state.clock.now())
        .await?;
    let mut webhooks: Vec<Webhook> = entries
        .iter()
        .filter_map(|entry| serde_json::from_str(&entry.value).ok())
        .collect();
    webhooks.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(webhooks)
}

/// The webhook `id`.
///
/// # Errors
///
/// When the store fails.
pub(crate) async fn find(state: &AppState, id: &str) -> Result<Option<Webhook>, StoreError> {
    let entry = state
        .store
        .entry(Collection::Webhooks, id, state.clock.now())
        .await?;
    Ok(entry.and_then(|entry| serde_json::from_str(&entry.value).ok()))
}

/// Makes a webhook; the answer holds its secret, which is shown this once.
///
/// # Errors
///
/// A URL that is not `http` or `https` with a host, a site that does not exist, a kind that
/// does not, or a store failure (a full collection among them).
pub(crate) async fn add(
    state: &AppState,
    by: &Actor,
    url: &str,
    site: Option<&str>,
    events: &[String],
) -> Result<Webhook, Refused> {
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|_| Refused::BadRequest("url must be an http or https URL".into()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(Refused::BadRequest(
            "url must be an http or https URL with a host".into(),
        ));
    }
    if url.len() > 2_048 {
        return Err(Refused::BadRequest("url is longer than 2048 bytes".into()));
    }
    if let Some(site) = site
        && !state.site_index().site_names().any(|name| name == site)
    {
        return Err(Refused::NotFound("site"));
    }
    if let Some(unknown) = events.iter().find(|event| Kind::named(event).is_none()) {
        return Err(Refused::BadRequest(format!(
            "`{unknown}` is not an alert kind: use {}",
            Kind::ALL.map(Kind::name).join(", ")
        )));
    }
    let now = state.clock.now();
    let mut events = events.to_vec();
    events.sort();
    events.dedup();
    let webhook = Webhook {
        id: new_secret("wh_").chars().take(19).collect(),
        url: parsed.to_string(),
        site: site.map(str::to_owned),
        events,
        secret: new_secret("whsec_"),
        created_at: now,
    };
    let value = serde_json::to_string(&webhook).map_err(|_| Refused::Store(StoreError::Full))?;
    state
        .store
        .put_entry(
            Collection::Webhooks,
            &webhook.id,
            value,
            Expect::Absent,
            None,
            now,
        )
        .await?;
    audit::record(
        state,
        by,
        "webhook.add",
        &webhook.id,
        None,
        Some(webhook.shown()),
    )
    .await;
    Ok(webhook)
}

/// Removes the webhook `id`.
///
/// # Errors
///
/// An unknown webhook, or a store failure.
pub(crate) async fn remove(state: &AppState, by: &Actor, id: &str) -> Result<(), Refused> {
    let Some(webhook) = find(state, id).await? else {
        return Err(Refused::NotFound("webhook"));
    };
    let now = state.clock.now();
    if !state
        .store
        .delete_entry(Collection::Webhooks, id, Expect::Anything, now)
        .await?
    {
        return Err(Refused::NotFound("webhook"));
    }
    audit::record(state, by, "webhook.remove", id, Some(webhook.shown()), None).await;
    Ok(())
}
