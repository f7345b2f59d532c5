//! The guide's failover section: tell an outage (allow and log) from a widget's unconfirmed
//! claim of one (reject), first with the guide's `match`, then with a `FailoverPolicy`.
//!
//! ```sh
//! cargo run --example failover
//! ```

#[path = "support/sandbox.rs"]
mod sandbox;

use base64::Engine as _;
use trustcaptcha::errors::{ClientReportedServerUnreachableError, ServerUnreachableError};
use trustcaptcha::policy::{Decision, FailoverPolicy};
use trustcaptcha::trust_captcha::TrustCaptcha;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let sandbox = sandbox::Sandbox::start().await?;
    let trust_captcha = TrustCaptcha::builder(&sandbox.api_key)
        .api_host(&sandbox.api_host)
        .build()?;

    // What the widget makes up when it cannot reach the server (with failover-enabled).
    let failover_token = base64::engine::general_purpose::STANDARD.encode(
        r#"{"verificationId":"6f1c2d3e-4b5a-4c6d-8e7f-0123456789ab","expiresAt":"2030-01-01T00:15:00.000Z","clientFailover":true}"#,
    );
    // A server that is not there.
    let unreachable = TrustCaptcha::builder(&sandbox.api_key)
        .api_host("http://127.0.0.1:9")
        .build()?;
    let token = sandbox.token().await?;

    for (label, client, token) in [
        (
            "widget claims an outage",
            &trust_captcha,
            failover_token.as_str(),
        ),
        ("server unreachable", &unreachable, token.as_str()),
        ("normal", &trust_captcha, token.as_str()),
    ] {
        match client.get_verification_result(token).await {
            // With an outage on record, a server answers a widget's failover claim with a
            // flagged FAILOVER result (once) instead of 412; this one has none.
            Ok(result) => println!(
                "{label}: result {}, passed = {}, failover-derived = {}",
                result.decision_type,
                result.verification_passed,
                result.is_failover()
            ),
            Err(e) if e.is::<ServerUnreachableError>() => {
                println!("{label}: our servers are unreachable: allow and log ({e})");
            }
            Err(e) if e.is::<ClientReportedServerUnreachableError>() => {
                println!(
                    "{label}: the widget claimed an outage we have no record of: reject ({e})"
                );
            }
            Err(e) => println!("{label}: other error: {e}"),
        }
    }

    // The same decision, written down once. The default policy allows an unreachable server
    // only once the API has answered this client at least once (here it never has: the host is
    // wrong, which must not wave requests through); `probe()` at start-up provides that answer.
    let policy = FailoverPolicy::default();
    let outcome = unreachable.get_verification_result(&failover_token).await;
    if let Err(error) = &outcome {
        assert_eq!(policy.decide(error), Some(Decision::Reject));
        println!(
            "policy for a server this client never reached: {:?}",
            policy.decide(error)
        );
    }
    trust_captcha.probe().await?;
    println!("probe: the API answers and accepts the key");
    Ok(())
}
