"""What a curation step is, and what an executor offers a step that needs the whole set.

A step is a small object with up to two phases:

- `map_batch(batch) -> batch`: work on each row alone (a check, a hash), run on every batch of rows by
  whichever executor runs the list: in this process (`executors/local.py`) or as Ray Data tasks
  (`executors/ray.py`). A row a step rejects gets its verdict in the batch's `stage`, `reason` and `detail`
  columns and takes no part in later steps.
- `resolve(rows) -> Findings`: work that needs the whole set (which rows share a key, which n-grams are
  common everywhere), done through the few operations of `Rows`, which each executor implements where the
  data lives. Like datatrove's MinHash stages, the global work is phases over keyed rows (group by a key,
  pairs sharing a band key, a scan against a shared index), each small result gathered and decided on the
  driver.

No step knows which executor runs it. A step that cannot run everywhere says so in `local_only` (why it
runs only in this process); the Ray executor refuses such a list with that line, before it starts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, Protocol

import numpy as np

from distill.curate.result import ContaminationRow, DuplicateRow
from distill.records import Example

Batch = dict[str, np.ndarray]  # columns of equal length; one row an example (or an --against reference)


class Verdict(NamedTuple):
    """Why a step rejects a row; the step's `stage` completes the `Reject`."""

    reason: str
    detail: str


@dataclass
class Findings:
    """What a step's whole-set phase decided: rows it rejects (by order key) and what it reports."""

    rejects: dict[int, Verdict] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  # its part of stats.json's section (`Step.section`)
    duplicates: list[DuplicateRow] = field(default_factory=list)
    contamination: list[ContaminationRow] = field(default_factory=list)


class Rows(Protocol):
    """The set being curated, wherever it lives. A row is *in play* while it passed the checks and no step has
    rejected it; references (`--against` rows, never output) are in play too unless `references=False`.
    Rows come back from `gather`, `fetch` and `pairs_sharing` in order-key order (the input's order, references
    after it); what `group` and `scan` give back, in any order."""

    n_rows: int  # every row read, rejected or not, references included

    def count(self, references: bool = False) -> int:
        """Rows in play."""

    def gather(self, columns: list[str], references: bool = True) -> Batch:
        """These columns of the rows in play (small columns only: they come to this process)."""

    def fetch(self, orders: np.ndarray, columns: list[str]) -> Batch:
        """These columns of the rows with these sorted order keys, whether in play or not."""

    def group(self, key: str, columns: list[str], reduce: Callable[[Batch], Batch]) -> Batch:
        """`reduce` over the rows in play split into groups, every row with the same `key` value in one group
        (a group may hold many keys); its outputs concatenated."""

    def pairs_sharing(self, column: str, where: str) -> np.ndarray:
        """(m, 2) order-key pairs, first < second, each once, sorted, of rows in play with `where` true that share
        a value in some column of the (rows, k) uint64 matrix `column`. Values are compared on all but their low
        `index_bits(n_rows)` bits, the bits the local executor packs a row's number into."""

    def scan(self, fn: Callable[[Batch, Any], Batch], columns: list[str], shared: Any,
             references: bool = False) -> Batch:
        """`fn(batch, shared)` on the rows in play, a batch at a time (`shared` travels to every batch once);
        its outputs concatenated."""

    def reject(self, rejects: dict[int, Verdict], stage: str) -> None:
        """Take these rows out of play, with their verdicts (what `Curation.resolve` does with a step's findings)."""

    def progress(self, what: str, done: int, total: int) -> None:
        """Tell the user how far a long phase got (shown only where the executor can)."""


def index_bits(n_rows: int) -> int:
    """Bits needed to number `n_rows` rows (at least 1)."""
    return max(1, (n_rows - 1).bit_length())


class Step:
    """One curation step. Subclasses set `stage` (the `Reject.stage` of their rejects) and override
    `map_batch`, `resolve` or both."""

    name: ClassVar[str] = "step"  # what the user sees in progress lines
    stage: ClassVar[str] = ""
    section: ClassVar[str] = ""  # the stats.json section `resolve`'s info goes to
    local_only: ClassVar[str | None] = None  # why it runs only in this process; None: anywhere
    # Its per-batch work is numpy that releases the GIL, so batches gain from running on threads side by side;
    # pure-Python work (the checks) only fights over the GIL there, and loses most on a loaded machine.
    threads_help: ClassVar[bool] = False

    def map_batch(self, batch: Batch) -> Batch:
        return batch

    def resolve(self, rows: Rows) -> Findings | None:
        return None

    def reject(self, batch: Batch, i: int, verdict: Verdict) -> None:
        """Mark row `i` of `batch` rejected by this step."""
        batch["stage"][i], batch["reason"][i], batch["detail"][i] = self.stage, verdict.reason, verdict.detail


def new_batch(examples: Sequence[Example], order: np.ndarray, source: np.ndarray) -> Batch:
    """The columns every executor starts a batch with: the examples, their order keys (input order) and source
    (0 the input, k the k-th --against set), and no verdict yet."""
    n = len(examples)
    return {
        "order": np.asarray(order, dtype=np.int64),
        "source": np.asarray(source, dtype=np.int64),
        "protected": np.asarray(source, dtype=np.int64) > 0,
        "example": _objects(examples),
        "id": _objects([e.id for e in examples]),
        "node": _objects([e.meta.taxonomy_path or "" for e in examples]),
        "stage": _objects([""] * n),
        "reason": _objects([""] * n),
        "detail": _objects([""] * n),
    }


def in_play(batch: Batch) -> np.ndarray:
    """Rows no step has rejected."""
    return batch["reason"] == ""


def _objects(values: Sequence[Any]) -> np.ndarray:
    # fromiter: an array of the objects themselves (assigning a list would descend into pydantic models)
    return np.fromiter(values, dtype=object, count=len(values))
