"""`distill taxonomy diversity RUN_DIR`: a run's kept examples measured per leaf (`diversity.py`), written to
diversity.json in the run folder, and the table a person reads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import BaseModel
from rich.markup import escape
from rich.table import Table

from distill.curate.diversity import DiversitySettings, LeafDiversity, leaf_diversity
from distill.errors import DistillError
from distill.rundir import DIVERSITY, RunDir
from distill.taxonomy import load_taxonomy
from distill.taxonomy.snapshot import read_snapshot


class DiversityReport(BaseModel):
    """What diversity.json holds: the figures of every leaf, and what they were measured on."""

    source: str  # dataset.jsonl or train.jsonl
    examples: int
    taxonomy_leaves: int | None  # None: no taxonomy known, so empty leaves cannot be told
    embedding_model: str | None = None
    settings: DiversitySettings
    leaves: dict[str, LeafDiversity]

    @property
    def empty(self) -> list[str]:
        return [leaf for leaf, figures in self.leaves.items() if figures.empty]

    @property
    def saturated(self) -> list[str]:
        return [leaf for leaf, figures in self.leaves.items() if figures.saturated]


def measure_run(run_dir: RunDir, *, train: bool = False, taxonomy: Path | None = None,
                embed: Callable[[list[str]], np.ndarray] | None = None, embedding_model: str | None = None,
                settings: DiversitySettings | None = None) -> DiversityReport:
    """The figures of the run's kept examples (dataset.jsonl, or with `train` the split's train.jsonl) per leaf,
    written to diversity.json. The leaves come from `taxonomy` (a taxonomy file) or the run's taxonomy.json;
    the duplicate rates from rejected.jsonl."""
    settings = settings or DiversitySettings()
    with run_dir.hold():  # a missing folder, or one with no run in it, is one line here
        source = run_dir.train if train else run_dir.dataset
        if not source.is_file():
            hint = "run `distill split` (or `distill train`) first" if train else \
                "give a run directory (`distill generate`) or a folder `distill curate` wrote"
            raise DistillError(f"no {source.name}: {hint}", path=run_dir.root)
        examples = run_dir.read_split()[0] if train else run_dir.read_dataset()
        leaves = taxonomy_leaves(run_dir, taxonomy)
        figures = leaf_diversity(examples, leaves=leaves or (), rejects=run_dir.read_rejected_rows(),
                                 settings=settings, embed=embed)
        report = DiversityReport(source=source.name, examples=len(examples),
                                 taxonomy_leaves=len(leaves) if leaves is not None else None,
                                 embedding_model=embedding_model if embed else None, settings=settings,
                                 leaves=figures)
        run_dir.write_diversity(report.model_dump(mode="json"))
    return report


def taxonomy_leaves(run_dir: RunDir, taxonomy: Path | None) -> list[str] | None:
    """The leaf paths of the taxonomy file given, else of the run's snapshot; None when neither is there."""
    if taxonomy is not None:
        return [node.path for node in load_taxonomy(taxonomy).leaves]
    snapshot = read_snapshot(run_dir.root)
    if snapshot is None:
        return None
    paths = [node.path for node in snapshot.nodes]
    return [path for path in paths if not any(other.startswith(path + "/") for other in paths)]


def diversity_table(report: DiversityReport) -> Table:
    """One row a leaf: its size, distinct-n, self-similarity, duplicate rate, spread (when embedded), state."""
    embedded = report.embedding_model is not None
    table = Table(title=f"diversity per leaf ({report.source}, {report.examples:,} examples)")
    table.add_column("leaf", overflow="fold", min_width=12)
    for column in ("n", "dist-1", "dist-2", "self-sim", "dup rate", *(["spread"] if embedded else [])):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("state")
    for leaf, figures in report.leaves.items():
        table.add_row(escape(leaf), str(figures.examples), _figure(figures.distinct_1), _figure(figures.distinct_2),
                      _figure(figures.self_similarity), _figure(figures.duplicate_rate),
                      *([_figure(figures.embedding_spread)] if embedded else []), _state(figures))
    return table


_CAUSES = {"self_similarity": "self-sim", "duplicate_rate": "dup rate"}  # as the columns are headed


def _state(figures: LeafDiversity) -> str:
    if figures.empty:
        return "[red]empty[/red]"
    if not figures.saturated:
        return ""
    return f"[yellow]saturated[/yellow] ({', '.join(_CAUSES.get(cause, cause) for cause in figures.why)})"


def summary(report: DiversityReport, run_dir: RunDir) -> str:
    """The line under the table: how many leaves, empty and saturated, and where the figures went."""
    known = "" if report.taxonomy_leaves is not None else \
        " (no taxonomy.json in the run: pass --taxonomy FILE to find empty leaves)"
    return (f"{len(report.leaves)} leaves, {len(report.empty)} empty{known}, {len(report.saturated)} saturated "
            f"-> {run_dir.root / DIVERSITY}")


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"

