"""The pure matching rule (scheduler/matching.py): each check's reason, their order, the GPU a job gets.

The checks in order, the first failing one named: 1 the host's deny_jobs/allow_jobs,
2 the job's denied_hosts/allowed_hosts, 3 CUDA, 4 the kind and number of GPUs the host has,
5 its GPUs free now (min_vram_gib on each, or whole), 6 min_ram_gib and 7 min_cores against
what the host ledger leaves. ``job_reason``
is what ``fleet explain`` shows; ``class_reason`` (with the host rules folded into the class)
is what a worker decides by. Host *priority* is not part of this rule: it only orders idle
workers (worker/preference.py, tests/test_preference.py), so here it must change no verdict.
"""

from __future__ import annotations

import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from scheduler.manifest import parse_manifest
from scheduler.manifest.model import HostSpec
from scheduler.matching import (EPSILON, ConstraintClass, best_fit_gpu, choose_gpus, class_reason, free_of,
                                host_rule_reason, job_host_reason, job_reason, ledger_free, resources_reason)
from scheduler.resources import GpuInfo, HostResources


def make_job(name: str = "train-1", model: str = "cnn", **fields):
    text = tomli_w.dumps({"schema_version": 1, "jobs": [{"name": name, "model": model, **fields}]})
    return parse_manifest(text, "m.toml").jobs[0]


def make_host(name: str = "gpu-24", gpus=(), cores: int = 8, ram: float = 64.0) -> HostResources:
    """A host whose GPUs are all free as probed; ``gpus`` their VRAM in GiB."""
    return HostResources(name, cores, ram, ram, tuple(GpuInfo(i, f"g{i}", v, v, uuid=f"GPU-{i}")
                                                      for i, v in enumerate(gpus)))


def cls_of(**fields) -> ConstraintClass:
    return ConstraintClass.of(make_job(**fields), {})


# -- the six checks, each failing alone, then in order ---------------------------------------

HOST_SPEC = HostSpec("gpu-24", deny_jobs=("cnn*",))
HOST = make_host(gpus=(24.0, 48.0))  # ram 64, cores 8
LEDGER = {"ram": 32.0, "cores": 2.0}  # other fleet jobs here leave 32 GiB and 6 cores
# Every check failing: each entry drops one cause, front to back, so the next check is the first.
LADDER = [
    ({"denied_hosts": ["gpu-*"], "require_cuda": True, "min_vram_gib": 60.0, "min_ram_gib": 40.0, "min_cores": 7},
     HOST_SPEC, HOST, "host deny_jobs matches 'cnn*'", "host allow/deny table refuses it"),
    ({"denied_hosts": ["gpu-*"], "require_cuda": True, "min_vram_gib": 60.0, "min_ram_gib": 40.0, "min_cores": 7},
     None, make_host(), "denied by job.denied_hosts", None),
    ({"require_cuda": True, "min_vram_gib": 60.0, "min_ram_gib": 40.0, "min_cores": 7},
     None, make_host(), "require_cuda but host has no CUDA GPU", None),
    ({"require_cuda": True, "min_vram_gib": 60.0, "min_ram_gib": 40.0, "min_cores": 7},
     None, HOST, "min_vram_gib 60 > free 48", None),
    ({"require_cuda": True, "min_vram_gib": 48.0, "min_ram_gib": 40.0, "min_cores": 7},
     None, HOST, "min_ram_gib 40 > free 32 (total 64)", None),
    ({"require_cuda": True, "min_vram_gib": 48.0, "min_ram_gib": 32.0, "min_cores": 7},
     None, HOST, "min_cores 7 > free 6 (total 8)", None),
    ({"require_cuda": True, "min_vram_gib": 48.0, "min_ram_gib": 32.0, "min_cores": 6},
     None, HOST, None, None),
]


@pytest.mark.parametrize("fields, host_spec, host, reason, worker_reason", LADDER,
                         ids=["host-rule", "job-host-list", "cuda", "vram", "ram", "cores", "fits"])
