"""``fleet metrics JOB`` and ``fleet compare``: the experiment log side of the queue."""

from __future__ import annotations

import argparse
import csv
import shutil
from typing import Any, TextIO

from ..errors import NotFoundError, UsageError
from ..plot import chart, curve, numeric_metrics, sparkline
from ..table import printable, render, use_colour, write_line
from .common import client_from, print_json


def run_metrics(args: argparse.Namespace, out: TextIO) -> int:
    client = client_from(args)
    rows = client.metrics(args.job, args.attempt)
    if args.plot:
        metric = _metric_to_plot(rows, args.metric, args.job)
        points = curve(rows, metric)
        write_line(out, f"{metric} of {args.job} ({len(points)} points)")
        for line in chart({metric: points}, *_chart_size(out)):
            write_line(out, line)
        return 0
    _emit(rows, args, out, empty=f"no metrics recorded for {args.job} attempt {args.attempt or 'latest'}")
    return 0


def _curve_metric(histories: list[list[dict]], sort_key: str | None) -> str | None:
    """The metric whose curve `fleet compare` sparks: the sorted one if the jobs reported it as
    they trained (twice at least: a final accuracy often has no history), else loss, else
    their first such number."""
    reported = [m for history in histories for m in numeric_metrics(history) if len(curve(history, m)) > 1]
    for metric in (sort_key, "loss", *reported):
        if metric and metric in reported:
            return metric
    return None


def _metric_to_plot(rows: list[dict], wanted: str | None, what: str) -> str:
    """--metric, or the job's loss, or its first numeric metric; a UsageError naming the choices."""
    have = numeric_metrics(rows)
    if not have:
        raise NotFoundError(f"{what}: no numeric metric recorded to plot")
    if wanted is None:
        return "loss" if "loss" in have else have[0]
    if wanted not in have:
        raise UsageError(f"--metric {wanted!r}: {what} reported no such number; it has {', '.join(have)}")
    return wanted


def _chart_size(out: TextIO) -> tuple[int, int]:
    """A chart's width and height: the terminal's width less the labels, or 72 when piped."""
    columns = shutil.get_terminal_size((80, 24)).columns if out.isatty() else 80
    return max(20, columns - 12), 12


def run_compare(args: argparse.Namespace, out: TextIO) -> int:
    """Final metrics side by side, with the identity fields that differ between the jobs."""
    if not (args.jobs or args.model or args.all):
        raise UsageError("name the jobs to compare, or pass --model M or --all")
    client = client_from(args)
    store = client.store
    table, records, metrics = client.comparison(args.jobs or (), args.model, args.sort, args.ascending)
    sort_key = args.sort or (metrics[0] if metrics else None)
    human = not (args.json or args.csv)
    if human or args.plot:
        with store.errors():
            histories = store.streams.metrics_of_many([(r.job_id, r.attempts) for r in records])
    if args.plot:
        # The labels are the jobs' names, made printable here: the chart's own escapes (colours) are not.
        series = {printable(r.name): curve(history, args.plot) for r, history in zip(records, histories)}
        if not any(series.values()):
            raise NotFoundError(f"--plot {args.plot!r}: none of these jobs reported that metric as it trained")
        write_line(out, f"{args.plot} of {len(series)} job(s)")
        out.write("\n".join(chart(series, *_chart_size(out), colour=use_colour(out))) + "\n")
        return 0
    shown = _curve_metric(histories, sort_key) if human else None
    if shown:  # the main metric's curve as the jobs reported it while they trained
        for row, history in zip(table, histories):
            row[f"{shown} curve"] = sparkline([y for _, y in curve(history, shown)]) or None
    _emit(table, args, out, empty="")
    return 0


def _emit(rows: list[dict], args: argparse.Namespace, out: TextIO, empty: str) -> None:
    if args.json:
        print_json(rows, out)
        return
    columns = list(dict.fromkeys(k for row in rows for k in row))
    if args.csv:  # for spreadsheets, but often read on a terminal: the job's own strings escaped too
        writer = csv.writer(out)
        writer.writerow([printable(c) for c in columns])
        writer.writerows(["" if row.get(c) is None else printable(row[c]) for c in columns] for row in rows)
        return
    if not rows:
        write_line(out, empty)
        return
    out.write(render([c.upper() for c in columns], [[_cell(row.get(c)) for c in columns] for row in rows], out) + "\n")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)
