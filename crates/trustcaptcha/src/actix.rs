//! actix-web integration (feature `actix`): the same guard as an extractor and a middleware.
//!
//! Put a [`Guard`] in the app data (`web::Data<Guard>`), then either
//!
//! * wrap routes with [`middleware`] (via `actix_web::middleware::from_fn`): it finds the token
//!   (header, form field or JSON field), verifies it, applies the policy, and either answers
//!   with the [`Rejection`] or passes the request on, body intact, with the [`Verified`]
//!   outcome in its extensions; or
//! * take [`Verified`] as a handler argument: after the middleware it reads the outcome from the
//!   extensions; without it, it verifies a token from the header sources itself.
//!
//! [`Rejection`] implements `ResponseError` (a status and `{"error": code, "message": …}`).
//! To answer differently, take `Result<Verified, Rejection>` in the handler.
//!
//! ```no_run
//! use actix_web::{App, HttpResponse, middleware::from_fn, web};
//! use trustcaptcha::guard::{Guard, Verified};
//! use trustcaptcha::TrustCaptcha;
//!
//! # fn app() -> Result<(), trustcaptcha::Error> {
//! let guard = web::Data::new(Guard::new(TrustCaptcha::builder("<your_api_key>").build()?));
//! let app = App::new().app_data(guard).service(
//!     web::resource("/signup")
//!         .wrap(from_fn(trustcaptcha::actix::middleware))
//!         .route(web::post().to(|verified: Verified| async move {
//!             HttpResponse::Ok().json(verified.result)
//!         })),
//! );
//! # Ok(())
//! # }
//! ```

use std::future::{Future, ready};
use std::pin::Pin;

use ::actix_web::body::{EitherBody, MessageBody};
use ::actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use ::actix_web::http::StatusCode;
use ::actix_web::http::header::CONTENT_TYPE;
use ::actix_web::middleware::Next;
use ::actix_web::web::{Bytes, BytesMut, Data};
use ::actix_web::{FromRequest, HttpMessage as _, HttpRequest, HttpResponse, ResponseError};
use futures_util::StreamExt as _;

pub use crate::guard::{Guard, Rejection, Verified};

impl ResponseError for Rejection {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status()).unwrap_or(StatusCode::FORBIDDEN)
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(self.body())
    }
}

impl FromRequest for Verified {
    type Error = Rejection;
    type Future = Pin<Box<dyn Future<Output = Result<Verified, Rejection>>>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        if let Some(verified) = request.extensions().get::<Verified>() {
            return Box::pin(ready(Ok(verified.clone())));
        }
        let Some(guard) = request.app_data::<Data<Guard>>().cloned() else {
            return Box::pin(ready(Err(Rejection::Misconfigured)));
        };
        let token = guard.find_token(
            |name| request.headers().get(name).and_then(|v| v.to_str().ok()),
            None,
            b"",
        );
        Box::pin(async move { guard.verify(token.as_deref()).await })
    }
}

/// Lets only verified requests through; use with `actix_web::middleware::from_fn`. The
/// [`Guard`] comes from the app data (`web::Data<Guard>`). A rejected request is answered with
/// the [`Rejection`]'s response and never reaches the inner service.
///
/// # Errors
///
/// Only the inner service's errors.
pub async fn middleware<B: MessageBody>(
    mut request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, ::actix_web::Error> {
    match check(&mut request).await {
        Ok(()) => Ok(next.call(request).await?.map_into_left_body()),
        Err(rejection) => Ok(request
            .into_response(rejection.error_response())
            .map_into_right_body()),
    }
}

/// Verifies the request and records the outcome in its extensions, putting the body back.
async fn check(request: &mut ServiceRequest) -> Result<(), Rejection> {
    let guard = request
        .app_data::<Data<Guard>>()
        .cloned()
        .ok_or(Rejection::Misconfigured)?;
    let body = if guard.reads_body() {
        read_limited(request.take_payload(), guard.body_limit()).await?
    } else {
        Bytes::new()
    };
    let headers = request.headers();
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let token = guard.find_token(
        |name| headers.get(name).and_then(|v| v.to_str().ok()),
        content_type,
        &body,
    );
    let verified = guard.verify(token.as_deref()).await?;
    if guard.reads_body() {
        request.set_payload(Payload::from(body));
    }
    request.extensions_mut().insert(verified);
    Ok(())
}

async fn read_limited(mut payload: Payload, limit: usize) -> Result<Bytes, Rejection> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| Rejection::BodyTooLarge)?;
        if body.len() + chunk.len() > limit {
            return Err(Rejection::BodyTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
