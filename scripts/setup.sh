#!/usr/bin/env bash
# Make this checkout runnable on a fresh Debian machine that has only Python >= 3.11:
#   1. a virtualenv in .venv (python3 -m venv; as root, apt-get installs python3-venv if
#      the venv module is missing);
#   2. fleet and its test dependencies installed into it (`pip install -e '.[test,dashboard]'`),
#      skipped when pyproject.toml has not changed since the last install;
#   3. a redis-server binary (tests and the demo start their own servers on free
#      loopback ports; a system redis that apt may have started is left alone). As root
#      it comes from Debian's packages; otherwise this says what to run and fails.
#   4. with --browser (scripts/test.sh passes it): Debian's chromium, for the dashboard's
#      browser test; as root from Debian's packages, otherwise this says what to run and the
#      test is skipped, saying why.
# scripts/test.sh and scripts/demo.sh run it first (`bash scripts/setup.sh`; not meant to be
# sourced). A second run takes well under a second.
# PYTHON=/path/to/python3.11 picks the interpreter (default: python3, else python3.11+).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd -P)

say() { echo "setup: $*" >&2; }
die() { echo "setup: error: $*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

# Two setups at once (test.sh and demo.sh in two terminals) would race on .venv.
if command -v flock >/dev/null 2>&1; then
    exec 9<"$ROOT/scripts/setup.sh"
    flock 9
fi

apt_install() {  # apt_install PACKAGE WHY: root only; the caller has checked
    command -v apt-get >/dev/null 2>&1 || die "$2, and this is not a Debian-like system: install $1 and rerun"
    say "$2: installing $1 from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq </dev/null || die "apt-get update failed (see above); check the network and apt sources"
    # -qq keeps the log short; apt-get still prints errors on stderr.
    apt-get install -y -qq --no-install-recommends "$1" </dev/null >/dev/null \
        || die "apt-get install $1 failed (see above)"
}

python_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; }

find_python() {
    if [ -n "${PYTHON:-}" ]; then
        python_ok "$PYTHON" || die "PYTHON=$PYTHON is not a Python >= 3.11"
        echo "$PYTHON"
        return
    fi
    for candidate in python3 python3.11 python3.12 python3.13; do
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
            echo "$candidate"
            return
        fi
    done
    die "fleet needs Python >= 3.11; install it (Debian 12: apt-get install python3) or set PYTHON=/path/to/python3.11"
}

# -- 1. the virtualenv ------------------------------------------------------------
STAMP=.venv/.fleet-setup
want_stamp() {
    # The repo path is in the stamp because a venv is not relocatable (its scripts name it).
    printf 'root %s\npyproject %s\n' "$ROOT" "$(sha256sum pyproject.toml | cut -d' ' -f1)"
}
want=$(want_stamp)

if [ -r "$STAMP" ] && ! grep -qxF "root $ROOT" "$STAMP"; then
    say ".venv was made for another copy of this repo (a venv cannot move); recreating it"
    rm -rf .venv
fi

# A .venv without bin/pip is a half-made one (ensurepip was missing): make it again.
# -L as well as -e: the interpreter a venv links to may be unreadable to this user.
exists() { [ -e "$1" ] || [ -L "$1" ]; }
if ! exists .venv/bin/python || ! exists .venv/bin/pip; then
    PY=$(find_python)
    rm -rf .venv
    if ! "$PY" -m venv .venv >/dev/null 2>&1; then
        rm -rf .venv
        # Debian ships venv/ensurepip apart from python3, in python3-venv.
        if is_root; then
            apt_install python3-venv "'$PY -m venv' does not work"
        else
            die "'$PY -m venv' does not work; run: sudo apt-get install python3-venv   (then rerun this)"
        fi
        "$PY" -m venv .venv || die "'$PY -m venv .venv' still fails after installing python3-venv"
    fi
fi

# -- 2. fleet and its test dependencies -----------------------------------------------
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ] || [ ! -x .venv/bin/fleet ]; then
    say "installing fleet and its test dependencies into .venv (first time: about a minute)"
    rm -f "$STAMP"
    PIP_NO_INPUT=1 .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,dashboard]' \
        || die "pip install -e '.[test,dashboard]' failed (see above); fix it and rerun, the install is retried"
    echo "$want" > "$STAMP"
fi

# -- 3. redis-server ----------------------------------------------------------------
have_redis_server() {  # where scheduler/embedded_redis.py looks: $PATH, /usr/bin, /usr/local/bin
    local found
    for found in "$(command -v redis-server 2>/dev/null || true)" /usr/bin/redis-server /usr/local/bin/redis-server; do
        if [ -n "$found" ] && [ -f "$found" ] && [ -x "$found" ]; then return 0; fi
    done
    return 1
}
if ! have_redis_server; then
    if is_root; then
        apt_install redis-server "redis-server is missing"
        have_redis_server || die "redis-server is still missing after apt-get install redis-server"
    else
        die "redis-server is missing; run: sudo apt-get install redis-server   (then rerun this)"
    fi
fi

# -- 4. chromium, for the browser tests (--browser) ----------------------------------------
if [ "${1:-}" = "--browser" ] && ! command -v chromium >/dev/null 2>&1; then
    if is_root && command -v apt-get >/dev/null 2>&1; then
        say "the dashboard's browser test needs chromium: installing it from Debian's packages (a minute or two)"
        export DEBIAN_FRONTEND=noninteractive
        if ! { apt-get update -qq </dev/null &&
               apt-get install -y -qq --no-install-recommends chromium </dev/null >/dev/null; }; then
            say "apt-get install chromium failed (see above): the browser test will be skipped"
        fi
    else
        say "chromium is missing, so the dashboard's browser test will be skipped;" \
            "to run it: sudo apt-get install chromium"
    fi
fi
