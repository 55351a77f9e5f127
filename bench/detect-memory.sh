#!/bin/sh
# Detector memory and throughput: 1,000,000 distinct attacking addresses
# tracked at once (target: peak RSS <= 256 MiB), then a hot-attacker run.
# Usage: bench/detect-memory.sh
set -eu
cd "$(dirname "$0")/.."
cargo build --release -p hikeshi-core --example detect_memory
exec target/release/examples/detect_memory
