"""The README's manifest reference and commands match the code, so the docs cannot drift."""

from __future__ import annotations

import os
import re

from scheduler.cli import build_parser
from scheduler.manifest.fields import FIELDS, HOST_FIELDS

README = open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "README.md")).read()


def test_every_job_field_is_documented_with_its_kind_and_type():
    for field in FIELDS.values():
        row = re.search(rf"^\| `{field.name}`.*$", README, re.M)
        assert row, f"README lacks job field {field.name}"
        assert f"| {field.kind} |" in row.group(0)
        assert ("identity" if field.identity else "scheduling") in row.group(0)


def test_every_host_field_is_documented():
    for name, (kind, _, _) in HOST_FIELDS.items():
        assert re.search(rf"^\| `{name}` \| {kind} \|", README, re.M), name


def test_the_two_commands_exist_and_ci_runs_the_test_command():
    root = os.path.dirname(os.path.dirname(__file__))
    assert "bash scripts/demo.sh" in README and "bash scripts/test.sh" in README
    assert "bash scripts/test.sh" in open(os.path.join(root, ".ci", "run")).read()


def test_every_documented_subcommand_exists():
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    shell_blocks = "\n".join(re.findall(r"```sh\n(.*?)```", README, re.S))
    documented = set(re.findall(r"^(?:\w+=\S+ )?fleet (\w+)", shell_blocks, re.M))
    assert len(documented) >= 8
    assert documented <= commands, documented - commands
