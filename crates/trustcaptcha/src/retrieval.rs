//! One retrieval of a result from the results API (see `docs/protocol.md`): the validated
//! configuration, the request's URL and headers, and the mapping of a response to a result or a
//! typed error. [`crate::trust_captcha`] sends it; `crate::blocking` drives the same client.

use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};

use crate::errors::Error;
use crate::model::VerificationResult;
use crate::token::VerificationToken;

/// The hosted service, as the guide's builder table says.
pub(crate) const DEFAULT_API_HOST: &str = "https://api.trustcomponent.com";
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
pub(crate) const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A result is about 800 bytes; anything far larger is not a result and is not read further.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// Everything a built client needs, checked once by the builder.
pub(crate) struct Config {
    /// `{api_host}/v2/verifications/`, to which the id and `/results` are appended.
    pub(crate) results_prefix: String,
    pub(crate) headers: HeaderMap,
    pub(crate) connect_timeout: Duration,
    pub(crate) read_timeout: Duration,
    pub(crate) proxy: Option<reqwest::Proxy>,
    /// Authorities trusted beside the system's, as PEM (read when the HTTP client is made).
    pub(crate) root_certificates: Vec<Vec<u8>>,
}

impl Config {
    /// Validates the builder's raw settings.
    pub(crate) fn new(
        api_key: &str,
        api_host: &str,
        connect_timeout: Duration,
        read_timeout: Duration,
        proxy: Option<&str>,
        root_certificates: &[Vec<u8>],
    ) -> Result<Self, Error> {
        let api_key = api_key.trim();
        if api_key.is_empty() {
            return Err(Error::builder("api key must not be empty"));
        }
        let mut authorization = HeaderValue::try_from(format!("Bearer {api_key}"))
            .map_err(|_| Error::builder("api key contains characters not allowed in a header"))?;
        authorization.set_sensitive(true);

        let mut headers = HeaderMap::with_capacity(3);
        headers.insert(reqwest::header::AUTHORIZATION, authorization);
        headers.insert(reqwest::header::USER_AGENT, user_agent());
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );

        // Only schemes this build can speak: a proxy it cannot use would fail every call,
        // and a failure to connect must not be mistaken for an outage.
        let proxy = proxy
            .map(|url| {
                reqwest::Url::parse(url)
                    .ok()
                    .filter(|u| u.scheme() == "http" || (u.scheme() == "https" && HTTPS))
                    .and_then(|u| reqwest::Proxy::all(u).ok())
                    .ok_or_else(|| {
                        Error::builder(if HTTPS {
                            "proxy must be an http:// or https:// URL"
                        } else {
                            "proxy must be an http:// URL (https needs the rustls or native-tls feature)"
                        })
                    })
            })
            .transpose()?;

        Ok(Config {
            results_prefix: format!("{}/v2/verifications/", parse_api_host(api_host)?),
            headers,
            connect_timeout: nonzero(connect_timeout, "connect timeout")?,
            read_timeout: nonzero(read_timeout, "read timeout")?,
            proxy,
            root_certificates: root_certificates.to_vec(),
        })
    }

    /// A pooled HTTP client with these settings: no redirects followed, no proxy from the
    /// environment.
    pub(crate) fn http_client(&self) -> Result<reqwest::Client, Error> {
        let mut builder = reqwest::Client::builder()
            .default_headers(self.headers.clone())
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.connect_timeout)
            .timeout(self.read_timeout)
            .no_proxy();
        if let Some(proxy) = self.proxy.clone() {
            builder = builder.proxy(proxy);
        }
        builder = with_root_certificates(builder, &self.root_certificates)?;
        builder
            .build()
            .map_err(|_| Error::builder("the HTTP client could not be initialised"))
    }

    /// The results URL for `token`. The host always comes from configuration, never from the
    /// token, so that a forged token cannot make us send the API key elsewhere.
    pub(crate) fn results_url(&self, token: &VerificationToken) -> String {
        let query = if token.client_failover {
            "?clientFailover=true"
        } else {
            ""
        };
        format!(
            "{}{}/results{query}",
            self.results_prefix, token.verification_id
        )
    }
}

