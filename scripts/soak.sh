#!/usr/bin/env bash
# Soak: the example's two services under steady load on loopback while LocalOpik injects
# faults (503, 429 + Retry-After, dropped connections, slow answers). Bounded in time, stops
# by itself, and reports requests served, spans delivered and dropped, and peak memory.
# Usage: scripts/soak.sh [SECONDS]   (default 180)
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release --quiet --example axum_client_server -- soak --seconds "${1:-180}"
