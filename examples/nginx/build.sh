#!/usr/bin/env bash
# Builds ngx_http_shivya_module.so against the installed Debian nginx (nginx-dev ships the
# module build tree in /usr/share/nginx/src). Output: $TARGET/nginx/ngx_http_shivya_module.so,
# where $TARGET is CARGO_TARGET_DIR or target/ (scripts/lib.sh); nothing else is written.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/scripts/lib.sh"
need nginx nginx
if [ ! -d /usr/share/nginx/src ]; then apt_install nginx-dev; fi
cd "$root"
cargo build -q --release -p shivya-ffi
build="$TARGET/nginx/build"
# The module's config links libshivya.a from here.
export SHIVYA_LIB_DIR="$TARGET/release"
rm -rf "$build"
mkdir -p "$build"
cp -r /usr/share/nginx/src/. "$build/"
cd "$build"
# The same flags Debian built nginx with, so the module is binary-compatible.
. ./conf_flags
./configure "${NGX_CONF_FLAGS[@]}" --add-dynamic-module="$root/examples/nginx" >/dev/null
make -s -f objs/Makefile modules >/dev/null
cp objs/ngx_http_shivya_module.so "$TARGET/nginx/"
echo "built $TARGET/nginx/ngx_http_shivya_module.so"
