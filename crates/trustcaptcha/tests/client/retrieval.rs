//! The async client against real HTTP servers on loopback.

use std::time::Duration;

use crate::support::{API_KEY, Reply, SEED_RESULT, TestApi, token};
use trustcaptcha::errors::*;
use trustcaptcha::policy::{Decision, FailoverPolicy};
use trustcaptcha::trust_captcha::TrustCaptcha;
use trustcaptcha::{DecisionType, VerificationResult};

const SEED_ID: &str = "07b01922-3faa-4667-a4a6-910a76cb8ab7";

fn client(api_host: &str) -> TrustCaptcha {
    TrustCaptcha::builder(format!("  {API_KEY}\n"))
        .api_host(api_host)
        .build()
        .expect("valid configuration")
}

/// Every secret-bearing rendering of an error: it must never contain the key or the token.
fn assert_no_secrets(error: &Error, token: &str) {
    let mut rendered = format!("{error} | {error:?}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        rendered.push_str(&format!(" | {cause}"));
        source = cause.source();
    }
    assert!(!rendered.contains(API_KEY), "{rendered}");
    assert!(token.is_empty() || !rendered.contains(token), "{rendered}");
}

#[tokio::test]
async fn fetches_the_result_with_the_documented_request() {
    let api = TestApi::start([(SEED_ID, Reply::new(200, SEED_RESULT))]).await;
    let tc = client(&format!("{}/", api.url()));

    let result = tc
        .get_verification_result(&token(SEED_ID, ""))
        .await
        .expect("result");
    let expected: VerificationResult = serde_json::from_str(SEED_RESULT).expect("seed");
    assert_eq!(result, expected);

    let requests = api.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        request.path_and_query,
        format!("/v2/verifications/{SEED_ID}/results")
    );
    assert_eq!(
        request.headers["authorization"],
        format!("Bearer {API_KEY}").as_str()
    );
    let agent = request.headers["user-agent"].to_str().expect("ascii");
    assert!(
        agent.starts_with("Trustcaptcha/eyJsYW5ndWFnZSI6InJ1c3Qi"),
        "{agent}"
    );
}

