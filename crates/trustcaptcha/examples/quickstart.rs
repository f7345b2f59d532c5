//! The guide's quick start: build a client, fetch the result for a token, evaluate it.
//!
//! ```sh
//! cargo run --example quickstart
//! ```

#[path = "support/sandbox.rs"]
mod sandbox;

use trustcaptcha::trust_captcha::TrustCaptcha;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let sandbox = sandbox::Sandbox::start().await?;
    let token = sandbox.token().await?;

    let trust_captcha = TrustCaptcha::builder(&sandbox.api_key)
        .api_host(&sandbox.api_host)
        .build()?;
    let result = trust_captcha.get_verification_result(&token).await?;
    if !result.verification_passed || result.score > 0.5 {
        println!(
            "possibly an automated request (passed: {}, score: {})",
            result.verification_passed, result.score
        );
    } else {
        println!("verification passed with score {}", result.score);
    }
    println!("{}", serde_json::to_string_pretty(&result)?);

    // A result can be fetched once: a replayed token is refused.
    match trust_captcha.get_verification_result(&token).await {
        Err(e) => println!("fetching the same token again: {e}"),
        Ok(_) => {
            println!("fetching the same token again worked (the API allows several retrievals)")
        }
    }
    Ok(())
}
