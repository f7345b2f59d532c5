//! [`TrustCaptcha`], the async client, and [`TrustCaptchaBuilder`], which configures it.
//!
//! The module path is the one the official guide imports:
//! `use trustcaptcha::trust_captcha::TrustCaptcha;`.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::errors::{Error, ErrorKind};
use crate::model::VerificationResult;
use crate::retrieval::{self, Body, Config, MAX_BODY_BYTES};
use crate::telemetry;
use crate::token::VerificationToken;

/// Fetches verification results from a TrustCaptcha server.
///
/// Build it once with [`TrustCaptcha::builder`] and share it: it holds one pooled HTTP client,
/// is immutable, and cloning it is one reference-count increment.
///
/// ```no_run
/// use trustcaptcha::trust_captcha::TrustCaptcha;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let trust_captcha = TrustCaptcha::builder("<your_api_key>").build()?;
/// let result = trust_captcha.get_verification_result("<verification_token_from_the_client>").await?;
/// if !result.verification_passed || result.score > 0.5 {
///     // possibly an automated request
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TrustCaptcha {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    http: reqwest::Client,
    /// Whether the API has ever answered this client; see
    /// [`ServerUnreachableError::api_answered_before`](crate::errors::ServerUnreachableError::api_answered_before).
    answered: AtomicBool,
}

impl TrustCaptcha {
    /// Starts configuring a client that authenticates with `api_key`.
    ///
    /// Defaults: host `https://api.trustcomponent.com`, connect timeout 3 s, read (total
    /// request) timeout 5 s, no proxy.
    pub fn builder(api_key: impl Into<String>) -> TrustCaptchaBuilder<TrustCaptcha> {
        TrustCaptchaBuilder::new(api_key.into())
    }

    /// Decodes `verification_token` and fetches its result.
    ///
    /// # Errors
    ///
    /// [`VerificationTokenInvalidError`](crate::errors::VerificationTokenInvalidError) before
    /// any network call when the token cannot be decoded; otherwise the typed error of the
    /// server's answer (see [`crate::errors`]), or
    /// [`ServerUnreachableError`](crate::errors::ServerUnreachableError) when no answer came.
    pub async fn get_verification_result(
        &self,
        verification_token: &str,
    ) -> Result<VerificationResult, Error> {
        let token = VerificationToken::decode(verification_token)?;
        self.get_verification_result_for(&token).await
    }

    /// Fetches the result of an already decoded token.
    ///
    /// # Errors
    ///
    /// As [`get_verification_result`](Self::get_verification_result), minus token decoding.
    pub async fn get_verification_result_for(
        &self,
        token: &VerificationToken,
    ) -> Result<VerificationResult, Error> {
        telemetry::observe(token, self.fetch(token)).await
    }

    /// Checks that the API answers and accepts the key, e.g. at start-up: it asks for the result
    /// of a verification that cannot exist. Until the API has answered once (this, or any
    /// verification), the default [`FailoverPolicy`](crate::FailoverPolicy) treats "unreachable"
    /// as a misconfiguration and rejects.
    ///
    /// # Errors
    ///
    /// [`ApiKeyInvalidError`](crate::errors::ApiKeyInvalidError) when the key is rejected,
    /// [`ServerUnreachableError`](crate::errors::ServerUnreachableError) when there is no
    /// answer, [`BuilderError`](crate::errors::BuilderError) for a refused TLS handshake.
    pub async fn probe(&self) -> Result<(), Error> {
        let token = VerificationToken::new(uuid::Uuid::nil(), time::OffsetDateTime::UNIX_EPOCH);
        match self.fetch(&token).await {
            Err(error)
                if matches!(
                    error.kind(),
                    ErrorKind::ServerUnreachable | ErrorKind::ApiKeyInvalid | ErrorKind::Builder
                ) =>
            {
                Err(error)
            }
            _ => Ok(()),
        }
    }

    async fn fetch(&self, token: &VerificationToken) -> Result<VerificationResult, Error> {
        let Inner {
            config,
            http,
            answered,
        } = &*self.inner;
        let sent = http.get(config.results_url(token)).send().await;
        let mut response =
            sent.map_err(|e| Error::unreachable(e, answered.load(Ordering::Relaxed)))?;
        answered.store(true, Ordering::Relaxed);
        let status = response.status();
        let mut body = Body {
            bytes: Vec::with_capacity(response.content_length().map_or(1024, |n| {
                usize::try_from(n)
                    .unwrap_or(MAX_BODY_BYTES)
                    .min(MAX_BODY_BYTES)
            })),
            truncated: false,
        };
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Error::unreachable(e, true))?
        {
            if body.bytes.len() + chunk.len() > MAX_BODY_BYTES {
                body.truncated = true;
                break;
            }
            body.bytes.extend_from_slice(&chunk);
        }
        config.interpret(status, &body)
    }
}

