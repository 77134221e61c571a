#!/usr/bin/env bash
# Runs every test of the project. This is the README's test command and what CI runs.
# Each stage installs what it needs through the project's own scripts; nothing by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib.sh

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found; this project needs a Rust toolchain (rustup) on PATH" >&2
    exit 1
fi

# Everything the tests build or write goes under $TARGET (CARGO_TARGET_DIR or target/):
# what else appears in the source tree is reported at the end as a failure.
tree_state() { git status --porcelain --ignored 2>/dev/null | grep -v -E '^!! target/$' | sort || true; }
before_tree="$(tree_state)"

say "Rust: unit, property, integration and doc tests (benches run once in test mode)"
cargo test --workspace --all-targets
cargo test --workspace --doc

say "The main job, short: scripts/demo.sh --seconds 8 (live view, table, chart)"
./scripts/demo.sh --seconds 8 --live > "$TARGET/demo-check.log"
grep -q "requests sent to each backend" "$TARGET/demo-check.log"
grep -q "^| shivya |" "$TARGET/demo-check.log"
test -s "$TARGET/demo/demo.svg"
echo "main job: ok ($(grep -c $'\e\[2J' "$TARGET/demo-check.log") live frames, chart in $TARGET/demo/demo.svg)"

say "C ABI: header in C99/C++, C tests under valgrind, C and C++ examples"
./scripts/test-c.sh

say "Bindings: generated sources current, then Python, Kotlin and Go scenarios"
./bindings/generate.sh --check
./scripts/test-python.sh
./scripts/test-kotlin.sh
./scripts/test-go.sh

say "shivyad dashboard in headless Chromium"
./scripts/test-dashboard.sh

say "nginx module: two instances sharing one mesh"
./scripts/test-nginx.sh

say "Miri on the C ABI's pointer handling"
./scripts/test-miri.sh

say "Fuzzing, short run (30 s per target; scripts/fuzz.sh runs 600 s each)"
./scripts/fuzz.sh --seconds 30

say "Jepsen-style test: partitions, isolation, SIGKILL and restart of real daemons"
./scripts/test-jepsen.sh --seconds 20

say "Nothing written into the source tree outside $TARGET"
after_tree="$(tree_state)"
if [ "$after_tree" != "$before_tree" ]; then
    echo "the tests wrote into the source tree:" >&2
    diff <(echo "$before_tree") <(echo "$after_tree") >&2 || true
    exit 1
fi
echo "source tree unchanged"
