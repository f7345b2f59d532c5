//! The axum integration against a real trustcaptcha-server, over real HTTP.
#![cfg(feature = "axum")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::server::{SERVER_API_KEY, start, token};
use axum::extract::{FromRef, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::post;
use axum::{Extension, Form, Json, Router};
use serde_json::{Value, json};
use trustcaptcha::TrustCaptcha;
use trustcaptcha::axum::TrustCaptchaLayer;
use trustcaptcha::guard::{Guard, Rejection, TokenSource, Verified};
use trustcaptcha::policy::{Decision, DecisionPolicy, FailoverPolicy, Policy};

fn guard(api_url: &str) -> Guard {
    Guard::new(
        TrustCaptcha::builder(SERVER_API_KEY)
            .api_host(api_url)
            .build()
            .expect("client"),
    )
}

/// Serves a `/signup` route guarded by `layer`; the handler counts its runs and echoes what it
/// read from the (intact) body.
async fn serve_guarded(layer: TrustCaptchaLayer) -> (String, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let app = Router::new()
        .route(
            "/signup",
            post(
                move |Extension(verified): Extension<Verified>, Json(body): Json<Value>| {
                    let counter = counter.clone();
                    async move {
                        counter.fetch_add(1, Ordering::SeqCst);
                        Json(json!({
                            "email": body["email"],
                            "decision": format!("{:?}", verified.decision),
                            "passed": verified.result.map(|r| r.verification_passed),
                        }))
                    }
                },
            ),
        )
        .route(
            "/form",
            post(
                |Extension(verified): Extension<Verified>,
                 Form(form): Form<std::collections::HashMap<String, String>>| async move {
                    Json(json!({"email": form.get("email"), "decision": format!("{:?}", verified.decision)}))
                },
            ),
        )
        .layer(layer);
    (serve(app).await, runs)
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn post_json(url: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_layer_passes_verified_requests_with_the_body_intact_and_blocks_the_rest() {
    let server = start().await;
    let api = server.url.clone();
    let (app, runs) = serve_guarded(TrustCaptchaLayer::new(guard(&api))).await;
    let signup = format!("{app}/signup");

    let token = token(&server).await;
    let (status, body) = post_json(
        &signup,
        &json!({"email": "a@b.c", "verificationToken": token}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"email": "a@b.c", "decision": "Allow", "passed": true})
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    let cases = [
        (json!({"email": "a@b.c"}), 400, "captcha_missing"),
        (
            json!({"verificationToken": "not a token"}),
            400,
            "captcha_invalid",
        ),
        (
            json!({"verificationToken": token}),
            403,
            "captcha_not_usable",
        ),
    ];
    for (request, status, code) in cases {
        let (got, body) = post_json(&signup, &request).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(code)),
            "{body}"
        );
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the handler never ran for a rejected request"
    );
}

#[tokio::test]
async fn the_widgets_form_field_is_read_and_the_form_still_parses() {
    let server = start().await;
    let api = server.url.clone();
    let (app, _) = serve_guarded(TrustCaptchaLayer::new(guard(&api))).await;
    let token = token(&server).await;
    let response = reqwest::Client::new()
        .post(format!("{app}/form"))
        .form(&[
            ("email", "x@y.z"),
            ("tc-verification-token", token.as_str()),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["email"], "x@y.z");
}

#[tokio::test]
async fn thresholds_decide_between_allow_challenge_and_reject() {
    let server = start().await;
    let api = server.url.clone();
    // The scripted browser scores 0.5.
    let challenge = Policy::new(
        DecisionPolicy::new(0.8).challenge_above(0.4),
        FailoverPolicy::default(),
    );
    let (app, _) = serve_guarded(TrustCaptchaLayer::new(guard(&api).policy(challenge))).await;
    let (status, body) = post_json(
        &format!("{app}/signup"),
        &json!({"verificationToken": token(&server).await}),
    )
    .await;
    assert_eq!(
        (status, body["decision"].as_str()),
        (200, Some("Challenge"))
    );

    let strict = Policy::new(DecisionPolicy::new(0.1), FailoverPolicy::default());
    let (app, runs) = serve_guarded(TrustCaptchaLayer::new(guard(&api).policy(strict))).await;
    let (status, body) = post_json(
        &format!("{app}/signup"),
        &json!({"verificationToken": token(&server).await}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("captcha_rejected"))
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn failover_policy_allows_or_denies_when_the_server_is_unreachable() {
    let server = start().await;
    let token = token(&server).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let unreachable = guard(&format!("http://{closed}"));

    // This client never reached the API: by default that is a misconfiguration, not an outage.
    let (app, runs) = serve_guarded(TrustCaptchaLayer::new(unreachable.clone())).await;
    let (status, _) = post_json(
        &format!("{app}/signup"),
        &json!({"verificationToken": token}),
    )
    .await;
    assert_eq!(status, 503, "never reached: rejected");
    assert_eq!(runs.load(Ordering::SeqCst), 0);

    let outage = Policy::new(
        DecisionPolicy::default(),
        FailoverPolicy::default().allow_before_first_answer(true),
    );
    let (app, runs) =
        serve_guarded(TrustCaptchaLayer::new(unreachable.clone().policy(outage))).await;
    let (status, body) = post_json(
        &format!("{app}/signup"),
        &json!({"verificationToken": token}),
    )
    .await;
    assert_eq!(status, 200, "default policy: allow and log");
    assert_eq!(body["passed"], Value::Null, "no result to show");
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    let strict = Policy::new(DecisionPolicy::default(), FailoverPolicy::strict());
    let (app, runs) = serve_guarded(TrustCaptchaLayer::new(unreachable.policy(strict))).await;
    let (status, body) = post_json(
        &format!("{app}/signup"),
        &json!({"verificationToken": token}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("captcha_unavailable"))
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn rejections_can_be_customised_and_large_bodies_are_refused() {
    let server = start().await;
    let api = server.url.clone();
    let layer =
        TrustCaptchaLayer::new(guard(&api).max_body(1024)).on_rejection(|rejection: Rejection| {
            Redirect::to(&format!("/?captcha={}", rejection.code())).into_response()
        });
    let (app, runs) = serve_guarded(layer).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = client
        .post(format!("{app}/signup"))
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/?captcha=captcha_missing");
    let big = json!({"verificationToken": "x", "pad": "y".repeat(4096)});
    let response = client
        .post(format!("{app}/signup"))
        .json(&big)
        .send()
        .await
        .expect("request");
    assert_eq!(response.headers()["location"], "/?captcha=body_too_large");
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

#[derive(Clone)]
struct AppState {
    guard: Guard,
}

impl FromRef<AppState> for Guard {
    fn from_ref(state: &AppState) -> Guard {
        state.guard.clone()
    }
}

#[tokio::test]
async fn the_extractor_works_without_the_layer_from_a_header() {
    let server = start().await;
    let api = server.url.clone();
    let state = AppState {
        guard: guard(&api).token_sources([TokenSource::Header("X-Captcha".into())]),
    };
    let app = Router::new()
        .route(
            "/api",
            post(
                |State(_): State<AppState>, verified: Result<Verified, Rejection>| async move {
                    match verified {
                        Ok(verified) => {
                            Json(json!({"decision": format!("{:?}", verified.decision)}))
                                .into_response()
                        }
                        // A custom answer instead of the rejection's own.
                        Err(rejection) => {
                            (axum::http::StatusCode::IM_A_TEAPOT, rejection.code()).into_response()
                        }
                    }
                },
            ),
        )
        .with_state(state);
    let app = serve(app).await;
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{app}/api"))
        .header("x-captcha", token(&server).await)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.expect("json")["decision"],
        format!("{:?}", Decision::Allow)
    );
    let response = client
        .post(format!("{app}/api"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 418);
    assert_eq!(response.text().await.expect("text"), "captcha_missing");
}

#[tokio::test]
async fn a_misconfigured_api_key_is_a_server_error_without_details() {
    let server = start().await;
    let wrong_key = Guard::new(
        TrustCaptcha::builder("ak_not_configured_anywhere")
            .api_host(&server.url)
            .build()
            .expect("client"),
    );
    let (app, runs) = serve_guarded(TrustCaptchaLayer::new(wrong_key)).await;
    let (status, body) = post_json(
        &format!("{app}/signup"),
        &json!({"verificationToken": token(&server).await}),
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(
        body,
        json!({"error": "captcha_error", "message": "the captcha could not be checked"})
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}
