#!/usr/bin/env bash
# Benchmark: how fast hikeshi bans, against the raw firewall tools, in one run.
#
# NEEDS ROOT. Every measurement runs in a fresh network namespace (deleted
# afterwards, also on failure); the addresses are DATA ONLY (set elements
# and rules in the namespace, from the benchmark range 198.18.0.0/15): no
# packet is sent.
#
#   1. nftables, 100,000 addresses: `hikeshi ban --file` (store, policy,
#      allowlist, one `nft -f -` transaction) vs one raw `nft -f` batch that
#      creates a table and set and loads the same elements with the same
#      timeout. Target: hikeshi <= 3x raw nft.
#   2. iptables, 2,000 addresses: the runbook's per-rule approach (one
#      `iptables -A INPUT -s ADDR -j DROP` process per address, as fail2ban's
#      iptables actions do) vs hikeshi's iptables backend (one
#      iptables-restore batch) and ipset backend (one ipset restore).
#
# Usage: bench/ban.sh [HIKESHI_BINARY]   (default: target/release/hikeshi,
# built if missing). Runs: RUNS=3 (median reported).
set -euo pipefail
cd "$(dirname "$0")/.."

HIKESHI=${1:-target/release/hikeshi}
RUNS=${RUNS:-3}
N_NFT=${N_NFT:-100000}
N_IPT=${N_IPT:-2000}
PYTHON=/usr/bin/python3

if [ "$(id -u)" != 0 ]; then echo "bench/ban.sh: needs root (network namespaces)" >&2; exit 2; fi
if [ ! -x "$HIKESHI" ]; then cargo build --release -p hikeshi; fi
HIKESHI=$(realpath "$HIKESHI")

WORK=$(mktemp -d /tmp/hk-fw-bench.XXXXXX)
NS="hk-fw-bench-$$"
cleanup() {
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

fresh_ns() {
  ip netns del "$NS" 2>/dev/null || true
  ip netns add "$NS"
  ip -n "$NS" link set lo up
  rm -rf "$WORK/data"
}

# Distinct addresses from 198.18.0.0/15, as a list and as a raw nft batch.
$PYTHON - "$WORK" "$N_NFT" "$N_IPT" <<'PY'
import ipaddress, sys
work, n_nft, n_ipt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
base = int(ipaddress.IPv4Address("198.18.0.0"))
assert n_nft <= 131072
addrs = [str(ipaddress.IPv4Address(base + i)) for i in range(n_nft)]
open(f"{work}/nft.txt", "w").write("\n".join(addrs) + "\n")
open(f"{work}/ipt.txt", "w").write("\n".join(addrs[:n_ipt]) + "\n")
with open(f"{work}/raw.nft", "w") as f:
    f.write("add table inet raw\n")
    f.write("add set inet raw ban4 { type ipv4_addr; flags timeout; }\n")
    f.write("add chain inet raw input { type filter hook input priority -10; policy accept; }\n")
    f.write("add rule inet raw input ip saddr @ban4 drop\n")
    f.write("add element inet raw ban4 { " + ", ".join(a + " timeout 3600s" for a in addrs) + " }\n")
PY

now_ns() { date +%s%N; }

# time_in_ns LABEL CMD... : runs CMD in a fresh namespace RUNS times, prints
# the median in seconds, and leaves the namespace of the last run in place
# for checks.
median_seconds() { sort -n | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]/1e9}'; }

time_in_ns() {
  local samples=()
  for _ in $(seq "$RUNS"); do
    fresh_ns
    local t0 t1
    t0=$(now_ns)
    ip netns exec "$NS" "$@" >/dev/null
    t1=$(now_ns)
    samples+=($((t1 - t0)))
  done
  printf '%s\n' "${samples[@]}" | median_seconds
}

config() {
  printf '[contain]\nbackend = "%s"\nbantime = "1h"\n' "$1" > "$WORK/hikeshi.toml"
}

