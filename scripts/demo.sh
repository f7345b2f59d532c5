#!/usr/bin/env bash
# Starts trustcaptcha-server and the demo site together on loopback and prints the URL.
# Needs the official widget from npm (installed into e2e/node_modules on first run).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f e2e/node_modules/@trustcomponent/trustcaptcha-frontend/dist/bundles/trustcaptcha.umd.min.js ]; then
    npm ci --prefix e2e --no-audit --no-fund
fi
exec cargo run --quiet -p trustcaptcha-demo -- "$@"
