#!/usr/bin/env bash
# Builds ngx_http_shivya_module.so against the installed Debian nginx (nginx-dev ships the
# module build tree in /usr/share/nginx/src). Output: target/nginx/ngx_http_shivya_module.so
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/scripts/lib.sh"
need nginx nginx
if [ ! -d /usr/share/nginx/src ]; then apt_install nginx-dev; fi
cd "$root"
cargo build -q --release -p shivya-ffi
build="$root/target/nginx/build"
rm -rf "$build"
mkdir -p "$build"
cp -r /usr/share/nginx/src/. "$build/"
cd "$build"
# The same flags Debian built nginx with, so the module is binary-compatible.
. ./conf_flags
./configure "${NGX_CONF_FLAGS[@]}" --add-dynamic-module="$root/examples/nginx" >/dev/null
make -s -f objs/Makefile modules >/dev/null
cp objs/ngx_http_shivya_module.so "$root/target/nginx/"
echo "built $root/target/nginx/ngx_http_shivya_module.so"
