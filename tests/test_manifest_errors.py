"""Broken manifests: each is rejected with the file, job and field named, and Redis is untouched."""

from __future__ import annotations

import pytest

from scheduler.embedded_redis import dump_namespace
from scheduler.errors import ManifestError
from scheduler.manifest import load_manifest, parse_manifest

GOOD = """schema_version = 1
name = "lab"
[defaults]
split_recipe = "host"
[allowed]
mode = ["realistic", "oracle"]
[hosts.gpu-a100]
priority = 10
[[jobs]]
name = "a"
model = "cnn"
mode = "realistic"
[[jobs]]
name = "b"
model = "mlp"
mode = "oracle"
"""


def job(extra: str, name: str = "x", model: str = "knn") -> str:
    return GOOD + f'[[jobs]]\nname = "{name}"\nmodel = "{model}"\n{extra}\n'


# (case id, manifest text, substrings the one-line error must contain)
CASES = [
    ("invalid-toml", GOOD + "[[jobs]\n", ["invalid TOML", "line"]),
    ("missing-name", GOOD + '[[jobs]]\nmodel = "knn"\n', ["jobs[2]", "name", "missing required field"]),
    ("missing-model", GOOD + '[[jobs]]\nname = "x"\n', ["jobs[2] 'x'", "model", "missing required field"]),
    ("typo-did-you-mean", job("min_vram_gb = 3"), ["jobs[2] 'x'", "min_vram_gb", "did you mean 'min_vram_gib'"]),
    ("unknown-no-match", job("zzzz = 1"), ["zzzz", "declare it in [defaults]"]),
    ("string-for-int", job('priority = "high"'), ["priority", "must be an integer", "'high'"]),
    ("float-for-cores", job("min_cores = 1.5"), ["min_cores", "must be an integer"]),
    ("bool-for-number", job("min_ram_gib = true"), ["min_ram_gib", "must be a number"]),
    ("ints-for-hosts", job("allowed_hosts = [1, 2]"), ["allowed_hosts", "list of strings"]),
    ("negative-ram", job("min_ram_gib = -1"), ["min_ram_gib", ">= 0"]),
    ("negative-vram", job("min_vram_gib = -0.5"), ["min_vram_gib", ">= 0"]),
    ("negative-timeout", job("timeout_s = -5"), ["timeout_s", ">= 0"]),
    ("priority-range", job("priority = 5000"), ["priority", "between -1000 and 1000"]),
    ("max-attempts-zero", job("max_attempts = 0"), ["max_attempts", "between 1 and 100"]),
    ("outside-allowed", job('mode = "fantasy"'), ["mode", "not allowed", "realistic"]),
    ("duplicate-name", job('mode = "oracle"', name="a"), ["jobs[2] 'a'", "duplicate job name", "jobs[0]"]),
    ("duplicate-identity", job('mode = "realistic"', name="c", model="cnn"),
     ["jobs[2] 'c'", "duplicates job 'a' by content", "disambiguate via hyper"]),
    ("allowed-and-denied", job('allowed_hosts = ["h1"]\ndenied_hosts = ["h1"]'),
     ["allowed_hosts", "cannot be both allowed and denied"]),
    ("unknown-host-field", GOOD + "[hosts.cpu-1]\nprio = 3\n", ["[hosts.cpu-1]", "prio", "did you mean 'priority'"]),
    ("bad-host-name", GOOD + '[hosts."bad host"]\npriority = 1\n', ["bad host", "host name must be"]),
    ("host-priority-type", GOOD + '[hosts.cpu-1]\npriority = "top"\n', ["[hosts.cpu-1]", "priority", "integer"]),
    ("name-traversal", job("", name="../etc"), ["name", "must be 1-64"]),
    ("name-slash", job("", name="a/b"), ["name", "must be 1-64"]),
    ("name-leading-dot", job("", name=".hidden"), ["name", "start with a letter or digit"]),
    ("name-too-long", job("", name="n" * 65), ["name", "1-64"]),
    ("name-dotdot", job("", name="a..b"), ["name", "'..'"]),
    ("name-like-a-job-id", job("", name="0123456789abcdef"),
     ["jobs[2] '0123456789abcdef': name", "reads as a job_id", "rename it"]),
    ("name-in-defaults", GOOD.replace("[defaults]\n", '[defaults]\nname = "x"\n'),
     ["[defaults]", "name", "cannot have a default"]),
    ("bad-lab-field-name", GOOD.replace("[defaults]\n", '[defaults]\nSplitRecipe = "x"\n'),
     ["SplitRecipe", "lower_snake_case"]),
    ("lab-field-type", job("split_recipe = 3"), ["split_recipe", "must be a string"]),
    ("unknown-allowed-field", GOOD.replace("[allowed]\n", "[allowed]\ncolour = [1]\n"),
     ["[allowed]", "colour", "unknown field"]),
    ("missing-schema-version", GOOD.replace("schema_version = 1\n", ""), ["schema_version", "missing"]),
    ("wrong-schema-version", GOOD.replace("schema_version = 1", "schema_version = 2"),
     ["schema_version", "unsupported version 2"]),
    ("float-schema-version", GOOD.replace("schema_version = 1", "schema_version = 1.0"),
     ["schema_version", "must be the integer 1", "got 1.0"]),
    ("unknown-top-level", GOOD + "\n", None),  # replaced below
    ("jobs-not-array", 'schema_version = 1\njobs = "all"\n', ["jobs", "array of tables"]),
    ("after-unknown", job('after = ["trian"]'), ["after", "unknown job 'trian'"]),
    ("after-self", job('after = ["x"]'), ["after", "cannot run after itself"]),
    ("after-cycle", GOOD.replace('name = "a"\nmodel = "cnn"\n', 'name = "a"\nmodel = "cnn"\nafter = ["b"]\n')
     .replace('name = "b"\nmodel = "mlp"\n', 'name = "b"\nmodel = "mlp"\nafter = ["a"]\n'),
     ["after", "dependency cycle", "a -> b -> a"]),
    ("command-and-entrypoint", job('command = ["run"]\nentrypoint = "m:f"'), ["command", "not both"]),
    ("bad-entrypoint", job('entrypoint = "not a path"'), ["entrypoint", "package.module:function"]),
    ("unknown-placeholder", job('command = ["train", "--lr={hyper[lr]}", "{lr}"]'),
     ["command", "unknown placeholder {lr}"]),
    ("nan-in-hyper", job("hyper = { lr = nan }"), ["hyper", "not a finite number"]),
    ("date-in-hyper", job("hyper = { start = 2024-01-01 }"), ["hyper", "TOML dates are not supported"]),
    ("empty-model", job("", model=""), ["model", "must not be empty"]),
    ("empty-glob", job('denied_hosts = [""]'), ["denied_hosts", "empty pattern"]),
    ("defaults-typo-ram", GOOD.replace("[defaults]\n", "[defaults]\nmin_ram_gb = 4\n"),
     ["[defaults]: min_ram_gb", "typo of 'min_ram_gib'", "every job's identity", "fix the spelling"]),
    ("defaults-typo-cuda", GOOD.replace("[defaults]\n", "[defaults]\nrequre_cuda = true\n"),
     ["[defaults]: requre_cuda", "typo of 'require_cuda'"]),
    ("defaults-typo-priority", GOOD.replace("[defaults]\n", "[defaults]\npriorty = 3\n"),
     ["[defaults]: priorty", "typo of 'priority'"]),
    ("placeholder-key-not-in-hyper", job('hyper = { epochs = 3 }\ncommand = ["echo", "{hyper[lr]}"]'),
     ["jobs[2] 'x': command", "{hyper[lr]}", "no key 'lr'"]),
    ("placeholder-key-no-hyper", job('command = ["echo", "{hyper[nosuch]}"]'),
     ["jobs[2] 'x': command", "{hyper[nosuch]}", "no key 'nosuch'"]),
    ("placeholder-attribute", job('command = ["echo", "{model.__class__}"]'),
     ["jobs[2] 'x': command", "{model.__class__}", "attribute"]),
    ("placeholder-format-spec", job('command = ["echo", "{model:x}"]'),
     ["jobs[2] 'x': command", "{model:x}", "Unknown format code 'x'"]),
    ("command-nul-byte", job('command = ["echo", "a\\u0000b"]'), ["jobs[2] 'x': command", "NUL byte"]),
    ("command-empty-program", job('command = [""]'), ["jobs[2] 'x': command", "command[0] is empty"]),
    ("command-format-width", job('command = ["echo", "{model:>400000000}"]'),
     ["jobs[2] 'x': command", "'>400000000'", "at most 1024"]),
    ("command-nested-format-width", job('hyper = { w = 2000 }\ncommand = ["echo", "{model:>{hyper[w]}}"]'),
     ["jobs[2] 'x': command", "'>2000'", "at most 1024"]),
    ("command-format-precision", job('hyper = { lr = 0.5 }\ncommand = ["echo", "{hyper[lr]:.5000f}"]'),
     ["jobs[2] 'x': command", "'.5000f'", "at most 1024"]),
    ("command-argument-too-long", job('command = ["echo", "' + "x" * 200_000 + '"]'),
     ["jobs[2] 'x': command", "200000 bytes", "at most 131071"]),
    ("command-argument-too-long-in-utf8", job('command = ["echo", "' + "\u00e9" * 70_000 + '"]'),
     ["jobs[2] 'x': command", "140000 bytes", "at most 131071"]),
    ("command-too-long", job("command = [" + ", ".join(['"' + "y" * 100_000 + '"'] * 12) + "]"),
     ["jobs[2] 'x': command", "the whole command is 1200108 bytes", "at most"]),
    ("hyper-nested-too-deep", job("hyper." + ".".join(["a"] * 40) + " = 1"),
     ["jobs[2] 'x': hyper", "nested 33 or more levels deep", "at most 32"]),
    ("dotted-key-too-long", job("hyper." + ".".join(["a"] * 10000) + " = 1"),
     ["line 20", "a dotted key of more than 64 parts", "at most 32 levels"]),
    ("integer-past-64-bits", job("seed = 0x" + "f" * 5000), ["jobs[2] 'x': seed", "outside TOML's 64-bit range"]),
    ("integer-too-long-to-read", job("hyper = { n = " + "9" * 5000 + " }"), ["invalid TOML", "more than 4300 digits"]),
    ("toml-nested-too-deep", job("hyper = " + "{ a = " * 1000 + "1" + " }" * 1000),
     ["invalid TOML", "nested too deeply", "at most 32"]),
]
CASES[[c[0] for c in CASES].index("unknown-top-level")] = (
    "unknown-top-level", GOOD.replace('name = "lab"', 'name = "lab"\njob = []'), ["job", "unknown top-level key",
                                                                              "did you mean 'jobs'"])


