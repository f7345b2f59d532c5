//! What the widget does, without a browser: create a verification, solve its proof-of-work
//! natively, submit it, and return the verification token. For automated tests of sites that
//! use a self-hosted server (`trustcaptcha-server solve`).
//!
//! The requests are honest about being automated (no browser headers, no user events, the
//! proof-of-work solved far faster than a browser could), so on a site with risk scoring the
//! result scores above 0.5 and is blocked. Automated tests that must pass use the sandbox site
//! or a bypass key ([`SolveOptions::bypass_key`]).

use base64::Engine as _;
use serde_json::json;
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::integrity::{BrowserInformation, integrity_hash};
use crate::pow;
use crate::protocol::{
    Answer, ChallengeBody, CreateRequest, FinishedBody, HoneypotField, SubmitRequest, WidgetInfo,
};

/// What to solve and how to present the request. Its `Debug` output hides the bypass key.
#[derive(Clone)]
pub struct SolveOptions {
    /// The server, e.g. `http://127.0.0.1:8080`.
    pub api_url: String,
    /// The site key.
    pub site_key: String,
    /// Sent as the `Origin` header (sites that restrict origins need it).
    pub origin: Option<String>,
    /// A bypass key to send as the widget's `bypass-token`.
    pub bypass_key: Option<String>,
    /// Whether to ask in minimal-data mode (must match the site).
    pub minimal_data_mode: bool,
}

impl std::fmt::Debug for SolveOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SolveOptions")
            .field("api_url", &self.api_url)
            .field("site_key", &self.site_key)
            .field("origin", &self.origin)
            .field(
                "bypass_key",
                &self.bypass_key.as_ref().map(|_| "<redacted>"),
            )
            .field("minimal_data_mode", &self.minimal_data_mode)
            .finish()
    }
}

impl SolveOptions {
    /// Solves for `site_key` at `api_url`, without origin or bypass key, in standard mode.
    #[must_use]
    pub fn new(api_url: impl Into<String>, site_key: impl Into<String>) -> Self {
        SolveOptions {
            api_url: api_url.into(),
            site_key: site_key.into(),
            origin: None,
            bypass_key: None,
            minimal_data_mode: false,
        }
    }
}

/// Why solving failed.
#[derive(Debug, thiserror::Error)]
pub enum SolveError {
    /// The server could not be reached.
    #[error("the server could not be reached: {0}")]
    Http(#[from] reqwest::Error),
    /// The server answered with an error status.
    #[error("the server answered {status} to the {step} request: {body}")]
    Status {
        /// `create` or `submit`.
        step: &'static str,
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The server's answer could not be understood.
    #[error("the server's answer to the {step} request is not valid: {source}")]
    Body {
        /// `create` or `submit`.
        step: &'static str,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// Runs a verification end to end and returns the verification token.
///
/// # Errors
///
/// When a request fails or the server rejects a step.
pub async fn solve(options: &SolveOptions) -> Result<String, SolveError> {
    let http = reqwest::Client::builder().no_proxy().build()?;
    let base = options.api_url.trim_end_matches('/');
    let box_created = OffsetDateTime::now_utc();
    let mut fields = vec![
        ("window-navigator-userAgent", json!(user_agent())),
        ("dom-automationNote", json!(false)),
        ("intl-locale", json!("en-US")),
    ];
    if let Some(origin) = &options.origin {
        fields.push(("window-origin", json!(origin)));
        fields.push(("window-location-href", json!(format!("{origin}/"))));
    }
    let browser_information: BrowserInformation = fields
        .into_iter()
        .map(|(key, value)| (key.to_owned(), raw(&value)))
        .collect();
    let create = CreateRequest {
        site_key: options.site_key.clone(),
        widget: WidgetInfo {
            box_creation_timestamp: Some(box_created),
            start_solving_timestamp: Some(OffsetDateTime::now_utc()),
            minimal_data_mode: options.minimal_data_mode,
            bypass_key: options.bypass_key.clone(),
        },
        integrity_hash: integrity_hash(&browser_information),
        browser_information,
        honeypot_fields: HoneypotField::untouched(),
        user_events: Vec::new(),
        fingerprints: crate::protocol::Fingerprints::default(),
    };
    let mut request = http.post(format!("{base}/v2/verifications")).json(&create);
    if let Some(origin) = &options.origin {
        request = request.header(reqwest::header::ORIGIN, origin);
    }
    let (status, body) = send(request, "create").await?;
    if status == 201 {
        return token(&body, "create");
    }
    let mut challenge: ChallengeBody = parse(&body, "create")?;
    // The widget keeps solving while the server answers 200 with a further challenge.
    loop {
        let started = OffsetDateTime::now_utc();
        let tasks: Vec<Answer> = challenge
            .challenge
            .tasks
            .iter()
            .map(|task| {
                let input = base64::engine::general_purpose::STANDARD
                    .decode(&task.input)
                    .unwrap_or_default();
                Answer {
                    number: task.number,
                    nonce: pow::solve(&input, challenge.challenge.difficulty),
                }
            })
            .collect();
        let submit = SubmitRequest {
            start_solving_timestamp: Some(started),
            solved_timestamp: Some(OffsetDateTime::now_utc()),
            tasks,
            honeypot_fields: HoneypotField::untouched(),
            user_events: Vec::new(),
        };
        let url = format!(
            "{base}/v2/verifications/{}/challenges",
            challenge.challenge.verification_id
        );
        let (status, body) = send(http.post(url).json(&submit), "submit").await?;
        if status == 201 {
            return token(&body, "submit");
        }
        challenge = parse(&body, "submit")?;
    }
}

fn raw(value: &serde_json::Value) -> Box<RawValue> {
    RawValue::from_string(value.to_string()).expect("a serialized value is valid JSON")
}

async fn send(
    request: reqwest::RequestBuilder,
    step: &'static str,
) -> Result<(u16, Vec<u8>), SolveError> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let body = response.bytes().await?.to_vec();
    if status == 200 || status == 201 {
        Ok((status, body))
    } else {
        let body = String::from_utf8_lossy(&body).chars().take(200).collect();
        Err(SolveError::Status { step, status, body })
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8], step: &'static str) -> Result<T, SolveError> {
    serde_json::from_slice(body).map_err(|source| SolveError::Body { step, source })
}

fn token(body: &[u8], step: &'static str) -> Result<String, SolveError> {
    parse::<FinishedBody>(body, step).map(|body| body.finished.verification_token)
}

fn user_agent() -> String {
    format!("trustcaptcha-server-solve/{}", env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_bypass_key() {
        let options = SolveOptions {
            bypass_key: Some("bypass-secret-123".into()),
            ..SolveOptions::new("http://127.0.0.1:1", "site")
        };
        let shown = format!("{options:?}");
        assert!(!shown.contains("bypass-secret-123"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
