//! Detection through the real server: each signal fires for the forgery that shows it and adds
//! its documented weight; protocol bots (the `solve` command, a replaying HTTP client) are
//! refused on a site with default settings, while the sandbox and bypass keys keep automated
//! tests passing.

use serde_json::{Value, json};
use trustcaptcha::DecisionAction;
use trustcaptcha_server::config::{self, Config};
use trustcaptcha_server::solve::{SolveOptions, solve};
use trustcaptcha_server::testing::*;

const SITE: &str = "5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const KEY: &str = "ak_detection_site_key_0123456789";
const BYPASS: &str = "detection-bypass-key-for-ci";

/// One site with default settings but its keys and origin.
fn site_config() -> Config {
    site_config_with("")
}

/// [`site_config`] with `extra` TOML lines for the site.
fn site_config_with(extra: &str) -> Config {
    config::parse(&format!(
        r#"
        [server]
        widget_requests_per_minute = 60000
        widget_burst = 10000
        [[sites]]
        name = "default"
        site_key = "{SITE}"
        api_keys = ["{KEY}"]
        allowed_origins = ["{ORIGIN}"]
        bypass_keys = ["{BYPASS}"]
        {extra}
        "#
    ))
    .expect("valid")
}

/// A client that sends exactly `headers` (and the test origin), nothing a browser would add.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// The browser's own headers, as [`TestClient`]'s client sends them.
fn browser() -> reqwest::header::HeaderMap {
    let mut headers = browser_headers();
    headers.insert(
        reqwest::header::USER_AGENT,
        USER_AGENT.parse().expect("value"),
    );
    headers
}

/// Creates with `headers` and `body`, solves natively, submits (after a browser's time on the
/// server's clock when `paced`), and fetches the result.
async fn judged(
    server: &TestServer,
    headers: reqwest::header::HeaderMap,
    body: &Value,
    paced: bool,
) -> trustcaptcha::VerificationResult {
    judged_with(server, (headers.clone(), headers), body, paced).await
}

/// [`judged`], with the create request's headers and the submission's apart.
async fn judged_with(
    server: &TestServer,
    (headers, submit_headers): (reqwest::header::HeaderMap, reqwest::header::HeaderMap),
    body: &Value,
    paced: bool,
) -> trustcaptcha::VerificationResult {
    let created = created(server, headers, body).await;
    let challenge = &created["challenge"];
    let tasks = answers(challenge);
    if paced {
        // At least a browser's time: adaptive difficulty raises the work as solves pile up.
        server
            .clock
            .advance(browser_time(&tasks).max(std::time::Duration::from_secs(1)));
    }
    let id = challenge["verificationId"].as_str().expect("id");
    let response = client()
        .post(format!("{}/v2/verifications/{id}/challenges", server.url))
        .headers(submit_headers)
        .header("origin", ORIGIN)
        .json(&submit_body(&tasks))
        .send()
        .await
        .expect("submit");
    assert_eq!(response.status(), 201);
    let finished: Value = response.json().await.expect("json");
    let token = finished["finished"]["verificationToken"]
        .as_str()
        .expect("token");
    server.fetch(KEY, token).await
}

/// `count` pointer positions in equal steps along a straight line, 16 ms apart from `start`
/// (page time), as a script draws them.
fn drawn_line(count: u8, start: f64, from: (f64, f64), step: (f64, f64)) -> Vec<Value> {
    (0..count)
        .map(|i| {
            let i = f64::from(i);
            mouse(
                "mousemove",
                16.0f64.mul_add(i, start),
                (step.0.mul_add(i, from.0), step.1.mul_add(i, from.1)),
            )
        })
        .collect()
}

/// The site's counts of the last hour, as `/admin/statistics` reports them.
async fn hour_counts(server: &TestServer) -> Value {
    server.statistics("default", "hour").await["counts"].take()
}

