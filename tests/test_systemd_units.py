"""The shipped systemd units parse under systemd-analyze and do what systemd/README.md promises."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from types import SimpleNamespace

import pytest

from scheduler.cli import build_parser
from worker.probe import probe_host

UNITS_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "systemd")
UNITS = ["fleet-receiver.service", "fleet-worker.service", "fleet-worker@.service", "fleet-prune.service"]
PROBLEM_WORDS = ("Unknown", "unknown", "Invalid", "invalid", "Missing", "bad-setting", "Failed to parse")


def text_of(name: str) -> str:
    with open(os.path.join(UNITS_DIR, name)) as fh:
        return fh.read()


def directives(name: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment, in order; keys may repeat (Environment=)."""
    section, found = "", []
    for line in text_of(name).splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.append((section, key.strip(), value.strip()))
    return found


def values(name: str, key: str) -> list[str]:
    return [v for _, k, v in directives(name) if k == key]


def one(name: str, key: str) -> str:
    found = values(name, key)
    assert len(found) == 1, f"{name}: expected one {key}=, got {found}"
    return found[0]


def exec_argv(name: str, instance: str = "0", host: str = "box") -> list[str]:
    """ExecStart as argv, with the specifiers these units use expanded."""
    return shlex.split(one(name, "ExecStart").replace("%i", instance).replace("%H", host))


def verify(path) -> list[str]:
    done = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in done.stderr.splitlines()
            if str(path) in line and any(word in line for word in PROBLEM_WORDS)]


needs_systemd_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                           reason="systemd-analyze not installed")


@needs_systemd_analyze
@pytest.mark.parametrize("name", UNITS)
def test_unit_verifies(name, tmp_path):
    # /opt/fleet does not exist here: verify a copy whose ExecStart is a binary that does.
    text = re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", text_of(name), flags=re.M)
    target = tmp_path / name.replace("@.", "@0.")
    target.write_text(text)
    assert verify(target) == []


@needs_systemd_analyze
def test_prune_timer_verifies(tmp_path):
    service = re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", text_of("fleet-prune.service"), flags=re.M)
    (tmp_path / "fleet-prune.service").write_text(service)
    (tmp_path / "fleet-prune.timer").write_text(text_of("fleet-prune.timer"))
    assert verify(tmp_path / "fleet-prune.timer") == []


def test_prune_archives_what_the_workers_write_and_keeps_results():
    args = build_parser().parse_args(exec_argv("fleet-prune.service")[1:])
    for unit in ("fleet-worker.service", "fleet-worker@.service"):
        worker = build_parser().parse_args(exec_argv(unit)[1:])
        assert args.runs_dir == worker.runs_dir, unit
    assert args.command == "prune" and not args.include_last
    assert not args.dry_run and one("fleet-prune.service", "Type") == "oneshot"
    assert "OnCalendar=weekly" in text_of("fleet-prune.timer")


@needs_systemd_analyze
def test_verify_would_catch_a_bad_directive(tmp_path):
    """systemd-analyze exits 0 on unknown keys; the check above reads its stderr, and this proves it can fail."""
    text = re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", text_of("fleet-receiver.service"), flags=re.M)
    target = tmp_path / "fleet-receiver.service"
    target.write_text(text.replace("[Service]", "[Service]\nTimeoutStopSecs=5") + "\n[Sevice]\nUser=x\n")
    problems = verify(target)
    assert any("TimeoutStopSecs" in p for p in problems) and any("Sevice" in p for p in problems), problems


@pytest.mark.parametrize("name", UNITS)
def test_exec_start_uses_only_flags_fleet_has(name):
    argv = exec_argv(name)
    assert argv[0] == "/opt/fleet/.venv/bin/fleet"
    build_parser().parse_args(argv[1:])  # SystemExit (a failed test) on an unknown flag or command


@pytest.mark.parametrize("name", UNITS)
def test_the_redis_secret_stays_out_of_the_unit(name):
    assert one(name, "EnvironmentFile") == "-/etc/fleet/fleet.env"
    text = text_of(name)
    assert "redis://" not in text and "rediss://" not in text and "FLEET_REDIS_URL=" not in text
    assert "--redis-url" not in one(name, "ExecStart")
    assert one(name, "User") == "fleet" and one(name, "NoNewPrivileges") == "yes"
    assert one(name, "ProtectSystem") == "strict"


