//! A real `trustcaptcha-server` on 127.0.0.1:0, and tokens solved against it.

use trustcaptcha_server::config::{Config, ServerSettings, Site};
use trustcaptcha_server::secret::KeyHash;
use trustcaptcha_server::solve::{SolveOptions, solve};

pub const SITE_KEY: &str = "4c0a2b1d-8e3f-4a5b-9c6d-7e8f9a0b1c2d";
pub const SERVER_API_KEY: &str = "ak_integration_tests_0123456789";

/// Starts a server with one site (low difficulty, one retrieval per result); returns its URL.
pub async fn start() -> String {
    let site = Site {
        api_keys: vec![KeyHash::of(SERVER_API_KEY)],
        difficulty: 2,
        tasks: 1,
        ..Site::new("integration", SITE_KEY.parse().expect("uuid"))
    };
    let config = Config {
        server: ServerSettings {
            outage_before_start: false,
            ..ServerSettings::default()
        },
        sites: vec![site],
    };
    let state = trustcaptcha_server::AppState::builder(config)
        .build()
        .expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(trustcaptcha_server::serve(
        listener,
        state,
        std::future::pending(),
    ));
    url
}

/// A fresh token, solved as a (scripted) widget would. Its score is 0.5: no user events and
/// instant timing, as an automated solver honestly reports.
pub async fn token(url: &str) -> String {
    solve(&SolveOptions {
        api_url: url.to_owned(),
        site_key: SITE_KEY.to_owned(),
        origin: None,
        bypass_token: None,
        minimal_data_mode: false,
    })
    .await
    .expect("solve")
}
