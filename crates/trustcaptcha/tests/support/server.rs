//! A real `trustcaptcha-server` on 127.0.0.1:0, and tokens solved against it.

use trustcaptcha_server::Spawned;
use trustcaptcha_server::config::{Config, ServerSettings, Site};
use trustcaptcha_server::secret::KeyHash;
use trustcaptcha_server::solve::{SolveOptions, solve};

pub const SITE_KEY: &str = "4c0a2b1d-8e3f-4a5b-9c6d-7e8f9a0b1c2d";
pub const SERVER_API_KEY: &str = "ak_integration_tests_0123456789";

/// Starts a server with one site (low difficulty, one retrieval per result). It runs until
/// the returned handle is dropped.
pub async fn start() -> Spawned {
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
    trustcaptcha_server::spawn(state, ([127, 0, 0, 1], 0).into())
        .await
        .expect("spawn")
}

/// A fresh token, solved as a (scripted) widget would. Its score is 0.5: no user events and
/// instant timing, as an automated solver honestly reports.
pub async fn token(url: &str) -> String {
    solve(&SolveOptions::new(url.to_owned(), SITE_KEY.to_owned()))
        .await
        .expect("solve")
}
