#!/usr/bin/env bash
# Speed and memory of `hikeshi parse --format summary` against its peers,
# measured in ONE run on ONE generated auth.log (issue 2):
#
#   (1) grep -c 'Failed password' FILE               the floor: hikeshi <= 5x grep
#   (2) hikeshi parse --format summary FILE           the subject
#   (3) /usr/libexec/sshguard/sshg-parser < FILE      hikeshi >= 10x faster
#   (4) fail2ban-regex FILE .../filter.d/sshd.conf    hikeshi >= 100x faster
#
# and the peak RSS of (2) on N and 4N lines (memory must stay flat: at most
# 10% or 2 MiB more), plus 16N lines streamed through a pipe for the record.
#
# Method: release build; a classic-envelope corpus from hikeshi-corpus with
# a fixed seed in bench/out/ (gitignored); warm page cache; every command
# pinned to CPU 0 (`taskset -c 0`) so each tool gets one core. Tools (1)-(3)
# run in alternating rounds (grep, hikeshi, sshguard, grep, ...) after one
# warm-up round, and each figure is the median over the rounds: on a shared
# machine the load drifts, and alternating exposes all tools to the same
# drift, so the RATIOS from one run are what to compare. fail2ban-regex is
# slow and runs once: first on a prefix to estimate, then on the whole file
# unless that would exceed the budget (--fail2ban-budget), in which case the
# prefix time is scaled linearly and the output says so. Each tool's wall
# time and CPU time (user+sys) are reported; the verdict follows CPU time,
# which on a shared machine does not count waiting for other processes.
# The report also goes to bench/out/parse-report.txt.
#
# Usage: bench/parse.sh [--lines N] [--runs N] [--seed S] [--no-build]
#                       [--fail2ban-budget SECONDS]
# Environment: HIKESHI_BIN=path measures that hikeshi binary instead.
# Exit: 0 every target met, 1 a target missed, 2 error.

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$ROOT/bench/out"
LINES=1000000
RUNS=7
SEED=20260115
BUILD=1
F2B_BUDGET=600
F2B_PREFIX_MAX=100000
SSHG=/usr/libexec/sshguard/sshg-parser
F2B_FILTER=/etc/fail2ban/filter.d/sshd.conf
TARGET_GREP=5     # hikeshi / grep     must be <= this
TARGET_SSHG=10    # sshguard / hikeshi must be >= this
TARGET_F2B=100    # fail2ban / hikeshi must be >= this

die() { echo "bench/parse.sh: error: $*" >&2; exit 2; }
note() { echo "== $*" >&2; }

usage() { sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while (($#)); do
  case "$1" in
    --lines) LINES=${2:?--lines needs a number}; shift 2 ;;
    --runs) RUNS=${2:?--runs needs a number}; shift 2 ;;
    --seed) SEED=${2:?--seed needs a number}; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --fail2ban-budget) F2B_BUDGET=${2:?--fail2ban-budget needs seconds}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
for v in LINES RUNS SEED F2B_BUDGET; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "--${v,,} must be a whole number, got '${!v}'"
done
((LINES >= 1000)) || die "--lines must be at least 1000"
((RUNS >= 1)) || die "--runs must be at least 1"

# ---- tools ---------------------------------------------------------------
command -v cargo >/dev/null || die "cargo not found (install Rust)"
command -v grep >/dev/null || die "grep not found"
[[ -x $SSHG ]] || die "$SSHG not found (Debian package sshguard)"
command -v fail2ban-regex >/dev/null || die "fail2ban-regex not found (Debian package fail2ban)"
[[ -r $F2B_FILTER ]] || die "$F2B_FILTER not readable (Debian package fail2ban)"
[[ -x /usr/bin/time ]] || die "/usr/bin/time not found (Debian package time)"
((BASH_VERSINFO[0] >= 5)) || die "bash 5 or later is needed (EPOCHREALTIME)"

PIN=()
if command -v taskset >/dev/null && taskset -c 0 true 2>/dev/null; then
  PIN=(taskset -c 0)
else
  note "taskset unavailable: commands are NOT pinned to one core"
fi

# ---- build and corpus ----------------------------------------------------
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if ((BUILD)); then
  note "building release binaries"
  (cd "$ROOT" && cargo build --release --quiet -p hikeshi -p hikeshi-corpus) ||
    die "cargo build failed"
