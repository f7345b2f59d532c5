#!/usr/bin/env bash
# GET /v2/verifications/{id}/results of the shipped `trustcaptcha-server` binary against a bare
# hyper server answering the same body, measured with wrk (a load generator written in C, so not
# the bottleneck), the servers in alternating runs, min / median / max over the rounds, and each
# server's CPU time per request read from /proc. Ours runs twice: as shipped (the access log at
# info level, one line per request, to a file) and with the access log off
# (RUST_LOG=info,trustcaptcha::access=off). Between them and hyper runs a minimal axum router (the
# results route, a handler that answers the same body, no layers): what the framework alone costs.
# Servers and wrk share this machine's cores; the figures are for comparing the servers, not
# absolute capacity.
#
#   ./scripts/bench-results.sh                 # ROUNDS=5 DURATION=10s CONNECTIONS=64 THREADS=1
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}

if ! command -v wrk > /dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends wrk > /dev/null
fi
cargo build --release --locked --quiet -p trustcaptcha-bench -p trustcaptcha-server
bench=target/release/server-bench
work=$(mktemp -d)
trap 'kill $(cat "$work"/*.pid 2> /dev/null) 2> /dev/null || true; rm -rf "$work"' EXIT

# Starts the bench binary as a server with the environment variable $1=$2; prints its URL.
start() {
    env "$1=$2" "$bench" > "$work/$3.out" &
    echo $! > "$work/$3.pid"
    wait_for_url "$3"
}
# Starts the shipped binary with the bench configuration and the environment setting $2, its
# log in $work/$1.log; prints its URL.
start_shipped() {
    env "$2" target/release/trustcaptcha-server serve --config "$work/config.toml" \
        --listen 127.0.0.1:0 > "$work/$1.out" 2> "$work/$1.log" &
    echo $! > "$work/$1.pid"
    wait_for_url "$1"
}
# Waits until server $1 has printed a line with its URL; prints the URL.
wait_for_url() {
    for _ in $(seq 200); do
        grep -q 'http://' "$work/$1.out" 2> /dev/null && break
        sleep 0.05
    done
    grep -q 'http://' "$work/$1.out" || { echo "$1 did not start" >&2; exit 1; }
    grep -o 'http://[^ ]*' "$work/$1.out" | head -n 1
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

TRUSTCAPTCHA_BENCH_SERVE=print "$bench" > "$work/config.toml"
logged=$(start_shipped logged RUST_LOG=info)
quiet=$(start_shipped quiet RUST_LOG=info,trustcaptcha::access=off)
key=ak_bench_0123456789abcdef
# A finished verification on each of ours; $work/NAME.path is the URL to fetch.
for server in logged quiet; do
    url=${!server}
    token=$(target/release/trustcaptcha-server solve --api-url "$url" --site-key 5b1e0c1d-7a39-4f6e-9d2b-0c8a4e6f1b3d)
    id=$(printf '%s' "$token" | base64 -d | python3 -c 'import json,sys; print(json.load(sys.stdin)["verificationId"])')
    echo "$url/v2/verifications/$id/results" > "$work/$server.path"
done
body=$(curl -sf -H "Authorization: Bearer $key" "$(cat "$work/logged.path")")
ceiling=$(start TRUSTCAPTCHA_BENCH_CEILING "$body" ceiling)
echo "$ceiling/v2/verifications/any/results" > "$work/ceiling.path"
router=$(start TRUSTCAPTCHA_BENCH_ROUTER "$body" router)
echo "$router/v2/verifications/any/results" > "$work/router.path"
ticks=$(getconf CLK_TCK)

run() { # name -> appends "rps p99_ms cpu_us_per_request requests" to $work/name.runs
    local pid before after out requests rps p99
    pid=$(cat "$work/$1.pid")
    before=$(cpu_ticks "$pid")
    out=$(wrk -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" --latency -H "Authorization: Bearer $key" "$(cat "$work/$1.path")")
    after=$(cpu_ticks "$pid")
    requests=$(awk '/requests in/ { print $1 }' <<< "$out")
    rps=$(awk '/Requests\/sec/ { print $2 }' <<< "$out")
    p99=$(awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms/, "", v) } else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 }; print v }' <<< "$out")
    if grep -q "Non-2xx" <<< "$out"; then echo "$1: non-2xx answers" >&2; exit 1; fi
    echo "$rps $p99 $(awk -v t="$((after - before))" -v hz="$ticks" -v n="$requests" 'BEGIN { printf "%.1f", t / hz / n * 1e6 }') $requests" >> "$work/$1.runs"
}

for _ in $(seq "$ROUNDS"); do
    for server in logged quiet router ceiling; do run "$server"; done
done
lines=$(wc -l < "$work/logged.log")
served=$(awk '{ n += $4 } END { print n }' "$work/logged.runs")

source scripts/bench-stats.sh

row() { echo "| $1 | $(stats "$work/$2.runs" 1) | $(stats "$work/$2.runs" 2) | $(stats "$work/$2.runs" 3) |"; }
ratios() {
    awk -v a="$(median "$work/$2.runs" 1)" -v b="$(median "$work/ceiling.runs" 1)" -v c="$(median "$work/$2.runs" 3)" -v d="$(median "$work/ceiling.runs" 3)" \
        -v name="$1" 'BEGIN { printf "%s: median throughput %.2f× bare hyper, median CPU per request %.2f×\n", name, a / b, c / d }'
}
echo "wrk -t $THREADS -c $CONNECTIONS -d $DURATION, $ROUNDS alternating rounds; min / median / max"
echo
echo "| server | requests/s | p99 latency (ms) | server CPU per request (µs) |"
echo "|---|---|---|---|"
row "trustcaptcha-server as shipped (access log on)" logged
row "trustcaptcha-server, access log off" quiet
row "minimal axum router, same body" router
row "bare hyper, same body" ceiling
echo
ratios "as shipped" logged
ratios "access log off" quiet
ratios "minimal axum router" router
echo "the server as shipped wrote $lines log lines for $served measured requests"
