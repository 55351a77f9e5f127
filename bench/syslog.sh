#!/bin/sh
# Syslog receiver throughput on loopback (hikeshi watch's network source):
# UDP and TCP (4 connections, newline and octet-counted framing) into a
# consumer that only counts, against a bare socket loop (recv_from / read +
# count LF, same sender, same kernel buffer) measured in the same run; then
# the loss under overload (a consumer spending 20 us per message behind a
# channel of 1024): what hikeshi counts as dropped and what the kernel lost
# before hikeshi could read it.
# Usage: bench/syslog.sh [MESSAGES]   (default 1000000)
set -eu
cd "$(dirname "$0")/.."
cargo build --release -p hikeshi --example syslog_throughput
target/release/examples/syslog_throughput "${1:-1000000}"