fn nonzero(duration: Duration, what: &str) -> Result<Duration, Error> {
    if duration.is_zero() {
        Err(Error::builder(format!("{what} must be greater than zero")))
    } else {
        Ok(duration)
    }
}

/// `builder`, also trusting the authorities in `pems`.
#[cfg(any(feature = "rustls", feature = "native-tls"))]
fn with_root_certificates(
    mut builder: reqwest::ClientBuilder,
    pems: &[Vec<u8>],
) -> Result<reqwest::ClientBuilder, Error> {
    for pem in pems {
        let certificate = reqwest::Certificate::from_pem(pem)
            .map_err(|_| Error::builder("a root certificate is not a PEM certificate"))?;
        builder = builder.add_root_certificate(certificate);
    }
    Ok(builder)
}

/// `builder`, in a build without TLS: no authority can be trusted.
#[cfg(not(any(feature = "rustls", feature = "native-tls")))]
fn with_root_certificates(
    builder: reqwest::ClientBuilder,
    pems: &[Vec<u8>],
) -> Result<reqwest::ClientBuilder, Error> {
    if pems.is_empty() {
        Ok(builder)
    } else {
        Err(Error::builder(
            "a root certificate needs TLS (the rustls or native-tls feature)",
        ))
    }
}

/// Whether this build can speak TLS.
const HTTPS: bool = cfg!(any(feature = "rustls", feature = "native-tls"));