impl fmt::Debug for TrustCaptcha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = &self.inner.config;
        f.debug_struct("TrustCaptcha")
            .field("results_prefix", &config.results_prefix)
            .field("api_key", &"<redacted>")
            .field("connect_timeout", &config.connect_timeout)
            .field("read_timeout", &config.read_timeout)
            .field("proxy", &config.proxy.is_some())
            .finish()
    }
}

/// Configures a [`TrustCaptcha`] (or, with the `blocking` feature, a
/// `trustcaptcha::blocking::TrustCaptcha`).
///
/// Setters are cheap and infallible; everything is checked once, in `build()`.
#[must_use = "a builder does nothing until build() is called"]
pub struct TrustCaptchaBuilder<T = TrustCaptcha> {
    api_key: String,
    api_host: String,
    connect_timeout: Duration,
    read_timeout: Duration,
    proxy: Option<String>,
    root_certificates: Vec<Vec<u8>>,
    target: PhantomData<fn() -> T>,
}

impl<T> TrustCaptchaBuilder<T> {
    pub(crate) fn new(api_key: String) -> Self {
        TrustCaptchaBuilder {
            api_key,
            api_host: retrieval::DEFAULT_API_HOST.to_owned(),
            connect_timeout: retrieval::DEFAULT_CONNECT_TIMEOUT,
            read_timeout: retrieval::DEFAULT_READ_TIMEOUT,
            proxy: None,
            root_certificates: Vec::new(),
            target: PhantomData,
        }
    }

    /// The API host, e.g. a self-hosted `trustcaptcha-server` or a staging gateway.
    /// Default: `https://api.trustcomponent.com`.
    pub fn api_host(mut self, api_host: impl Into<String>) -> Self {
        self.api_host = api_host.into();
        self
    }

    /// How long to wait for the TCP (and TLS) connection. Default: 3 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long the whole request may take, connection included. Default: 5 s.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// Sends requests through this HTTP(S) proxy. Default: none (proxy environment variables
    /// are ignored, so behaviour does not depend on the host's environment).
    pub fn proxy(mut self, proxy_url: impl Into<String>) -> Self {
        self.proxy = Some(proxy_url.into());
        self
    }

    /// Also trusts this certificate authority (PEM), beside the system's: for a self-hosted
    /// server whose certificate a private authority signed, as in an air-gapped network. May be
    /// called for several.
    pub fn add_root_certificate(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.root_certificates.push(pem.as_ref().to_vec());
        self
    }

    /// The same settings, for building another kind of client.
    #[cfg(feature = "blocking")]
    pub(crate) fn retarget<U>(self) -> TrustCaptchaBuilder<U> {
        TrustCaptchaBuilder {
            api_key: self.api_key,
            api_host: self.api_host,
            connect_timeout: self.connect_timeout,
            read_timeout: self.read_timeout,
            proxy: self.proxy,
            root_certificates: self.root_certificates,
            target: PhantomData,
        }
    }

    fn config(&self) -> Result<Config, Error> {
        Config::new(
            &self.api_key,
            &self.api_host,
            self.connect_timeout,
            self.read_timeout,
            self.proxy.as_deref(),
            &self.root_certificates,
        )
    }
}

impl TrustCaptchaBuilder<TrustCaptcha> {
    /// Checks the configuration and builds the client with its connection pool.
    ///
    /// # Errors
    ///
    /// [`BuilderError`](crate::errors::BuilderError) when the API key is empty, the API host or
    /// proxy is not a usable URL, a timeout is zero, a root certificate is not PEM (or this
    /// build has no TLS), or the TLS backend cannot be initialised.
    pub fn build(self) -> Result<TrustCaptcha, Error> {
        let config = self.config()?;
        let http = config.http_client()?;
        Ok(TrustCaptcha {
            inner: Arc::new(Inner {
                config,
                http,
                answered: AtomicBool::new(false),
            }),
        })
    }
}

impl<T> fmt::Debug for TrustCaptchaBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustCaptchaBuilder")
            .field("api_key", &"<redacted>")
            .field("api_host", &self.api_host)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("proxy", &self.proxy.as_ref().map(|_| "<set>"))
            .field("root_certificates", &self.root_certificates.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_is_cheap_to_clone_and_shareable() {
        fn assert_traits<T: Clone + Send + Sync + 'static>() {}
        assert_traits::<TrustCaptcha>();
        assert_eq!(size_of::<TrustCaptcha>(), size_of::<usize>());
    }

    #[test]
    fn debug_never_shows_the_key_or_proxy_credentials() {
        let key = "ak_debug_secret_0123456789";
        let builder = TrustCaptcha::builder(key).proxy("http://user:hunter2@127.0.0.1:3128");
        let shown = format!("{builder:?}");
        assert!(
            !shown.contains(key) && !shown.contains("hunter2"),
            "{shown}"
        );
        let client = builder.build().expect("valid");
        let shown = format!("{client:?}");
        assert!(
            !shown.contains(key) && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(shown.contains("https://api.trustcomponent.com/v2/verifications/"));
    }
}
