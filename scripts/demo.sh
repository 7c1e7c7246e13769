#!/usr/bin/env bash
# The README's demo command: install what is missing (scripts/setup.sh), then run the main
# job end to end with `fleet demo` (a private redis-server, a receiver, real and simulated
# workers, small real trainings). Arguments go to `fleet demo` (see `fleet demo --help`).
#
# Where `fleet demo` is not available (or FLEET_DEMO_FALLBACK=1), a shorter tour instead:
# a private redis-server on a free loopback port with its own temp dir, `fleet load` of
# manifests/example.toml, `fleet status`, `fleet jobs`, and a second `fleet load` showing
# that an unchanged reload writes nothing. The server and its dir are removed on every
# exit path; nothing is left running.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh

if [ "${FLEET_DEMO_FALLBACK:-0}" != 1 ] && .venv/bin/fleet demo --help >/dev/null 2>&1; then
    exec .venv/bin/fleet demo "$@"
fi

[ $# -eq 0 ] || echo "demo: fleet demo is not available here; ignoring arguments: $*" >&2
fleet=.venv/bin/fleet
manifest=manifests/example.toml

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fleet-demo.XXXXXX")
redis_pid=
cleanup() {
    if [ -n "$redis_pid" ]; then
        kill "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

redis_bin=$(command -v redis-server || echo /usr/bin/redis-server)
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$redis_bin" --port "$port" --bind 127.0.0.1 --dir "$tmp" --save '' --appendonly no --daemonize no \
    --logfile "$tmp/redis.log" </dev/null &
redis_pid=$!
export FLEET_REDIS_URL="redis://127.0.0.1:$port/0"
export FLEET_NAMESPACE=fleet
.venv/bin/python - "$FLEET_REDIS_URL" <<'PY' || { tail -n 20 "$tmp/redis.log" >&2 || true; exit 1; }
import sys, time, redis
client, deadline = redis.Redis.from_url(sys.argv[1]), time.monotonic() + 10
while True:
    try:
        client.ping()
        break
    except redis.ConnectionError:
        if time.monotonic() > deadline:
            sys.exit("demo: redis-server did not start within 10 s")
        time.sleep(0.05)
PY

step() { printf '\n$ %s\n' "$*"; }
echo "demo: a private redis-server on 127.0.0.1:$port (temp dir $tmp, removed at exit)"
step fleet load "$manifest";  "$fleet" load "$manifest"
step fleet status;            "$fleet" status
step fleet jobs;              "$fleet" jobs
step fleet load "$manifest" "  # again: unchanged, nothing written"
"$fleet" load "$manifest"
printf '\ndemo: done; workers would now claim these jobs (`fleet worker`, see README)\n'