@pytest.mark.parametrize("text,expected", [(t, e) for _, t, e in CASES], ids=[c[0] for c in CASES])
def test_broken_manifest_is_rejected_naming_file_job_and_field(text, expected, tally):
    tally.hostile()
    with pytest.raises(ManifestError) as err:
        parse_manifest(text, "lab.toml")
    message = str(err.value)
    assert message.startswith("lab.toml") or "lab.toml:" in message
    for part in expected:
        assert part in message, (part, message)
    assert all(str(p).startswith("lab.toml") for p in err.value.problems)


def test_at_least_thirty_distinct_broken_manifests():
    assert len({text for _, text, _ in CASES}) >= 30


def test_every_rejected_reload_leaves_redis_untouched(fake_redis):
    """A loaded store, then each broken manifest offered as a reload: not one byte changes."""
    from support.stores import make_store

    store = make_store(fake_redis)
    store.load(parse_manifest(GOOD, "lab.toml"))
    before = dump_namespace(fake_redis)
    for case, text, _ in CASES:
        with pytest.raises(ManifestError):
            store.load(parse_manifest(text, "lab.toml"))
        assert dump_namespace(fake_redis) == before, case


ON_REAL_REDIS = ("invalid-toml", "typo-did-you-mean", "duplicate-name", "duplicate-identity", "after-cycle")


