#!/usr/bin/env bash
# Python binding: pip-installs bindings/python (which builds libshivya with cargo) into a
# project-local virtualenv and runs its pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need python3 python3
venv=target/py-venv
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
"$venv/bin/pip" install -q ./bindings/python pytest
# Test the installed package, not the source tree.
cd bindings/python/tests
"../../../$venv/bin/python" -m pytest -q -p no:cacheprovider .
cd ../../..
say "python example"
"$venv/bin/python" examples/python/mesh.py
