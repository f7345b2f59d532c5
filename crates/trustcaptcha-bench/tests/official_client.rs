//! The official, unmodified `trustcaptcha` 3.0.0 crate against `trustcaptcha-server`: its own
//! test suite's fixtures in sandbox mode, and a real verification end to end.

use base64::Engine as _;
use trustcaptcha_official::errors::{
    ApiKeyInvalidError, ClientReportedServerUnreachableError, VerificationNotFinishedError,
    VerificationNotFoundError, VerificationResultExpiredError,
    VerificationResultRetrievalLimitReachedError,
};
use trustcaptcha_official::trust_captcha::TrustCaptcha;
use trustcaptcha_server::config::{Config, SANDBOX_API_KEY, SANDBOX_SITE_KEY, Site};
use trustcaptcha_server::testing::TestServer;

/// The sandbox site, with no outage on record (so a failover claim is refused).
async fn sandbox() -> TestServer {
    let mut config = Config::new(vec![Site::sandbox()]);
    config.server.outage_before_start = false;
    TestServer::start(config).await
}

fn fixture(n: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!(
        r#"{{"verificationId":"00000000-0000-0000-0000-00000000000{n}"}}"#
    ))
}

// The official client's futures are not `Send`: everything runs on one thread.
#[tokio::test]
async fn the_official_clients_fixtures_pass() {
    let server = sandbox().await;
    let url = server.url.clone();
    let client = TrustCaptcha::builder(SANDBOX_API_KEY)
        .api_host(&url)
        .build()
        .expect("client");

    let result = client
        .get_verification_result(&fixture(0))
        .await
        .expect("fixture 0");
    assert!(result.verification_passed);
    assert_eq!(result.decision_type, "STANDARD");

    let error = |n| {
        let client = &client;
        async move {
            client
                .get_verification_result(&fixture(n))
                .await
                .expect_err("error fixture")
        }
    };
    assert!(error(1).await.is::<VerificationNotFoundError>());
    assert!(error(2).await.is::<VerificationNotFinishedError>());
    assert!(error(3).await.is::<VerificationResultExpiredError>());
    assert!(
        error(4)
            .await
            .is::<VerificationResultRetrievalLimitReachedError>()
    );

    let wrong = TrustCaptcha::builder("ak_invalid")
        .api_host(&url)
        .build()
        .expect("client");
    let error = wrong
        .get_verification_result(&fixture(0))
        .await
        .expect_err("403");
    assert!(error.is::<ApiKeyInvalidError>());

    let failover = base64::engine::general_purpose::STANDARD.encode(
        r#"{"verificationId":"6f1c2d3e-4b5a-4c6d-8e7f-0123456789ab","expiresAt":"2025-01-01T00:15:00.000Z","clientFailover":true}"#,
    );
    let error = client
        .get_verification_result(&failover)
        .await
        .expect_err("412");
    assert!(error.is::<ClientReportedServerUnreachableError>());
}

#[tokio::test]
async fn the_official_client_reads_a_real_result() {
    let server = sandbox().await;
    let url = server.url.clone();
    let token = trustcaptcha_server::solve::solve(&trustcaptcha_server::solve::SolveOptions::new(
        url.clone(),
        SANDBOX_SITE_KEY.to_string(),
    ))
    .await
    .expect("solve");
    let client = TrustCaptcha::builder(SANDBOX_API_KEY)
        .api_host(&url)
        .build()
        .expect("client");
    let result = client
        .get_verification_result(&token)
        .await
        .expect("result");
    assert!(result.verification_passed);
    assert_eq!(result.ip_address, "127.0.0.1");
    let again = client
        .get_verification_result(&token)
        .await
        .expect_err("fetched once");
    assert!(again.is::<VerificationResultRetrievalLimitReachedError>());
}
