//! The results API's multi-level decision: allow, ask for an extra check, or reject by score.
//!
//! ```sh
//! cargo run --example multi_level
//! ```

#[path = "support/sandbox.rs"]
mod sandbox;

use trustcaptcha::policy::{Decision, DecisionPolicy};
use trustcaptcha::trust_captcha::TrustCaptcha;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let sandbox = sandbox::Sandbox::start().await?;
    let trust_captcha = TrustCaptcha::builder(&sandbox.api_key)
        .api_host(&sandbox.api_host)
        .build()?;
    let result = trust_captcha
        .get_verification_result(&sandbox.token().await?)
        .await?;

    // Reject above 0.8, challenge above 0.4, allow the rest; a failed captcha always rejects.
    let policy = DecisionPolicy::new(0.8).challenge_above(0.4);
    match policy.decide(&result) {
        Decision::Allow => println!("score {}: low risk, allow", result.score),
        Decision::Challenge => println!(
            "score {}: elevated risk, e.g. require e-mail verification or 2FA",
            result.score
        ),
        Decision::Reject => println!(
            "score {}: captcha failed or high bot risk, reject",
            result.score
        ),
    }
    Ok(())
}
