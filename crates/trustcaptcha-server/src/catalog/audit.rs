//! The audit log: every change made through the console or its API, with who made it, when,
//! and the value before and after (secrets never: a key is named by its id and name, never by
//! its digest). Kept in the store (its latest `store::catalog::AUDIT_ENTRIES`), read back a page
//! at a time, exported as JSON lines.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::Actor;
use crate::state::AppState;
use crate::store::{Store as _, StoreError};

/// One change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct AuditEntry {
    /// Its number in the log (set when read).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) number: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) at: OffsetDateTime,
    /// Who made it.
    pub(crate) actor: String,
    /// What was done: `site.create`, `key.rotate`, `user.add`, ….
    pub(crate) action: String,
    /// What it was done to: a site key, a user's name.
    pub(crate) target: String,
    pub(crate) before: Option<Value>,
    pub(crate) after: Option<Value>,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's signature
fn is_zero(number: &u64) -> bool {
    *number == 0
}

/// Records a change. A change that was made is recorded even when the log cannot be written:
/// that failure is logged as an error, with what the entry would have said.
pub(crate) async fn record(
    state: &AppState,
    actor: &Actor,
    action: &str,
    target: &str,
    before: Option<Value>,
    after: Option<Value>,
) {
    let entry = AuditEntry {
        number: 0,
        at: state.clock.now(),
        actor: actor.name.clone(),
        action: action.to_owned(),
        target: target.to_owned(),
        before,
        after,
    };
    let Ok(line) = serde_json::to_string(&entry) else {
        return;
    };
    tracing::info!(actor = %entry.actor, action, target, "console change");
    alert(state, &entry);
    if let Err(error) = state.store.append_audit(line).await {
        tracing::error!(%error, actor = %entry.actor, action, target, "the audit log was not written");
    }
}

/// Tells the webhooks of a change: those of the site it changed (by its key), and the
/// server-wide ones.
fn alert(state: &AppState, entry: &AuditEntry) {
    let site = entry
        .target
        .parse::<uuid::Uuid>()
        .ok()
        .and_then(|key| {
            state
                .site_index()
                .lookup(key)
                .map(|(site, _)| site.name.to_string())
        })
        .or_else(|| {
            // A deleted site is no longer in the index: its name is in what it was.
            entry
                .before
                .as_ref()?
                .get("name")?
                .as_str()
                .map(str::to_owned)
        });
    let data = serde_json::json!({
        "source": "console",
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "before": entry.before,
        "after": entry.after,
    });
    let kind = crate::alerts::Kind::ConfigurationChanged;
    state.alerts.raise(kind, site.as_deref(), data, entry.at);
}

/// The entries numbered after `after`, oldest first, at most `limit`.
///
/// # Errors
///
/// When the store fails.
pub(crate) async fn read(
    state: &AppState,
    after: u64,
    limit: usize,
) -> Result<Vec<AuditEntry>, StoreError> {
    let lines = state.store.audit(after, limit).await?;
    Ok(lines
        .into_iter()
        .filter_map(|(number, line)| {
            let mut entry: AuditEntry = serde_json::from_str(&line).ok()?;
            entry.number = number;
            Some(entry)
        })
        .collect())
}
