//! Delivering alerts to webhooks: [`deliver`] takes each raised alert (`crate::alerts`), finds
//! the webhooks that want it (`catalog::webhooks`; the last list read is used while the store
//! fails, so that an outage is still told), and posts it to each, retrying with backoff.
//!
//! A delivery is `POST` of a JSON body
//! `{"id","type","created_at","site","data"}` with the headers `trustcaptcha-event` (the type),
//! `trustcaptcha-delivery` (the alert's id, the same on every retry) and
//! `trustcaptcha-signature: t=UNIX_SECONDS,v1=HEX`, where `HEX` is the HMAC-SHA256 under the
//! webhook's secret of `t`, a dot and the body. A receiver recomputes it, compares in constant
//! time, and refuses a `t` older than a few minutes (a replay). Every attempt is signed afresh.
//!
//! An answer of 2xx within [`TIMEOUT`] is a delivery; anything else is retried after
//! [`BACKOFF`] (five attempts over some twelve minutes), and redirects are not followed. Each
//! attempt is written to the webhook's delivery log (the store's journal `deliveries:ID`, its
//! latest [`LOG`] entries of the last 30 days).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{KeyInit as _, Mac as _};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::{Semaphore, mpsc};

use crate::alerts::Alert;
use crate::catalog::webhooks::{self, Webhook};
use crate::state::AppState;
use crate::store::catalog::rfc3339;
use crate::store::{JournalBound, JournalEntry, Store as _, StoreError};

/// How long one attempt may take.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// The waits before the second and later attempts.
pub(crate) const BACKOFF: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(10),
    Duration::from_secs(60),
    Duration::from_secs(600),
];

/// Attempts in flight at most; further ones wait their turn.
const IN_FLIGHT: usize = 32;

/// Deliveries under way at most (waiting for a retry included); further ones are dropped and
/// logged, so that a webhook that never answers cannot hold the server's memory.
const UNDER_WAY: usize = 10_000;

/// A webhook's delivery log keeps this many attempts (of the last 30 days).
pub(crate) const LOG: JournalBound = JournalBound {
    entries: 1_000,
    age: Duration::from_secs(30 * 86_400),
};

/// One attempt, as the delivery log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Attempt {
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) at: OffsetDateTime,
    /// The alert's id.
    pub(crate) delivery: String,
    /// The alert's kind.
    pub(crate) event: String,
    /// 1 for the first.
    pub(crate) attempt: u32,
    /// The receiver's status, if it answered.
    pub(crate) status: Option<u16>,
    /// Why it failed, if it did (never the body or the secret).
    pub(crate) error: Option<String>,
    pub(crate) millis: u64,
}

impl Attempt {
    /// Whether the receiver took it.
    pub(crate) fn delivered(&self) -> bool {
        self.status
            .is_some_and(|status| (200..300).contains(&status))
    }
}

/// The HTTP client deliveries use: no redirects, bounded time.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .user_agent(concat!("trustcaptcha-server/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// The body of a delivery.
pub(crate) fn body(alert: &Alert) -> String {
    json!({
        "id": alert.id,
        "type": alert.kind.name(),
        "created_at": rfc3339(alert.at),
        "site": alert.site,
        "data": alert.data,
    })
    .to_string()
}

