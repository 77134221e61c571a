#!/usr/bin/env bash
# Go binding: cgo over include/shivya.h, statically linked with $TARGET/release/libshivya.a
# (CARGO_TARGET_DIR or target/). Go's caches stay in their usual places, outside the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need go golang-go
need gcc gcc
cargo build -q --release -p shivya-ffi
export CGO_LDFLAGS="$TARGET/release/libshivya.a"
say "go vet + go test (bindings/go)"
(cd bindings/go && test -z "$(gofmt -l .)" || { gofmt -l . >&2; echo "gofmt needed" >&2; exit 1; })
(cd bindings/go && go vet ./... && go test -count=1 -v ./... 2>&1 | grep -E '^(=== RUN|--- |ok|FAIL|PASS)|RSS|discovery|converged|p99')
say "go example"
(cd examples/go && go run .)
# The memberlist harness of `shivya-bench memberlist` (the side-by-side benchmark runs
# behind its own command, not here): it must stay formatted, vetted and buildable.
say "memberlist harness: gofmt, vet, build"
(cd shivya-bench/memberlist && test -z "$(gofmt -l .)" && go vet . && go build -o "$TARGET/memberlist/memberlist-harness" .)
