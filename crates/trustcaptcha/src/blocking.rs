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
use std::sync::Arc;

use crate::errors::Error;
use crate::model::VerificationResult;
use crate::token::VerificationToken;
use crate::trust_captcha::TrustCaptchaBuilder;

/// The blocking counterpart of [`crate::TrustCaptcha`]: the async client driven by a small
/// runtime of its own (one worker thread), so both send the same request and report the same
/// errors. One pooled client, cheap to clone.
#[derive(Clone)]
pub struct TrustCaptcha {
    inner: Arc<Inner>,
}

struct Inner {
    client: crate::TrustCaptcha,
    runtime: tokio::runtime::Runtime,
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
        let Inner { client, runtime } = &*self.inner;
        runtime.block_on(client.get_verification_result_for(token))
    }
}

impl TrustCaptchaBuilder<TrustCaptcha> {
    /// Checks the configuration and builds the blocking client with its connection pool.
    ///
    /// # Errors
    ///
    /// As [`crate::TrustCaptchaBuilder::build`], and when the client's runtime cannot be
    /// started.
    pub fn build(self) -> Result<TrustCaptcha, Error> {
        let client = self.retarget::<crate::TrustCaptcha>().build()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("trustcaptcha-blocking")
            .enable_all()
            .build()
            .map_err(|_| Error::builder("the blocking client's runtime could not be started"))?;
        Ok(TrustCaptcha {
            inner: Arc::new(Inner { client, runtime }),
        })
    }
}

impl fmt::Debug for TrustCaptcha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::TrustCaptcha")
            .field("client", &self.inner.client)
            .finish_non_exhaustive()
    }
}
