"""The no-op function plain rq runs in bench/dispatch.py (importable by rq's work horse)."""


import subprocess


def noop() -> None:
    return None


def run_true() -> int:
    """The work a fleet horse does for a command job, minus fleet: exec /bin/true and wait."""
    return subprocess.run(["true"], check=True).returncode
