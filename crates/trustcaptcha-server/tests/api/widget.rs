//! The widget's endpoints over real HTTP: create, submit, CORS, bad input.

use crate::fixtures::*;
use serde_json::{Value, json};
use trustcaptcha_server::testing::*;

#[tokio::test]
async fn create_hands_out_a_standard_base64_challenge() {
    let server = TestServer::start(config("")).await;
    let (status, body) = server.create(&create_body(SITE_A, false)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["finished"].is_null());
    let challenge = &body["challenge"];
    let id = challenge["verificationId"].as_str().expect("id");
    assert_eq!(
        uuid::Uuid::parse_str(id).expect("uuid").get_version_num(),
        7,
        "time-ordered ids, with 74 random bits"
    );
    assert_eq!(challenge["difficulty"], 4);
    let tasks = challenge["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 3);
    for (n, task) in tasks.iter().enumerate() {
        assert_eq!(task["number"], n);
        let input = task["input"].as_str().expect("input");
        assert_eq!(input.len(), 24);
        assert!(
            input
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c))
        );
    }
    let other = server.challenge(SITE_A).await;
    assert_ne!(other["verificationId"], challenge["verificationId"]);
    assert_ne!(other["tasks"][0]["input"], challenge["tasks"][0]["input"]);
}

#[tokio::test]
async fn create_rejects_unknown_sites_foreign_origins_and_mode_mismatches() {
    let server = TestServer::start(config("")).await;
    let unknown = create_body("00000000-0000-4000-8000-00000000dead", false);
    assert_eq!(server.create(&unknown).await.0, 404);
    assert_eq!(
        server.create(&create_body("not-a-uuid", false)).await.0,
        404
    );
    let (status, _) = server
        .post(
            "/v2/verifications",
            &create_body(SITE_A, false),
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(server.create(&create_body(SITE_A, true)).await.0, 422);
    assert_eq!(
        server.create(&create_body(SITE_MINIMAL, false)).await.0,
        422
    );
    assert_eq!(server.create(&create_body(SITE_MINIMAL, true)).await.0, 200);
    // Site keys are case-insensitive: the widget sends them as written.
    assert_eq!(
        server
            .create(&create_body(&SITE_A.to_uppercase(), false))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn bad_bodies_get_400_or_413_with_a_json_error() {
    let server = TestServer::start(config("")).await;
    for raw in ["{not json", "[]", r#"{"widget":{}}"#, r#"{"siteKey": 5}"#] {
        let response = server
            .http
            .post(format!("{}/v2/verifications", server.url))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 400, "{raw}");
        let body: Value = response.json().await.expect("json error body");
        assert_eq!(body["error"], "bad_request");
    }
    let huge = "x".repeat(5 * 1024 * 1024);
    let response = server
        .http
        .post(format!("{}/v2/verifications", server.url))
        .body(format!(r#"{{"siteKey":"{SITE_A}","pad":"{huge}"}}"#))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 413);

    // A widget-sized body (2 500 events, about 1 MB) is accepted.
    let mut body = create_body(SITE_A, false);
    let event = json!({"isTrusted": true, "timeStamp": 1234.5, "type": "mousemove", "altKey": false,
        "ctrlKey": false, "metaKey": false, "shiftKey": false, "button": 0, "buttons": 0, "detail": 0,
        "defaultPrevented": false, "movementX": 1, "movementY": 2, "offsetX": 100, "offsetY": 200,
        "pageX": 300, "pageY": 400, "screenX": 500, "screenY": 600, "x": 300, "y": 400});
    body["userEvents"] = Value::Array(vec![event; 2500]);
    assert!(serde_json::to_vec(&body).expect("json").len() > 700_000);
    assert_eq!(server.create(&body).await.0, 200);
}

#[tokio::test]
async fn cors_preflight_and_every_widget_response_carry_allow_origin() {
    let server = TestServer::start(config("")).await;
    for path in [
        "/v2/verifications",
        "/v2/verifications/00000000-0000-4000-8000-000000000001/challenges",
    ] {
        let response = server
            .http
            .request(reqwest::Method::OPTIONS, format!("{}{path}", server.url))
            .header("origin", ORIGIN)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .await
            .expect("preflight");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        let headers = response.headers();
        assert_eq!(headers["access-control-allow-origin"], "*");
        assert!(
            headers["access-control-allow-headers"]
                .to_str()
                .expect("ascii")
                .contains("content-type")
        );
        assert!(
            headers["access-control-allow-methods"]
                .to_str()
                .expect("ascii")
                .contains("POST")
        );
    }
    let errors = [
        server
            .http
            .post(format!("{}/v2/verifications", server.url))
            .header("origin", ORIGIN)
            .body("{"),
        server
            .http
            .post(format!("{}/v2/verifications/nope/challenges", server.url))
            .header("origin", ORIGIN)
            .json(&submit_body(&json!([]))),
    ];
    for request in errors {
        let response = request.send().await.expect("request");
        assert!(response.status().is_client_error());
        assert_eq!(response.headers()["access-control-allow-origin"], "*");
    }
}

#[tokio::test]
async fn a_correct_submission_finishes_once_with_the_documented_token() {
    let server = TestServer::start(config("")).await;
    let challenge = server.challenge(SITE_A).await;
    let (status, body) = server.submit(&challenge, &answers(&challenge)).await;
    assert_eq!(status, 201, "{body}");
    let finished = &body["finished"];
    assert_eq!(finished["expiresInMs"], 900_000);
    let token = finished["verificationToken"].as_str().expect("token");
    assert!(token.len() % 4 == 0, "padded base64");
    let decoded: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::STANDARD, token).expect("base64"),
    )
    .expect("json");
    assert_eq!(decoded["verificationId"], challenge["verificationId"]);
    let expires = time::OffsetDateTime::parse(
        decoded["expiresAt"].as_str().expect("expiresAt"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("rfc3339");
    assert_eq!(
        expires,
        trustcaptcha_server::clock::Clock::now(&*server.clock)
            + std::time::Duration::from_secs(900)
    );

    let (status, _) = server.submit(&challenge, &answers(&challenge)).await;
    assert_eq!(status, 404, "a challenge is accepted once");
}

#[tokio::test]
async fn wrong_incomplete_and_unknown_submissions_are_rejected() {
    let server = TestServer::start(config("")).await;
    let challenge = server.challenge(SITE_A).await;
    let input = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        challenge["tasks"][1]["input"].as_str().expect("input"),
    )
    .expect("b64");
    let failing = (0..)
        .map(|n| format!("tcn{n}"))
        .find(|nonce| !trustcaptcha_server::pow::check(&input, nonce, 4))
        .expect("some nonce fails");
    let mut wrong = answers(&challenge);
    wrong[1]["nonce"] = json!(failing);
    assert_eq!(server.submit(&challenge, &wrong).await.0, 409);
    assert_eq!(
        server.submit(&challenge, &answers(&challenge)).await.0,
        404,
        "a failed challenge is gone"
    );

    let challenge = server.challenge(SITE_A).await;
    let all = answers(&challenge);
    let incomplete = json!([all[0], all[1]]);
    assert_eq!(server.submit(&challenge, &incomplete).await.0, 409);
    let challenge = server.challenge(SITE_A).await;
    let all = answers(&challenge);
    assert_eq!(
        server
            .submit(&challenge, &json!([all[0], all[0], all[2]]))
            .await
            .0,
        409
    );

    let unknown = json!({"verificationId": "00000000-0000-4000-8000-000000000077"});
    assert_eq!(server.submit(&unknown, &json!([])).await.0, 404);
    let malformed = json!({"verificationId": "../../etc"});
    assert_eq!(server.submit(&malformed, &json!([])).await.0, 404);
}

#[tokio::test]
async fn expired_challenges_are_not_accepted() {
    let server = TestServer::start(config("")).await;
    let challenge = server.challenge(SITE_A).await;
    server.clock.advance(std::time::Duration::from_secs(301));
    assert_eq!(server.submit(&challenge, &answers(&challenge)).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_100_concurrent_identical_submissions_exactly_one_wins() {
    let server = std::sync::Arc::new(TestServer::start(config("")).await);
    let challenge = server.challenge(SITE_A).await;
    let tasks = answers(&challenge);
    let handles: Vec<_> = (0..100)
        .map(|_| {
            let server = server.clone();
            let challenge = challenge.clone();
            let tasks = tasks.clone();
            tokio::spawn(async move { server.submit(&challenge, &tasks).await.0 })
        })
        .collect();
    let mut statuses = Vec::new();
    for handle in handles {
        statuses.push(handle.await.expect("task"));
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1);
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 404),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_valid_bypass_key_finishes_at_once_and_a_wrong_one_does_not() {
    let server = TestServer::start(config("")).await;
    let mut body = create_body(SITE_A, false);
    body["widget"]["bypassToken"] = json!(BYPASS_A);
    let (status, answer) = server.create(&body).await;
    assert_eq!(status, 201, "{answer}");
    let token = answer["finished"]["verificationToken"]
        .as_str()
        .expect("token");
    let result = server.fetch(KEY_A, token).await;
    assert_eq!(result.decision_type, trustcaptcha::DecisionType::BypassKey);
    assert!(result.verification_passed);
    assert_eq!(result.score, 0.0);

    // A wrong key is refused and stores nothing (a guess costs the guesser, not the store).
    let stored = server.stored().await;
    body["widget"]["bypassToken"] = json!("not-the-key");
    let (status, answer) = server.create(&body).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (403, Some("bypass_key_rejected"))
    );
    assert_eq!(server.stored().await, stored);
}

#[tokio::test]
async fn difficulty_rises_for_a_client_that_solves_often() {
    let server = TestServer::start(config("")).await;
    for _ in 0..3 {
        server.solve(SITE_A).await;
    }
    assert_eq!(
        server.challenge(SITE_A).await["difficulty"],
        4,
        "free solves"
    );
    server.solve(SITE_A).await;
    assert_eq!(server.challenge(SITE_A).await["difficulty"], 6);
    // Solves are counted over a sliding window estimated from two fixed ones: a solve counts
    // fully in its own window and fades out over the next.
    server.clock.advance(std::time::Duration::from_secs(120));
    assert_eq!(
        server.challenge(SITE_A).await["difficulty"],
        4,
        "two windows passed"
    );
}

#[tokio::test]
async fn an_api_url_with_a_trailing_slash_still_works() {
    let server = TestServer::start(config("")).await;
    let (status, body) = server
        .post(
            "//v2/verifications",
            &create_body(SITE_A, false),
            Some(ORIGIN),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["challenge"]["verificationId"].as_str().expect("id");
    let (status, _) = server
        .post(
            &format!("//v2/verifications/{id}/challenges"),
            &submit_body(&answers(&body["challenge"])),
            Some(ORIGIN),
        )
        .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn a_locked_site_answers_423() {
    let mut config = config("");
    config.sites[0].locked = true;
    let server = TestServer::start(config).await;
    let (status, body) = server.create(&create_body(SITE_A, false)).await;
    assert_eq!(status, 423);
    assert_eq!(body["error"], "site_locked");
    assert_eq!(
        server.create(&create_body(SITE_B, false)).await.0,
        200,
        "other sites are not affected"
    );
}

#[tokio::test]
async fn an_hourly_quota_answers_402_until_the_next_hour() {
    let mut config = config("");
    config.sites[0].hourly_quota = Some(2);
    let server = TestServer::start(config).await;
    // Starting verifications does not use the quota up; finishing them does.
    let started: Vec<_> = futures_challenges(&server, 3).await;
    for challenge in &started[..2] {
        server.finish(challenge).await;
    }
    let (status, body) = server.create(&create_body(SITE_A, false)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (402, Some("quota_exhausted"))
    );
    // One already under way may still finish.
    server.finish(&started[2]).await;
    server.clock.advance(std::time::Duration::from_secs(3600));
    assert_eq!(server.create(&create_body(SITE_A, false)).await.0, 200);
}

async fn futures_challenges(server: &TestServer, count: usize) -> Vec<Value> {
    let mut challenges = Vec::new();
    for _ in 0..count {
        challenges.push(server.challenge(SITE_A).await);
    }
    challenges
}
