#!/usr/bin/env bash
# Installs what the browser tests need on a fresh machine: Debian's Chromium (no browser
# downloads) and the npm packages pinned in e2e/package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium > /dev/null; then
    echo "installing chromium from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core > /dev/null
fi

if [ ! -d e2e/node_modules/playwright-core ] || [ e2e/package-lock.json -nt e2e/node_modules/.package-lock.json ]; then
    npm ci --prefix e2e --no-audit --no-fund
fi
