"""The local executor: a curation's steps in this process, the whole set in memory.

Each step's `map_batch` goes over every batch of rows, on `workers` threads where the step says threads help
(hashing and signing release the GIL; the checks would only fight over it); the whole-set phases then work on
the joined columns, each row numbered by its place in the set (the input, then each --against set), so
grouping needs no shuffle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from distill.curate.dataset_io import load_examples
from distill.curate.judge import Judge
from distill.curate.minhash import candidate_pairs
from distill.curate.normalize import run_batches
from distill.curate.pipeline import CurateConfig, Curation, curation
from distill.curate.result import CurateResult, sort_out
from distill.curate.steps.base import Batch, Step, Verdict, new_batch
from distill.records import Example

Progress = Callable[[str, int, int], None]
_BATCH = 2_000  # rows per batch: the numpy batch size of the hashing and signing


class LocalExecutor:
    """Runs any `Curation` here. `workers`: threads for the per-batch work and the scans; `progress(what, done,
    total)`: where the phases report."""

    def __init__(self, workers: int = 1, progress: Progress | None = None):
        self.workers, self.report = workers, progress

    def check(self, curation: Curation) -> None:
        """Every step runs here: nothing to refuse."""

    def run(self, curation: Curation, source: str | Path | Iterable[Example]) -> CurateResult:
        """Curate `source` (a dataset path, or examples); the result holds the kept examples and the rejects."""
        examples = load_examples(source, curation.input_format) if isinstance(source, (str, Path)) else list(source)
        references = [(k, e) for k, path in enumerate(curation.against, 1) for e in load_examples(path)]
        rows = MemoryRows(examples + [e for _, e in references], [0] * len(examples) + [k for k, _ in references],
                          self.workers, self.report)
        rows.prepare(curation)
        found = curation.resolve(rows)
        sorted_out = sort_out(rows.columns, examples.__getitem__)
        return curation.result(found, [examples[i] for i in sorted_out.kept], sorted_out.rejects, sorted_out.outcomes,
                               references=len(references))


class MemoryRows:
    """`Rows` held in this process; a row's order key is its place in the set."""

    def __init__(self, examples: list[Example], sources: list[int], workers: int, progress: Progress | None):
        self.examples, self.sources, self.workers, self.report = examples, np.asarray(sources, np.int64), workers, progress
        self.n_rows = len(examples)
        self.columns: Batch = {}

    def prepare(self, curation: Curation) -> None:
        """Every step's per-batch work, a step at a time over all batches (on the worker threads where the step
        says threads help); then the columns joined."""
        starts = list(range(0, self.n_rows, _BATCH)) or [0]
        parts = [new_batch(self.examples[start : start + _BATCH], np.arange(start, min(start + _BATCH, self.n_rows)),
                           self.sources[start : start + _BATCH]) for start in starts]
        for step in curation.steps:
            self._map(step, parts)
        for name in list(parts[0]):
            self.columns[name] = _joined(name, parts)
        self.live = self.columns["reason"] == ""

    def _map(self, step: Step, parts: list[Batch]) -> None:
        def job(k: int) -> int:
            parts[k] = step.map_batch(parts[k])
            return k

        run_batches(job, list(range(len(parts))), self.workers if step.threads_help else 1,
                    lambda k: self.progress(step.name, min((k + 1) * _BATCH, self.n_rows), self.n_rows))

    def _chosen(self, references: bool) -> np.ndarray:
        return np.flatnonzero(self.live if references else self.live & ~self.columns["protected"])

    def count(self, references: bool = False) -> int:
        return len(self._chosen(references))

    def gather(self, columns: list[str], references: bool = True) -> Batch:
        return self.fetch(self._chosen(references), columns)

    def fetch(self, orders: np.ndarray, columns: list[str]) -> Batch:
        return {c: self.columns[c][orders] for c in columns}

    def group(self, key: str, columns: list[str], reduce: Callable[[Batch], Batch]) -> Batch:
        return reduce(self.gather(columns))  # one group holds every key

    def pairs_sharing(self, column: str, where: str) -> np.ndarray:
        return candidate_pairs(self.columns[column], self.live & self.columns[where], self.workers)

    def scan(self, fn: Callable[[Batch, Any], Batch], columns: list[str], shared: Any,
             references: bool = False) -> Batch:
        chosen = self._chosen(references)
        starts = list(range(0, len(chosen), _BATCH)) or [0]
        parts: list[Batch] = [{}] * len(starts)

        def job(start: int) -> int:
            parts[start // _BATCH] = fn(self.fetch(chosen[start : start + _BATCH], columns), shared)
            return start

        run_batches(job, starts, self.workers)
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}

    def reject(self, rejects: dict[int, Verdict], stage: str) -> None:
        for order, verdict in rejects.items():
            self.columns["stage"][order], self.columns["reason"][order], self.columns["detail"][order] = stage, *verdict
            self.live[order] = False

    def progress(self, what: str, done: int, total: int) -> None:
        if self.report is not None:
            self.report(what, done, total)


def _joined(name: str, parts: list[Batch]) -> np.ndarray:
    """One column of all the parts, each part's piece let go once copied: the peak is the column and one piece,
    not the column twice (band keys are 144 bytes a row)."""
    first = parts[0][name]
    column = np.empty((sum(len(part[name]) for part in parts), *first.shape[1:]), dtype=first.dtype)
    at = 0
    for part in parts:
        piece = part.pop(name)
        column[at : at + len(piece)] = piece
        at += len(piece)
    return column


def curate(examples: Iterable[Example], config: CurateConfig, progress: Callable[[str, int, int], None] | None = None,
           judge: Judge | None = None, label_judge: Judge | None = None) -> CurateResult:
    """Curate `examples` in this process and return the `CurateResult`: generation's own curation at the end of a
    run (its answers are in memory here, so no executor is chosen). `judge` answers the judged checks
    (`config.topic_judge`, and `config.label_check` unless a `label_judge` is given for it), recording its calls."""
    return LocalExecutor(workers=config.workers, progress=progress).run(curation(config, judge, label_judge), examples)