per_rule_iptables() {
  # The runbook's command, once per address (fail2ban's iptables actions
  # also run one iptables process per ban).
  while read -r addr; do
    iptables -w -A INPUT -s "$addr" -j DROP
  done < "$WORK/ipt.txt"
}

count_nft() { ip netns exec "$NS" nft -j list set inet "$1" ban4 | $PYTHON -c 'import json,sys; d=json.load(sys.stdin); print(len(d["nftables"][1]["set"].get("elem", [])))'; }

echo "hikeshi ban benchmark ($(nft --version), $(iptables -V), median of $RUNS runs, each in a fresh namespace)"
echo

raw=$(time_in_ns nft -f "$WORK/raw.nft")
[ "$(count_nft raw)" = "$N_NFT" ] || { echo "raw nft did not load $N_NFT elements" >&2; exit 1; }

config nftables
hk=$(time_in_ns "$HIKESHI" --data-dir "$WORK/data" --config "$WORK/hikeshi.toml" ban --file "$WORK/nft.txt" --reason bench)
[ "$(count_nft hikeshi)" = "$N_NFT" ] || { echo "hikeshi did not load $N_NFT elements" >&2; exit 1; }

ratio=$(awk -v a="$hk" -v b="$raw" 'BEGIN {printf "%.2f", a/b}')
verdict=$(awk -v r="$ratio" 'BEGIN {print (r <= 3.0) ? "PASS" : "FAIL"}')
printf '%-58s %8s s\n' "raw nft -f, one batch, $N_NFT addresses" "$raw"
printf '%-58s %8s s   %sx raw nft  %s (target <= 3x)\n' "hikeshi ban --file (nftables), $N_NFT addresses" "$hk" "$ratio" "$verdict"
echo

per_rule=$(time_in_ns bash -c "$(declare -f per_rule_iptables); WORK=$WORK per_rule_iptables")
[ "$(ip netns exec "$NS" iptables -w -S INPUT | grep -c -- '-j DROP')" = "$N_IPT" ] || { echo "per-rule iptables did not add $N_IPT rules" >&2; exit 1; }

config iptables
hk_ipt=$(time_in_ns "$HIKESHI" --data-dir "$WORK/data" --config "$WORK/hikeshi.toml" ban --file "$WORK/ipt.txt" --reason bench)
[ "$(ip netns exec "$NS" iptables -w -S HIKESHI | grep -c -- '-j DROP')" = "$N_IPT" ] || { echo "hikeshi iptables did not add $N_IPT rules" >&2; exit 1; }

config ipset
hk_ipset=$(time_in_ns "$HIKESHI" --data-dir "$WORK/data" --config "$WORK/hikeshi.toml" ban --file "$WORK/ipt.txt" --reason bench)
[ "$(ip netns exec "$NS" ipset save hikeshi4 | grep -c '^add ')" = "$N_IPT" ] || { echo "hikeshi ipset did not add $N_IPT entries" >&2; exit 1; }

config nftables
hk_nft2=$(time_in_ns "$HIKESHI" --data-dir "$WORK/data" --config "$WORK/hikeshi.toml" ban --file "$WORK/ipt.txt" --reason bench)

x() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", a/b}'; }
printf '%-58s %8s s\n' "runbook: iptables -A INPUT -s ADDR -j DROP x $N_IPT" "$per_rule"
printf '%-58s %8s s   %sx faster than per-rule\n' "hikeshi ban --file (iptables backend), $N_IPT addresses" "$hk_ipt" "$(x "$per_rule" "$hk_ipt")"
printf '%-58s %8s s   %sx faster than per-rule\n' "hikeshi ban --file (ipset backend), $N_IPT addresses" "$hk_ipset" "$(x "$per_rule" "$hk_ipset")"
printf '%-58s %8s s   %sx faster than per-rule\n' "hikeshi ban --file (nftables backend), $N_IPT addresses" "$hk_nft2" "$(x "$per_rule" "$hk_nft2")"
echo
echo "RESULT: $verdict (hikeshi nftables = ${ratio}x raw nft for $N_NFT addresses)"
[ "$verdict" = PASS ]
