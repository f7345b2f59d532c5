//! The self-hosted server with one site for the client's tests, and tokens solved against it.

use trustcaptcha_server::config::{Config, Site};
use trustcaptcha_server::secret::KeyHash;
use trustcaptcha_server::solve::{SolveOptions, solve};
use trustcaptcha_server::testing::TestServer;

pub(crate) const SITE_KEY: &str = "4c0a2b1d-8e3f-4a5b-9c6d-7e8f9a0b1c2d";
pub(crate) const SERVER_API_KEY: &str = "ak_integration_tests_0123456789";

/// Starts a server with one site (low difficulty, one retrieval per result) and no outage on
/// record. It runs until the returned value is dropped.
pub(crate) async fn start() -> TestServer {
    let site = Site {
        api_keys: vec![KeyHash::of(SERVER_API_KEY)],
        difficulty: 2,
        tasks: 1,
        ..Site::new("integration", SITE_KEY.parse().expect("uuid"))
    };
    let mut config = Config::new(vec![site]);
    config.server.outage_before_start = false;
    TestServer::start(config).await
}

/// A fresh token, solved as a (scripted) widget would. Its score is 0.5: no user events and
/// instant timing, as an automated solver honestly reports.
pub(crate) async fn token(url: &str) -> String {
    solve(&SolveOptions::new(url.to_owned(), SITE_KEY.to_owned()))
        .await
        .expect("solve")
}
