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
    let mut body = create_body(SITE_A, false);
    body["widget"]["bypassToken"] = BYPASS_A.into();
    assert_eq!(server.create(&body).await.0, 201);

    let logs = capture.text();
    assert!(
        logs.contains("/v2/verifications/{id}/results"),
        "spans are logged:\n{logs}"
    );
    for secret in [KEY_A, "ak_wrong_key_for_logs", BYPASS_A, token.as_str()] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}
