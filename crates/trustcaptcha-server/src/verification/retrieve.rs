//! A backend's retrieval of a result: the key judged, the sandbox's fixtures answered, a
//! widget's failover claim weighed against the outage record, the retrieval counted by the
//! store.

use std::net::IpAddr;
use std::sync::Arc;

use trustcaptcha::{DecisionType, VerificationResult};
use uuid::Uuid;

use super::{Answer, Error, Refusal, synthesized};
use crate::alerts::Kind;
use crate::events::{self, Event};
use crate::fixtures;
use crate::state::{AppState, KeySites};
use crate::store::{Finished, Retrieval, Store as _, StoreError};

/// A successful retrieval, with the label the metrics count it under.
#[derive(Debug)]
pub(crate) struct Retrieved {
    /// The result to return.
    pub result: VerificationResult,
    /// `ok`, `fixture`, `failover` or `failover_tolerance`.
    pub outcome: &'static str,
    /// The access rule that decided it, if one did (the older API's `reason` needs it).
    pub access_rule: Option<crate::access::AccessRule>,
}

/// The backend's retrieval of a result with a key valid for the sites in `for_key` (`None`: a
/// key of no site), counted under the key's first site.
pub(crate) async fn retrieve(
    state: &AppState,
    for_key: Option<Arc<KeySites>>,
    id: &str,
    client_failover: bool,
    ip: Option<IpAddr>,
) -> Answer<Retrieved> {
    let site = for_key
        .as_ref()
        .and_then(|sites| sites.sites.first().cloned());
    // A console key's last use is shown beside it: any use of a valid key counts.
    if let Some(key_id) = for_key.as_ref().and_then(|sites| sites.key_id) {
        state.note_key_use(key_id);
    }
    let outcome = retrieval(state, for_key, id, client_failover, ip).await;
    let label = match &outcome {
        Ok(retrieved) => retrieved.outcome,
        Err(error) => error.label(),
    };
    let name = site.as_ref().map(|site| &site.name);
    events::record(state, name, Event::Retrieved { outcome: label });
    Answer { site, outcome }
}

/// What [`retrieve`] answers.
///
/// A key may be valid for several sites: it sees the verifications of all of them, and a
/// synthesized failover answer names the first of them in configuration order.
///
/// # Errors
///
/// A [`Refusal`] for an invalid key and for each unsuccessful outcome of the store's
/// retrieval. A verification of a site the key is not for reads as [`Refusal::NotFound`], so
/// that a key cannot probe which ids exist elsewhere.
async fn retrieval(
    state: &AppState,
    for_key: Option<Arc<KeySites>>,
    id: &str,
    client_failover: bool,
    ip: Option<IpAddr>,
) -> Result<Retrieved, Error> {
    // A network locked out for guessing is refused before its key is looked at, so a correct
    // guess then is refused too.
    let now = state.clock.now();
    state.limits.guessing(ip, now)?;
    let Some(for_key) = for_key else {
        if let Some(network) = state.limits.failed_guess(ip, now) {
            let data = serde_json::json!({ "network": network.to_string() });
            state.alerts.raise(Kind::NetworkLockedOut, None, data, now);
        }
        return Err(Refusal::InvalidKey.into());
    };
    let (sites, authorized) = (&for_key.sites, &for_key.site_keys);
    let Some(first_site) = sites.first() else {
        return Err(Refusal::InvalidKey.into());
    };
    let id = Uuid::parse_str(id).map_err(|_| Refusal::NotFound)?;

    if let Some(answer) = sites
        .iter()
        .find(|site| site.sandbox_fixtures)
        .and_then(|site| fixtures::answer(site, id, now))
    {
        return answered(answer, "fixture");
    }
    if client_failover {
        // The widget could not reach us and made the id up: nothing proves it solved anything.
        // Only within the margin after downtime on record, and only for a site that allows it,
        // is it answered with a (flagged) FAILOVER result, stored so that it is answered once.
        if !first_site.failover_answers || !state.outages.grace_active(now) {
            return Err(Refusal::NoOutageOnRecord.into());
        }
        let synthesized = Finished {
            result: synthesized(first_site, id, now, DecisionType::Failover),
            site_key: first_site.site_key,
            max_retrievals: 1,
            access_rule: None,
        };
        match state.store.insert_finished(id, synthesized, now).await {
            Ok(()) | Err(StoreError::Duplicate) => {}
            Err(error) => return Err(error.into()),
        }
    }

    // Nothing is synthesized for an id the store does not know, or while the store cannot
    // answer: a made-up id never passes, an unsolved one never passes, and a store outage is a
    // 503 (the backend's failover policy decides), never a pass.
    let outcome = if client_failover { "failover" } else { "ok" };
    answered(state.store.retrieve(id, authorized, now).await?, outcome)
}

/// A retrieval's answer; found, it is counted as `outcome`.
fn answered(retrieval: Retrieval, outcome: &'static str) -> Result<Retrieved, Error> {
    match retrieval {
        Retrieval::Found(found) => Ok(Retrieved {
            result: found.result,
            outcome,
            access_rule: found.access_rule,
        }),
        Retrieval::NotFound | Retrieval::WrongSite => Err(Refusal::NotFound.into()),
        Retrieval::NotFinished => Err(Refusal::NotFinished.into()),
        Retrieval::Expired => Err(Refusal::Expired.into()),
        Retrieval::LimitReached => Err(Refusal::RetrievalLimitReached.into()),
    }
}
