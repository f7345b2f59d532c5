#!/usr/bin/env bash
# Runs schemathesis (PyPI) against a live trustcaptcha-server with docs/openapi.json: every
# generated request must get an answer that is not a server error (no 5xx, no dropped
# connection). Limits are raised so that generated requests reach the handlers instead of the
# rate limiter; the sandbox site's key is sent (in both APIs' headers), so the results endpoints
# are exercised beyond 403. Then the admin listener against docs/admin-openapi.json, with the
# admin token: every console action (sites, keys, users, the audit log) on generated input.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv target/schemathesis
target/schemathesis/bin/pip install --quiet --disable-pip-version-check -r compat/openapi/requirements.txt

config=$(mktemp --suffix=.toml)
trap 'rm -f "$config"; [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2> /dev/null || true' EXIT
cat > "$config" <<TOML
[server]
widget_requests_per_minute = 1000000
widget_burst = 1000000
max_pending_per_network = 100000
failed_keys_per_hour = 1000000
admin_token = "admin-token-for-schemathesis-0123"

[[sites]]
name = "openapi"
site_key = "0b6c6b8e-2f5a-4c1e-9a3d-5f7e8d9c0a1b"
api_keys = ["ak_openapi_checks_0123456789"]
TOML

coproc SERVER {
    RUST_LOG=warn exec target/debug/trustcaptcha-server serve --config "$config" --sandbox \
        --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0
}
SERVER_PID=$SERVER_PID
read -r line <&"${SERVER[0]}"
url=${line#trustcaptcha-server listening on }
admin=""
while read -r line <&"${SERVER[0]}"; do
    case "$line" in admin*) admin=${line##* on }; break ;; esac
done

target/schemathesis/bin/schemathesis run docs/openapi.json --url "$url" \
    --checks not_a_server_error --generation-deterministic --max-examples 100 \
    --header "Authorization: Bearer ak_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" \
    --header "tc-authorization: ak_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

target/schemathesis/bin/schemathesis run docs/admin-openapi.json --url "$admin" \
    --checks not_a_server_error --generation-deterministic --max-examples 50 \
    --header "Authorization: Bearer admin-token-for-schemathesis-0123"
