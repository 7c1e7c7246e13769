"""fleet from Python: ``Client`` returns what the CLI's ``--json`` prints.

    from scheduler import Client
    fleet = Client()                                   # $FLEET_REDIS_URL / $FLEET_NAMESPACE, as the CLI
    fleet.status()["jobs"]                             # {"pending": 12, "running": 3, ...}
    [j["name"] for j in fleet.jobs(state="pending", model="cnn*")]
    fleet.hold(model="transformer*", state="pending")  # filters in place of names, all or nothing

The CLI's commands are thin callers of these methods (scheduler/commands/), so a notebook and
a terminal see the same documents. Errors are the CLI's: FleetError subclasses with one-line
messages (scheduler/errors.py).
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import tomli_w

from .compare import compare_rows
from .errors import ManifestError, NotFoundError, UsageError
from .explain import explanation
from .fork import append_atomically, entry_toml, fork_entry, fork_name, parse_sets
from .history import history_row, parse_outcomes, select, summary, window
from .job_filter import JobFilter, parse_states
from .job_rows import job_row
from .manifest import load_manifest, parse_manifest
from .manifest.fields import FIELDS, builtin_defaults
from .manifest.model import JobSpec
from .settings import Settings
from .status import status_document
from .store import Store
from .store.claims import output_dir_of
from .store.history import read_window
from .store.loading import LoadPlan
from .store.queries import JobRecord

FILTER_PAGE = 500  # records read per round trip while a filter looks for matches
# The states an action takes a job from, which a filter without --state selects: `fleet hold
# --model 'cnn*'` holds the pending ones rather than refuse because some have finished.
ACTION_STATES = {"hold": ("pending",), "release": ("held",), "retry": ("failed", "canceled"),
                 "rerun": ("finished", "failed", "canceled"), "cancel": ("pending", "running", "held", "blocked")}


class Client:
    """One fleet namespace on one Redis. ``url`` and ``namespace`` default as the CLI's flags do
    ($FLEET_REDIS_URL, $FLEET_NAMESPACE, then redis://127.0.0.1:6379/0 and "fleet")."""

    def __init__(self, url: str | None = None, namespace: str | None = None, store: Store | None = None):
        self.store = store if store is not None else Store.connect(Settings.from_env(url, namespace))

    # -- reading ---------------------------------------------------------------------------
    def status(self) -> dict:
        """`fleet status --json`: counts by state, workers, what nobody can run, recent failures."""
        with self.store.errors():
            return status_document(self.store)

    def jobs(self, state: str | Sequence[str] | None = None, name: str | None = None, model: str | None = None,
             host: str | None = None, worker: str | None = None, limit: int = 100, offset: int = 0) -> list[dict]:
        """`fleet jobs --json`: up to ``limit`` jobs matching the filters after skipping ``offset``,
        newest activity first, each with its reason, times and progress (scheduler/job_rows.py)."""
        found = self.records(job_filter(state, name, model, host, worker), limit=limit, offset=offset)
        with self.store.errors():
            view = self.store.jobs_view(found)
        return [job_row(r, view) for r in found]

    def records(self, selection: JobFilter, limit: int | None = None, offset: int = 0) -> list[JobRecord]:
        """The records of the jobs ``selection`` picks, in its order (newest activity first)."""
        out: list[JobRecord] = []
        skipped = 0
        size = FILTER_PAGE if limit is None else min(FILTER_PAGE, offset + limit)
        with self.store.errors():
            ids = self.store.jobs.ids_in_states(selection.states, page=size)
            if not selection.needs_records:  # the indexes alone decide: read only the page's records
                end = None if limit is None else offset + limit
                return self.store.jobs.many(list(itertools.islice(ids, offset, end)))
            while limit is None or len(out) < limit:
                # The first page is as big as what is asked for (a filter most jobs pass reads
                # no more than that); each one after doubles, up to FILTER_PAGE.
                page = [job_id for _, job_id in zip(range(size), ids)]
                size = min(FILTER_PAGE, 2 * size)
                if not page:
                    break
                for record in self.store.jobs.many(page):
                    if not selection.matches(record):
                        continue
                    if skipped < offset:
                        skipped += 1
                        continue
                    out.append(record)
                    if limit is not None and len(out) == limit:
                        break
        return out

    def job(self, ref: str) -> dict:
        """`fleet job --json`: identity, scheduling, every attempt (a running one with its
        ``elapsed_s``), the output dir, the result and the latest metrics."""
        store = self.store
        with store.errors():
            record = store.jobs.get(store.jobs.resolve(ref))
            attempts = store.jobs.attempts(record.job_id)
            identity = store.jobs.identity(record.job_id)
            result = store.jobs.result(record.job_id)
            view = store.jobs_view([record])  # it read the latest attempt's newest metrics lines too
            row = job_row(record, view)
            forked_into = store.jobs.forks_of(record.job_id)
        latest = next(iter(view.latest_metrics.get(record.job_id, [])), None)
        now = time.time()
        for a in attempts:
            start, end = a.get("started_at"), a.get("ended_at")
            if isinstance(start, (int, float)):
                a["elapsed_s"] = round(max(0.0, (end if isinstance(end, (int, float)) else now) - start), 1)
        last = next((a for a in reversed(attempts) if output_dir_of(a)), None)  # the newest attempt with outputs
        spec = JobSpec.from_flat(record.spec)
        return {**row, "in_manifest": record.in_manifest, "max_attempts": record.max_attempts,
                "identity": identity, "scheduling": spec.scheduling, "last_reason": record.reason,
                "attempts_detail": attempts, "created_at": record.created_at, "state_at": record.state_at,
                "after": spec.scheduling.get("after", []),
                "after_any": spec.scheduling.get("after_any", []),
                "after_failed": spec.scheduling.get("after_failed", []),
                "output_dir": output_dir_of(last) if last else None, "output_host": (last or {}).get("host"),
                "output_archived": bool((last or {}).get("archived_to")),
                "result": result, "latest_metrics": latest,
                "forked_from": spec.scheduling.get("forked_from"), "forked_into": forked_into}

    def explain(self, ref: str) -> dict:
        """`fleet explain --json`: why the job is where it is, per worker."""
        with self.store.errors():
            record = self.store.jobs.get(self.store.jobs.resolve(ref))
            return explanation(self.store.explain_view(record)).to_json()

    def workers(self) -> list[dict]:
        """`fleet workers --json`: every worker seen in the last day."""
        now = time.time()
        with self.store.errors():
            docs = [w.to_json(now) for w in self.store.workers(now)]
            names = self.store.jobs.names([j for d in docs for j in d["jobs"]])
        for doc in docs:
            doc["job_names"] = [names.get(j, j) for j in doc["jobs"]]
        return docs

    def history(self, since: str | None = None, until: str | None = None, host: str | None = None,
                state: str | Sequence[str] | None = None) -> list[dict]:
        """`fleet history --json`: every attempt that ran in the window (default: the last 24 h),
        oldest start first; ``state`` picks outcomes ("finished", "failed", "lost", "running", ...)."""
        start, end = window(since, until)
        with self.store.errors():
            seen = read_window(self.store, start, end)
        return [history_row(a) for a in select(seen, host, parse_outcomes(_words(state)))]

    def history_summary(self, since: str | None = None, until: str | None = None, host: str | None = None,
                        state: str | Sequence[str] | None = None) -> dict:
        """`fleet history --summary --json`: GPU-hours and core-hours per host and per model."""
        start, end = window(since, until)
        with self.store.errors():
            seen = read_window(self.store, start, end)
        return summary(select(seen, host, parse_outcomes(_words(state))), start, end, time.time())

    def metrics(self, ref: str, attempt: int | None = None) -> list[dict]:
        """`fleet metrics --json`: the attempt's metrics lines (default: the latest attempt)."""
        store = self.store
        with store.errors():
            record, number = store.jobs.resolve_attempt(ref, attempt)
            return store.streams.metrics(record.job_id, number)

    def metrics_of(self, refs: Sequence[str], attempt: int | None = None,
                   started: bool = False) -> dict[str, list[dict]]:
        """Each job's name -> its metrics lines (of ``attempt``, default each one's latest), the
        streams read in one round trip, as `fleet compare` does. A job that has not started has
        [] unless ``started`` (or an ``attempt``) is asked for: then, as :meth:`metrics`, it is
        a NotFoundError saying why."""
        store = self.store
        with store.errors():
            if started or attempt:
                chosen = [store.jobs.resolve_attempt(ref, attempt) for ref in refs]
            else:
                chosen = [(r, r.attempts) for r in (store.jobs.get(store.jobs.resolve(ref)) for ref in refs)]
            lines = iter(store.streams.metrics_of_many([(r.job_id, n) for r, n in chosen if n]))
        return {r.name: next(lines) if n else [] for r, n in chosen}

    def log(self, ref: str, attempt: int | None = None) -> list[str]:
        """`fleet logs`: the attempt's output lines as they reached Redis (default: the latest attempt)."""
        store = self.store
        with store.errors():
            record, number = store.jobs.resolve_attempt(ref, attempt)
            return [line for _, line in store.streams.log(record.job_id, number)]

    def compare(self, refs: Sequence[str] = (), model: str | None = None, sort: str | None = None,
                ascending: bool = False) -> list[dict]:
        """`fleet compare --json`: final metrics of the jobs ``refs`` (or all jobs, of ``model``
        where given) side by side, with the identity fields that differ, ranked by ``sort``."""
        return self.comparison(refs, model, sort, ascending)[0]

    def comparison(self, refs: Sequence[str] = (), model: str | None = None, sort: str | None = None,
                   ascending: bool = False) -> tuple[list[dict], list[JobRecord], list[str]]:
        """:meth:`compare`'s table with the records in its order and the metric names (the CLI
        draws their curves)."""
        store = self.store
        with store.errors():
            ids = [store.jobs.resolve(ref) for ref in refs] if refs else store.jobs.all_ids()
            records = [r for r in store.jobs.many(ids) if not model or r.model == model]
            results = store.jobs.results([r.job_id for r in records])
        return compare_rows(records, results, sort, ascending)

    def fork(self, ref: str, sets: Sequence[str] = (), name: str | None = None, append: str | None = None) -> dict:
        """`fleet fork --json`: a new ``[[jobs]]`` entry from job ``ref`` with ``sets`` applied
        ("hyper.lr=0.01"), named ``name`` (default "<name>-fork"), checked against the manifest
        (``append``'s, else the one last applied where this machine can read it) and, with
        ``append``, added to that file atomically. Nothing is written to Redis: reload after."""
        store = self.store
        changes = parse_sets(list(sets))
        with store.errors():
            record = store.jobs.get(store.jobs.resolve(ref))
            source = append or store.jobs.manifest_path()
            new_name, n = name, 1
            while new_name is None or (name is None and store.jobs.id_of_name(new_name) is not None):
                new_name, n = fork_name(record.name, n), n + 1  # the first "<name>-fork[N]" no job has
        parent = JobSpec.from_flat(record.spec)
        if append is not None and not os.path.isfile(append):
            raise NotFoundError(f"--append {append!r}: no such manifest file")
        manifest_text = _read_text(source) if source else None
        if manifest_text is not None:
            base = load_manifest(Path(source))
            defaults = base.defaults
        else:  # the manifest is not readable here: check the entry alone, its lab fields declared
            defaults = builtin_defaults()
            manifest_text = tomli_w.dumps({"schema_version": 1, "defaults": _lab_defaults(parent, defaults)})
        table = fork_entry(parent, changes, new_name, defaults)
        entry = entry_toml(table)
        alone = parse_manifest(tomli_w.dumps({"schema_version": 1, "defaults": _lab_defaults(parent, defaults)})
                               + "\n" + entry, "fork.toml").job_named(new_name)
        if alone.job_id == parent.job_id:
            raise UsageError(f"the fork would be {record.name} itself (same identity, job_id {parent.job_id}): "
                             f"--set an identity field (hyper.*, seed, mode, a lab field) to make a new job")
        # Then with the manifest's own rules, beside its jobs: [allowed], names, content.
        forked = parse_manifest(manifest_text.rstrip("\n") + "\n\n" + entry, source or "fork.toml").job_named(new_name)
        if append is not None:
            append_atomically(append, f"# forked from {record.name} by `fleet fork`\n{entry}")
        return {"parent": record.name, "name": new_name, "job_id": forked.job_id, "table": table, "toml": entry,
                "appended_to": append}

    # -- writing ---------------------------------------------------------------------------
    def load(self, path: str | Path, dry_run: bool = False, allow_orphaning: bool = False) -> dict:
        """`fleet load --json`: validate the manifest and apply it (or only plan it, ``dry_run``);
        a refused load raises ManifestError, as the CLI exits 2."""
        plan = self.load_plan(load_manifest(Path(path)), dry_run, allow_orphaning)
        if plan.refused:
            raise ManifestError([plan.refused])
        return plan.to_dict()

    def load_plan(self, manifest, dry_run: bool = False, allow_orphaning: bool = False) -> LoadPlan:
        """The plan of loading ``manifest`` (applied unless ``dry_run``), refused or not."""
        return self.store.load(manifest, dry_run=dry_run, allow_orphaning=allow_orphaning)

    def hold(self, refs: Iterable[str] = (), **filters: Any) -> list[dict]:
        """`fleet hold --json`: keep pending jobs from being claimed (names, ids, or filters)."""
        return self.act("hold", refs, **filters)

    def release(self, refs: Iterable[str] = (), **filters: Any) -> list[dict]:
        """`fleet release --json`: make held jobs claimable again."""
        return self.act("release", refs, **filters)

    def cancel(self, refs: Iterable[str] = (), **filters: Any) -> list[dict]:
        """`fleet cancel --json`: pending jobs never run, running ones are stopped."""
        return self.act("cancel", refs, **filters)

    def retry(self, refs: Iterable[str] = (), reset: bool = False, **filters: Any) -> list[dict]:
        """`fleet retry --json`: failed or canceled jobs become pending again."""
        return self.act("retry", refs, reset=reset, **filters)

    def rerun(self, refs: Iterable[str] = (), **filters: Any) -> list[dict]:
        """`fleet rerun --json`: finished, failed or canceled jobs run again, as their next
        attempt; every earlier attempt's record and output dir stay."""
        return self.act("rerun", refs, **filters)

    def act(self, action: str, refs: Iterable[str] = (), reset: bool = False, **filters: Any) -> list[dict]:
        """Apply ``action`` to every job named or selected, all or nothing: one job it does not
        apply to and none changes (each result says why)."""
        return self.apply(action, self.select(action, refs, job_filter(**filters)), reset=reset)

    def apply(self, action: str, ids: list[str], reset: bool = False) -> list[dict]:
        """Apply ``action`` to the jobs ``ids`` (as :meth:`select` returns them), all or nothing."""
        store = self.store
        with store.errors():
            results = store.apply_action(action, ids, reset=reset)
            names = store.jobs.names(ids)
        return [{"job_id": r.job_id, "name": names.get(r.job_id), "ok": r.ok, "from": r.from_state,
                 "to": r.to_state, "message": r.message} for r in results]

    def select(self, action: str, refs: Iterable[str], selection: JobFilter) -> list[str]:
        """The ids ``action`` would touch: the jobs named, or those ``selection`` picks (without
        a state, in the states the action takes jobs from: ACTION_STATES)."""
        refs = list(refs)
        if refs and not selection.empty:
            raise UsageError(f"{action}: name jobs or give filters, not both")
        if not refs and selection.empty:
            raise UsageError(f"{action}: name the jobs, or select them with --state, --name, --model, --host or "
                             f"--worker")
        if refs:
            with self.store.errors():
                return list(dict.fromkeys(self.store.jobs.resolve(ref) for ref in refs))
        if not selection.states:
            selection = JobFilter(ACTION_STATES[action], selection.name, selection.model, selection.host,
                                  selection.worker)
        return [r.job_id for r in self.records(selection)]

    def drain(self, worker: str, undo: bool = False, reason: str = "") -> None:
        """`fleet drain`: the worker finishes what it runs and claims no more (``undo``: resumes)."""
        with self.store.errors():
            if not self.store.drain(worker, undo=undo, reason=reason):
                raise NotFoundError(f"no worker named {worker!r}; list them with `fleet workers`")


def job_filter(state: str | Sequence[str] | None = None, name: str | None = None, model: str | None = None,
               host: str | None = None, worker: str | None = None) -> JobFilter:
    """A JobFilter from the CLI's or a caller's values; states as "pending,held" or a list."""
    return JobFilter(parse_states(",".join(_words(state))), name or None, model or None, host or None,
                     worker or None)


def _words(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, str):
        return tuple(w.strip() for w in value.split(",") if w.strip())
    return tuple(value)


def _read_text(path: str) -> str | None:
    """The manifest's text, or None where this machine cannot read it (it was loaded elsewhere)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError):
        return None


def _lab_defaults(parent: JobSpec, defaults: dict) -> dict:
    """[defaults] declaring the parent's lab fields (with its values), so its fork parses alone."""
    return {k: defaults.get(k, v) for k, v in parent.identity.items() if k not in FIELDS}
