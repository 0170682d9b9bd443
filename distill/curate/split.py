"""The held-out evaluation split, carved from the curated set: the one split every stage uses.

Stratified by taxonomy node. A leaf with enough examples to give the eval split at least one
(`fraction * n >= 1`) is a stratum of its own; smaller leaves are pooled with their siblings, and a
pool still too small moves up to the next ancestor, so each stratum is the nearest node that has
enough. A smoke run over many leaves of one example each (`--limit 24` on the medical taxonomy:
24 leaves of 1) thus still gets about `fraction` of its examples held out, instead of none.

Within a stratum, the examples ranked first by a hash of (seed, id) go to eval: an example's side
does not depend on the file's order, nor on anything outside its stratum. Pooling widens the
stratum: adding examples to a pooled sibling can move an example of a small leaf.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from pathlib import Path

from pydantic import BaseModel, Field

from distill.errors import DistillError
from distill.owned import OwnedFolder
from distill.records import Example

NO_NODE = "(none)"
ROOT = "(all)"
# Below this many examples no split can say anything: one or two held-out answers measure nothing.
MIN_EXAMPLES = 10


class Stratum(BaseModel):
    """One group the split was stratified by: a leaf, or a node pooling small leaves below it."""

    node: str
    examples: int
    eval: int
    pooled: dict[str, int] = Field(default_factory=dict)  # leaf -> examples, when pooled from small leaves


class SplitResult(BaseModel):
    fraction: float
    seed: int
    train: list[Example] = Field(exclude=True)
    eval: list[Example] = Field(exclude=True)
    strata: list[Stratum]
    min_stratum: int  # examples a leaf needs to be a stratum of its own
    note: str | None = None  # why the eval split is small or empty, and what to do

    @property
    def pooled(self) -> list[Stratum]:
        return [s for s in self.strata if s.pooled]

    def summary(self) -> dict:
        """What goes into stats.json under "split"."""
        return {
            "fraction": self.fraction, "seed": self.seed, "train": len(self.train), "eval": len(self.eval),
            "min_stratum": self.min_stratum, "strata": [s.model_dump() for s in self.strata], "note": self.note,
        }

    def describe(self) -> list[str]:
        """Lines for a person: the sizes, what was pooled, and the note."""
        leaves = len({e.meta.taxonomy_path or NO_NODE for e in self.eval})
        lines = [f"train {len(self.train)}, eval {len(self.eval)} ({len(self.eval) / max(1, len(self.train) + len(self.eval)):.0%}"
                 f", {leaves} leaves, {len(self.strata)} strata)"]
        for stratum in self.pooled:
            small = ", ".join(f"{leaf} ({n})" for leaf, n in sorted(stratum.pooled.items()))
            if len(small) > 160:
                small = small[:157] + "..."
            lines.append(f"pooled {len(stratum.pooled)} small leaves under {stratum.node}: {stratum.examples} examples,"
                         f" {stratum.eval} to eval [{small}]")
        if self.note:
            lines.append(f"note: {self.note}")
        return lines


def _order_key(seed: int, example: Example) -> str:
    # A hash of (seed, id) rather than a shuffled list: an example's side does not depend on
    # the file's order.
    return hashlib.sha256(f"{seed}:{example.id}".encode()).hexdigest()


def min_stratum_size(fraction: float) -> int:
    """The fewest examples whose share `fraction` is at least one example."""
    return max(2, math.ceil(1 / fraction - 1e-9))


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ROOT


def _strata(by_node: dict[str, list[int]], min_size: int) -> list[tuple[str, list[int], dict[str, int]]]:
    """(node, members, pooled leaves) for every stratum: leaves with enough stand alone, the rest move up."""
    nodes = set()  # every node on a path to an example
    for path in by_node:
        parts = path.split("/")
        nodes.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    carried: dict[str, list[tuple[str, list[int]]]] = defaultdict(list)  # node -> small groups at or below it
    strata = []
    for node in sorted(nodes, key=lambda p: (-p.count("/"), p)):  # deepest first: children before parents
        own = by_node.get(node, [])
        if len(own) >= min_size:
            strata.append((node, own, {}))
        elif own:
            carried[node].append((node, own))
        groups = carried.pop(node, [])
        members = [i for _, group in groups for i in group]
        if len(members) >= min_size:  # (only pools get here: a small group alone is under min_size)
            strata.append((node, members, {leaf: len(group) for leaf, group in groups}))
        elif groups:
            carried[_parent(node)].extend(groups)
    leftover = carried.pop(ROOT, [])
    if len(leftover) == 1:  # one small group that found no siblings: a stratum of its own
        strata.append((leftover[0][0], leftover[0][1], {}))
    elif leftover:  # what the whole tree pooled and still under min_size
        strata.append((ROOT, [i for _, group in leftover for i in group], {leaf: len(g) for leaf, g in leftover}))
    return strata


def stratified_split(examples: list[Example], fraction: float = 0.1, seed: int = 0) -> SplitResult:
    """About `fraction` of the examples held out, stratified by taxonomy node (see the module docstring)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    by_node: dict[str, list[int]] = defaultdict(list)
    for i, example in enumerate(examples):
        by_node[example.meta.taxonomy_path or NO_NODE].append(i)
    min_size = min_stratum_size(fraction)
    groups = _strata(by_node, min_size)
    ranked = [sorted(members, key=lambda i: _order_key(seed, examples[i])) for _, members, _ in groups]
    takes = []
    for members in ranked:
        take = math.floor(len(members) * fraction + 0.5)
        takes.append(min(len(members) - 1, take) if len(members) >= 2 else take)  # keep some to train on
    if not any(takes) and len(examples) >= 2:
        # Rounding left every stratum at zero (a tiny set, or a tiny fraction): hold out one example of
        # the largest stratum rather than none.
        takes[max(range(len(groups)), key=lambda k: len(ranked[k]))] = 1
    eval_ids = {i for members, take in zip(ranked, takes) for i in members[:take]}
    strata = [Stratum(node=node, examples=len(members), eval=take, pooled=pooled)
              for (node, members, pooled), take in zip(groups, takes)]
    train = [e for i, e in enumerate(examples) if i not in eval_ids]
    evaluation = [e for i, e in enumerate(examples) if i in eval_ids]
    return SplitResult(fraction=fraction, seed=seed, train=train, eval=evaluation, strata=strata,
                       min_stratum=min_size, note=_note(len(examples), len(evaluation), fraction))


