"""What later commands need of a run's taxonomy, kept in the run folder as data (`taxonomy.json`).

A run folder travels (it is sent for review, for export), and its run.db names the taxonomy file it was made
from. Loading that file would read whatever files it names, and whatever Python its task names, because a
folder said so. So `distill generate` writes down what the commands that read a run show of its taxonomy (its
descriptions, axes, tree, seed texts, labels, the task's output schema as JSON Schema), and review and export
read this file, never the taxonomy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from distill.rundir import TAXONOMY, RunDir
from distill.tasks.engine import seed_text


class AxisInfo(BaseModel):
    description: str | None = None
    values: list[str]


class NodeInfo(BaseModel):
    path: str
    description: str


class TaxonomySnapshot(BaseModel):
    """A taxonomy as the commands that read a run see it."""

    name: str
    description: str = ""
    system_prompt: str = ""
    task: str = ""
    axes: dict[str, AxisInfo] = {}  # as the taxonomy declares them (labels apart)
    labels: dict[str, str] | None = None
    nodes: list[NodeInfo] = []  # depth-first, parents before children
    seeds: dict[str, str] = {}  # seed id -> its text (its first text field)
    output_schema: dict[str, Any] | None = None  # the student's output, as JSON Schema


def snapshot(loaded) -> TaxonomySnapshot:
    """The snapshot of a loaded taxonomy (`distill.taxonomy.LoadedTaxonomy`)."""
    taxonomy, task = loaded.taxonomy, loaded.task
    schema = task.output_schema
    return TaxonomySnapshot(
        name=taxonomy.name, description=taxonomy.description, system_prompt=taxonomy.system_prompt, task=task.name,
        axes={name: AxisInfo(description=axis.description, values=list(axis.values))
              for name, axis in taxonomy.axes.items()},
        labels=dict(taxonomy.labels) if taxonomy.labels else None,
        nodes=[NodeInfo(path=node.path, description=node.node.description) for node in loaded.nodes],
        seeds={seed.id: seed_text(seed) for node in loaded.nodes for seed in node.own_seeds},
        output_schema=schema.json_schema if schema is not None and not schema.deferred else None,
    )


def write_snapshot(loaded, run_dir: RunDir) -> Path:
    """`taxonomy.json` in the run folder, replaced whole (a crash leaves the old one; never a file of that name
    distill did not write)."""
    return run_dir.folder().write_text(TAXONOMY, snapshot(loaded).model_dump_json(indent=1))


def read_snapshot(run_dir: Path) -> TaxonomySnapshot | None:
    """The run's snapshot; None when there is none or it cannot be read (a run made before it was written,
    an edited file): the commands then show less, and never go looking for the taxonomy."""
    path = RunDir(run_dir).path(TAXONOMY)
    try:
        return TaxonomySnapshot.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError):
        return None
