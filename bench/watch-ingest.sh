#!/usr/bin/env bash
# Benchmark: sustained ingest of `hikeshi watch` following a log file that
# grows at RATE lines/s (default 200,000) for SECONDS (default 60).
#
# NEEDS ROOT: hikeshi runs in a fresh network namespace (hk-ingest-<pid>,
# deleted afterwards with every process in it, also on failure) with the
# nftables backend, so the bans it decides are real set elements there.
# The writer (crates/hikeshi-corpus/examples/paced_append.rs) appends a
# realistic auth.log from hikeshi-corpus (20% attack sessions from 2,000
# addresses of 198.18.0.0/15, 5% legitimate logins, the rest other daemons'
# noise; current time stamps) in one write() every 10 ms.
# bench/watch_ingest.py samples every second hikeshi's VmRSS and its lag:
# bytes appended and not yet handled (parsed, detected, committed), as the
# daemon's status reports it (`behind_bytes` of the file's stream in
# <data dir>/watch/status.json, the document `hikeshi status --json` shows,
# rewritten every 2 s; read directly so that sampling costs no process),
# and as a cross-check the bytes appended minus /proc/PID/io rchar. It says
# whether the lag stayed bounded (never above 1 s of input, everything
# handled within 10 s of the end) and the RSS flat: the mean of the last
# 10 s against the first 10 s, and against the 10 s before the middle (the
# first seconds include the warm-up of caches and detection state); the
# exit status is 0 when the lag is bounded and the second half flat.
# Writes bench/out/watch-ingest.json.
#
# Usage: bench/watch-ingest.sh [HIKESHI_BINARY]   (default:
# target/release/hikeshi, built if missing)
# Environment: RATE=200000 SECONDS_=60 ATTACK_SHARE=0.2 ATTACKERS=2000
# BACKEND=nftables (the firewall backend), EXTRA_CONFIG (lines added to
# the [contain] section, for A/B runs), IPV6_SHARE=0.1 (share of attack connections from IPv6; each IPv6 attacker
# is a /64 whose sessions come from changing addresses inside it)
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET_DIR=${CARGO_TARGET_DIR:-target}
HIKESHI=${1:-$TARGET_DIR/release/hikeshi}
RATE=${RATE:-200000}
DURATION=${SECONDS_:-60}
ATTACK_SHARE=${ATTACK_SHARE:-0.2}
ATTACKERS=${ATTACKERS:-2000}
IPV6_SHARE=${IPV6_SHARE:-0.1}
PYTHON=/usr/bin/python3

if [ "$(id -u)" != 0 ]; then echo "bench/watch-ingest.sh: needs root (network namespace)" >&2; exit 2; fi
if [ ! -x "$HIKESHI" ]; then cargo build --release -p hikeshi; fi
HIKESHI=$(realpath "$HIKESHI")
cargo build --release --quiet -p hikeshi-corpus --example paced_append
WRITER=$(realpath "$TARGET_DIR/release/examples/paced_append")

WORK=$(mktemp -d /tmp/hk-ingest.XXXXXX)
NS="hk-ingest-$$"
cleanup() {
  local status=$? pids
  trap - EXIT INT TERM
  [ -n "${RUNNER:-}" ] && kill -TERM "$RUNNER" 2>/dev/null && wait "$RUNNER" 2>/dev/null
  pids=$(ip netns pids "$NS" 2>/dev/null || true)
  if [ -n "$pids" ]; then
    kill -TERM $pids 2>/dev/null || true
    sleep 1
    pids=$(ip netns pids "$NS" 2>/dev/null || true)
    [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
  fi
  ip netns del "$NS" 2>/dev/null || true
  if [ -n "${KEEP_WORK:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ip netns add "$NS"
ip -n "$NS" link set lo up
LOG=$WORK/auth.log
: > "$LOG"
cat > "$WORK/hikeshi.toml" <<EOF
[contain]
backend = "${BACKEND:-nftables}"
${EXTRA_CONFIG:-}

[watch.journal]
enabled = false

[[watch.files]]
paths = ["$LOG"]
start = "end"
EOF

echo "watch ingest: $RATE lines/s for $DURATION s ($(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg))"
mkdir -p bench/out
$PYTHON bench/watch_ingest.py --log "$LOG" --out bench/out/watch-ingest.json --tool-log "$WORK/hikeshi.log" \
  --ready-line "hikeshi watch: ready" \
  --status-file "$WORK/data/watch/status.json" \
  --writer "$WRITER $LOG $RATE $DURATION $ATTACK_SHARE $ATTACKERS $IPV6_SHARE" --rate "$RATE" \
  -- ip netns exec "$NS" "$HIKESHI" --data-dir "$WORK/data" --config "$WORK/hikeshi.toml" watch &
RUNNER=$!
status=0
wait "$RUNNER" || status=$?
RUNNER=
banned=$(ip netns exec "$NS" nft -j list table inet hikeshi 2>/dev/null |
  $PYTHON -c 'import json,sys; d=json.load(sys.stdin); print(" + ".join(str(len(i["set"].get("elem", []))) for i in d["nftables"] if "set" in i))' 2>/dev/null || echo "?")
echo "addresses in hikeshi's sets in the namespace (IPv4 + IPv6): $banned"
if [ "$status" != 0 ]; then
  echo "hikeshi's output (last lines):" >&2
  tail -n 20 "$WORK/hikeshi.log" >&2 || true
fi
exit "$status"
