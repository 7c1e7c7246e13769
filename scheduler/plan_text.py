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


def plan_lines(plan: LoadPlan) -> list[str]:
    """The summary, then the names per kind (unchanged ones only counted)."""
    lines = [plan_summary(plan)]
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
