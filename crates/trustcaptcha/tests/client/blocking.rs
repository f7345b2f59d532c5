//! The `blocking` feature against a real loopback server.
#![cfg(feature = "blocking")]

use crate::support::{API_KEY, Reply, SEED_RESULT, TestApi, token};

const SEED_ID: &str = "07b01922-3faa-4667-a4a6-910a76cb8ab7";

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
            .api_host(format!("http://{}", crate::support::closed_port()))
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