fi
# HIKESHI_BIN measures another build of hikeshi (e.g. an older commit).
HIKESHI=${HIKESHI_BIN:-$TARGET_DIR/release/hikeshi}
CORPUS="$TARGET_DIR/release/hikeshi-corpus"
[[ -x $CORPUS ]] || die "$CORPUS missing (run without --no-build)"
[[ -x $HIKESHI ]] || die "$HIKESHI missing (run without --no-build)"

mkdir -p "$OUT"
DATA="$OUT/data"
mkdir -p "$DATA"
FILE="$OUT/auth-$LINES.log"
BIG_LINES=$((4 * LINES))
BIG="$OUT/auth-$BIG_LINES.log"
generate() { # lines file
  note "generating $1 lines (seed $SEED, classic envelope) into $2"
  "$CORPUS" --lines "$1" --seed "$SEED" --envelopes classic --out "$2" --stats 2>"$2.truth" ||
    die "hikeshi-corpus failed: $(cat "$2.truth")"
}
generate "$LINES" "$FILE"
generate "$BIG_LINES" "$BIG"
truth() { awk -v k="$1" '$1 == k { print $2 }' "$FILE.truth"; }

# ---- the commands --------------------------------------------------------
run_grep() { "${PIN[@]}" grep -c 'Failed password' "$1"; }
run_hikeshi() { "${PIN[@]}" "$HIKESHI" --data-dir "$DATA" parse --format summary "$1"; }
run_sshguard() { "${PIN[@]}" "$SSHG" <"$1"; }
run_fail2ban() { "${PIN[@]}" fail2ban-regex "$1" "$F2B_FILTER"; }
# Starting a pinned program costs about a millisecond; this empty command
# measures it, and it is subtracted from every median (as hyperfine does).
run_baseline() { "${PIN[@]}" true "$1"; }

# Checks that hikeshi parse works at all: until the parser exists it does
# not, and the other three tools are still measured.
HIKESHI_OK=1
set +e
run_hikeshi "$FILE" >"$OUT/hikeshi-summary.txt" 2>"$OUT/hikeshi-stderr.txt"
status=$?
set -e
if ((status > 1)); then
  HIKESHI_OK=0
  note "hikeshi parse failed (exit $status): $(head -c 300 "$OUT/hikeshi-stderr.txt")"
  note "measuring the other tools only"
fi

# Warm the page cache: every tool then reads from memory.
cat "$FILE" "$FILE" >/dev/null

# Wall time and CPU time of one command. The output goes to a regular
# file, never to /dev/null: GNU grep notices /dev/null and stops at the
# first match, which would time nothing. CPU time is
# user+sys of the finished children, read with the `times` builtin in this
# shell (a subshell would see its own, empty, children). Sets WALL and CPU.
TIMES_FILE="$OUT/.times"
cpu_seconds() { # "XmY.YYYs XmY.YYYs" -> seconds
  awk '{ s = 0; for (i = 1; i <= NF; i++) { split($i, p, "m"); sub("s", "", p[2]); s += p[1] * 60 + p[2] } printf "%.3f", s }' <<<"$1"
}
measure() { # function file [file for the output]
  local c0 c1 t0 t1 sink=${3:-$OUT/.output}
  times >"$TIMES_FILE"
  { read -r _; read -r c0; } <"$TIMES_FILE"
  t0=$EPOCHREALTIME
  "$1" "$2" >"$sink" 2>&1 || true
  t1=$EPOCHREALTIME
  times >"$TIMES_FILE"
  { read -r _; read -r c1; } <"$TIMES_FILE"
  WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
  CPU=$(awk -v a="$(cpu_seconds "$c0")" -v b="$(cpu_seconds "$c1")" 'BEGIN { printf "%.3f", b - a }')
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# The quick commands run REPEAT times per round (one sshguard run takes as
# long as dozens of them), so that their medians rest on more samples.
REPEAT=5
QUICK=(baseline grep)
((HIKESHI_OK)) && QUICK=(baseline grep hikeshi)
TOOLS=("${QUICK[@]}" sshguard)
declare -A WALLS CPUS
note "timing ${TOOLS[*]}: 1 warm-up round + $RUNS rounds, alternating, pinned: ${PIN[*]:-no}"
for ((round = 0; round <= RUNS; round++)); do
  for ((r = 0; r < REPEAT; r++)); do
    for tool in "${QUICK[@]}"; do
      measure "run_$tool" "$FILE"
      if ((round > 0)); then
        WALLS[$tool]+="$WALL "
        CPUS[$tool]+="$CPU "
      fi
    done
  done
  measure run_sshguard "$FILE"
  if ((round > 0)); then
    WALLS[sshguard]+="$WALL "
    CPUS[sshguard]+="$CPU "
    note "round $round/$RUNS done"
  fi
done
declare -A WALL_MED CPU_MED
BASE_WALL=$(tr ' ' '\n' <<<"${WALLS[baseline]}" | grep . | median)
BASE_CPU=$(tr ' ' '\n' <<<"${CPUS[baseline]}" | grep . | median)
minus() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; printf "%.4f", (d > 0 ? d : 0) }'; }
for tool in "${TOOLS[@]}"; do
  WALL_MED[$tool]=$(minus "$(tr ' ' '\n' <<<"${WALLS[$tool]}" | grep . | median)" "$BASE_WALL")
  CPU_MED[$tool]=$(minus "$(tr ' ' '\n' <<<"${CPUS[$tool]}" | grep . | median)" "$BASE_CPU")
