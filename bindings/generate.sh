#!/usr/bin/env bash
# Regenerates the UniFFI bindings (Python, Kotlin, Swift) from the built libshivya.
#   bindings/generate.sh           # write into bindings/<lang>/
#   bindings/generate.sh --check   # generate into a temp dir and fail if anything differs
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

cargo build -q --release -p shivya-ffi -p uniffi-bindgen
lib="$TARGET/release/libshivya.so"
bindgen="$TARGET/release/uniffi-bindgen"

gen() { # gen OUT_ROOT
    local root=$1
    # --no-format: the output must not depend on which formatters happen to be installed.
    "$bindgen" generate --no-format --language python --out-dir "$root/python/shivya" "$lib" >/dev/null
    "$bindgen" generate --no-format --language kotlin --out-dir "$root/kotlin/src/main/kotlin" "$lib" >/dev/null
    "$bindgen" generate --no-format --language swift --out-dir "$root/swift/Sources/ShivyaFFI" "$lib" >/dev/null
    # SwiftPM wants the C module's header and modulemap in their own target.
    mkdir -p "$root/swift/Sources/shivyaFFI/include"
    mv "$root/swift/Sources/ShivyaFFI/shivyaFFI.h" "$root/swift/Sources/shivyaFFI/include/shivyaFFI.h"
    mv "$root/swift/Sources/ShivyaFFI/shivyaFFI.modulemap" "$root/swift/Sources/shivyaFFI/include/module.modulemap"
    mkdir -p "$root/swift/Sources/Shivya"
    mv "$root/swift/Sources/ShivyaFFI/shivya.swift" "$root/swift/Sources/Shivya/shivya.swift"
    rmdir "$root/swift/Sources/ShivyaFFI"
}

files=(
    python/shivya/shivya.py
    kotlin/src/main/kotlin/uniffi/shivya/shivya.kt
    swift/Sources/Shivya/shivya.swift
    swift/Sources/shivyaFFI/include/shivyaFFI.h
    swift/Sources/shivyaFFI/include/module.modulemap
)

if [ "${1:-}" = "--check" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    gen "$tmp"
    status=0
    for f in "${files[@]}"; do
        if ! cmp -s "$tmp/$f" "bindings/$f"; then
            echo "bindings/$f is stale: run bindings/generate.sh and commit the result" >&2
            status=1
        fi
    done
    [ $status = 0 ] && echo "generated bindings are current"
    exit $status
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gen "$tmp"
for f in "${files[@]}"; do
    mkdir -p "bindings/$(dirname "$f")"
    cp "$tmp/$f" "bindings/$f"
done
echo "bindings regenerated"