def _note(n: int, n_eval: int, fraction: float) -> str | None:
    if n_eval == 0:
        return (f"the eval split is empty: {n} example(s) in all, and a held-out split needs at least 2 "
                f"(at least {MIN_EXAMPLES} to measure anything); generate more (a larger --limit) or add data")
    if n < MIN_EXAMPLES:
        return (f"only {n} examples, so eval gets {n_eval} (asked {fraction:.0%}): too few to measure a "
                f"student; {MIN_EXAMPLES} or more give a split of about the asked fraction, a few hundred a "
                "useful one; generate more (a larger --limit)")
    return None


def save_split(directory: Path, result: SplitResult) -> None:
    """Write DIRECTORY/train.jsonl and eval.jsonl, and record the split in DIRECTORY/stats.json; a file of
    those names that distill did not write is refused, never replaced."""
    folder = OwnedFolder.in_place(directory)
    folder.check_all(("train.jsonl", "eval.jsonl", "stats.json"))
    folder.write_jsonl("train.jsonl", result.train)
    folder.write_jsonl("eval.jsonl", result.eval)
    record_split(folder, result.summary())


def record_split(folder: OwnedFolder, summary: dict) -> None:
    """Merge the split's summary into stats.json (where the run's other counts are)."""
    path = folder.root / "stats.json"
    stats = {}
    if path.is_file():
        try:
            stats = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            stats = {}
    stats["split"] = summary
    folder.write_json("stats.json", stats, default=str)


def recorded_split(directory: Path) -> dict | None:
    """The split summary stats.json holds, if any (for messages that name why a split is empty)."""
    path = Path(directory) / "stats.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("split")
    except (OSError, ValueError, AttributeError):
        return None


def split_dataset(directory: Path, fraction: float = 0.1, seed: int = 0) -> SplitResult:
    """`distill split DIR`: split DIR's curated dataset.jsonl, write train.jsonl and eval.jsonl, record it."""
    from distill.curate.dataset_io import load_examples

    if not 0.0 < fraction < 1.0:
        raise DistillError(f"--fraction must be between 0 and 1 (got {fraction}); 0.1-0.2 is usual")
    directory = Path(directory)
    result = stratified_split(load_examples(directory), fraction=fraction, seed=seed)
    if not result.eval:
        raise DistillError(result.note or "the eval split is empty", path=directory)
    save_split(directory, result)
    return result
