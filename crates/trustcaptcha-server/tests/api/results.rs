//! The results endpoint end to end, through the `trustcaptcha` client crate and raw HTTP.

use std::time::Duration;

use crate::fixtures::*;
use serde_json::Value;
use trustcaptcha::{DecisionAction, DecisionType, ErrorKind, VerificationToken};
use trustcaptcha_server::testing::*;

#[tokio::test]
async fn full_flow_returns_all_twenty_fields_once() {
    let server = TestServer::start(config("")).await;
    let token = server.solve(SITE_A).await;
    let id = VerificationToken::decode(&token)
        .expect("token")
        .verification_id;
    let client = server.client(KEY_A);

    let (status, raw) = server
        .get(&format!("/v2/verifications/{id}/results"), Some(KEY_A))
        .await;
    assert_eq!(status, 200, "{raw}");
    let fields = raw.as_object().expect("object");
    assert_eq!(fields.len(), 20, "{raw}");
    for key in [
        "captchaId",
        "verificationId",
        "verificationPassed",
        "score",
        "decisionType",
        "decisionAction",
        "gatewayFailoverActive",
        "riskScoringEnabled",
        "minimalDataModeEnabled",
        "origin",
        "ipAddress",
        "countryCode",
        "deviceFamily",
        "operatingSystem",
        "browser",
        "verificationStartedAt",
        "verificationFinishedAt",
        "resultExpiresAt",
        "resultFirstFetchedAt",
        "resultLastFetchedAt",
    ] {
        assert!(fields.contains_key(key), "{key} missing");
    }
    let result: trustcaptcha::VerificationResult = serde_json::from_value(raw).expect("typed");
    assert_eq!(result.verification_id, id);
    assert_eq!(result.captcha_id.get_version_num(), 4);
    assert!(result.verification_passed);
    assert_eq!(result.score, 0.0, "a human-like request scores 0");
    assert_eq!(result.decision_type, DecisionType::Standard);
    assert_eq!(result.decision_action, DecisionAction::Allow);
    assert_eq!(result.origin, format!("{ORIGIN}/signup"));
    assert_eq!(result.ip_address, "127.0.0.1");
    assert_eq!(result.country_code, "");
    assert_eq!(result.browser, "Chrome 156.0.0.0");
    assert_eq!(result.operating_system, "Linux");
    assert_eq!(
        result.result_first_fetched_at,
        result.result_last_fetched_at
    );
    assert!(result.verification_started_at <= result.verification_finished_at);

    let error = client
        .get_verification_result(&token)
        .await
        .expect_err("fetched once");
    assert_eq!(
        error.kind(),
        ErrorKind::VerificationResultRetrievalLimitReached
    );
}

#[tokio::test]
async fn first_and_last_fetch_times_are_kept_across_fetches() {
    let server = TestServer::start(config("")).await;
    let token = server.solve(SITE_B).await;
    let client = server.client(KEY_B);
    let first = client.get_verification_result(&token).await.expect("first");
    server.clock.advance(Duration::from_secs(30));
    let second = client
        .get_verification_result(&token)
        .await
        .expect("second");
    assert_eq!(
        second.result_first_fetched_at,
        first.result_first_fetched_at
    );
    assert_eq!(
        second.result_last_fetched_at,
        first
            .result_last_fetched_at
            .map(|t| t + Duration::from_secs(30))
    );
}

