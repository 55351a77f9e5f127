#!/usr/bin/env bash
# hikeshi fim vs AIDE 0.18 on one tree (default /usr), in one run, warm cache.
#
# Both tools watch the same attributes, p+i+n+u+g+s+m+c+sha256, with an
# uncompressed database in a temp dir. The page cache is warmed first by a
# discarded hikeshi pass, then AIDE and hikeshi each run `init` and `check`.
# Reports wall time and peak RSS (/usr/bin/time -f %M) of each, the ratios,
# and PASS/FAIL against the target (hikeshi >= 10x faster for each).
#
# Usage: bench/fim.sh [TREE]        (HIKESHI=path/to/hikeshi to override)
set -euo pipefail

tree=${1:-/usr}
root=$(cd "$(dirname "$0")/.." && pwd)
hikeshi=${HIKESHI:-$root/target/release/hikeshi}
target_ratio=10

if [[ ! -x $hikeshi ]]; then
    (cd "$root" && cargo build --release -p hikeshi)
fi
command -v aide >/dev/null || { echo "aide is not installed (apt-get install aide)" >&2; exit 2; }

work=$(mktemp -d /tmp/hikeshi-fim-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

cat >"$work/aide.conf" <<CONF
database_in=file:$work/aide.db
database_out=file:$work/aide.db.new
gzip_dbout=no
report_url=file:$work/aide.report
$tree p+i+n+u+g+s+m+c+sha256
CONF

cat >"$work/hikeshi.toml" <<CONF
[fim]
exclude = []
[[fim.rule]]
path = "$tree"
attrs = "p+i+n+u+g+s+m+c+sha256"
CONF

hk=("$hikeshi" --config "$work/hikeshi.toml" --data-dir "$work/data" fim)

# measure NAME OKCODES CMD...: runs CMD under /usr/bin/time, records "secs kib".
measure() {
    local name=$1 ok=$2 rc=0
    shift 2
    /usr/bin/time -f "%e %M" -o "$work/$name.time" "$@" >"$work/$name.out" 2>"$work/$name.err" || rc=$?
    if [[ " $ok " != *" $rc "* ]]; then
        echo "$name failed with exit code $rc:" >&2
        tail -5 "$work/$name.err" >&2
        exit 2
    fi
    read -r secs kib <"$work/$name.time"
    printf '%-14s %8.2f s %9d KiB  (exit %d)\n' "$name" "$secs" "$kib" "$rc"
    eval "${name//-/_}_secs=$secs ${name//-/_}_kib=$kib"
}

echo "tree: $tree ($(find "$tree" -xdev 2>/dev/null | wc -l) entries, $(du -sh "$tree" 2>/dev/null | cut -f1)), $(nproc) CPUs"
echo "aide: $(aide --version 2>&1 | head -1), hikeshi: $("$hikeshi" --version)"
echo "warming the page cache..."
"${hk[@]}" init --force --no-progress >/dev/null
rm -rf "$work/data"

measure aide-init "0" aide --config "$work/aide.conf" --init
cp "$work/aide.db.new" "$work/aide.db"
# AIDE's check exits with 1/2/4 sums when something changed meanwhile.
measure aide-check "0 1 2 3 4 5 6 7" aide --config "$work/aide.conf" --check
measure hikeshi-init "0" "${hk[@]}" init --no-progress
measure hikeshi-check "0 1 2 3 4 5 6 7" "${hk[@]}" check --no-progress

echo "aide db: $(du -k "$work/aide.db" | cut -f1) KiB, hikeshi baseline: $(du -k "$work/data/fim/baseline.hfim" | cut -f1) KiB"
status=PASS
for step in init check; do
    a=$(eval echo "\$aide_${step}_secs") h=$(eval echo "\$hikeshi_${step}_secs")
    am=$(eval echo "\$aide_${step}_kib") hm=$(eval echo "\$hikeshi_${step}_kib")
    ratio=$(awk -v a="$a" -v h="$h" 'BEGIN { printf "%.1f", (h > 0 ? a / h : 999) }')
    verdict=$(awk -v r="$ratio" -v t="$target_ratio" 'BEGIN { print (r >= t ? "PASS" : "FAIL") }')
    [[ $verdict == PASS ]] || status=FAIL
    printf '%-6s hikeshi %.2f s vs aide %.2f s: %sx faster (target %dx) %s; peak RSS %d KiB vs %d KiB\n' \
        "$step" "$h" "$a" "$ratio" "$target_ratio" "$verdict" "$hm" "$am"
done
echo "overall: $status"
