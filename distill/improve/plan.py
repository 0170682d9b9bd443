"""Re-planning: how many new items each leaf gets next round, from what the last round measured.

Pure: eval.json's per-leaf table, the reviewers' reject rates and (optionally) each leaf's self-similarity in,
quotas out. The rule, with its numbers, is the docstring of `replan` and docs/improve.md#the-re-planning-rule.
"""

from __future__ import annotations

import random

from pydantic import BaseModel, Field

from distill.evaluate.metrics import BASE, TEACHER, leaf_metric
from distill.taxonomy.plan import apportion

MASTERED = 0.9  # the lower end of a leaf's interval at or above this: the student masters it, nothing new
WIDTH_WEIGHT = 0.5  # an interval as wide as the whole scale counts half as much as a score of 0
REJECT_WEIGHT = 0.5  # every item rejected by reviewers counts half as much as a score of 0
SIMILARITY_WEIGHT = 0.5  # data all alike (self-similarity 1) counts half as much as a score of 0


class LeafScore(BaseModel):
    """A leaf's score on the held-out split, on the 0..1 scale of its task's main leaf metric."""

    metric: str
    value: float
    low: float
    high: float
    n: int = 0


class LeafNeed(BaseModel):
    """Why a leaf gets what it gets: the parts of its need, and its share of the round's new items."""

    leaf: str
    score: LeafScore | None = None
    reject_rate: float = 0.0
    similarity: float | None = None
    need: float = 0.0
    mastered: bool = False
    items: int = 0


class RoundPlan(BaseModel):
    """The new items of one round, a count a leaf, and the reasons."""

    new_items: int
    leaves: list[LeafNeed] = Field(default_factory=list)

    def quotas(self) -> dict[str, int]:
        return {leaf.leaf: leaf.items for leaf in self.leaves if leaf.items}


def leaf_scores(report: dict) -> dict[str, LeafScore]:
    """Each leaf's score for the student in an eval report (eval.json): the first student form's main metric
    of the leaf's first task (`leaf_metric`: accuracy for classification, token-F1 for QA, the valid-call rate
    where references call tools), with its 95% interval."""
    student = next((s for s in report.get("systems", []) if s not in (BASE, TEACHER)), None)
    scores = {}
    for leaf, tasks in (report.get("leaves") or {}).items():
        for task, block in sorted(tasks.items()):
            row = (block.get("systems") or {}).get(student) or {}
            estimate = row.get(leaf_metric(task, block))
            if isinstance(estimate, dict) and "value" in estimate:
                scores[leaf] = LeafScore(metric=leaf_metric(task, block), value=estimate["value"],
                                         low=estimate["low"], high=estimate["high"], n=estimate.get("n", 0))
                break
    return scores


def replan(leaves: list[str], scores: dict[str, LeafScore], reject_rates: dict[str, float], new_items: int,
           diversity: dict[str, float] | None = None, mastered: float = MASTERED) -> RoundPlan:
    """Split `new_items` over the leaves by need; a leaf the student masters gets none.

    The rule, per leaf (scores, rates and similarities all on 0..1):

    - mastered: the lower end of the student's 95% interval is at or above `mastered` (0.9): nothing new;
    - need = (1 - score) + 0.5 * (interval width) + 0.5 * (reviewers' reject rate) + 0.5 * (self-similarity),
      the last term only when `diversity` is given (a leaf missing from it counts 0);
    - a leaf with no held-out score (none of its examples was held out) has need 1 + 0.5 * reject rate
      + 0.5 * self-similarity: nothing is known, so it is treated as a score of 0 with no interval;
    - the items go in proportion to need, rounded by largest remainder (`taxonomy.plan.apportion`, seeded).

    So a leaf at 0.2 [0.1, 0.4] with 30% rejected (need 1.1) gets about three times a leaf at 0.8 [0.7, 0.9]
    with none rejected (need 0.3)."""
    needs = []
    for leaf in leaves:
        score = scores.get(leaf)
        rate = min(max(reject_rates.get(leaf, 0.0), 0.0), 1.0)
        similarity = None if diversity is None else min(max(diversity.get(leaf, 0.0), 0.0), 1.0)
        is_mastered = score is not None and score.low >= mastered
        need = 0.0
        if not is_mastered:
            gap = 1.0 if score is None else (1.0 - score.value) + WIDTH_WEIGHT * (score.high - score.low)
            need = gap + REJECT_WEIGHT * rate + SIMILARITY_WEIGHT * (similarity or 0.0)
        needs.append(LeafNeed(leaf=leaf, score=score, reject_rate=rate, similarity=similarity, need=round(need, 6),
                              mastered=is_mastered))
    weights = {n.leaf: n.need for n in needs if n.need > 0}
    shares = apportion(weights, new_items, random.Random(0)) if weights and new_items > 0 else {}
    for n in needs:
        n.items = shares.get(n.leaf, 0)
    return RoundPlan(new_items=sum(shares.values()), leaves=needs)


def improved_past_interval(before: dict[str, LeafScore], after: dict[str, LeafScore]) -> list[str]:
    """Leaves whose new interval lies wholly above the old one (new low over old high): a gain, not noise."""
    return sorted(leaf for leaf, new in after.items() if leaf in before and new.low > before[leaf].high)
