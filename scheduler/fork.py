"""``fleet fork JOB --set hyper.lr=0.01``: a new ``[[jobs]]`` entry made from a job, ready to paste.

The manifest stays the only source of jobs: a fork is TOML for the operator to add (or that
``--append`` adds), not a job written into Redis. The entry holds the job's fields where they
differ from the manifest's defaults, the changes asked for, a new name and ``forked_from``
(scheduling, not identity); it is checked with the manifest's own rules before it is shown,
so what is printed loads, and it must differ from its parent in identity (else it would be
the same job). Pure except :func:`append_atomically`, which owns the one file write.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from typing import Any

import tomli_w

from .errors import UsageError
from .manifest.model import JobSpec

FORK_SUFFIX = "-fork"


def parse_sets(sets: list[str]) -> list[tuple[list[str], Any]]:
    """``["hyper.lr=0.01", "mode=oracle"]`` as ([path], value): a value is read as TOML (0.01,
    true, [1, 2], "text"), and as a plain string where it is not TOML (oracle)."""
    out = []
    for item in sets:
        key, sep, text = item.partition("=")
        path = [part.strip() for part in key.split(".")]
        if not sep or not all(path):
            raise UsageError(f"--set {item!r}: write KEY=VALUE, e.g. --set hyper.lr=0.01 or --set seed=3")
        if path[0] == "name":
            raise UsageError("--set name=...: give the fork's name with --name")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        out.append((path, value))
    return out


def fork_entry(parent: JobSpec, sets: list[tuple[list[str], Any]], name: str, defaults: dict[str, Any]) -> dict:
    """The new job's table: ``parent``'s fields that differ from ``defaults`` (the manifest's,
    built-in ones included), with ``sets`` applied, named ``name``, ``forked_from`` the parent."""
    flat = parent.to_dict()
    table: dict[str, Any] = {"name": name, "model": flat["model"]}
    for key, value in flat.items():
        if key in ("name", "model", "forked_from") or value is None:
            continue
        if key not in defaults or defaults[key] != value:
            table[key] = value
    for path, value in sets:
        holder = table
        for part in path[:-1]:
            inner = holder.get(part, flat.get(part) if holder is table else None)
            holder[part] = dict(inner) if isinstance(inner, dict) else {}
            holder = holder[part]
        holder[path[-1]] = value
    table["forked_from"] = parent.name
    return table


def entry_toml(table: dict) -> str:
    """The table as one ``[[jobs]]`` entry of a manifest."""
    return tomli_w.dumps({"jobs": [table]})


def fork_name(base: str, n: int) -> str:
    """The ``n``-th name a fork of ``base`` is offered: ``<base>-fork``, ``<base>-fork2``, ..."""
    return f"{base}{FORK_SUFFIX}" if n == 1 else f"{base}{FORK_SUFFIX}{n}"


def append_atomically(path: str, text: str) -> None:
    """Add ``text`` to the end of the file at ``path`` in one rename: a reader (the receiver on
    a SIGHUP) sees the old file or the new one, never half; the file's comments, layout and
    mode are kept (it is the same bytes with the entry after them)."""
    real = os.path.realpath(path)
    with open(real, "rb") as fh:
        old = fh.read()
    mode = os.stat(real).st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(real), prefix=".fleet-fork-", suffix=".toml")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(old.rstrip(b"\n") + b"\n\n" + text.encode())
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, real)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
