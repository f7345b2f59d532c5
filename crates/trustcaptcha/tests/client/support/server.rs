//! The self-hosted server with one site for the client's tests, and tokens solved against it.

use trustcaptcha_server::config::{Config, Site};
use trustcaptcha_server::integrity::{BrowserInformation, integrity_hash};
use trustcaptcha_server::secret::KeyHash;
use trustcaptcha_server::testing::{TestServer, create_body};

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

/// A fresh token from `server`, solved as a scripted browser would, whose score is exactly 0.5 (the guide's
/// threshold, still allowed): the browser reports `navigator.webdriver` (0.3) and started
/// solving the moment the box appeared (0.2).
pub(crate) async fn token(server: &TestServer) -> String {
    let mut body = create_body(SITE_KEY, false);
    body["browserInformation"]["window-navigator-webdriver"] = true.into();
    body["widget"]["startSolvingTimestamp"] = body["widget"]["boxCreationTimestamp"].clone();
    let info: BrowserInformation =
        serde_json::from_value(body["browserInformation"].clone()).expect("browser information");
    body["integrityHash"] = integrity_hash(&info).into();
    server.solve_body(&body).await
}
