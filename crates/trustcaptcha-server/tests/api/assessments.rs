//! The older results API, `GET /verifications/{id}/assessments`, as the 2.x backend libraries
//! call it: the same retrieval as v2's, in the older shape.

use base64::Engine as _;
use serde_json::{Value, json};
use trustcaptcha::VerificationToken;
use trustcaptcha_server::testing::*;

use crate::fixtures::*;

/// GETs the older endpoint for `id` with extra `headers`; the status and the JSON body.
async fn assess(
    server: &TestServer,
    id: &str,
    query: &str,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut request = server.http.get(format!(
        "{}/verifications/{id}/assessments{query}",
        server.url
    ));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("assess");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn id_of(token: &str) -> String {
    VerificationToken::decode(token)
        .expect("token")
        .verification_id
        .to_string()
}

#[tokio::test]
async fn a_solved_verification_in_the_older_shape_once_for_both_apis() {
    let server = TestServer::start(config("")).await;
    let id = id_of(&server.solve(SITE_A).await);
    let (status, body) = assess(&server, &id, "", &[("tc-authorization", KEY_A)]).await;
    assert_eq!(status, 200, "{body}");
    for key in [
        "captchaId",
        "verificationId",
        "verificationPassed",
        "score",
        "reason",
        "mode",
        "origin",
        "ipAddress",
        "deviceFamily",
        "operatingSystem",
        "browser",
        "creationTimestamp",
        "releaseTimestamp",
        "retrievalTimestamp",
    ] {
        assert!(body.get(key).is_some(), "{key} in {body}");
    }
    assert_eq!(body.as_object().expect("object").len(), 14, "{body}");
    assert_eq!(body["verificationId"], json!(id));
    assert_eq!(body["reason"], "CALCULATED");
    assert_eq!(body["mode"], "STANDARD");
    assert_eq!(body["verificationPassed"], true);
    // Received once: again is 410 here, and 429 on v2 (one retrieval counts for both).
    assert_eq!(
        assess(&server, &id, "", &[("tc-authorization", KEY_A)])
            .await
            .0,
        410
    );
    let v2 = format!("/v2/verifications/{id}/results");
    assert_eq!(server.get(&v2, Some(KEY_A)).await.0, 429);
}

#[tokio::test]
async fn every_form_of_the_key_and_every_refusal_answers_as_the_older_api_did() {
    let mut config = config("");
    config.server.failed_keys_per_hour = 3;
    let server = TestServer::start(config).await;
    for (query, headers) in [
        ("", vec![("secret-key", KEY_B)]),
        ("", vec![("tc-authorization", KEY_B)]),
        (&*format!("?accessToken={KEY_B}"), vec![]),
    ] {
        let id = id_of(&server.solve(SITE_B).await);
        let (status, body) = assess(&server, &id, query, &headers).await;
        assert_eq!(status, 200, "{query} {headers:?}: {body}");
    }
    let id = id_of(&server.solve(SITE_B).await);
    let pending = server.challenge(SITE_B).await;
    let pending = pending["verificationId"].as_str().expect("id");
    let key = [("tc-authorization", KEY_B)];
    assert_eq!(assess(&server, "not-a-uuid", "", &key).await.0, 400);
    assert_eq!(
        assess(&server, "00000000-0000-4000-8000-000000000123", "", &key)
            .await
            .0,
        404
    );
    assert_eq!(assess(&server, pending, "", &key).await.0, 423);
    assert_eq!(assess(&server, &id, "", &[]).await.0, 403, "no key");
    // A wrong key is a failed guess, as on v2: past the budget even the right key is refused.
    for _ in 0..3 {
        let wrong = [("tc-authorization", "ak_wrong_guess_0123456789")];
        assert_eq!(assess(&server, &id, "", &wrong).await.0, 403);
    }
    assert_eq!(assess(&server, &id, "", &key).await.0, 403, "locked out");
    // HEAD spends nothing here either.
    let head = server
        .http
        .head(format!("{}/verifications/{id}/assessments", server.url))
        .header("tc-authorization", KEY_B)
        .send()
        .await
        .expect("head");
    assert_eq!(head.status(), 405);
}

#[tokio::test]
async fn reasons_follow_the_same_decision_as_v2() {
    let server = TestServer::start(config("")).await;
    let reason = async |site: &str, key: &str, body: &Value| {
        let token = server.solve_body(body).await;
        let (status, answer) =
            assess(&server, &id_of(&token), "", &[("tc-authorization", key)]).await;
        assert_eq!(status, 200, "{answer}");
        (
            answer["reason"].clone(),
            answer["mode"].clone(),
            site.to_owned(),
        )
    };
    let (minimal, mode, _) = reason(SITE_MINIMAL, KEY_B, &create_body(SITE_MINIMAL, true)).await;
    assert_eq!(
        (minimal, mode),
        (json!("ONLY_PROOF_OF_WORK"), json!("MINIMAL_DATA"))
    );
    // The "lists" site allows 127.0.0.0/8: the test client's address.
    let (allowed, _, _) = reason(SITE_LISTS, KEY_B, &create_body(SITE_LISTS, false)).await;
    assert_eq!(allowed, json!("CUSTOM_ALLOW_LIST"));
    let mut bypass = create_body(SITE_A, false);
    bypass["widget"]["bypassToken"] = json!(BYPASS_A);
    let (status, created) = server.create(&bypass).await;
    assert_eq!(status, 201);
    let token = created["finished"]["verificationToken"]
        .as_str()
        .expect("token");
    let (_, answer) = assess(&server, &id_of(token), "", &[("tc-authorization", KEY_A)]).await;
    assert_eq!(answer["reason"], "BYPASS_KEY");
}

#[tokio::test]
async fn a_site_can_turn_the_older_api_off() {
    let mut config = config("");
    config.sites[1].older_results_api = false;
    let server = TestServer::start(config).await;
    let id = id_of(&server.solve(SITE_B).await);
    assert_eq!(
        assess(&server, &id, "", &[("tc-authorization", KEY_B)])
            .await
            .0,
        404,
        "site b does not answer it: its verification reads as unknown"
    );
    let v2 = format!("/v2/verifications/{id}/results");
    assert_eq!(
        server.get(&v2, Some(KEY_B)).await.0,
        200,
        "nothing was spent"
    );
}

#[tokio::test]
async fn tokens_name_the_public_url_for_the_2x_libraries_only_when_configured() {
    let decoded = |token: &str| -> Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(token)
                .expect("base64"),
        )
        .expect("json")
    };
    let server = TestServer::start(config("")).await;
    let plain = decoded(&server.solve(SITE_A).await);
    assert!(plain.get("apiEndpoint").is_none(), "{plain}");
    let server = TestServer::start(config("public_url = \"https://captcha.example.com/\"")).await;
    let token = server.solve(SITE_A).await;
    let named = decoded(&token);
    assert_eq!(
        named["apiEndpoint"], "https://captcha.example.com",
        "{named}"
    );
    // Today's clients read the same token.
    server.fetch(KEY_A, &token).await;
}
