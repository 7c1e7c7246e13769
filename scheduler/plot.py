"""Metric curves in a terminal: braille line charts and sparklines, in pure Python.

``fleet metrics JOB --plot`` draws one curve in Unicode braille (each character a 2x4 grid of
dots, so a 60-column chart has 120 points across); ``fleet compare --plot METRIC`` overlays
several, each with its own marker (and colour on a terminal), since dots of two curves in one
braille cell cannot be told apart; ``fleet compare`` shows a sparkline of each job's curve.
No plotting package: the few dozen lines here do what a terminal can show, and a lab's
login node rarely has matplotlib's dependencies.
"""

from __future__ import annotations

import math
from typing import Sequence

BRAILLE_BASE = 0x2800
# The dot bit of (column 0-1, row 0-3) in a braille character.
_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
SPARKS = "▁▂▃▄▅▆▇█"
MARKERS = "•ox+*#@%=~^&" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # one per curve, 38 before they repeat
SERIES_COLOURS = ("36", "33", "35", "32", "31", "34", "37", "90")
X_NAMES = ("step", "epoch", "iteration", "iter")  # the x axis, when a metrics line carries one


Point = tuple[float, float]


def curve(rows: Sequence[dict], metric: str) -> list[Point]:
    """(x, value) of every metrics line holding a finite number for ``metric``: x is the line's
    step (or epoch) where it says one, else its position."""
    x_name = next((n for n in X_NAMES if any(_number(r.get(n)) is not None for r in rows)), None)
    points = []
    for i, row in enumerate(rows):
        value = _number(row.get(metric))
        x = _number(row.get(x_name)) if x_name else float(i)
        if value is not None and x is not None:
            points.append((x, value))
    return points


def numeric_metrics(rows: Sequence[dict]) -> list[str]:
    """The metrics with a number in some line, the x-axis names left out, in first-seen order."""
    seen: dict[str, None] = {}
    for row in rows:
        for key, value in row.items():
            if key not in X_NAMES and key not in ("total", "epochs", "total_steps") and _number(value) is not None:
                seen.setdefault(key, None)
    return list(seen)


def sparkline(values: Sequence[float], width: int = 16) -> str:
    """``values`` (resampled to at most ``width``) as ▁▂▃▄▅▆▇█; "" for none."""
    finite = [v for v in values if _number(v) is not None]
    if not finite:
        return ""
    if len(finite) > width:  # the mean of each of `width` equal runs
        step = len(finite) / width
        finite = [sum(finite[int(i * step):int((i + 1) * step)]) / max(1, int((i + 1) * step) - int(i * step))
                  for i in range(width)]
    low, high = min(finite), max(finite)
    span = high - low
    return "".join(SPARKS[0 if span == 0 else min(len(SPARKS) - 1, int((v - low) / span * len(SPARKS)))]
                   for v in finite)


def chart(series: dict[str, list[Point]], width: int = 60, height: int = 12, colour: bool = False) -> list[str]:
    """The lines of a chart of every curve in ``series`` (label -> points): one curve in braille,
    several with a marker each (and a colour each when ``colour``), y labels on the left, the
    x range below and, for several, a legend."""
    drawn = {label: pts for label, pts in series.items() if pts}
    if not drawn:
        return []
    xs = [x for pts in drawn.values() for x, _ in pts]
    ys = [y for pts in drawn.values() for _, y in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    if y0 == y1:
        y0, y1 = y0 - 1, y1 + 1
    if x0 == x1:
        x0, x1 = x0 - 1, x1 + 1
    if len(drawn) == 1:
        grid = _braille(next(iter(drawn.values())), width, height, (x0, x1, y0, y1))
    else:
        grid = _markers(drawn, width, height, (x0, x1, y0, y1), colour)
    top, bottom = _fmt(y1), _fmt(y0)
    pad = max(len(top), len(bottom))
    lines = []
    for r, row in enumerate(grid):
        label = top if r == 0 else bottom if r == height - 1 else ""
        lines.append(f"{label.rjust(pad)} {'┤' if label else '│'}{row}".rstrip())
    lines.append(" " * pad + " └" + "─" * width)
    left, right = _fmt(x0), _fmt(x1)
    lines.append(" " * (pad + 2) + left + right.rjust(max(1, width - len(left))))
    if len(drawn) > 1:
        for n, label in enumerate(drawn):
            marker = MARKERS[n % len(MARKERS)]
            lines.append(f"  {_paint(marker, n, colour)} {label}")
    return lines


def _braille(points: list[Point], width: int, height: int, box: tuple[float, float, float, float]) -> list[str]:
    cells = [[0] * width for _ in range(height)]
    dots = [_to_dot(p, 2 * width, 4 * height, box) for p in points]
    for (ax, ay), (bx, by) in zip(dots, dots[1:] or dots):
        for dx, dy in _line(ax, ay, bx, by):
            cells[dy // 4][dx // 2] |= _DOTS[dy % 4][dx % 2]
    return ["".join(chr(BRAILLE_BASE + c) if c else " " for c in row) for row in cells]


def _markers(series: dict[str, list[Point]], width: int, height: int, box: tuple[float, float, float, float],
             colour: bool) -> list[str]:
    cells: list[list[str]] = [[" "] * width for _ in range(height)]
    for n, points in enumerate(series.values()):
        marker = _paint(MARKERS[n % len(MARKERS)], n, colour)
        cols = [_to_dot(p, width, height, box) for p in points]
        for (ax, ay), (bx, by) in zip(cols, cols[1:] or cols):
            for cx, cy in _line(ax, ay, bx, by):
                cells[cy][cx] = marker
    return ["".join(row) for row in cells]


def _to_dot(point: Point, across: int, down: int, box: tuple[float, float, float, float]) -> tuple[int, int]:
    x0, x1, y0, y1 = box
    col = round((point[0] - x0) / (x1 - x0) * (across - 1))
    row = round((y1 - point[1]) / (y1 - y0) * (down - 1))  # row 0 is the top
    return min(across - 1, max(0, col)), min(down - 1, max(0, row))


def _line(ax: int, ay: int, bx: int, by: int) -> list[tuple[int, int]]:
    """The grid cells from (ax, ay) to (bx, by), both included (Bresenham)."""
    out, dx, dy = [], abs(bx - ax), -abs(by - ay)
    sx, sy = (1 if ax < bx else -1), (1 if ay < by else -1)
    err = dx + dy
    while True:
        out.append((ax, ay))
        if ax == bx and ay == by:
            return out
        e2 = 2 * err
        if e2 >= dy:
            err += dy
            ax += sx
        if e2 <= dx:
            err += dx
            ay += sy


def _paint(marker: str, n: int, colour: bool) -> str:
    return f"\033[{SERIES_COLOURS[n % len(SERIES_COLOURS)]}m{marker}\033[0m" if colour else marker


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
