#!/usr/bin/env bash
# Runs every benchmark of BENCHMARKS.md, one after the other (never two at once: they share
# two cores), and keeps each output under target/bench-logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
logs=target/bench-logs
mkdir -p "$logs"
run() {
    local name=$1
    shift
    echo "== $name: $*"
    "$@" 2>&1 | tee "$logs/$name.log"
}
run layer cargo bench --features testing,axum,otel --bench layer
run store cargo bench --features testing --bench store
run python_peer cargo bench --features testing --bench python_peer
run dead_backend cargo bench --features testing --bench dead_backend
run slow_backend cargo bench --features testing,axum --bench slow_backend
run tracing_layer cargo bench --features testing,tracing --bench tracing_layer
python3 scripts/criterion_summary.py | tee "$logs/criterion_summary.log"
