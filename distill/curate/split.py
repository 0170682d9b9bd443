"""The held-out evaluation split, carved from the curated set: the one split every stage uses.

Stratified by taxonomy node. A leaf with enough examples to give the eval split at least one
(`fraction * n >= 1`) is a stratum of its own; smaller leaves are pooled with their siblings, and a
pool still too small moves up to the next ancestor, so each stratum is the nearest node that has
enough. A smoke run over many leaves of one example each (`--limit 24` on the medical taxonomy:
24 leaves of 1) thus still gets about `fraction` of its examples held out, instead of none.

Within a stratum, the examples ranked first by a hash of (seed, id) go to eval: an example's side
does not depend on the file's order, nor on anything outside its stratum. Pooling widens the
stratum: adding examples to a pooled sibling can move an example of a small leaf.

A split records the digest of the dataset it was carved from. When the dataset changes afterwards
(more examples generated, a review applied), `follow_dataset` extends the split instead of using the
old files forever: held-out examples stay held out, trained-on ones stay in train, examples no longer
in the dataset leave, and only the new ones are split (stratified among themselves, same seed).
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field

from distill.curate.dataset_io import dataset_files, load_examples
from distill.errors import DistillError
from distill.records import Example
from distill.rundir import DATASET, RunDir

NO_NODE = "(none)"
ROOT = "(all)"
# Below this many examples no split can say anything: one or two held-out answers measure nothing.
MIN_EXAMPLES = 10


class SplitSettings(BaseModel):
    """How to split: the share held out, and the seed that picks which examples."""

    fraction: float = Field(0.1, gt=0, lt=1)
    seed: int = 0


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
    nodes: set[str] = set()  # every node on a path to an example
    for path in by_node:
        parts = path.split("/")
        nodes.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    carried: dict[str, list[tuple[str, list[int]]]] = defaultdict(list)  # node -> small groups at or below it
    strata: list[tuple[str, list[int], dict[str, int]]] = []
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


def stratified_split(examples: list[Example], fraction: float = 0.1, seed: int = 0,
                     at_least_one: bool = True) -> SplitResult:
    """About `fraction` of the examples held out, stratified by taxonomy node (see the module docstring).

    `at_least_one`: when rounding holds out nothing, hold out one example anyway (a fresh split must
    not be empty; an extension of a split that already has an eval side need not be).
    """
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
    if at_least_one and not any(takes) and len(examples) >= 2:
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


def save_split(directory: Path | RunDir, result: SplitResult, source: str | None = None) -> None:
    """Write DIRECTORY/train.jsonl and eval.jsonl, and record the split in DIRECTORY/stats.json.

    `source`: the digest of the dataset the split was made from (`dataset_digest`), so that a later
    change of the dataset is noticed instead of the old split being used forever."""
    run_dir = _run_dir(directory)
    run_dir.check_split()  # a file of those names distill did not write is refused before any is written
    run_dir.write_split(result.train, result.eval)
    record_split(run_dir, {**result.summary(), "source_sha256": source or dataset_digest(run_dir)})


def _run_dir(directory: Path | RunDir) -> RunDir:
    return directory if isinstance(directory, RunDir) else RunDir(directory)


def dataset_digest(directory: Path | RunDir) -> str | None:
    """sha256 over the curated dataset's files (dataset.jsonl, or its shards), None where there is none."""
    try:
        files = dataset_files(_run_dir(directory).root)
    except DistillError:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class SplitUpdate(BaseModel):
    """What `follow_dataset` changed: examples new to the split on each side, and those that left it."""

    added_train: int = 0
    added_eval: int = 0
    removed: int = 0

    def describe(self) -> str:
        return (f"the dataset changed since the split: {self.added_train + self.added_eval} new example(s) split "
                f"{self.added_train} train / {self.added_eval} eval, {self.removed} no longer in the dataset "
                "left it; held-out examples stay held out")


def extend_split(examples: list[Example], train: list[Example], held_out: list[Example], fraction: float,
                 seed: int) -> tuple[list[Example], list[Example], SplitUpdate]:
    """The split of `examples` that keeps every side already chosen: an example held out before stays held
    out (and one trained on stays in train), whatever its content now; new examples are split stratified
    among themselves. Content comes from `examples`, so edits reach both sides."""
    eval_ids = {e.id for e in held_out}
    train_ids = {e.id for e in train}
    new = [e for e in examples if e.id not in eval_ids and e.id not in train_ids]
    fresh = stratified_split(new, fraction=fraction, seed=seed, at_least_one=not held_out) if new else None
    new_eval = {e.id for e in fresh.eval} if fresh else set()
    kept_train = [e for e in examples if e.id in train_ids or (e.id not in eval_ids and e.id not in new_eval)]
    kept_eval = [e for e in examples if e.id in eval_ids or e.id in new_eval]
    present = {e.id for e in examples}
    update = SplitUpdate(added_train=len(new) - len(new_eval), added_eval=len(new_eval),
                         removed=len((eval_ids | train_ids) - present))
    return kept_train, kept_eval, update


