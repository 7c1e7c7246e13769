"""One-line log records on stderr, shaped for journald.

Under systemd (``JOURNAL_STREAM`` set) journald stamps time and unit itself, so
lines carry only ``<priority>level logger: message``; elsewhere a UTC timestamp
leads. Messages never contain Redis passwords: only ``Settings.safe_url()`` is
ever logged.
"""

from __future__ import annotations

import logging
import os
import sys

from .table import printable

_SYSLOG_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class _OneLine(logging.Formatter):
    def __init__(self, journald: bool):
        fmt = "%(levelname)s %(name)s: %(message)s" if journald else \
            "%(asctime)s %(levelname)s %(name)s: %(message)s"
        super().__init__(fmt, datefmt="%Y-%m-%dT%H:%M:%SZ")
        self.journald = journald
        import time

        self.converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        # One line (journald splits on newlines), and no raw controls from a job's or a manifest's strings.
        text = printable(super().format(record).replace("\n", " | "))
        if self.journald:
            text = f"<{_SYSLOG_PRIORITY.get(record.levelno, 6)}>{text}"
        return text


def setup_logging(verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine(journald=bool(os.environ.get("JOURNAL_STREAM"))))
    root = logging.getLogger("fleet")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
