# Sourced by the benchmark scripts: summaries of a file of runs, one run per line, figures in
# whitespace-separated columns.

# stats FILE COLUMN -> "min / median / max" of that column.
stats() {
    sort -g -k "$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END { printf "%s / %s / %s", v[1], v[int((NR + 1) / 2)], v[NR] }'
}

# median FILE COLUMN -> the median of that column.
median() { sort -g -k "$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END { print v[int((NR + 1) / 2)] }'; }
