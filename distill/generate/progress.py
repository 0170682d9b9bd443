"""The progress bar of a generation run: items/s, ETA, tokens, and how many were kept so far."""

from __future__ import annotations

import time

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, SpinnerColumn, Task,
                           TextColumn, TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} items/s" if speed else "-- items/s", style="cyan")


class GenerationProgress:
    def __init__(self, total: int, enabled: bool = True):
        self.enabled = enabled
        self.tokens_in = self.tokens_out = self.ok = self.bad = self.failed = 0
        self.progress = Progress(
            SpinnerColumn(), TextColumn("generating"), BarColumn(), MofNCompleteColumn(), RateColumn(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            TextColumn("{task.fields[detail]}"), disable=not enabled,
        )
        self.task = self.progress.add_task("generate", total=total, detail="")
        self._shown = 0.0  # when the detail text was last rebuilt

    def __enter__(self) -> GenerationProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._refresh(force=True)
        self.progress.__exit__(*exc)

    def _refresh(self, force: bool = False) -> None:
        # rich redraws ~10 times a second; rebuilding the text for each of hundreds of answers a
        # second is wasted work on the event loop that also drives the requests.
        now = time.monotonic()
        if not self.enabled or (not force and now - self._shown < 0.1):
            return
        self._shown = now
        detail = f"tok {self.tokens_in:,} in / {self.tokens_out:,} out  valid {self.ok}  rejected {self.bad}"
        if self.failed:
            detail += f"  failed {self.failed}"
        self.progress.update(self.task, detail=detail)

    def add_tokens(self, prompt: int, completion: int) -> None:
        self.tokens_in += prompt
        self.tokens_out += completion
        self._refresh()

    def advance(self, kept: bool, failed: bool = False) -> None:
        if kept:
            self.ok += 1
        elif failed:
            self.failed += 1
        else:
            self.bad += 1
        self.progress.advance(self.task)
        self._refresh()

    def finish(self, seconds: float) -> None:
        self.seconds = seconds
