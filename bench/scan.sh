#!/usr/bin/env bash
# Speed of `hikeshi scan` against `hikeshi parse --format summary` on the
# same generated auth.log, in ONE run (issue 3): detection, incident
# records, evidence and the outbox must not dominate, so scan (with a fresh
# data directory every time, firewall backend "none") must take at most 2x
# the time of parse. fail2ban-regex on the same file is shown beside them.
#
# Method: release build; the same classic-envelope corpus as bench/parse.sh
# (hikeshi-corpus, fixed seed, bench/out/); warm page cache; every command
# pinned to the same CPUs (`taskset -c 0,1` by default: scan reads, parses
# and detects on one thread while its main thread records, parse has one
# thread); parse and scan in alternating rounds after a warm-up round;
# medians. On a shared machine only the ratio of one run means anything,
# and the wall-time ratio needs the CPUs idle. CPU time (user+sys) is
# reported too: it says what scan costs in all, whatever the CPUs.
# `--cpus 0` measures both on one CPU.
#
# Usage: bench/scan.sh [--lines N] [--runs N] [--seed S] [--cpus LIST] [--no-build] [--no-fail2ban]
# Exit: 0 target met, 1 missed, 2 error.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$ROOT/bench/out"
LINES=1000000
RUNS=5
SEED=20260115
BUILD=1
F2B=1
TARGET=2
CPUS=0,1

die() { echo "bench/scan.sh: error: $*" >&2; exit 2; }
note() { echo "== $*" >&2; }

while (($#)); do
  case "$1" in
    --lines) LINES=${2:?}; shift 2 ;;
    --runs) RUNS=${2:?}; shift 2 ;;
    --seed) SEED=${2:?}; shift 2 ;;
    --cpus) CPUS=${2:?}; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --no-fail2ban) F2B=0; shift ;;
    -h|--help) sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done

PIN=()
if command -v taskset >/dev/null && taskset -c "$CPUS" true 2>/dev/null; then PIN=(taskset -c "$CPUS"); fi
TARGET_DIR=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
if ((BUILD)); then
  note "building release binaries"
  (cd "$ROOT" && cargo build --release --quiet -p hikeshi -p hikeshi-corpus) || die "build failed"
fi
HIKESHI="$TARGET_DIR/release/hikeshi"
CORPUS="$TARGET_DIR/release/hikeshi-corpus"
[[ -x $HIKESHI && -x $CORPUS ]] || die "release binaries missing (run without --no-build)"

mkdir -p "$OUT"
LOG="$OUT/auth-$LINES-$SEED-classic.log"
if [[ ! -s $LOG ]]; then
  note "generating $LINES lines (seed $SEED)"
  "$CORPUS" --lines "$LINES" --seed "$SEED" --envelopes classic --out "$LOG" 2>/dev/null || die "hikeshi-corpus failed"
fi
CONFIG="$OUT/scan-bench.toml"
printf '[contain]\nbackend = "none"\n' >"$CONFIG"
cat "$LOG" >/dev/null # warm the page cache

