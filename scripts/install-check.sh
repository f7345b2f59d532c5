#!/usr/bin/env bash
# Sets up a fresh project exactly as the README says (`cargo add trustcaptcha-rs`, then the
# quick-start code with `use trustcaptcha::…`) and builds it offline. The package comes from this
# repository through `[patch.crates-io]`, standing in for the registry; every other crate from
# the local cache filled by the workspace build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
cargo new --quiet --bin shop-backend
cd shop-backend
mkdir -p .cargo
cat > .cargo/config.toml <<TOML
[patch.crates-io]
trustcaptcha-rs = { path = "$root/crates/trustcaptcha" }
TOML
# What `cargo add trustcaptcha-rs` writes (cargo add itself would ask the registry).
printf 'trustcaptcha-rs = "3.1"\ntokio = { version = "1", features = ["macros", "rt-multi-thread"] }\n' >> Cargo.toml
cat > src/main.rs <<'RUST'
use trustcaptcha::trust_captcha::TrustCaptcha;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let trust_captcha = TrustCaptcha::builder("<your_api_key>").build()?;
    let token = std::env::args().nth(1).unwrap_or_default();
    if token.is_empty() {
        return Ok(());
    }
    let result = trust_captcha.get_verification_result(&token).await?;
    if !result.verification_passed || result.score > 0.5 {
        println!("possibly an automated request");
    }
    Ok(())
}
RUST
CARGO_TARGET_DIR="$root/target/install-check" cargo build --offline --quiet
CARGO_TARGET_DIR="$root/target/install-check" cargo run --offline --quiet
echo "install check ok: a fresh project with trustcaptcha-rs = \"3.1\" builds and runs"