@pytest.mark.parametrize("text", [pytest.param(text, id=case) for case, text, _ in CASES if case in ON_REAL_REDIS])
def test_rejected_reload_leaves_a_real_redis_untouched(real_store, real_redis, text):
    real_store.load(parse_manifest(GOOD, "lab.toml"))
    before = dump_namespace(real_redis)
    with pytest.raises(ManifestError):
        real_store.load(parse_manifest(text, "lab.toml"))
    assert dump_namespace(real_redis) == before


def test_every_problem_is_reported_at_once():
    text = job('min_vram_gb = 3\npriority = "x"') + '[[jobs]]\nmodel = "knn"\n' + "[hosts.h]\nprio = 1\n"
    with pytest.raises(ManifestError) as err:
        parse_manifest(text, "lab.toml")
    assert len(err.value.problems) == 4
    assert str(err.value).startswith("4 problems in manifest; nothing was loaded")


def test_value_problems_are_reported_beside_a_typo_in_the_same_job():
    with pytest.raises(ManifestError) as err:
        parse_manifest(job('min_vram_gb = 3\nmin_cores = -2\nmode = "nope"'), "lab.toml")
    fields = sorted(problem.field for problem in err.value.problems)
    assert fields == ["min_cores", "min_vram_gb", "mode"]


