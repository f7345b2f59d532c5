//! The edge of every request: the client's address, worked out once (see
//! [`crate::client_address`]) and handed to the handlers; one access log line at info level
//! (method, route, status, latency, the client's network, site, the reason of a refusal and the
//! detection signals of a finished verification, the JA4 of a create request's TLS client; never
//! a header or body, so no key or token);
//! the request metrics; and `Cache-Control: no-store` on every answer.
//!
//! The network is an IPv4 address or an IPv6 /64 (what the limits count, so that an operator can
//! trace a lockout), and only the block (a /24, a /48) for a visitor of a minimal-data site.
//!
//! A tower layer rather than a `from_fn` middleware: it sits on every request, and as a plain
//! future around the inner one it costs neither a boxed future nor a clone of the router.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderValue, Method, header};
use axum::response::Response;
use tower::{Layer, Service};
use tracing::Span;

use super::extract::ClientIp;
use super::{MinimalData, ROUTES, Reason, SiteName};
use crate::access_line::AccessLine;
use crate::signals::Signals;
use crate::state::AppState;
use crate::tls::TlsClient;

/// Wraps a service in [`Edge`].
#[derive(Debug, Clone)]
pub(crate) struct EdgeLayer(pub(crate) AppState);

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            state: self.0.clone(),
        }
    }
}

/// Logs and counts each request the inner service answers.
#[derive(Debug, Clone)]
pub(crate) struct Edge<S> {
    inner: S,
    state: AppState,
}

impl<S, B> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response<B>>,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = EdgeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let peer = request
            .extensions()
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|peer| peer.0);
        let client = ClientIp::of(&self.state, peer, request.headers());
        request.extensions_mut().insert(client);
        // Routing happened: the route is known, and labels stay a closed set.
        let endpoint = request
            .extensions()
            .get::<MatchedPath>()
            .and_then(|path| ROUTES.into_iter().find(|route| *route == path.as_str()))
            .unwrap_or("unmatched");
        let method = match *request.method() {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::OPTIONS => "OPTIONS",
            Method::HEAD => "HEAD",
            _ => "other",
        };
        let span = tracing::debug_span!("request", %method, route = %endpoint);
        let inner = span.in_scope(|| self.inner.call(request));
        EdgeFuture {
            inner,
            span,
            started: Instant::now(),
            endpoint,
            method,
            client: client.0,
            state: self.state.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's answer, logged and counted when it is ready.
    pub(crate) struct EdgeFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        started: Instant,
        endpoint: &'static str,
        method: &'static str,
        client: Option<std::net::IpAddr>,
        state: AppState,
    }
}

impl<F, B, E> Future for EdgeFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = {
            let _entered = this.span.enter();
            ready!(this.inner.poll(cx))?
        };
        let status = response.status().as_u16();
        let elapsed = this.started.elapsed();
        let extensions = response.extensions();
        let signals = extensions
            .get::<Signals>()
            .map(|signals| signals.fired().collect::<Vec<_>>().join(","))
            .filter(|fired| !fired.is_empty());
        AccessLine {
            method: this.method,
            route: this.endpoint,
            status,
            network: this.client.map(|ip| {
                if extensions.get::<MinimalData>().is_some() {
                    crate::networks::block(ip)
                } else {
                    crate::networks::network(ip)
                }
            }),
            latency: elapsed,
            site: extensions.get::<SiteName>().map(|site| &*site.0),
            reason: extensions.get::<Reason>().map(|reason| reason.0),
            signals: signals.as_deref(),
            tls: extensions.get::<TlsClient>().map(|tls| &tls.0),
        }
        .log();
        this.state
            .metrics
            .request(this.endpoint, this.method, status, elapsed.as_secs_f64());
        if !response.headers().contains_key(header::CACHE_CONTROL) {
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        Poll::Ready(Ok(response))
    }
}
