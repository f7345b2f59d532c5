//! The demo site: a sign-up form protected by the official `<trustcaptcha-component>` widget.
//! Submitting it sends the verification token to this backend, which fetches the result with
//! the `trustcaptcha` crate (as the guide's actix example does), applies a [`Policy`], and
//! shows the decision and the full result.
//!
//! ```sh
//! ./scripts/demo.sh     # installs the widget with npm, starts server + demo, prints the URL
//! ```
//!
//! Without `--api-url` it starts an embedded `trustcaptcha-server` on loopback. The page takes
//! query parameters for the browser tests: `sitekey`, `minimal=1`, `failover=1`, `bypass=KEY`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use clap::Parser;
use serde::Deserialize;
use trustcaptcha::policy::{Decision, Policy};
use trustcaptcha::{Error, TrustCaptcha, VerificationResult};
use trustcaptcha_server::config::{Config, Site};
use trustcaptcha_server::secret::KeyHash;

const PAGE: &str = include_str!("../page.html");

/// No `Debug`: it holds the API key.
#[derive(Parser)]
#[command(about = "A demo site protected by the official TrustCaptcha widget")]
struct Args {
    /// Where the demo listens.
    #[arg(
        long,
        env = "TRUSTCAPTCHA_DEMO_LISTEN",
        default_value = "127.0.0.1:3000"
    )]
    listen: SocketAddr,
    /// A running trustcaptcha-server (or the hosted API); without it one is embedded.
    #[arg(long, requires_all = ["api_key", "site_key"])]
    api_url: Option<String>,
    /// The API key for `--api-url`.
    #[arg(long, env = "TRUSTCAPTCHA_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The site key the widget uses by default.
    #[arg(long)]
    site_key: Option<String>,
    /// Where pages load the widget from, e.g. a trustcaptcha-server's
    /// `http://…/widget/dist/bundles/trustcaptcha.umd.min.js`; without it the demo serves
    /// `--widget-script` itself.
    #[arg(long)]
    widget_url: Option<String>,
    /// The widget's bundle (from `npm ci --prefix e2e`), served when `--widget-url` is not given.
    #[arg(
        long,
        default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../e2e/node_modules/@trustcomponent/trustcaptcha-frontend/dist/bundles/trustcaptcha.umd.min.js")
    )]
    widget_script: PathBuf,
}

