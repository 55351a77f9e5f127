#!/usr/bin/env bash
# Benchmark: latency from a failure line written to the log until the ban is
# in the firewall, for hikeshi, sshguard and fail2ban, in one run.
#
# NEEDS ROOT. Each tool runs in a fresh network namespace of its own
# (hk-lat-<pid>-<tool>; every process in it is killed and the namespace
# deleted afterwards, also on failure or Ctrl-C), follows its own fresh log
# file, and bans into nftables:
#   hikeshi   `hikeshi watch`, [[watch.files]] on the file, backend nftables
#   sshguard  the Debian package, FILES = the file, sshg-fw-nft-sets
#             (its configuration file is bind-mounted over
#             /etc/sshguard/sshguard.conf inside the namespace's own mount
#             namespace: the script reads no other path)
#   fail2ban  a private fail2ban-server (own config dir, socket, pid, db),
#             jail on the file, backend pyinotify, nftables-allports
# One attack = FAILURES "Failed password for invalid user admin from A port
# P ssh2" lines from one address (sshguard scores 10 per line: THRESHOLD =
# 10 x FAILURES; fail2ban and hikeshi: maxretry = FAILURES). For each of
# ATTACKS distinct addresses (10.64.0.0/16: data only, no packet is sent),
# and for each tool in turn (all three run at once, each idle while another
# is attacked; the order rotates every round, so that all meet the same
# machine), bench/ban_latency.py writes the lines to the tool's log (one
# write() each), takes the monotonic time just before the write() of the
# last one, and waits for the address in the tool's `nft monitor new
# elements` (read as it arrives, monotonic ns) before the next attack. Prints p50/p90/p99/max and banned/attacked per
# tool, and hikeshi's p99 against sshguard's (target: no higher). Writes
# bench/out/ban-latency.{json,csv}.
#
# Usage: bench/ban-latency.sh [HIKESHI_BINARY]   (default:
# target/release/hikeshi, built if missing)
# Environment: ATTACKS=1000 FAILURES=5 TOOLS="hikeshi sshguard fail2ban"
# TIMEOUT=5 (seconds to wait for one ban); TMPDIR (where the logs and data
# directories go; default /tmp, a disk); for an A/B comparison of two
# builds in the same run, add the tool hikeshi-b with HIKESHI_B=BINARY.
set -euo pipefail
cd "$(dirname "$0")/.."

HIKESHI=${1:-target/release/hikeshi}
ATTACKS=${ATTACKS:-1000}
FAILURES=${FAILURES:-5}
TOOLS=${TOOLS:-hikeshi sshguard fail2ban}
TIMEOUT=${TIMEOUT:-5}
PYTHON=/usr/bin/python3

if [ "$(id -u)" != 0 ]; then echo "bench/ban-latency.sh: needs root (network namespaces)" >&2; exit 2; fi
for tool in $TOOLS; do
  case $tool in
    hikeshi)
      if [ ! -x "$HIKESHI" ]; then cargo build --release -p hikeshi; fi
      HIKESHI=$(realpath "$HIKESHI") ;;
    hikeshi-b)
      [ -x "${HIKESHI_B:-}" ] || { echo "tool hikeshi-b needs HIKESHI_B=another hikeshi binary" >&2; exit 2; }
      HIKESHI_B=$(realpath "$HIKESHI_B") ;;
    sshguard) command -v sshguard >/dev/null || { echo "sshguard is not installed" >&2; exit 2; } ;;
    fail2ban)
      command -v fail2ban-server >/dev/null || { echo "fail2ban is not installed" >&2; exit 2; }
      $PYTHON -c 'import pyinotify' 2>/dev/null || { echo "fail2ban's pyinotify backend needs python3-pyinotify" >&2; exit 2; } ;;
    *) echo "unknown tool $tool (hikeshi, hikeshi-b, sshguard, fail2ban)" >&2; exit 2 ;;
  esac
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hk-lat.XXXXXX")
PREFIX="hk-lat-$$"
HELPER=$$

