#!/usr/bin/env bash
# The README's test command: install what is missing (scripts/setup.sh, chromium too), then run every
# test (unit, real redis-server, real worker processes, reliability) from the repo root.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k receiver -x`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh --browser
exec .venv/bin/python -m pytest -q "$@"