def test_receiver_is_notify_and_reloads_with_sighup():
    name = "fleet-receiver.service"
    assert one(name, "Type") == "notify" and one(name, "NotifyAccess") == "main"
    assert one(name, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert exec_argv(name)[1:] == ["receiver", "--manifest", "/etc/fleet/training_manifest.toml"]
    assert one(name, "Restart") == "on-failure"


@pytest.mark.parametrize("name", ["fleet-worker.service", "fleet-worker@.service"])
def test_workers_stop_warm_then_kill_the_job_group(name):
    assert one(name, "KillSignal") == "SIGTERM"  # the warm stop: the job's SIGTERM and grace, claim no more
    assert one(name, "KillMode") == "mixed"  # SIGTERM to the worker only; the final SIGKILL to all
    assert re.fullmatch(r"\d+min", one(name, "TimeoutStopSec")) and int(one(name, "TimeoutStopSec")[:-3]) >= 5
    assert one(name, "Restart") == "always"
    argv = exec_argv(name)
    runs_dir = argv[argv.index("--runs-dir") + 1]
    writable = one(name, "ReadWritePaths").split()
    assert any(runs_dir == w or runs_dir.startswith(w.rstrip("/") + "/") for w in writable), (runs_dir, writable)


def test_gpu_worker_instance_is_the_gpu_index():
    name = "fleet-worker@.service"
    assert "CUDA_VISIBLE_DEVICES=%i" in values(name, "Environment")
    assert "CUDA_DEVICE_ORDER=PCI_BUS_ID" in values(name, "Environment")  # CUDA numbers GPUs as NVML does
    args = build_parser().parse_args(exec_argv(name, instance="3")[1:])
    assert args.command == "worker" and args.name == "box-gpu3"


class FakeNVML:
    """Just enough NVML for the probe: ``count`` GPUs of 80 GiB; any other call is NOT_SUPPORTED."""

    class NVMLError(Exception):
        pass

    def __init__(self, count: int):
        self.count = count

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetCount(self):
        return self.count

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetName(self, handle):
        return f"GPU-{handle}"

    def nvmlDeviceGetMemoryInfo(self, handle):
        gib = 1024**3
        return SimpleNamespace(total=80 * gib, free=80 * gib, used=0)

    def __getattr__(self, name):
        if name.startswith(("nvmlDevice", "nvmlSystem")):
            def not_supported(*_args, **_kwargs):
                raise self.NVMLError("Not Supported")
            return not_supported
        raise AttributeError(name)


@pytest.mark.parametrize("instance", [0, 2])
def test_gpu_worker_instance_sees_exactly_that_gpu(instance):
    """The unit's environment and flags, fed to the real probe, leave the worker GPU %i and nothing else.

    NVML ignores CUDA_VISIBLE_DEVICES, so this holds only while the probe maps it and the unit
    does not also pass an index that the mapping renumbers (``--gpu %i`` would be GPU 0's index).
    """
    name = "fleet-worker@.service"
    env = dict(v.replace("%i", str(instance)).split("=", 1) for v in values(name, "Environment"))
    args = build_parser().parse_args(exec_argv(name, instance=str(instance))[1:])
    host = probe_host("box", nvml=FakeNVML(4), gpu_indices=args.gpu or None, environ=env)
    assert len(host.gpus) == 1
    gpu = host.gpus[0]
    assert (gpu.nvml_index if gpu.nvml_index is not None else gpu.index) == instance


def test_the_host_worker_fills_every_gpu_with_one_slot_each():
    """fleet-worker.service, fed to the real probe: it sees all of the box's GPUs (nothing in its
    environment hides one) and --slots auto gives one slot per GPU, under the host's name."""
    from worker.slots import slot_count

    name = "fleet-worker.service"
    env = dict(v.split("=", 1) for v in values(name, "Environment"))
    assert "CUDA_VISIBLE_DEVICES" not in env and env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    args = build_parser().parse_args(exec_argv(name)[1:])
    assert args.command == "worker" and args.name == "box" and args.slots == "auto"
    host = probe_host("box", nvml=FakeNVML(4), gpu_indices=args.gpu or None, environ=env)
    assert [g.index for g in host.gpus] == [0, 1, 2, 3] and slot_count(args.slots, host) == 4


@pytest.mark.parametrize("name", ["fleet-worker.service", "fleet-worker@.service"])
def test_workers_report_ready_keep_a_watchdog_and_stop_crash_looping(name):
    assert (one(name, "Type"), one(name, "NotifyAccess"), one(name, "WatchdogSec")) == ("notify", "all", "2min")
    assert (one(name, "StartLimitIntervalSec"), one(name, "StartLimitBurst")) == ("10min", "10")
    assert one(name, "CapabilityBoundingSet") == "" and one(name, "UMask") == "0077"
    assert set(one(name, "RestrictAddressFamilies").split()) == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
    for key in ("RestrictNamespaces", "RestrictRealtime", "ProtectClock", "ProtectKernelLogs"):
        assert one(name, key) == "yes", key
    assert one(name, "SystemCallArchitectures") == "native"


@needs_systemd_analyze
@pytest.mark.parametrize("name", UNITS)
def test_each_unit_is_rated_ok_by_systemd_analyze_security(name, tmp_path):
    """Exposure 7.7 ('EXPOSED') for the workers before their hardening; 3.2-3.8 ('OK') after."""
    target = tmp_path / name.replace("@.", "@0.")
    target.write_text(text_of(name))
    done = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(target)], capture_output=True,
                          text=True, timeout=60)
    level = re.search(r"Overall exposure level for \S+: (\d+\.\d)", done.stdout)
    assert level and float(level.group(1)) <= 4.0, done.stdout[-400:]


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None or shutil.which("systemd-tmpfiles") is None
                    or os.geteuid() != 0, reason="needs systemd-sysusers, systemd-tmpfiles and root (chown)")
def test_sysusers_makes_the_user_and_tmpfiles_the_private_config_dir(tmp_path):
    sysusers = os.path.join(UNITS_DIR, "sysusers.d", "fleet.conf")
    done = subprocess.run(["systemd-sysusers", "--dry-run", f"--root={tmp_path / 'empty'}", sysusers],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Creating user 'fleet'" in done.stderr + done.stdout, done.stderr
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\nfleet:x:990:990::/var/lib/fleet:/bin/false\n")
    (root / "etc" / "group").write_text("root:x:0:\nfleet:x:990:\n")
    tmpfiles = os.path.join(UNITS_DIR, "tmpfiles.d", "fleet.conf")
    subprocess.run(["systemd-tmpfiles", "--create", f"--root={root}", tmpfiles], check=True, timeout=60)
    config, env_file = os.stat(root / "etc" / "fleet"), os.stat(root / "etc" / "fleet" / "fleet.env")
    assert (config.st_mode & 0o777, config.st_uid, config.st_gid) == (0o750, 0, 990)
    assert (env_file.st_mode & 0o777, env_file.st_uid) == (0o600, 0)
