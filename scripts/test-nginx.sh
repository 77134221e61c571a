#!/usr/bin/env bash
# The nginx module: build it against Debian's nginx (installing nginx and nginx-dev when
# missing) and run the two-instance test.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
./examples/nginx/build.sh
say "two nginx instances sharing one mesh"
python3 tests/nginx/test_nginx.py
