"""Generated manifests, valid and broken: the loader refuses them cleanly, quickly and cheaply.

Whatever the file holds (tables and lists nested past the limit, every field of the wrong
type, control characters and non-ASCII, huge numbers, format specs, repeated names, after
lists, text cut or spliced anywhere), ``parse_manifest`` raises nothing but ManifestError,
takes under a second and under 200 MB, and a load the store refuses writes nothing.
Deterministic (derandomize), so CI sees the same examples every run.
"""

from __future__ import annotations

import time
import tracemalloc

import fakeredis
import tomli_w
from hypothesis import HealthCheck, event, given, reject, settings
from hypothesis import strategies as st
from support.stores import make_store
from support.tally import TALLY

from scheduler.embedded_redis import dump_namespace
from scheduler.errors import ManifestError
from scheduler.manifest import parse_manifest
from scheduler.manifest.fields import FIELDS, HOST_FIELDS

MAX_SECONDS = 1.0
MAX_BYTES = 200 * 2**20

NAMES = ["a", "b", "train", "eval", "0123456789abcdef", "../x", "", "café", "x" * 70]
MODELS = ["cnn", "mlp", "", " "]
FORMAT_ARGS = ["{model}", "{model:>2000}", "{model:>1024}", "{model:>400000000}", "{seed:.300000000}",
               "{hyper[w]}", "{model:>{hyper[w]}}", "{hyper[lr]:.3000f}", "{seed:,}", "{after.a.output_dir}",
               "{after.train.output_dir}", "{job_id}", "{output_dir}", "{attempt}", "{{x}}", "{", "}", "{0}",
               "{model.__class__}", "{model!r:^1025}", "{hyper[s]}" * 50, "a\x00b"]

text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
numbers = st.one_of(st.integers(-2**70, 2**70), st.sampled_from([0, -1, 2**63 - 1, 2**63, -2**63 - 1, 10**30]),
                    st.floats(allow_nan=True, allow_infinity=True))
long_args = st.sampled_from([131_071, 131_072]).map("z".__mul__)  # at and past MAX_ARG_STRLEN
scalars = st.one_of(st.booleans(), numbers, text, st.dates(), st.sampled_from(FORMAT_ARGS))
keys = st.one_of(st.sampled_from(sorted(FIELDS) + ["w", "lr", "s", "a"]), text)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
                      max_leaves=12)


@st.composite
def deep(draw) -> object:
    """A table or list chain nested up to past the 32-level limit."""
    value: object = draw(scalars)
    for wrap in draw(st.lists(st.sampled_from(["table", "list"]), min_size=1, max_size=45)):
        value = {"a": value} if wrap == "table" else [value]
    return value


anything = st.one_of(values, deep())
good = {
    "name": st.sampled_from(NAMES), "model": st.sampled_from(MODELS), "mode": st.sampled_from(["x", "y"]),
    "seed": st.integers(0, 3), "priority": st.integers(-1001, 1001), "max_attempts": st.integers(0, 101),
    "min_cores": st.integers(-1, 4), "min_vram_gib": st.floats(-1, 100), "timeout_s": st.floats(-1, 10),
    "hyper": st.fixed_dictionaries({}, optional={"w": st.sampled_from([0, 1024, 1025, 300_000_000]),
                                                 "lr": st.floats(0, 1),
                                                 "s": st.text(max_size=30)}),
    "after": st.lists(st.sampled_from(NAMES), max_size=3),
    "command": st.lists(st.one_of(st.sampled_from(FORMAT_ARGS), text, long_args), max_size=4),
    "entrypoint": st.sampled_from(["m:f", "bad", ""]),
}


def field_value(name: str) -> st.SearchStrategy:
    """Mostly a plausible value for the field, sometimes anything at all."""
    return st.one_of(good[name], anything) if name in good else anything


jobs = st.lists(st.fixed_dictionaries({"name": field_value("name"), "model": field_value("model")},
                                      optional={f: field_value(f) for f in FIELDS if f not in ("name", "model")}
                                      | {"unknown_field": anything, "split_recipe": anything}),
                max_size=6)
# Mostly valid manifests too, so loads reach the store: base0-2 are BASE's jobs (kept, updated or
# orphaned by a load), the rest new; repeated names, after lists and commands still go wrong at times.
VALID_NAMES = ["base0", "base1", "base2", "a", "b", "train", "eval"]
VALID_ARGS = ["echo", "{model}", "{seed:03d}", "{job_id}", "{output_dir}", "{model:>1024}", "{{x}}", "{attempt}"]


@st.composite
def plausible_jobs(draw) -> list[dict]:
    jobs = []
    for position, name in enumerate(draw(st.lists(st.sampled_from(VALID_NAMES), max_size=6, unique=True))):
        job = {"name": name, "model": "m", "seed": int(name[-1]) if name.startswith("base") else 10 + position}
        job.update(draw(st.fixed_dictionaries({}, optional={
            "priority": st.integers(-5, 5), "after": st.lists(st.sampled_from(VALID_NAMES), max_size=2),
            "command": st.tuples(st.lists(st.sampled_from(VALID_ARGS), min_size=1, max_size=3),
                                 st.integers(0, 9), long_args).map(  # a tenth end in a long argument
                lambda drawn: drawn[0] + ([drawn[2]] if drawn[1] == 0 else []))})))
        jobs.append(job)
    return jobs


