"""A held-out evaluation split, stratified by taxonomy leaf, carved from the curated set."""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict

from distill.records import Example


def _order_key(seed: int, example: Example) -> str:
    # A hash of (seed, id) rather than a shuffled list: an example's side does not depend on
    # which other examples happen to be in the file.
    return hashlib.sha256(f"{seed}:{example.id}".encode()).hexdigest()


def stratified_split(examples: list[Example], fraction: float = 0.1, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """(train, eval): about `fraction` of every leaf goes to eval, at least one from each leaf of 2+."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    by_leaf: dict[str, list[int]] = defaultdict(list)
    for i, example in enumerate(examples):
        by_leaf[example.meta.taxonomy_path or "(none)"].append(i)
    eval_ids: set[int] = set()
    for members in by_leaf.values():
        if len(members) < 2:
            continue
        take = min(len(members) - 1, max(1, math.floor(len(members) * fraction + 0.5)))
        ranked = sorted(members, key=lambda i: _order_key(seed, examples[i]))
        eval_ids.update(ranked[:take])
    train = [e for i, e in enumerate(examples) if i not in eval_ids]
    evaluation = [e for i, e in enumerate(examples) if i in eval_ids]
    return train, evaluation
