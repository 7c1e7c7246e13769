#!/usr/bin/env bash
# Run fleet's whole test suite (unit, real redis-server, real processes, reliability).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
