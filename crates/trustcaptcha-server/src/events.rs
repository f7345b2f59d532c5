//! What happened to verifications, counted in one place: the service core reports each outcome
//! once, as an [`Event`], and [`record`] feeds it to the Prometheus metrics and the site's
//! statistics. Handlers and layers count nothing of their own about verifications (the edge
//! layer counts HTTP requests, which is another thing).

use std::sync::Arc;
use std::time::Duration;

use trustcaptcha::VerificationResult;

use crate::access::AccessRule;
use crate::signals::Signals;
use crate::state::AppState;
use crate::statistics;

/// One outcome of the service core.
#[derive(Debug)]
pub(crate) enum Event<'a> {
    /// A challenge was handed out.
    Created,
    /// A create request was refused (`reason`: the refusal's label).
    Refused {
        /// Why.
        reason: &'static str,
    },
    /// A create request could not be served: the store failed (`reason`: `store_full` or
    /// `store_unavailable`).
    Unserved {
        /// Why.
        reason: &'static str,
    },
    /// A verification finished (`how`: `proof_of_work` or `bypass_key`).
    Solved {
        /// How it finished.
        how: &'static str,
        /// Its result.
        result: &'a VerificationResult,
        /// The detection signals that fired.
        signals: Signals,
        /// From the challenge to the solution.
        solve: Duration,
        /// The access rule that decided it, if one did.
        access_rule: Option<AccessRule>,
    },
    /// A submission's proof-of-work was wrong (`reason`: the error's label).
    Failed {
        /// Why.
        reason: &'static str,
    },
    /// A backend asked for a result (`outcome`: `ok`, `fixture`, `failover` or a refusal's
    /// label).
    Retrieved {
        /// How it was answered.
        outcome: &'static str,
    },
}

/// Counts `event` of `site` (`None`: a request that names no site, e.g. a key of none; only a
/// retrieval is counted then, in the metrics).
pub(crate) fn record(state: &AppState, site: Option<&Arc<str>>, event: Event<'_>) {
    let (metrics, statistics) = (&state.metrics, &state.statistics);
    if let Event::Retrieved { outcome } = event {
        metrics.retrieved(site, outcome);
    }
    let Some(site) = site else {
        return;
    };
    let now = state.clock.now();
    match event {
        Event::Created => {
            metrics.created(site);
            statistics.count(site, "created", now);
        }
        Event::Refused { reason } => {
            metrics.refused(site, reason);
            statistics.count(site, statistics::Event::named("refused", reason), now);
            state.alerts.note_refusal(site);
        }
        Event::Unserved { reason } => {
            statistics.count(site, statistics::Event::named("unserved", reason), now);
        }
        Event::Solved {
            how,
            result,
            signals,
            solve,
            access_rule,
        } => {
            metrics.solved(site, how);
            statistics.count(site, "solved", now);
            if statistics::log::blocked(result) {
                state.alerts.note_refusal(site);
            }
            let finished = statistics::log::Finished {
                result,
                signals,
                solve,
                access_rule,
                how,
            };
            statistics.finished(site, &finished, now);
        }
        Event::Failed { reason } => {
            metrics.failed(site, reason);
            statistics.count(site, "failed", now);
        }
        Event::Retrieved { outcome } => {
            statistics.count(site, statistics::Event::named("retrieval", outcome), now);
        }
    }
}
