//! Where the examples get an API and a token from.
//!
//! With `TRUSTCAPTCHA_API_KEY` set, the examples talk to `TRUSTCAPTCHA_API_HOST` (default: the
//! hosted service) and verify the token in `TRUSTCAPTCHA_TOKEN`. Without it they start an
//! embedded `trustcaptcha-server` in sandbox mode on loopback and solve a verification against
//! it, so that they run on a fresh machine with no account.

use trustcaptcha_server::config::{
    Config, SANDBOX_API_KEY, SANDBOX_SITE_KEY, ServerSettings, Site,
};
use trustcaptcha_server::solve::{SolveOptions, solve};

/// The API to use and a token to verify.
pub struct Sandbox {
    /// The API host to configure.
    pub api_host: String,
    /// The API key to configure.
    pub api_key: String,
    embedded: bool,
}

impl Sandbox {
    /// Uses the configured API, or starts the embedded sandbox server.
    pub async fn start() -> Result<Sandbox, Box<dyn std::error::Error + Send + Sync>> {
        if let Ok(api_key) = std::env::var("TRUSTCAPTCHA_API_KEY") {
            let api_host = std::env::var("TRUSTCAPTCHA_API_HOST")
                .unwrap_or_else(|_| "https://api.trustcomponent.com".to_owned());
            return Ok(Sandbox {
                api_host,
                api_key,
                embedded: false,
            });
        }
        let config = Config {
            server: ServerSettings::default(),
            sites: vec![Site::sandbox()],
        };
        let state = trustcaptcha_server::AppState::builder(config).build()?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let api_host = format!("http://{}", listener.local_addr()?);
        tokio::spawn(trustcaptcha_server::serve(
            listener,
            state,
            std::future::pending(),
        ));
        println!("started an embedded trustcaptcha-server sandbox at {api_host}");
        Ok(Sandbox {
            api_host,
            api_key: SANDBOX_API_KEY.to_owned(),
            embedded: true,
        })
    }

    /// A fresh verification token: solved against the sandbox, or `TRUSTCAPTCHA_TOKEN`.
    pub async fn token(&self) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        if !self.embedded {
            return Ok(std::env::var("TRUSTCAPTCHA_TOKEN")
                .map_err(|_| "set TRUSTCAPTCHA_TOKEN to a token from your widget")?);
        }
        Ok(solve(&SolveOptions {
            api_url: self.api_host.clone(),
            site_key: SANDBOX_SITE_KEY.to_string(),
            origin: None,
            bypass_token: None,
            minimal_data_mode: false,
        })
        .await?)
    }
}
