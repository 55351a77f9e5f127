#!/usr/bin/env bash
# Evidence-insert throughput of the incident store, against the floor of
# splitting the same log into lines and hashing each (see the example's
# doc comment). Usage: bench/store-evidence.sh [LINES] [BATCH_LINES]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p hikeshi --example store_bench
exec target/release/examples/store_bench "$@"