def test_the_first_failing_check_is_the_one_named(fields, host_spec, host, reason, worker_reason):
    job = make_job(**fields)
    free = ledger_free(host, LEDGER)
    assert job_reason(job, host_spec, host, free) == reason
    # The worker's view: the host table folded into the class; it says the same but for step 1's wording.
    cls = ConstraintClass.of(job, {host.hostname: host_spec} if host_spec else {})
    assert class_reason(cls, host, host_spec is not None, free) == (worker_reason or reason)


STEP_TEXTS = ["host deny_jobs matches", "job.denied_hosts", "require_cuda", "min_vram_gib", "min_ram_gib",
              "min_cores"]


@given(failing=st.sets(st.integers(1, 6)), require_cuda=st.booleans(), host_priority=st.integers(-1000, 1000))
def test_any_set_of_failing_checks_reports_the_first(failing, require_cuda, host_priority):
    """Each check made to fail or pass on its own; the verdict names the lowest failing one,
    whatever the host's priority."""
    host_spec = HostSpec("gpu-24", priority=host_priority, deny_jobs=("cnn",) if 1 in failing else ("knn",))
    fields = {"denied_hosts": ["gpu-2?"] if 2 in failing else ["cpu-*"],
              "min_ram_gib": 32.5 if 5 in failing else 32.0, "min_cores": 7 if 6 in failing else 6}
    if 3 in failing:  # no GPU at all; VRAM then fails too wherever it is asked for
        host, fields["require_cuda"], fields["min_vram_gib"] = make_host(), True, 8.0 if 4 in failing else 0.0
    else:
        host, fields["require_cuda"] = HOST, require_cuda
        fields["min_vram_gib"] = 48.5 if 4 in failing else 23.5
    reason = job_reason(make_job(**fields), host_spec, host, ledger_free(host, LEDGER))
    if not failing:
        assert reason is None
    else:
        first = min(failing)
        assert reason is not None and STEP_TEXTS[first - 1] in reason, (failing, reason)
        assert not any(text in reason for i, text in enumerate(STEP_TEXTS, 1) if i != first), reason


# -- 1. the host's allow/deny table -------------------------------------------------------------

@pytest.mark.parametrize("spec, model, name, reason", [
    (None, "cnn", "a", None),  # a host the manifest does not list takes anything
    (HostSpec("h"), "cnn", "a", None),
    (HostSpec("h", deny_jobs=("cnn",)), "cnn", "a", "host deny_jobs matches 'cnn'"),
    (HostSpec("h", deny_jobs=("nightly-*",)), "cnn", "nightly-3", "host deny_jobs matches 'nightly-*'"),
    (HostSpec("h", deny_jobs=("x*", "c?n", "cnn")), "cnn", "a", "host deny_jobs matches 'c?n'"),  # the first glob hit
    (HostSpec("h", deny_jobs=("CNN",)), "cnn", "a", None),  # globs are case-sensitive
    (HostSpec("h", allow_jobs=("knn", "gbt*")), "cnn", "a", "not in host allow_jobs ['knn', 'gbt*']"),
    (HostSpec("h", allow_jobs=("knn", "gbt*")), "gbt", "a", None),
    (HostSpec("h", allow_jobs=("big-*",)), "cnn", "big-cnn", None),  # by job name too
    (HostSpec("h", allow_jobs=("cnn",), deny_jobs=("cnn",)), "cnn", "a", "host deny_jobs matches 'cnn'"),  # deny wins
])
def test_host_allow_and_deny_tables(spec, model, name, reason):
    assert host_rule_reason(spec, model, name) == reason


def test_the_worker_learns_host_rules_from_the_class_for_listed_hosts_only():
    hosts = {"cpu-1": HostSpec("cpu-1", deny_jobs=("cnn",)), "gpu-24": HostSpec("gpu-24", allow_jobs=("knn",)),
             "gpu-80": HostSpec("gpu-80")}
    cls = ConstraintClass.of(make_job(model="cnn"), hosts)
    assert cls.rejected_by == ("cpu-1", "gpu-24")
    assert class_reason(cls, make_host("cpu-1"), True, free_of(make_host("cpu-1"))) == "host allow/deny table refuses it"
    assert class_reason(cls, make_host("gpu-80"), True, free_of(make_host("gpu-80"))) is None


