//! The blocking client, for backends without an async runtime.
//!
//! ```sh
//! cargo run --example blocking --features blocking
//! ```

#[path = "support/sandbox.rs"]
mod sandbox;

use trustcaptcha::blocking::TrustCaptcha;

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // The embedded sandbox server needs a runtime; the client itself does not.
    let runtime = tokio::runtime::Runtime::new()?;
    let (sandbox, token) = runtime.block_on(async {
        let sandbox = sandbox::Sandbox::start().await?;
        let token = sandbox.token().await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((sandbox, token))
    })?;

    let (api_key, api_host) = (sandbox.api_key.clone(), sandbox.api_host.clone());
    let result = std::thread::spawn(move || {
        let trust_captcha = TrustCaptcha::builder(api_key).api_host(api_host).build()?;
        trust_captcha.get_verification_result(&token)
    })
    .join()
    .map_err(|_| "the verification thread panicked")??;
    println!(
        "passed: {}, score: {}",
        result.verification_passed, result.score
    );
    Ok(())
}
