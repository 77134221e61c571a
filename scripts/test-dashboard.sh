#!/usr/bin/env bash
# The shivyad dashboard in a real headless Chromium. Installs Debian's chromium and
# chromium-driver and Selenium (in the project's virtualenv) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    apt_install chromium chromium-driver
fi
venv="$TARGET/py-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q selenium
cargo build -q --release -p shivyad
say "dashboard in headless Chromium"
"$venv/bin/python" tests/dashboard/test_dashboard.py
