"""Sweeps: a ``[[jobs]]`` entry with a ``[jobs.matrix]`` table is one job per point of its axes.

    [[jobs]]
    name = "{model}-lr{hyper[lr]}"
    hyper = { epochs = 3 }
    [jobs.matrix]
    model = ["mlp", "cnn"]
    "hyper.lr" = [0.1, 0.01]
    exclude = [{ model = "cnn", "hyper.lr" = 0.01 }]

Expansion happens before validation, on the raw tables: each point's values set (or, for a
dotted axis, set inside) the entry's fields, and the name template is filled with the point's
fields as a command's placeholders are (``str.format``: ``{model}``, ``{hyper[lr]}``), the
manifest's ``[defaults]`` included. So an expanded job *is* the job written out by hand: the
loader checks it the same way and hashes the same identity, and an existing manifest can be
rewritten as sweeps without a single job_id changing. Pure: no I/O.
"""

from __future__ import annotations

import itertools
import string
from dataclasses import dataclass, field
from typing import Any, Iterable

MATRIX = "matrix"
EXCLUDE = "exclude"


@dataclass(frozen=True)
class Expanded:
    """One job table the loader validates: a written entry (``sweep`` None) or one point of a
    sweep (``sweep``: the entry's locator, ``point``: its axis values, in the axes' order)."""

    index: int  # the entry's position in [[jobs]]
    table: dict[str, Any]
    sweep: str | None = None
    point: tuple[tuple[str, Any], ...] = ()

    def locator(self) -> str:
        """Where the loader's messages say a problem is: ``jobs[3] 'cnn-lr0.1'``, or for a
        point, ``jobs[3] '{model}-lr{hyper[lr]}' point model=cnn, hyper.lr=0.1``."""
        if self.sweep is None:
            name = self.table.get("name")
            return f"jobs[{self.index}] {name!r}" if isinstance(name, str) else f"jobs[{self.index}]"
        return f"{self.sweep} point {point_text(self.point)}"


@dataclass
class Expansion:
    """The tables to validate, in file order, and each problem found expanding them as
    (where, field, message)."""

    jobs: list[Expanded] = field(default_factory=list)
    problems: list[tuple[str, str | None, str]] = field(default_factory=list)
    sweeps: dict[str, list[str]] = field(default_factory=dict)  # sweep locator -> its jobs' names


def point_text(point: Iterable[tuple[str, Any]]) -> str:
    return ", ".join(f"{axis}={value!r}" for axis, value in point)


def expand(jobs: list[dict[str, Any]], defaults: dict[str, Any], known: set[str], tables: set[str]) -> Expansion:
    """Every entry of ``jobs`` as the tables to validate: written ones as they are, sweeps one
    per point. ``known``: the field names a job may set (job and lab fields); ``tables``: those
    of them that are tables (a dotted axis sets a key inside one)."""
    out = Expansion()
    for index, entry in enumerate(jobs):
        if MATRIX not in entry:
            out.jobs.append(Expanded(index, entry))
            continue
        _expand_one(index, entry, defaults, known, tables, out)
    return out


