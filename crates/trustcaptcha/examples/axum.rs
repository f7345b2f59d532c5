//! An axum app whose sign-up route is protected in one line by `TrustCaptchaLayer`.
//!
//! ```sh
//! cargo run --example axum --features axum     # serves on 127.0.0.1:3000 (EXAMPLE_LISTEN), prints a curl command
//! ```
//!
//! `TRUSTCAPTCHA_EXAMPLE_SELF_TEST=1` makes it call itself (once with a token, once without)
//! on a free port and exit.

#[path = "support/sandbox.rs"]
mod sandbox;

use axum::routing::post;
use axum::{Extension, Json, Router};
use serde_json::{Value, json};
use trustcaptcha::axum::TrustCaptchaLayer;
use trustcaptcha::guard::{Guard, Verified};
use trustcaptcha::policy::{DecisionPolicy, FailoverPolicy, Policy};
use trustcaptcha::trust_captcha::TrustCaptcha;

async fn signup(Extension(verified): Extension<Verified>, Json(form): Json<Value>) -> Json<Value> {
    // Only verified requests get here; `decision` is Allow or Challenge.
    Json(json!({
        "welcome": form["email"],
        "decision": format!("{:?}", verified.decision),
        "score": verified.result.map(|r| r.score),
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let sandbox = sandbox::Sandbox::start().await?;
    let client = TrustCaptcha::builder(&sandbox.api_key)
        .api_host(&sandbox.api_host)
        .build()?;
    let guard = Guard::new(client).policy(Policy::new(
        DecisionPolicy::new(0.8).challenge_above(0.4),
        FailoverPolicy::default(),
    ));
    let app = Router::new()
        .route("/signup", post(signup))
        .layer(TrustCaptchaLayer::new(guard));

    let self_test = std::env::var_os("TRUSTCAPTCHA_EXAMPLE_SELF_TEST").is_some();
    // EXAMPLE_LISTEN, or 127.0.0.1:3000 (not the server's 8080); any free port in the self-test.
    let listen = match std::env::var("EXAMPLE_LISTEN") {
        _ if self_test => "127.0.0.1:0".to_owned(),
        Ok(address) => address,
        Err(_) => "127.0.0.1:3000".to_owned(),
    };
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|error| format!("cannot listen on {listen}: {error}"))?;
    let address = listener.local_addr()?;
    let token = sandbox.token().await?;
    let body = json!({"email": "person@example.com", "verificationToken": token});
    if !self_test {
        println!(
            "try it:\n  curl -s -X POST http://{address}/signup -H 'content-type: application/json' -d '{body}'"
        );
        axum::serve(listener, app).await?;
        return Ok(());
    }
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    for request in [body, json!({"email": "bot@example.com"})] {
        let response = http
            .post(format!("http://{address}/signup"))
            .json(&request)
            .send()
            .await?;
        println!(
            "POST /signup -> {} {}",
            response.status(),
            response.text().await?
        );
    }
    Ok(())
}
