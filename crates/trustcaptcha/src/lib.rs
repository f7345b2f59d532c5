//! Verify [TrustCaptcha](https://www.trustcomponent.com/en/products/captcha) verification tokens
//! from a Rust backend.
//!
//! When a user solves the captcha widget in the browser, your frontend receives a *verification
//! token* and sends it to your backend. The backend uses this crate to fetch the *verification
//! result* from the TrustCaptcha API (the hosted service or a self-hosted
//! `trustcaptcha-server`) and decides what to do with the request.
//!
//! # 1. Add the dependency
//!
//! ```text
//! cargo add trustcaptcha-rs
//! ```
//!
//! The package is `trustcaptcha-rs` (the registry name `trustcaptcha` belongs to the official
//! crate); its library is named `trustcaptcha`, so the code below, and the official integration
//! guide's, uses `trustcaptcha::…` unchanged. In `Cargo.toml`: `trustcaptcha-rs = "3.1"`.
//!
//! # 2. Fetch the result
//!
//! Build one [`TrustCaptcha`] at start-up and reuse it: it holds a pooled HTTP client and is
//! cheap to clone into every handler.
//!
//! ```no_run
//! use trustcaptcha::trust_captcha::TrustCaptcha;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let trust_captcha = TrustCaptcha::builder("<your_api_key>").build()?;
//! let result = trust_captcha.get_verification_result("<verification_token_from_the_client>").await?;
//! # Ok(())
//! # }
//! ```
//!
//! # 3. Evaluate the result
//!
//! ```no_run
//! # fn evaluate(result: trustcaptcha::VerificationResult) {
//! if !result.verification_passed || result.score > 0.5 {
//!     // possibly an automated request
//! }
//! # }
//! ```
//!
//! The same check, a custom threshold and the results API's multi-level decision are ready-made in
//! [`policy`]. All 20 fields of the result are in [`VerificationResult`].
//!
//! # Configured usage
//!
//! ```no_run
//! use std::time::Duration;
//! use trustcaptcha::trust_captcha::TrustCaptcha;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let trust_captcha = TrustCaptcha::builder("<your_api_key>")
//!     .api_host("https://api.trustcomponent.com")
//!     .connect_timeout(Duration::from_secs(3))
//!     .read_timeout(Duration::from_secs(5))
//!     .proxy("http://proxy.example.com:8080")
//!     .build()?;
//!
//! let result = trust_captcha.get_verification_result("<verification_token_from_the_client>").await?;
//! # Ok(())
//! # }
//! ```
//!
//! | Method | Default | Description |
//! |---|---|---|
//! | [`TrustCaptcha::builder(api_key)`](TrustCaptcha::builder) | — | Your API key; must not be empty. |
//! | [`.api_host(host)`](TrustCaptchaBuilder::api_host) | `https://api.trustcomponent.com` | The API host, e.g. a self-hosted server. |
//! | [`.connect_timeout(d)`](TrustCaptchaBuilder::connect_timeout) | 3 s | Connect timeout. |
//! | [`.read_timeout(d)`](TrustCaptchaBuilder::read_timeout) | 5 s | Total request timeout. |
//! | [`.proxy(url)`](TrustCaptchaBuilder::proxy) | none | HTTP proxy URL. |
//! | [`.add_root_certificate(pem)`](TrustCaptchaBuilder::add_root_certificate) | the system's | Also trust this authority (a self-hosted server's private CA). |
//! | [`.build()`](TrustCaptchaBuilder::build) | — | Validates and builds the client. |
//!
//! # Failover
//!
//! Two errors tell an outage apart from a forged claim of one:
//!
//! ```no_run
//! use trustcaptcha::errors::{ClientReportedServerUnreachableError, ServerUnreachableError};
//! # async fn run(trust_captcha: trustcaptcha::TrustCaptcha, token: &str) {
//! match trust_captcha.get_verification_result(token).await {
//!     Ok(result) => {
//!         // Handle the result as you normally would.
//!     }
//!     Err(e) if e.is::<ServerUnreachableError>() => {
//!         // Our servers are unreachable: e.g. allow and log.
//!     }
//!     Err(e) if e.is::<ClientReportedServerUnreachableError>() => {
//!         // The widget claimed an outage but the backend reaches us: e.g. reject.
//!     }
//!     Err(_) => {
//!         // Other error.
//!     }
//! }
//! # }
//! ```
//!
//! [`policy::FailoverPolicy`] writes this decision down once. It fails closed where a
//! hand-written `match` easily fails open: "unreachable" counts as an outage only after the API
//! has answered this client at least once (call [`TrustCaptcha::probe`] at start-up), so a wrong
//! host or a firewall does not wave bots through; a refused TLS handshake, a wrong proxy scheme
//! or an `https` host in a build without TLS are configuration errors, never outages. For flows
//! where security outweighs availability, `DecisionPolicy::reject_failover_results(true)` also
//! refuses results a server synthesized during an outage.
//!
//! # Errors
//!
//! Every failure is an [`Error`]. Ask for its cause with [`Error::is`] /
//! [`Error::downcast_ref`] as above, or `match` on [`Error::kind`]:
//!
//! | Error type | When |
//! |---|---|
//! | [`ApiKeyInvalidError`] | The API key was rejected (HTTP 403). |
//! | [`VerificationTokenInvalidError`] | The token could not be parsed (no network call is made). |
//! | [`VerificationNotFoundError`] | No verification for the token (HTTP 404). |
//! | [`VerificationNotFinishedError`] | The user has not finished the verification (HTTP 423). |
//! | [`VerificationResultExpiredError`] | The result has expired (HTTP 410). |
//! | [`VerificationResultRetrievalLimitReachedError`] | The result was fetched as often as allowed (HTTP 429). |
//! | [`ServerUnreachableError`] | The server could not be reached (connection error, timeout). |
//! | [`ClientReportedServerUnreachableError`] | The widget claimed a failover the server has no record of (HTTP 412). |
//! | [`InvalidResponseError`] | HTTP 200, but the body is not a verification result. |
//! | [`UnknownError`] | Any other HTTP status; keeps the status and the start of the body. |
//! | [`BuilderError`] | `build()` was given an unusable configuration. |
//!
//! # Modules
//!
//! * [`trust_captcha`]: the async client and its builder.
//! * [`token`]: decoding the verification token (no I/O).
//! * [`model`]: the verification result.
//! * [`errors`]: the error value and its typed causes.
//! * [`policy`]: decision and failover policies.
//! * `blocking` (feature `blocking`): the same client without async.
//! * `guard` (features `axum`, `actix`): token lookup and policy for web frameworks, used by
//!   `axum` (feature `axum`: extractor and tower layer) and `actix` (feature `actix`: extractor
//!   and middleware).
//!
//! # Features
//!
//! * `rustls` (default): TLS through rustls; no OpenSSL in the dependency tree.
//! * `native-tls`: TLS through the platform library instead.
//! * `blocking`: [`blocking::TrustCaptcha`].
//! * `tracing`: a span per verification with its id, status and latency (never the key).
//! * `axum`, `actix`: protect a route in one line (see the `axum` and `actix` modules).

#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "actix")]
pub mod actix;
#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "blocking")]
pub mod blocking;
pub mod errors;
#[cfg(any(feature = "axum", feature = "actix"))]
pub mod guard;
pub mod model;
pub mod policy;
#[cfg(feature = "client")]
mod retrieval;
#[cfg(feature = "client")]
mod telemetry;
pub mod token;
#[cfg(feature = "client")]
pub mod trust_captcha;

pub use errors::{
    ApiKeyInvalidError, BuilderError, ClientReportedServerUnreachableError, Error, ErrorKind,
    InvalidResponseError, ServerUnreachableError, UnknownError, VerificationNotFinishedError,
    VerificationNotFoundError, VerificationResultExpiredError,
    VerificationResultRetrievalLimitReachedError, VerificationTokenInvalidError,
};
pub use model::{DecisionAction, DecisionType, VerificationResult};
pub use policy::{Decision, DecisionPolicy, FailoverPolicy, Policy};
pub use token::VerificationToken;
#[cfg(feature = "client")]
pub use trust_captcha::{TrustCaptcha, TrustCaptchaBuilder};
