//! A minimum rate for request bodies: after a short grace period a body must keep arriving at
//! `server.min_body_bytes_per_sec`, or reading it fails and the request is answered 408. With the
//! total body timeout and the size limit this bounds how long, and with how little traffic, a
//! client can hold a request's memory.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body::Frame;
use tokio::time::{Instant, Sleep};

use crate::state::AppState;

/// How long a body may take before the rate applies (a request's first bytes may be slow).
const GRACE: Duration = Duration::from_secs(2);

/// The error a body too slow to keep up gives; the JSON extractor answers it with 408.
#[derive(Debug, thiserror::Error)]
#[error("the request body arrived too slowly")]
pub(crate) struct TooSlow;

/// Wraps every request body in [`MinimumRate`].
pub(crate) async fn minimum_rate(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let per_second = state.settings.min_body_bytes_per_sec;
    next.run(request.map(|body| Body::new(MinimumRate::new(body, per_second))))
        .await
}

pin_project_lite::pin_project! {
    /// A body that fails once it falls behind `per_second` bytes per second (after [`GRACE`]).
    pub(crate) struct MinimumRate {
        #[pin]
        inner: Body,
        #[pin]
        deadline: Sleep,
        started: Instant,
        received: u64,
        per_second: u64,
    }
}

impl MinimumRate {
    fn new(inner: Body, per_second: u64) -> Self {
        let started = Instant::now();
        MinimumRate {
            inner,
            deadline: tokio::time::sleep_until(started + GRACE),
            started,
            received: 0,
            per_second: per_second.max(1),
        }
    }
}

impl http_body::Body for MinimumRate {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    *this.received += u64::try_from(data.len()).unwrap_or(u64::MAX);
                    // By then the next byte is due: the bytes so far, at the minimum rate.
                    let earned =
                        Duration::from_secs_f64(*this.received as f64 / *this.per_second as f64);
                    this.deadline.as_mut().reset(*this.started + GRACE + earned);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending if this.deadline.poll(cx).is_ready() => {
                Poll::Ready(Some(Err(axum::Error::new(TooSlow))))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
