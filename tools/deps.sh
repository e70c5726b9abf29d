#!/bin/sh
# Make sure the build's Debian packages are present.
#
#   tools/deps.sh            the packages every build needs (check, uthash-dev, pkg-config,
#                            libhiredis-dev, zlib1g-dev, libssl-dev, openssl,
#                            libxml2-dev for the planets apps)
#   tools/deps.sh PKG...     those plus PKG... (e.g. clang, python3-twisted)
#
# Missing packages are installed with apt-get when we run as root; otherwise we stop
# with the exact apt-get line to run. Set TWISTC_NO_INSTALL=1 to never install.
set -u

want="check uthash-dev pkg-config libhiredis-dev zlib1g-dev libssl-dev openssl libxml2-dev $*"
missing=""
for pkg in $want; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed'; then
        missing="$missing $pkg"
    fi
done
[ -z "$missing" ] && exit 0

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps: not a Debian system; install Check, uthash and pkg-config yourself:$missing" >&2
    exit 1
fi

if [ "$(id -u)" = 0 ] && [ "${TWISTC_NO_INSTALL:-0}" != 1 ]; then
    echo "deps: installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine has empty package lists; update once, then install.
    if apt-get install -y -qq $missing >/dev/null 2>&1 ||
       { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $missing >/dev/null; }; then
        exit 0
    fi
    echo "deps: apt-get could not install:$missing" >&2
    exit 1
fi

echo "deps: missing Debian packages. Run:" >&2
echo "    sudo apt-get install -y$missing" >&2
exit 1