/// The `trustcaptcha-signature` header of `body` signed with `secret` at `at`.
pub(crate) fn signature(secret: &str, at: OffsetDateTime, body: &str) -> String {
    let t = at.unix_timestamp();
    // HMAC takes a key of any length.
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body.as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// One attempt to deliver `alert` to `webhook`.
async fn attempt(
    client: &reqwest::Client,
    webhook: &Webhook,
    alert: &Alert,
    number: u32,
    now: OffsetDateTime,
) -> Attempt {
    let body = body(alert);
    let started = Instant::now();
    let answer = client
        .post(&webhook.url)
        .header("content-type", "application/json")
        .header("trustcaptcha-event", alert.kind.name())
        .header("trustcaptcha-delivery", alert.id.to_string())
        .header(
            "trustcaptcha-signature",
            signature(&webhook.secret, now, &body),
        )
        .body(body)
        .send()
        .await;
    let (status, error) = match answer {
        Ok(response) => (Some(response.status().as_u16()), None),
        // The error names the URL and the kind of failure, never the body.
        Err(error) => (None, Some(describe(&error))),
    };
    Attempt {
        at: now,
        delivery: alert.id.to_string(),
        event: alert.kind.name().to_owned(),
        attempt: number,
        status,
        error,
        millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "no answer in time".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    }
}

/// Counts `attempt` and writes it to `webhook`'s delivery log; a store failure loses only the
/// log line.
async fn note(state: &AppState, webhook: &Webhook, attempt: &Attempt) {
    state.metrics.delivery(attempt.delivered());
    let entry = JournalEntry {
        at: crate::store::millis(attempt.at),
        id: format!("{}:{}", attempt.delivery, attempt.attempt),
        value: serde_json::to_string(attempt).unwrap_or_default(),
    };
    let _ = state
        .store
        .append_journal(&journal(&webhook.id), vec![entry], LOG, state.clock.now())
        .await;
}

fn journal(id: &str) -> String {
    format!("deliveries:{id}")
}

/// Delivers `alert` to `webhook`, retrying after each of [`BACKOFF`] until it is taken; an
/// attempt holds one of the [`IN_FLIGHT`] places only while it is made, not while it waits.
async fn deliver_one(
    state: AppState,
    client: reqwest::Client,
    attempts: Arc<Semaphore>,
    webhook: Webhook,
    alert: Alert,
) {
    let waits = std::iter::once(Duration::ZERO).chain(BACKOFF);
    for (number, wait) in (1..).zip(waits) {
        tokio::time::sleep(wait).await;
        let Ok(_place) = attempts.acquire().await else {
            return;
        };
        let attempt = attempt(&client, &webhook, &alert, number, state.clock.now()).await;
        note(&state, &webhook, &attempt).await;
        if attempt.delivered() {
            return;
        }
        tracing::warn!(
            webhook = %webhook.id,
            event = alert.kind.name(),
            attempt = number,
            status = attempt.status,
            error = attempt.error.as_deref().unwrap_or_default(),
            "a webhook did not take an alert"
        );
    }
}

/// Delivers every alert raised on `state.alerts`, for as long as it runs (one task per server,
/// owned by `crate::tasks`).
pub(crate) async fn deliver(state: AppState, mut alerts: mpsc::Receiver<Alert>) {
    let client = client();
    let known: Mutex<Vec<Webhook>> = Mutex::default();
    let attempts = Arc::new(Semaphore::new(IN_FLIGHT));
    let under_way = Arc::new(Semaphore::new(UNDER_WAY));
    while let Some(alert) = alerts.recv().await {
        let webhooks = match webhooks::list(&state).await {
            Ok(list) => {
                (*known.lock()).clone_from(&list);
                list
            }
            Err(_) => known.lock().clone(),
        };
        for webhook in webhooks.into_iter().filter(|webhook| webhook.wants(&alert)) {
            let Ok(delivery) = Arc::clone(&under_way).try_acquire_owned() else {
                tracing::warn!(webhook = %webhook.id, event = alert.kind.name(),
                    "an alert was dropped: too many deliveries are under way");
                continue;
            };
            let (state, client, attempts, alert) = (
                state.clone(),
                client.clone(),
                Arc::clone(&attempts),
                alert.clone(),
            );
            tokio::spawn(async move {
                deliver_one(state, client, attempts, webhook, alert).await;
                drop(delivery);
            });
        }
    }
}

/// Sends a `webhook.test` alert to the webhook `id` once, now, and answers how it went.
///
/// # Errors
///
/// When the store fails (no such webhook is `Ok(None)`).
pub(crate) async fn test(state: &AppState, id: &str) -> Result<Option<Attempt>, StoreError> {
    let Some(webhook) = webhooks::find(state, id).await? else {
        return Ok(None);
    };
    let alert = Alert {
        id: uuid::Uuid::new_v4(),
        kind: crate::alerts::Kind::WebhookTest,
        at: state.clock.now(),
        site: webhook.site.clone(),
        data: json!({"message": "a test from the console"}),
        only: Some(webhook.id.clone()),
    };
    let attempt = attempt(&client(), &webhook, &alert, 1, state.clock.now()).await;
    note(state, &webhook, &attempt).await;
    Ok(Some(attempt))
}

/// The latest attempts of the webhook `id`, newest first.
///
/// # Errors
///
/// When the store fails.
pub(crate) async fn deliveries(
    state: &AppState,
    id: &str,
    limit: usize,
) -> Result<Vec<Attempt>, StoreError> {
    let entries = state
        .store
        .journal(&journal(id), 0, i64::MAX, limit)
        .await?;
    Ok(entries
        .iter()
        .filter_map(|entry| serde_json::from_str(&entry.value).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    /// A signature as a receiver checks it, against a value computed apart (Python's
    /// `hmac.new(b"whsec_test", b"1700000000.{}", "sha256").hexdigest()`).
    #[test]
    fn a_signature_is_the_hmac_of_the_time_and_the_body() {
        let at = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("time");
        assert_eq!(
            super::signature("whsec_test", at, "{}"),
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }
}
