#!/usr/bin/env bash
# Packaging check with cargo-c: `cargo cinstall` libshivya into a staging prefix, then build
# and run the C host example with nothing but `pkg-config --cflags --libs shivya`.
#   scripts/test-capi.sh            # needs cargo-c on PATH
#   scripts/test-capi.sh --install  # installs the pinned cargo-c first (slow: ~10 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# cargo-c 0.10.24 is the newest release that builds with Rust 1.95.
CARGO_C_VERSION="0.10.24+cargo-0.98.0"
if [ "${1:-}" = "--install" ] && ! command -v cargo-cbuild >/dev/null 2>&1; then
    say "installing cargo-c $CARGO_C_VERSION"
    cargo install cargo-c --version "$CARGO_C_VERSION" --locked
fi
if ! command -v cargo-cbuild >/dev/null 2>&1; then
    echo "cargo-c is not installed; run: scripts/test-capi.sh --install" >&2
    exit 1
fi
need pkg-config pkg-config

prefix="$TARGET/capi-root"
rm -rf "$prefix"
say "cargo cinstall --prefix $prefix"
cargo cinstall -p shivya-ffi --release --prefix "$prefix" --libdir "$prefix/lib"
ls "$prefix/lib" "$prefix/include" "$prefix/lib/pkgconfig"
cmp include/shivya.h "$prefix/include/shivya.h"
# A versioned shared library: the SONAME carries the major version, and the unversioned
# name is a link to it (what -lshivya finds).
need readelf binutils
soname=$(readelf -d "$prefix/lib/libshivya.so" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
echo "SONAME: $soname"
case "$soname" in libshivya.so.[0-9]*) ;; *) echo "libshivya.so has no versioned SONAME ($soname)" >&2; exit 1 ;; esac
[ -e "$prefix/lib/$soname" ] || { echo "$soname is not installed beside libshivya.so" >&2; exit 1; }

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
say "pkg-config --cflags --libs shivya: $(pkg-config --cflags --libs shivya)"
out="$TARGET/c/host-pkgconfig"
make -s -C examples/c PKG_CONFIG=1 OUT="$out" LDFLAGS="-Wl,-rpath,$prefix/lib"
# The Makefile's pkg-config path does not set an rpath; point the loader at the prefix.
LD_LIBRARY_PATH="$prefix/lib" "$out" 127.0.0.1:0 "" 1200 | tail -1
echo "cargo-c packaging: ok"
