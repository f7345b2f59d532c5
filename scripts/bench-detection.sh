#!/usr/bin/env bash
# The detection benchmark at full size (BENCHMARKS.md, "Detection"): 20 sessions of each bot
# kind and 100 human-like sessions against a site with default settings; prints the table.
# Takes some 30 minutes on two cores (suspicion makes the bots' proof-of-work long). Extra arguments go to e2e/detection-bench.mjs
# (e.g. --sessions 50 --humans 200 --json detection.json).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh > /dev/null
cargo build --locked --quiet -p trustcaptcha-server -p trustcaptcha-demo
node e2e/detection-bench.mjs --sessions 20 --humans 100 --check "$@"
