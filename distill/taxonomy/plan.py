"""Planning: every leaf gets its quota, and within a leaf every axis is split by its weights.

Each axis is apportioned on its own, with the rounding carried from leaf to leaf, then the axes are
paired up by seeded shuffles. So each leaf gets every axis value in proportion to its weight (to
within one item), the whole plan matches the weights even when quotas are smaller than the number
of combinations, and the same --seed always gives the same plan.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from distill.records import PlanItem
from distill.taxonomy.load import LoadedTaxonomy, TreeNode


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


def apportion(weights: dict[str, float], count: int, rng: random.Random,
              carry: dict[str, float] | None = None) -> dict[str, int]:
    """Split `count` over keys in proportion to weights, one unit at a time to the largest deficit.

    `carry` holds what earlier calls over- or under-allocated and is updated in place, so rounding
    evens out across leaves instead of always favouring the same values (error diffusion).
    """
    carry = {} if carry is None else carry
    total = sum(weights.values())
    target = {key: count * w / total + carry.get(key, 0.0) for key, w in weights.items()}
    shares = dict.fromkeys(weights, 0)
    order = list(weights)
    rng.shuffle(order)  # ties go to a seeded random key, not always the first listed
    for _ in range(count):
        key = max(order, key=lambda k: target[k] - shares[k])
        shares[key] += 1
    for key in weights:
        carry[key] = target[key] - shares[key]
    return shares


def plan_leaf(taxonomy_name: str, leaf: TreeNode, axes: dict, quota: int, seed: int,
              carry: dict[str, dict[str, float]]) -> list[PlanItem]:
    rng = random.Random(f"{seed}:{leaf.path}")
    columns: dict[str, list[str]] = {}
    for axis_name, axis in axes.items():
        shares = apportion(axis.values, quota, rng, carry.setdefault(axis_name, {}))
        column = [value for value in axis.values for _ in range(shares[value])]
        rng.shuffle(column)
        columns[axis_name] = column
    items = []
    for index in range(quota):
        combo = {name: column[index] for name, column in columns.items()}
        items.append(
            PlanItem(
                id=PlanItem.make_id(taxonomy_name, leaf.path, combo, index),
                node_path=leaf.path,
                axes=combo,
                index=index,
            )
        )
    return items


def build_plan(loaded: LoadedTaxonomy, seed: int = 0) -> list[PlanItem]:
    """The whole plan, in an order that interleaves leaves (so any prefix is spread over the tree)."""
    quotas = leaf_quotas(loaded)
    axes = loaded.taxonomy.crossed_axes()
    carry: dict[str, dict[str, float]] = {}
    per_leaf = [plan_leaf(loaded.name, leaf, axes, quotas[leaf.path], seed, carry) for leaf in loaded.leaves]
    return interleave(per_leaf, random.Random(seed))


def interleave(groups: Sequence[list[PlanItem]], rng: random.Random) -> list[PlanItem]:
    order = list(range(len(groups)))
    rng.shuffle(order)
    out: list[PlanItem] = []
    for rank in range(max((len(g) for g in groups), default=0)):
        out.extend(groups[g][rank] for g in order if rank < len(groups[g]))
    return out


def limit_plan(plan: list[PlanItem], limit: int | None) -> list[PlanItem]:
    """At most `limit` items; the plan is interleaved, so a prefix visits every leaf before any twice."""
    return plan if limit is None else plan[:limit]