# -- 2. the job's own host lists ----------------------------------------------------------------

@pytest.mark.parametrize("allowed, denied, hostname, reason", [
    ([], [], "gpu-24", None),
    ([], ["gpu-*"], "gpu-24", "denied by job.denied_hosts"),
    ([], ["gpu-?"], "gpu-24", None),
    (["cpu-*", "gpu-2?"], [], "gpu-24", None),
    (["cpu-*"], [], "gpu-24", "not in job.allowed_hosts"),
    (["gpu-*"], ["gpu-24"], "gpu-24", "denied by job.denied_hosts"),  # denied wins
    (["GPU-24"], [], "gpu-24", "not in job.allowed_hosts"),
])
def test_job_allowed_and_denied_hosts(allowed, denied, hostname, reason):
    assert job_host_reason(allowed, denied, hostname) == reason
    cls = cls_of(allowed_hosts=allowed, denied_hosts=denied)
    host = make_host(hostname)
    assert class_reason(cls, host, False, free_of(host)) == reason


# -- 3 and 4. CUDA and VRAM ---------------------------------------------------------------------

def test_vram_binds_wherever_the_job_will_use_a_gpu():
    wants_8 = cls_of(min_vram_gib=8.0)  # not require_cuda: a CPU-only host runs it on its CPU
    assert resources_reason(wants_8, free_of(make_host("cpu-1"))) is None
    assert resources_reason(wants_8, free_of(make_host(gpus=(4.0,)))) == "min_vram_gib 8 > free 4"
    needs_gpu = cls_of(min_vram_gib=8.0, require_cuda=True)
    assert resources_reason(needs_gpu, free_of(make_host("cpu-1"))) == "min_vram_gib 8 > free 0"
    assert class_reason(needs_gpu, make_host("cpu-1"), False, free_of(make_host("cpu-1"))) == \
        "require_cuda but host has no CUDA GPU"
    assert class_reason(cls_of(require_cuda=True), HOST, False, free_of(HOST)) is None  # any GPU will do


@pytest.mark.parametrize("need, gpu_free, chosen", [
    (10.0, (80.0, 24.0, 48.0), 1),  # the smallest that fits, so big cards stay free for big jobs
    (30.0, (80.0, 24.0, 48.0), 2),
    (70.0, (80.0, 24.0, 48.0), 0),
    (90.0, (80.0, 24.0, 48.0), None),
    (0.0, (80.0, 24.0), 1),  # a require_cuda job needing no VRAM still takes the smallest
    (10.0, (24.0, 24.0, 24.0), 0),  # equal cards: the first
    (23.5, (23.5,), 0),  # exactly equal fits
    (23.5, (23.5 - EPSILON / 10,), 0),  # float dust below the need still fits
    (23.5, (23.5 - 1e-6,), None),  # a real shortfall, however small, does not
    (39.99, (40.0, 39.99), 1),
    (10.0, (), None),
])
def test_the_gpu_a_job_gets(need, gpu_free, chosen):
    assert best_fit_gpu(need, gpu_free) == chosen


@given(need=st.floats(0, 100, allow_nan=False),
       gpu_free=st.lists(st.one_of(st.floats(-10, 100, allow_nan=False), st.sampled_from([23.5, 39.99, 40.0])),
                         max_size=5))
def test_best_fit_is_the_smallest_fitting_card_first_of_equals(need, gpu_free):
    chosen = best_fit_gpu(need, tuple(gpu_free))
    fitting = [(free, i) for i, free in enumerate(gpu_free) if free + EPSILON >= need]
    assert chosen == (min(fitting)[1] if fitting else None)


