#!/usr/bin/env bash
# Every benchmark of BENCHMARKS.md, run one after another on this machine, each writing its
# figures into its own block of BENCHMARKS.md (between `<!-- bench:NAME -->` and
# `<!-- /bench:NAME -->`), with the date, the commit and the command. The prose around the
# blocks (what each benchmark measures, earlier runs, what was tried) is written by hand.
#
#   ./scripts/bench.sh                      # all of them: about 45 minutes on two cores
#   ./scripts/bench.sh results capacity     # only these
#
# Names: client results access server flood stores scale expiry capacity detection pow history scale-out. Each benchmark's own
# settings pass through the environment (e.g. ROUNDS=3 DURATION=5s ./scripts/bench.sh results).
# Nothing else should run on the machine meanwhile: the figures are only as quiet as it is.
set -euo pipefail
cd "$(dirname "$0")/.."

all=(client results access server flood stores scale expiry capacity detection pow history scale-out)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${all[@]}")

# The command of each benchmark, as BENCHMARKS.md shows it.
command_of() {
    local bin="cargo run --release --locked --quiet -p trustcaptcha-bench --bin"
    case $1 in
        client) echo "$bin client-bench" ;;
        results) echo "./scripts/bench-results.sh" ;;
        access) echo "$bin access-bench && TRUSTCAPTCHA_BENCH_LOG_FORMAT=json $bin access-bench" ;;
        server) echo "$bin server-bench" ;;
        flood) echo "$bin flood-bench" ;;
        stores) echo "./scripts/bench-stores.sh" ;;
        scale) echo "$bin scale-bench" ;;
        expiry) echo "$bin expiry-bench && TRUSTCAPTCHA_BENCH_STORE_URL=memory:// TRUSTCAPTCHA_BENCH_ROUNDS=5 $bin expiry-bench" ;;
        capacity) echo "$bin capacity-bench && TRUSTCAPTCHA_BENCH_STORE_URL=memory:// $bin capacity-bench" ;;
        detection) echo "./scripts/bench-detection.sh" ;;
        history) echo "$bin history-bench" ;;
        scale-out) echo "$bin scale-out-bench" ;;
        pow) echo "./scripts/install-deps.sh > /dev/null && node e2e/pow-calibration.mjs --sessions 10" ;;
        *) echo "unknown benchmark: $1 (known: ${all[*]})" >&2; return 1 ;;
    esac
}

for name in "${names[@]}"; do
    command_of "$name" > /dev/null
done
cargo build --release --locked --quiet -p trustcaptcha-bench -p trustcaptcha-server
mkdir -p target/bench
# Settings given through the environment are shown with the command.
settings=$(env | grep -E '^(ROUNDS|DURATION|CONNECTIONS|THREADS|TRUSTCAPTCHA_BENCH_[A-Z_]+)=' | sort | tr '\n' ' ' || true)
commit=$(git rev-parse --short HEAD)
[ -z "$(git status --porcelain --untracked-files=no -- . ":!BENCHMARKS.md")" ] || commit="$commit with local changes"

for name in "${names[@]}"; do
    command=$(command_of "$name")
    echo "==> $name: $command" >&2
    started=$(date -u '+%Y-%m-%d %H:%M UTC')
    bash -c "$command" | tee "target/bench/$name.txt"
    python3 - "$name" "$started" "$commit" "$settings$command" <<'EOF'
import pathlib, sys
name, started, commit, command = sys.argv[1:]
doc = pathlib.Path("BENCHMARKS.md")
text = doc.read_text()
begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
if begin not in text or end not in text:
    sys.exit(f"BENCHMARKS.md has no block {begin} … {end}")
figures = pathlib.Path(f"target/bench/{name}.txt").read_text().rstrip()
block = (
    f"{begin}\nLatest run, {started}, commit {commit}, by `./scripts/bench.sh {name}` "
    f"(`{command}`):\n\n```text\n{figures}\n```\n{end}"
)
head, rest = text.split(begin, 1)
doc.write_text(head + block + rest.split(end, 1)[1])
EOF
done
