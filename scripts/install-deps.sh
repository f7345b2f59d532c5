#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain, on a fresh machine:
# * OpenSSL headers: the official `trustcaptcha` 3.0.0 crate, built by the compatibility test
#   and the benchmark, uses native TLS (our own crates use rustls and need none of this);
# * Debian's Chromium for the browser tests (no browser downloads), and Xvfb: the detection
#   benchmark's human-like sessions run a headful Chromium on a virtual display;
# * Debian's Redis 7 (`redis-server`, `redis-cli`): the Redis store's tests start their own
#   servers and clusters on free loopback ports;
# * Debian's Prometheus, for `promtool`: the alerting rules in deploy/ are checked and unit-tested;
# * Debian's nginx: the reverse-proxy tests put one in front of the server on a free port (and,
#   with a certificate from a private authority that `openssl` makes, under the hosted name);
# * Debian's HAProxy: the scale-out tests balance three instances behind it, taking them out by
#   its health checks on their admin listeners;
# * the npm packages pinned in e2e/package-lock.json (the official widget, playwright-core);
# * cargo-deny and cargo-hack, the dependency-policy and feature checks.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
pkg-config --exists openssl 2> /dev/null || missing+=(libssl-dev pkg-config)
command -v chromium > /dev/null || missing+=(chromium fonts-dejavu-core)
command -v redis-server > /dev/null || missing+=(redis-server)
command -v nginx > /dev/null || missing+=(nginx-light)
command -v haproxy > /dev/null || missing+=(haproxy)
command -v openssl > /dev/null || missing+=(openssl)
command -v Xvfb > /dev/null || missing+=(xvfb)
command -v promtool > /dev/null || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi

if [ ! -d e2e/node_modules/playwright-core ] || [ e2e/package-lock.json -nt e2e/node_modules/.package-lock.json ]; then
    npm ci --prefix e2e --no-audit --no-fund
fi

for tool in cargo-deny@0.20.2 cargo-hack@0.6.46; do
    command -v "${tool%@*}" > /dev/null || cargo install --locked --quiet "$tool"
done
