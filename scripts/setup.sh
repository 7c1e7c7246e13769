#!/usr/bin/env bash
# Make this checkout runnable on a fresh Debian machine with only Python 3.11:
# a .venv with fleet and its test dependencies, and a redis-server binary.
# Idempotent: a second run with an unchanged pyproject.toml skips pip.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else return 1; fi
}

apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "setup: $* missing and this is not a Debian-like system; install $* and rerun" >&2
        exit 1
    fi
    echo "setup: installing $* from Debian's packages" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || {
        echo "setup: need root to install $*; run: sudo apt-get install -y $*" >&2; exit 1; }
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "setup: fleet needs Python >= 3.11 as '$PYTHON' (set PYTHON=/path/to/python3.11)" >&2
    exit 1
fi

if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv >/dev/null 2>&1; then
        rm -rf .venv
        apt_install python3-venv
        "$PYTHON" -m venv .venv
    fi
fi

stamp=.venv/.fleet-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing fleet and its test dependencies into .venv" >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
    echo "$want" > "$stamp"
fi

if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; then
    apt_install redis-server
fi