done

# fail2ban-regex: once on a prefix to estimate, then on the whole file if
# the estimate fits the budget.
PREFIX_LINES=$((LINES < F2B_PREFIX_MAX ? LINES : F2B_PREFIX_MAX))
PREFIX="$OUT/auth-$LINES.prefix-$PREFIX_LINES.log"
head -n "$PREFIX_LINES" "$FILE" >"$PREFIX"
note "fail2ban-regex on the first $PREFIX_LINES lines"
measure run_fail2ban "$PREFIX" "$OUT/fail2ban-regex.prefix.txt"
F2B_PREFIX_WALL=$WALL
F2B_PREFIX_CPU=$CPU
F2B_ESTIMATE=$(awk -v t="$WALL" -v n="$LINES" -v p="$PREFIX_LINES" 'BEGIN { printf "%.1f", t * n / p }')
if ((PREFIX_LINES == LINES)); then
  F2B_WALL=$F2B_PREFIX_WALL F2B_CPU=$F2B_PREFIX_CPU
  F2B_HOW="measured on the whole file"
elif awk -v e="$F2B_ESTIMATE" -v b="$F2B_BUDGET" 'BEGIN { exit !(e <= b) }'; then
  note "fail2ban-regex on the whole file (estimate ${F2B_ESTIMATE}s)"
  measure run_fail2ban "$FILE" "$OUT/fail2ban-regex.txt"
  F2B_WALL=$WALL F2B_CPU=$CPU
  F2B_HOW="measured on the whole file, one run"
else
  F2B_WALL=$F2B_ESTIMATE
  F2B_CPU=$(awk -v t="$F2B_PREFIX_CPU" -v n="$LINES" -v p="$PREFIX_LINES" 'BEGIN { printf "%.1f", t * n / p }')
  F2B_HOW="ESTIMATED: measured on the first $PREFIX_LINES lines (${F2B_PREFIX_WALL}s) and scaled linearly by $LINES/$PREFIX_LINES, because the whole file would exceed the ${F2B_BUDGET}s budget"
fi
F2B_FILE=$FILE
F2B_OUTPUT="$OUT/fail2ban-regex.txt"
if [[ $F2B_HOW == ESTIMATED* ]] || ((PREFIX_LINES == LINES)); then
  F2B_FILE=$PREFIX
  F2B_OUTPUT="$OUT/fail2ban-regex.prefix.txt"
fi

