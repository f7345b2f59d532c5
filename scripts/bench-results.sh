#!/usr/bin/env bash
# GET /v2/verifications/{id}/results of trustcaptcha-server against a bare hyper server answering
# the same body, measured with wrk (a load generator written in C, so not the bottleneck), the
# two servers in alternating runs, min / median / max over the rounds, and each server's CPU time
# per request read from /proc. Servers and wrk share this machine's cores; the figures are for
# comparing the two, not absolute capacity.
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

# Starts a server process with the environment variable $1=$2; prints its URL.
start() {
    env "$1=$2" "$bench" > "$work/$3.out" &
    echo $! > "$work/$3.pid"
    for _ in $(seq 200); do
        [ -s "$work/$3.out" ] && break
        sleep 0.05
    done
    [ -s "$work/$3.out" ] || { echo "$3 did not start" >&2; exit 1; }
    head -n 1 "$work/$3.out"
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

ours=$(start TRUSTCAPTCHA_BENCH_SERVE default ours)
key=ak_bench_0123456789abcdef
token=$(target/release/trustcaptcha-server solve --api-url "$ours" --site-key 5b1e0c1d-7a39-4f6e-9d2b-0c8a4e6f1b3d)
id=$(printf '%s' "$token" | base64 -d | python3 -c 'import json,sys; print(json.load(sys.stdin)["verificationId"])')
path="/v2/verifications/$id/results"
body=$(curl -sf -H "Authorization: Bearer $key" "$ours$path")
ceiling=$(start TRUSTCAPTCHA_BENCH_CEILING "$body" ceiling)
ticks=$(getconf CLK_TCK)

run() { # name url pid -> appends "rps p99_ms cpu_us_per_request" to $work/name.runs
    local before after out requests rps p99
    before=$(cpu_ticks "$3")
    out=$(wrk -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" --latency -H "Authorization: Bearer $key" "$2$path")
    after=$(cpu_ticks "$3")
    requests=$(awk '/requests in/ { print $1 }' <<< "$out")
    rps=$(awk '/Requests\/sec/ { print $2 }' <<< "$out")
    p99=$(awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms/, "", v) } else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 }; print v }' <<< "$out")
    if grep -q "Non-2xx" <<< "$out"; then echo "$1: non-2xx answers" >&2; exit 1; fi
    echo "$rps $p99 $(awk -v t="$((after - before))" -v hz="$ticks" -v n="$requests" 'BEGIN { printf "%.1f", t / hz / n * 1e6 }')" >> "$work/$1.runs"
}

for _ in $(seq "$ROUNDS"); do
    run ours "$ours" "$(cat "$work/ours.pid")"
    run ceiling "$ceiling" "$(cat "$work/ceiling.pid")"
done

source scripts/bench-stats.sh

echo "wrk -t $THREADS -c $CONNECTIONS -d $DURATION, $ROUNDS alternating rounds; min / median / max"
echo
echo "| server | requests/s | p99 latency (ms) | server CPU per request (µs) |"
echo "|---|---|---|---|"
echo "| trustcaptcha-server | $(stats "$work/ours.runs" 1) | $(stats "$work/ours.runs" 2) | $(stats "$work/ours.runs" 3) |"
echo "| bare hyper, same body | $(stats "$work/ceiling.runs" 1) | $(stats "$work/ceiling.runs" 2) | $(stats "$work/ceiling.runs" 3) |"
echo
awk -v a="$(median "$work/ours.runs" 1)" -v b="$(median "$work/ceiling.runs" 1)" -v c="$(median "$work/ours.runs" 3)" -v d="$(median "$work/ceiling.runs" 3)" \
    'BEGIN { printf "median throughput ratio: %.2f×; median CPU per request ratio: %.2f×\n", a / b, c / d }'
