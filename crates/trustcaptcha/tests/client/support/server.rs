//! The self-hosted server with one site for the client's tests, and tokens solved against it.

use trustcaptcha_server::config::{Config, Site};
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

/// A fresh token from `server`, solved as a scripted browser would, whose score is exactly 0.5
/// (the guide's threshold, still allowed): a click with no pointer movement before it (0.3),
/// and solving started the moment the box appeared (0.2).
pub(crate) async fn token(server: &TestServer) -> String {
    let mut body = create_body(SITE_KEY, false);
    body["userEvents"] = serde_json::json!([{
        "isTrusted": true, "timeStamp": 10.0, "type": "click", "detail": 1, "x": 326.0, "y": 303.0,
    }]);
    body["widget"]["startSolvingTimestamp"] = body["widget"]["boxCreationTimestamp"].clone();
    server.solve_body(&body).await
}
