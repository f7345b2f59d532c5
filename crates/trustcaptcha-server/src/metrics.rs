//! Prometheus metrics, rendered in the text format by `GET /metrics`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

/// A site's name: bounded by the configured sites (and `none` for a request no site claims).
/// Shared with the site, so that counting allocates nothing.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SiteLabels {
    site: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    site: Arc<str>,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    site: Arc<str>,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    outcome: &'static str,
}

/// The server's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<EndpointLabels, Histogram>,
    created: Family<SiteLabels, Counter>,
    solved: Family<OutcomeLabels, Counter>,
    failed: Family<ReasonLabels, Counter>,
    retrievals: Family<OutcomeLabels, Counter>,
    refused: Family<ReasonLabels, Counter>,
    stored: Gauge,
    store_up: Gauge,
    deliveries: Family<DeliveryLabels, Counter>,
    /// The site label of a retrieval with a key no site has.
    no_site: Arc<str>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("trustcaptcha");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by endpoint, method and status",
            requests.clone(),
        );
        let latency = Family::<EndpointLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.000_05, 2.0, 16))) as fn() -> Histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests",
            latency.clone(),
        );
        let created = Family::<SiteLabels, Counter>::default();
        registry.register(
            "verifications_created",
            "Verifications started by widgets",
            created.clone(),
        );
        let solved = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "verifications_solved",
            "Verifications finished, by how",
            solved.clone(),
        );
        let failed = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "verifications_failed",
            "Verification submissions rejected, by reason",
            failed.clone(),
        );
        let retrievals = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "result_retrievals",
            "Result retrievals by outcome",
            retrievals.clone(),
        );
        let refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "verifications_refused",
            "Create requests refused, by reason (the client's doing, not the store's)",
            refused.clone(),
        );
        let store_up = Gauge::default();
        registry.register(
            "store_up",
            "1 while this server's store calls succeed, 0 while they fail",
            store_up.clone(),
        );
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts: delivered, or failed (refused, or no answer)",
            deliveries.clone(),
        );
        let stored = Gauge::default();
        registry.register(
            "stored_verifications",
            "Pending and finished verifications held by the store (spent ones leave a marker only)",
            stored.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            created,
            solved,
            failed,
            retrievals,
            refused,
            stored,
            store_up,
            deliveries,
            no_site: Arc::from("none"),
        }
    }
}

impl Metrics {
    /// Counts one answered HTTP request and its latency. Labels are static strings, so this
    /// allocates nothing.
    pub(crate) fn request(
        &self,
        endpoint: &'static str,
        method: &'static str,
        status: u16,
        seconds: f64,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint,
                method,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&EndpointLabels { endpoint })
            .observe(seconds);
    }

    /// Counts a verification started by a widget for `site`.
    pub(crate) fn created(&self, site: &Arc<str>) {
        self.created
            .get_or_create(&SiteLabels {
                site: Arc::clone(site),
            })
            .inc();
    }

    /// Counts a finished verification of `site`: `proof_of_work` or `bypass_key`.
    pub(crate) fn solved(&self, site: &Arc<str>, outcome: &'static str) {
        self.solved
            .get_or_create(&OutcomeLabels {
                site: Arc::clone(site),
                outcome,
            })
            .inc();
    }

    /// Counts a refused create request for `site`.
    pub(crate) fn refused(&self, site: &Arc<str>, reason: &'static str) {
        self.refused
            .get_or_create(&ReasonLabels {
                site: Arc::clone(site),
                reason,
            })
            .inc();
    }

    /// Sets whether this server's store calls succeed.
    pub(crate) fn store_up(&self, up: bool) {
        self.store_up.set(i64::from(up));
    }

    /// Counts a webhook delivery attempt.
    pub(crate) fn delivery(&self, delivered: bool) {
        let outcome = if delivered { "delivered" } else { "failed" };
        self.deliveries
            .get_or_create(&DeliveryLabels { outcome })
            .inc();
    }

    /// Counts a rejected submission for `site`.
    pub(crate) fn failed(&self, site: &Arc<str>, reason: &'static str) {
        self.failed
            .get_or_create(&ReasonLabels {
                site: Arc::clone(site),
                reason,
            })
            .inc();
    }

    /// Counts a result retrieval by outcome (`ok`, `not_found`, `expired`, …) for `site` (the
    /// first site of the caller's key; `none` for a key of no site).
    pub(crate) fn retrieved(&self, site: Option<&Arc<str>>, outcome: &'static str) {
        self.retrievals
            .get_or_create(&OutcomeLabels {
                site: Arc::clone(site.unwrap_or(&self.no_site)),
                outcome,
            })
            .inc();
    }

    /// The text exposition, with the store's current size when the store could tell it.
    #[must_use]
    pub(crate) fn render(&self, stored: Option<usize>) -> String {
        if let Some(stored) = stored {
            self.stored.set(i64::try_from(stored).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}