def test_three_jobs_of_7_9_gib_leave_room_for_one_of_0_3_gib_on_a_24_gib_card():
    """The ledger's float sums leave dust (24 - 3 * 7.9 = 0.29999999999999716): EPSILON absorbs it."""
    card = make_host(gpus=(24.0,)).gpus[0]
    reserved = 7.9 + 7.9 + 7.9
    free = ledger_free(make_host(gpus=(24.0,)), {f"vram:{card.ledger_key}": reserved})
    assert free.gpu_vram_gib[0] < 0.3
    assert resources_reason(cls_of(require_cuda=True, min_vram_gib=0.3, min_cores=0), free) is None
    assert resources_reason(cls_of(require_cuda=True, min_vram_gib=0.31, min_cores=0), free) == \
        "min_vram_gib 0.3 > free 0.3"  # one decimal in words; the decision is exact


def test_free_vram_is_the_smaller_of_what_the_probe_sees_and_the_ledger_leaves():
    host = HostResources("h", 8, 64, 64, (GpuInfo(0, "a", 24.0, 20.0, uuid="GPU-a"),  # 4 GiB used outside fleet
                                          GpuInfo(1, "b", 48.0, 48.0, nvml_index=3),  # no UUID: keyed gpu3
                                          GpuInfo(2, "c", 16.0, 16.0)))  # keyed by its index: gpu2
    assert free_of(host).gpu_vram_gib == (20.0, 48.0, 16.0)
    assert ledger_free(host, {"vram:GPU-a": 2.0, "vram:gpu3": 10.5, "vram:gpu2": 16.0}).gpu_vram_gib == \
        (20.0, 37.5, 0.0)
    assert ledger_free(host, {"vram:GPU-a": 10.0, "vram:GPU-b": 48.0}).gpu_vram_gib == (14.0, 48.0, 16.0)


# -- 5 and 6. RAM and cores ---------------------------------------------------------------------

@pytest.mark.parametrize("fields, ledger, reason", [
    ({"min_ram_gib": 7.5}, {"ram": 56.5}, None),  # exactly what is left
    ({"min_ram_gib": 7.5}, {"ram": 56.6}, "min_ram_gib 7.5 > free 7.4 (total 64)"),
    ({"min_ram_gib": 0.25}, {"ram": 63.75}, None),
    ({"min_ram_gib": 64.5}, {}, "min_ram_gib 64.5 > free 64 (total 64)"),  # never fits, even idle
    ({"min_ram_gib": 0.1 + 0.2}, {"ram": 63.7}, None),  # 0.30000000000000004 against 0.3 left
    ({"min_cores": 6}, {"cores": 2}, None),
    ({"min_cores": 7}, {"cores": 2}, "min_cores 7 > free 6 (total 8)"),
    ({"min_cores": 0}, {"cores": 8, "ram": 64}, None),  # reserves nothing, so a full host still runs it
    ({"min_cores": 1}, {"cores": 8}, "min_cores 1 > free 0 (total 8)"),
])
def test_ram_and_cores_against_what_the_ledger_leaves(fields, ledger, reason):
    host = make_host()
    assert class_reason(cls_of(**fields), host, False, ledger_free(host, ledger)) == reason


def test_without_the_capacity_the_reason_says_only_what_is_free():
    free = ledger_free(make_host(), {"ram": 32.0})
    assert resources_reason(cls_of(min_ram_gib=40.0), free) == "min_ram_gib 40 > free 32"
    assert resources_reason(cls_of(min_ram_gib=40.0), free, make_host()) == "min_ram_gib 40 > free 32 (total 64)"


@given(ram=st.floats(0, 80), cores=st.integers(0, 10), vram=st.floats(0, 90), require_cuda=st.booleans(),
       before=st.tuples(st.floats(0, 64), st.floats(0, 8), st.floats(0, 48)),
       more=st.tuples(st.floats(0, 64), st.floats(0, 8), st.floats(0, 48)))
