#!/usr/bin/env bash
# Jepsen-style run: 5 shivyad processes, writes under partitions, isolation and SIGKILL +
# restart, then a checker (tests/jepsen/check.py). History and final states are kept in
# target/jepsen/. Pass --seconds N for a longer run (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
cargo build -q --release -p shivyad
say "Jepsen-style partitions and crashes with real shivyad processes"
python3 tests/jepsen/run.py "$@"