#[tokio::test]
async fn every_error_status_reaches_the_client_as_its_typed_error() {
    let server = TestServer::start(config("")).await;
    let token = server.solve(SITE_A).await;

    let kind = |result: Result<trustcaptcha::VerificationResult, trustcaptcha::Error>| {
        result.expect_err("must fail").kind()
    };
    assert_eq!(
        kind(
            server
                .client("ak_wrong")
                .get_verification_result(&token)
                .await
        ),
        ErrorKind::ApiKeyInvalid
    );
    assert_eq!(
        kind(server.client(KEY_B).get_verification_result(&token).await),
        ErrorKind::VerificationNotFound,
        "a key of another site learns nothing about the id: the same answer as an unknown id"
    );
    let unknown = token_for("00000000-0000-4000-8000-000000000123", "");
    assert_eq!(
        kind(server.client(KEY_A).get_verification_result(&unknown).await),
        ErrorKind::VerificationNotFound
    );

    let pending = server.challenge(SITE_A).await;
    let pending = token_for(pending["verificationId"].as_str().expect("id"), "");
    assert_eq!(
        kind(server.client(KEY_A).get_verification_result(&pending).await),
        ErrorKind::VerificationNotFinished
    );

    let failover = failover_claim("6f1c2d3e-4b5a-4c6d-8e7f-0123456789ab");
    assert_eq!(
        kind(
            server
                .client(KEY_A)
                .get_verification_result(&failover)
                .await
        ),
        ErrorKind::ClientReportedServerUnreachable
    );

    server.clock.advance(Duration::from_secs(900));
    assert_eq!(
        kind(server.client(KEY_A).get_verification_result(&token).await),
        ErrorKind::VerificationResultExpired
    );
}