# ---- what each tool found (untimed runs) ----------------------------------
note "counting what each tool found"
GREP_COUNT=$(grep -c 'Failed password' "$FILE" || true)
SSHG_COUNT=$("$SSHG" <"$FILE" | wc -l)
F2B_MATCHED=$(awk '/^Lines: / { for (i = 1; i <= NF; i++) if ($(i + 1) ~ /^matched/) print $i }' "$F2B_OUTPUT" | tr -d ',')
F2B_MATCHED=${F2B_MATCHED:-?}
HIKESHI_COUNT="n/a"
if ((HIKESHI_OK)); then
  # The summary's failure count, from its line
  # "events  failure N, success N, context N" (the full summary is kept).
  HIKESHI_COUNT=$(awk '$1 == "events" { for (i = 2; i < NF; i++) if ($i == "failure") print $(i + 1) }' "$OUT/hikeshi-summary.txt" | tr -d ',' | head -n1)
  HIKESHI_COUNT=${HIKESHI_COUNT:-"see $OUT/hikeshi-summary.txt"}
fi

# ---- memory --------------------------------------------------------------
RSS_SMALL="n/a" RSS_BIG="n/a" RSS_HUGE="n/a"
HUGE_LINES=$((16 * LINES))
if ((HIKESHI_OK)); then
  note "peak RSS of hikeshi parse on $LINES and $BIG_LINES lines"
  cat "$BIG" >/dev/null
  rss() { /usr/bin/time -f '%M' -o "$OUT/rss.txt" "${PIN[@]}" "$HIKESHI" --data-dir "$DATA" parse --format summary "$1" >/dev/null 2>&1 || true; tail -n1 "$OUT/rss.txt"; }
  RSS_SMALL=$(rss "$FILE")
  RSS_BIG=$(rss "$BIG")
  # 16N lines are streamed from the generator instead of stored: where
  # memory stops growing, if it does.
  note "peak RSS of hikeshi parse on $HUGE_LINES lines streamed through a pipe"
  "$CORPUS" --lines "$HUGE_LINES" --seed "$SEED" --envelopes classic |
    /usr/bin/time -f '%M' -o "$OUT/rss.txt" "${PIN[@]}" "$HIKESHI" --data-dir "$DATA" parse --format summary - >"$OUT/hikeshi-summary-$HUGE_LINES.txt" 2>&1 || true
  RSS_HUGE=$(tail -n1 "$OUT/rss.txt")
fi

# ---- report --------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "inf" }'; }
verdict() { awk -v r="$1" -v t="$3" -v op="$2" 'BEGIN { ok = (op == "<=") ? (r <= t) : (r >= t); print ok ? "PASS" : "FAIL" }'; }

