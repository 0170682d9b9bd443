"""User-facing errors: one clear line, exit code 2, never a traceback."""

from __future__ import annotations

from pathlib import Path


class DistillError(Exception):
    """A mistake the user can fix. The CLI prints `error: <message>` and exits with `exit_code`."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)


class BudgetExceeded(DistillError):
    """The spend cap was reached; everything already answered is saved."""

    exit_code = 3


class ReviewPending(DistillError):
    """The run has a review queue whose gate has not passed (reviews open, or a reject rate too high)."""

    exit_code = 4
