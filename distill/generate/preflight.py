"""Pre-flight: a small sample first, so a teacher that cannot follow the format costs seconds, not the budget.

The sample goes through the normal path (stored, cached), so nothing it answers is paid twice.
"""

from __future__ import annotations

import math

from distill.errors import DistillError
from distill.records import PlanItem
from distill.store import FAILED, GENERATED, RunStore


def sample_size(leaves: int) -> int:
    """One item per ten leaves, at least five."""
    return max(5, math.ceil(leaves / 10))


def choose_sample(items: list[PlanItem], size: int) -> list[PlanItem]:
    """Spread over the plan (it is ordered by node), so one odd node cannot decide alone."""
    if len(items) <= size:
        return list(items)
    step = len(items) / size
    return [items[int(i * step)] for i in range(size)]


def check(store: RunStore, sample: list[PlanItem]) -> None:
    """Raise a DistillError saying why, when most of the sample was rejected or failed."""
    ids = {item.id for item in sample}
    statuses = store.statuses()
    bad = [i for i in ids if statuses.get(i) not in (GENERATED, "pending")]
    if len(bad) * 2 <= len(ids):
        return
    rejects = store.latest_generation_rejects(set(bad))
    failed = sum(statuses.get(i) == FAILED for i in bad)
    reasons: dict[str, int] = {}
    for reject in rejects:
        reasons[reject.reason] = reasons.get(reject.reason, 0) + 1
    summary = ", ".join(f"{reason} x{n}" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
    example = next((r for r in rejects if r.raw), rejects[0] if rejects else None)
    shown = ""
    if example is not None:
        shown = f"; e.g. {example.reason}: {example.detail[:160]}"
        if example.raw:
            shown += f"; the teacher wrote: {example.raw[:200]!r}"
    hint = ("check the teacher, its base URL and key" if failed * 2 > len(bad)
            else "the teacher does not follow the format: try a stronger model or adjust the prompts")
    raise DistillError(
        f"pre-flight failed: {len(bad)} of {len(ids)} sample items went wrong ({summary}){shown}. "
        f"Stopped before the full run; {hint}, or pass --no-preflight to run anyway"
    )