fn mouse(kind: &str, time: f64, (x, y): (f64, f64)) -> Value {
    json!({
        "isTrusted": true, "timeStamp": time, "type": kind, "detail": u8::from(kind != "mousemove"),
        "x": x, "y": y, "screenX": x + 10.0, "screenY": y + 97.0,
    })
}

/// A browser's submission repeats its create request's User-Agent, client hints, fetch metadata,
/// languages and origin; a client that dressed only its create request is caught at the
/// submission.
#[tokio::test]
async fn a_submission_unlike_its_create_request_fires_the_request_signal() {
    let server = TestServer::start(site_config()).await;
    let body = create_body(SITE, false);
    let same = judged_with(&server, (browser(), browser()), &body, true).await;
    assert_eq!(same.score, 0.0, "a browser's two requests agree");
    let changes: [(&str, Option<&str>); 5] = [
        ("user-agent", Some("python-requests/2.32.3")),
        ("user-agent", None),
        ("accept-language", Some("fr-FR,fr;q=0.9")),
        ("sec-fetch-mode", None),
        ("sec-ch-ua", Some("\"Chromium\";v=\"1\"")),
    ];
    for (name, value) in changes {
        let mut submit = browser();
        match value {
            Some(value) => {
                submit.insert(name, value.parse().expect("value"));
            }
            None => {
                submit.remove(name);
            }
        }
        let result = judged_with(&server, (browser(), submit), &body, true).await;
        assert_eq!(result.score, 0.4, "{name}: {value:?}");
        assert!(
            result.verification_passed,
            "one signal alone blocks nothing"
        );
    }
    let counts = hour_counts(&server).await;
    assert_eq!(counts["signal:request"], 5, "{counts}");
}

#[tokio::test]
async fn each_signal_fires_for_its_forgery_with_its_weight() {
    let server = TestServer::start(site_config()).await;
    let person = judged(&server, browser(), &create_body(SITE, false), true).await;
    assert_eq!(person.score, 0.0, "the harness plays a person");
    assert_eq!(person.decision_action, DecisionAction::Allow);

    let without = |name: &str| {
        let mut headers = browser();
        headers.remove(name);
        headers
    };
    let rehashed = |change: &dyn Fn(&mut Value)| {
        let mut body = create_body(SITE, false);
        change(&mut body["browserInformation"]);
        let info = serde_json::from_value(body["browserInformation"].clone()).expect("info");
        body["integrityHash"] = trustcaptcha_server::integrity::integrity_hash(&info).into();
        body
    };
    let with_events = |events: Vec<Value>| {
        let mut body = create_body(SITE, false);
        body["userEvents"] = Value::Array(events);
        body
    };
    let headless_agent = USER_AGENT.replace("Chrome/", "HeadlessChrome/");
    let mut headless = browser();
    headless.insert(
        reqwest::header::USER_AGENT,
        headless_agent.parse().expect("value"),
    );
    let line = drawn_line(6, 100.0, (10.0, 10.0), (31.0, 18.0));
    let cases: Vec<(&str, f64, reqwest::header::HeaderMap, Value, bool)> = vec![
        (
            "headless",
            0.6,
            headless,
            rehashed(&|info| info["window-navigator-userAgent"] = headless_agent.clone().into()),
            true,
        ),
        (
            "request",
            0.4,
            without("accept-language"),
            create_body(SITE, false),
            true,
        ),
        (
            "window",
            0.3,
            browser(),
            rehashed(&|info| {
                for key in ["Width", "Height"] {
                    info[format!("window-outer{key}")] = 1000.into();
                    info[format!("window-inner{key}")] = 1000.into();
                }
            }),
            true,
        ),
        (
            "screen",
            0.6,
            browser(),
            rehashed(&|info| {
                info["window-outerWidth"] = 1366.into();
                info["window-outerHeight"] = 768.into();
                info["window-innerWidth"] = 1366.into();
                info["window-innerHeight"] = 683.into();
                info["window-screen-width"] = 800.into();
                info["window-screen-height"] = 600.into();
            }),
            true,
        ),
        (
            "events",
            0.4,
            browser(),
            with_events(vec![
                json!({"isTrusted": false, "timeStamp": 5.0, "type": "click", "detail": 0}),
            ]),
            true,
        ),
        (
            "synthetic",
            0.3,
            browser(),
            with_events(vec![
                mouse("mousemove", 100.0, (300.0, 200.0)),
                mouse("mousedown", 102.0, (300.0, 200.0)),
                mouse("mouseup", 104.0, (300.0, 200.0)),
                mouse("click", 104.0, (300.0, 200.0)),
            ]),
            true,
        ),
        ("synthetic", 0.3, browser(), with_events(line), true),
        ("too_fast", 0.4, browser(), create_body(SITE, false), false),
    ];
    for (signal, weight, headers, body, paced) in cases {
        let result = judged(&server, headers, &body, paced).await;
        assert_eq!(result.score, weight, "{signal}");
        assert!(result.verification_passed, "{signal}");
        let expected = if weight > 0.5 {
            DecisionAction::Block
        } else {
            DecisionAction::Allow
        };
        assert_eq!(result.decision_action, expected, "{signal}");
    }

    // Every signal is counted in the site's statistics.
    let counts = &hour_counts(&server).await;
    for (signal, expected) in [
        ("headless", 1),
        ("request", 1),
        ("window", 1),
        ("screen", 1),
        ("events", 1),
        ("synthetic", 2),
        ("too_fast", 1),
        ("honeypot", 0),
    ] {
        assert_eq!(
            counts[format!("signal:{signal}")],
            expected,
            "{signal}: {counts}"
        );
    }
}

