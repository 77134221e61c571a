#!/usr/bin/env bash
# Coverage-guided fuzzing with cargo-fuzz (libFuzzer, nightly): the frame decoder, a node
# fed datagram sequences, and the C ABI reconciler. Corpora are seeded from PROTOCOL.md.
#   scripts/fuzz.sh                # 600 s per target (the long run)
#   scripts/fuzz.sh --seconds 30   # the short run CI does
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
seconds=600
if [ "${1:-}" = "--seconds" ]; then seconds=$2; fi
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "no nightly toolchain: fuzzing skipped (cargo-fuzz needs nightly)"
    exit 0
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# Build, corpora and crash artifacts all live under $TARGET/fuzz.
corpus="$TARGET/fuzz/corpus"
python3 fuzz/make_corpus.py "$corpus"
fuzz_run() { cargo +nightly fuzz run --fuzz-dir fuzz --target-dir "$TARGET/fuzz/build" "$@"; }
for t in decode_frame node_datagrams ffi_reconcile; do
    if [ -d "fuzz/regressions/$t" ]; then
        # Inputs that once crashed a target: each must now pass.
        say "fuzz $t: replaying fuzz/regressions/$t"
        fuzz_run "$t" "fuzz/regressions/$t" -- -runs=0 2>&1 | grep -E "Executed|ERROR|SUMMARY" || true
    fi
    say "fuzz $t for $seconds s"
    artifacts="$TARGET/fuzz/artifacts/$t"
    mkdir -p "$artifacts"
    fuzz_run "$t" "$corpus/$t" -- -artifact_prefix="$artifacts/" \
        -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 2>&1 \
        | grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss|Done|==.*ERROR|SUMMARY)" || true
    # cargo fuzz exits non-zero on a crash; grep hides that, so check the artifacts too.
    if ls "$artifacts"/crash-* >/dev/null 2>&1; then
        echo "fuzz $t found a crash: see $artifacts" >&2
        exit 1
    fi
done
echo "fuzzing: no crash"
