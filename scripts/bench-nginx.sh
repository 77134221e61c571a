#!/usr/bin/env bash
# The real-traffic benchmark behind docs/PERFORMANCE.md: two nginx instances, three
# backends with 4 slots each, an open-loop Poisson client, round-robin / least_conn /
# random two least_conn / shivya, three scenarios, interleaved runs (several minutes).
#   scripts/bench-nginx.sh [--runs N] [--rate R] [--out DIR]   (default DIR: $TARGET/bench-nginx)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need go golang-go
./examples/nginx/build.sh
python3 tests/nginx/bench_nginx.py "$@"
