//! A site's security rules end to end: geoblocking (through a generated country database),
//! proof-of-work rules, the operator's reputation lists, minimal-data mode keeping nothing about
//! the visitor, and a settable `captchaId`. Each decision shows in the result's `decisionType`
//! and `decisionAction`.

use trustcaptcha::{DecisionAction, DecisionType};
use trustcaptcha_server::config;
use trustcaptcha_server::testing::*;

use crate::geoip::geoip_database;

const SITE: &str = "4fa0a0c2-6d9e-4a5c-9e7b-9dbc2b3a4e5f";
const KEY: &str = "ak_rules_test_key_0123456789";

/// A server with one site configured by `site` (TOML lines) and `server` settings.
async fn server_with(server: &str, site: &str) -> TestServer {
    let text = format!(
        "[server]\nwidget_requests_per_minute = 60000\nwidget_burst = 10000\n{server}\n\n\
         [[sites]]\nname = \"rules\"\nsite_key = \"{SITE}\"\napi_keys = [\"{KEY}\"]\n\
         difficulty = 2\ntasks = 1\n{site}\n"
    );
    TestServer::start(config::parse(&text).expect("valid configuration")).await
}

async fn result_of(server: &TestServer) -> trustcaptcha::VerificationResult {
    let token = server.solve(SITE).await;
    server.fetch(KEY, &token).await
}

fn assert_blocked(result: &trustcaptcha::VerificationResult, decision_type: DecisionType) {
    assert!(!result.verification_passed);
    assert_eq!(result.score, 1.0);
    assert_eq!(result.decision_type, decision_type);
    assert_eq!(result.decision_action, DecisionAction::Block);
}

#[tokio::test]
async fn countries_are_blocked_or_allowed_by_the_visitors_country() {
    let database = geoip_database("rules", &[("127.0.0.0/24", "FR")]);
    let geoip = format!("geoip_database = {:?}", database.display().to_string());

    let blocked = server_with(&geoip, "countries_blocked = [\"fr\"]").await;
    let result = result_of(&blocked).await;
    assert_eq!(result.country_code, "FR");
    assert_blocked(&result, DecisionType::CustomAccessRule);

    let elsewhere = server_with(&geoip, "countries_allowed = [\"DE\", \"AT\"]").await;
    assert_blocked(&result_of(&elsewhere).await, DecisionType::CustomAccessRule);

    let allowed = server_with(&geoip, "countries_allowed = [\"FR\"]").await;
    let result = result_of(&allowed).await;
    assert!(result.verification_passed);
    assert_eq!(result.decision_type, DecisionType::Standard);

    // Without a database no country is known: an allow list then blocks everyone.
    let unknown = server_with("", "countries_allowed = [\"FR\"]").await;
    assert_blocked(&result_of(&unknown).await, DecisionType::CustomAccessRule);
    let _ = std::fs::remove_file(database);
}

#[tokio::test]
async fn the_first_matching_proof_of_work_rule_applies() {
    let server = server_with(
        "",
        r#"
        [[sites.rules]]
        header = "x-load-test"
        header_value = "yes"
        action = "block"

        [[sites.rules]]
        networks = ["127.0.0.0/8"]
        browsers = ["Chrome"]
        action = "adjust"
        difficulty = 3
        tasks = 4

        [[sites.rules]]
        networks = ["127.0.0.0/8"]
        action = "allow"
        "#,
    )
    .await;

    // The helpers present a Chrome User-Agent in browserInformation: the second rule raises
    // the work, and scoring decides as usual.
    let challenge = server.challenge(SITE).await;
    assert_eq!(challenge["difficulty"], 5);
    assert_eq!(challenge["tasks"].as_array().map(Vec::len), Some(4));
    let result = server.fetch(KEY, &server.finish(&challenge).await).await;
    assert_eq!(result.decision_type, DecisionType::Standard);

    // A header the first rule names blocks, whatever follows.
    let response = server
        .http
        .post(format!("{}/v2/verifications", server.url))
        .header("origin", ORIGIN)
        .header("x-load-test", "yes")
        .json(&create_body(SITE, false))
        .send()
        .await
        .expect("create");
    let created: serde_json::Value = response.json().await.expect("json");
    let result = server
        .fetch(KEY, &server.finish(&created["challenge"]).await)
        .await;
    assert_blocked(&result, DecisionType::CustomAccessRule);

    // Another browser falls through to the third rule.
    let mut firefox = create_body(SITE, false);
    firefox["browserInformation"]["window-navigator-userAgent"] =
        "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0".into();
    let (_, created) = server
        .create_as(
            &firefox,
            "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
        )
        .await;
    assert_eq!(created["challenge"]["difficulty"], 2);
    let result = server
        .fetch(KEY, &server.finish(&created["challenge"]).await)
        .await;
    assert!(result.verification_passed);
    assert_eq!(result.decision_type, DecisionType::CustomAccessRule);
    assert_eq!(result.decision_action, DecisionAction::Allow);
}

