"""What curation gives back, built the same way by every executor: kept rows, `Reject(stage, reason, detail)`
rows, the duplicate and contamination reports and the yield per taxonomy node."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel

from distill.records import Example, Reject
from distill.tally import ALL, NodeTally, Tallies

# The yield funnel, and how far a rejected example got: a check reject passed none of the stages after
# "generated", a dedup reject passed the checks ("valid"), and so on; a kept one passed them all.
FUNNEL = ("generated", "valid", "unique", "clean", "kept")
STAGES = ("check", "dedup", "decontaminate", "judge")
KEPT = len(STAGES)


class DuplicateRow(BaseModel):
    id: str
    duplicate_of: str
    method: Literal["exact", "near"]
    similarity: float  # Jaccard of word shingles with the kept item (1.0 for exact)
    via: str | None = None  # the item it matched directly, when grouped through another
    via_similarity: float | None = None
    source: str | None = None  # the earlier run / dataset holding `duplicate_of`, when not this set


class ContaminationRow(BaseModel):
    id: str
    heldout_id: str
    heldout_text: str
    ngram: str
    n: int
    matches: int
    method: Literal["ngram", "minhash"]
    similarity: float | None = None
    also_13gram: bool = False
    node_path: str | None = None


@dataclass
class SortedRows:
    """One batch sorted out: the positions of its kept rows, its rejects, and its outcome counts."""

    kept: list[int]
    rejects: list[Reject]
    outcomes: Counter  # (taxonomy path or None, stages passed 0-4, reject reason or None) -> rows


def sort_out(batch: dict[str, np.ndarray], example_of: Callable[[int], Example]) -> SortedRows:
    """Kept rows and a `Reject` for each rejected one, from a batch whose verdict columns (`stage`, `reason`,
    `detail`) every step has filled; references (--against rows) are neither. `example_of(i)` gives row i's
    example (an executor may hold rows serialised)."""
    kept: list[int] = []
    rejects: list[Reject] = []
    outcomes: Counter = Counter()
    for i, (against, stage, reason, detail, node) in enumerate(zip(
            batch["protected"].tolist(), batch["stage"].tolist(), batch["reason"].tolist(), batch["detail"].tolist(),
            batch["node"].tolist())):
        if against:
            continue
        if not reason:
            kept.append(i)
            outcomes[node or None, KEPT, None] += 1
            continue
        example = example_of(i)
        rejects.append(Reject(id=example.id, stage=stage, reason=reason, detail=detail, example=example,
                              node_path=example.meta.taxonomy_path))
        outcomes[node or None, STAGES.index(stage), reason] += 1
    return SortedRows(kept, rejects, outcomes)


def yield_tallies(outcomes: Counter) -> Tallies:
    """Yield per node and its ancestors from counts of (taxonomy path, stages passed, reject reason)."""
    tallies = Tallies()
    for (path, reached, reason), count in sorted(outcomes.items(), key=lambda kv: tuple(map(str, kv[0]))):
        tallies.add(path, count, reason, **{point: reached >= k for k, point in enumerate(FUNNEL)})
    return tallies


@dataclass
class CurateResult:
    kept: list[Example]
    rejects: list[Reject]
    node_stats: Tallies
    contamination: list[ContaminationRow]
    duplicates: list[DuplicateRow]
    dedup_info: dict[str, Any] = field(default_factory=dict)
    decontam_info: dict[str, Any] = field(default_factory=dict)
    judge_info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> NodeTally:
        return self.node_stats.get(ALL, NodeTally())

    def empty_nodes(self) -> list[tuple[str, str]]:
        """Nodes that generated something and kept nothing, with their most common reason."""
        out = []
        for node, stats in sorted(self.node_stats.items()):
            if node != ALL and stats.generated and not stats.kept:
                reason = stats.reasons.most_common(1)[0][0] if stats.reasons else "unknown"
                out.append((node, reason))
        return out

    def to_stats(self) -> dict[str, Any]:
        total = self.total
        return {
            "curate": {
                **total.counts(*FUNNEL),
                "reasons": dict(total.reasons.most_common()),
                "nodes": {k: {**v.counts(*FUNNEL), "reasons": dict(v.reasons.most_common())}
                          for k, v in sorted(self.node_stats.items()) if k != ALL},
                "empty_nodes": [{"node": n, "top_reason": r} for n, r in self.empty_nodes()],
                "dedup": self.dedup_info,
                "decontamination": self.decontam_info,
                "judge": self.judge_info,
                "notes": self.notes,
            }
        }
