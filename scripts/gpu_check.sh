#!/usr/bin/env bash
# The GPU checks, for a machine with a real NVIDIA GPU (a lent device machine, a lab box):
# the `gpu`-marked tests, with what the real GPU reported printed. Not part of CI (which has
# no GPU: the tests skip there). Usage: bash scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh >/dev/null
nvidia-smi -L || true
exec timeout 300 .venv/bin/python -m pytest -q -p no:cacheprovider -m gpu -s tests/test_gpu_real.py