#[tokio::test]
async fn reputation_lists_block_every_site_that_does_not_opt_out() {
    let list = std::env::temp_dir().join(format!("trustcaptcha-tor-{}.txt", std::process::id()));
    std::fs::write(
        &list,
        "ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E\nPublished 2026-11-25 23:52:16\n\
         LastStatus 2026-11-26 01:00:00\nExitAddress 127.0.0.1 2026-11-26 01:09:06\n",
    )
    .expect("write");
    let lists = format!("reputation_lists = [{:?}]", list.display().to_string());

    let listed = server_with(&lists, "").await;
    assert_blocked(&result_of(&listed).await, DecisionType::GlobalIpAccessRule);

    let opted_out = server_with(&lists, "reputation_lists = false").await;
    assert!(result_of(&opted_out).await.verification_passed);

    // The site's own allow list wins over the global lists.
    let allowed = server_with(&lists, "allow_ips = [\"127.0.0.1\"]").await;
    assert_eq!(
        result_of(&allowed).await.decision_action,
        DecisionAction::Allow
    );
    let _ = std::fs::remove_file(list);
}

#[test]
fn a_reputation_list_that_cannot_be_read_is_a_configuration_problem() {
    let list = std::env::temp_dir().join(format!("trustcaptcha-bad-{}.txt", std::process::id()));
    std::fs::write(&list, "192.0.2.1\nnot an address\n").expect("write");
    let text = format!(
        "[server]\nreputation_lists = [{:?}]\n\n[[sites]]\nname = \"a\"\nsite_key = \"{SITE}\"\napi_keys = [\"{KEY}\"]\n",
        list.display().to_string()
    );
    // Validation reads no file: the list is read (once) when the server starts, or by
    // `check-config`.
    let config = config::parse(&text).expect("valid as written");
    let error = config::ServerFiles::read(&config.server).expect_err("refused");
    let message = error.to_string();
    assert!(message.contains("reputation_lists"), "{message}");
    assert!(message.contains("line 2"), "{message}");
    let _ = std::fs::remove_file(list);
}

#[tokio::test]
async fn minimal_data_mode_keeps_nothing_about_the_visitor() {
    let database = geoip_database("minimal", &[("127.0.0.0/24", "FR")]);
    let server = server_with(
        &format!("geoip_database = {:?}", database.display().to_string()),
        "minimal_data_mode = true",
    )
    .await;
    let token = server.solve_body(&create_body(SITE, true)).await;
    let result = server.fetch(KEY, &token).await;
    assert!(result.minimal_data_mode_enabled);
    for (field, value) in [
        ("ipAddress", &result.ip_address),
        ("origin", &result.origin),
        ("countryCode", &result.country_code),
        ("deviceFamily", &result.device_family),
        ("operatingSystem", &result.operating_system),
        ("browser", &result.browser),
    ] {
        assert_eq!(value, "", "{field}");
    }
    let _ = std::fs::remove_file(database);
}

#[tokio::test]
async fn the_captcha_id_can_be_set() {
    let id = "7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f";
    let server = server_with("", &format!("captcha_id = \"{id}\"")).await;
    assert_eq!(result_of(&server).await.captcha_id.to_string(), id);
    let error = config::parse(
        &format!("[[sites]]\nname = \"a\"\nsite_key = \"{SITE}\"\napi_keys = [\"{KEY}\"]\ncaptcha_id = \"nope\"\n")
    )
    .expect_err("refused");
    assert!(error.to_string().contains("captcha_id"), "{error}");
}