hosts = st.dictionaries(st.sampled_from(["gpu-1", "cpu", "bad host", ""]),
                        st.fixed_dictionaries({}, optional={f: anything for f in HOST_FIELDS}), max_size=2)
plausible = st.fixed_dictionaries({"schema_version": st.just(1), "jobs": plausible_jobs()})
wild = st.fixed_dictionaries(
    {"jobs": st.one_of(jobs, jobs, anything)},
    optional={"schema_version": st.one_of(st.just(1), st.just(1), anything), "name": st.one_of(text, anything),
              "defaults": st.one_of(st.dictionaries(st.sampled_from(["split_recipe", "min_ram_gib", "name",
                                                                     "min_ram_gb", "dataset"]), anything,
                                                    max_size=2), anything),
              "allowed": st.dictionaries(st.sampled_from(["mode", "model", "colour"]), anything, max_size=1),
              "hosts": st.one_of(hosts, anything), "extra": anything})
documents = st.one_of(plausible, wild)

# Raw text mutations, (rendered text, a position in it, a size, a snippet) -> text: broken TOML,
# and what tomli_w cannot write (inline tables and arrays hundreds deep, long keys and numbers).
MUTATIONS = {
    "none": lambda doc, at, size, s: doc,
    "cut": lambda doc, at, size, s: doc[:at],
    "splice": lambda doc, at, size, s: doc[:at] + s + doc[at:],
    "bom": lambda doc, at, size, s: "\ufeff" + doc,
    "deep-inline": lambda doc, at, size, s: f"{doc}\n[[jobs]]\nname = 'deep'\nmodel = 'm'\nhyper = "
                                            f"{'{a=' * size}1{'}' * size}\n",
    "deep-array": lambda doc, at, size, s: f"{doc}\nextra_deep = {'[' * size}{']' * size}\n",
    "long-key": lambda doc, at, size, s: f"{doc}\n{'x.' * (size * 10)}x = 1\n",
    "long-int": lambda doc, at, size, s: f"{doc}\nbig = {'9' * (size * 4 + 1)}\n",
    "hex-int": lambda doc, at, size, s: f"{doc}\n[[jobs]]\nname = 'hex'\nmodel = 'm'\n"
                                        f"seed = 0x{'f' * (size * 4 + 1)}\n",
    "duplicate-line": lambda doc, at, size, s: doc + "\n" + ((doc.splitlines() or [""]) * 2)[at % 2],
}
BASE = parse_manifest("schema_version = 1\n" + "".join(f'[[jobs]]\nname = "base{i}"\nmodel = "m"\nseed = {i}\n'
                                                         for i in range(3)), "base.toml")


def parse_within_limits(text: str):
    """The parsed manifest or None if refused; fails on any other exception, or past the time
    (measured untraced: tracemalloc slows allocation several times) or memory bound."""
    started = time.monotonic()
    try:
        manifest = parse_manifest(text, "fuzz.toml")
    except ManifestError as err:
        assert err.problems and all(str(p).startswith("fuzz.toml") for p in err.problems)
        manifest = None
    elapsed = time.monotonic() - started
    assert elapsed < MAX_SECONDS, f"took {elapsed:.2f}s"
    tracemalloc.start()
    try:
        parse_manifest(text, "fuzz.toml")
    except ManifestError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MAX_BYTES, f"used {peak / 2**20:.0f} MB"
    return manifest


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(doc=documents, mutation=st.one_of(st.just("none"), st.sampled_from(sorted(MUTATIONS))),
       at=st.integers(0, 100_000), size=st.integers(0, 2000),
       spliced=st.sampled_from(["\n", "[[jobs]]\n", "=", '"', "\x00", "\r", "{", "]", "é", "#", "'''", "\t"]),
       allow_orphaning=st.booleans())
def test_the_loader_refuses_any_manifest_cleanly_and_a_refused_load_writes_nothing(doc, mutation, at, size, spliced,
                                                                                   allow_orphaning):
    try:
        rendered = tomli_w.dumps(doc)
    except (TypeError, ValueError, RecursionError):
        reject()  # a shape tomli_w cannot write (the raw mutations cover broken text)
    text = MUTATIONS[mutation](rendered, at % (len(rendered) + 1), size, spliced)
    TALLY.hostile()
    manifest = parse_within_limits(text)
    if manifest is None:
        event("refused by the loader")
        return
    store = make_store(fakeredis.FakeRedis())
    store.load(BASE)
    before = dump_namespace(store.redis)
    try:
        store.load(manifest, allow_orphaning=allow_orphaning)
        event("loaded")
    except ManifestError as err:  # the store's own refusal: orphaning the fleet
        event("refused by the store")
        assert "--allow-orphaning" in str(err) and not allow_orphaning
        assert dump_namespace(store.redis) == before
