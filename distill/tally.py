"""Counts per taxonomy node: how many items reached each point of the pipeline, and why the others were dropped.

One type for every stage that reports per node: generation's summary (planned, generated, failed, valid, kept),
curation's yield (generated -> valid -> unique -> clean -> kept) and the review gate (the items in the data and
the reviewers' decisions). An item counted at a node counts at each of its ancestors and in the whole set too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

ALL = "(all)"  # the whole set
NO_NODE = "(none)"  # items without a taxonomy path


def node_chain(path: str | None) -> list[str]:
    """The node and all its ancestors: "a/b/c" -> ["a", "a/b", "a/b/c"]."""
    if not path:
        return [NO_NODE]
    parts = [p for p in path.split("/") if p]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))] or [NO_NODE]


@dataclass
class NodeTally:
    """One node's counts. Each stage fills the ones it knows and leaves the rest at 0."""

    planned: int = 0  # generation: plan items
    generated: int = 0  # answered by the teacher (generation); handed to curation (curation)
    failed: int = 0  # generation: the teacher's calls failed
    valid: int = 0  # parsed into an example (generation); passed the checks (curation)
    unique: int = 0  # curation: survived dedup
    clean: int = 0  # curation: survived decontamination
    kept: int = 0  # survived curation: the items in the data (what the review gate judges)
    accepted: int = 0  # the review's decisions
    edited: int = 0
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)  # reject reason -> items

    @property
    def reviewed(self) -> int:
        return self.accepted + self.edited + self.rejected

    def counts(self, *names: str) -> dict[str, int]:
        """The named counts, in that order."""
        return {name: getattr(self, name) for name in names}


class Tallies(dict[str, NodeTally]):
    """Node path -> its tally, ALL the whole set. Open by default (a node appears with its first item); with
    `nodes`, fixed to those (an item of another path counts in the whole set only)."""

    def __init__(self, nodes: Iterable[str] | None = None):
        super().__init__({ALL: NodeTally()})
        self.fixed = nodes is not None
        for node in nodes or ():
            self[node] = NodeTally()

    def add(self, path: str | None, n: int = 1, reason: str | None = None, **points: int) -> None:
        """Count `n` items of `path` at each of `points` (name=1 counts them, name=0 does not) and, given, their
        reject `reason`, at the node, its ancestors and ALL."""
        chain = node_chain(path)
        if self.fixed and (not path or path not in self):
            chain = []
        for name in (ALL, *chain):
            tally = self.setdefault(name, NodeTally())
            for point, on in points.items():
                setattr(tally, point, getattr(tally, point) + n * on)
            if reason:
                tally.reasons[reason] += n

    @property
    def total(self) -> NodeTally:
        return self[ALL]
