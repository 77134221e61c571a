# Shared helpers for the project's scripts. Source it; do not run it.

say() { printf '\n=== %s\n' "$*"; }

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
