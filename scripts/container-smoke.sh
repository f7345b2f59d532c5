#!/usr/bin/env bash
# Builds the container image (deploy/Containerfile: a statically linked binary FROM scratch) and
# smoke-tests it: /healthz, then one full verification (the widget's requests from
# `trustcaptcha-server solve`, the result fetched with the sandbox API key). Then plays the
# Kubernetes manifests in deploy/kubernetes/ with `podman kube play` against a Redis started
# here (scripts/kube-smoke.py). Installs podman and runc from Debian when missing; skips, saying
# so, on a machine that cannot run containers.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v podman > /dev/null || ! command -v runc > /dev/null \
    || ! command -v catatonit > /dev/null; then
    # catatonit: the init of the pause container `podman kube play` makes for a pod.
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends podman runc catatonit > /dev/null
fi
# Test tooling only (not for deployments): this sandbox refuses podman's default ulimits and
# cgroup controllers.
work=$(mktemp -d)
cat > "$work/containers.conf" <<'CONF'
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
CONF
export CONTAINERS_CONF="$work/containers.conf"
name="trustcaptcha-smoke-$$"
trap 'podman rm -f "$name" > /dev/null 2>&1 || true; rm -rf "$work"' EXIT
if ! podman info > /dev/null 2>&1; then
    echo "container smoke test skipped: podman cannot run containers on this machine"
    exit 0
fi

RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --quiet \
    --target x86_64-unknown-linux-gnu --target-dir target/static -p trustcaptcha-server
binary=target/static/x86_64-unknown-linux-gnu/release/trustcaptcha-server
if ldd "$binary" 2> /dev/null | grep -q "=>"; then
    echo "the binary is not statically linked" >&2
    exit 1
fi
podman build --quiet -f deploy/Containerfile -t localhost/trustcaptcha-server:smoke . > /dev/null

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
podman run -d --name "$name" -p "127.0.0.1:$port:8080" localhost/trustcaptcha-server:smoke \
    serve --sandbox --listen 0.0.0.0:8080 > /dev/null
url="http://127.0.0.1:$port"
for _ in $(seq 100); do
    curl -sf "$url/healthz" > /dev/null && break
    sleep 0.1
done
[ "$(curl -sf "$url/healthz")" = "ok" ] || { podman logs "$name" >&2; echo "no /healthz" >&2; exit 1; }

sandbox_site=00000000-0000-0000-0000-000000000000
sandbox_key=ak_$(printf 'x%.0s' $(seq 49))
token=$("$binary" solve --api-url "$url" --site-key "$sandbox_site")
id=$(printf '%s' "$token" | base64 -d | python3 -c 'import json, sys; print(json.load(sys.stdin)["verificationId"])')
result=$(curl -sf -H "Authorization: Bearer $sandbox_key" "$url/v2/verifications/$id/results")
python3 -c 'import json, sys; r = json.loads(sys.argv[1]); assert r["verificationPassed"] is True, r' "$result"
echo "container smoke test ok: $(du -h "$binary" | cut -f1) static binary, /healthz and one verification through the image"

podman rm -f "$name" > /dev/null
python3 scripts/kube-smoke.py --image localhost/trustcaptcha-server:smoke --work "$work"
