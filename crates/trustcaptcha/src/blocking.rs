//! A blocking client for backends without an async runtime (feature `blocking`).
//!
//! Same builder, same errors, same results as the async [`crate::TrustCaptcha`]:
//!
//! ```no_run
//! use trustcaptcha::blocking::TrustCaptcha;
//!
//! let trust_captcha = TrustCaptcha::builder("<your_api_key>").build()?;
//! let result = trust_captcha.get_verification_result("<verification_token_from_the_client>")?;
//! if !result.verification_passed || result.score > 0.5 {
//!     // possibly an automated request
//! }
//! # Ok::<(), trustcaptcha::Error>(())
//! ```
//!
//! Like `reqwest::blocking`, it must not be built, used or dropped inside an async runtime;
//! async code uses [`crate::TrustCaptcha`].

use std::fmt;
use std::io::Read as _;
use std::sync::Arc;

use crate::api::{Body, Config, MAX_BODY_BYTES};
use crate::errors::Error;
use crate::model::VerificationResult;
use crate::telemetry;
use crate::token::VerificationToken;
use crate::trust_captcha::TrustCaptchaBuilder;

/// The blocking counterpart of [`crate::TrustCaptcha`]: one pooled client, cheap to clone.
#[derive(Clone)]
pub struct TrustCaptcha {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    http: reqwest::blocking::Client,
}

impl TrustCaptcha {
    /// Starts configuring a client that authenticates with `api_key`; see
    /// [`TrustCaptchaBuilder`] for the defaults.
    pub fn builder(api_key: impl Into<String>) -> TrustCaptchaBuilder<TrustCaptcha> {
        TrustCaptchaBuilder::new(api_key.into())
    }

    /// Decodes `verification_token` and fetches its result, blocking the current thread.
    ///
    /// # Errors
    ///
    /// As [`crate::TrustCaptcha::get_verification_result`].
    pub fn get_verification_result(
        &self,
        verification_token: &str,
    ) -> Result<VerificationResult, Error> {
        let token = VerificationToken::decode(verification_token)?;
        self.get_verification_result_for(&token)
    }

    /// Fetches the result of an already decoded token, blocking the current thread.
    ///
    /// # Errors
    ///
    /// As [`crate::TrustCaptcha::get_verification_result_for`].
    pub fn get_verification_result_for(
        &self,
        token: &VerificationToken,
    ) -> Result<VerificationResult, Error> {
        telemetry::observe_blocking(token, || self.fetch(token))
    }

    fn fetch(&self, token: &VerificationToken) -> Result<VerificationResult, Error> {
        let Inner { config, http } = &*self.inner;
        let response = http
            .get(config.results_url(token))
            .send()
            .map_err(Error::unreachable)?;
        let status = response.status();
        let mut bytes = Vec::new();
        let limit = u64::try_from(MAX_BODY_BYTES + 1).unwrap_or(u64::MAX);
        if let Err(error) = response.take(limit).read_to_end(&mut bytes) {
            // reqwest::blocking surfaces its own errors through io::Error.
            return match error.into_inner().map(|e| e.downcast::<reqwest::Error>()) {
                Some(Ok(e)) => Err(Error::unreachable(*e)),
                _ => Err(Error::invalid_response("the body could not be read".into())),
            };
        }
        let truncated = bytes.len() > MAX_BODY_BYTES;
        bytes.truncate(MAX_BODY_BYTES);
        config.interpret(status, &Body { bytes, truncated })
    }
}

impl TrustCaptchaBuilder<TrustCaptcha> {
    /// Checks the configuration and builds the blocking client with its connection pool.
    ///
    /// # Errors
    ///
    /// As [`crate::TrustCaptchaBuilder::build`].
    pub fn build(self) -> Result<TrustCaptcha, Error> {
        let config = self.config()?;
        let http = crate::api::http_client!(reqwest::blocking::Client::builder(), &config)?;
        Ok(TrustCaptcha {
            inner: Arc::new(Inner { config, http }),
        })
    }
}

impl fmt::Debug for TrustCaptcha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::TrustCaptcha")
            .field("results_prefix", &self.inner.config.results_prefix)
            .field("api_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}
