#!/bin/sh
# Detector snapshot size and speed: 10,000 and 1,000,000 attacking
# addresses (three failures each) and 10,000 with full rings, through the
# postcard blob (DetectorSnapshot::to_bytes) and, as the peer, serde_json.
# Usage: bench/detect-snapshot.sh
set -eu
cd "$(dirname "$0")/.."
cargo build --release -p hikeshi-core --example detect_snapshot
target/release/examples/detect_snapshot
