"""Planning: every leaf gets its quota, and within a leaf every axis is split by its weights.

A leaf's items depend only on the seed, the leaf's path, its quota and the axes: editing one node
never changes another node's items, their ids or their cached answers. Within a leaf each axis is
split by systematic sampling (each value gets its weighted share rounded down or up, to within one
item) from an offset drawn from the leaf's own path, so the rounding is unbiased across leaves and
the whole plan matches the weights to within a few items (the error grows with the square root of
the number of leaves, not with the plan). The values are then dealt to the leaf's items by a seeded
shuffle drawn one item at a time, so the first items of a leaf can be made without making the rest:
`--limit` bounds the work while planning, whatever the quotas say.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import random
from collections.abc import Sequence

from distill.errors import DistillError
from distill.records import PlanItem
from distill.taxonomy.load import LoadedTaxonomy

# One run plans at most this many items at once (about 1 GB of plan records); --limit plans a part.
MAX_PLAN_ITEMS = 1_000_000


def with_per_leaf(loaded: LoadedTaxonomy, per_leaf: int) -> LoadedTaxonomy:
    """The taxonomy planned at `per_leaf` items a leaf in place of its generation.per_leaf / total (a node's own
    quota still wins): more of the same data without editing the file (`distill generate --per-leaf`)."""
    generation = loaded.taxonomy.generation.model_copy(update={"per_leaf": per_leaf, "total": None})
    return dataclasses.replace(loaded, taxonomy=loaded.taxonomy.model_copy(update={"generation": generation}))


def leaf_quotas(loaded: LoadedTaxonomy) -> dict[str, int]:
    gen = loaded.taxonomy.generation
    leaves = loaded.leaves
    fixed = {leaf.path: leaf.quota for leaf in leaves if leaf.quota is not None}
    if gen.total is None:
        return {leaf.path: fixed.get(leaf.path, gen.per_leaf or 0) for leaf in leaves}
    free = [leaf.path for leaf in leaves if leaf.path not in fixed]
    remaining = max(gen.total - sum(fixed.values()), 0)
    shares = apportion({path: 1.0 for path in free}, remaining, random.Random(0))
    return {leaf.path: fixed.get(leaf.path, shares.get(leaf.path, 0)) for leaf in leaves}


def apportion(weights: dict[str, float], count: int, rng: random.Random) -> dict[str, int]:
    """Split `count` over keys in proportion to weights: each gets its share rounded down, and the units
    left go to the largest remainders (ties to a seeded random key, not always the first listed)."""
    if not weights:
        return {}
    total = sum(weights.values())
    exact = {key: count * w / total for key, w in weights.items()}
    shares = {key: math.floor(x) for key, x in exact.items()}
    order = list(weights)
    rng.shuffle(order)
    order.sort(key=lambda k: shares[k] - exact[k])  # stable: equal remainders keep the shuffled order
    for key in order[: count - sum(shares.values())]:
        shares[key] += 1
    return shares


class AxisDeal:
    """One axis's values for one leaf's items, dealt one item at a time.

    The counts come from systematic sampling at an offset drawn from `rng` (each value within one of
    its weighted share); the order is a Fisher-Yates shuffle drawn lazily (only the positions moved
    so far are kept), so item i costs O(1) whatever the quota.
    """

    def __init__(self, weights: dict[str, float], quota: int, rng: random.Random):
        total = sum(weights.values())
        offset = rng.random()
        self.values = list(weights)
        self.bounds: list[int] = []  # bounds[k]: positions below it hold values[:k + 1]
        running = 0.0
        for k, weight in enumerate(weights.values()):
            running += weight
            share = 1.0 if k == len(weights) - 1 else running / total
            self.bounds.append(math.floor(quota * share + offset) if k < len(weights) - 1 else quota)
        self.quota, self.rng = quota, rng
        self.moved: dict[int, int] = {}
        self.dealt = 0

    def next(self) -> str:
        i = self.dealt
        j = self.rng.randrange(i, self.quota)
        position = self.moved.get(j, j)
        self.moved[j] = self.moved.pop(i, i)
        self.dealt += 1
        return self.values[bisect.bisect_right(self.bounds, position)]


def plan_leaf(taxonomy_name: str, leaf_path: str, axes: dict, quota: int, seed: int,
              count: int | None = None) -> list[PlanItem]:
    """The leaf's first `count` items (all `quota` by default); they depend on nothing outside the leaf."""
    deals = {name: AxisDeal(axis.values, quota, random.Random(f"{seed}:{leaf_path}:{name}"))
             for name, axis in axes.items()}
    items = []
    for index in range(quota if count is None else min(count, quota)):
        combo = {name: deal.next() for name, deal in deals.items()}
        items.append(PlanItem(id=PlanItem.make_id(taxonomy_name, leaf_path, combo, index), node_path=leaf_path,
                              axes=combo, index=index))
    return items


def build_plan(loaded: LoadedTaxonomy, seed: int = 0, limit: int | None = None) -> list[PlanItem]:
    """The plan (or its first `limit` items), in an order that interleaves leaves: any prefix is spread
    over the tree. Only the items asked for are made."""
    quotas = leaf_quotas(loaded)
    leaves = [leaf.path for leaf in loaded.leaves]
    order = list(range(len(leaves)))
    random.Random(seed).shuffle(order)
    taken = items_in_prefix([quotas[leaves[g]] for g in order], limit)
    wanted = sum(taken)
    if wanted > MAX_PLAN_ITEMS:
        raise DistillError(f"the plan has {wanted:,} items, more than one run plans at once ({MAX_PLAN_ITEMS:,}); "
                           "lower generation.per_leaf / total or the quotas, or pass --limit N",
                           path=loaded.file)
    axes = loaded.crossed_axes
    groups = [plan_leaf(loaded.name, leaves[g], axes, quotas[leaves[g]], seed, count=n) for g, n in zip(order, taken)]
    return interleave(groups)


def planned_count(loaded: LoadedTaxonomy) -> int:
    """How many items the whole plan holds, without making them."""
    return sum(leaf_quotas(loaded).values())


def items_in_prefix(quotas: Sequence[int], limit: int | None) -> list[int]:
    """How many of each group's items the first `limit` items of `interleave` hold (groups in their order)."""
    if limit is None:
        return list(quotas)
    taken = [0] * len(quotas)
    left, rank = limit, 0
    active = [g for g, quota in enumerate(quotas) if quota > 0]
    while left > 0 and active:
        # Whole ranks at once: every active group gives one item a rank until the smallest runs out.
        full = min(left // len(active), min(quotas[g] for g in active) - rank)
        if full == 0:  # the last, partial rank: groups in order until the limit
            for g in active[:left]:
                taken[g] += 1
            break
        for g in active:
            taken[g] += full
        left -= full * len(active)
        rank += full
        active = [g for g in active if quotas[g] > rank]
    return taken


def interleave(groups: Sequence[list[PlanItem]]) -> list[PlanItem]:
    """Round-robin over the groups in their order: every group once before any twice."""
    out: list[PlanItem] = []
    for rank in range(max((len(g) for g in groups), default=0)):
        out.extend(group[rank] for group in groups if rank < len(group))
    return out


def limit_plan(plan: list[PlanItem], limit: int | None) -> list[PlanItem]:
    """At most `limit` items; the plan is interleaved, so a prefix visits every leaf before any twice."""
    return plan if limit is None else plan[:limit]
