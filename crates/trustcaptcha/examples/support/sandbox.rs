//! Where the examples get an API and a token from.
//!
//! With `TRUSTCAPTCHA_API_KEY` set, the examples talk to `TRUSTCAPTCHA_API_HOST` (default: the
//! hosted service) and verify the token in `TRUSTCAPTCHA_TOKEN`. Without it they start an
//! embedded `trustcaptcha-server` in sandbox mode on loopback and solve a verification against
//! it, so that they run on a fresh machine with no account.

use trustcaptcha_server::config::{SANDBOX_API_KEY, SANDBOX_SITE_KEY};
use trustcaptcha_server::solve::{SolveOptions, solve};
use trustcaptcha_server::testing::TestServer;

/// The API to use and a token to verify.
pub(crate) struct Sandbox {
    /// The API host to configure.
    pub(crate) api_host: String,
    /// The API key to configure.
    pub(crate) api_key: String,
    /// The embedded server, if one was started; it stops when this is dropped.
    embedded: Option<TestServer>,
}

impl Sandbox {
    /// Uses the configured API, or starts the embedded sandbox server.
    pub(crate) async fn start() -> Result<Sandbox, Box<dyn std::error::Error + Send + Sync>> {
        if let Ok(api_key) = std::env::var("TRUSTCAPTCHA_API_KEY") {
            let api_host = std::env::var("TRUSTCAPTCHA_API_HOST")
                .unwrap_or_else(|_| "https://api.trustcomponent.com".to_owned());
            return Ok(Sandbox {
                api_host,
                api_key,
                embedded: None,
            });
        }
        let server = TestServer::sandbox().await;
        println!(
            "started an embedded trustcaptcha-server sandbox at {}",
            server.url
        );
        Ok(Sandbox {
            api_host: server.url.clone(),
            api_key: SANDBOX_API_KEY.to_owned(),
            embedded: Some(server),
        })
    }

    /// A fresh verification token: solved against the sandbox, or `TRUSTCAPTCHA_TOKEN`.
    pub(crate) async fn token(&self) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        if self.embedded.is_none() {
            return Ok(std::env::var("TRUSTCAPTCHA_TOKEN")
                .map_err(|_| "set TRUSTCAPTCHA_TOKEN to a token from your widget")?);
        }
        Ok(solve(&SolveOptions::new(
            self.api_host.clone(),
            SANDBOX_SITE_KEY.to_string(),
        ))
        .await?)
    }
}
