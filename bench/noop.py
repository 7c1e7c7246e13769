"""The no-op function plain rq runs in bench/dispatch.py (importable by rq's work horse)."""


def noop() -> None:
    return None
