#!/usr/bin/env bash
# Latency (write() to line received) and sustained ingest of the file
# source of `hikeshi watch`, against `tail -F -n 0` (sshguard's log
# reader) in the same run. Usage: bench/tail-latency.sh [LINES_PER_S] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p hikeshi --example tail_bench
exec target/release/examples/tail_bench "$@"
