#!/bin/sh
# Detector memory and throughput: 1,000,000 distinct attacking addresses
# tracked at once (target: peak RSS <= 256 MiB), then a hot-attacker run,
# then the same 1,000,000 addresses through a naive HashMap<IpAddr,
# VecDeque<Timestamp>> peer (brute force only) for comparison.
# Usage: bench/detect-memory.sh
set -eu
cd "$(dirname "$0")/.."
cargo build --release -p hikeshi-core --example detect_memory
bin=target/release/examples/detect_memory
ours=$("$bin")
echo "$ours"
peer=$("$bin" naive)
echo "$peer"
peak() { echo "$1" | awk '/peak RSS/ { print $4; exit }'; }
rate() { echo "$1" | awk '/throughput/ { print $2; exit }'; }
awk -v a="$(peak "$ours")" -v b="$(peak "$peer")" -v c="$(rate "$ours")" -v d="$(rate "$peer")" 'BEGIN {
    printf "ratio: peak RSS hikeshi/naive = %.2f, throughput hikeshi/naive = %.2f (hikeshi also tracks prefixes, users and accounts)\n", a / b, c / d
}'
