//! The `tracing` feature: one span per verification, carrying the verification id, the
//! outcome's HTTP status (or error kind) and the latency. Never the API key or the token.
//!
//! Without the feature these functions only run the work they are given.

use crate::errors::Error;
use crate::model::VerificationResult;
use crate::token::VerificationToken;

type Outcome = Result<VerificationResult, Error>;

#[cfg(feature = "tracing")]
mod enabled {
    use std::time::Instant;

    use tracing::Instrument as _;
    use tracing::field::Empty;

    use super::{Outcome, VerificationToken};

    fn span(token: &VerificationToken) -> tracing::Span {
        tracing::info_span!(
            "trustcaptcha.verification",
            verification_id = %token.verification_id,
            client_failover = token.client_failover,
            status = Empty,
            error = Empty,
            latency_ms = Empty,
        )
    }

    fn record(span: &tracing::Span, outcome: &Outcome, started: Instant) {
        // To the microsecond, without a float's noise in its last digits.
        let latency_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        span.record("latency_ms", latency_ms);
        match outcome {
            Ok(result) => {
                span.record("status", 200);
                tracing::debug!(
                    parent: span,
                    verification_passed = result.verification_passed,
                    score = result.score,
                    "verification result fetched"
                );
            }
            Err(error) => {
                if let Some(status) = error.status() {
                    span.record("status", status.as_u16());
                }
                span.record("error", tracing::field::debug(error.kind()));
                tracing::debug!(parent: span, %error, "verification result not fetched");
            }
        }
    }

    pub(crate) async fn observe(
        token: &VerificationToken,
        work: impl Future<Output = Outcome>,
    ) -> Outcome {
        let span = span(token);
        let started = Instant::now();
        let outcome = work.instrument(span.clone()).await;
        record(&span, &outcome, started);
        outcome
    }
}

#[cfg(feature = "tracing")]
pub(crate) use enabled::*;

#[cfg(not(feature = "tracing"))]
pub(crate) async fn observe(
    _token: &VerificationToken,
    work: impl Future<Output = Outcome>,
) -> Outcome {
    work.await
}