def test_vram_without_cuda_loads_with_a_warning_naming_the_field():
    manifest = parse_manifest(job("min_vram_gib = 8"), "lab.toml")
    [warning] = manifest.warnings
    assert "jobs[2] 'x'" in str(warning) and "min_vram_gib" in str(warning) and "require_cuda" in str(warning)


def test_non_utf8_and_missing_files(tmp_path):
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(GOOD.encode() + b'# caf\xe9\n')
    with pytest.raises(ManifestError, match="not UTF-8"):
        load_manifest(bad)
    with pytest.raises(ManifestError, match="file not found"):
        load_manifest(tmp_path / "nope.toml")


def test_after_placeholder_must_name_a_listed_parent():
    text = job('command = ["eval", "{after.train.output_dir}"]\nafter = ["a"]')
    with pytest.raises(ManifestError, match=r"\{after.train.output_dir\} must be"):
        parse_manifest(text, "lab.toml")
    ok = job('command = ["eval", "{after.a.output_dir}"]\nafter = ["a"]')
    assert parse_manifest(ok, "lab.toml").jobs[-1].scheduling["after"] == ["a"]


def test_a_defaults_typo_fails_the_shipped_example_instead_of_making_every_job_new():
    """Before, min_ram_gb in [defaults] declared a lab field: all 54 jobs got new ids and lost their RAM default."""
    text = open("manifests/example.toml").read().replace("min_ram_gib = 4", "min_ram_gb = 4", 1)
    with pytest.raises(ManifestError) as err:
        parse_manifest(text, "example.toml")
    [problem] = err.value.problems
    assert (problem.job, problem.field) == ("[defaults]", "min_ram_gb") and "'min_ram_gib'" in problem.message


def test_lab_fields_unlike_any_job_field_still_load():
    text = GOOD.replace("[defaults]\n", '[defaults]\ndataset = "cifar"\nlr_schedule = "cosine"\n'
                                          'train_hosts = ["thinkpad"]\n')
    manifest = parse_manifest(text, "lab.toml")
    assert set(manifest.lab_fields) == {"split_recipe", "dataset", "lr_schedule", "train_hosts"}


