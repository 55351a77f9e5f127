#!/usr/bin/env bash
# Benchmark: `hikeshi recent --since 24h --root ROOT` against the runbook's
# `find ROOT -xdev -mtime -1 -type f`, in one run, warm cache.
#
#   bench/recent.sh [ROOT]        (default /; RUNS=N sets hyperfine's runs)
#
# Prints both file counts, the speed ratio (find time / hikeshi time) and
# the CPU-time ratio (meaningful when other work loads the machine).
# The counts differ on purpose: hikeshi also lists files whose *ctime* is in
# the window (a backdated mtime cannot hide a fresh ctime), so it prints
# the mtime-only count too, which is the one to compare with find's. Small
# remaining differences are files changed between the runs and /run, /dev
# (skipped by hikeshi even when on the root filesystem).
set -euo pipefail
cd "$(dirname "$0")/.."

root=${1:-/}
runs=${RUNS:-10}
py=/usr/bin/python3

cargo build --release --locked -q -p hikeshi
bin=$PWD/target/release/hikeshi
export HIKESHI_CONFIG=/dev/null HIKESHI_DATA_DIR=${TMPDIR:-/tmp}/hikeshi-bench-data
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Warm the dentry and inode caches for both.
find "$root" -xdev -type f >/dev/null 2>&1 || true
"$bin" recent --since 24h --root "$root" >/dev/null 2>&1

"$bin" recent --since 24h --root "$root" --format jsonl 2>"$out/summary" >"$out/hikeshi.jsonl"
find "$root" -xdev -mtime -1 -type f 2>/dev/null >"$out/find.txt" || true
hikeshi_all=$(wc -l <"$out/hikeshi.jsonl")
hikeshi_mtime=$(grep -c '"changed":\["mtime"' "$out/hikeshi.jsonl" || true)
find_count=$(wc -l <"$out/find.txt")

echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), kernel $(uname -r)"
echo "walk: $(tail -n1 "$out/summary" | sed 's/^hikeshi: recent: //')"
echo "files: hikeshi $hikeshi_all (mtime or ctime), of which $hikeshi_mtime by mtime; find $find_count (mtime)"

hyperfine --shell=none --warmup 2 --runs "$runs" --ignore-failure \
  --export-json "$out/bench.json" \
  -n hikeshi "$bin recent --since 24h --root $root" \
  -n find "find $root -xdev -mtime -1 -type f"

"$py" - "$out/bench.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
h, f = r["hikeshi"], r["find"]
print(f"hikeshi: mean {h['mean']*1000:.0f} ms ± {h['stddev']*1000:.0f}, median {h['median']*1000:.0f} ms")
print(f"find:    mean {f['mean']*1000:.0f} ms ± {f['stddev']*1000:.0f}, median {f['median']*1000:.0f} ms")
print(f"ratio (find / hikeshi): {f['mean']/h['mean']:.2f}x by mean, {f['median']/h['median']:.2f}x by median")
# On a loaded machine wall time measures the scheduler; CPU time does not.
cpu = lambda x: x["user"] + x["system"]
print(f"CPU time (user+sys): hikeshi {cpu(h)*1000:.0f} ms, find {cpu(f)*1000:.0f} ms, ratio {cpu(f)/cpu(h):.2f}x")
PY
