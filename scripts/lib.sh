# Shared helpers for the project's scripts. Source it; do not run it.

say() { printf '\n=== %s\n' "$*"; }

# TARGET: where every build and script of the project writes, cargo's target directory
# (CARGO_TARGET_DIR when set, else target/ at the repository root), as an absolute path.
# Nothing is written into the source tree outside it. Exported as SHIVYA_TARGET_DIR for
# the Python, Go and Kotlin builds and tests.
shivya_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$shivya_root/target}"
case "$TARGET" in /*) ;; *) TARGET="$PWD/$TARGET" ;; esac
mkdir -p "$TARGET"
TARGET="$(cd "$TARGET" && pwd)"
export SHIVYA_TARGET_DIR="$TARGET"
# No __pycache__ directories in the source tree.
export PYTHONDONTWRITEBYTECODE=1

# apt_install PACKAGE...: installs Debian packages (as root, or through sudo).
apt_install() {
    local sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    say "installing $*"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# need CMD PACKAGE: installs Debian PACKAGE when CMD is missing.
need() {
    local cmd=$1 pkg=$2
    if command -v "$cmd" >/dev/null 2>&1; then
        return 0
    fi
    apt_install "$pkg"
}
