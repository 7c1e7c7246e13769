"""Human text for a load plan, shared by ``fleet load`` and the receiver's log."""

from __future__ import annotations

from .store.loading import LoadPlan

KINDS = ("added", "updated", "unchanged", "orphaned", "revived")
MAX_NAMES = 20


def plan_summary(plan: LoadPlan) -> str:
    counts = plan.counts()
    text = ", ".join(f"{counts[k]} {k}" for k in KINDS)
    if plan.dry_run:
        return f"dry run, nothing written: {text}"
    return text if plan.changed else f"{text} (no change, nothing written)"


def sweep_counts(plan: LoadPlan, sweeps: dict[str, tuple[str, ...]]) -> dict[str, dict[str, int]]:
    """Per [jobs.matrix] sweep of the manifest, how many of its jobs the plan adds, updates,
    leaves unchanged or revives (``fleet load --json``'s "sweeps")."""
    kind_of = {e.name: kind for kind in KINDS for e in getattr(plan, kind)}
    out = {}
    for label, names in sweeps.items():
        counts = {kind: 0 for kind in KINDS if kind != "orphaned"}
        for name in names:
            if kind_of.get(name) in counts:
                counts[kind_of[name]] += 1
        out[label] = counts
    return out


def plan_lines(plan: LoadPlan, sweeps: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    """The summary, a line per sweep, then the names per kind (unchanged ones only counted)."""
    lines = [plan_summary(plan)]
    for label, counts in sweep_counts(plan, sweeps or {}).items():
        total = sum(counts.values())
        lines.append(f"  sweep {label}: {total} jobs: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n))
    for kind in KINDS:
        if kind == "unchanged":
            continue
        entries = getattr(plan, kind)
        if not entries:
            continue
        names = ", ".join(e.name for e in entries[:MAX_NAMES])
        more = f" (+{len(entries) - MAX_NAMES} more)" if len(entries) > MAX_NAMES else ""
        lines.append(f"  {kind}: {names}{more}")
    if plan.orphaned and not plan.dry_run:
        lines.append("  orphaned jobs are kept and will not start; `fleet cancel` them or add them back")
    lines += [f"warning: {w}" for w in plan.warnings]
    return lines
