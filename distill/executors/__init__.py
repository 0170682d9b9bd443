"""Where a stage runs: `local` (this process) or `ray` (a Ray cluster). Steps live in their stage's folder and
never know which executor runs them; the entry points (`distill/cli.py`, `distill/api.py`, `distill/run.py`, and
`curate/commands.py`, the curate command's own entry) choose one here and hand it to the stage.

- curation: `local.py` and `ray.py` each run any list of curation steps (`curate/steps/`), with the same result;
- generation: the runner's own loop is local; `ray_generate.py` runs a run's items on Ray actors.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from distill.errors import DistillError
from distill.executors.local import LocalExecutor
from distill.executors.ray import RayExecutor
from distill.executors.ray_generate import RayItems

EXECUTORS = ("local", "ray")


def check_executor(name: str) -> str:
    if name not in EXECUTORS:
        raise DistillError(f"unknown executor {name!r}; use one of: {', '.join(EXECUTORS)}")
    return name


def curation_executor(name: str, *, workers: int = 1, progress: Callable[[str, int, int], None] | None = None,
                      out: Path | None = None, output_format: str = "jsonl", address: str | None = None,
                      rows_per_part: int = 100_000) -> LocalExecutor | RayExecutor:
    """The executor that runs a curation: here with `workers` threads, or on Ray writing shards into `out`."""
    if check_executor(name) == "ray":
        if out is None:
            raise ValueError("the Ray executor writes its shards into a folder: pass out")
        return RayExecutor(out, output_format=output_format, address=address, rows_per_part=rows_per_part)
    return LocalExecutor(workers=workers, progress=progress)


def generation_executor(name: str) -> RayItems | None:
    """Where a run's items go: None for this process (the runner's own loop), else Ray's workers."""
    return RayItems() if check_executor(name) == "ray" else None