# Kills every process inside a namespace of ours, then deletes it.
remove_ns() {
  local ns=$1 pids
  pids=$(ip netns pids "$ns" 2>/dev/null || true)
  if [ -n "$pids" ]; then
    kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 50); do
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      [ -z "$pids" ] && break
      sleep 0.1
    done
    [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
  fi
  ip netns del "$ns" 2>/dev/null || true
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  # The helper first (it stops its tool and monitor), then anything left.
  [ -n "${RUNNER:-}" ] && kill -TERM "$RUNNER" 2>/dev/null && wait "$RUNNER" 2>/dev/null
  for ns in $(ip netns list | awk '{print $1}' | grep "^$PREFIX-" || true); do remove_ns "$ns"; done
  if [ -n "${KEEP_WORK:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Writes the tool's configuration under $dir and sets CMD and READY.
configure() {
  local tool=$1 dir=$2 log=$3
  READY=
  case $tool in
    hikeshi | hikeshi-b)
      cat > "$dir/hikeshi.toml" <<EOF
[detect]
maxretry = $FAILURES

[contain]
backend = "nftables"

[watch.journal]
enabled = false

[[watch.files]]
paths = ["$log"]
start = "end"
EOF
      local binary=$HIKESHI
      [ "$tool" = hikeshi-b ] && binary=$HIKESHI_B
      CMD=("$binary" --data-dir "$dir/data" --config "$dir/hikeshi.toml" watch)
      READY="hikeshi watch: ready"
      ;;
    sshguard)
      # THRESHOLD: sshguard scores each of these lines 10 (sshg-parser
      # prints "100 ADDR 4 10") and blocks at a cumulated score of
      # THRESHOLD, so FAILURES lines block.
      printf '127.0.0.0/8\n::1/128\n' > "$dir/whitelist"
      cat > "$dir/sshguard.conf" <<EOF
BACKEND="/usr/libexec/sshguard/sshg-fw-nft-sets"
FILES="$log"
THRESHOLD=$((FAILURES * 10))
BLOCK_TIME=3600
DETECTION_TIME=1800
WHITELIST_FILE=$dir/whitelist
EOF
      CMD=(unshare --mount --propagation private sh -c
        'mount --bind "$0" /etc/sshguard/sshguard.conf && exec /usr/sbin/sshguard' "$dir/sshguard.conf")
      ;;
    fail2ban)
      local conf=$dir/fail2ban
      cp -r /etc/fail2ban "$conf"
      # Debian's jail.d enables its own sshd jail on the journal: not ours.
      rm -rf "$conf/jail.d" "$conf"/*.local && mkdir "$conf/jail.d"
      cat > "$conf/fail2ban.local" <<EOF
[Definition]
loglevel = INFO
logtarget = $dir/fail2ban.log
socket = $dir/fail2ban.sock
pidfile = $dir/fail2ban.pid
dbfile = $dir/fail2ban.sqlite3
EOF
      cat > "$conf/jail.local" <<EOF
[DEFAULT]
ignoreip = 127.0.0.1/8 ::1
bantime = 1h
findtime = 10m
maxretry = $FAILURES
backend = pyinotify
banaction = nftables-allports
banaction_allports = nftables-allports

[sshd]
enabled = true
port = ssh
logpath = $log
backend = pyinotify
maxretry = $FAILURES
EOF
      CMD=(fail2ban-server -f -x -c "$conf" -s "$dir/fail2ban.sock" -p "$dir/fail2ban.pid")
      ;;
  esac
}

echo "ban latency: $ATTACKS attacks of $FAILURES failures per tool ($(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo "  $("$HIKESHI" --version 2>/dev/null || echo hikeshi), sshguard $(dpkg-query -W -f='${Version}' sshguard), fail2ban $(dpkg-query -W -f='${Version}' fail2ban), $(nft --version)"
specs=()
for tool in $TOOLS; do
  ns="$PREFIX-$tool"
  dir="$WORK/$tool"
  mkdir -p "$dir"
  log="$dir/auth.log"
  : > "$log"
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  configure "$tool" "$dir" "$log"
  ready=${READY:-}
  $PYTHON -c 'import json, sys; print(json.dumps(dict(zip(["tool", "ns", "log", "tool_log", "ready_line"], sys.argv[1:6]), command=sys.argv[6:])))' \
    "$tool" "$ns" "$log" "$dir/tool.log" "$ready" "${CMD[@]}" > "$dir/spec.json"
  specs+=(--spec "$dir/spec.json")
done
mkdir -p "$WORK/results" bench/out/ban-latency-logs
status=0
$PYTHON bench/ban_latency.py run "${specs[@]}" --out-dir "$WORK/results" \
  --attacks "$ATTACKS" --failures "$FAILURES" --timeout "$TIMEOUT" &
RUNNER=$!
wait "$RUNNER" || status=$?
RUNNER=
# The tools' own logs, for a look at what they did (bench/out is ignored).
for tool in $TOOLS; do
  cp "$WORK/$tool/tool.log" "bench/out/ban-latency-logs/$tool.log"
  [ -f "$WORK/$tool/fail2ban.log" ] && cp "$WORK/$tool/fail2ban.log" bench/out/ban-latency-logs/fail2ban-server.log
done
if [ "$status" != 0 ]; then
  echo "bench/ban-latency.sh: the run failed; the tools' output is in bench/out/ban-latency-logs/" >&2
  exit 1
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
results=()
for tool in $TOOLS; do results+=("$WORK/results/$tool.json"); done
$PYTHON bench/ban_latency.py report --out-dir bench/out "${results[@]}"