/// The server's answer (200) to a create request with `headers` and `body`.
async fn created(server: &TestServer, headers: reqwest::header::HeaderMap, body: &Value) -> Value {
    let response = client()
        .post(format!("{}/v2/verifications", server.url))
        .headers(headers)
        .header("origin", ORIGIN)
        .json(body)
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

/// The difficulty the server asks of a create request with `headers` and `body`.
async fn difficulty_for(
    server: &TestServer,
    headers: reqwest::header::HeaderMap,
    body: &Value,
) -> u64 {
    created(server, headers, body).await["challenge"]["difficulty"]
        .as_u64()
        .expect("difficulty")
}

/// What a create request shows before any work buys extra bits: one per 0.2 of its score by
/// default, none for a network the site allows.
#[tokio::test]
async fn suspicion_at_create_raises_the_difficulty_by_its_steps() {
    let server = TestServer::start(site_config()).await;
    let base = difficulty_for(&server, browser(), &create_body(SITE, false)).await;
    assert_eq!(base, 13, "a clean request gets the site's difficulty");
    let mut no_language = browser();
    no_language.remove("accept-language");
    let one_signal = difficulty_for(&server, no_language, &create_body(SITE, false)).await;
    assert_eq!(one_signal, base + 2, "request (0.4): two bits");
    let mut eventless = create_body(SITE, false);
    eventless["userEvents"] = json!([]);
    let mut bare = browser();
    bare.remove("accept-language");
    assert_eq!(
        difficulty_for(&server, bare.clone(), &eventless).await,
        base + 5,
        "no_events and request (score 1): the cap of five bits"
    );

    let allowed = TestServer::start(site_config_with(r#"allow_ips = ["127.0.0.0/8"]"#)).await;
    assert_eq!(
        difficulty_for(&allowed, bare.clone(), &eventless).await,
        base,
        "a network the site allows is suspected of nothing"
    );
    let off = TestServer::start(site_config_with("suspicion = { max_extra = 0 }")).await;
    assert_eq!(difficulty_for(&off, bare, &eventless).await, base);
}

#[derive(serde::Serialize)]
struct AsnRecord {
    autonomous_system_number: u32,
    autonomous_system_organization: &'static str,
}

/// A client on a hosting network (its autonomous system, from an ASN database, on the shipped
/// or the operator's list) fires `hosting`, which costs two bits of work and 0.4 of score.
#[tokio::test]
async fn a_client_on_a_hosting_network_fires_the_hosting_signal() {
    let database = |name: &str, asn: u32| {
        crate::geoip::database_of(name, "GeoLite2-ASN", &[("127.0.0.0/24", asn)], |asn| {
            AsnRecord {
                autonomous_system_number: asn,
                autonomous_system_organization: "a test network",
            }
        })
    };
    let with = |path: &std::path::Path, shipped: bool, extra: &[u32]| {
        let mut config = site_config();
        config.server.asn_database = Some(path.to_owned());
        config.server.shipped_hosting_asns = shipped;
        config.server.hosting_asns = extra.to_vec();
        config
    };
    // Amazon's network, on the shipped list.
    let amazon = database("amazon", 16_509);
    let server = TestServer::start(with(&amazon, true, &[])).await;
    assert_eq!(
        difficulty_for(&server, browser(), &create_body(SITE, false)).await,
        15
    );
    let result = judged(&server, browser(), &create_body(SITE, false), true).await;
    assert_eq!(result.score, 0.4);
    assert_eq!(
        result.decision_action,
        DecisionAction::Allow,
        "alone it refuses nothing"
    );
    assert_eq!(hour_counts(&server).await["signal:hosting"], 1);
    // The shipped list turned off: Amazon is a network like any other.
    let server = TestServer::start(with(&amazon, false, &[])).await;
    let result = judged(&server, browser(), &create_body(SITE, false), true).await;
    assert_eq!(result.score, 0.0);
    // A residential network is not a hosting one; the operator's own entry makes it one.
    let home = database("home", 3_320);
    let server = TestServer::start(with(&home, true, &[])).await;
    let result = judged(&server, browser(), &create_body(SITE, false), true).await;
    assert_eq!(result.score, 0.0);
    let server = TestServer::start(with(&home, true, &[3320])).await;
    let result = judged(&server, browser(), &create_body(SITE, false), true).await;
    assert_eq!(result.score, 0.4);
    let _ = std::fs::remove_file(amazon);
    let _ = std::fs::remove_file(home);
}

/// One device fingerprint from many networks, most of the site's traffic: a farm of one browser
/// build behind proxies. The same device among many others' is a common device.
#[tokio::test]
async fn one_device_from_many_networks_is_repeated_unless_common_at_the_site() {
    let config = config::parse(&format!(
        r#"
        [server]
        widget_requests_per_minute = 60000
        widget_burst = 10000
        trusted_proxies = ["127.0.0.1/32"]
        client_address_header = "x-forwarded-for"
        [[sites]]
        name = "default"
        site_key = "{SITE}"
        api_keys = ["{KEY}"]
        allowed_origins = ["{ORIGIN}"]
        repetition = {{ networks = 3, share = 0.5 }}
        "#
    ))
    .expect("valid");
    let server = TestServer::start(config).await;
    let from = |network: &str| {
        let mut headers = browser();
        headers.insert("x-forwarded-for", network.parse().expect("value"));
        headers
    };
    let farm = create_body(SITE, false);
    let scores =
        async |network: &str, body: &Value| judged(&server, from(network), body, true).await.score;
    assert_eq!(scores("198.51.100.1", &farm).await, 0.0);
    assert_eq!(
        scores("198.51.100.1", &farm).await,
        0.0,
        "one network, however often"
    );
    assert_eq!(scores("198.51.100.2", &farm).await, 0.0);
    assert_eq!(
        scores("198.51.100.3", &farm).await,
        0.4,
        "three networks, all of the traffic"
    );
    assert_eq!(hour_counts(&server).await["signal:repeated"], 1);
    // Many other devices visit: the same fingerprint from a fourth network is a common device.
    for person in 0..8u8 {
        let mut body = create_body(SITE, false);
        body["fingerprints"]["canvas"] = format!("{person:064x}").into();
        assert_eq!(scores(&format!("203.0.113.{person}"), &body).await, 0.0);
    }
    assert_eq!(
        scores("198.51.100.4", &farm).await,
        0.0,
        "4 of 13: under half"
    );
}

#[tokio::test]
async fn a_site_without_risk_scoring_looks_for_no_signal() {
    let server = TestServer::start(site_config_with("risk_scoring = false")).await;
    let mut eventless = create_body(SITE, false);
    eventless["userEvents"] = json!([]);
    let mut headless = browser();
    headless.remove("sec-fetch-mode");
    let result = judged(&server, headless, &eventless, false).await;
    assert_eq!(
        (result.score, result.decision_action),
        (0.0, DecisionAction::Allow)
    );
    let counts = &hour_counts(&server).await;
    assert_eq!(counts["solved"], 1, "{counts}");
    let fired: Vec<_> = counts
        .as_object()
        .expect("counts")
        .iter()
        .filter(|(event, count)| event.starts_with("signal:") && count.as_u64() != Some(0))
        .collect();
    assert!(fired.is_empty(), "{fired:?}");
}

#[tokio::test]
async fn a_network_that_solves_far_beyond_its_share_is_busy() {
    let server = TestServer::start(site_config()).await;
    // Default adaptive difficulty: 10 free solves a minute; more than 30 make a network busy.
    // The count never overestimates, so the first 31 solves see no busy network; the sliding
    // estimate may fade solves of the previous fixed window, so a few more may be needed.
    for _ in 0..31 {
        let result = judged(&server, browser(), &create_body(SITE, false), true).await;
        assert_eq!(result.score, 0.0);
    }
    let mut busy = None;
    for _ in 0..15 {
        let result = judged(&server, browser(), &create_body(SITE, false), true).await;
        if result.score > 0.0 {
            busy = Some(result);
            break;
        }
    }
    let busy = busy.expect("the network became busy");
    assert_eq!(busy.score, 0.2);
    assert_eq!(busy.decision_action, DecisionAction::Allow);
}

#[tokio::test]
async fn the_solve_command_is_refused_on_a_real_site_and_passes_with_a_bypass_key() {
    let server = TestServer::start(site_config()).await;
    let options = SolveOptions {
        origin: Some(ORIGIN.to_owned()),
        ..SolveOptions::new(&server.url, SITE)
    };
    let token = solve(&options).await.expect("solved");
    let result = server.fetch(KEY, &token).await;
    assert!(result.score > 0.5, "score {}", result.score);
    assert_eq!(result.decision_action, DecisionAction::Block);

    let bypassed = SolveOptions {
        bypass_key: Some(BYPASS.to_owned()),
        ..options
    };
    let token = solve(&bypassed).await.expect("solved");
    let result = server.fetch(KEY, &token).await;
    assert_eq!(
        (result.score, result.decision_action),
        (0.0, DecisionAction::Allow)
    );
}

#[tokio::test]
async fn a_client_replaying_a_browsers_request_with_made_up_events_is_refused() {
    let server = TestServer::start(site_config()).await;
    // A recorded page description and the browser's headers, copied exactly; events made up
    // along a straight line; the proof-of-work solved natively and sent at once.
    let mut body = create_body(SITE, false);
    body["userEvents"] = drawn_line(8, 500.0, (100.0, 100.0), (25.0, 10.0))
        .into_iter()
        .chain(
            ["mousedown", "mouseup", "click"]
                .iter()
                .map(|kind| mouse(kind, 700.0, (275.0, 170.0))),
        )
        .collect();
    for _ in 0..5 {
        let result = judged(&server, browser(), &body, false).await;
        assert!(result.score > 0.5, "score {}", result.score);
        assert_eq!(result.decision_action, DecisionAction::Block);
    }
}
