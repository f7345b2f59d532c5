#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, unit/integration/doc tests, docs,
# examples, and the browser tests. Installs what it needs on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "dependencies outside cargo (Debian packages, npm)"
./scripts/install-deps.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "cargo clippy (default features)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps --quiet

step "cargo test (unit, integration and doc tests, all features)"
cargo test --workspace --all-features

step "examples (each against an embedded sandbox server)"
for example in quickstart configured failover multi_level; do
    cargo run --quiet --example "$example" > /dev/null
done
cargo run --quiet --example blocking --features blocking > /dev/null
TRUSTCAPTCHA_EXAMPLE_SELF_TEST=1 RUST_LOG=warn cargo run --quiet --example actix > /dev/null
TRUSTCAPTCHA_EXAMPLE_SELF_TEST=1 cargo run --quiet --example axum --features axum > /dev/null
echo "examples ok"

step "browser tests (official widget in headless Debian Chromium)"
cargo build --quiet -p trustcaptcha-server -p trustcaptcha-demo
npm test --prefix e2e

step "the official Python client (PyPI trustcaptcha 3.0.0) against trustcaptcha-server"
python3 -m venv target/python-compat
target/python-compat/bin/pip install --quiet --disable-pip-version-check -r compat/python/requirements.txt
TRUSTCAPTCHA_SERVER_BIN=target/debug/trustcaptcha-server \
    target/python-compat/bin/python compat/python/test_official_python_client.py
