"""Parse and validate ``training_manifest.toml`` completely before anything is written.

Every problem is collected (file, job by index and name, field, what to do) and
raised together as one :class:`ManifestError`; a manifest either loads whole or
not at all.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import sys
import tomllib
from collections import Counter
from datetime import date, datetime, time
from typing import Any, Iterator

from ..dependencies import DEPENDENCY_FIELDS, parents_of
from ..errors import ManifestError, Problem
from ..names import HOST_RE, JOB_NAME_RE
from .bounds import INT_RANGE, MAX_KEY_PARTS, MAX_NESTING, bound_value, long_dotted_key
from .command import RUNTIME_PLACEHOLDERS, CommandError, check_argv, fill_arg, runtime_fields
from .fields import (
    COMPUTE_CAPABILITY_RANGE,
    FIELDS,
    GPUS_RANGE,
    HOST_FIELDS,
    INT,
    MAX_ATTEMPTS_RANGE,
    NUMBER,
    PRIORITY_RANGE,
    REQUIRED_FIELDS,
    RETRY_DELAY_RANGE,
    SCHEDULING_FIELDS,
    SCHEMA_VERSION,
    TABLE,
    TOP_LEVEL_KEYS,
    builtin_defaults,
    fits,
    kind_of,
)
from .identity import JOB_ID_RE
from .locate import path_text
from .model import HostSpec, JobSpec, Manifest
from .sweeps import expand

LAB_FIELD_RE = re.compile(r"[a-z_][a-z0-9_]{0,63}")
ENTRYPOINT_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
# Not lab fields: the identity hash adds schema_version itself (a lab field of that name would be
# silently overwritten) and the runner fills the runtime placeholders over any job field.
RESERVED_NAMES = frozenset({"schema_version"}) | RUNTIME_PLACEHOLDERS
# A new [defaults] key this close to a job field is taken for its typo. Stricter than the 0.6 of
# did-you-mean hints, which would refuse real lab fields (train_hosts is 0.61 from denied_hosts).
TYPO_CUTOFF = 0.85


def safe_name(name: str) -> bool:
    """Job names become directory names: no separators, no '..', no NUL, bounded length."""
    return bool(JOB_NAME_RE.fullmatch(name)) and ".." not in name


def load_manifest(path: str | os.PathLike) -> Manifest:
    """Read and validate the manifest at ``path``; raises ManifestError listing every problem."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise ManifestError([Problem(path, "file not found; pass the manifest path or set FLEET_MANIFEST")]) from None
    except OSError as err:
        raise ManifestError([Problem(path, f"cannot read: {err.strerror}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ManifestError([Problem(path, f"not UTF-8 text (byte {err.start}); save it as UTF-8")]) from None
    return parse_manifest(text, path)


def parse_manifest(text: str, path: str = "<manifest>") -> Manifest:
    """Validate manifest text; ``path`` names it in errors."""
    text = text.removeprefix("\ufeff")  # a UTF-8 byte order mark, as some Windows editors save; TOML has none
    line = long_dotted_key(text)
    if line is not None:
        raise ManifestError([Problem(path, f"line {line}: a dotted key of more than {MAX_KEY_PARTS} parts; tables "
                                           f"may nest at most {MAX_NESTING} levels, flatten it")])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ManifestError([Problem(path, f"invalid TOML: {err}")]) from None
    except RecursionError:  # tomllib parses inline tables and arrays recursively
        raise ManifestError([Problem(path, f"invalid TOML: tables or arrays nested too deeply to parse; "
                                           f"at most {MAX_NESTING} levels are accepted, flatten them")]) from None
    except ValueError as err:  # int() refusing a literal of more digits than Python converts
        detail = str(err)
        if "integer string conversion" in detail:
            detail = f"an integer of more than {sys.get_int_max_str_digits()} digits; integers must fit in 64 bits"
        raise ManifestError([Problem(path, f"invalid TOML: {detail}")]) from None
    return _Validator(path, data).run()


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _job_locator(index: int, job: Any) -> str:
    name = job.get("name") if isinstance(job, dict) else None
    return f"jobs[{index}] {name!r}" if isinstance(name, str) else f"jobs[{index}]"


def _describe(value: Any) -> str:
    if isinstance(value, (datetime, date, time)):
        return f"a TOML date/time ({value.isoformat()})"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _Validator:
    def __init__(self, path: str, data: dict[str, Any]):
        self.path = path
        self.data = data
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.refused: set[str | None] = set()  # locators of jobs bound_values refused
        self.sweeps: dict[str, list[str]] = {}  # a sweep's locator -> the names of its jobs

    # -- reporting ---------------------------------------------------------------
    def error(self, message: str, where: str | None = None, field: str | None = None) -> None:
        self.problems.append(Problem(self.path, message, where, field))

    def warn(self, message: str, where: str | None = None, field: str | None = None) -> None:
        self.warnings.append(Problem(self.path, message, where, field))

    # -- whole file --------------------------------------------------------------
    def run(self) -> Manifest:
        data = self.data
        self.bound_values()
        for key in data:
            if key not in TOP_LEVEL_KEYS:
                self.error(f"unknown top-level key{_did_you_mean(key, list(TOP_LEVEL_KEYS))}", field=key)
        version = data.get("schema_version")
        if version is None:
            self.error(f"missing; add 'schema_version = {SCHEMA_VERSION}' at the top", field="schema_version")
        elif type(version) is not int:  # 1.0 == 1 in Python, but a version is a whole number
            self.error(f"must be the integer {SCHEMA_VERSION}, got {_describe(version)}", field="schema_version")
        elif version != SCHEMA_VERSION:
            self.error(f"unsupported version {_describe(version)}; this fleet reads {SCHEMA_VERSION}",
                       field="schema_version")
        name = data.get("name", "")
        if not isinstance(name, str):
            self.error(f"must be a string, got {_describe(name)}", field="name")
            name = ""

        defaults, lab_fields = self.check_defaults(self.table(data, "defaults"))
        allowed = self.check_allowed(self.table(data, "allowed"), lab_fields)
        hosts = self.check_hosts(self.table(data, "hosts"))
        jobs = self.check_jobs(data.get("jobs", []), defaults, lab_fields, allowed)
        if not self.problems:
            self.check_unrunnable(jobs, hosts)
        if self.problems:
            raise ManifestError(self.problems)
        return Manifest(
            path=self.path,
            name=name or path_text(os.path.splitext(os.path.basename(self.path))[0]),
            schema_version=SCHEMA_VERSION,
            hosts=hosts,
            jobs=tuple(jobs),
            defaults=defaults,
            allowed=allowed,
            lab_fields=tuple(sorted(lab_fields)),
            warnings=tuple(self.warnings),
            sweeps={label: tuple(names) for label, names in self.sweeps.items()},
        )

    def bound_values(self) -> None:
        """Cut every value to MAX_NESTING levels and 64-bit integers, reporting each where it stands,
        before any recursive code (the identity hash, repr, ==, json) walks it: deeper values raised
        RecursionError, longer integers ValueError. A job with such a value is dropped (as one with
        any other problem is), so its cut content is never compared with another job's."""
        for where, key, holder, slot in _slots(self.data):
            holder[slot], cut, clamped = bound_value(holder[slot])
            if cut:
                self.error(f"nested {MAX_NESTING + 1} or more levels deep; tables and lists may nest at most "
                           f"{MAX_NESTING} levels, flatten it", where, key)
            if clamped:
                self.error(f"holds an integer outside TOML's 64-bit range ({INT_RANGE[0]}..{INT_RANGE[1]}); "
                           f"write it as a string or a float", where, key)
            if cut or clamped:
                self.refused.add(where)

    def table(self, data: dict[str, Any], key: str) -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            self.error(f"must be a table ([{key}]), got {_describe(value)}", field=key)
            return {}
        return value

    # -- [defaults] and [allowed] ------------------------------------------------
    def check_defaults(self, table: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """Built-in defaults overlaid with [defaults]; new keys declare lab fields (typed by their default).

        A new key close to a job field's name is refused as its typo: as a lab field it would
        silently give every job a new id (so rerun them all) and drop the intended default."""
        defaults = builtin_defaults()
        lab_fields: dict[str, str] = {}
        for key, value in table.items():
            where = "[defaults]"
            if key == "name":
                self.error("a job name cannot have a default; give every job its own name", where, key)
                continue
            if key in FIELDS:
                if self.check_value(FIELDS[key].kind, key, value, where):
                    defaults[key] = value
                continue
            if not LAB_FIELD_RE.fullmatch(key):
                self.error("a lab field name must be lower_snake_case ([a-z_][a-z0-9_]*)", where, key)
                continue
            if key in RESERVED_NAMES:
                self.error("reserved name (the hash or the runner sets it); pick another lab field name",
                           where, key)
                continue
            typo_of = difflib.get_close_matches(key, list(FIELDS), n=1, cutoff=TYPO_CUTOFF)
            if typo_of:
                self.error(f"looks like a typo of {typo_of[0]!r}; a new key in [defaults] declares a lab field, "
                           f"which enters every job's identity (every job would be new); fix the spelling, or pick "
                           f"a lab field name less close to a job field", where, key)
                continue
            kind = kind_of(value)
            if kind is None or kind == "list":
                self.error(f"a lab field's default must be a string, number, boolean, list of strings "
                           f"or table, got {_describe(value)}", where, key)
                continue
            if not self.check_identity_value(key, value, where):
                continue
            lab_fields[key] = NUMBER if kind == INT or kind == NUMBER else kind
            defaults[key] = value
        for key in ("name",):
            defaults.pop(key, None)
        return defaults, lab_fields

    def check_allowed(self, table: dict[str, Any], lab_fields: dict[str, str]) -> dict[str, list[Any]]:
        known = sorted(set(FIELDS) | set(lab_fields))
        allowed: dict[str, list[Any]] = {}
        for key, values in table.items():
            if key not in FIELDS and key not in lab_fields:
                self.error(f"unknown field{_did_you_mean(key, known)}; [allowed] may only restrict job fields "
                           f"or lab fields declared in [defaults]", "[allowed]", key)
            elif not isinstance(values, list) or not values:
                self.error(f"must be a non-empty list of allowed values, got {_describe(values)}", "[allowed]", key)
            else:
                allowed[key] = values
        return allowed

    # -- [hosts] -----------------------------------------------------------------
    def check_hosts(self, table: dict[str, Any]) -> dict[str, HostSpec]:
        hosts: dict[str, HostSpec] = {}
        for name, spec in table.items():
            where = f"[hosts.{name}]"
            if not HOST_RE.fullmatch(name):
                self.error("host name must be 1-63 letters, digits, '_', '.' or '-' (as `hostname -s` prints)",
                           where)
                continue
            if not isinstance(spec, dict):
                self.error(f"must be a table, got {_describe(spec)}", where)
                continue
            values: dict[str, Any] = {}
            for key, value in spec.items():
                if key not in HOST_FIELDS:
                    self.error(f"unknown host field{_did_you_mean(key, list(HOST_FIELDS))}", where, key)
                    continue
                kind = HOST_FIELDS[key][0]
                if self.check_value(kind, key, value, where):
                    values[key] = value
            if "priority" in values and not PRIORITY_RANGE[0] <= values["priority"] <= PRIORITY_RANGE[1]:
                self.error(f"must be between {PRIORITY_RANGE[0]} and {PRIORITY_RANGE[1]}", where, "priority")
            self.check_globs(values.get("allow_jobs", []), where, "allow_jobs")
            self.check_globs(values.get("deny_jobs", []), where, "deny_jobs")
            hosts[name] = HostSpec(
                name=name,
                description=values.get("description", ""),
                priority=values.get("priority", 0),
                allow_jobs=tuple(values.get("allow_jobs", ())),
                deny_jobs=tuple(values.get("deny_jobs", ())),
            )
        return hosts

    def check_globs(self, globs: list[str], where: str, field: str) -> None:
        for glob in globs:
            if not glob.strip():
                self.error("empty pattern; remove it or write a name or glob", where, field)

    # -- [[jobs]] ----------------------------------------------------------------
    def check_jobs(self, jobs: Any, defaults: dict[str, Any], lab_fields: dict[str, str],
                   allowed: dict[str, list[Any]]) -> list[JobSpec]:
        if not isinstance(jobs, list) or not all(isinstance(j, dict) for j in jobs):
            self.error("must be an array of tables ([[jobs]])", field="jobs")
            return []
        specs: list[JobSpec] = []
        checked: list[JobSpec] = []  # specs and jobs dropped for their own problems, for the after checks
        by_name: dict[str, str] = {}  # name -> where it was written (an entry, or a sweep's point)
        by_id: dict[str, JobSpec] = {}
        known = set(FIELDS) | set(lab_fields)
        tables = {k for k, f in FIELDS.items() if f.kind == TABLE} | {k for k, kind in lab_fields.items()
                                                                       if kind == TABLE}
        expansion = expand(jobs, defaults, known, tables)  # sweeps, one table per point (manifest/sweeps.py)
        for where, field_name, message in expansion.problems:
            self.error(message, where, field_name)
        self.sweeps = expansion.sweeps
        for item in expansion.jobs:
            index, job, where = item.index, item.table, item.locator()
            if item.sweep is not None and item.sweep in self.refused:
                continue  # bound_values cut one of the sweep's values, and said so
            spec, ok = self.check_job(index, job, defaults, lab_fields, allowed, where)
            name = job.get("name")
            if isinstance(name, str):
                if name in by_name:
                    self.error(f"duplicate job name; {by_name[name]} already uses it", where, "name")
                    continue
                by_name[name] = where if item.sweep is not None else f"jobs[{index}]"
            if spec is None:
                continue
            other = by_id.get(spec.job_id)
            if other is not None:
                self.error(f"duplicates job {other.name!r} by content (job_id {spec.job_id}); disambiguate via "
                           f"hyper, seed or mode", spec.locator())
                continue
            by_id[spec.job_id] = spec
            checked.append(spec)
            if ok:
                specs.append(spec)
        # Every name written counts as known: a job dropped for its own problem is reported as
        # that problem, not again as an unknown job in its children's after.
        self.check_after(checked, set(by_name))
        return specs

    def check_job(self, index: int, job: dict[str, Any], defaults: dict[str, Any], lab_fields: dict[str, str],
                  allowed: dict[str, list[Any]], where: str | None = None) -> tuple[JobSpec | None, bool]:
        """The job's spec and whether it is free of problems. A job with problems still gets a
        spec when its name, model and identity are what the file says (every identity key it
        writes was accepted), so it is still checked for duplicates and its after edges.
        ``where``: how messages name it (a sweep's point says which point)."""
        where = where or _job_locator(index, job)
        before = len(self.problems)
        known = sorted(set(FIELDS) | set(lab_fields))
        for field_name in REQUIRED_FIELDS:
            if field_name not in job and field_name not in defaults:
                self.error("missing required field", where, field_name)
        values = dict(defaults)
        for key, value in job.items():
            if key in FIELDS:
                kind = FIELDS[key].kind
            elif key in lab_fields:
                kind = lab_fields[key]
            else:
                hint = _did_you_mean(key, known) or "; declare it in [defaults] to add a lab field"
                self.error(f"unknown field{hint}", where, key)
                continue
            if self.check_value(kind, key, value, where):
                values[key] = value
        # Value checks run even after a typo or a type error elsewhere in the job (a badly typed
        # field keeps its default here), so one pass reports every problem, not the first kind.
        if "name" in values and "model" in values:
            self.check_job_values(values, where, allowed)
        identity = {k: v for k, v in values.items() if k not in SCHEDULING_FIELDS}
        hashable = all([self.check_identity_value(k, v, where) for k, v in identity.items()])  # report each
        as_written = all(key in values for key in job if key not in SCHEDULING_FIELDS)
        if not (hashable and as_written and "name" in values and "model" in values) or where in self.refused:
            return None, False
        self.unique_parents(values, where)
        scheduling = {k: values[k] for k in sorted(SCHEDULING_FIELDS) if k in values}
        scheduling["name"] = values["name"]
        if scheduling["min_vram_gib"] > 0 and not scheduling["require_cuda"] and not scheduling.get("gpus"):
            self.warn("min_vram_gib > 0 but require_cuda = false: the job may run on CPU-only hosts, where "
                      "VRAM is ignored; set require_cuda = true if it needs a GPU", where, "min_vram_gib")
        spec = JobSpec(identity=identity, scheduling=scheduling, schema_version=SCHEMA_VERSION, index=index)
        return spec, len(self.problems) == before

    def check_job_values(self, v: dict[str, Any], where: str, allowed: dict[str, list[Any]]) -> None:
        if not safe_name(v["name"]):
            self.error("must be 1-64 letters, digits, '_', '.' or '-', start with a letter or digit and not "
                       "contain '..' (it names the job's output directory)", where, "name")
        elif JOB_ID_RE.fullmatch(v["name"]):
            self.error("reads as a job_id (16 lowercase hex digits), so a command naming another job by its "
                       "id could act on this one instead; rename it (add a letter past 'f', or a '-')", where,
                       "name")
        if not v["model"].strip():
            self.error("must not be empty", where, "model")
        if not PRIORITY_RANGE[0] <= v["priority"] <= PRIORITY_RANGE[1]:
            self.error(f"must be between {PRIORITY_RANGE[0]} and {PRIORITY_RANGE[1]}", where, "priority")
        for key in ("min_vram_gib", "min_ram_gib", "min_cores", "timeout_s", "stop_grace_s"):
            if v.get(key) is not None and v[key] < 0:
                self.error(f"must be >= 0, got {_describe(v[key])}", where, key)
        if not MAX_ATTEMPTS_RANGE[0] <= v["max_attempts"] <= MAX_ATTEMPTS_RANGE[1]:
            self.error(f"must be between {MAX_ATTEMPTS_RANGE[0]} and {MAX_ATTEMPTS_RANGE[1]}", where,
                       "max_attempts")
        delay = v.get("retry_delay_s")
        if delay is not None and not RETRY_DELAY_RANGE[0] <= delay <= RETRY_DELAY_RANGE[1]:
            self.error(f"must be between {RETRY_DELAY_RANGE[0]} and {RETRY_DELAY_RANGE[1]} seconds, got "
                       f"{_describe(delay)}", where, "retry_delay_s")
        self.check_gpu_fields(v, where)
        both = sorted(set(v["allowed_hosts"]) & set(v["denied_hosts"]))
        if both:
            self.error(f"{both} also in denied_hosts; a host cannot be both allowed and denied", where,
                       "allowed_hosts")
        for key in ("allowed_hosts", "denied_hosts"):
            self.check_globs(v[key], where, key)
        if v["command"] and v["entrypoint"]:
            self.error("set either command or entrypoint, not both", where, "command")
        if v["entrypoint"] and not ENTRYPOINT_RE.fullmatch(v["entrypoint"]):
            self.error("must look like 'package.module:function'", where, "entrypoint")
        self.check_placeholders(v, where)
        for key, choices in allowed.items():
            value = v.get(key)
            items = value if isinstance(value, list) else [value]
            for item in items:
                if value is not None and item not in choices:
                    self.error(f"{_describe(item)} is not allowed; [allowed] {key} is {choices}", where, key)

    def check_gpu_fields(self, v: dict[str, Any], where: str) -> None:
        """``gpus``, ``gpu_names`` and ``min_compute_capability``: ranges, and the combinations that
        contradict each other (a job that needs CUDA but asks for no GPU)."""
        gpus = v.get("gpus")
        if gpus is not None:
            if not GPUS_RANGE[0] <= gpus <= GPUS_RANGE[1]:
                self.error(f"must be between {GPUS_RANGE[0]} and {GPUS_RANGE[1]}, got {_describe(gpus)}", where,
                           "gpus")
            elif gpus == 0 and v["require_cuda"]:
                self.error("0 with require_cuda = true: a job that needs CUDA needs a GPU; set gpus >= 1 or drop "
                           "require_cuda", where, "gpus")
            elif gpus == 0 and v["min_vram_gib"] > 0:
                self.error("0 with min_vram_gib > 0: VRAM is reserved on the job's GPUs; set gpus >= 1 or "
                           "min_vram_gib = 0", where, "gpus")
        cc = v.get("min_compute_capability")
        if cc is not None and not COMPUTE_CAPABILITY_RANGE[0] <= cc <= COMPUTE_CAPABILITY_RANGE[1]:
            self.error(f"must be between {COMPUTE_CAPABILITY_RANGE[0]} and {COMPUTE_CAPABILITY_RANGE[1]} (e.g. 8.0 "
                       f"for Ampere), got {_describe(cc)}", where, "min_compute_capability")
        if v.get("gpu_names") is not None:
            self.check_globs(v["gpu_names"], where, "gpu_names")
        asks_kind = bool(v.get("gpu_names")) or bool(cc)
        if asks_kind and not v["require_cuda"] and not gpus:
            field = "gpu_names" if v.get("gpu_names") else "min_compute_capability"
            self.warn("set, but the job may run without a GPU (require_cuda = false, gpus unset), where it does "
                      "not apply; set require_cuda = true or gpus >= 1", where, field)

    def unique_parents(self, values: dict[str, Any], where: str) -> None:
        """Each dependency field with each name once, in first-seen order: a name listed twice is
        one edge (counted twice, the child waited for two finishes of a parent that finishes
        once). A name in two of the fields is an error: the child could not wait both ways."""
        seen: dict[str, str] = {}
        for field in DEPENDENCY_FIELDS:
            if field not in values:
                continue
            counts = Counter(values[field])
            for name in sorted(n for n, count in counts.items() if count > 1):
                self.warn(f"{name!r} is listed more than once; it counts once (remove the repeat)", where, field)
            values[field] = list(counts)  # a Counter keeps first-seen order
            for name in values[field]:
                if name in seen:
                    self.error(f"{name!r} is also in {seen[name]}; a job waits for a parent one way: keep it in one "
                               f"of {', '.join(DEPENDENCY_FIELDS)}", where, field)
                seen.setdefault(name, field)

    def check_placeholders(self, v: dict[str, Any], where: str) -> None:
        """Fill the command as the worker will, with stand-ins for the runtime values: an argument
        it could not fill would otherwise fail every attempt of the job, on the worker."""
        fields = runtime_fields(v, "0" * 16, "/runs/output_dir", 1, "/runs/resume_dir")
        parent_dirs = {parent: f"/runs/{parent}/output_dir" for parent in parents_of(v)}
        argv = []
        for index, arg in enumerate(v["command"]):
            try:
                filled = fill_arg(arg, fields, parent_dirs)
            except CommandError as err:
                hint = ""
                if err.unknown:
                    hint = (_did_you_mean(err.unknown, sorted(set(v) | RUNTIME_PLACEHOLDERS)) or
                            "; use a job field, a lab field from [defaults], {job_id}, {output_dir}, {attempt}, "
                            "{resume_dir} or {after.<job>.output_dir}")
                self.error(f"{err}{hint}", where, "command")
                continue
            if index == 0 and not filled:
                self.error("command[0] is empty; it must name the program to run", where, "command")
            argv.append(filled)
        if len(argv) == len(v["command"]):
            try:
                check_argv(argv)
            except CommandError as err:
                self.error(str(err), where, "command")

    def check_value(self, kind: str, key: str, value: Any, where: str | None) -> bool:
        if fits(kind, value):
            if kind == NUMBER and not math.isfinite(value):
                self.error(f"must be a finite number, got {value}", where, key)
                return False
            return True
        article = "an" if kind[0] in "aeiou" else "a"
        self.error(f"must be {article} {kind}, got {_describe(value)}", where, key)
        return False

    def check_identity_value(self, key: str, value: Any, where: str | None) -> bool:
        """Identity values are hashed: no dates (ambiguous canonical form), no nan/inf."""
        bad = _find_unhashable(value)
        if bad is not None:
            self.error(f"{bad}; identity fields must hold strings, numbers, booleans, lists and tables", where, key)
            return False
        return True

    def check_after(self, specs: list[JobSpec], known: set[str]) -> None:
        """Unknown parents (not among ``known``, every name the file writes) and cycles among
        ``specs``, over all three dependency fields."""
        names = {s.name: s for s in specs}
        for spec in specs:
            for parent, field in parents_of(spec.scheduling).items():
                if parent == spec.name:
                    self.error("a job cannot run after itself", spec.locator(), field)
                elif parent not in known:
                    self.error(f"unknown job {parent!r}{_did_you_mean(parent, sorted(known))}", spec.locator(),
                               field)
        cycle = _find_cycle({s.name: [p for p in parents_of(s.scheduling) if p in names and p != s.name]
                             for s in specs})
        if cycle:
            first = names[cycle[0]]
            self.error(f"dependency cycle {' -> '.join(cycle)}; remove one edge", first.locator(),
                       parents_of(first.scheduling).get(cycle[1], "after"))

    def check_unrunnable(self, jobs: list[JobSpec], hosts: dict[str, HostSpec]) -> None:
        """Warn about jobs every declared host refuses (workers on undeclared hosts may still take them)."""
        from ..matching import host_rule_reason, job_host_reason

        if not hosts:
            return
        for job in jobs:
            s = job.scheduling
            if all(host_rule_reason(h, job.model, job.name) or
                   job_host_reason(s["allowed_hosts"], s["denied_hosts"], h.name) for h in hosts.values()):
                self.warn("no host in [hosts] may run this job (allow/deny tables and allowed_hosts/"
                          "denied_hosts rule them all out); it will wait for an undeclared host", job.locator())


def _slots(data: dict[str, Any]) -> Iterator[tuple[str | None, str | None, Any, Any]]:
    """(locator, field, container, key) for every value a problem can name, ``container[key]``:
    each key of [defaults], [allowed], every [hosts.NAME] and [[jobs]] entry, the other top-level keys."""
    for key, value in data.items():
        if key in ("defaults", "allowed") and isinstance(value, dict):
            yield from ((f"[{key}]", k, value, k) for k in value)
        elif key == "hosts" and isinstance(value, dict):
            for name, spec in value.items():
                if isinstance(spec, dict):
                    yield from ((f"[hosts.{name}]", k, spec, k) for k in spec)
                else:
                    yield f"[hosts.{name}]", None, value, name
        elif key == "jobs" and isinstance(value, list):
            for index, job in enumerate(value):
                if isinstance(job, dict):
                    yield from ((_job_locator(index, job), k, job, k) for k in job)
                else:
                    yield _job_locator(index, job), None, value, index
        else:
            yield None, key, data, key


def _find_unhashable(value: Any) -> str | None:
    if isinstance(value, (datetime, date, time)):
        return f"TOML dates are not supported ({value.isoformat()}); quote it as a string"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not a finite number"
    if isinstance(value, dict):
        for item in value.values():
            found = _find_unhashable(item)
            if found:
                return found
    if isinstance(value, list):
        for item in value:
            found = _find_unhashable(item)
            if found:
                return found
    return None


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A cycle in the ``after`` graph as [a, b, ..., a], or None.

    Depth-first with an explicit stack, not recursion: a pipeline thousands of jobs
    long must be validated, not crash on Python's recursion limit.
    """
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {n: WHITE for n in graph}
    for start in sorted(graph):
        if colour[start] != WHITE:
            continue
        colour[start] = GREY
        path, pending = [start], [iter(graph[start])]
        while pending:
            nxt = next(pending[-1], None)
            if nxt is None:
                colour[path.pop()] = BLACK
                pending.pop()
            elif colour[nxt] == GREY:
                return path[path.index(nxt):] + [nxt]
            elif colour[nxt] == WHITE:
                colour[nxt] = GREY
                path.append(nxt)
                pending.append(iter(graph[nxt]))
    return None
