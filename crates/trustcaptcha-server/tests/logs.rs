//! Secrets never reach the logs. Alone in its own test binary: `tracing`'s per-callsite interest
//! cache is shared by the whole process, and tests without a subscriber running in parallel
//! would make the callsites look uninteresting.

mod support;

use support::*;

#[tokio::test]
async fn keys_and_tokens_never_reach_the_logs() {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // A current-thread test runtime: server, client and subscriber share this thread.
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = TestServer::default().await;
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

    let logs = String::from_utf8(capture.0.lock().expect("lock").clone()).expect("utf8");
    assert!(
        logs.contains("/v2/verifications/{id}/results"),
        "spans are logged:\n{logs}"
    );
    for secret in [KEY_A, "ak_wrong_key_for_logs", BYPASS_A, token.as_str()] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}
