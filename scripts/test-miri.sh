#!/usr/bin/env bash
# Miri on shivya-ffi's pointer-handling unit tests (they need no socket). Needs a nightly
# toolchain with the miri component; installs the component when the toolchain exists.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "no nightly toolchain: Miri skipped (install one with: rustup toolchain install nightly)"
    exit 0
fi
if ! rustup +nightly component list --installed | grep -q '^miri'; then
    rustup +nightly component add miri rust-src
fi
say "cargo +nightly miri test -p shivya-ffi --lib"
start=$(date +%s)
MIRIFLAGS="-Zmiri-strict-provenance" cargo +nightly miri test -q -p shivya-ffi --lib
echo "miri took $(( $(date +%s) - start )) s"
