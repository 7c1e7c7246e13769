"""Metric curves as SVG, drawn on the server: no chart library to vendor, nothing fetched by the
browser, and the same picture for every browser (and for a test that counts its points).

Pure: series in, markup out. Every label is escaped; numbers are formatted, never pasted.
"""

from __future__ import annotations

import math
from typing import Sequence
from xml.sax.saxutils import escape

# Colour-blind-safe categorical palette (Okabe and Ito), one per series in turn.
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9", "#f0e442", "#000000")
MAX_POINTS = 2000  # per series drawn; longer series are thinned evenly (the count drawn says so)
WIDTH, HEIGHT, PAD_L, PAD_R, PAD_T, PAD_B = 720, 300, 64, 16, 16, 36


def thin(points: Sequence[tuple[float, float]], most: int = MAX_POINTS) -> list[tuple[float, float]]:
    """At most ``most`` of ``points``, evenly spaced, the first and last kept."""
    if len(points) <= most:
        return list(points)
    step = (len(points) - 1) / (most - 1)
    return [points[round(k * step)] for k in range(most)]


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + k * step for k in range(int((high - first) / step + 1e-9) + 1)]


def _label(value: float) -> str:
    return f"{value:.4g}"


def chart(series: dict[str, Sequence[tuple[float, float]]], metric: str, x_name: str = "step",
          choices: Sequence[str] = ()) -> str:
    """One SVG with a line and a dot per point for each series (name -> [(x, y)]), axes, ticks and
    a legend; each series' <g> carries data-series (its name) and data-points (how many it
    reported), each dot class "pt"; the <svg> carries data-metrics, ``choices`` (the other
    metrics the page may ask for), comma-separated."""
    drawn = {name: thin(points) for name, points in series.items() if points}
    xs = [x for pts in drawn.values() for x, _ in pts]
    ys = [y for pts in drawn.values() for _, y in pts]
    title = f"{escape(metric)} against {escape(x_name)}"
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'role="img" aria-label="{title}" data-metric="{escape(metric, {chr(34): "&quot;"})}" '
            f'data-metrics="{escape(",".join(choices), {chr(34): "&quot;"})}">')
    if not xs:
        return (head + f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no {title} reported yet</text>'
                "</svg>")
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1

    def px(x: float) -> float:
        return PAD_L + (x - x0) / (x1 - x0) * (WIDTH - PAD_L - PAD_R)

    def py(y: float) -> float:
        return HEIGHT - PAD_B - (y - y0) / (y1 - y0) * (HEIGHT - PAD_T - PAD_B)

    out = [head, f'<g class="axes" stroke="#888" stroke-width="1">'
                 f'<line x1="{PAD_L}" y1="{HEIGHT - PAD_B}" x2="{WIDTH - PAD_R}" y2="{HEIGHT - PAD_B}"/>'
                 f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{HEIGHT - PAD_B}"/></g>',
           '<g class="ticks" font-size="11" fill="#555">']
    for t in _ticks(x0, x1):
        out.append(f'<text x="{px(t):.1f}" y="{HEIGHT - PAD_B + 14}" text-anchor="middle">{_label(t)}</text>')
    for t in _ticks(y0, y1):
        out.append(f'<text x="{PAD_L - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{_label(t)}</text>')
    out.append(f'<text x="{(PAD_L + WIDTH - PAD_R) / 2}" y="{HEIGHT - 4}" text-anchor="middle">{escape(x_name)}</text>'
               "</g>")
    for k, (name, points) in enumerate(drawn.items()):
        colour = PALETTE[k % len(PALETTE)]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        label = escape(name, {'"': "&quot;"})
        out.append(f'<g class="series" data-series="{label}" data-points="{len(series[name])}" fill="{colour}">'
                   f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        out.extend(f'<circle class="pt" cx="{px(x):.1f}" cy="{py(y):.1f}" r="2"><title>{_label(x)}, '
                   f'{_label(y)}</title></circle>' for x, y in points)
        out.append(f'<text x="{WIDTH - PAD_R - 4}" y="{PAD_T + 12 + 14 * k}" text-anchor="end">{escape(name)}</text>'
                   "</g>")
    out.append("</svg>")
    return "".join(out)

