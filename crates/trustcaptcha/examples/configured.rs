//! The guide's configured usage: API host, timeouts and (optionally) a proxy.
//!
//! ```sh
//! cargo run --example configured
//! HTTP_PROXY_URL=http://127.0.0.1:3128 cargo run --example configured
//! ```

#[path = "support/sandbox.rs"]
mod sandbox;

use std::time::Duration;

use trustcaptcha::trust_captcha::TrustCaptcha;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let sandbox = sandbox::Sandbox::start().await?;

    let mut builder = TrustCaptcha::builder(&sandbox.api_key)
        .api_host(&sandbox.api_host)
        .connect_timeout(Duration::from_secs(3))
        .read_timeout(Duration::from_secs(5));
    if let Ok(proxy) = std::env::var("HTTP_PROXY_URL") {
        builder = builder.proxy(proxy);
    }
    // Build once, share everywhere: clones share one connection pool.
    let trust_captcha = builder.build()?;
    println!("{trust_captcha:?}");

    let token = sandbox.token().await?;
    let result = trust_captcha.get_verification_result(&token).await?;
    println!(
        "passed: {}, score: {}, decision: {} / {}",
        result.verification_passed, result.score, result.decision_type, result.decision_action
    );
    Ok(())
}