REPORT="$OUT/parse-report.txt"
{
  echo "hikeshi parse benchmark: $LINES lines (seed $SEED, classic envelope), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "pinned: ${PIN[*]:-no}; medians of $RUNS alternating rounds after 1 warm-up ($REPEAT samples per round"
  echo "for grep and hikeshi), minus the start-up"
  echo "cost of an empty pinned command (${BASE_WALL}s wall, ${BASE_CPU}s cpu); fail2ban: $F2B_HOW"
  echo "file: $FILE ($(du -m "$FILE" | cut -f1) MiB)"
  echo
  printf '%-34s %12s %12s %10s\n' "tool" "wall s" "cpu s" "found"
  printf '%-34s %12s %12s %10s\n' "grep -c 'Failed password'" "${WALL_MED[grep]}" "${CPU_MED[grep]}" "$GREP_COUNT"
  if ((HIKESHI_OK)); then
    printf '%-34s %12s %12s %10s\n' "hikeshi parse --format summary" "${WALL_MED[hikeshi]}" "${CPU_MED[hikeshi]}" "$HIKESHI_COUNT"
  else
    printf '%-34s %12s %12s %10s\n' "hikeshi parse --format summary" "FAILED" "-" "-"
  fi
  printf '%-34s %12s %12s %10s\n' "sshg-parser (sshguard)" "${WALL_MED[sshguard]}" "${CPU_MED[sshguard]}" "$SSHG_COUNT"
  printf '%-34s %12s %12s %10s\n' "fail2ban-regex sshd.conf" "$F2B_WALL" "$F2B_CPU" "$F2B_MATCHED"
  echo
  echo "ground truth (hikeshi-corpus --stats): 'Failed password' lines $(truth failed_password_lines)," \
    "failure lines (normal mode) $(truth failure_lines.normal), pam_unix pending $(truth kind.pam_unix_auth_failure)," \
    "attack lines $(truth attack_lines) of $(truth lines)"
  echo "what 'found' counts: grep, lines with 'Failed password' (one kind of failure); hikeshi, failure"
  echo "events in normal mode; sshguard, attack lines it recognises (it also counts pre-auth closes such as"
  echo "'Disconnected from invalid user ... [preauth]', which normal mode treats as context, and it skips"
  echo "'Received disconnect ...:3: Auth fail', PAM and banner lines); fail2ban, lines sshd.conf matched"
  echo "as failures in its normal mode."
  if [[ $F2B_FILE != "$FILE" ]] && ((PREFIX_LINES < LINES)); then
    echo "(fail2ban's count is for the $PREFIX_LINES-line prefix)"
  fi
  echo
  status=0
  if ((HIKESHI_OK)); then
    h=${WALL_MED[hikeshi]}
    hc=${CPU_MED[hikeshi]}
    r1=$(ratio "$h" "${WALL_MED[grep]}")
    r2=$(ratio "${WALL_MED[sshguard]}" "$h")
    r3=$(ratio "$F2B_WALL" "$h")
    c1=$(ratio "$hc" "${CPU_MED[grep]}")
    c2=$(ratio "${CPU_MED[sshguard]}" "$hc")
    c3=$(ratio "$F2B_CPU" "$hc")
    v1=$(verdict "$c1" "<=" "$TARGET_GREP")
    v2=$(verdict "$c2" ">=" "$TARGET_SSHG")
    v3=$(verdict "$c3" ">=" "$TARGET_F2B")
    w1=$(verdict "$r1" "<=" "$TARGET_GREP")
    w2=$(verdict "$r2" ">=" "$TARGET_SSHG")
    w3=$(verdict "$r3" ">=" "$TARGET_F2B")
    printf '%-20s %10s %9s %8s %9s %8s\n' "ratio" "target" "cpu" "result" "wall" "result"
    printf '%-20s %10s %8sx %8s %8sx %8s\n' "hikeshi / grep" "<= ${TARGET_GREP}x" "$c1" "$v1" "$r1" "$w1"
    printf '%-20s %10s %8sx %8s %8sx %8s\n' "sshguard / hikeshi" ">= ${TARGET_SSHG}x" "$c2" "$v2" "$r2" "$w2"
    printf '%-20s %10s %8sx %8s %8sx %8s\n' "fail2ban / hikeshi" ">= ${TARGET_F2B}x" "$c3" "$v3" "$r3" "$w3"
    echo "(the verdict and the exit status follow cpu time, the time each tool spent on its"
    echo " core; on a shared machine wall time also counts waiting for other processes)"
    # Flat memory: 4x the lines may cost at most 10% or 2 MiB more (the
    # allocator's noise), whichever is larger.
    growth=$((RSS_BIG - RSS_SMALL))
    allowed=$((RSS_SMALL / 10 > 2048 ? RSS_SMALL / 10 : 2048))
    vm=PASS
    ((growth <= allowed)) || vm=FAIL
    echo
    echo "peak RSS of hikeshi parse: ${RSS_SMALL} KiB on $LINES lines, ${RSS_BIG} KiB on $BIG_LINES lines" \
      "(growth ${growth} KiB, allowed ${allowed} KiB): $vm"
    echo "  and ${RSS_HUGE} KiB on $HUGE_LINES lines (streamed through a pipe)"
    for v in "$v1" "$v2" "$v3" "$vm"; do [[ $v == PASS ]] || status=1; done
  else
    echo "ratios: not available, hikeshi parse failed: $(head -c 300 "$OUT/hikeshi-stderr.txt")"
    echo "sshguard / grep: $(ratio "${WALL_MED[sshguard]}" "${WALL_MED[grep]}")x; fail2ban / grep: $(ratio "$F2B_WALL" "${WALL_MED[grep]}")x"
    status=1
  fi
  echo
  echo "raw wall times (s):"
  for tool in "${TOOLS[@]}"; do echo "  $tool: ${WALLS[$tool]}"; done
  echo "fail2ban-regex on $PREFIX_LINES-line prefix: ${F2B_PREFIX_WALL}s wall, ${F2B_PREFIX_CPU}s cpu"
  exit "$status"
} | tee "$REPORT"
exit "${PIPESTATUS[0]}"
