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

step "dependency policy: licences, bans, sources (cargo deny)"
cargo deny --locked check licenses bans sources

step "every feature a user can select builds on its own (cargo hack)"
cargo hack --locked check --workspace --each-feature

step "cargo clippy (all targets, all features)"
cargo clippy --locked --workspace --all-targets --all-features -- -D warnings

step "cargo clippy (default features)"
cargo clippy --locked --workspace --all-targets -- -D warnings

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --workspace --all-features --no-deps --quiet

step "cargo test (unit, integration and doc tests, all features)"
cargo test --locked --workspace --all-features

step "examples (each against an embedded sandbox server; what they print is checked)"
# Runs an example and fails unless its output contains every given line fragment.
example() {
    local name=$1 output
    shift
    output=$(cargo run --locked --quiet --example "$name" "${EXAMPLE_ARGS[@]}" 2>&1)
    for expected in "$@"; do
        grep -qF -- "$expected" <<< "$output" || {
            printf 'example %s: expected "%s" in:\n%s\n' "$name" "$expected" "$output"
            exit 1
        }
    done
}
EXAMPLE_ARGS=()
example quickstart '"verificationPassed": true' "already retrieved as often as allowed (HTTP 429)"
example configured 'api_key: "<redacted>"' "passed: true"
example failover "widget claims an outage: the widget claimed an outage we have no record of: reject" \
    "server unreachable:" "normal: result STANDARD, passed = true, failover-derived = false" \
    "policy for a server this client never reached: Some(Reject)" "probe: the API answers"
example multi_level "score 0: low risk, allow"
EXAMPLE_ARGS=(--features blocking)
example blocking "passed: true"
EXAMPLE_ARGS=()
TRUSTCAPTCHA_EXAMPLE_SELF_TEST=1 RUST_LOG=warn cargo run --locked --quiet --example actix > /dev/null
TRUSTCAPTCHA_EXAMPLE_SELF_TEST=1 cargo run --locked --quiet --example axum --features axum > /dev/null
echo "examples ok"

step "a fresh project depends on the client crate as the README says"
./scripts/install-check.sh

step "browser tests (official widget in Debian Chromium: headless, and headful on Xvfb)"
cargo build --locked --quiet -p trustcaptcha-server -p trustcaptcha-demo
npm test --prefix e2e

step "detection, short form: bots refused, people pass (full figures: scripts/bench-detection.sh)"
npm run --silent --prefix e2e bench:detection -- --sessions 2 --humans 8 --check

step "the official Python client (PyPI trustcaptcha 3.0.0) against trustcaptcha-server"
python3 -m venv target/python-compat
target/python-compat/bin/pip install --quiet --disable-pip-version-check -r compat/python/requirements.txt
TRUSTCAPTCHA_SERVER_BIN=target/debug/trustcaptcha-server \
    target/python-compat/bin/python compat/python/test_official_python_client.py

step "the official Python client of the older API (PyPI trustcaptcha 2.0.2) against trustcaptcha-server"
python3 -m venv target/python-compat-2
target/python-compat-2/bin/pip install --quiet --disable-pip-version-check -r compat/python2/requirements.txt
TRUSTCAPTCHA_SERVER_BIN=target/debug/trustcaptcha-server \
    target/python-compat-2/bin/python compat/python2/test_official_python_client_2.py

step "the public API against docs/openapi.json (schemathesis: no server errors)"
./scripts/schemathesis.sh

step "the container image: a static binary FROM scratch, /healthz and one verification"
./scripts/container-smoke.sh
