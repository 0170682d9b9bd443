"""Where a stage runs: `local` (this process; numpy on worker threads) or `ray` (a Ray cluster: the
same per-batch functions as Ray Data tasks). Steps live in their stage's folder; an executor only
decides where they run, so both give the same result on the same input."""

from __future__ import annotations

from distill.errors import DistillError

EXECUTORS = ("local", "ray")


def check_executor(name: str) -> str:
    if name not in EXECUTORS:
        raise DistillError(f"unknown executor {name!r}; use one of: {', '.join(EXECUTORS)}")
    return name
