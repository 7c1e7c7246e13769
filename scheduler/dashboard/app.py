"""The dashboard's routes: each a GET over :class:`scheduler.client.Client`, so the browser sees
what `fleet ... --json` prints (``/api/status`` is `fleet status --json`).

Pure request handling, no sockets: :meth:`Dashboard.handle` takes a path and query and returns a
:class:`Reply`; scheduler/dashboard/server.py puts it on the wire. Read-only: nothing here writes
to Redis. A fleet error (an unknown job, a bad filter) is a JSON ``{"error": ...}`` with the
CLI's one-line message, never a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any, Callable
from urllib.parse import parse_qs, unquote

from ..errors import FleetError, NotFoundError, UsageError
from ..plot import X_NAMES, curve, numeric_metrics
from .svg import chart

PAGE_LIMIT = 100  # jobs per table page: the page never ships 100,000 rows
MAX_LIMIT = 1000
LOG_TAIL = 200  # log lines a job page shows
STATIC = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
PAGES = {"": "fleet.html", "compare": "compare.html"}


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes

    @classmethod
    def json(cls, doc: Any, status: int = 200) -> "Reply":
        return cls(status, "application/json", json.dumps(doc, sort_keys=True).encode())


def _page(name: str) -> bytes:
    return resources.files(__package__).joinpath("pages", name).read_bytes()


class Dashboard:
    """The routes of one fleet namespace."""

    def __init__(self, client):
        self.client = client
        self.routes: dict[str, Callable[[list[str], dict[str, str]], Reply]] = {
            "status": lambda _, q: Reply.json(self.client.status()),
            "workers": lambda _, q: Reply.json(self.client.workers()),
            "jobs": self._jobs,
            "history": lambda _, q: Reply.json(self.client.history(q.get("since"), q.get("until"), q.get("host"),
                                                                   q.get("state"))),
            "compare": self._compare,
            "chart.svg": self._chart,
        }

    def handle(self, path: str, query: str = "") -> Reply:
        """The reply to GET ``path``?``query``."""
        q = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=False).items()}
        parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
        try:
            if not parts or (len(parts) == 1 and parts[0] in PAGES):
                return Reply(200, "text/html; charset=utf-8", _page(PAGES[parts[0] if parts else ""]))
            if parts[0] == "jobs" and len(parts) == 2:
                return Reply(200, "text/html; charset=utf-8", _page("job.html"))
            if parts[0] == "static" and len(parts) == 2 and parts[1] in STATIC:
                return Reply(200, STATIC[parts[1]], _page(parts[1]))
            if parts[0] == "api" and len(parts) >= 2:
                if parts[1] == "jobs" and len(parts) >= 3:
                    return self._job(parts[2], parts[3:], q)
                route = self.routes.get(parts[1])
                if route is not None and len(parts) == 2:
                    return route(parts[2:], q)
            return Reply.json({"error": f"no such page: /{'/'.join(parts)}"}, 404)
        except NotFoundError as err:
            return Reply.json({"error": str(err)}, 404)
        except UsageError as err:
            return Reply.json({"error": str(err)}, 400)
        except FleetError as err:  # Redis away, a damaged key: said as the CLI says it
            return Reply.json({"error": str(err)}, 503)

    # -- routes -----------------------------------------------------------------------------
    def _jobs(self, _: list[str], q: dict[str, str]) -> Reply:
        """A page of `fleet jobs --json`, filtered as the CLI filters (state, name, model, host)."""
        limit = min(MAX_LIMIT, _int(q, "limit", PAGE_LIMIT))
        offset = _int(q, "offset", 0)
        rows = self.client.jobs(state=q.get("state") or None, name=q.get("name") or None,
                                model=q.get("model") or None, host=q.get("host") or None,
                                limit=limit + 1, offset=offset)
        return Reply.json({"jobs": rows[:limit], "offset": offset, "limit": limit, "more": len(rows) > limit})

    def _job(self, ref: str, rest: list[str], q: dict[str, str]) -> Reply:
        if not rest:
            return Reply.json(self.client.job(ref))
        what = rest[0]
        if what == "explain":
            return Reply.json(self.client.explain(ref))
        if what == "metrics":
            return Reply.json(self.client.metrics(ref, _attempt(q)))
        if what == "log":
            tail = min(10_000, _int(q, "tail", LOG_TAIL))
            return Reply.json({"lines": self.client.log(ref, _attempt(q))[-tail:]})
        if what == "chart.svg":
            [(name, lines)] = self.client.metrics_of([ref], _attempt(q), started=True).items()
            names = numeric_metrics(lines)
            metric = q.get("metric") or (names[0] if names else "")
            if metric and metric not in names and lines:
                raise UsageError(f"metric {metric!r}: this attempt reported {', '.join(names) or 'no number'}")
            x_name = next((n for n in X_NAMES if any(n in line for line in lines)), "line")
            return Reply(200, "image/svg+xml", chart({name: curve(lines, metric)}, metric, x_name, names).encode())
        raise NotFoundError(f"no such page: /api/jobs/{ref}/{what}")

    def _compare(self, _: list[str], q: dict[str, str]) -> Reply:
        """`fleet compare --json` over the jobs named (``jobs=a,b``) or a model's (``model=``)."""
        return Reply.json(self.client.compare(_names(q), model=q.get("model") or None, sort=q.get("sort") or None))

    def _chart(self, _: list[str], q: dict[str, str]) -> Reply:
        """One metric of several jobs overlaid (``jobs=a,b&metric=loss``), each its latest attempt."""
        names = _names(q)
        metric = q.get("metric") or ""
        if not names or not metric:
            raise UsageError("name the jobs (jobs=a,b) and the metric (metric=loss) to overlay")
        series = {name: curve(lines, metric) for name, lines in self.client.metrics_of(names).items()}
        return Reply(200, "image/svg+xml", chart(series, metric).encode())


def _int(q: dict[str, str], key: str, default: int) -> int:
    raw = q.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"{key}={raw!r}: not a whole number") from None
    if value < 0:
        raise UsageError(f"{key}={raw!r}: must be 0 or more")
    return value


def _attempt(q: dict[str, str]) -> int | None:
    return _int(q, "attempt", 0) or None


def _names(q: dict[str, str]) -> list[str]:
    return [n for n in (q.get("jobs") or "").split(",") if n]