def test_every_bad_argument_of_a_command_is_reported():
    with pytest.raises(ManifestError) as err:
        parse_manifest(job('command = ["{model.__class__}", "{hyper[lr]}", "ok", "{nope}"]'), "lab.toml")
    assert [p.field for p in err.value.problems] == ["command"] * 3


def test_a_command_that_loads_is_filled_by_the_worker():
    """The loader fills commands as the worker will; what it accepts, the worker can run."""
    import json

    from worker.runner import build_argv

    text = job('hyper = { lr = 0.5, layers = [64, 32] }\nseed = 7\nafter = ["a"]\ncommand = ["train", '
               '"--lr={hyper[lr]}", "{hyper[layers][1]}", "{seed:x}", "{seed:03d}", "{{literal}}", '
               '"{after.a.output_dir}", "{job_id}", "{attempt}", "{output_dir}", "{split_recipe}", "{model!r}"]')
    spec = parse_manifest(text, "lab.toml").job_named("x")
    stored = json.loads(json.dumps(spec.to_dict()))  # as the worker reads it back from Redis
    argv = build_argv(stored, spec.job_id, "/runs/x/attempt-2", 2, {"a": "/runs/a/attempt-1"})
    assert argv == ["train", "--lr=0.5", "32", "7", "007", "{literal}", "/runs/a/attempt-1", spec.job_id, "2",
                    "/runs/x/attempt-2", "host", "'knn'"]


def nested(levels: int, leaf: str = "1") -> str:
    """``hyper`` as a table ``levels`` deep, written with dotted keys (which TOML parses without recursing)."""
    return "hyper." + ".".join(["a"] * levels) + f" = {leaf}"


def test_nesting_is_accepted_up_to_the_documented_limit_and_refused_past_it():
    from scheduler.manifest.bounds import MAX_NESTING

    assert parse_manifest(job(nested(MAX_NESTING)), "lab.toml").job_named("x").identity["hyper"]
    assert parse_manifest(job(nested(MAX_NESTING - 1, "[1]")), "lab.toml").job_named("x")
    for too_deep in (job(nested(MAX_NESTING + 1)), job(nested(MAX_NESTING, "[1]"))):
        with pytest.raises(ManifestError) as err:
            parse_manifest(too_deep, "lab.toml")
        [problem] = err.value.problems
        assert (problem.job, problem.field) == ("jobs[2] 'x'", "hyper")


@pytest.mark.parametrize("where,text,locator,field", [
    ("defaults", GOOD.replace("[defaults]\n", "[defaults]\n" + nested(40).replace("hyper.", "deep.", 1) + "\n"),
     "[defaults]", "deep"),
    ("hosts", GOOD + "[hosts.cpu-1]\n" + nested(40).replace("hyper.", "description.", 1) + "\n",
     "[hosts.cpu-1]", "description"),
    ("top-level", nested(40).replace("hyper.", "extra.", 1) + "\n" + GOOD, None, "extra"),
    ("array", job("hyper.a = " + "[" * 40 + "1" + "]" * 40), "jobs[2] 'x'", "hyper"),
])
def test_a_value_nested_too_deep_anywhere_is_one_problem_naming_where(where, text, locator, field):
    """Before, a value ~330 or more levels deep crashed the loader with RecursionError (fleet load
    exited 1 with a traceback, and the receiver died)."""
    with pytest.raises(ManifestError) as err:
        parse_manifest(text, "lab.toml")
    deep = [p for p in err.value.problems if "levels deep" in p.message]
    assert [(p.job, p.field) for p in deep] == [(locator, field)]


def test_a_value_nested_too_deep_does_not_hide_the_jobs_other_problems():
    with pytest.raises(ManifestError) as err:
        parse_manifest(job(nested(40) + '\npriority = "high"\nmin_vram_gb = 1'), "lab.toml")
    assert sorted(p.field for p in err.value.problems) == ["hyper", "min_vram_gb", "priority"]


