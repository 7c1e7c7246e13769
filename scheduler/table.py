"""What fleet prints for people: stored text made safe to show, aligned tables sized to the
terminal, colour only on a TTY without NO_COLOR.

Anything a manifest, a job or a worker wrote (a model name, a host description, a failure
reason, a log line) passes through :func:`printable` before it reaches a terminal: a raw
ESC there recolours or retitles it, and a raw CR or LF forges the rows around it.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sys
import time
from typing import Sequence, TextIO

# C0 and C1 controls, DEL, and the bidirectional overrides and isolates that reorder what a
# terminal shows ("Trojan Source"); tab and newline only where a caller keeps them.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: object, keep: str = "") -> str:
    """``text`` with every control character written as its escape (``\\x1b``, ``\\r``,
    ``\\u202e``), as repr() writes them, except those in ``keep`` (e.g. "\\n\\t" for a
    log line or a multi-line message)."""
    return _UNPRINTABLE.sub(lambda m: m.group() if m.group() in keep else repr(m.group())[1:-1], str(text))


def write_line(out: TextIO, text: str) -> None:
    """One line of human output: ``text`` made :func:`printable`, then a newline."""
    out.write(printable(text) + "\n")


def use_colour(stream: TextIO) -> bool:
    return stream.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


STATE_COLOURS = {"pending": "33", "running": "36", "finished": "32", "failed": "31", "canceled": "90",
                 "blocked": "35", "held": "34"}


def colour(text: str, code: str | None, enabled: bool) -> str:
    return f"\033[{code}m{text}\033[0m" if enabled and code else text


def render(headers: Sequence[str], rows: Sequence[Sequence[object]], stream: TextIO | None = None,
           colour_column: int | None = None) -> str:
    """Columns padded to their widest cell. On a terminal each line is cut to its width (a row
    must stay one line there; the last columns go first, so put the long ones last); piped or
    redirected, nothing is cut: a script or a file gets every character."""
    stream = stream or sys.stdout
    cells = [[printable(c) if c is not None else "-" for c in row] for row in rows]
    headers = [printable(h) for h in headers]  # a metric's name, say, is the job's text
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    width = shutil.get_terminal_size((120, 24)).columns if _is_terminal(stream) else None
    coloured = use_colour(stream) and colour_column is not None
    lines = []
    for n, row in enumerate([list(headers)] + cells):
        line = "  ".join(cell if i == len(row) - 1 else cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        if width is not None and len(line) > width:
            line = line[:max(0, width - 1)] + "…"
        if coloured and n > 0 and colour_column < len(row):  # escapes go in after the cut: they take no width
            start = sum(w + 2 for w in widths[:colour_column])
            end = min(len(line), start + len(row[colour_column]))
            code = STATE_COLOURS.get(row[colour_column].split(" ")[0])
            if code and start < end:
                line = line[:start] + colour(line[start:end], code, True) + line[end:]
        lines.append(line)
    return "\n".join(lines)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or foreign stream: not a terminal
        return False


def age(ts: float | None, now: float | None = None) -> str:
    """A relative age: 5s, 3m, 2h, 4d."""
    if not ts:
        return "-"
    return span(max(0, (now or time.time()) - ts))


def span(seconds: float) -> str:
    """A length of time as :func:`age` says it: 5s, 3m, 2h, 4d (rounded up below a minute, so a
    wait about to end reads 1s, not 0s)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{math.ceil(seconds)}s"
