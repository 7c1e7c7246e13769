#!/usr/bin/env bash
# Run fleet's main job end to end: a demo fleet on this machine with an embedded Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/fleet demo "$@"
