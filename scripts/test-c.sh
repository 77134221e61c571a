#!/usr/bin/env bash
# The C ABI from C and C++: header freshness is a Rust test; here the header must compile
# as strict C99 and C++, the C tests run under valgrind with zero leaks and zero invalid
# accesses, and the C and C++ examples build and run.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

need gcc gcc
need g++ g++
need make make
need valgrind valgrind

out="$TARGET/c"
mkdir -p "$out"
say "building libshivya (release)"
cargo build -q -p shivya-ffi --release
lib="$TARGET/release"

STRICT=(-Wall -Wextra -Werror -pedantic)

say "header compiles as C99 and C++"
gcc -std=c99 "${STRICT[@]}" -Iinclude tests/c/header_compiles.c -o "$out/header_c" "$lib/libshivya.a" -lpthread -ldl -lm
g++ -std=c++11 "${STRICT[@]}" -Iinclude tests/c/header_compiles.cpp -o "$out/header_cpp" "$lib/libshivya.a" -lpthread -ldl -lm
"$out/header_c"
"$out/header_cpp"

say "C tests under valgrind (static link)"
gcc -std=c99 -g -pthread "${STRICT[@]}" -Iinclude tests/c/test_ffi.c -o "$out/test_ffi" "$lib/libshivya.a" -lpthread -ldl -lm
start=$(date +%s)
valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect --track-origins=yes "$out/test_ffi"
gcc -std=c99 -g "${STRICT[@]}" -Iinclude examples/c/host.c -o "$out/host_static" "$lib/libshivya.a" -lpthread -ldl -lm
valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect "$out/host_static" 127.0.0.1:0 "" 1500 | tail -1
echo "valgrind runs took $(( $(date +%s) - start )) s"

say "C tests with AddressSanitizer and UndefinedBehaviorSanitizer"
start=$(date +%s)
gcc -std=c99 -g -pthread -fsanitize=address,undefined -fno-omit-frame-pointer "${STRICT[@]}" -Iinclude \
    tests/c/test_ffi.c -o "$out/test_ffi_asan" "$lib/libshivya.a" -lpthread -ldl -lm
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "$out/test_ffi_asan"
gcc -std=c99 -g -fsanitize=address,undefined "${STRICT[@]}" -Iinclude examples/c/host.c -o "$out/host_asan" \
    "$lib/libshivya.a" -lpthread -ldl -lm
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 "$out/host_asan" 127.0.0.1:0 "" 1200 | tail -1
echo "sanitizer runs took $(( $(date +%s) - start )) s"

say "C host example (links libshivya.so)"
make -s -C examples/c OUT="$out/host" ROOT="$PWD" CARGO_TARGET_DIR="$TARGET" >/dev/null
"$out/host" 127.0.0.1:0 "" 1500 | tail -2

say "C++ RAII example"
g++ -std=c++14 "${STRICT[@]}" -Iinclude -Iexamples/cpp examples/cpp/main.cpp -o "$out/cpp_example" \
    -L"$lib" -Wl,-rpath,"$lib" -lshivya
"$out/cpp_example"

# cargo-c packaging: installs the pinned cargo-c when missing (about ten minutes, once per
# machine), then cinstall + pkg-config + a C host.
./scripts/test-capi.sh --install
echo "C ABI tests: ok"