# time_cmd NAME CMD...: appends "wall cpu" of one run to $OUT/NAME.times
# Wall time from bash's microsecond clock (GNU time's %e has 10 ms steps,
# 5% of parse's time); CPU time from GNU time.
time_cmd() {
  local name=$1; shift
  local start=$EPOCHREALTIME
  /usr/bin/time -f '%e %U %S' -o "$OUT/.time" "${PIN[@]}" "$@" >/dev/null 2>"$OUT/.stderr" || {
    local rc=$?
    # scan exits 1 when it opened incidents: that is its success.
    [[ $name == scan && $rc == 1 ]] || die "$name failed ($rc): $(tail -3 "$OUT/.stderr")"
  }
  # GNU time adds "Command exited with non-zero status N" before the
  # figures when the command fails (scan's 1): read the figures line only,
  # or that line would count as a run of 0 s and halve the median.
  local end=$EPOCHREALTIME
  awk -v wall="$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.4f", e - s }')" \
    'NF == 3 && $1 ~ /^[0-9.]+$/ { printf "%s %.4f\n", wall, $2 + $3; n++ } END { exit n != 1 }' \
    "$OUT/.time" >>"$OUT/$name.times" || die "$name: unreadable timing: $(cat "$OUT/.time")"
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
rm -f "$OUT/parse.times" "$OUT/scan.times"
for round in $(seq 0 "$RUNS"); do
  time_cmd parse "$HIKESHI" parse --format summary "$LOG"
  DATA=$(mktemp -d "$OUT/scan-data.XXXXXX")
  time_cmd scan "$HIKESHI" --config "$CONFIG" --data-dir "$DATA" scan -q "$LOG"
  if ((round == RUNS)); then
    INCIDENTS=$("$HIKESHI" --config "$CONFIG" --data-dir "$DATA" incident list --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d), sum(i["attempts"] for i in d))')
  fi
  rm -rf "$DATA"
  if ((round == 0)); then rm -f "$OUT/parse.times" "$OUT/scan.times"; fi # warm-up
done
PW=$(cut -d' ' -f1 "$OUT/parse.times" | median); PC=$(cut -d' ' -f2 "$OUT/parse.times" | median)
SW=$(cut -d' ' -f1 "$OUT/scan.times" | median); SC=$(cut -d' ' -f2 "$OUT/scan.times" | median)

F2B_LINE="fail2ban-regex: not measured (--no-fail2ban)"
if ((F2B)) && command -v fail2ban-regex >/dev/null; then
  note "fail2ban-regex on the same file (slow, one run)"
  /usr/bin/time -f '%e %U %S' -o "$OUT/.time" "${PIN[@]}" fail2ban-regex "$LOG" /etc/fail2ban/filter.d/sshd.conf >"$OUT/f2b.out" 2>&1 || true
  FW=$(awk 'NF == 3 && $1 ~ /^[0-9.]+$/ { print $1 }' "$OUT/.time")
  F2B_LINE=$(awk -v f="$FW" -v s="$SW" 'BEGIN { printf "fail2ban-regex (parse only, no actions): %.2f s wall = %.1fx hikeshi scan", f, f / s }')
fi

echo
echo "hikeshi scan vs hikeshi parse, $LINES lines, pinned: ${PIN[*]:-no}, medians of $RUNS rounds, load average before: $LOAD"
printf '%-34s %9s %9s\n' tool "wall s" "cpu s"
printf '%-34s %9.3f %9.3f\n' "hikeshi parse --format summary" "$PW" "$PC"
printf '%-34s %9.3f %9.3f\n' "hikeshi scan (fresh data dir)" "$SW" "$SC"
echo "incidents opened by scan: ${INCIDENTS% *}, attempts recorded: ${INCIDENTS#* }"
echo "$F2B_LINE"
# Each round runs parse then scan back to back: the median of the rounds'
# own ratios says how much of the spread is the host's.
PAIRED=$(paste -d' ' "$OUT/parse.times" "$OUT/scan.times" | awk '{ print $3 / $1 }' | median)
printf 'median of the rounds'"'"' own scan/parse ratios: %.2fx wall\n' "$PAIRED"
RATIO=$(awk -v s="$SW" -v p="$PW" 'BEGIN { printf "%.2f", s / p }')
RATIO_CPU=$(awk -v s="$SC" -v p="$PC" 'BEGIN { printf "%.2f", s / p }')
if awk -v r="$RATIO" -v t="$TARGET" 'BEGIN { exit !(r <= t) }'; then
  echo "scan/parse = ${RATIO}x wall (${RATIO_CPU}x cpu), target <= ${TARGET}x: PASS"
else
  echo "scan/parse = ${RATIO}x wall (${RATIO_CPU}x cpu), target <= ${TARGET}x: FAIL"; exit 1
fi
