//! The `tracing` feature. Alone in its own test binary: `tracing`'s per-callsite interest cache
//! is process-wide, and parallel tests without a subscriber would make callsites look
//! uninteresting.
#![cfg(feature = "tracing")]

#[path = "client/support/mod.rs"]
mod support;

use support::{API_KEY, Reply, SEED_RESULT, TestApi, token};

const SEED_ID: &str = "07b01922-3faa-4667-a4a6-910a76cb8ab7";

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
