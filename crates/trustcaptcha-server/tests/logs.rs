//! Secrets never reach the logs. Alone in its own test binary: `tracing`'s per-callsite interest
//! cache is shared by the whole process, and tests without a subscriber running in parallel
//! would make the callsites look uninteresting.

#[path = "api/fixtures.rs"]
mod fixtures;

use fixtures::*;
use trustcaptcha_server::testing::*;

#[tokio::test]
async fn keys_and_tokens_never_reach_the_logs() {
    // A current-thread test runtime: server, client and subscriber share this thread.
    let (capture, _guard) = LogCapture::start();

    let server = TestServer::start(config("")).await;
    let token = server.solve(SITE_A).await;
    server.fetch(KEY_A, &token).await;
    server
        .client("ak_wrong_key_for_logs")
        .get_verification_result(&token)
        .await
        .expect_err("403");
    let mut eventless = create_body(SITE_A, false);
    eventless["userEvents"] = serde_json::json!([]);
    let bot = server.solve_body(&eventless).await;
    let mut body = create_body(SITE_A, false);
    body["widget"]["bypassToken"] = BYPASS_A.into();
    assert_eq!(server.create(&body).await.0, 201);
    assert_eq!(server.create(&create_body(SITE_MINIMAL, true)).await.0, 200);

    let logs = capture.text();
    // One access line per request, naming the route, the status, the site and for a refusal
    // its reason.
    let access = |route: &str, status: u16| {
        logs.lines().find(|line| {
            line.contains("trustcaptcha::access")
                && line.contains(&format!("route=\"{route}\""))
                && line.contains(&format!("status={status}"))
        })
    };
    let created = access("/v2/verifications", 200).expect("a create line");
    assert!(
        created.contains("INFO") && created.contains("site=\"a\""),
        "{created}"
    );
    // The client's network, so that an operator can trace a lockout; for a minimal-data site
    // only its block.
    assert!(created.contains("network=127.0.0.1/32"), "{created}");
    let minimal = logs
        .lines()
        .find(|line| line.contains("trustcaptcha::access") && line.contains("site=\"minimal\""))
        .expect("a minimal-data line");
    assert!(minimal.contains("network=127.0.0.0/24"), "{minimal}");
    // In milliseconds to the microsecond, not a float's every digit.
    let latency = created
        .split("latency_ms=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a latency");
    let decimals = latency
        .split_once('.')
        .map_or(0, |(_, fraction)| fraction.len());
    assert!(latency.parse::<f64>().is_ok() && decimals <= 3, "{created}");
    let submitted = access("/v2/verifications/{id}/challenges", 201).expect("a submit line");
    assert!(submitted.contains("site=\"a\""), "{submitted}");
    // A finished verification's line names the detection signals that fired, if any.
    assert!(!submitted.contains("signals="), "{submitted}");
    assert!(
        logs.lines()
            .any(|line| line.contains("/challenges") && line.contains("signals=\"no_events\"")),
        "{logs}"
    );
    let refused = access("/v2/verifications/{id}/results", 403).expect("a refused fetch line");
    assert!(refused.contains("reason=\"invalid_key\""), "{refused}");
    for secret in [
        KEY_A,
        "ak_wrong_key_for_logs",
        BYPASS_A,
        token.as_str(),
        bot.as_str(),
    ] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}