def _expand_one(index: int, entry: dict[str, Any], defaults: dict[str, Any], known: set[str], tables: set[str],
                out: Expansion) -> None:
    template = entry.get("name")
    where = f"jobs[{index}] {template!r}" if isinstance(template, str) else f"jobs[{index}]"
    matrix = entry[MATRIX]
    if not isinstance(matrix, dict):
        out.problems.append((where, MATRIX, "must be a table ([jobs.matrix]) of axes, each a list of values"))
        return
    if not isinstance(template, str):
        out.problems.append((where, "name", "a sweep needs a name template, e.g. \"{model}-lr{hyper[lr]}\", "
                                            "so that each of its jobs has its own name"))
        return
    axes, ok = [], True
    for axis, values in matrix.items():
        if axis == EXCLUDE:
            continue
        problem = _axis_problem(axis, values, known, tables)
        if problem:
            out.problems.append((where, f"matrix.{axis}", problem))
            ok = False
        else:
            axes.append((axis, values))
    excludes = matrix.get(EXCLUDE, [])
    names = {axis for axis, _ in axes}
    if not isinstance(excludes, list) or not all(isinstance(e, dict) for e in excludes):
        out.problems.append((where, f"matrix.{EXCLUDE}", "must be a list of tables, e.g. "
                                                         "[{ model = \"cnn\", \"hyper.lr\" = 0.001 }]"))
        return
    for n, rule in enumerate(excludes):
        for axis in rule:
            if axis not in names and axis not in matrix:
                out.problems.append((where, f"matrix.{EXCLUDE}[{n}]", f"{axis!r} is not an axis of this sweep "
                                                                      f"(its axes: {', '.join(sorted(names))})"))
                ok = False
    if not ok or not axes:
        if ok:
            out.problems.append((where, MATRIX, "has no axes: give at least one, e.g. model = [\"mlp\", \"cnn\"]"))
        return
    base = {k: v for k, v in entry.items() if k != MATRIX}
    seen: dict[str, tuple[tuple[str, Any], ...]] = {}
    label = where
    out.sweeps[label] = []
    for values in itertools.product(*(v for _, v in axes)):
        point = tuple((axis, value) for (axis, _), value in zip(axes, values))
        if any(all(_same(dict(point).get(a), v) for a, v in rule.items()) for rule in excludes):
            continue
        table = _with_point(base, point)
        name, problem = _fill(template, {**defaults, **table})
        if problem:
            out.problems.append((f"{where} point {point_text(point)}", "name", problem))
            return
        if name in seen:
            out.problems.append((where, "name", f"points {point_text(seen[name])} and {point_text(point)} both make "
                                                f"the name {name!r}; put the axes that tell them apart into the "
                                                f"template"))
            return
        seen[name] = point
        table["name"] = name
        out.jobs.append(Expanded(index, table, label, point))
        out.sweeps[label].append(name)


def _axis_problem(axis: str, values: Any, known: set[str], tables: set[str]) -> str | None:
    head, _, rest = axis.partition(".")
    if head == "name":
        return "the name cannot be an axis: the template names each point"
    if head == MATRIX:
        return "a matrix cannot sweep another"
    if head not in known:
        return f"{head!r} is not a job field or lab field (declare a lab field in [defaults])"
    if rest and head not in tables:
        return f"{head!r} is not a table, so {axis!r} cannot set a key inside it"
    if not isinstance(values, list) or not values:
        return "must be a non-empty list of the values to sweep, e.g. [0.1, 0.01]"
    return None


def _with_point(base: dict[str, Any], point: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    """``base`` with each axis of ``point`` set; a dotted axis sets a key inside a copy of its
    table (the entry's own, which the point's value overrides key by key)."""
    table = dict(base)
    for axis, value in point:
        parts = axis.split(".")
        if len(parts) == 1:
            table[axis] = value
            continue
        holder = table
        for part in parts[:-1]:
            inner = holder.get(part)
            holder[part] = dict(inner) if isinstance(inner, dict) else {}
            holder = holder[part]
        holder[parts[-1]] = value
    return table


def _fill(template: str, fields: dict[str, Any]) -> tuple[str, str | None]:
    """The name ``template`` makes from a point's fields, or why it makes none."""
    try:
        for _, name, _, _ in string.Formatter().parse(template):
            if name is not None and name.split("[")[0].split(".")[0] not in fields:
                return "", f"the template's {{{name}}} is not a field of this job"
        return template.format_map(fields), None
    except (KeyError, IndexError) as err:
        return "", f"the template's {err} is not set for this point"
    except (ValueError, TypeError, AttributeError) as err:
        return "", f"cannot fill the name template ({err}); placeholders are {{field}} or {{table[key]}}"


def _same(a: Any, b: Any) -> bool:
    """Equal as TOML values: 1 and 1.0 are one number, True and 1 are not."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b