/// Checks the host and returns it without a trailing slash (a path prefix is kept, for
/// gateways that mount the API below a path).
fn parse_api_host(api_host: &str) -> Result<String, Error> {
    let invalid =
        || Error::builder("api host must be an http(s) URL such as https://api.trustcomponent.com");
    let url = reqwest::Url::parse(api_host.trim()).map_err(|_| invalid())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(invalid());
    }
    if url.scheme() == "https" && !HTTPS {
        return Err(Error::builder(
            "an https api host needs the rustls or native-tls feature",
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// `Trustcaptcha/<base64 of {"language":"rust","version":"…"}>`, the header by which the service
/// recognises its libraries.
fn user_agent() -> HeaderValue {
    let info = format!(
        r#"{{"language":"rust","version":"{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    let value = format!(
        "Trustcaptcha/{}",
        base64::engine::general_purpose::STANDARD.encode(info)
    );
    HeaderValue::try_from(value).expect("base64 is a valid header value")
}

/// A response body, read up to [`MAX_BODY_BYTES`].
pub(crate) struct Body {
    pub(crate) bytes: Vec<u8>,
    pub(crate) truncated: bool,
}

impl Config {
    /// Turns the response into the result or the typed error of its status.
    ///
    /// Error paths keep a piece of the body (or of the parser's message, which may quote it);
    /// a server or proxy that echoes the request would put the API key there, so it is cut out
    /// first. The success path does not look.
    pub(crate) fn interpret(
        &self,
        status: StatusCode,
        body: &Body,
    ) -> Result<VerificationResult, Error> {
        let parse_error = if status == StatusCode::OK && !body.truncated {
            match serde_json::from_slice(&body.bytes) {
                Ok(result) => return Ok(result),
                Err(e) => Some(e),
            }
        } else {
            None
        };
        let redacted = self.redact(&body.bytes);
        Err(match parse_error {
            _ if status != StatusCode::OK => Error::from_status(status, redacted.as_bytes()),
            Some(e) => Error::invalid_response(self.redact(e.to_string().as_bytes())),
            None => {
                Error::invalid_response(format!("the body is larger than {MAX_BODY_BYTES} bytes"))
            }
        })
    }

    /// `text` as a string with every occurrence of the API key replaced.
    fn redact(&self, text: &[u8]) -> String {
        let text = String::from_utf8_lossy(text);
        let key = self.headers[reqwest::header::AUTHORIZATION]
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default();
        if key.is_empty() {
            text.into_owned()
        } else {
            text.replace(key, "<redacted>")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::ErrorKind;

    fn config(api_key: &str, api_host: &str, proxy: Option<&str>) -> Result<Config, Error> {
        Config::new(
            api_key,
            api_host,
            DEFAULT_CONNECT_TIMEOUT,
            DEFAULT_READ_TIMEOUT,
            proxy,
            &[],
        )
    }

    #[test]
    fn user_agent_matches_the_official_format() {
        let value = user_agent();
        let encoded = value
            .to_str()
            .expect("ascii")
            .strip_prefix("Trustcaptcha/")
            .expect("prefix");
        let json = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("base64");
        let info: serde_json::Value = serde_json::from_slice(&json).expect("json");
        assert_eq!(info["language"], "rust");
        assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn builds_urls_from_the_configured_host_only() {
        let token: VerificationToken =
            "eyJ2ZXJpZmljYXRpb25JZCI6IjA3YjAxOTIyLTNmYWEtNDY2Ny1hNGE2LTkxMGE3NmNiOGFiNyJ9"
                .parse()
                .expect("valid");
        let config = config(" key ", "https://gw.example/captcha/", None).expect("valid");
        assert_eq!(
            config.results_url(&token),
            "https://gw.example/captcha/v2/verifications/07b01922-3faa-4667-a4a6-910a76cb8ab7/results"
        );
        let failover = VerificationToken {
            client_failover: true,
            ..token
        };
        assert!(
            config
                .results_url(&failover)
                .ends_with("/results?clientFailover=true")
        );
        assert_eq!(config.headers[reqwest::header::AUTHORIZATION], "Bearer key");
        assert!(config.headers[reqwest::header::AUTHORIZATION].is_sensitive());
    }

    #[test]
    fn rejects_unusable_configuration() {
        let bad = [
            ("", DEFAULT_API_HOST, None),
            ("  \t", DEFAULT_API_HOST, None),
            ("key\nwith-newline", DEFAULT_API_HOST, None),
            ("key", "api.trustcomponent.com", None),
            ("key", "ftp://api.trustcomponent.com", None),
            ("key", "https://api.trustcomponent.com/?x=1", None),
            ("key", "https://user:pw@api.trustcomponent.com", None),
            ("key", DEFAULT_API_HOST, Some("not a url")),
            ("key", DEFAULT_API_HOST, Some("file:///etc/passwd")),
        ];
        for (key, host, proxy) in bad {
            let error = config(key, host, proxy).err().expect("must fail");
            assert_eq!(error.kind(), ErrorKind::Builder, "{host} {proxy:?}");
            if !key.trim().is_empty() {
                assert!(!error.to_string().contains(key.trim()));
            }
        }
        let zero = Config::new(
            "k",
            DEFAULT_API_HOST,
            Duration::ZERO,
            DEFAULT_READ_TIMEOUT,
            None,
            &[],
        );
        assert_eq!(zero.err().map(|e| e.kind()), Some(ErrorKind::Builder));
        let not_pem = Config::new(
            "k",
            "http://captcha.internal",
            DEFAULT_CONNECT_TIMEOUT,
            DEFAULT_READ_TIMEOUT,
            None,
            &[b"not a certificate".to_vec()],
        )
        .expect("checked when the client is made")
        .http_client();
        assert_eq!(not_pem.err().map(|e| e.kind()), Some(ErrorKind::Builder));
    }

    #[test]
    fn interprets_statuses_and_bodies() {
        let body = |bytes: &[u8], truncated| Body {
            bytes: bytes.to_vec(),
            truncated,
        };
        let config = config("key", DEFAULT_API_HOST, None).expect("valid");
        let kind = |status: u16, b: &Body| {
            config
                .interpret(StatusCode::from_u16(status).expect("status"), b)
                .expect_err("error")
                .kind()
        };
        assert_eq!(kind(200, &body(b"{}", false)), ErrorKind::InvalidResponse);
        assert_eq!(
            kind(200, &body(b"<html>", false)),
            ErrorKind::InvalidResponse
        );
        assert_eq!(kind(200, &body(b"", true)), ErrorKind::InvalidResponse);
        assert_eq!(kind(201, &body(b"", false)), ErrorKind::Unknown);
        assert_eq!(kind(302, &body(b"", false)), ErrorKind::Unknown);
        assert_eq!(kind(404, &body(b"", true)), ErrorKind::VerificationNotFound);
    }
}
