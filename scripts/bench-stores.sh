#!/usr/bin/env bash
# The stores side by side: server-bench (GET /results, create→solve→submit flows, storage per
# pending verification, restart time with ~105 000 verifications stored) on the memory store,
# SQLite and Redis (a Redis of its own: noeviction, append-only file synced every second), in
# alternating rounds, min / median / max. server-bench's load generator runs in its own process
# on the same two cores as the server, so absolute figures are low; the stores are measured alike.
#
#   ./scripts/bench-stores.sh            # ROUNDS=3
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
cargo build --release --locked --quiet -p trustcaptcha-bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

stores=(memory sqlite redis)
url() {
    case $1 in
        memory) echo "memory://" ;;
        sqlite) rm -f "$work"/bench.sqlite3*; echo "sqlite://$work/bench.sqlite3" ;;
        redis) echo "redis" ;;
    esac
}
# Pulls "<results/s> <flows/s> <bytes per pending> <restart ms>" out of server-bench's table.
figures() {
    awk -F'|' '
        /GET \/results, trustcaptcha-server/ { split($3, a, " "); r = a[1] }
        /flows, / { split($3, a, " "); f = a[1] }
        /RSS growth/ { split($3, a, ", "); split(a[2], b, " "); rss = b[1] }
        /SQLite file/ { split($3, a, ", "); split(a[2], b, " "); disk = b[1] }
        /Redis used_memory/ { split($3, a, ", "); split(a[2], b, " "); disk = b[1] }
        /restart with/ { split($3, a, " "); t = a[1] }
        END { print r, f, (disk != "" ? disk : rss), t }'
}
for round in $(seq "$ROUNDS"); do
    for store in "${stores[@]}"; do
        TRUSTCAPTCHA_BENCH_STORE_URL=$(url "$store") target/release/server-bench | figures >> "$work/$store.runs"
        echo "round $round: $store $(tail -n 1 "$work/$store.runs")" >&2
    done
done

source scripts/bench-stats.sh

echo "server-bench, $ROUNDS alternating rounds; min / median / max"
echo
echo "| store | GET /results, req/s | flows/s | bytes per pending verification | restart to first answer (ms) |"
echo "|---|---|---|---|---|"
for store in "${stores[@]}"; do
    echo "| $store | $(stats "$work/$store.runs" 1) | $(stats "$work/$store.runs" 2) | $(stats "$work/$store.runs" 3) | $(stats "$work/$store.runs" 4) |"
done
echo
for store in sqlite redis; do
    awk -v s="$store" -v a="$(median "$work/$store.runs" 1)" -v b="$(median "$work/memory.runs" 1)" \
        -v c="$(median "$work/$store.runs" 2)" -v d="$(median "$work/memory.runs" 2)" \
        'BEGIN { printf "%s ÷ memory (medians): GET /results %.2f×, flows %.2f×\n", s, a / b, c / d }'
done