def test_more_reserved_never_lets_a_job_in_that_did_not_fit(ram, cores, vram, require_cuda, before, more):
    cls = ConstraintClass(require_cuda, False, vram, ram, cores, (), (), ())
    host = make_host(gpus=(24.0, 48.0))

    def fits(reserved):
        ram_r, cores_r, vram_r = reserved
        return resources_reason(cls, ledger_free(host, {"ram": ram_r, "cores": cores_r, "vram:GPU-1": vram_r})) is None

    if fits(tuple(b + m for b, m in zip(before, more))):
        assert fits(before)


# -- the class: what makes jobs interchangeable -------------------------------------------------

def test_jobs_with_the_same_needs_share_a_class_and_it_survives_the_store():
    a = cls_of(name="a", model="cnn", min_vram_gib=23.5, min_ram_gib=0.5)
    b = cls_of(name="b", model="knn", min_vram_gib=23.5, min_ram_gib=0.5, priority=9)
    assert a == b and a.class_id == b.class_id  # priority and identity are not needs
    assert cls_of(min_vram_gib=23.6).class_id != a.class_id
    assert ConstraintClass.from_dict(a.to_dict()) == a


# -- multi-GPU jobs: how many, which kind, which cards -----------------------------------------

def kind_host(*cards: tuple[str, str, float], islands=()) -> HostResources:
    """``cards``: (product name, compute capability, VRAM GiB) per GPU, all free."""
    links = tuple((a, b, "nvlink") for island in islands for a in island for b in island if a < b)
    return HostResources("box", 64, 512, 512, tuple(GpuInfo(i, name, v, v, uuid=f"GPU-{i}", compute_capability=cc)
                                                    for i, (name, cc, v) in enumerate(cards)), links=links)


H100, A100, V100 = ("NVIDIA H100 80GB HBM3", "9.0", 80.0), ("NVIDIA A100-SXM4-40GB", "8.0", 40.0), \
    ("Tesla V100-SXM2-16GB", "7.0", 16.0)


@pytest.mark.parametrize("fields, host, reason", [
    ({"gpus": 2}, kind_host(), "gpus 2 but host has no CUDA GPU"),
    ({"gpus": 4}, kind_host(A100, A100), "gpus 4 > 2 GPUs on the host"),
    ({"gpus": 2, "gpu_names": ["*A100*"]}, kind_host(A100, V100, V100), "gpus 2 > 1 such GPUs on the host"),
    ({"require_cuda": True, "gpu_names": ["*3090*"]}, kind_host(A100, V100),
     "no GPU matches gpu_names ['*3090*'] (has NVIDIA A100-SXM4-40GB, Tesla V100-SXM2-16GB)"),
    ({"require_cuda": True, "min_compute_capability": 8.0}, kind_host(V100), "compute capability 7.0 < 8.0"),
    ({"require_cuda": True, "min_compute_capability": 8.6}, kind_host(A100, V100), "compute capability 8.0 < 8.6"),
    ({"gpus": 2, "min_compute_capability": 8.0}, kind_host(H100, A100, V100), None),
])
def test_each_gpu_constraint_names_itself(fields, host, reason):
    assert class_reason(cls_of(**fields), host, False, free_of(host)) == reason


def test_a_job_without_min_vram_holds_its_gpus_whole_and_a_sharing_job_shares():
    host = kind_host(A100, A100)
    whole, shared = cls_of(require_cuda=True), cls_of(require_cuda=True, min_vram_gib=10)
    one_shared = ledger_free(host, {"vram:GPU-0": 10.0, "vram:GPU-1": 10.0})  # two sharing jobs run
    assert choose_gpus(shared, one_shared) == (0,)
    assert class_reason(whole, host, False, one_shared) == \
        "gpus 1 > 0 GPUs free (a job without min_vram_gib holds its GPUs whole)"
    held = ledger_free(host, {"vram:GPU-0": 40.0})  # a whole job holds GPU 0: all of its 40 GiB
    assert choose_gpus(shared, held) == (1,) and choose_gpus(whole, held) == (1,)