struct Demo {
    trust_captcha: TrustCaptcha,
    policy: Policy,
    api_url: String,
    site_key: String,
    /// The bundle the demo serves itself, when pages do not load it from `widget_src`.
    widget: Vec<u8>,
    /// The `src` of the page's widget script.
    widget_src: String,
    /// The embedded server, if any: it runs as long as the demo does.
    _embedded: Option<trustcaptcha_server::Spawned>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let widget_src = args
        .widget_url
        .clone()
        .unwrap_or_else(|| OWN_WIDGET.to_owned());
    // Its own copy is served whenever it can be read (`?widget=own` pages use it, e.g. while the
    // server that also serves the widget is down); without `--widget-url` it is required.
    let widget = match std::fs::read(&args.widget_script) {
        Ok(bundle) => bundle,
        Err(_) if args.widget_url.is_some() => Vec::new(),
        Err(e) => {
            return Err(format!(
                "cannot read the widget bundle {} ({e}); run `npm ci --prefix e2e` first",
                args.widget_script.display()
            )
            .into());
        }
    };
    let (api_url, api_key, site_key, embedded) = match (args.api_url, args.api_key, args.site_key) {
        (Some(url), Some(key), Some(site)) => (url, key, site, None),
        _ => {
            let (server, api_key, site_key) = embedded_server().await?;
            (server.url.clone(), api_key, site_key, Some(server))
        }
    };
    let demo = Arc::new(Demo {
        trust_captcha: TrustCaptcha::builder(api_key).api_host(&api_url).build()?,
        policy: Policy::default(),
        api_url,
        site_key,
        widget,
        widget_src,
        _embedded: embedded,
    });
    let app = Router::new()
        .route("/", get(form_page))
        .route("/submit", post(submit))
        .route(OWN_WIDGET, get(widget_script))
        .with_state(demo);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", args.listen))?;
    println!("demo listening on http://{}/", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(trustcaptcha_server::shutdown_signal())
        .await?;
    Ok(())
}

/// Starts a trustcaptcha-server with one demo site on a free loopback port; returns it with
/// the site's API key and site key.
async fn embedded_server()
-> Result<(trustcaptcha_server::Spawned, String, String), Box<dyn std::error::Error + Send + Sync>>
{
    let api_key = format!("ak_demo_{}", uuid::Uuid::new_v4().simple());
    let site = Site {
        api_keys: vec![KeyHash::of(&api_key)],
        difficulty: 10,
        ..Site::new("demo", uuid::Uuid::new_v4())
    };
    let site_key = site.site_key.to_string();
    let config = Config::new(vec![site]);
    let state = trustcaptcha_server::AppState::builder(config).build()?;
    let server = trustcaptcha_server::spawn(state, ([127, 0, 0, 1], 0).into()).await?;
    println!(
        "trustcaptcha-server listening on {} (site key {site_key})",
        server.url
    );
    Ok((server, api_key, site_key))
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    sitekey: Option<String>,
    minimal: Option<String>,
    failover: Option<String>,
    bypass: Option<String>,
    /// `own`: load the demo's own copy of the widget instead of `--widget-url`.
    widget: Option<String>,
}

/// Where the demo serves its own copy of the widget.
const OWN_WIDGET: &str = "/trustcaptcha.umd.min.js";

async fn form_page(State(demo): State<Arc<Demo>>, Query(query): Query<PageQuery>) -> Html<String> {
    let flag = |value: &Option<String>, attribute: &str| {
        if value.as_deref() == Some("1") {
            format!(" {attribute}")
        } else {
            String::new()
        }
    };
    let bypass = query
        .bypass
        .as_deref()
        .map(|key| format!(r#" bypass-token="{}""#, escape(key)))
        .unwrap_or_default();
    let body = format!(
        r#"<form id="signup" method="post" action="/submit">
    <label>E-mail <input name="email" type="email" autocomplete="off"></label>
    <trustcaptcha-component id="tc" sitekey="{sitekey}" api-url="{api_url}"{minimal}{failover}{bypass}></trustcaptcha-component>
    <button id="send" type="submit">Send</button>
  </form>
  <p class="hint">The widget talks to {api_url}; this page's backend verifies the token with the <code>trustcaptcha</code> crate.</p>
  <script>
    const tc = document.getElementById('tc');
    tc.addEventListener('captchaSolved', e => {{ window.__tcToken = e.detail; }});
    tc.addEventListener('captchaFailed', e => {{ window.__tcError = e.detail; }});
  </script>"#,
        sitekey = escape(query.sitekey.as_deref().unwrap_or(&demo.site_key)),
        api_url = escape(&demo.api_url),
        minimal = flag(&query.minimal, "minimal-data-mode"),
        failover = flag(&query.failover, "failover-enabled"),
    );
    Html(
        PAGE.replace("{{title}}", "Sign up")
            .replace(
                "{{widget}}",
                &escape(if query.widget.as_deref() == Some("own") {
                    OWN_WIDGET
                } else {
                    &demo.widget_src
                }),
            )
            .replace("{{body}}", &body),
    )
}

#[derive(Debug, Deserialize)]
struct Submission {
    #[serde(rename = "tc-verification-token", default)]
    token: String,
}

async fn submit(State(demo): State<Arc<Demo>>, Form(form): Form<Submission>) -> Response {
    let outcome = demo
        .trust_captcha
        .get_verification_result(&form.token)
        .await;
    let decision = demo.policy.decide(&outcome);
    let status = if matches!(outcome, Err(ref e) if e.kind() == trustcaptcha::ErrorKind::VerificationTokenInvalid)
    {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = PAGE
        .replace("{{title}}", "Sign-up checked")
        .replace("{{widget}}", &escape(&demo.widget_src))
        .replace("{{body}}", &result_body(&outcome, decision, &form.token));
    (status, Html(page)).into_response()
}

fn result_body(
    outcome: &Result<VerificationResult, Error>,
    decision: Decision,
    token: &str,
) -> String {
    let verdict = match decision {
        Decision::Allow => "Allowed: probably a human",
        Decision::Challenge => "Extra check needed",
        Decision::Reject => "Rejected",
    };
    let (kind, detail) = match outcome {
        Ok(result) => (
            "ok".to_owned(),
            format!(
                "<pre id=\"result\">{}</pre>",
                escape(&serde_json::to_string_pretty(result).unwrap_or_default())
            ),
        ),
        Err(error) => (
            format!("{:?}", error.kind()),
            format!("<p id=\"error\">{}</p>", escape(&error.to_string())),
        ),
    };
    format!(
        r#"<p class="decision {decision:?}" id="decision" data-decision="{decision:?}" data-outcome="{kind}">{verdict}</p>
  <p>Outcome of the fetch: <strong id="outcome">{kind}</strong></p>
  {detail}
  <form method="post" action="/submit">
    <input type="hidden" name="tc-verification-token" value="{token}">
    <button id="again" type="submit">Fetch the same token again</button>
  </form>
  <p><a href="/">Back to the form</a></p>"#,
        token = escape(token),
    )
}

async fn widget_script(State(demo): State<Arc<Demo>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        demo.widget.clone(),
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
