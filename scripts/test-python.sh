#!/usr/bin/env bash
# Python binding: pip-installs bindings/python (which builds libshivya with cargo) into a
# project-local virtualenv and runs its pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need python3 python3
venv="$TARGET/py-venv"
if [ ! -x "$venv/bin/python" ]; then
    if ! python3 -m venv "$venv" 2>/dev/null; then
        # Debian splits venv support into its own package.
        rm -rf "$venv"
        apt_install python3-venv
        python3 -m venv "$venv"
    fi
fi
say "pip install ./bindings/python"
"$venv/bin/pip" install -q --upgrade pip >/dev/null
# Build from a copy under $TARGET: pip builds a local directory in place, and its build/ and
# egg-info must not land in the source tree.
cargo build -q --release -p shivya-ffi
rm -rf "$TARGET/py-src"
mkdir -p "$TARGET/py-src"
cp -r bindings/python/pyproject.toml bindings/python/setup.py bindings/python/shivya "$TARGET/py-src/"
rm -f "$TARGET/py-src/shivya/"libshivya.*
SHIVYA_LIB="$TARGET/release/libshivya.so" "$venv/bin/pip" install -q "$TARGET/py-src" pytest
# Test the installed package, not the source tree.
cd bindings/python/tests
"$venv/bin/python" -m pytest -q -p no:cacheprovider .
cd ../../..
say "python example"
"$venv/bin/python" examples/python/mesh.py
