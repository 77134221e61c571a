#!/usr/bin/env bash
# The main job: a live local mesh.
#  1. Five nodes in one process on 127.0.0.1 (the live_mesh example): discovery, load
#     reports, a partition, the heal, and every node settling to the same routes.
#  2. Three shivyad daemons on 127.0.0.1:8085-8087 with the dashboard of the first at
#     http://127.0.0.1:9002/ and their status printed every few seconds.
#     Runs until Ctrl-C (or for --seconds N), then stops the daemons cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
seconds=0
if [ "${1:-}" = "--seconds" ]; then seconds=${2:-0}; fi

say "building (release)"
cargo build -q --release -p shivya-core --example live_mesh -p shivyad

say "part 1: five nodes in one process, partition and heal"
"$TARGET/release/examples/live_mesh"

say "part 2: three shivyad daemons with a dashboard"
bin="$TARGET/release/shivyad"
run_dir=$(mktemp -d)
pids=()
stop() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$run_dir"
}
trap stop EXIT
trap 'exit 0' INT TERM
"$bin" --port 8085 --vertices 3 --vertex 0 --socket "$run_dir/0.sock" --visualize --ws-port 9002 --log-level warn &
pids+=($!)
sleep 0.3
for i in 1 2; do
    "$bin" --port $((8085 + i)) --vertices 3 --vertex $i --socket "$run_dir/$i.sock" \
        --peer 127.0.0.1:8085 --log-level warn &
    pids+=($!)
done
echo "dashboard: http://127.0.0.1:9002/   (Ctrl-C to stop)"
start=$(date +%s)
while :; do
    sleep 3
    for i in 0 1 2; do
        echo "--- shivyad status --socket $run_dir/$i.sock"
        "$bin" status --socket "$run_dir/$i.sock" | sed -n '1,2p;4,6p;11,15p' || true
    done
    if [ "$seconds" -gt 0 ] && [ $(( $(date +%s) - start )) -ge "$seconds" ]; then break; fi
done
