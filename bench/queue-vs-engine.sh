#!/usr/bin/env bash
# What the I/O queue costs on a real ring: 4 KiB random O_DIRECT reads at depth 64 through the
# unconfigured queue and through the closed-loop engine alone, alternating rounds in one process.
# Goal: median IOPS ratio queue/engine >= 0.97.
#
# Usage: bench/queue-vs-engine.sh [DIR] [ROUNDS] [SECONDS]   (defaults: /dev/shm, 5, 2)
# The file system of DIR must accept O_DIRECT (tmpfs does on recent kernels) and hold 256 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -q -p scheduler --example queue_vs_engine
exec "$CARGO_TARGET_DIR/release/examples/queue_vs_engine" "${1:-/dev/shm}" "${2:-5}" "${3:-2}"