def read_split(directory: Path | RunDir, fraction: float = 0.1, seed: int = 0
               ) -> tuple[list[Example], list[Example], SplitUpdate | None]:
    """DIRECTORY's train.jsonl and eval.jsonl, brought up to date with its dataset (`follow_dataset`)."""
    run_dir = _run_dir(directory)
    train, held_out = run_dir.read_split()
    return follow_dataset(run_dir, train, held_out, fraction, seed)


def follow_dataset(directory: Path | RunDir, train: list[Example], held_out: list[Example], fraction: float = 0.1,
                   seed: int = 0) -> tuple[list[Example], list[Example], SplitUpdate | None]:
    """The run's split brought up to date with its dataset, rewritten when the dataset changed since it was
    made (see `extend_split`). The update is None when nothing was new or gone."""
    run_dir = _run_dir(directory)
    digest = dataset_digest(run_dir)
    recorded = run_dir.recorded_split() or {}
    if digest is None or recorded.get("source_sha256") == digest:
        return train, held_out, None
    fraction, seed = recorded.get("fraction", fraction), recorded.get("seed", seed)
    train, held_out, update = extend_split(load_examples(run_dir.root), train, held_out, fraction, seed)
    run_dir.check_split()
    run_dir.write_split(train, held_out)
    summary = {**recorded, "fraction": fraction, "seed": seed, "train": len(train), "eval": len(held_out),
               "source_sha256": digest}
    if update.added_train or update.added_eval or update.removed:
        summary["extended"] = [*recorded.get("extended", []), update.model_dump()]
        record_split(run_dir, summary)
        return train, held_out, update
    record_split(run_dir, summary)
    return train, held_out, None


def record_split(directory: Path | RunDir, summary: dict) -> None:
    """Merge the split's summary into DIRECTORY/stats.json (where the run's other counts are)."""
    _run_dir(directory).update_stats(split=summary)


def recorded_split(directory: Path | RunDir) -> dict | None:
    """The split summary stats.json holds, if any (for messages that name why a split is empty)."""
    return _run_dir(directory).recorded_split()


def run(run_dir: RunDir, settings: SplitSettings) -> SplitResult:
    """The split stage (`distill split`, `distill run`): a fresh split of the folder's curated dataset, written
    to train.jsonl and eval.jsonl and recorded in stats.json."""
    with run_dir.hold():
        source = dataset_digest(run_dir)
        result = stratified_split(load_examples(run_dir.root), fraction=settings.fraction, seed=settings.seed)
        if not result.eval:
            raise DistillError(result.note or "the eval split is empty", path=run_dir.root)
        save_split(run_dir, result, source)
    return result


def split_dataset(directory: Path, fraction: float = 0.1, seed: int = 0) -> SplitResult:
    """`distill split DIR`: split DIR's curated dataset.jsonl, write train.jsonl and eval.jsonl, record it."""
    if not 0.0 < fraction < 1.0:
        raise DistillError(f"--fraction must be between 0 and 1 (got {fraction}); 0.1-0.2 is usual")
    return run(RunDir(directory), SplitSettings(fraction=fraction, seed=seed))


def current(run_dir: RunDir, fraction: float = 0.1, seed: int = 0, say: Callable[[str], None] | None = None
            ) -> tuple[list[Example], list[Example]]:
    """The run's (train, eval) split as a reader should see it: made and written when the run has none yet,
    brought up to date with the dataset when it has (`follow_dataset`). Writing it matters: `distill eval`
    must see exactly the examples training never saw. `say` gets what the split pooled or extended."""
    say = say or (lambda line: None)
    if run_dir.has_split():
        # Examples generated (or reviewed) after the split must not be left out forever.
        train, held_out, update = read_split(run_dir, fraction, seed)
        if update is not None:
            say(f"split: {update.describe()}")
        return train, held_out
    if not run_dir.has_dataset():
        raise DistillError(f"no {DATASET} here: run `distill generate` / `distill curate` first", path=run_dir.root)
    examples = run_dir.read_dataset()
    if not examples:
        raise DistillError(f"{DATASET} is empty: nothing to train on", path=run_dir.dataset)
    split = stratified_split(examples, fraction=fraction, seed=seed)
    save_split(run_dir, split, dataset_digest(run_dir))
    for line in split.describe():
        say(f"split: {line}")
    return split.train, split.eval