#[tokio::test]
async fn client_failover_tokens_add_the_query_and_uppercase_ids_are_normalised() {
    let api = TestApi::start([(SEED_ID, Reply::new(412, ""))]).await;
    let tc = client(&api.url());
    let upper = token(&SEED_ID.to_uppercase(), r#","clientFailover":true"#);

    let error = tc.get_verification_result(&upper).await.expect_err("412");
    assert!(error.is::<ClientReportedServerUnreachableError>());
    assert!(error.is_failover());
    assert_eq!(
        FailoverPolicy::default().decide(&error),
        Some(Decision::Reject)
    );
    assert_eq!(
        api.requests()[0].path_and_query,
        format!("/v2/verifications/{SEED_ID}/results?clientFailover=true")
    );
}

#[tokio::test]
async fn every_documented_status_maps_to_its_error() {
    let ids = [
        (
            "00000000-0000-4000-8000-000000000403",
            403,
            ErrorKind::ApiKeyInvalid,
        ),
        (
            "00000000-0000-4000-8000-000000000404",
            404,
            ErrorKind::VerificationNotFound,
        ),
        (
            "00000000-0000-4000-8000-000000000410",
            410,
            ErrorKind::VerificationResultExpired,
        ),
        (
            "00000000-0000-4000-8000-000000000412",
            412,
            ErrorKind::ClientReportedServerUnreachable,
        ),
        (
            "00000000-0000-4000-8000-000000000423",
            423,
            ErrorKind::VerificationNotFinished,
        ),
        (
            "00000000-0000-4000-8000-000000000429",
            429,
            ErrorKind::VerificationResultRetrievalLimitReached,
        ),
        (
            "00000000-0000-4000-8000-000000000500",
            500,
            ErrorKind::Unknown,
        ),
        (
            "00000000-0000-4000-8000-000000000401",
            401,
            ErrorKind::Unknown,
        ),
        (
            "00000000-0000-4000-8000-000000000201",
            201,
            ErrorKind::Unknown,
        ),
    ];
    let api = TestApi::start(
        ids.iter()
            .map(|&(id, status, _)| (id, Reply::new(status, "{\"error\":\"nope\"}"))),
    )
    .await;
    let tc = client(&api.url());
    for (id, status, kind) in ids {
        let token = token(id, "");
        let error = tc.get_verification_result(&token).await.expect_err("error");
        assert_eq!(error.kind(), kind, "status {status}");
        assert_eq!(error.status().map(|s| s.as_u16()), Some(status));
        assert_no_secrets(&error, &token);
    }
    let typed = tc
        .get_verification_result(&token(ids[0].0, ""))
        .await
        .expect_err("403");
    assert!(typed.is::<ApiKeyInvalidError>());
    let unknown = tc
        .get_verification_result(&token(ids[6].0, ""))
        .await
        .expect_err("500");
    let unknown = unknown.downcast_ref::<UnknownError>().expect("unknown");
    assert_eq!(unknown.status().as_u16(), 500);
    assert_eq!(unknown.body(), "{\"error\":\"nope\"}");
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_invalid_responses_not_outages() {
    let oversized = format!(
        r#"{},"pad":"{}"}}"#,
        &SEED_RESULT[..SEED_RESULT.len() - 1],
        "x".repeat(200_000)
    );
    let api = TestApi::start([
        (
            "00000000-0000-4000-8000-000000000001",
            Reply::new(200, "<html>maintenance</html>"),
        ),
        (
            "00000000-0000-4000-8000-000000000002",
            Reply::new(
                200,
                r#"{"captchaId":"cc2e2d5e-d1ef-4a7f-a7bd-dec5b37df47a"}"#,
            ),
        ),
        ("00000000-0000-4000-8000-000000000003", Reply::new(200, "")),
        (
            "00000000-0000-4000-8000-000000000004",
            Reply::new(200, oversized),
        ),
        (
            "00000000-0000-4000-8000-000000000005",
            Reply::new(404, "x".repeat(1_000_000)),
        ),
    ])
    .await;
    let tc = client(&api.url());
    for n in 1..=4 {
        let id = format!("00000000-0000-4000-8000-00000000000{n}");
        let error = tc
            .get_verification_result(&token(&id, ""))
            .await
            .expect_err("invalid body");
        assert_eq!(
            error.kind(),
            ErrorKind::InvalidResponse,
            "case {n}: {error}"
        );
        assert!(error.is::<InvalidResponseError>());
        assert!(!error.is_failover());
    }
    let error = tc
        .get_verification_result(&token("00000000-0000-4000-8000-000000000005", ""))
        .await
        .expect_err("404");
    assert_eq!(error.kind(), ErrorKind::VerificationNotFound);
}

#[tokio::test]
async fn redirects_are_never_followed() {
    let elsewhere = TestApi::start([(SEED_ID, Reply::new(200, SEED_RESULT))]).await;
    let mut redirect = Reply::new(302, "");
    redirect.location = Some(format!(
        "{}/v2/verifications/{SEED_ID}/results",
        elsewhere.url()
    ));
    let api = TestApi::start([(SEED_ID, redirect)]).await;

    let error = client(&api.url())
        .get_verification_result(&token(SEED_ID, ""))
        .await
        .expect_err("302");
    assert_eq!(error.kind(), ErrorKind::Unknown);
    assert_eq!(error.status().map(|s| s.as_u16()), Some(302));
    assert_eq!(api.requests().len(), 1);
    assert!(
        elsewhere.requests().is_empty(),
        "redirect target was contacted"
    );
}

#[tokio::test]
async fn the_key_goes_to_the_configured_host_never_to_the_tokens_api_endpoint() {
    let configured = TestApi::start([(SEED_ID, Reply::new(200, SEED_RESULT))]).await;
    let attacker = TestApi::start([(SEED_ID, Reply::new(200, SEED_RESULT))]).await;
    let legacy = token(
        SEED_ID,
        &format!(
            r#","apiEndpoint":"{}","encryptedAccessToken":"abc","unknown":{{"a":[1,2]}}"#,
            attacker.url()
        ),
    );
    let result = client(&configured.url())
        .get_verification_result(&legacy)
        .await
        .expect("legacy token works");
    assert!(result.verification_passed);
    assert_eq!(configured.requests().len(), 1);
    assert!(
        attacker.requests().is_empty(),
        "key sent to the token's host"
    );
}

#[tokio::test]
async fn invalid_tokens_fail_before_any_request() {
    let api = TestApi::start([]).await;
    let tc = client(&api.url());
    for bad in ["", "%%%", &"QUFB".repeat(2000), &token("not-a-uuid", "")] {
        let error = tc.get_verification_result(bad).await.expect_err("invalid");
        assert!(error.is::<VerificationTokenInvalidError>());
        assert_no_secrets(&error, bad);
    }
    assert!(api.requests().is_empty());
}

#[tokio::test]
async fn refused_connections_are_server_unreachable() {
    let tc = client(&format!("http://{}", crate::support::closed_port()));
    let error = tc
        .get_verification_result(&token(SEED_ID, ""))
        .await
        .expect_err("refused");
    assert!(error.is::<ServerUnreachableError>());
    assert!(error.is_connect());
    assert!(error.status().is_none());
    assert!(
        !error
            .downcast_ref::<ServerUnreachableError>()
            .expect("unreachable")
            .api_answered_before()
    );
    assert_eq!(
        FailoverPolicy::default().decide(&error),
        Some(Decision::Reject),
        "an API this client never reached is a misconfiguration until shown otherwise"
    );
    assert_eq!(
        FailoverPolicy::default()
            .allow_before_first_answer(true)
            .decide(&error),
        Some(Decision::Allow)
    );
    assert_no_secrets(&error, &token(SEED_ID, ""));
}

#[tokio::test]
async fn an_api_that_answered_once_and_then_stalls_is_an_outage() {
    let address = crate::support::answers_once_then_stalls().await;
    let tc = TrustCaptcha::builder(API_KEY)
        .api_host(format!("http://{address}"))
        .read_timeout(std::time::Duration::from_millis(300))
        .build()
        .expect("client");
    tc.probe().await.expect("the API answered (404)");
    let error = tc
        .get_verification_result(&token(SEED_ID, ""))
        .await
        .expect_err("stalled");
    assert!(error.is_timeout());
    let cause = error
        .downcast_ref::<ServerUnreachableError>()
        .expect("unreachable");
    assert!(cause.api_answered_before());
    assert_eq!(
        FailoverPolicy::default().decide(&error),
        Some(Decision::Allow)
    );
    assert_eq!(
        FailoverPolicy::strict().decide(&error),
        Some(Decision::Reject)
    );
}

#[tokio::test]
async fn probe_reports_a_rejected_key_and_an_unreachable_api() {
    let api = TestApi::start([]).await;
    client(&api.url()).probe().await.expect("404 is an answer");
    let refused = client(&format!("http://{}", crate::support::closed_port()))
        .probe()
        .await
        .expect_err("nothing listens");
    assert_eq!(refused.kind(), ErrorKind::ServerUnreachable);
}

#[tokio::test]
async fn the_connect_timeout_applies_to_a_listener_that_never_completes_the_handshake() {
    let (addr, _fillers, _socket) = crate::support::start_full_backlog();
    let tc = TrustCaptcha::builder(API_KEY)
        .api_host(format!("http://{addr}"))
        .connect_timeout(Duration::from_millis(300))
        .read_timeout(Duration::from_secs(60))
        .build()
        .expect("valid");
    let error = tc
        .get_verification_result(&token(SEED_ID, ""))
        .await
        .expect_err("timeout");
    assert!(error.is::<ServerUnreachableError>(), "{error:?}");
    assert!(error.is_timeout(), "{error:?}");
}

#[tokio::test]
async fn the_read_timeout_applies_to_a_server_that_stalls() {
    let addr = crate::support::start_silent().await;
    let tc = TrustCaptcha::builder(API_KEY)
        .api_host(format!("http://{addr}"))
        .read_timeout(Duration::from_millis(300))
        .build()
        .expect("valid");
    let error = tc
        .get_verification_result(&token(SEED_ID, ""))
        .await
        .expect_err("timeout");
    assert!(error.is::<ServerUnreachableError>());
    assert!(error.is_timeout());
    assert_eq!(error.kind(), ErrorKind::ServerUnreachable);
}

#[tokio::test]
async fn requests_go_through_the_configured_proxy() {
    let api = TestApi::start([(SEED_ID, Reply::new(200, SEED_RESULT))]).await;
    let (proxy, seen) = crate::support::start_proxy().await;
    let tc = TrustCaptcha::builder(API_KEY)
        .api_host(api.url())
        .proxy(format!("http://{proxy}"))
        .build()
        .expect("valid");
    let result = tc
        .get_verification_result(&token(SEED_ID, ""))
        .await
        .expect("result through proxy");
    assert_eq!(result.decision_type, DecisionType::Standard);
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        seen,
        [format!(
            "GET {}/v2/verifications/{SEED_ID}/results HTTP/1.1",
            api.url()
        )]
    );
    assert_eq!(api.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_verifications_all_succeed() {
    let api = TestApi::start([(SEED_ID, Reply::new(200, SEED_RESULT))]).await;
    let tc = client(&api.url());
    let token = token(SEED_ID, "");
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let tc = tc.clone();
            let token = token.clone();
            tokio::spawn(async move { tc.get_verification_result(&token).await })
        })
        .collect();
    for task in tasks {
        let result = task
            .await
            .expect("task")
            .expect("no false outage under load");
        assert!(result.verification_passed);
    }
    assert_eq!(api.requests().len(), 64);
}

#[tokio::test]
async fn errors_travel_through_question_mark_into_boxed_send_sync_errors() {
    async fn handler(tc: &TrustCaptcha) -> Result<f64, Box<dyn std::error::Error + Send + Sync>> {
        Ok(tc.get_verification_result("").await?.score)
    }
    let tc = client("http://127.0.0.1:9");
    let error = handler(&tc).await.expect_err("invalid token");
    let error = error.downcast::<Error>().expect("our error type");
    assert_eq!(error.kind(), ErrorKind::VerificationTokenInvalid);
}

#[tokio::test]
async fn a_server_that_echoes_the_key_does_not_put_it_in_errors() {
    let echo = format!("{{\"debug\":\"Authorization: Bearer {API_KEY}\"}}");
    let api = TestApi::start([
        (
            "00000000-0000-4000-8000-000000000500",
            Reply::new(500, echo.clone()),
        ),
        (
            "00000000-0000-4000-8000-000000000200",
            Reply::new(200, echo),
        ),
    ])
    .await;
    let tc = client(&api.url());
    for id in [
        "00000000-0000-4000-8000-000000000500",
        "00000000-0000-4000-8000-000000000200",
    ] {
        let token = token(id, "");
        let error = tc.get_verification_result(&token).await.expect_err("error");
        assert_no_secrets(&error, &token);
        if let Some(unknown) = error.downcast_ref::<UnknownError>() {
            assert!(!unknown.body().contains(API_KEY), "{}", unknown.body());
            assert!(unknown.body().contains("<redacted>"), "{}", unknown.body());
        }
    }
}

#[tokio::test]
async fn a_refused_tls_handshake_is_a_configuration_error_not_an_outage() {
    // An https host that speaks plain HTTP: the handshake fails on our side.
    let api = TestApi::start([]).await;
    let host = api.url().replacen("http://", "https://", 1);
    let error = client(&host)
        .get_verification_result(&token(SEED_ID, ""))
        .await
        .expect_err("no TLS there");
    assert_eq!(error.kind(), ErrorKind::Builder, "{error:?}");
    assert_eq!(FailoverPolicy::default().decide(&error), None);
}

#[test]
fn only_proxy_schemes_this_build_speaks_are_accepted() {
    for proxy in [
        "socks5://127.0.0.1:1080",
        "socks5h://127.0.0.1:1080",
        "ftp://x",
    ] {
        let error = TrustCaptcha::builder(API_KEY)
            .proxy(proxy)
            .build()
            .expect_err(proxy);
        assert_eq!(error.kind(), ErrorKind::Builder, "{proxy}");
    }
    TrustCaptcha::builder(API_KEY)
        .proxy("http://127.0.0.1:3128")
        .build()
        .expect("http proxy");
}
