//! axum integration (feature `axum`): protect a route in one line.
//!
//! * [`TrustCaptchaLayer`] guards a router: it finds the token (header, form field or JSON
//!   field, see [`TokenSource`](crate::guard::TokenSource)), verifies it, applies the
//!   [`Policy`](crate::policy::Policy), and either answers with the [`Rejection`] or passes the
//!   request on, body intact, with the [`Verified`] outcome in its extensions.
//! * [`Verified`] is also an extractor: after the layer it reads the outcome from the
//!   extensions; without it, it verifies a token from the header sources itself (taking the
//!   [`Guard`] from state via `FromRef`).
//! * [`Rejection`] implements `IntoResponse`: a status and `{"error": code, "message": …}`.
//!   Customise it as with axum's own rejections: take `Result<Verified, Rejection>` in the
//!   handler, or give the layer [`TrustCaptchaLayer::on_rejection`].
//!
//! ```no_run
//! use axum::{Json, Router, routing::post};
//! use trustcaptcha::axum::TrustCaptchaLayer;
//! use trustcaptcha::guard::{Guard, Verified};
//! use trustcaptcha::TrustCaptcha;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let guard = Guard::new(TrustCaptcha::builder("<your_api_key>").build()?);
//! let app: Router = Router::new()
//!     .route("/signup", post(|axum::Extension(verified): axum::Extension<Verified>| async move {
//!         Json(verified.result)
//!     }))
//!     .layer(TrustCaptchaLayer::new(guard));
//! # Ok(())
//! # }
//! ```

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::axum::body::Body;
use ::axum::extract::{FromRef, FromRequestParts, Request};
use ::axum::http::request::Parts;
use ::axum::http::{StatusCode, header};
use ::axum::response::{IntoResponse, Response};

pub use crate::guard::{Guard, Rejection, Verified};

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::FORBIDDEN);
        (status, ::axum::Json(self.body())).into_response()
    }
}

impl<S> FromRequestParts<S> for Verified
where
    Guard: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Rejection> {
        if let Some(verified) = parts.extensions.get::<Verified>() {
            return Ok(verified.clone());
        }
        let guard = Guard::from_ref(state);
        let token = guard.find_token(|name| header_str(parts, name), None, b"");
        guard.verify(token.as_deref()).await
    }
}

fn header_str<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get(name)
        .and_then(|value| value.to_str().ok())
}

/// Verifies a request before the inner service sees it.
///
/// # Errors
///
/// The [`Rejection`] when the body is too large, no token is found, or the policy rejects.
pub async fn verify_request(guard: &Guard, request: Request) -> Result<Request, Rejection> {
    let (mut parts, body) = request.into_parts();
    // The body is buffered only when a source needs it, and handed on unchanged.
    let (body, bytes) = if guard.reads_body() {
        let bytes = ::axum::body::to_bytes(body, guard.body_limit())
            .await
            .map_err(|_| Rejection::BodyTooLarge)?;
        (Body::from(bytes.clone()), bytes)
    } else {
        (body, Default::default())
    };
    let content_type = header_str(&parts, header::CONTENT_TYPE.as_str());
    let token = guard.find_token(|name| header_str(&parts, name), content_type, &bytes);
    let verified = guard.verify(token.as_deref()).await?;
    parts.extensions.insert(verified);
    Ok(Request::from_parts(parts, body))
}

type OnRejection = Arc<dyn Fn(Rejection) -> Response + Send + Sync>;

/// A tower layer that lets only verified requests through; see the [module docs](self).
#[derive(Clone)]
pub struct TrustCaptchaLayer {
    guard: Guard,
    on_rejection: Option<OnRejection>,
}

impl TrustCaptchaLayer {
    /// Guards with `guard`; rejections answer with [`Rejection`]'s own response.
    #[must_use]
    pub fn new(guard: Guard) -> Self {
        TrustCaptchaLayer {
            guard,
            on_rejection: None,
        }
    }

    /// Answers rejections with `respond` instead (e.g. a redirect back to the form, or an HTML
    /// page).
    #[must_use]
    pub fn on_rejection(
        mut self,
        respond: impl Fn(Rejection) -> Response + Send + Sync + 'static,
    ) -> Self {
        self.on_rejection = Some(Arc::new(respond));
        self
    }
}

impl fmt::Debug for TrustCaptchaLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustCaptchaLayer")
            .field("guard", &self.guard)
            .field("on_rejection", &self.on_rejection.is_some())
            .finish()
    }
}

impl<S> tower::Layer<S> for TrustCaptchaLayer {
    type Service = TrustCaptchaService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TrustCaptchaService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`TrustCaptchaLayer`] wraps around a route.
#[derive(Clone, Debug)]
pub struct TrustCaptchaService<S> {
    inner: S,
    layer: TrustCaptchaLayer,
}

impl<S> tower::Service<Request> for TrustCaptchaService<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The clone that was polled ready is the one that must be called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            match verify_request(&layer.guard, request).await {
                Ok(request) => inner.call(request).await,
                Err(rejection) => Ok(match &layer.on_rejection {
                    Some(respond) => respond(rejection),
                    None => rejection.into_response(),
                }),
            }
        })
    }
}
