//! Submitting a solution: the pending verification is claimed under a lease, the
//! proof-of-work verified, the visitor scored and the result stored.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Counted, Error, Refusal, RequestContext, count_finished, finished, token_for};
use crate::config::Site;
use crate::detection;
use crate::events::{self, Event};
use crate::pow;
use crate::protocol::{FinishedBody, SubmitRequest};
use crate::scoring;
use crate::signals::Signals;
use crate::state::AppState;
use crate::store::{Finished, Lease, Store as _, StoreError, TrackedStore};

/// How long a submission holds its claim before another submission of the same verification
/// may take over (a claimant that crashed strands nothing for longer).
const CLAIM_LEASE: Duration = Duration::from_secs(30);

/// What a submission that solved the proof-of-work gets, and what the access log names.
#[derive(Debug)]
pub(crate) struct Solved {
    /// The verification token (201).
    pub body: FinishedBody,
    /// The site it was for.
    pub site: Arc<Site>,
    /// The detection signals that fired.
    pub signals: Signals,
}

/// Verifies a submission and finishes the verification.
///
/// # Errors
///
/// [`Refusal::NoPendingVerification`] when nothing can be claimed,
/// [`Refusal::ProofOfWork`] when the answers are wrong (the verification is then forgotten), or
/// a store failure.
pub(crate) async fn submit(
    state: &AppState,
    id: Uuid,
    request: SubmitRequest,
    context: &RequestContext,
) -> Result<Solved, Error> {
    let ip = context.ip;
    let now = state.clock.now();
    state.limits.submit(ip)?;
    let lease = Lease::new(now, CLAIM_LEASE);
    let pending = state
        .store
        .claim(id, lease, now)
        .await?
        .ok_or(Error::Refused(Refusal::NoPendingVerification))?;
    // In minimal-data mode no address was kept: the submitter's stands in.
    state
        .limits
        .settle(pending.visitor.ip.or(ip), pending.site_key);
    let claim = Claim {
        store: state.store.clone(),
        id,
        lease: Some(lease),
    };
    let Some(site) = state.site(pending.site_key) else {
        // The site was removed from the configuration since the challenge was handed out.
        claim.abandon().await?;
        return Err(Refusal::NoPendingVerification.into());
    };

    if let Err(error) = pow::verify(&pending.tasks, pending.difficulty, &request.tasks) {
        claim.abandon().await?;
        let reason = error.label();
        events::record(state, Some(&site.name), Event::Failed { reason });
        return Err(Refusal::ProofOfWork(error).into());
    }

    let observed = (now - pending.created_at).try_into().unwrap_or_default();
    let signals = if site.scores() {
        // 0: nothing to compare (an earlier release, or a site not scored when it was created).
        let same_request = pending.request == 0
            || detection::request_fingerprint(&context.headers, context.tls.as_ref())
                == pending.request;
        detection::at_submit(pending.signals, &request, observed, same_request)
    } else {
        pending.signals
    };
    let access_rule = pending.access_rule;
    let verdict = scoring::verdict(&site, access_rule, &signals);
    // Only an access rule fails a verification; one that fails spends no one's quota.
    let counted = if !verdict.passed {
        Counted::Blocked
    } else {
        Counted::Solved
    };
    let visitor_ip = pending.visitor.ip.or(ip);
    let finished = finished(
        &site,
        id,
        pending.visitor,
        (pending.created_at, now),
        verdict,
    );
    let result = finished.result.clone();
    // Judged at the time of finishing: verifying the work took a while since `now`.
    claim.finish(finished, state.clock.now()).await?;
    count_finished(state, &site, visitor_ip, counted, now).await;
    events::record(
        state,
        Some(&site.name),
        Event::Solved {
            how: "proof_of_work",
            result: &result,
            signals,
            solve: observed,
            access_rule,
        },
    );
    Ok(Solved {
        body: token_for(state, &site, id, now),
        site,
        signals,
    })
}

/// A claim held by a submission. Dropped while still held (the submission was cancelled), it
/// releases the verification back to pending in the background.
struct Claim {
    store: TrackedStore,
    id: Uuid,
    lease: Option<Lease>,
}

impl Claim {
    /// Stores the result. The lease stays in `self` until the store has answered, so a
    /// cancellation during the call still releases the claim; a failure releases it too, so the
    /// widget (or its retry) can submit again.
    async fn finish(mut self, finished: Finished, now: OffsetDateTime) -> Result<(), StoreError> {
        let lease = self.lease.expect("held until finished or abandoned");
        self.store
            .finish_claimed(self.id, lease, finished, now)
            .await?;
        self.lease = None;
        Ok(())
    }

    async fn abandon(mut self) -> Result<(), StoreError> {
        let lease = self.lease.expect("held until finished or abandoned");
        self.store.abandon(self.id, lease).await?;
        self.lease = None;
        Ok(())
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        let (store, id) = (self.store.clone(), self.id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                // NotClaimant: the lease lapsed and someone else holds it; nothing to undo.
                if let Err(error) = store.release(id, lease).await {
                    tracing::debug!(%error, "a cancelled submission's claim was not released");
                }
            });
        }
        // Without a runtime the lease simply lapses.
    }
}
