"""Curves drawn in a terminal (scheduler/plot.py): the shape a job reported is the shape shown."""

from __future__ import annotations

import math

from scheduler.plot import BRAILLE_BASE, chart, curve, numeric_metrics, sparkline

ROWS = [{"step": 10 * i, "loss": 2 * math.exp(-i / 10), "acc": i / 39} for i in range(40)]


def dots_of(line: str) -> int:
    return sum(bin(ord(c) - BRAILLE_BASE).count("1") for c in line if 0x2800 < ord(c) <= 0x28FF)


def test_one_curve_is_drawn_in_braille_from_its_first_point_to_its_last():
    lines = chart({"loss": curve(ROWS, "loss")}, width=40, height=6)
    grid, axis, xlabels = lines[:6], lines[6], lines[7]
    low = f"{2 * math.exp(-39 / 10):.4g}"
    assert lines[0].split("┤")[0].strip() == "2" and grid[-1].split("┤")[0].strip() == low
    assert "└" + "─" * 40 in axis
    assert xlabels.split() == ["0", "390"]  # x is the reported step, not the line's position
    first_col = [row.split("┤" if "┤" in row else "│", 1)[1][:1] for row in grid]
    assert first_col[0] != " " and all(c == " " for c in first_col[1:])  # starts top left: the highest loss
    assert dots_of(grid[-1]) > dots_of(grid[0])  # a decaying curve spends most of its length low
    assert max(len(line) for line in lines) == len(low) + 2 + 40  # the labels, then the width asked


def test_several_curves_get_a_marker_each_and_a_legend():
    lines = chart({"run-a": curve(ROWS, "loss"), "run-b": curve(ROWS, "acc")}, width=30, height=5)
    assert lines[-2:] == ["  • run-a", "  o run-b"]
    body = "".join(lines[:5])
    assert "•" in body and "o" in body
    coloured = chart({"run-a": curve(ROWS, "loss"), "run-b": curve(ROWS, "acc")}, width=30, height=5, colour=True)
    assert "\033[36m•\033[0m" in "".join(coloured)


def test_bad_values_are_skipped_and_a_sparkline_follows_the_values():
    rows = [{"loss": 3.0}, {"loss": float("nan")}, {"loss": True}, {"loss": "x"}, {"loss": 1.0}]
    assert curve(rows, "loss") == [(0.0, 3.0), (4.0, 1.0)]  # no step: x is the line's position
    assert numeric_metrics(ROWS) == ["loss", "acc"]
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█" and sparkline([]) == ""
    assert sparkline([5, 5, 5]) == "▁▁▁" and len(sparkline(list(range(100)), width=10)) == 10
    assert chart({"loss": []}) == []