#[tokio::test]
async fn missing_malformed_and_wrong_keys_are_403_before_anything_else() {
    let server = TestServer::start(config("")).await;
    let path = "/v2/verifications/00000000-0000-4000-8000-000000000123/results";
    assert_eq!(server.get(path, None).await.0, 403);
    let response = server
        .http
        .get(format!("{}{path}", server.url))
        .header("authorization", format!("Basic {KEY_A}"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 403);
    assert_eq!(server.get(path, Some("ak_wrong")).await.0, 403);
    assert_eq!(
        server
            .get("/v2/verifications/not-a-uuid/results", Some(KEY_A))
            .await
            .0,
        404
    );
    let (status, body) = server
        .get("/v2/verifications/not-a-uuid/results", Some("ak_wrong"))
        .await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn head_never_spends_a_retrieval() {
    let server = TestServer::start(config("")).await;
    // Site A allows one retrieval.
    let token = server.solve(SITE_A).await;
    let id = VerificationToken::decode(&token)
        .expect("token")
        .verification_id;
    let url = format!("{}/v2/verifications/{id}/results", server.url);
    for _ in 0..3 {
        let response = server
            .http
            .head(&url)
            .bearer_auth(KEY_A)
            .send()
            .await
            .expect("head");
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers()["allow"], "GET");
    }
    let result = server.fetch(KEY_A, &token).await;
    assert!(result.verification_passed);
    assert_eq!(
        server.get(&url[server.url.len()..], Some(KEY_A)).await.0,
        429
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_200_concurrent_fetches_with_limit_one_exactly_one_succeeds() {
    let server = TestServer::start(config("")).await;
    let token = server.solve(SITE_A).await;
    let client = server.client(KEY_A);
    let handles: Vec<_> = (0..200)
        .map(|_| {
            let client = client.clone();
            let token = token.clone();
            tokio::spawn(async move { client.get_verification_result(&token).await })
        })
        .collect();
    let mut ok = 0;
    for handle in handles {
        match handle.await.expect("task") {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(
                e.kind(),
                ErrorKind::VerificationResultRetrievalLimitReached,
                "{e}"
            ),
        }
    }
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn failover_answers_follow_the_outage_record_and_never_pass_a_made_up_id() {
    // The default test config records no outage at start; this one does.
    let server = TestServer::start(config("").tap_outage_before_start()).await;
    let failover = failover_claim("6f1c2d3e-4b5a-4c6d-8e7f-0123456789ab");
    let client = server.client(KEY_A);
    let result = client
        .get_verification_result(&failover)
        .await
        .expect("flagged result");
    assert_eq!(result.decision_type, DecisionType::Failover);
    assert!(result.gateway_failover_active && result.is_failover());
    assert_eq!(
        client
            .get_verification_result(&failover)
            .await
            .expect_err("replayed")
            .kind(),
        ErrorKind::VerificationResultRetrievalLimitReached,
        "a failover claim is retrieved only as often as any result"
    );

    // Without the widget's claim nothing is synthesized, outage or not.
    let made_up = token_for("00000000-0000-4000-8000-000000000456", "");
    assert_eq!(
        client
            .get_verification_result(&made_up)
            .await
            .expect_err("unknown")
            .kind(),
        ErrorKind::VerificationNotFound
    );
    let pending = server.challenge(SITE_A).await;
    let pending = token_for(pending["verificationId"].as_str().expect("id"), "");
    assert_eq!(
        client
            .get_verification_result(&pending)
            .await
            .expect_err("unsolved")
            .kind(),
        ErrorKind::VerificationNotFinished
    );

    server.clock.advance(Duration::from_secs(301));
    let later = failover_claim("7a2d3e4f-5b6c-4d7e-8f90-123456789abc");
    assert_eq!(
        client
            .get_verification_result(&later)
            .await
            .expect_err("412")
            .kind(),
        ErrorKind::ClientReportedServerUnreachable
    );
}

#[tokio::test]
async fn a_site_can_refuse_failover_answers_altogether() {
    let mut config = config("").tap_outage_before_start();
    config.sites[0].failover_answers = false;
    let server = TestServer::start(config).await;
    let failover = failover_claim("6f1c2d3e-4b5a-4c6d-8e7f-0123456789ab");
    assert_eq!(
        server
            .client(KEY_A)
            .get_verification_result(&failover)
            .await
            .expect_err("412")
            .kind(),
        ErrorKind::ClientReportedServerUnreachable
    );
}

#[tokio::test]
async fn a_failover_answer_for_a_key_of_several_sites_names_the_first_in_configuration_order() {
    // KEY_B is valid for the sites "b", "minimal" and "lists", in this order.
    let config = config("").tap_outage_before_start();
    let first = config.sites[1].clone();
    assert_eq!(&*first.name, "b");
    let server = TestServer::start(config).await;
    for i in 0..8 {
        // Each claim is answered once: eight claims, each asked for once.
        let failover = failover_claim(&format!("6f1c2d3e-4b5a-4c6d-8e7f-0123456789a{i}"));
        let result = server.fetch(KEY_B, &failover).await;
        assert_eq!(result.captcha_id, first.captcha_id());
        assert!(!result.minimal_data_mode_enabled, "not the minimal site");
    }
}

trait OutageBeforeStart {
    fn tap_outage_before_start(self) -> Self;
}

impl OutageBeforeStart for trustcaptcha_server::Config {
    fn tap_outage_before_start(mut self) -> Self {
        self.server.outage_before_start = true;
        self
    }
}

#[tokio::test]
async fn ip_lists_decide_with_custom_access_rule() {
    let server = TestServer::start(config("")).await;
    let token = server.solve(SITE_LISTS).await;
    let result = server.fetch(KEY_B, &token).await;
    assert_eq!(result.decision_type, DecisionType::CustomAccessRule);
    assert!(result.verification_passed);
    assert_eq!(result.score, 0.0);
}

#[tokio::test]
async fn a_blocked_client_behind_a_trusted_proxy_fails_with_score_one() {
    // Bind to 127.0.0.2, the configured trusted proxy, so that X-Forwarded-For is believed.
    let server = TestServer::start(config("")).await;
    let http = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .no_proxy()
        .build()
        .expect("client");
    let response = http
        .post(format!("{}/v2/verifications", server.url))
        .header("origin", ORIGIN)
        .header("x-forwarded-for", "127.0.0.9")
        .json(&create_body(SITE_LISTS, false))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    let token = server.finish(&body["challenge"]).await;
    let result = server.fetch(KEY_B, &token).await;
    assert_eq!(result.ip_address, "127.0.0.9");
    assert_eq!(result.decision_type, DecisionType::CustomAccessRule);
    assert_eq!(result.decision_action, DecisionAction::Block);
    assert!(!result.verification_passed);
    assert_eq!(result.score, 1.0);
}

#[tokio::test]
async fn minimal_data_mode_scores_zero() {
    let server = TestServer::start(config("")).await;
    let token = server.solve_body(&create_body(SITE_MINIMAL, true)).await;
    let result = server.fetch(KEY_B, &token).await;
    assert!(result.minimal_data_mode_enabled);
    assert_eq!(result.score, 0.0);
}

#[tokio::test]
async fn each_bot_signal_adds_its_documented_weight() {
    use trustcaptcha_server::integrity::{BrowserInformation, integrity_hash};
    let server = TestServer::start(config("")).await;
    let rehash = |body: &mut Value| {
        let info: BrowserInformation =
            serde_json::from_value(body["browserInformation"].clone()).expect("info");
        body["integrityHash"] = integrity_hash(&info).into();
    };
    let cases: [(&str, f64, fn(&mut Value)); 7] = [
        ("none", 0.0, |_| {}),
        ("honeypot", 0.6, |b| {
            b["honeypotFields"][1]["value"] = "bot@example.com".into();
        }),
        ("integrity", 0.4, |b| {
            b["integrityHash"] = "0".repeat(64).into()
        }),
        ("automation", 0.6, |b| {
            b["browserInformation"]["window-navigator-webdriver"] = true.into();
        }),
        ("timing", 0.2, |b| {
            b["widget"]["startSolvingTimestamp"] = b["widget"]["boxCreationTimestamp"].clone();
        }),
        ("no events", 0.6, |b| b["userEvents"] = Value::Array(vec![])),
        // Focus, scroll and the like a script causes as easily: they are no input.
        ("no input", 0.6, |b| {
            b["userEvents"] = serde_json::json!([
                {"isTrusted": true, "timeStamp": 10.0, "type": "focus"},
                {"isTrusted": true, "timeStamp": 20.0, "type": "scroll"},
                {"isTrusted": true, "timeStamp": 30.0, "type": "blur"},
                {"isTrusted": true, "timeStamp": 40.0, "type": "visibilitychange"},
                {"isTrusted": true, "timeStamp": 50.0, "type": "resize"}
            ]);
        }),
    ];
    for (signal, weight, apply) in cases {
        let mut body = create_body(SITE_A, false);
        apply(&mut body);
        if signal == "automation" {
            rehash(&mut body);
        }
        let token = server.solve_body(&body).await;
        let result = server.fetch(KEY_A, &token).await;
        assert_eq!(result.score, weight, "{signal}");
        let expected = if weight > 0.5 {
            DecisionAction::Block
        } else {
            DecisionAction::Allow
        };
        assert_eq!(result.decision_action, expected, "{signal}");
        assert!(result.verification_passed, "{signal}");
    }

    // Signals add up; the score is capped at 1.
    let mut body = create_body(SITE_A, false);
    body["honeypotFields"][1]["value"] = "bot@example.com".into();
    body["browserInformation"]["dom-automationNote"] = true.into();
    body["userEvents"] = Value::Array(vec![]);
    let result = server.fetch(KEY_A, &server.solve_body(&body).await).await;
    assert_eq!(result.score, 1.0);
    assert_eq!(result.decision_action, DecisionAction::Block);
}

#[tokio::test]
async fn a_score_of_nothing_is_written_as_zero_not_minus_zero() {
    let server = TestServer::start(config("")).await;
    let token = server.solve(SITE_A).await;
    let id = VerificationToken::decode(&token)
        .expect("token")
        .verification_id;
    let text = server
        .http
        .get(format!("{}/v2/verifications/{id}/results", server.url))
        .bearer_auth(KEY_A)
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert!(text.contains(r#""score":0.0"#), "{text}");
    assert!(!text.contains(r#""score":-"#), "{text}");
}
