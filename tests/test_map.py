"""The code's own map matches the territory: every file a comment, docstring or doc names
exists, and every ``:func:``/``:class:``/``:data:``/``:meth:`` it cites is defined somewhere.

A newcomer follows these pointers first; one that leads nowhere costs them more than no
pointer at all. The check is textual on purpose: it reads what a reader reads.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["scheduler", "worker", "tests", "bench", "scripts", "systemd", "manifests", ".ci"]
SUFFIXES = {".py", ".lua", ".md", ".sh", ".toml", ".service", ".target", ""}
PATH_RE = re.compile(r"(?<![\w./-])((?:scheduler|worker|tests|bench|scripts|systemd|manifests)/[\w/.-]*\w)")
ROLE_RE = re.compile(r":(?:func|class|data|meth|attr|mod):`~?([\w.]+)`")


def _texts() -> list[tuple[Path, str]]:
    files = [ROOT / "README.md"]
    for top in SOURCES:
        files += [p for p in (ROOT / top).rglob("*") if p.is_file() and p.suffix in SUFFIXES]
    return [(p, p.read_text(encoding="utf-8", errors="replace")) for p in files if "__pycache__" not in p.parts]


def _defined_names() -> set[str]:
    names: set[str] = set()
    for top in ("scheduler", "worker", "tests", "bench"):
        for p in (ROOT / top).rglob("*.py"):
            names.add(p.stem)
            names.update(p.parent.relative_to(ROOT).parts)
            text = p.read_text(encoding="utf-8")
            names.update(re.findall(r"^\s*(?:async\s+)?(?:def|class)\s+(\w+)", text, re.M))
            names.update(re.findall(r"^\s*(\w+)\s*(?::[^=\n]+)?=", text, re.M))
    return names


def test_every_file_the_code_and_docs_name_exists():
    missing = []
    for path, text in _texts():
        for ref in PATH_RE.findall(text):
            ref = ref.rstrip(".")
            if not ref.split("/")[-1] or "*" in ref or ref.endswith(("/", "-")):
                continue
            target = ROOT / ref
            if not target.exists():
                missing.append(f"{path.relative_to(ROOT)}: {ref}")
    assert not missing, "files named but absent:\n" + "\n".join(sorted(set(missing)))


def _module_defines(ref: str) -> bool:
    """``scheduler.x.y.name``: the longest prefix that is a module must define ``name``."""
    parts = ref.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        base = ROOT.joinpath(*parts[:cut])
        for module in (base.with_suffix(".py"), base / "__init__.py"):
            if module.is_file():
                text = module.read_text(encoding="utf-8")
                name = re.escape(parts[cut])
                return bool(re.search(rf"^\s*(?:(?:async\s+)?def|class)\s+{name}\b|^\s*{name}\s*(?::[^=\n]+)?=|"
                                      rf"^\s*(?:from\s+\S+\s+)?import\s+.*\b{name}\b", text, re.M)) \
                    or base.joinpath(parts[cut]).exists() or base.joinpath(parts[cut] + ".py").exists()
    return ROOT.joinpath(*parts).with_suffix(".py").is_file() or ROOT.joinpath(*parts).is_dir()


def test_every_python_name_a_docstring_cites_is_defined():
    defined = _defined_names()
    missing = []
    for path, text in _texts():
        for ref in ROLE_RE.findall(text):
            known = _module_defines(ref) if ref.split(".")[0] in ("scheduler", "worker") else \
                ref.split(".")[-1] in defined
            if not known:
                missing.append(f"{path.relative_to(ROOT)}: {ref}")
    assert not missing, "names cited but defined nowhere:\n" + "\n".join(sorted(set(missing)))


def test_the_readme_key_table_lists_every_key_fleet_writes():
    """README's "Redis layout" table is the operator's map of the namespace: every key built
    in scheduler/keys.py appears there, with its placeholders named as keys.py names them."""
    import inspect

    from scheduler.keys import Keys

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    keys = Keys("fleet")
    not_keys = {"prefix", "rq_prefix", "rq_job", "rq_results", "rq_canceled", "rq_queue", "rq_workers",
                "rq_workers_of_queue", "rq_worker_prefix", "forks_prefix", "rq_job_prefix", "queue_name", "script_prefixes",
                "spec_prefix", "job_prefix", "state_prefix", "pending_prefix", "ledger_prefix", "attempts_prefix",
                "prefer_prefix", "worker_prefix"}
    absent = []
    for name, member in inspect.getmembers(Keys):
        if name.startswith("_") or name in not_keys:
            continue
        if isinstance(member, property):
            value = getattr(keys, name)
            key = value + "<job_id>" if name.endswith("_prefix") else value
        else:
            params = list(inspect.signature(member).parameters)[1:]
            key = member(keys, *[f"<{p}>" for p in params])
        if f"`{key}`" not in readme:
            absent.append(f"{name}: {key}")
    assert not absent, "keys missing from README's key table:\n" + "\n".join(absent)
