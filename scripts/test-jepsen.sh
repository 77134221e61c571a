#!/usr/bin/env bash
# Jepsen-style runs: 5 shivyad processes, writes under partitions, isolation and SIGKILL +
# restart, then a checker (tests/jepsen/check.py). History and final states are kept in
# $TARGET/jepsen/ (CARGO_TARGET_DIR or target/). First on loopback, then (when this
# machine allows `ip netns`, e.g. as root) with each daemon in its own network namespace
# and links taken down too.
#   scripts/test-jepsen.sh [--seconds N]   (default 20 per run)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
cargo build -q --release -p shivyad
say "Jepsen-style run on loopback"
python3 tests/jepsen/run.py "$@"
probe="shvprobe$$"
if command -v ip >/dev/null 2>&1 && ip netns add "$probe" 2>/dev/null; then
    ip netns del "$probe"
    say "Jepsen-style run in network namespaces"
    python3 tests/jepsen/run.py --netns "$@"
else
    echo "ip netns is not available here (needs root and iproute2): namespace run skipped"
fi
