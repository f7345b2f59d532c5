//! The optional features against a real loopback server: `blocking` and `tracing`.
#![cfg(any(feature = "blocking", feature = "tracing"))]

mod support;

use support::{API_KEY, Reply, SEED_RESULT, TestApi, token};

const SEED_ID: &str = "07b01922-3faa-4667-a4a6-910a76cb8ab7";

#[cfg(feature = "blocking")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_client_has_the_same_builder_results_and_errors() {
    use trustcaptcha::ErrorKind;
    use trustcaptcha::blocking::TrustCaptcha;

    let api = TestApi::start([
        (SEED_ID, Reply::new(200, SEED_RESULT)),
        ("00000000-0000-4000-8000-000000000429", Reply::new(429, "")),
    ])
    .await;
    let url = api.url();
    let (result, error, unreachable) = tokio::task::spawn_blocking(move || {
        let tc = TrustCaptcha::builder(API_KEY)
            .api_host(url)
            .connect_timeout(std::time::Duration::from_secs(1))
            .build()
            .expect("valid");
        let result = tc.get_verification_result(&token(SEED_ID, ""));
        let error = tc.get_verification_result(&token("00000000-0000-4000-8000-000000000429", ""));
        let closed = TrustCaptcha::builder(API_KEY)
            .api_host(format!("http://{}", support::closed_port()))
            .build()
            .expect("valid")
            .get_verification_result(&token(SEED_ID, ""));
        (result, error, closed)
    })
    .await
    .expect("blocking task");
    assert_eq!(result.expect("result").score, 0.3);
    assert_eq!(
        error.expect_err("429").kind(),
        ErrorKind::VerificationResultRetrievalLimitReached
    );
    assert_eq!(
        unreachable.expect_err("closed").kind(),
        ErrorKind::ServerUnreachable
    );
    assert_eq!(
        api.requests()[0].headers["authorization"],
        format!("Bearer {API_KEY}").as_str()
    );
}

#[cfg(feature = "tracing")]
#[tokio::test]
async fn tracing_records_id_status_and_latency_but_never_the_key() {
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::format::FmtSpan;

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

    let api = TestApi::start([
        (SEED_ID, Reply::new(200, SEED_RESULT)),
        ("00000000-0000-4000-8000-000000000403", Reply::new(403, "")),
    ])
    .await;
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let tc = trustcaptcha::TrustCaptcha::builder(API_KEY)
        .api_host(api.url())
        .build()
        .expect("valid");
    let ok_token = token(SEED_ID, "");
    let bad_token = token("00000000-0000-4000-8000-000000000403", "");
    tc.get_verification_result(&ok_token).await.expect("result");
    tc.get_verification_result(&bad_token)
        .await
        .expect_err("403");

    let logs = String::from_utf8(capture.0.lock().expect("lock").clone()).expect("utf8");
    assert!(
        logs.contains(&format!("verification_id={SEED_ID}")),
        "{logs}"
    );
    assert!(logs.contains("status=200"), "{logs}");
    assert!(logs.contains("status=403"), "{logs}");
    assert!(logs.contains("latency_ms="), "{logs}");
    assert!(!logs.contains(API_KEY), "{logs}");
    assert!(
        !logs.contains(&ok_token) && !logs.contains(&bad_token),
        "{logs}"
    );
}
