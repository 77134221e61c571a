#!/usr/bin/env bash
# The main job: Shivya against the local policies a user would pick instead, live.
# Eight balancers, each embedding a Shivya node (one mesh over UDP on 127.0.0.1), spread
# one open-loop load over six backends with four slots each; backend 0 is 5x slower,
# backend 1 turns 5x slower half-way, and nobody configured either. The same load runs
# side by side through least-requests, random-two least-requests and round-robin.
# A live view while it runs; then a table, and a chart in $TARGET/demo/demo.svg.
# Takes about 70 s after the build; any option of shivya-demo passes through
# (--seconds 300 for a longer run, --seed N, --load 0.7, --help).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
say "building (release)"
cargo build -q --release -p shivya-bench --bin shivya-demo
exec "$TARGET/release/shivya-demo" --out "$TARGET/demo" "$@"