def test_integers_load_up_to_64_bits_and_are_refused_past_them():
    """Before, a long hex literal (ints past Python's 4300-digit text limit) crashed the identity hash
    with ValueError; TOML's integers are 64-bit, as the spec requires a reader to enforce."""
    spec = parse_manifest(job(f"seed = {2**63 - 1}\nhyper = {{ n = {-2**63} }}"), "lab.toml").job_named("x")
    assert spec.identity["seed"] == 2**63 - 1
    with pytest.raises(ManifestError) as err:
        parse_manifest(job(f"seed = {2**63}\nhyper = {{ n = [0x{'f' * 5000}] }}"), "lab.toml")
    assert [(p.job, p.field) for p in err.value.problems] == [("jobs[2] 'x'", "seed"), ("jobs[2] 'x'", "hyper")]


def assert_refused_cheaply(text: str, match: str) -> None:
    """``text`` is refused (the error matching ``match``) within a second and 20 MB of Python memory."""
    import time
    import tracemalloc

    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(ManifestError, match=match):
            parse_manifest(text, "lab.toml")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20 and time.monotonic() - started < 1.0


def test_a_huge_format_width_is_refused_before_it_allocates_anything():
    """Before, {model:>400000000} loaded as valid at 412 MB (and the receiver did it on every reload)."""
    assert_refused_cheaply(job('command = ["echo", "{model:>400000000}"]'), "at most 1024")


def test_format_widths_and_precisions_up_to_the_bound_load():
    from scheduler.manifest.command import MAX_FORMAT_NUMBER

    spec = parse_manifest(job(f'hyper = {{ lr = 0.5, w = {MAX_FORMAT_NUMBER} }}\ncommand = ["echo", '
                              f'"{{model:>{MAX_FORMAT_NUMBER}}}", "{{hyper[lr]:.{MAX_FORMAT_NUMBER}f}}", '
                              f'"{{model:_^{{hyper[w]}}}}"]'), "lab.toml").job_named("x")
    assert spec.scheduling["command"][1] == f"{{model:>{MAX_FORMAT_NUMBER}}}"


def test_an_argv_the_loader_accepts_at_its_limits_really_executes():
    """Arguments past the kernel's limits loaded fine, then failed every attempt with E2BIG."""
    import json
    import shutil
    import subprocess

    from scheduler.manifest.command import ARGV_BUDGET, MAX_ARG_BYTES, argv_bytes
    from worker.runner import build_argv

    program = shutil.which("true")
    filled = [program, "knn"]  # the manifest says {model}: the formatter fills part of it
    while argv_bytes(filled) + argv_bytes(["z" * MAX_ARG_BYTES]) <= ARGV_BUDGET:
        filled.append("z" * MAX_ARG_BYTES)
    filled.append("z" * (ARGV_BUDGET - argv_bytes(filled) - argv_bytes([""])))
    args = [program, "{model}", *filled[2:]]
    spec = parse_manifest(job("command = " + json.dumps(args)), "lab.toml").job_named("x")
    argv = build_argv(json.loads(json.dumps(spec.to_dict())), spec.job_id, "/out", 1)
    assert argv == filled and argv_bytes(argv) == ARGV_BUDGET and max(len(a) for a in argv) == MAX_ARG_BYTES
    assert subprocess.run(argv, timeout=30).returncode == 0
    one_more = job("command = " + json.dumps(args[:-1] + [args[-1] + "z"]))
    with pytest.raises(ManifestError, match="whole command"):
        parse_manifest(one_more, "lab.toml")
    with pytest.raises(ManifestError, match="at most 131071"):
        parse_manifest(job("command = " + json.dumps([program, "z" * (MAX_ARG_BYTES + 1)])), "lab.toml")