def test_a_wide_job_stays_inside_one_nvlink_island():
    host = kind_host(*[H100] * 8, islands=((0, 1, 2, 3), (4, 5, 6, 7)))
    four = cls_of(gpus=4)
    assert choose_gpus(four, free_of(host)) == (0, 1, 2, 3)
    one_held = ledger_free(host, {"vram:GPU-1": 80.0})
    assert choose_gpus(four, one_held) == (4, 5, 6, 7)  # not 0, 2, 3 and one across PCIe
    both_held = ledger_free(host, {"vram:GPU-1": 80.0, "vram:GPU-5": 80.0})
    assert choose_gpus(four, both_held) == (0, 2, 3, 4)  # no island has four: the best-ranked four
    assert choose_gpus(cls_of(gpus=4, min_vram_gib=8), both_held) == (0, 2, 3, 4)  # 1 and 5 have no room left


def test_without_nvlink_a_wide_job_stays_behind_one_pcie_switch():
    host = kind_host(*[A100] * 4)
    host = HostResources(host.hostname, host.cores, host.ram_total_gib, host.ram_available_gib, host.gpus,
                         links=((0, 2, "pcie-switch"), (1, 3, "pcie-switch"), (0, 1, "pcie-host"), (0, 3, "pcie-host"),
                                (1, 2, "pcie-host"), (2, 3, "pcie-host")))
    two = cls_of(gpus=2)
    assert choose_gpus(two, free_of(host)) == (0, 2)
    assert choose_gpus(two, ledger_free(host, {"vram:GPU-0": 40.0})) == (1, 3)  # not 1 and 2 across the bridge


def test_the_default_gpu_count():
    gpu_host, cpu_host = kind_host(A100), kind_host()
    assert choose_gpus(cls_of(prefer_cuda=True), free_of(gpu_host)) == (0,)  # placed on a CUDA worker: one GPU
    assert choose_gpus(cls_of(prefer_cuda=True), free_of(cpu_host)) == ()
    assert choose_gpus(cls_of(min_vram_gib=8), free_of(cpu_host)) == ()  # VRAM ignored on a CPU-only host
    assert choose_gpus(cls_of(), free_of(gpu_host)) == ()  # a CPU job never gets a GPU


def test_a_load_warns_about_a_job_no_reported_host_could_ever_give_its_gpus(store):
    """The loader cannot know a host's GPUs; the store can, from the registry: a job asking for
    more or other GPUs than every declared host's workers reported loads, with a warning."""
    import time

    from scheduler.store.workers import queue_publish

    pipe = store.redis.pipeline()
    for name, host in (("w-a100", kind_host(A100, A100)), ("w-v100", kind_host(V100, V100, V100, V100))):
        host = HostResources(name.removeprefix("w-"), host.cores, host.ram_total_gib, host.ram_available_gib,
                             host.gpus)
        queue_publish(pipe, store.keys, name, {"name": name, "host": host.hostname, "state": "idle",
                                               "resources": host.to_json(), "lease_s": 30}, time.time())
    pipe.execute()
    text = tomli_w.dumps({"schema_version": 1, "hosts": {"a100": {}, "v100": {}, "unseen": {}}, "jobs": [
        {"name": "wide", "model": "m", "gpus": 8},
        {"name": "bf16", "model": "m", "gpus": 2, "min_compute_capability": 8.0, "seed": 2},
        {"name": "fits-a100", "model": "m", "gpus": 2, "min_compute_capability": 8.0, "seed": 1,
         "allowed_hosts": ["a100"]},
        {"name": "four", "model": "m", "gpus": 4, "seed": 3},
        {"name": "cpu", "model": "m", "seed": 4}]})
    plan = store.load(parse_manifest(text, "m.toml"))
    warned = {w.job: w.message for w in plan.warnings if w.field == "gpus"}
    assert set(warned) == {"jobs[0] 'wide'"}
    assert "a100: gpus 8 > 2 GPUs on the host; v100: gpus 8 > 4 GPUs on the host" in warned["jobs[0] 'wide'"]
    assert len(plan.added) == 5  # loaded all the same
