#!/usr/bin/env bash
# The nginx module: build it against Debian's nginx (installing nginx and nginx-dev when
# missing), run the two-instance test and a quick run of the real-traffic benchmark
# (tests/nginx/bench_nginx.py; the published run is scripts/bench-nginx.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
./examples/nginx/build.sh
say "two nginx instances sharing one mesh"
python3 tests/nginx/test_nginx.py
need go golang-go
say "the real-traffic benchmark's harness (quick: slow backend, least_conn vs shivya)"
python3 tests/nginx/bench_nginx.py --quick --scenarios slow --policies least_conn,shivya --check