def test_an_argument_repeating_a_long_value_is_refused_before_it_is_filled_whole():
    """{hyper[s]} ten thousand times over a 100 KB string would be a 1 GB argument."""
    text = job('hyper = { s = "' + "s" * 100_000 + '" }\ncommand = ["echo", "' + "{hyper[s]}" * 10_000 + '"]')
    assert_refused_cheaply(text, "at most 131071 bytes")


def test_names_that_only_look_hexadecimal_still_load():
    """Only a name of exactly 16 lowercase hex digits reads as a job_id and is refused."""
    for name in ("0123456789abcde", "0123456789abcdef0", "0123456789ABCDEF", "cafe", "deadbeefdeadbeeg"):
        assert parse_manifest(job("", name=name), "lab.toml").job_named(name)


def problems_of(text: str) -> list[tuple[str | None, str | None, str]]:
    with pytest.raises(ManifestError) as err:
        parse_manifest(text, "lab.toml")
    return [(p.job, p.field, p.message) for p in err.value.problems]


def test_a_duplicate_by_content_is_reported_beside_the_jobs_other_problems():
    """Before, a job with any problem of its own was dropped before the duplicate check."""
    found = problems_of(job('mode = "realistic"\npriority = "high"', name="c", model="cnn"))
    assert [(j, f) for j, f, _ in found] == [("jobs[2] 'c'", "priority"), ("jobs[2] 'c'", None)]
    assert "duplicates job 'a' by content" in found[1][2]


def test_a_duplicate_name_is_reported_beside_the_jobs_other_problems():
    found = problems_of(job('seed = "x"', name="a"))
    assert sorted((j, f) for j, f, _ in found) == [("jobs[2] 'a'", "name"), ("jobs[2] 'a'", "seed")]


def test_every_identity_problem_is_reported_beside_scheduling_ones():
    found = problems_of(job('priority = "high"\nhyper = { lr = nan, when = 2024-01-01 }\nsplit_recipe = nan'))
    assert sorted(f for _, f, _ in found) == ["hyper", "priority", "split_recipe"]


@pytest.mark.parametrize("parent", ["broken", "dupe"])
def test_after_naming_a_job_dropped_for_its_own_problems_is_not_an_unknown_job(parent):
    """Before, a child of a job refused for its own problem was also told its parent did not exist."""
    text = (GOOD + '[[jobs]]\nname = "broken"\nmodel = "knn"\npriority = "high"\n'
            + '[[jobs]]\nname = "dupe"\nmodel = "cnn"\nmode = "realistic"\n'
            + f'[[jobs]]\nname = "child"\nmodel = "gbt"\nafter = ["{parent}"]\n')
    found = problems_of(text)
    assert [(j, f) for j, f, _ in found] == [("jobs[2] 'broken'", "priority"), ("jobs[3] 'dupe'", None)]


def test_a_manifest_saved_with_a_utf8_bom_loads(tmp_path):
    """Before, a BOM (as some Windows editors write) was 'invalid TOML: Invalid statement'."""
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert [j.name for j in load_manifest(path).jobs] == ["a", "b"]


def test_only_keys_count_as_dotted_parts_before_parsing():
    """The pre-parse scan skips strings of all four kinds, comments and numbers: only a key or a
    header of more than 64 parts is refused, on the line it starts."""
    from scheduler.manifest.bounds import long_dotted_key

    dots = "a." * 70 + "a"
    harmless = [f'x = "{dots}"', f"x = '{dots}'", f'x = """\n{dots}\n"""', f"x = '''{dots}'''", f"# {dots}",
                f'x = "\\"{dots}"', "x = [" + ", ".join(["1.5"] * 100) + "]", f"x = 1.5\n{'a.' * 63}a = 1"]
    assert [long_dotted_key(t) for t in harmless] == [None] * len(harmless)
    assert long_dotted_key(f'x = """\n\n"""\n{dots} = 1') == 4
    assert long_dotted_key(f"x = 1\n[{dots}]") == 2
    assert long_dotted_key(f"x = {{ {dots} = 1 }}") == 1
